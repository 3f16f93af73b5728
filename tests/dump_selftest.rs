//! The dump helper itself: it must see every attribute the other tests compare.

use std::os::unix::fs::{symlink, PermissionsExt};

use crate::support::dump::{DumpOptions, Tree};

#[test]
fn dump_reads_types_modes_links() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir(r.join("d")).unwrap();
    std::fs::write(r.join("d/f"), b"hello").unwrap();
    std::fs::set_permissions(r.join("d/f"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(r.join("d/f"), r.join("g")).unwrap();
    symlink("d/f", r.join("s")).unwrap();
    let tree = Tree::from_dir(r);
    let dump = tree.dump(DumpOptions {
        mtime: false,
        ownership: false,
        ..Default::default()
    });
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines[1], "/d dir 0755");
    assert_eq!(
        lines[2],
        "/d/f file 4755 size=5 sha256=2cf24dba5fb0a30e link=/d/f"
    );
    assert_eq!(
        lines[3],
        "/g file 4755 size=5 sha256=2cf24dba5fb0a30e link=/d/f"
    );
    assert_eq!(lines[4], "/s symlink 0777 -> d/f");
}
