//! Tuning of the C allocator the binary links (glibc only; musl's static build needs none).
//!
//! glibc serves blocks of at least its mmap threshold from fresh mappings, which go back to
//! the kernel when freed, and everything smaller from its heaps, which keep freed memory. The
//! threshold starts at 128 KiB but rises to the size of every mapped block freed (up to
//! 32 MiB), so once a conversion has grown and freed a few large tables (hash table shards,
//! a doubled vector), the pages and buffers of the memory budget come from the heaps, and
//! what they free stays resident for the next phase to add to: at ten million files, 387 MiB
//! of peak RSS, and 356 with the threshold fixed (BENCHMARKS.md). A fixed threshold keeps
//! large blocks mapped.

/// Blocks from this size on are mapped and unmapped on their own: above the decoded-layer
/// chunks (256 KiB, allocated all the time: mapping each cost 5 % more CPU on the real image),
/// the data blocks and the pages of the path table (128 KiB); below the hash table shards and
/// spill buffers.
const MMAP_THRESHOLD: i32 = (256 + 4) << 10;

/// Fixes glibc's mmap threshold (and so turns its dynamic adjustment off).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn tune() {
    // SAFETY: `mallopt` only sets a parameter of the allocator; it is called before any
    // other thread exists, and a refusal (return 0) leaves the default behaviour.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other C libraries need no tuning.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn tune() {
    let _ = MMAP_THRESHOLD;
}
