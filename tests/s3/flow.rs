//! The whole flow on an S3 vault, and the index rebuilt from the bucket alone.

use std::fs;

use crate::common::mnt::{make_small_tree, s};
use crate::common::{assert_same_tree, make_rich_tree, sh, tempdir};
use crate::{S3, server, url};

/// As the incoming tests compare what rsync wrote: a dry run finds nothing left to copy.
#[track_caller]
fn assert_rsync_clean(src: &std::path::Path, dst: &std::path::Path) {
    let diff = sh(&format!(
        "rsync -aHX -n -i --delete '{}/' '{}/'",
        s(src),
        s(dst)
    ));
    assert!(diff.trim().is_empty(), "rsync finds differences:\n{diff}");
}

/// init, backup, mount, rsync into incoming, snapshot, browse and read, restore,
/// `check --read-data`, gc, umount: everything against the real server.
#[test]
fn whole_flow_on_an_s3_vault() {
    let srv = server::shared();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let s3 = S3::new(srv, &root.join("cache"));
    let v = url("flow");
    s3.init(&v);
    // The bucket now holds the vault: a second init is refused.
    assert!(s3.fails(&["init", &v]).contains("already exists"));

    let src = root.join("src");
    make_rich_tree(&src);
    let first = s3.backup(&v, "web", &src);
    fs::write(src.join("added.txt"), "new after the first backup\n").unwrap();
    let second = s3.backup(&v, "web", &src);
    assert_ne!(first, second);
    let points = s3.ok(&["points", &v, "web"]);
    assert!(
        points.contains(&first) && points.contains(&second),
        "{points}"
    );

    // The mount: rsync into incoming, snapshot, then browse and read through points/.
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = s3.mount(&v, &mnt);
    m.mount();
    // The index and the daemon's socket and log live in the cache directory.
    let cache_dirs: Vec<_> = fs::read_dir(root.join("cache")).unwrap().collect();
    assert_eq!(cache_dirs.len(), 1);
    let cache_dir = cache_dirs[0].as_ref().unwrap().path();
    for name in ["index", "control.sock", "daemon.log", "location", "lock"] {
        assert!(cache_dir.join(name).exists(), "{name} in {cache_dir:?}");
    }
    let inbox = root.join("inbox");
    make_small_tree(&inbox, 7);
    sh(&format!(
        "rsync -aHX '{}/' '{}/incoming/files/'",
        s(&inbox),
        s(&mnt)
    ));
    let out = s3.ok(&["snapshot", s(&mnt), "files"]);
    let (_, snap) = crate::common::created_point(&out).expect("snapshot line");
    assert_rsync_clean(&inbox, &mnt.join(format!("points/files/{snap}")));
    assert_same_tree(&src, &mnt.join(format!("points/web/{second}")));
    // A read of every byte through the mount, as a user copying out would.
    sh(&format!(
        "tar -cf - -C '{}/points/web/{second}' . | wc -c",
        s(&mnt)
    ));
    // Commands reach the daemon through its socket, named by the vault's URL.
    let items = s3.ok(&["items", &v]);
    assert!(items.contains("files") && items.contains("web"), "{items}");
    drop(m);

    // Restore, check, gc.
    let dest = root.join("restored");
    s3.ok(&["restore", &v, &format!("web/{first}"), s(&dest)]);
    let first_src = root.join("first-src");
    fs::create_dir(&first_src).unwrap();
    sh(&format!(
        "cp -a '{}/.' '{}/' && rm '{}/added.txt'",
        s(&src),
        s(&first_src),
        s(&first_src)
    ));
    assert_same_tree(&first_src, &dest);
    let dest2 = root.join("restored-files");
    s3.ok(&["restore", &v, "files", s(&dest2)]);
    assert_rsync_clean(&inbox, &dest2);
    let check = s3.ok(&["check", &v, "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");
    s3.ok(&["delete", &v, &format!("web/{first}")]);
    s3.ok(&["gc", &v, "--expire-now"]);
    let left = s3.ok(&["points", &v, "web"]);
    let names: Vec<&str> = left.split_whitespace().collect();
    assert!(
        !names.contains(&first.as_str()) && names.contains(&second.as_str()),
        "{left}"
    );
    s3.ok(&["check", &v, "--read-data"]);
    let dest3 = root.join("restored-after-gc");
    s3.ok(&["restore", &v, "web", s(&dest3)]);
    assert_same_tree(&src, &dest3);
}

/// On a machine that has never seen the vault (a fresh cache directory), `repair` rebuilds the
/// index from the bucket alone, and a restore is identical.
#[test]
fn repair_rebuilds_the_index_from_the_bucket_alone() {
    let srv = server::shared();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let s3 = S3::new(srv, &root.join("cache-a"));
    let v = url("repair");
    s3.init(&v);
    let src = root.join("src");
    make_rich_tree(&src);
    let point = s3.backup(&v, "docs", &src);

    let fresh = s3.elsewhere(&root.join("cache-b"));
    assert!(!root.join("cache-b").exists());
    let out = fresh.ok(&["repair", &v]);
    assert!(out.contains("1 points"), "{out}");
    assert!(fresh.ok(&["points", &v, "docs"]).contains(&point));
    let dest = root.join("restored");
    fresh.ok(&["restore", &v, "docs", s(&dest)]);
    assert_same_tree(&src, &dest);
    fresh.ok(&["check", &v, "--read-data"]);
}
