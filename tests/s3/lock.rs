//! One writer at a time on a bucket: a second writer (another machine: another cache
//! directory) is refused with a clear error naming the holder; a stale lock is taken over
//! after its expiry, and the stopped holder then writes nothing; a lock left by a killed
//! process of this machine is taken over at once.

use std::fs;
use std::io::Write;

use crate::common::mnt::{s, wait_gone};
use crate::common::{make_rich_tree, tempdir};
use crate::{S3, server, set_clock, url};

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) of a daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn a_second_writer_is_refused_and_a_stale_lock_is_taken_over() {
    let srv = server::shared();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let clock = root.join("clock");
    let t0 = 1_950_000_000;
    set_clock(&clock, t0);
    let here = S3::new(srv, &root.join("cache-here")).with("VAULTFS_TEST_CLOCK", s(&clock));
    let there = here.elsewhere(&root.join("cache-there"));
    let v = url("lock");
    here.init(&v);
    let src = root.join("src");
    make_rich_tree(&src);
    here.backup(&v, "a", &src);

    // The mount daemon holds the lock; a writer with another cache is refused.
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = here.mount(&v, &mnt);
    m.mount();
    let daemon = m.pid();
    let err = there.fails(&["backup", &v, "b", s(&src)]);
    assert!(
        err.contains("in use") && err.contains(&format!("pid {daemon} on host")),
        "{err}"
    );

    // The daemon stops answering for longer than the lock lives: the lock is taken over.
    signal(daemon, libc::SIGSTOP);
    set_clock(&clock, t0 + 600);
    let taken = there.backup(&v, "b", &src);
    signal(daemon, libc::SIGCONT);
    // The old holder learns it lost the lock before it writes anything.
    let mut f = fs::File::create(mnt.join("incoming/a/late.txt")).unwrap();
    f.write_all(b"written after the takeover\n").unwrap();
    let synced = f.sync_all();
    assert!(
        synced.is_err(),
        "fsync after the lock was taken over succeeded"
    );
    drop(f);
    drop(m);
    let points = there.ok(&["points", &v, "b"]);
    assert!(points.contains(&taken), "{points}");
    let check = there.ok(&["check", &v, "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");

    // A holder of this machine that was killed leaves a lock that is taken over at once.
    let mnt2 = root.join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let mut m2 = there.mount(&v, &mnt2);
    m2.mount();
    let pid = m2.pid();
    signal(pid, libc::SIGKILL);
    assert!(wait_gone(pid, std::time::Duration::from_secs(10)));
    let after = here.backup(&v, "c", &src);
    assert!(here.ok(&["points", &v, "c"]).contains(&after));
    drop(m2);
}
