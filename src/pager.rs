//! [`Pager`]: a growable array of small fixed-size records kept in pages, of which only as
//! many stay in memory as a share of the memory budget allows; the others wait in one unnamed
//! temporary file, least recently used first out.
//!
//! Two structures grow with every path of the image and are read back at random, so they
//! cannot be written out once as a sorted run the way the squashfs tree is: the merge's path
//! tree and the squashfs writer's file placements. But their reads have strong locality: a
//! layer's entries come directory by directory, each entry touches its own path and its
//! ancestors, new records are appended at the end, and the inode walk at the end meets files
//! in about the order each layer delivered them. So a small set of recently used pages serves
//! nearly every read, and paging costs one positioned read per page that comes back.
//!
//! Below its limit a pager never touches the disk. Reads go through `&self` (lookups are
//! reads), so the pages sit in a [`RefCell`]; an I/O error cannot be returned from there, so
//! it is kept ([`Pager::take_error`]) and the lost page reads as [`Record::LOST`] records
//! (for the merge's tree, detached leaves); the owner fails with the error at its next check.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::Error;

/// A record a [`Pager`] can hold: copied out on every read, encoded only when its page goes to
/// the disk.
pub(crate) trait Record: Copy {
    /// Records per page, as a power of two.
    const PAGE_SHIFT: u32;
    /// Bytes of one record on disk.
    const SIZE: usize;
    /// What a record reads as before it is written, or when its page could not be read back.
    const LOST: Self;
    /// Appends the records' bytes to `out`.
    fn encode(items: &[Self], out: &mut Vec<u8>);
    /// Fills `items` from `bytes` (`items.len() * SIZE` of them).
    fn decode(bytes: &[u8], items: &mut [Self]);
}

impl Record for u8 {
    const PAGE_SHIFT: u32 = 16;
    const SIZE: usize = 1;
    const LOST: u8 = 0;

    fn encode(items: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(items);
    }

    fn decode(bytes: &[u8], items: &mut [u8]) {
        items.copy_from_slice(bytes);
    }
}

impl Record for u64 {
    const PAGE_SHIFT: u32 = 13;
    const SIZE: usize = 8;
    const LOST: u64 = 0;

    fn encode(items: &[u64], out: &mut Vec<u8>) {
        for v in items {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8], items: &mut [u64]) {
        for (v, b) in items.iter_mut().zip(bytes.chunks_exact(8)) {
            *v = u64::from_le_bytes(b.try_into().unwrap_or_default());
        }
    }
}

/// Pages kept in memory whatever the limit: the page being written and the ones being read
/// alongside it (an entry's path and its ancestors), so that a tiny budget pages, not thrashes.
const MIN_PAGES: usize = 4;

/// A growable array of `T` in pages; see the module doc.
pub(crate) struct Pager<T: Record> {
    inner: RefCell<Pages<T>>,
}

struct Pages<T> {
    pages: Vec<Page<T>>,
    len: usize,
    /// Indexes of the pages in memory.
    resident: Vec<u32>,
    /// The most pages kept in memory.
    limit: usize,
    /// Counts uses, to tell the least recently used page.
    clock: u64,
    file: Option<File>,
    dir: PathBuf,
    /// What the records are, for errors.
    what: &'static str,
    error: Option<Error>,
    buf: Vec<u8>,
    /// Pages written to the file, in all.
    written: u64,
}

struct Page<T> {
    /// The records, when in memory.
    items: Option<Box<[T]>>,
    /// `clock` at the last use.
    used: u64,
    /// Changed since it was last written (or never written).
    dirty: bool,
}

/// A summary, not the records (a pager may hold millions).
impl<T: Record> std::fmt::Debug for Pager<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.inner.borrow();
        f.debug_struct("Pager")
            .field("what", &p.what)
            .field("len", &p.len)
            .field("resident_pages", &p.resident.len())
            .field("written", &p.written)
            .finish()
    }
}

impl<T: Record> Pager<T> {
    const PER_PAGE: usize = 1 << T::PAGE_SHIFT;
    const MASK: usize = Self::PER_PAGE - 1;

    /// An empty pager whose file, if it ever needs one, goes in `dir`; `what` names the
    /// records in errors. It keeps every page in memory until [`Pager::set_limit`] says
    /// otherwise.
    pub(crate) fn new(dir: PathBuf, what: &'static str) -> Pager<T> {
        Pager {
            inner: RefCell::new(Pages {
                pages: Vec::new(),
                len: 0,
                resident: Vec::new(),
                limit: usize::MAX,
                clock: 0,
                file: None,
                dir,
                what,
                error: None,
                buf: Vec::new(),
                written: 0,
            }),
        }
    }

    /// Bytes of one page in memory.
    pub(crate) const fn page_bytes() -> usize {
        Self::PER_PAGE * std::mem::size_of::<T>()
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.inner.borrow().len
    }

    /// Record `i` (which must be below [`Pager::len`]).
    pub(crate) fn get(&self, i: usize) -> T {
        let mut p = self.inner.borrow_mut();
        p.items(i >> T::PAGE_SHIFT, false)[i & Self::MASK]
    }

    /// Record `i`, to change.
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.inner.get_mut().items(i >> T::PAGE_SHIFT, true)[i & Self::MASK]
    }

    /// Calls `f` with records `start..start + len`, which must lie in one page.
    pub(crate) fn with_slice<R>(&self, start: usize, len: usize, f: impl FnOnce(&[T]) -> R) -> R {
        if len == 0 {
            return f(&[]);
        }
        let mut p = self.inner.borrow_mut();
        let o = start & Self::MASK;
        f(&p.items(start >> T::PAGE_SHIFT, false)[o..o + len])
    }

    /// Appends one record; returns its index.
    pub(crate) fn push(&mut self, item: T) -> usize {
        let i = self.len();
        self.push_slice(&[item]);
        i
    }

    /// Appends `items`, which fit in what is left of the last page ([`Pager::room`]); returns
    /// the index of the first.
    pub(crate) fn push_slice(&mut self, items: &[T]) -> usize {
        let start = self.len();
        debug_assert!(items.len() <= Self::PER_PAGE - (start & Self::MASK));
        let p = self.grow(items.len());
        let o = start & Self::MASK;
        p.items(start >> T::PAGE_SHIFT, true)[o..o + items.len()].copy_from_slice(items);
        start
    }

    /// Appends [`Record::LOST`] records up to `len` records in all (a table filled at random).
    pub(crate) fn resize(&mut self, len: usize) {
        while self.len() < len {
            let n = self.room().min(len - self.len());
            self.grow(n);
        }
    }

    /// Counts `n` more records, which fit in the last page or start a new one (made of
    /// [`Record::LOST`]).
    fn grow(&mut self, n: usize) -> &mut Pages<T> {
        let p = self.inner.get_mut();
        if p.len & Self::MASK == 0 {
            p.make_room(usize::MAX);
            let index = p.pages.len() as u32;
            p.pages.push(Page {
                items: Some(vec![T::LOST; Self::PER_PAGE].into_boxed_slice()),
                used: 0,
                dirty: true,
            });
            p.resident.push(index);
        }
        p.len += n;
        p
    }

    /// Records that still fit in the last page.
    pub(crate) fn room(&self) -> usize {
        let len = self.len();
        if len & Self::MASK == 0 {
            Self::PER_PAGE
        } else {
            Self::PER_PAGE - (len & Self::MASK)
        }
    }

    /// Leaves the rest of the last page unused, so that the next push starts a page.
    pub(crate) fn skip_to_next_page(&mut self) {
        let p = self.inner.get_mut();
        p.len = p.len.next_multiple_of(Self::PER_PAGE);
    }

    /// Moves the temporary file, if one is ever made, to `dir` (no effect once it exists).
    pub(crate) fn set_dir(&mut self, dir: PathBuf) {
        self.inner.get_mut().dir = dir;
    }

    /// Keeps at most `bytes` of pages in memory from now on (at least a few pages), writing
    /// the least recently used ones out at once if there are more.
    pub(crate) fn set_limit(&mut self, bytes: usize) {
        let p = self.inner.get_mut();
        p.limit = (bytes / Self::page_bytes()).max(MIN_PAGES);
        p.make_room(usize::MAX);
    }

    /// Bytes held in memory.
    pub(crate) fn heap_bytes(&self) -> usize {
        let p = self.inner.borrow();
        p.resident.len() * Self::page_bytes()
            + p.pages.capacity() * std::mem::size_of::<Page<T>>()
            + p.resident.capacity() * 4
            + p.buf.capacity()
    }

    /// Bytes in memory if every page were: what the records need without paging.
    pub(crate) fn total_bytes(&self) -> usize {
        self.inner.borrow().pages.len() * Self::page_bytes()
    }

    /// Bytes written to the temporary file, in all.
    pub(crate) fn paged_out(&self) -> u64 {
        self.inner.borrow().written * (Self::PER_PAGE * T::SIZE) as u64
    }

    /// The first I/O error of paging, if one happened since the last call.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.inner.get_mut().error.take()
    }
}

impl<T: Record> Pages<T> {
    /// Page `page`'s records, read back first if it is out.
    fn items(&mut self, page: usize, change: bool) -> &mut [T] {
        self.clock += 1;
        if self.pages[page].items.is_none() {
            self.make_room(page);
            let items = self.read(page);
            self.pages[page].items = Some(items);
            self.resident.push(page as u32);
        }
        let clock = self.clock;
        let p = &mut self.pages[page];
        p.used = clock;
        p.dirty |= change;
        p.items.get_or_insert_with(Box::default)
    }

    /// Writes out least recently used pages (never `keep`) until one more fits the limit.
    fn make_room(&mut self, keep: usize) {
        while self.resident.len() >= self.limit {
            let Some((slot, &page)) = self
                .resident
                .iter()
                .enumerate()
                .filter(|&(_, &p)| p as usize != keep)
                .min_by_key(|&(_, &p)| self.pages[p as usize].used)
            else {
                return;
            };
            if self.pages[page as usize].dirty && !self.write(page as usize) {
                // Keep the page rather than lose it; the merge stops on the error.
                return;
            }
            self.pages[page as usize].items = None;
            self.resident.swap_remove(slot);
        }
    }

    fn offset(page: usize) -> u64 {
        (page * (T::SIZE << T::PAGE_SHIFT)) as u64
    }

    /// Writes page `page` to the file; `false` (and the error kept) if it cannot.
    fn write(&mut self, page: usize) -> bool {
        let Some(items) = self.pages[page].items.as_deref() else {
            return true;
        };
        self.buf.clear();
        T::encode(items, &mut self.buf);
        let result = match &self.file {
            Some(f) => Ok(f),
            None => tempfile::tempfile_in(&self.dir).map(|f| &*self.file.insert(f)),
        }
        .and_then(|f| f.write_all_at(&self.buf, Self::offset(page)));
        match result {
            Ok(()) => {
                self.pages[page].dirty = false;
                self.written += 1;
                true
            }
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Page `page`'s records from the file.
    fn read(&mut self, page: usize) -> Box<[T]> {
        let mut items = vec![T::LOST; 1 << T::PAGE_SHIFT].into_boxed_slice();
        self.buf.resize(T::SIZE << T::PAGE_SHIFT, 0);
        let result = match &self.file {
            Some(f) => f.read_exact_at(&mut self.buf, Self::offset(page)),
            None => Err(std::io::Error::other("the page was never written")),
        };
        match result {
            Ok(()) => T::decode(&self.buf, &mut items),
            Err(e) => self.fail(e),
        }
        items
    }

    fn fail(&mut self, e: std::io::Error) {
        if self.error.is_none() {
            self.error = Some(Error::io(self.what, &self.dir, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Pair(u32, u32);

    impl Record for Pair {
        const PAGE_SHIFT: u32 = 3;
        const SIZE: usize = 8;
        const LOST: Pair = Pair(u32::MAX, 0);

        fn encode(items: &[Pair], out: &mut Vec<u8>) {
            for p in items {
                out.extend_from_slice(&p.0.to_le_bytes());
                out.extend_from_slice(&p.1.to_le_bytes());
            }
        }

        fn decode(bytes: &[u8], items: &mut [Pair]) {
            for (p, b) in items.iter_mut().zip(bytes.chunks_exact(8)) {
                let word = |r: std::ops::Range<usize>| {
                    u32::from_le_bytes(b[r].try_into().unwrap_or_default())
                };
                *p = Pair(word(0..4), word(4..8));
            }
        }
    }

    #[test]
    fn pages_out_and_back_without_losing_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pager::<Pair>::new(dir.path().into(), "test pages");
        p.set_limit(0); // MIN_PAGES pages of 8 records
        for i in 0..1000u32 {
            assert_eq!(p.push(Pair(i, 0)), i as usize);
        }
        assert!(p.heap_bytes() < 1000 * 8);
        assert!(p.paged_out() > 0);
        // Scattered changes, then reads in another order: every page comes back as left.
        for i in (0..1000).step_by(7) {
            p.get_mut(i).1 = i as u32 * 3;
        }
        for i in (0..1000).rev() {
            let want = if i % 7 == 0 { i as u32 * 3 } else { 0 };
            assert_eq!(p.get(i), Pair(i as u32, want));
        }
        assert!(p.take_error().is_none());
        assert_eq!(p.len(), 1000);
    }

    #[test]
    fn below_the_limit_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pager::<u8>::new(dir.path().into(), "test names");
        let at = p.push_slice(b"hello");
        assert_eq!(p.room(), (1 << 16) - 5);
        p.skip_to_next_page();
        let next = p.push_slice(b"world");
        assert_eq!(next, 1 << 16);
        assert_eq!(p.with_slice(at, 5, |s| s.to_vec()), b"hello");
        assert_eq!(p.with_slice(next, 5, |s| s.to_vec()), b"world");
        assert_eq!(p.paged_out(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_page_that_cannot_be_written_stays_and_the_error_is_kept() {
        let mut p = Pager::<Pair>::new("/nonexistent/ocirender-pager".into(), "test pages");
        p.set_limit(0);
        for i in 0..100u32 {
            p.push(Pair(i, i));
        }
        let e = p.take_error().expect("the pages could not go out");
        assert!(e.to_string().contains("test pages"), "{e}");
        // Nothing was lost: the pages stayed in memory.
        assert!((0..100).all(|i| p.get(i) == Pair(i as u32, i as u32)));
    }
}
