//! What `sync`, `sync -f` (syncfs(2)) and fsync(2) make durable in `incoming/` (issue 11,
//! acceptance 6), pinned by killing the daemon with SIGKILL right after each and mounting again.
//!
//! Linux does not pass syncfs to a FUSE server: `fuse_sync_fs` (fs/fuse/inode.c) returns at once
//! unless the connection has `sync_fs` set, which only virtiofs does, so `sync` and `sync -f`
//! never reach the daemon. What is durable when is written in DESIGN.md §4.1 and the README:
//! after fsync(2) of a file (`sync FILE`), after the next automatic save (every 5 s while
//! something changed), at `snapshot` and at unmount. The test shortens or stretches the save
//! interval (a test-hooks setting) so that a save cannot fall between a write and the kill.

mod common;

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mnt::*;
use common::*;

/// Write `len` seeded bytes to `dir/name` and close it; returns them.
fn write(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = noise(len, seed);
    fs::write(dir.join(name), &data).unwrap();
    data
}

fn coreutils_sync(args: &[&Path]) {
    let st = Command::new("sync").args(args).status().unwrap();
    assert!(st.success(), "sync {args:?}: {st}");
}

/// SIGKILL the daemon, wait until it is gone, and mount again saving every `ms`.
fn kill_9_and_remount(m: &mut Mount, ms: u64) {
    let pid = m.pid();
    // SAFETY: kill(2) of the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(wait_gone(pid, Duration::from_secs(10)), "daemon survived");
    mount_saving_every(m, ms);
}

/// Mount with the incoming save interval set to `ms` (the daemon reads it from its
/// environment, inherited from `vaultfs mount`).
fn mount_saving_every(m: &mut Mount, ms: u64) {
    // SAFETY: the only test of this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("VAULTFS_TEST_SAVE_EVERY_MS", ms.to_string()) };
    m.mount();
}

/// A save interval no test waits for.
const NEVER: u64 = 3_600_000;

#[test]
fn sync_f_does_not_reach_the_daemon_fsync_and_the_periodic_save_do() {
    let f = Fixture::new();
    let mut m = Mount::guard(&f.vault, &f.mnt);
    // No automatic save during the first part: only what a sync call itself does counts.
    mount_saving_every(&mut m, NEVER);
    let inc = m.path("incoming/home");
    fs::create_dir(&inc).unwrap();
    File::open(&inc).unwrap().sync_all().unwrap();

    // `sync -f FILE`, syncfs(2) and `sync`: the kernel sends nothing the daemon can act on.
    let a = inc.join("after-sync-f.bin");
    write(&inc, "after-sync-f.bin", 300_000, 1);
    coreutils_sync(&[Path::new("-f"), &a]);
    write(&inc, "after-syncfs.bin", 300_000, 2);
    let dir = File::open(&inc).unwrap();
    // SAFETY: syncfs(2) on a descriptor this test owns.
    assert_eq!(unsafe { libc::syncfs(dir.as_raw_fd()) }, 0);
    drop(dir);
    write(&inc, "after-sync.bin", 300_000, 3);
    coreutils_sync(&[]);
    kill_9_and_remount(&mut m, NEVER);
    assert!(inc.is_dir(), "the item, made durable by fsync, survives");
    assert_eq!(
        names_in(&inc),
        Vec::<String>::new(),
        "sync, sync -f and syncfs made nothing durable (if this fails, the kernel now passes \
         syncfs on: update DESIGN.md §4.1 and the README)"
    );

    // fsync(2) of a file, and `sync FILE` (coreutils fsyncs each file named): durable.
    let fsynced = noise(400_000, 4);
    {
        use std::io::Write;
        let mut h = File::create(inc.join("fsynced.bin")).unwrap();
        h.write_all(&fsynced).unwrap();
        h.sync_all().unwrap();
    }
    let synced = write(&inc, "sync-file.bin", 300_000, 5);
    coreutils_sync(&[&inc.join("sync-file.bin")]);
    // From here on, saving twice a second.
    kill_9_and_remount(&mut m, 500);
    assert!(fs::read(inc.join("fsynced.bin")).unwrap() == fsynced);
    assert!(fs::read(inc.join("sync-file.bin")).unwrap() == synced);

    // A closed file with no sync at all: durable after the next automatic save.
    let saved = write(&inc, "closed.bin", 300_000, 6);
    std::thread::sleep(Duration::from_secs(4));
    kill_9_and_remount(&mut m, NEVER);
    assert!(
        fs::read(inc.join("closed.bin")).unwrap() == saved,
        "a closed file survives kill -9 once a save has run"
    );
}
