//! Acceptance (issue 2, item 1): backup then restore keeps every kind of entry and its metadata.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn rich_tree_round_trips_with_metadata() {
    let tmp = tempdir();
    let (src, vault, dest) = (
        tmp.path().join("src"),
        tmp.path().join("vault"),
        tmp.path().join("dest"),
    );
    make_rich_tree(&src);
    init_vault(&vault);
    let out = ok(&[
        "backup",
        vault.to_str().unwrap(),
        "rich",
        src.to_str().unwrap(),
    ]);
    assert!(out.contains("created point rich/"), "{out}");
    ok(&[
        "restore",
        vault.to_str().unwrap(),
        "rich",
        dest.to_str().unwrap(),
    ]);
    assert_diff_clean(&src, &dest);
    assert_same_tree(&src, &dest);
    // Sparse files stay sparse: 50 MB apparent, a few KiB allocated.
    let md = std::fs::metadata(dest.join("sparse")).unwrap();
    assert_eq!(md.len(), 50 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "sparse file restored with {} blocks",
        md.blocks()
    );
    // The root directory's own metadata comes back too.
    let (a, b) = (
        std::fs::metadata(&src).unwrap(),
        std::fs::metadata(&dest).unwrap(),
    );
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
}

#[test]
fn restore_of_a_sub_path_and_of_an_older_point() {
    let tmp = tempdir();
    let (src, vault) = (tmp.path().join("src"), tmp.path().join("vault"));
    let v = vault.to_str().unwrap();
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/passwd"), b"root:x:0:0\n").unwrap();
    init_vault(&vault);
    let first = ok(&["backup", v, "web01", src.to_str().unwrap()]);
    let first = first
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("created point ")
        .to_string();
    std::fs::write(src.join("etc/passwd"), b"root:x:0:0\nuser:x:1000:1000\n").unwrap();
    ok(&["backup", v, "web01", src.to_str().unwrap()]);

    let d1 = tmp.path().join("d1");
    ok(&[
        "restore",
        v,
        &first,
        d1.to_str().unwrap(),
        "--path",
        "etc/passwd",
    ]);
    assert_eq!(std::fs::read(d1.join("passwd")).unwrap(), b"root:x:0:0\n");
    let d2 = tmp.path().join("d2");
    ok(&["restore", v, "web01", d2.to_str().unwrap(), "--path", "etc"]);
    assert_eq!(
        std::fs::read(d2.join("passwd")).unwrap(),
        b"root:x:0:0\nuser:x:1000:1000\n"
    );
}

#[test]
fn unchanged_second_backup_reads_nothing() {
    let tmp = tempdir();
    let (src, vault) = (tmp.path().join("src"), tmp.path().join("vault"));
    let v = vault.to_str().unwrap();
    for i in 0..50 {
        std::fs::create_dir_all(src.join(format!("d{}", i % 5))).unwrap();
        std::fs::write(
            src.join(format!("d{}/f{i}", i % 5)),
            noise(20_000 + i * 100, i as u64),
        )
        .unwrap();
    }
    init_vault(&vault);
    let a = ok(&["backup", v, "it", src.to_str().unwrap()]);
    assert!(a.contains("50 files (0 unchanged)"), "{a}");
    let b = ok(&["backup", v, "it", src.to_str().unwrap()]);
    assert!(b.contains("50 files (50 unchanged)"), "{b}");
    assert!(b.contains(" nothing read"), "{b}");
    // Touch one file: only it is read again.
    std::fs::write(src.join("d1/f1"), b"changed").unwrap();
    let c = ok(&["backup", v, "it", src.to_str().unwrap()]);
    assert!(c.contains("50 files (49 unchanged)"), "{c}");
}

/// Review finding: an empty directory's tree and a one-byte NUL file must not share a blob.
#[test]
fn tree_and_data_blobs_never_collide() {
    let tmp = tempdir();
    let (a, b, vault) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("vault"),
    );
    let v = vault.to_str().unwrap();
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("nul"), [0u8]).unwrap();
    std::fs::create_dir_all(b.join("empty")).unwrap();
    init_vault(&vault);
    ok(&["backup", v, "a", a.to_str().unwrap()]);
    ok(&["backup", v, "b", b.to_str().unwrap()]);
    ok(&["check", v, "--read-data"]);
    for (item, src) in [("a", &a), ("b", &b)] {
        let dest = tmp.path().join(format!("r-{item}"));
        ok(&["restore", v, item, dest.to_str().unwrap()]);
        assert_same_tree(src, &dest);
    }
}

/// Review finding: a symlink already in DEST must not redirect a restore outside DEST, and a
/// second restore into the same DEST (hard links included) must succeed.
#[test]
fn restore_never_follows_symlinks_in_dest_and_can_repeat() {
    let tmp = tempdir();
    let (src, vault, dest, outside) = (
        tmp.path().join("src"),
        tmp.path().join("vault"),
        tmp.path().join("dest"),
        tmp.path().join("outside"),
    );
    let v = vault.to_str().unwrap();
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("x")).unwrap();
    std::fs::write(src.join("f"), b"linked").unwrap();
    std::fs::hard_link(src.join("f"), src.join("g")).unwrap();
    init_vault(&vault);
    let first = ok(&["backup", v, "it", src.to_str().unwrap()]);
    let first = first
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("created point ")
        .to_string();
    std::fs::remove_file(src.join("x")).unwrap();
    std::fs::create_dir_all(src.join("x")).unwrap();
    std::fs::write(src.join("x/planted"), b"must stay inside DEST").unwrap();
    ok(&["backup", v, "it", src.to_str().unwrap()]);
    ok(&["restore", v, &first, dest.to_str().unwrap()]);
    ok(&["restore", v, "it", dest.to_str().unwrap(), "--overwrite"]);
    assert!(
        !outside.join("planted").exists(),
        "restore wrote through a symlink in DEST"
    );
    assert_same_tree(&src, &dest);
    ok(&["restore", v, "it", dest.to_str().unwrap(), "--overwrite"]);
    assert_same_tree(&src, &dest);
}
