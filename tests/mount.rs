//! Mount acceptance tests (issue 3): real FUSE mounts of real vaults through the `vaultfs`
//! binary. Every test has its own vault and mount point in a private temp dir, and holds a
//! [`Mount`] guard that unmounts and makes sure the daemon is gone, also when the test panics.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::mnt::*;
use common::*;

const ITEM: &str = "home";

// ---------------------------------------------------------------------------------------------
// helpers (the generic ones live in tests/common/mnt.rs)

/// The operation must fail with exactly EROFS.
#[track_caller]
fn assert_erofs<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) {
    match r {
        Ok(v) => panic!("{what} succeeded ({v:?}); it must fail with EROFS"),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EROFS),
            "{what} must fail with EROFS, got: {e}"
        ),
    }
}

/// Opening for writing must fail with EROFS, or, since the kernel opens files without asking
/// the daemon (zero-message open, DESIGN.md §6.1), the first write through the open file must.
#[track_caller]
fn assert_write_erofs(what: &str, r: std::io::Result<fs::File>) {
    use std::io::Write;
    match r {
        Ok(mut f) => assert_erofs(&format!("write after {what}"), f.write_all(b"x")),
        Err(e) => assert_erofs(what, Err::<(), _>(e)),
    }
}

/// The shell command must fail and say "Read-only file system".
#[track_caller]
fn assert_sh_erofs(cmd: &str) {
    let out = Command::new("bash").arg("-c").arg(cmd).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Read-only file system"),
        "`{cmd}` must fail with 'Read-only file system' ({:?}): {stderr}",
        out.status.code()
    );
}

/// Every kind of change inside a point directory must fail with EROFS.
fn assert_point_is_read_only(point: &Path) {
    let p = |rel: &str| point.join(rel);
    let what = |op: &str, rel: &str| format!("{op} {}", p(rel).display());

    assert_erofs(&what("create", "new-file"), fs::File::create(p("new-file")));
    assert_erofs(
        &what("create", "a/b/new-file"),
        fs::File::create(p("a/b/new-file")),
    );
    assert_erofs(
        &what("create (O_EXCL)", "new-file2"),
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p("new-file2")),
    );
    assert_write_erofs(
        &what("open O_WRONLY", "small.txt"),
        OpenOptions::new().write(true).open(p("small.txt")),
    );
    assert_write_erofs(
        &what("open O_RDWR", "big.bin"),
        OpenOptions::new().read(true).write(true).open(p("big.bin")),
    );
    assert_write_erofs(
        &what("open O_APPEND", "text/lorem.txt"),
        OpenOptions::new().append(true).open(p("text/lorem.txt")),
    );
    assert_erofs(
        &what("open O_WRONLY|O_TRUNC", "small.txt"),
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(p("small.txt")),
    );
    assert_erofs(
        &what("open O_RDONLY|O_TRUNC", "small.txt"),
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_TRUNC)
            .open(p("small.txt")),
    );
    assert_erofs(
        &what("unlink", "small.txt"),
        fs::remove_file(p("small.txt")),
    );
    assert_erofs(
        &what("unlink", "link-to-small"),
        fs::remove_file(p("link-to-small")),
    );
    assert_erofs(&what("rmdir", "a/b/c/d"), fs::remove_dir(p("a/b/c/d")));
    assert_erofs(
        &what("rename", "small.txt"),
        fs::rename(p("small.txt"), p("renamed.txt")),
    );
    assert_erofs(
        &what("rename over an existing file", "small.txt"),
        fs::rename(p("small.txt"), p("text/lorem.txt")),
    );
    assert_erofs(
        &what("rename a dir", "a"),
        fs::rename(p("a"), p("with space/a")),
    );
    assert_erofs(&what("mkdir", "new-dir"), fs::create_dir(p("new-dir")));
    assert_erofs(
        &what("mkdir", "a/b/new-dir"),
        fs::create_dir(p("a/b/new-dir")),
    );
    assert_erofs(
        &what("chmod", "small.txt"),
        fs::set_permissions(
            p("small.txt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        ),
    );
    assert_erofs(
        &what("chmod", "a"),
        fs::set_permissions(p("a"), std::os::unix::fs::PermissionsExt::from_mode(0o700)),
    );
    assert_erofs(
        &what("chown", "small.txt"),
        std::os::unix::fs::chown(p("small.txt"), Some(1), Some(1)),
    );
    assert_erofs(
        &what("lchown", "dangling"),
        std::os::unix::fs::lchown(p("dangling"), Some(1), Some(1)),
    );
    let file = cpath(&p("small.txt"));
    // SAFETY: valid NUL-terminated path, name and value buffers.
    let r = unsafe {
        libc::setxattr(
            file.as_ptr(),
            c"user.new".as_ptr(),
            b"x".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_erofs(&what("setxattr", "small.txt"), libc_result(r));
    // SAFETY: as above.
    let r = unsafe { libc::removexattr(file.as_ptr(), c"user.color".as_ptr()) };
    assert_erofs(&what("removexattr", "small.txt"), libc_result(r));
    // SAFETY: valid NUL-terminated path.
    let r = unsafe { libc::truncate(cpath(&p("big.bin")).as_ptr(), 0) };
    assert_erofs(&what("truncate", "big.bin"), libc_result(r));
    // SAFETY: valid NUL-terminated path; NULL times means "now".
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            file.as_ptr(),
            std::ptr::null(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_erofs(&what("utimensat", "small.txt"), libc_result(r));
    // SAFETY: valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(cpath(&p("new-fifo")).as_ptr(), 0o644) };
    assert_erofs(&what("mkfifo", "new-fifo"), libc_result(r));
    assert_erofs(
        &what("link", "small.txt"),
        fs::hard_link(p("small.txt"), p("new-hardlink")),
    );
    assert_erofs(
        &what("symlink", "new-symlink"),
        std::os::unix::fs::symlink("small.txt", p("new-symlink")),
    );

    // The same through coreutils and attr, which must report it.
    let q = |rel: &str| format!("'{}'", p(rel).display());
    assert_sh_erofs(&format!("touch {}", q("small.txt")));
    assert_sh_erofs(&format!("touch {}", q("brand-new")));
    assert_sh_erofs(&format!("echo x >> {}", q("small.txt")));
    assert_sh_erofs(&format!("rm -f {}", q("empty")));
    assert_sh_erofs(&format!("mkdir {}", q("mkdir-new")));
    assert_sh_erofs(&format!("truncate -s 0 {}", q("small.txt")));
    assert_sh_erofs(&format!("ln -s target {}", q("ln-new")));
    assert_sh_erofs(&format!("ln {} {}", q("small.txt"), q("ln-hard")));
    assert_sh_erofs(&format!("chmod 600 {}", q("small.txt")));
    assert_sh_erofs(&format!("chown 1:1 {}", q("small.txt")));
    assert_sh_erofs(&format!("setfattr -n user.t -v 1 {}", q("small.txt")));
}

/// Wait (≤ 3 s: listings live 1 s in the kernel) until `points/ITEM` lists exactly `live`
/// (plus `latest` when non-empty), `.deleted/ITEM` lists exactly `deleted`, and `latest` points
/// to the last of `live`.
#[track_caller]
fn assert_points_become(m: &Mount, item: &str, live: &[&str], deleted: &[&str]) {
    let mut want_live: Vec<String> = live.iter().map(|s| s.to_string()).collect();
    if !live.is_empty() {
        want_live.push("latest".into());
    }
    want_live.sort();
    let mut want_deleted: Vec<String> = deleted.iter().map(|s| s.to_string()).collect();
    want_deleted.sort();
    let want_latest = live.last().map(|s| s.to_string());
    let state = || {
        (
            names_in(&m.path(&format!("points/{item}"))),
            names_in(&m.path(&format!(".deleted/{item}"))),
            latest_target(m, item),
        )
    };
    let want = (want_live, want_deleted, want_latest);
    let reached = wait_until(Duration::from_secs(30), || state() == want);
    assert!(
        reached,
        "(points, .deleted, latest) should become {want:?}, is {:?}",
        state()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. what a point shows

#[test]
fn point_shows_the_tree_with_its_metadata() {
    let f = Fixture::new();
    make_rich_tree(&f.src);
    let point = backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);

    // The layout: incoming, points and versions at the top, .deleted hidden but there.
    assert_eq!(names_in(&f.mnt), ["incoming", "points", "versions"]);
    assert_eq!(names_in(&m.path("points")), [ITEM]);
    assert_eq!(
        names_in(&m.path(&format!("points/{ITEM}"))),
        [point.as_str(), "latest"]
    );
    assert_eq!(latest_target(&m, ITEM).as_deref(), Some(point.as_str()));
    assert!(
        fs::symlink_metadata(m.path(&format!("points/{ITEM}/latest")))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let latest = m.latest(ITEM);
    assert_diff_clean(&f.src, &latest);
    assert_same_tree(&f.src, &latest);
    let direct = m.path(&format!("points/{ITEM}/{point}"));
    assert_same_tree(&f.src, &direct);

    // The same field by field for the entries that matter most.
    for rel in [
        "empty",
        "small.txt",
        "big.bin",
        "sparse",
        "text",
        "text/lorem.txt",
        "a/b",
        "a/b/c",
        "link-to-small",
        "dangling",
        "fifo",
        "a/hardlink-to-small",
    ] {
        let (a, b) = (
            fs::symlink_metadata(f.src.join(rel)).unwrap(),
            fs::symlink_metadata(latest.join(rel)).unwrap(),
        );
        assert_eq!(a.mode(), b.mode(), "mode of {rel}");
        assert_eq!((a.uid(), a.gid()), (b.uid(), b.gid()), "owner of {rel}");
        if !a.is_dir() {
            assert_eq!(
                (a.mtime(), a.mtime_nsec()),
                (b.mtime(), b.mtime_nsec()),
                "mtime of {rel}"
            );
            assert_eq!(a.len(), b.len(), "size of {rel}");
            assert_eq!(a.nlink(), b.nlink(), "link count of {rel}");
        }
    }
    assert_eq!(
        fs::metadata(latest.join("big.bin")).unwrap().len(),
        11 << 20
    );
    assert_eq!(
        fs::metadata(latest.join("small.txt")).unwrap().mode() & 0o7777,
        0o644
    );
    assert_eq!(
        fs::metadata(latest.join("text/lorem.txt")).unwrap().mode() & 0o7777,
        0o4755
    );
    let big = fs::metadata(latest.join("big.bin")).unwrap();
    assert_eq!((big.uid(), big.gid()), (1234, 5678));
    let small = fs::metadata(latest.join("small.txt")).unwrap();
    assert_eq!(small.mtime_nsec(), 123_456_789);

    // Hard links: link count 3 and one inode number within the point.
    let inos: Vec<u64> = ["small.txt", "a/hardlink-to-small", "text/second-hardlink"]
        .iter()
        .map(|rel| {
            let md = fs::symlink_metadata(latest.join(rel)).unwrap();
            assert_eq!(md.nlink(), 3, "link count of {rel}");
            md.ino()
        })
        .collect();
    assert!(
        inos.iter().all(|i| *i == inos[0]),
        "hard links differ: {inos:?}"
    );
    assert_ne!(
        fs::metadata(latest.join("big.bin")).unwrap().ino(),
        inos[0],
        "an unrelated file shares the hard links' inode"
    );
    assert_eq!(fs::metadata(latest.join("big.bin")).unwrap().nlink(), 1);

    // Symlinks keep their targets; the dangling one stays dangling.
    assert_eq!(
        fs::read_link(latest.join("link-to-small")).unwrap(),
        Path::new("small.txt")
    );
    assert_eq!(
        fs::read_link(latest.join("dangling")).unwrap(),
        Path::new("does/not/exist")
    );
    assert_eq!(
        fs::read(latest.join("link-to-small")).unwrap(),
        b"hello vault\n"
    );

    // Xattrs, as getfattr shows them.
    let color = sh(&format!(
        "getfattr --only-values -n user.color '{}'",
        latest.join("small.txt").display()
    ));
    assert_eq!(color, "blue");
    let bin = sh(&format!(
        "getfattr -e hex -n user.bin '{}'",
        latest.join("text").display()
    ));
    assert!(bin.contains("user.bin=0x00ff10"), "{bin}");
    assert!(xattrs(&latest.join("big.bin")).is_empty());

    // Directories keep their mtime (assert_same_tree leaves it out) and have the usual link
    // count; readdir's inode numbers are stat's.
    for p in walk(&f.src) {
        let rel = p.strip_prefix(&f.src).unwrap();
        let (a, b) = (
            fs::symlink_metadata(&p).unwrap(),
            fs::symlink_metadata(latest.join(rel)).unwrap(),
        );
        if a.is_dir() {
            assert_eq!(
                (a.mtime(), a.mtime_nsec()),
                (b.mtime(), b.mtime_nsec()),
                "mtime of dir {}",
                rel.display()
            );
            assert_eq!(a.nlink(), b.nlink(), "link count of dir {}", rel.display());
        }
    }
    for dir in [latest.clone(), latest.join("a"), latest.join("text")] {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            assert_eq!(
                std::os::unix::fs::DirEntryExt::ino(&e),
                fs::symlink_metadata(e.path()).unwrap().ino(),
                "readdir and stat disagree on the inode of {}",
                e.path().display()
            );
        }
    }
    // statfs answers (df, rsync and tar ask for it).
    sh(&format!(
        "df '{}' && stat -f '{}'",
        f.mnt.display(),
        latest.display()
    ));
}

// ---------------------------------------------------------------------------------------------
// 2. copying out with the usual tools

#[test]
fn cp_tar_and_rsync_out_of_a_point_reproduce_the_tree() {
    let f = Fixture::new();
    make_rich_tree(&f.src);
    backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);
    let latest = m.latest(ITEM);

    let cp = f.dir("out-cp");
    sh(&format!(
        "cp -a '{}.' '{}/'",
        latest.display(),
        cp.display()
    ));
    assert_same_tree(&f.src, &cp);

    let tar = f.dir("out-tar");
    sh(&format!(
        "tar -C '{}' --format=posix --xattrs --xattrs-include='*' -cf - . | \
         tar -C '{}' --xattrs --xattrs-include='*' --same-owner --same-permissions -xf -",
        latest.display(),
        tar.display()
    ));
    assert_same_tree(&f.src, &tar);

    let rsync = f.dir("out-rsync");
    sh(&format!(
        "rsync -aHAX '{}' '{}/'",
        latest.display(),
        rsync.display()
    ));
    assert_same_tree(&f.src, &rsync);
}

// ---------------------------------------------------------------------------------------------
// 3. read-only areas

#[test]
fn writes_into_points_and_deleted_fail_with_erofs() {
    let f = Fixture::new();
    make_rich_tree(&f.src);
    let old = backup(&f.vault, ITEM, &f.src);
    let new = backup(&f.vault, ITEM, &f.src);
    ok(&["delete", s(&f.vault), &format!("{ITEM}/{old}")]);
    let m = Mount::new(&f.vault, &f.mnt);
    let live = m.path(&format!("points/{ITEM}/{new}"));
    let deleted = m.path(&format!(".deleted/{ITEM}/{old}"));
    assert_same_tree(&f.src, &live);
    assert_same_tree(&f.src, &deleted);

    assert_point_is_read_only(&live);
    assert_point_is_read_only(&deleted);
    assert_point_is_read_only(&m.latest(ITEM));

    // The listings above the points.
    assert_erofs("mkdir MNT/new", fs::create_dir(m.path("new")));
    assert_erofs("create MNT/new-file", fs::File::create(m.path("new-file")));
    assert_erofs("mkdir MNT/points/new", fs::create_dir(m.path("points/new")));
    assert_erofs(
        "mkdir MNT/.deleted/new",
        fs::create_dir(m.path(".deleted/new")),
    );
    assert_erofs(
        "create in points/ITEM",
        fs::File::create(m.path(&format!("points/{ITEM}/new-file"))),
    );
    assert_erofs(
        "mkdir in points/ITEM",
        fs::create_dir(m.path(&format!("points/{ITEM}/new-point"))),
    );
    assert_erofs(
        "symlink in .deleted/ITEM",
        std::os::unix::fs::symlink(new.as_str(), m.path(&format!(".deleted/{ITEM}/ln"))),
    );
    assert_erofs(
        "rename a point within points/ITEM",
        fs::rename(
            m.path(&format!("points/{ITEM}/{new}")),
            m.path(&format!("points/{ITEM}/renamed")),
        ),
    );
    assert_erofs(
        "rename a point into .deleted under another name",
        fs::rename(
            m.path(&format!("points/{ITEM}/{new}")),
            m.path(&format!(".deleted/{ITEM}/renamed")),
        ),
    );
    assert_erofs(
        "rmdir a point",
        fs::remove_dir(m.path(&format!("points/{ITEM}/{new}"))),
    );
    assert_erofs(
        "rmdir a deleted point",
        fs::remove_dir(m.path(&format!(".deleted/{ITEM}/{old}"))),
    );
    assert_erofs(
        "unlink latest",
        fs::remove_file(m.path(&format!("points/{ITEM}/latest"))),
    );
    assert_erofs(
        "rmdir points/ITEM",
        fs::remove_dir(m.path(&format!("points/{ITEM}"))),
    );
    assert_erofs(
        "rename points/ITEM",
        fs::rename(m.path(&format!("points/{ITEM}")), m.path("points/other")),
    );
    assert_erofs("rmdir MNT/points", fs::remove_dir(m.path("points")));

    // Nothing changed.
    assert_points_become(&m, ITEM, &[&new], &[&old]);
    assert_same_tree(&f.src, &live);
    assert_same_tree(&f.src, &deleted);
    assert_eq!(names_in(&f.mnt), ["incoming", "points", "versions"]);
}

// ---------------------------------------------------------------------------------------------
// 4. soft delete and undelete

#[test]
fn soft_delete_and_undelete_through_mv_and_the_cli() {
    let f = Fixture::new();
    let (src1, src2) = (f.root.join("src1"), f.root.join("src2"));
    make_small_tree(&src1, 1);
    make_small_tree(&src2, 2);
    let p1 = backup(&f.vault, ITEM, &src1);
    let p2 = backup(&f.vault, ITEM, &src2);
    assert!(p1 < p2, "point names sort by age: {p1} {p2}");
    let m = Mount::new(&f.vault, &f.mnt);
    assert_points_become(&m, ITEM, &[&p1, &p2], &[]);

    // .deleted is hidden from `ls -a` but reachable.
    let ls_a = sh(&format!("ls -a '{}'", f.mnt.display()));
    assert!(!ls_a.contains(".deleted"), "ls -a shows .deleted: {ls_a}");
    assert_eq!(
        ls_a.split_whitespace().collect::<Vec<_>>(),
        [".", "..", "incoming", "points", "versions"]
    );
    let ls_deleted = sh(&format!("ls '{}/.deleted'", f.mnt.display()));
    assert_eq!(ls_deleted.trim(), ITEM);
    assert!(fs::metadata(m.path(".deleted")).unwrap().is_dir());

    let deleted_rows = |point: &str| -> (String, Vec<String>) {
        let out = ok(&["points", s(&f.vault), "--deleted"]);
        let rows = out
            .lines()
            .filter(|l| l.contains(point))
            .map(String::from)
            .collect();
        (out, rows)
    };

    // Soft delete with mv.
    sh(&format!(
        "mv '{}' '{}/'",
        m.path(&format!("points/{ITEM}/{p2}")).display(),
        m.path(&format!(".deleted/{ITEM}")).display()
    ));
    assert_points_become(&m, ITEM, &[&p1], &[&p2]);
    assert_same_tree(&src2, &m.path(&format!(".deleted/{ITEM}/{p2}")));
    assert_same_tree(&src1, &m.latest(ITEM));
    let (out, rows) = deleted_rows(&p2);
    assert!(
        out.lines().next().unwrap_or_default().contains("PURGE AT"),
        "no PURGE AT column: {out}"
    );
    assert_eq!(
        rows.len(),
        1,
        "the deleted point should be listed once: {out}"
    );
    assert!(
        !ok(&["points", s(&f.vault)]).contains(&p2),
        "a deleted point is listed as live"
    );
    let js: serde_json::Value =
        serde_json::from_str(&ok(&["points", s(&f.vault), "--deleted", "--json"])).unwrap();
    assert_eq!(js.as_array().unwrap().len(), 1, "{js}");
    assert_eq!(js[0]["point"], p2.as_str());
    assert!(js[0]["purge_at"].is_string(), "no purge_at: {js}");

    // Undelete with mv.
    sh(&format!(
        "mv '{}' '{}/'",
        m.path(&format!(".deleted/{ITEM}/{p2}")).display(),
        m.path(&format!("points/{ITEM}")).display()
    ));
    assert_points_become(&m, ITEM, &[&p1, &p2], &[]);
    assert_same_tree(&src2, &m.latest(ITEM));
    assert!(deleted_rows(&p2).1.is_empty(), "still listed as deleted");

    // Soft delete and undelete with the CLI (through the daemon).
    let out = ok(&["delete", s(&f.vault), &format!("{ITEM}/{p2}")]);
    assert!(out.contains("recoverable until"), "{out}");
    assert_points_become(&m, ITEM, &[&p1], &[&p2]);
    assert_same_tree(&src2, &m.path(&format!(".deleted/{ITEM}/{p2}")));
    assert_same_tree(&src1, &m.latest(ITEM));
    assert_eq!(deleted_rows(&p2).1.len(), 1);

    ok(&["undelete", s(&f.vault), &format!("{ITEM}/{p2}")]);
    assert_points_become(&m, ITEM, &[&p1, &p2], &[]);
    assert_same_tree(&src2, &m.latest(ITEM));
    assert_same_tree(&src2, &m.path(&format!("points/{ITEM}/{p2}")));

    // Deleting the older point leaves latest alone; deleting both removes latest.
    sh(&format!(
        "mv '{}' '{}/'",
        m.path(&format!("points/{ITEM}/{p1}")).display(),
        m.path(&format!(".deleted/{ITEM}")).display()
    ));
    assert_points_become(&m, ITEM, &[&p2], &[&p1]);
    ok(&["delete", s(&f.vault), &format!("{ITEM}/{p2}")]);
    assert_points_become(&m, ITEM, &[], &[&p1, &p2]);
    assert_same_tree(&src1, &m.path(&format!(".deleted/{ITEM}/{p1}")));
    ok(&["undelete", s(&f.vault), &format!("{ITEM}/{p1}")]);
    assert_points_become(&m, ITEM, &[&p1], &[&p2]);
}

// ---------------------------------------------------------------------------------------------
// 5. damaged data

/// Write files `names` of pseudo-random bytes into `dir`: the i-th has `size(i)` bytes and seed
/// `seed + i`. Returns the names.
fn noise_files(
    dir: &Path,
    names: impl Iterator<Item = String>,
    seed: u64,
    size: impl Fn(usize) -> usize,
) -> Vec<String> {
    let names: Vec<String> = names.collect();
    for (i, n) in names.iter().enumerate() {
        fs::write(dir.join(n), noise(size(i), seed + i as u64)).unwrap();
    }
    names
}

/// Read every file of `names` from `dir` in order: each either matches its copy in `src` or
/// fails with EIO; returns those that failed.
fn unreadable(dir: &Path, src: &Path, names: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    for n in names {
        match fs::read(dir.join(n)) {
            Ok(data) => assert!(
                data == fs::read(src.join(n)).unwrap(),
                "{n} read without error but with wrong content"
            ),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "reading {n}: {e}");
                bad.push(n.clone());
            }
        }
    }
    bad
}

#[test]
fn flipped_byte_in_a_pack_is_eio_for_that_file_only() {
    let f = Fixture::with_init(|v| init_vault_with(v, &["--pack-size-mib", "1"]));
    fs::create_dir_all(&f.src).unwrap();
    let names = noise_files(&f.src, (1..=6).map(|i| format!("file{i}.bin")), 100, |_| {
        3 << 20
    });
    let point = backup(&f.vault, ITEM, &f.src);

    // The largest pack holds file data only (trees are small and written last).
    let mut packs: Vec<(u64, PathBuf)> = walk(&f.vault.join("packs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .map(|p| (fs::metadata(&p).unwrap().len(), p))
        .collect();
    packs.sort();
    assert!(packs.len() >= 6, "expected several packs: {packs:?}");
    let (len, victim) = packs.last().unwrap().clone();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[len as usize / 2] ^= 0x40;
    fs::write(&victim, bytes).unwrap();

    let m = Mount::new(&f.vault, &f.mnt);
    let dir = m.path(&format!("points/{ITEM}/{point}"));
    let bad = unreadable(&dir, &f.src, &names);
    assert_eq!(
        bad.len(),
        1,
        "exactly one file should meet the damaged chunk: {bad:?}"
    );
    let bad = &bad[0];

    // The daemon is still up and answers; the damage stays an error, never data.
    assert!(alive(m.pid()), "the daemon died after EIO");
    assert_eq!(names_in(&dir), names);
    sh(&format!("ls -l '{}' '{}'", dir.display(), f.mnt.display()));
    let again = fs::read(dir.join(bad));
    assert_eq!(
        again.as_ref().map_err(|e| e.raw_os_error()).err(),
        Some(Some(libc::EIO)),
        "second read of {bad}"
    );
    let cat = Command::new("cat").arg(dir.join(bad)).output().unwrap();
    assert!(
        !cat.status.success()
            && String::from_utf8_lossy(&cat.stderr).contains("Input/output error"),
        "cat of the damaged file: {:?}",
        String::from_utf8_lossy(&cat.stderr)
    );
    let good = names.iter().find(|n| *n != bad).unwrap();
    assert!(fs::read(dir.join(good)).unwrap() == fs::read(f.src.join(good)).unwrap());
    assert!(alive(m.pid()), "the daemon died after EIO");

    // The log names the point, but neither the item nor the file: it is plaintext under
    // VAULT/ (issue 13); `check` names the file.
    let log = f.vault.join("daemon.log");
    let logged = wait_until(Duration::from_secs(30), || {
        fs::read_to_string(&log)
            .is_ok_and(|t| t.lines().any(|l| l.contains("EIO") && l.contains(&point)))
    });
    // Corruption met by a read is an alert (issue 15), the one `check` raises: once, however
    // many reads met it, listed by `vaultfs alerts` (forwarded to the daemon).
    let corruption = || -> Vec<serde_json::Value> {
        let out = ok(&["alerts", s(&f.vault), "--json"]);
        let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        all.into_iter()
            .filter(|a| a["kind"] == "corruption")
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || !corruption().is_empty()),
        "no corruption alert after EIO"
    );
    let _ = fs::read(dir.join(bad));
    let alerts = corruption();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["state"], "active");
    assert_eq!(alerts[0]["item"], ITEM);
    assert!(
        alerts[0]["message"].as_str().unwrap().contains(&point),
        "{alerts:?}"
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(logged, "no EIO line naming point {point}:\n{text}");
    assert!(
        !text.contains(ITEM) && !text.contains(bad.as_str()),
        "a name in daemon.log:\n{text}"
    );
}

/// Small files are pushed into the kernel's page cache ahead of their reads (by the file
/// before them, or by the open itself): a damaged one must still read as EIO, in a
/// tar-like pass over the directory as well as when opened on its own.
#[test]
fn a_damaged_small_file_is_eio_when_its_directory_is_read_in_order() {
    let f = Fixture::with_init(|v| init_vault_with(v, &["--pack-size-mib", "1"]));
    fs::create_dir_all(&f.src).unwrap();
    let names = noise_files(&f.src, (0..200).map(|i| format!("f{i:03}")), 500, |_| {
        16 << 10
    });
    let point = backup(&f.vault, ITEM, &f.src);
    let (len, victim) = walk(&f.vault.join("packs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .map(|p| (fs::metadata(&p).unwrap().len(), p))
        .max()
        .unwrap();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[len as usize / 2] ^= 0x40;
    fs::write(&victim, bytes).unwrap();

    let m = Mount::new(&f.vault, &f.mnt);
    let dir = m.path(&format!("points/{ITEM}/{point}"));
    assert_eq!(names_in(&dir), names);
    let bad = unreadable(&dir, &f.src, &names);
    assert_eq!(bad.len(), 1, "one file holds the damaged byte: {bad:?}");
    let again = fs::read(dir.join(&bad[0]));
    assert_eq!(
        again.map_err(|e| e.raw_os_error()).err(),
        Some(Some(libc::EIO)),
        "second read of {}",
        bad[0]
    );
    assert!(alive(m.pid()));
}

/// Several readers going through the same small files at once: opens of a file being pushed
/// wait for the push, and every reader gets the right bytes.
#[test]
fn parallel_readers_of_the_same_small_files_get_the_right_bytes() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    let names = noise_files(&f.src, (0..150).map(|i| format!("s{i:03}")), 900, |i| {
        20_000 + 500 * i
    });
    let point = backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);
    let dir = m.path(&format!("points/{ITEM}/{point}"));
    let want: Vec<blake3::Hash> = names
        .iter()
        .map(|n| blake3::hash(&fs::read(f.src.join(n)).unwrap()))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..8 {
        let (dir, names, want, tx) = (dir.clone(), names.clone(), want.clone(), tx.clone());
        std::thread::spawn(move || {
            let ok = names
                .iter()
                .zip(&want)
                .all(|(n, w)| fs::read(dir.join(n)).is_ok_and(|d| blake3::hash(&d) == *w));
            let _ = tx.send(ok);
        });
    }
    for _ in 0..8 {
        let ok = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a reader hung for 60 s");
        assert!(ok, "a reader got wrong bytes or an error");
    }
    assert!(alive(m.pid()));
}

/// Pages of `file` the kernel holds (mmap + mincore: neither reads the file).
fn resident_pages(file: &fs::File, len: usize) -> usize {
    use std::os::fd::AsRawFd;
    let page = 4096;
    let pages = len.div_ceil(page);
    // SAFETY: a read-only shared mapping of an open file, unmapped before returning; mincore
    // writes one byte per page into a buffer of that many bytes.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(
            addr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        let mut vec = vec![0u8; pages];
        let r = libc::mincore(addr, len, vec.as_mut_ptr());
        let err = std::io::Error::last_os_error();
        libc::munmap(addr, len);
        assert_eq!(r, 0, "mincore: {err}");
        vec.iter().filter(|b| **b & 1 == 1).count()
    }
}

/// A file of a point read once keeps its pages in the kernel's cache across opens (the kernel
/// opens files itself, with keep-cache: DESIGN.md §6.1), so reading it again costs no
/// request; opening a big one reads nothing ahead of the reader.
#[test]
fn a_file_read_once_keeps_its_page_cache() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("big.bin"), noise(4 << 20, 41)).unwrap();
    fs::write(f.src.join("small.bin"), noise(100_000, 42)).unwrap();
    let point = backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);
    let dir = m.path(&format!("points/{ITEM}/{point}"));

    let big = fs::File::open(dir.join("big.bin")).unwrap();
    assert_eq!(resident_pages(&big, 4 << 20), 0, "big files are not pushed");
    drop(big);
    assert!(fs::read(dir.join("small.bin")).unwrap() == fs::read(f.src.join("small.bin")).unwrap());
    let reads = fuse_requests(&f.vault).get("READ").copied();
    let small = fs::File::open(dir.join("small.bin")).unwrap();
    assert_eq!(resident_pages(&small, 100_000), 100_000usize.div_ceil(4096));
    drop(small);
    for n in ["small.bin", "big.bin"] {
        assert!(fs::read(dir.join(n)).unwrap() == fs::read(f.src.join(n)).unwrap());
    }
    let requests = fuse_requests(&f.vault);
    assert!(
        requests.get("READ").copied() > reads,
        "big.bin was read: {requests:?}"
    );
    assert_eq!(
        requests.get("OPEN").copied().unwrap_or(0),
        1,
        "{requests:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. parallel readers

#[test]
fn eight_parallel_readers_get_the_right_bytes() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    let names = noise_files(&f.src, (0..8).map(|i| format!("big{i}.bin")), 1000, |i| {
        (8 + i) << 20
    });
    let point = backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);
    let dir = m.path(&format!("points/{ITEM}/{point}"));

    let barrier = std::sync::Barrier::new(names.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let (dir, src, barrier) = (&dir, &f.src, &barrier);
                scope.spawn(move || {
                    let want = blake3::hash(&fs::read(src.join(n)).unwrap());
                    let mut file = fs::File::open(dir.join(n)).unwrap();
                    barrier.wait();
                    let mut hasher = blake3::Hasher::new();
                    let mut buf = vec![0u8; 256 << 10];
                    let mut total = 0usize;
                    loop {
                        let k = file
                            .read(&mut buf)
                            .unwrap_or_else(|e| panic!("reading {n}: {e}"));
                        if k == 0 {
                            break;
                        }
                        hasher.update(&buf[..k]);
                        total += k;
                    }
                    assert_eq!(total, fs::metadata(src.join(n)).unwrap().len() as usize);
                    assert_eq!(hasher.finalize(), want, "content of {n}");
                })
            })
            .collect();
        for h in handles {
            h.join().expect("reader thread");
        }
    });
    assert!(alive(m.pid()));
}

// ---------------------------------------------------------------------------------------------
// 7. mount lifecycle

#[test]
fn kill_9_then_mount_again_clears_the_stale_mount() {
    let f = Fixture::new();
    make_rich_tree(&f.src);
    backup(&f.vault, ITEM, &f.src);
    let mut m = Mount::new(&f.vault, &f.mnt);
    assert_eq!(
        fs::read(m.latest(ITEM).join("small.txt")).unwrap(),
        b"hello vault\n"
    );
    let pid = m.pid();
    // SAFETY: kill(2) of the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(
        wait_gone(pid, Duration::from_secs(30)),
        "daemon survived kill -9"
    );
    assert!(
        is_mounted(&f.mnt),
        "the dead daemon's mount should be stale"
    );
    let err = fs::read_dir(m.path("points")).map(|_| ()).unwrap_err();
    // The kernel answers ENOTCONN once the connection is gone; a request caught in flight by
    // the abort gets ECONNABORTED, one queued on an io_uring that is being torn down ECANCELED.
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::ENOTCONN) | Some(libc::ECONNABORTED) | Some(libc::ECANCELED)
        ),
        "stale mount: {err}"
    );

    let stderr = m.mount();
    assert!(
        stderr.contains("stale"),
        "no note about the stale mount: {stderr}"
    );
    assert_ne!(m.pid(), pid);
    assert_eq!(
        fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(s(&f.mnt)))
            .count(),
        1,
        "exactly one mount at the mount point"
    );
    assert_same_tree(&f.src, &m.latest(ITEM));
    assert!(ok(&["items", s(&f.vault)]).contains(ITEM));
}

#[test]
fn umount_leaves_no_mount_and_no_daemon() {
    let f = Fixture::new();
    make_small_tree(&f.src, 7);
    backup(&f.vault, ITEM, &f.src);
    for round in 0..10 {
        let m = Mount::new(&f.vault, &f.mnt);
        assert_same_tree(&f.src, &m.latest(ITEM));
        let pid = m.pid();
        let args = ["umount", s(&f.mnt)];
        let out = vaultfs(&args);
        assert!(
            out.status.success(),
            "round {round}: vaultfs umount failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("unmounted"),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!is_mounted(&f.mnt), "round {round}: still mounted");
        // umount returns only once the daemon is gone, and the vault with it.
        assert!(
            !alive(pid),
            "round {round}: daemon {pid} still running when umount returned"
        );
        assert!(
            !f.vault.join("control.sock").exists(),
            "round {round}: control socket left behind"
        );
        assert!(
            names_in(&f.mnt).is_empty(),
            "round {round}: mount point not empty"
        );
        drop(m);
    }
    // The vault is free again for local commands.
    assert!(ok(&["points", s(&f.vault)]).contains(ITEM));
}

#[test]
fn the_guard_unmounts_when_a_test_panics() {
    let f = Fixture::new();
    make_small_tree(&f.src, 3);
    backup(&f.vault, ITEM, &f.src);
    let (tx, rx) = std::sync::mpsc::channel();
    let (vault, mnt, src) = (f.vault.clone(), f.mnt.clone(), f.src.clone());
    let thread = std::thread::spawn(move || {
        let m = Mount::new(&vault, &mnt);
        tx.send(m.pid()).unwrap();
        assert_same_tree(&src, &m.latest(ITEM));
        panic!(
            "deliberate panic while mounted (expected by the_guard_unmounts_when_a_test_panics)"
        );
    });
    assert!(thread.join().is_err(), "the thread should have panicked");
    let pid = rx.recv().expect("the thread mounted");
    assert!(!is_mounted(&f.mnt), "the guard left the mount behind");
    assert!(!alive(pid), "the guard left the daemon {pid} running");
    assert!(names_in(&f.mnt).is_empty());
}

#[test]
fn mount_on_a_missing_mountpoint_fails_clearly() {
    let f = Fixture::new();
    let missing = f.root.join("no-such-dir");
    let mut m = Mount::guard(&f.vault, &missing);
    let out = m.try_mount();
    let args = ["mount", s(&f.vault), s(&missing)];
    let err = failed_clearly(&args, &out);
    assert!(
        err.contains("no-such-dir"),
        "the error should name the path: {err}"
    );
    assert!(m.pids.is_empty() && !is_mounted(&missing));
    assert!(!missing.exists());

    // A file is not a mount point either.
    let file = f.root.join("a-file");
    fs::write(&file, b"x").unwrap();
    let mut m2 = Mount::guard(&f.vault, &file);
    let out = m2.try_mount();
    let err = failed_clearly(&["mount", s(&f.vault), s(&file)], &out);
    assert!(err.contains("a-file"), "{err}");
    assert!(m2.pids.is_empty() && !is_mounted(&file));
}

#[test]
fn umount_of_a_directory_that_is_not_mounted_fails_clearly() {
    let f = Fixture::new();
    let args = ["umount", s(&f.mnt)];
    let err = failed_clearly(&args, &vaultfs(&args));
    assert!(err.contains("not mounted"), "{err}");
    let missing = f.root.join("nowhere");
    let args = ["umount", s(&missing)];
    let err = failed_clearly(&args, &vaultfs(&args));
    assert!(err.contains("nowhere"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 8. commands while mounted

#[test]
fn commands_work_while_mounted_through_the_control_socket() {
    let f = Fixture::new();
    make_small_tree(&f.src, 11);
    let p1 = backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);
    assert!(f.vault.join("control.sock").exists());

    let points = ok(&["points", s(&f.vault)]);
    assert!(points.contains(&p1) && points.contains(ITEM), "{points}");
    let items = ok(&["items", s(&f.vault)]);
    assert!(items.contains(ITEM) && items.contains(&p1), "{items}");

    // A backup through the daemon shows up in the mount.
    fs::write(f.src.join("added-while-mounted.txt"), b"new\n").unwrap();
    fs::remove_file(f.src.join("data.bin")).unwrap();
    let start = Instant::now();
    let p2 = backup(&f.vault, ITEM, &f.src);
    assert_ne!(p1, p2);
    let appeared = wait_until(Duration::from_secs(30), || {
        names_in(&m.path(&format!("points/{ITEM}"))).contains(&p2)
            && latest_target(&m, ITEM).as_deref() == Some(p2.as_str())
    });
    assert!(
        appeared,
        "{p2} not in the mount after {:?}: {:?}, latest -> {:?}",
        start.elapsed(),
        names_in(&m.path(&format!("points/{ITEM}"))),
        latest_target(&m, ITEM)
    );
    assert_same_tree(&f.src, &m.latest(ITEM));
    assert!(ok(&["points", s(&f.vault)]).contains(&p2));

    // A second item through the daemon appears too.
    let other = f.dir("other-src");
    make_small_tree(&other, 12);
    backup(&f.vault, "other", &other);
    assert!(
        wait_until(Duration::from_secs(30), || names_in(&m.path("points"))
            == [ITEM, "other"]),
        "{:?}",
        names_in(&m.path("points"))
    );
    assert_same_tree(&other, &m.latest("other"));

    let check = ok(&["check", s(&f.vault), "--read-data"]);
    assert!(!check.is_empty());

    // repair needs the vault to itself.
    let args = ["repair", s(&f.vault)];
    let err = failed_clearly(&args, &vaultfs(&args));
    assert!(err.contains("mounted"), "{err}");

    // A second mount of the same vault elsewhere.
    let other_mnt = f.dir("other-mnt");
    let mut second = Mount::guard(&f.vault, &other_mnt);
    let out = second.try_mount();
    let err = failed_clearly(&["mount", s(&f.vault), s(&other_mnt)], &out);
    assert!(err.contains("mounted"), "{err}");
    assert!(!is_mounted(&other_mnt));
    drop(second);

    // No secret crosses the socket: the owner is let in by its peer credentials, with no
    // passphrase at all (none in the environment, no terminal to prompt on), and a wrong one
    // is never looked at.
    for pass in [None, Some("not the passphrase")] {
        for args in [
            vec!["points", s(&f.vault), ITEM],
            vec!["backup", s(&f.vault), ITEM, s(&f.src)],
        ] {
            let mut cmd = Command::new(bin());
            cmd.args(&args)
                .env_remove("VAULTFS_PASSPHRASE")
                .env_remove("RUST_LOG")
                .stdin(std::process::Stdio::null());
            if let Some(p) = pass {
                cmd.env("VAULTFS_PASSPHRASE", p);
            }
            succeeded(&args, cmd.output().unwrap());
        }
    }
    let points = ok(&["points", s(&f.vault), ITEM]);
    assert_eq!(points.lines().count(), 5, "two more points: {points}");

    // The mount still works after all that.
    assert!(alive(m.pid()));
    assert_same_tree(&f.src, &m.latest(ITEM));
}

/// Review finding: entering a soft-deleted point straight from `.deleted/` (its `points/ITEM`
/// parent never looked up) must list its contents, not an empty directory.
/// The kernel keeps the listings it has read (directories open without a round trip); a
/// change to items or points made while mounted shows in them at once, with no waiting.
#[test]
fn listings_already_read_show_changes_at_once() {
    let f = Fixture::new();
    make_small_tree(&f.src, 21);
    let p1 = backup(&f.vault, ITEM, &f.src);
    let m = Mount::new(&f.vault, &f.mnt);
    let live = m.path(&format!("points/{ITEM}"));
    let deleted = m.path(&format!(".deleted/{ITEM}"));
    for _ in 0..2 {
        assert_eq!(names_in(&m.path("points")), [ITEM]);
        assert_eq!(names_in(&m.path("incoming")), [ITEM]);
        assert_eq!(names_in(&live), [p1.as_str(), "latest"]);
        assert!(names_in(&deleted).is_empty());
    }

    fs::write(f.src.join("new.txt"), b"new\n").unwrap();
    let p2 = backup(&f.vault, ITEM, &f.src);
    assert_eq!(names_in(&live), [p1.as_str(), p2.as_str(), "latest"]);

    ok(&["delete", s(&f.vault), &format!("{ITEM}/{p1}")]);
    assert_eq!(names_in(&live), [p2.as_str(), "latest"]);
    assert_eq!(names_in(&deleted), [p1.as_str()]);
    ok(&["undelete", s(&f.vault), &format!("{ITEM}/{p1}")]);
    assert_eq!(names_in(&live), [p1.as_str(), p2.as_str(), "latest"]);
    assert!(names_in(&deleted).is_empty());

    let other = f.dir("other-src");
    make_small_tree(&other, 22);
    backup(&f.vault, "other", &other);
    assert_eq!(names_in(&m.path("points")), [ITEM, "other"]);
    assert_eq!(names_in(&m.path("incoming")), [ITEM, "other"]);
}

#[test]
fn deleted_point_lists_when_entered_directly() {
    let f = Fixture::new();
    make_small_tree(&f.src, 7);
    let point = backup(&f.vault, "it", &f.src);
    ok(&["delete", s(&f.vault), &format!("it/{point}")]);
    let mut m = Mount::guard(&f.vault, &f.mnt);
    m.mount();
    let listed = names_in(&m.path(&format!(".deleted/it/{point}")));
    let mut expected: Vec<String> = fs::read_dir(&f.src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// The errno of a failed `lgetxattr`, or the value.
fn xattr_or_errno(p: &Path, name: &str) -> Result<Vec<u8>, i32> {
    get_xattr(p, name).map_err(|e| e.raw_os_error().unwrap())
}

/// An access ACL in the kernel's xattr form: owner rw, user 1000 r, group r, mask r, other r.
fn acl_blob() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// `ls -l` asks every file for its SELinux label and ACL. Inside a point that carries neither,
/// both answer EOPNOTSUPP (ls then stops asking for the rest of the mount); other missing names
/// stay ENODATA, present ones read. Once a tree with an ACL has been seen, a missing ACL is
/// ENODATA again, so ls keeps looking for the '+'.
#[test]
fn label_attributes_a_point_lacks_answer_not_supported() {
    let f = Fixture::new();
    fs::create_dir(&f.src).unwrap();
    fs::write(f.src.join("plain"), b"plain").unwrap();
    fs::write(f.src.join("tagged"), b"tagged").unwrap();
    set_xattr(&f.src.join("tagged"), "user.note", b"hi").unwrap();
    backup(&f.vault, "plain", &f.src);

    let acl_src = f.dir("acl-src");
    fs::write(acl_src.join("with-acl"), b"acl").unwrap();
    fs::write(acl_src.join("without"), b"none").unwrap();
    let blob = acl_blob();
    let has_acls = set_xattr(&acl_src.join("with-acl"), "system.posix_acl_access", &blob).is_ok();

    let m = Mount::new(&f.vault, &f.mnt);
    let point = m.latest("plain");
    for file in ["plain", "tagged"] {
        let p = point.join(file);
        assert_eq!(
            xattr_or_errno(&p, "security.selinux"),
            Err(libc::EOPNOTSUPP),
            "{file}"
        );
        assert_eq!(
            xattr_or_errno(&p, "system.posix_acl_access"),
            Err(libc::EOPNOTSUPP),
            "{file}"
        );
        assert_eq!(
            xattr_or_errno(&p, "user.missing"),
            Err(libc::ENODATA),
            "{file}"
        );
    }
    assert_eq!(
        xattr_or_errno(&point.join("tagged"), "user.note").unwrap(),
        b"hi"
    );
    let listing = sh(&format!("ls -la {}", point.display()));
    for line in listing
        .lines()
        .filter(|l| l.ends_with("plain") || l.ends_with("tagged"))
    {
        assert!(
            line.starts_with("-rw-r--r-- "),
            "no ACL or label marker: {line}"
        );
    }

    if !has_acls {
        eprintln!("the temp dir's file system keeps no ACLs: the ACL half is not exercised");
        return;
    }
    backup(&f.vault, "acl", &acl_src);
    let acl_point = m.latest("acl");
    names_in(&acl_point);
    assert_eq!(
        xattr_or_errno(&acl_point.join("with-acl"), "system.posix_acl_access").unwrap(),
        blob
    );
    for name in ["system.posix_acl_access", "system.posix_acl_default"] {
        assert_eq!(
            xattr_or_errno(&acl_point.join("without"), name),
            Err(libc::ENODATA),
            "{name}"
        );
    }
    let listing = sh(&format!("ls -l {}", acl_point.display()));
    assert!(
        listing
            .lines()
            .any(|l| l.ends_with("with-acl") && l.split(' ').next().unwrap().ends_with('+')),
        "ls shows the ACL: {listing}"
    );
}

// ---------------------------------------------------------------------------------------------
// Names of 255 and 256 bytes

/// The errno of a failed call, `None` if it succeeded.
fn errno_of<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

fn mknod_fifo(p: &Path) -> std::io::Result<()> {
    // SAFETY: a valid NUL-terminated path.
    libc_result(unsafe { libc::mknod(cpath(p).as_ptr(), libc::S_IFIFO | 0o644, 0) })
}

/// `utimensat(path, now)`, following no symlink: a setattr through a path.
fn touch_now(p: &Path) -> std::io::Result<()> {
    // SAFETY: a valid NUL-terminated path; null times mean "now".
    libc_result(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            std::ptr::null(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Every operation that takes a name, through the kernel.
#[test]
fn names_of_255_bytes_work_and_of_256_bytes_are_too_long() {
    let f = Fixture::new();
    make_small_tree(&f.src, 1);
    let old = backup(&f.vault, ITEM, &f.src);
    let point = backup(&f.vault, ITEM, &f.src);
    ok(&["delete", s(&f.vault), &format!("{ITEM}/{old}")]);
    let m = Mount::new(&f.vault, &f.mnt);
    let inc = m.path(&format!("incoming/{ITEM}"));
    let long = |c: char| c.to_string().repeat(255);
    let over = |c: char| c.to_string().repeat(256);
    let at = |name: String| inc.join(name);

    // 255 bytes: every operation works in incoming.
    fs::write(at(long('f')), b"long name").expect("create a 255-byte name");
    assert_eq!(fs::read(at(long('f'))).unwrap(), b"long name");
    fs::create_dir(at(long('d'))).expect("mkdir");
    mknod_fifo(&at(long('p'))).expect("mknod");
    std::os::unix::fs::symlink("target", at(long('s'))).expect("symlink");
    fs::hard_link(at(long('f')), at(long('h'))).expect("link");
    fs::rename(at(long('h')), at(long('r'))).expect("rename");
    fs::set_permissions(at(long('r')), fs::Permissions::from_mode(0o600)).expect("chmod");
    touch_now(&at(long('r'))).expect("utimens");
    assert_eq!(fs::metadata(at(long('f'))).unwrap().nlink(), 2);
    fs::remove_file(at(long('r'))).expect("unlink");
    fs::remove_dir(at(long('d'))).expect("rmdir");
    assert_eq!(
        errno_of(fs::metadata(at(long('x')))),
        Some(libc::ENOENT),
        "a missing 255-byte name"
    );

    // 256 bytes: ENAMETOOLONG, never EIO or ENOENT, whatever the operation.
    let too_long = |what: &str, errno: Option<i32>| {
        assert_eq!(
            errno,
            Some(libc::ENAMETOOLONG),
            "{what} with a 256-byte name"
        );
    };
    let ok_name = at(long('f'));
    too_long("lookup", errno_of(fs::symlink_metadata(at(over('f')))));
    too_long("create", errno_of(fs::write(at(over('f')), b"x")));
    too_long("mkdir", errno_of(fs::create_dir(at(over('d')))));
    too_long("mknod", errno_of(mknod_fifo(&at(over('p')))));
    too_long(
        "symlink",
        errno_of(std::os::unix::fs::symlink("target", at(over('s')))),
    );
    too_long("link", errno_of(fs::hard_link(&ok_name, at(over('h')))));
    too_long(
        "rename (new name)",
        errno_of(fs::rename(&ok_name, at(over('r')))),
    );
    too_long(
        "rename (old name)",
        errno_of(fs::rename(at(over('r')), at(long('r')))),
    );
    too_long("unlink", errno_of(fs::remove_file(at(over('f')))));
    too_long("rmdir", errno_of(fs::remove_dir(at(over('d')))));
    too_long(
        "chmod through a path",
        errno_of(fs::set_permissions(
            at(over('f')),
            fs::Permissions::from_mode(0o600),
        )),
    );
    too_long(
        "utimens through a path",
        errno_of(touch_now(&at(over('f')))),
    );
    too_long(
        "a path through a 256-byte directory",
        errno_of(fs::metadata(at(over('d')).join("x"))),
    );
    assert_eq!(fs::read(&ok_name).unwrap(), b"long name", "nothing changed");
    too_long(
        "an item",
        errno_of(fs::metadata(m.path("incoming").join(over('i')))),
    );

    // The read-only side: 255 bytes are simply not there, 256 are too long.
    for dir in [
        String::new(),
        "points".into(),
        format!("points/{ITEM}"),
        format!("points/{ITEM}/{point}"),
        format!("points/{ITEM}/{point}/dir"),
        ".deleted".into(),
        format!(".deleted/{ITEM}"),
        format!(".deleted/{ITEM}/{old}/dir/sub"),
    ] {
        let d = m.path(&dir);
        assert_eq!(
            errno_of(fs::symlink_metadata(d.join(long('n')))),
            Some(libc::ENOENT),
            "lookup of a 255-byte name in /{dir}"
        );
        too_long(
            &format!("lookup in /{dir}"),
            errno_of(fs::symlink_metadata(d.join(over('n')))),
        );
        too_long(
            &format!("mkdir in /{dir}"),
            errno_of(fs::create_dir(d.join(over('n')))),
        );
        too_long(
            &format!("unlink in /{dir}"),
            errno_of(fs::remove_file(d.join(over('n')))),
        );
    }
    assert_erofs(
        "mkdir of a 255-byte name in a point",
        fs::create_dir(m.path(&format!("points/{ITEM}/{point}/{}", long('n')))),
    );
}

// ---------------------------------------------------------------------------------------------
// A panicking request

/// One request that panics inside the view (a test-only fault: a lookup of the name
/// `VAULTFS_TEST_PANIC_NAME` panics while it holds the incoming state's lock, or the points'
/// inode table's) answers EIO, and the mount goes on serving everything else: reads of a point,
/// writes into incoming, a snapshot, and a clean unmount. More panics than FUSE threads: a
/// panic that ended its worker thread, or left a lock poisoned, would wedge the mount.
#[test]
fn a_panicking_request_answers_eio_and_the_mount_keeps_serving() {
    let f = Fixture::new();
    make_small_tree(&f.src, 5);
    let point = backup(&f.vault, ITEM, &f.src);
    let mut m = Mount::guard(&f.vault, &f.mnt).with_env("VAULTFS_TEST_PANIC_NAME", "boom");
    m.mount();
    let inc = m.path(&format!("incoming/{ITEM}"));
    let pdir = m.path(&format!("points/{ITEM}/{point}"));
    fs::write(inc.join("before.txt"), b"written before").unwrap();
    for round in 0..6 {
        for p in [inc.join("boom"), pdir.join("boom"), pdir.join("dir/boom")] {
            assert_eq!(
                errno_of(fs::metadata(&p)),
                Some(libc::EIO),
                "round {round}: {}",
                p.display()
            );
        }
    }
    // Everything else still works.
    assert_same_tree(&f.src, &pdir);
    assert_eq!(fs::read(inc.join("before.txt")).unwrap(), b"written before");
    fs::create_dir(inc.join("after")).unwrap();
    fs::write(inc.join("after/data.bin"), noise(300_000, 9)).unwrap();
    fs::rename(inc.join("before.txt"), inc.join("after/renamed.txt")).unwrap();
    let snap = snapshot(&f.mnt, ITEM);
    let new = m.path(&format!("points/{ITEM}/{snap}/after"));
    assert_eq!(fs::read(new.join("data.bin")).unwrap(), noise(300_000, 9));
    assert_eq!(
        fs::read(new.join("renamed.txt")).unwrap(),
        b"written before"
    );
    let log = fs::read_to_string(f.vault.join("daemon.log")).unwrap();
    assert!(log.contains("test fault"), "the panic is logged: {log}");
    let pid = m.pid();
    ok(&["umount", s(&f.mnt)]);
    assert!(!is_mounted(&f.mnt), "unmounted");
    assert!(!alive(pid), "the daemon exited with the unmount");
}
