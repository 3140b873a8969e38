//! FUSE over io_uring (`mount --io-uring`, DESIGN.md §6.1 "Transport"): with the kernel's
//! switch on, an rsync into incoming, a snapshot and the point read back bit for bit, with the
//! daemon's own counters showing that every request but FORGET and INTERRUPT came over the
//! ring; with the switch off, `on` refuses to mount in one line naming the switch and `auto`
//! serves over /dev/fuse. Each test puts the switch back as it found it.

mod common;

use std::fs;

use common::mnt::*;
use common::*;

/// Requests the kernel sends over /dev/fuse even when the ring serves the rest.
const DEV_FUSE_ONLY: [&str; 3] = ["FORGET", "BATCH_FORGET", "INTERRUPT"];

/// Every file under `root` (relative path) with its bytes.
fn contents(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files_with_bytes(root)
        .into_iter()
        .map(|(p, b)| (p.strip_prefix(root).unwrap().to_path_buf(), b))
        .collect()
}

fn log_of(m: &Mount) -> String {
    fs::read_to_string(m.vault.join("daemon.log")).unwrap_or_default()
}

#[test]
fn rsync_snapshot_and_read_back_over_io_uring() {
    let _param = UringParam::set(true);
    let fx = Fixture::new();
    make_rich_tree(&fx.src);
    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=on");
    m.mount();
    assert!(
        log_of(&m).contains("FUSE transport: io_uring"),
        "the daemon does not log the io_uring transport:\n{}",
        m.log_tail()
    );
    let dst = m.path("incoming/web");
    fs::create_dir(&dst).unwrap();
    rsync(&["-aHAX"], &fx.src, &dst);
    let point = snapshot(&m.mnt, "web");
    assert!(is_point_name(&point), "{point}");
    let out = fx.dir("out");
    rsync(&["-aHAX"], &m.latest("web"), &out);
    assert_same_tree(&fx.src, &out);
    assert_same_tree(&fx.src, &m.latest("web"));

    let counts = fuse_requests(&fx.vault);
    let all: u64 = counts.values().sum();
    let dev_fuse: u64 = DEV_FUSE_ONLY.iter().filter_map(|op| counts.get(*op)).sum();
    let ring = ring_requests(&fx.vault);
    assert!(
        counts.get("WRITE").copied().unwrap_or(0) > 0
            && counts.get("LOOKUP").copied().unwrap_or(0) > 0,
        "no writes or lookups counted: {counts:?}"
    );
    assert_eq!(
        ring,
        all - dev_fuse,
        "every request but {DEV_FUSE_ONLY:?} should come over io_uring: {counts:?}, {ring} over \
         the ring"
    );
    drop(m);
    assert!(!is_mounted(&fx.mnt));
}

#[test]
fn on_fails_clearly_when_the_kernel_does_not_offer_it() {
    let _param = UringParam::set(false);
    let fx = Fixture::new();
    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=on");
    let out = m.try_mount();
    let args = ["mount", "--io-uring=on"];
    let err = failed_clearly(&args, &out);
    assert!(
        err.contains("enable_uring") && err.contains("io_uring"),
        "the error should name the module parameter: {err}"
    );
    assert!(!is_mounted(&fx.mnt), "mounted although refused");
    assert!(m.pids.is_empty(), "a daemon was started: {err}");
}

#[test]
fn auto_falls_back_to_dev_fuse_when_the_kernel_does_not_offer_it() {
    let _param = UringParam::set(false);
    let fx = Fixture::new();
    make_small_tree(&fx.src, 3);
    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=auto");
    m.mount();
    assert!(
        log_of(&m).contains("FUSE transport: /dev/fuse"),
        "the daemon does not log the /dev/fuse transport:\n{}",
        m.log_tail()
    );
    let dst = m.path("incoming/web");
    fs::create_dir(&dst).unwrap();
    rsync(&["-aHX"], &fx.src, &dst);
    snapshot(&m.mnt, "web");
    assert_eq!(contents(&fx.src), contents(&m.latest("web")));
    assert!(fuse_requests(&fx.vault).values().sum::<u64>() > 0);
    assert_eq!(
        ring_requests(&fx.vault),
        0,
        "requests over a ring that is off"
    );
}

#[test]
fn auto_uses_io_uring_when_the_kernel_offers_it() {
    let _param = UringParam::set(true);
    let fx = Fixture::new();
    make_small_tree(&fx.src, 4);
    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=auto");
    m.mount();
    let dst = m.path("incoming/web");
    fs::create_dir(&dst).unwrap();
    rsync(&["-aHX"], &fx.src, &dst);
    assert!(ring_requests(&fx.vault) > 0, "auto did not use the ring");
    // Off means off, whatever the kernel offers.
    drop(m);
    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=off");
    m.mount();
    assert_eq!(names_in(&m.path("incoming")), ["web"]);
    assert_eq!(ring_requests(&fx.vault), 0, "off used the ring");
}

/// `kernel.io_uring_disabled` at 2 (no process may create an io_uring) for the guard's life,
/// put back on drop; holds the kernel's FUSE switch on meanwhile.
struct NoIoUring {
    old: String,
    _param: UringParam,
}

const IO_URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

impl NoIoUring {
    fn set() -> NoIoUring {
        let param = UringParam::set(true);
        let old = fs::read_to_string(IO_URING_DISABLED).expect(IO_URING_DISABLED);
        fs::write(IO_URING_DISABLED, "2").expect("set io_uring_disabled (root)");
        NoIoUring {
            old: old.trim().to_string(),
            _param: param,
        }
    }
}

impl Drop for NoIoUring {
    fn drop(&mut self) {
        let _ = fs::write(IO_URING_DISABLED, &self.old);
    }
}

#[test]
fn a_kernel_that_refuses_io_uring_fails_on_and_falls_back_in_auto() {
    let fx = Fixture::new();
    make_small_tree(&fx.src, 5);
    let _no = NoIoUring::set();
    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=on");
    let out = m.try_mount();
    let err = failed_clearly(&["mount", "--io-uring=on"], &out);
    assert!(err.contains("io_uring"), "{err}");
    assert!(!is_mounted(&fx.mnt), "mounted although refused");
    for &pid in &m.pids {
        assert!(
            wait_gone(pid, std::time::Duration::from_secs(10)),
            "daemon {pid} stayed"
        );
    }
    drop(m);

    let mut m = Mount::guard(&fx.vault, &fx.mnt).with_arg("--io-uring=auto");
    m.mount();
    assert!(
        log_of(&m).contains("FUSE transport: /dev/fuse"),
        "auto did not fall back:\n{}",
        m.log_tail()
    );
    let dst = m.path("incoming/web");
    fs::create_dir(&dst).unwrap();
    rsync(&["-aHX"], &fx.src, &dst);
    assert_eq!(ring_requests(&fx.vault), 0);
    snapshot(&m.mnt, "web");
    assert_eq!(contents(&fx.src), contents(&m.latest("web")));
}
