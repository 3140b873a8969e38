//! Mount helpers shared by the mount tests: a private [`Fixture`] (vault, source, mount point),
//! a [`Mount`] guard that always unmounts and makes sure the daemon is gone (also when a test
//! panics), and small process and filesystem helpers.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A test path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 test path")
}

/// A private temp dir holding a vault, source trees and a mount point.
pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub vault: PathBuf,
    pub src: PathBuf,
    pub mnt: PathBuf,
}

impl Fixture {
    /// A fresh vault (`init_vault`) and an empty mount point; `src` is not created.
    pub fn new() -> Fixture {
        Fixture::with_init(init_vault)
    }

    pub fn with_init(init: impl FnOnce(&Path)) -> Fixture {
        let tmp = tempdir();
        let root = tmp.path().canonicalize().unwrap();
        let (vault, src, mnt) = (root.join("vault"), root.join("src"), root.join("mnt"));
        init(&vault);
        fs::create_dir(&mnt).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            vault,
            src,
            mnt,
        }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

/// `vaultfs backup VAULT ITEM SRC`; returns the new point's name.
pub fn backup(vault: &Path, item: &str, src: &Path) -> String {
    let out = ok(&["backup", s(vault), item, s(src)]);
    let first = out.lines().next().unwrap_or_default();
    let spec = first
        .strip_prefix("created point ")
        .unwrap_or_else(|| panic!("unexpected backup output: {out}"));
    let (it, point) = spec.split_once('/').expect("ITEM/POINT");
    assert_eq!(it, item, "backup output names another item: {out}");
    point.to_string()
}

/// A small tree with a hard link, a symlink, an xattr, odd modes and an old mtime; `seed` makes
/// the contents differ between trees.
pub fn make_small_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("hello.txt"), format!("hello {seed}\n")).unwrap();
    fs::write(root.join("data.bin"), noise(300_000, seed)).unwrap();
    fs::write(root.join("dir/sub/nested.txt"), format!("nested {seed}\n")).unwrap();
    fs::hard_link(root.join("hello.txt"), root.join("dir/hard")).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("sym")).unwrap();
    let r = root.display();
    sh(&format!(
        "setfattr -n user.seed -v {seed} '{r}/hello.txt' && chmod 0600 '{r}/data.bin' && \
         chown 7:8 '{r}/dir/sub/nested.txt' && touch -d '2010-01-02 03:04:05.5' '{r}/data.bin'"
    ));
}

/// True if `mnt` is listed in /proc/self/mounts.
pub fn is_mounted(mnt: &Path) -> bool {
    let text = fs::read_to_string("/proc/self/mounts").unwrap();
    text.lines().any(|l| l.split(' ').nth(1) == Some(s(mnt)))
}

/// True while `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// True if `pid` is (still) a vaultfs process: we never signal a pid that was reused.
pub fn is_vaultfs(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "vaultfs")
}

/// Wait until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    poll(timeout, Duration::from_millis(25), cond)
}

/// Check `cond` every `every` until it holds or `timeout` passes; returns whether it held.
pub fn poll(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    wait_until(timeout, || !alive(pid))
}

/// Run a command with a time limit, output discarded; false if it failed or timed out.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> bool {
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// `vaultfs ARGS` with another passphrase.
pub fn vaultfs_with_pass(pass: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("VAULTFS_PASSPHRASE", pass)
        .env_remove("RUST_LOG")
        .output()
        .expect("run vaultfs")
}

/// The command failed cleanly: non-zero exit, no panic, exactly one `vaultfs: ` line on stderr.
pub fn failed_clearly(args: &[&str], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "vaultfs {args:?} should fail but succeeded:\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !matches!(out.status.code(), Some(70) | Some(101) | None) && !stderr.contains("panicked"),
        "vaultfs {args:?} crashed ({:?}): {stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "vaultfs {args:?} should print one error line: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("vaultfs: "),
        "no vaultfs error line from {args:?}: {stderr:?}"
    );
    stderr
}

/// The pid in `mounted V at M (daemon pid N, log L)`.
pub fn daemon_pid(stdout: &str) -> Option<i32> {
    let rest = stdout.split("daemon pid ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A mount of a vault that is always cleaned up on drop (also while unwinding from a panic):
/// `vaultfs umount`, else `umount -l`; then every daemon it started must exit, or is killed.
pub struct Mount {
    pub vault: PathBuf,
    pub mnt: PathBuf,
    pub pids: Vec<i32>,
    /// Extra environment of the `vaultfs mount` command (and so of its daemon).
    pub env: Vec<(String, String)>,
    /// Extra options of `vaultfs mount`.
    pub args: Vec<String>,
}

impl Mount {
    /// Mount `vault` on `mnt`; the mount must succeed.
    pub fn new(vault: &Path, mnt: &Path) -> Mount {
        let mut m = Mount::guard(vault, mnt);
        m.mount();
        m
    }

    /// A guard for `mnt` that has not mounted anything yet.
    pub fn guard(vault: &Path, mnt: &Path) -> Mount {
        Mount {
            vault: vault.to_path_buf(),
            mnt: mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf()),
            pids: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Mount with an extra argument (`--replica`).
    pub fn with_arg(mut self, arg: &str) -> Mount {
        self.args.push(arg.into());
        self
    }

    /// Mount with `key=value` in the daemon's environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Mount {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `vaultfs mount VAULT MNT`, remembering the daemon's pid whatever the outcome. With
    /// `VAULTFS_TEST_IO_URING` set (`scripts/test.sh` in either mode), mounts that do not choose
    /// their transport get `--io-uring $VAULTFS_TEST_IO_URING`.
    pub fn try_mount(&mut self) -> Output {
        let transport = std::env::var("VAULTFS_TEST_IO_URING")
            .ok()
            .filter(|_| !self.args.iter().any(|a| a.starts_with("--io-uring")))
            .map(|mode| vec!["--io-uring".to_string(), mode])
            .unwrap_or_default();
        let out = Command::new(bin())
            .args(["mount", s(&self.vault), s(&self.mnt)])
            .args(&self.args)
            .args(&transport)
            .env("VAULTFS_PASSPHRASE", PASS)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run vaultfs mount");
        if let Some(pid) = daemon_pid(&String::from_utf8_lossy(&out.stdout)) {
            self.pids.push(pid);
        }
        out
    }

    /// Mount; it must succeed and be listed in /proc/self/mounts. Returns stderr.
    pub fn mount(&mut self) -> String {
        let out = self.try_mount();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "vaultfs mount failed ({:?}):\nstdout: {stdout}\nstderr: {stderr}\ndaemon log:\n{}",
            out.status.code(),
            self.log_tail()
        );
        assert!(
            daemon_pid(&stdout).is_some(),
            "no daemon pid in mount output: {stdout}"
        );
        assert!(
            is_mounted(&self.mnt),
            "{} not in /proc/self/mounts",
            s(&self.mnt)
        );
        assert!(
            alive(self.pid()),
            "the daemon {} is not running",
            self.pid()
        );
        stderr.into_owned()
    }

    /// The last lines of the vault's daemon log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.vault.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The pid of the last daemon started.
    pub fn pid(&self) -> i32 {
        *self.pids.last().expect("mounted")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// `MNT/points/ITEM/latest/` (with the slash, so tools follow the symlink).
    pub fn latest(&self, item: &str) -> PathBuf {
        PathBuf::from(format!("{}/points/{item}/latest/", s(&self.mnt)))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            run_with_timeout(
                Command::new(bin())
                    .args(["umount", s(&self.mnt)])
                    .env("VAULTFS_PASSPHRASE", PASS),
                Duration::from_secs(20),
            );
        }
        if is_mounted(&self.mnt) {
            run_with_timeout(
                Command::new("umount").arg("-l").arg(&self.mnt),
                Duration::from_secs(10),
            );
        }
        for &pid in &self.pids {
            if !wait_gone(pid, Duration::from_secs(10)) && is_vaultfs(pid) {
                // SAFETY: plain kill(2) of a vaultfs daemon this guard started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait_gone(pid, Duration::from_secs(5));
            }
        }
        if is_mounted(&self.mnt) {
            run_with_timeout(
                Command::new("umount").arg("-l").arg(&self.mnt),
                Duration::from_secs(10),
            );
        }
    }
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn libc_result(r: libc::c_int) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn latest_target(m: &Mount, item: &str) -> Option<String> {
    fs::read_link(m.path(&format!("points/{item}/latest")))
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

/// `lsetxattr(p, name, value)`.
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    set_xattr_flags(p, name, value, 0)
}

pub fn set_xattr_flags(p: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    // SAFETY: valid NUL-terminated path and name; value is a live buffer of its length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    libc_result(r)
}

/// `lgetxattr(p, name)`.
pub fn get_xattr(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid NUL-terminated path and name; buf is a live buffer of its length.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// `vaultfs snapshot TARGET ITEM` (TARGET: the vault or the mount point). It must print exactly
/// one line, `created point ITEM/POINT`, with a well-formed point name; returns POINT.
#[track_caller]
pub fn snapshot(target: &Path, item: &str) -> String {
    let out = ok(&["snapshot", s(target), item]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "snapshot should print exactly one line: {out:?}"
    );
    let spec = lines[0]
        .strip_prefix("created point ")
        .unwrap_or_else(|| panic!("unexpected snapshot output: {out:?}"));
    let (it, point) = spec.split_once('/').expect("ITEM/POINT");
    assert_eq!(it, item, "snapshot output names another item: {out:?}");
    assert!(is_point_name(point), "bad point name in {out:?}");
    point.to_string()
}

/// `YYYY-MM-DDTHH-MM-SSZ`, optionally followed by `-N`.
pub fn is_point_name(p: &str) -> bool {
    let pat = b"dddd-dd-ddTdd-dd-ddZ";
    if p.len() < pat.len() || !p.is_ascii() {
        return false;
    }
    let (head, tail) = p.split_at(pat.len());
    head.bytes().zip(pat.iter()).all(|(c, &q)| {
        if q == b'd' {
            c.is_ascii_digit()
        } else {
            c == q
        }
    }) && (tail.is_empty()
        || tail
            .strip_prefix('-')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())))
}

/// The lines of the status the daemon of `vault` answers on its control socket.
pub fn daemon_status(vault: &Path) -> Vec<String> {
    use vaultfs::control::{self, Request, Response};
    let stream = control::connect(vault).expect("the daemon's control socket");
    let mut lines = Vec::new();
    control::call(stream, &Request::Status, |r| {
        if let Response::Out(line) = r {
            lines.push(line);
        }
    })
    .expect("status from the daemon");
    lines
}

/// The FUSE requests the daemon of `vault` has served so far, by opcode (`LOOKUP`, ...).
pub fn fuse_requests(vault: &Path) -> std::collections::BTreeMap<String, u64> {
    let lines = daemon_status(vault);
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix("fuse requests: "))
        .unwrap_or_else(|| panic!("no request counts in the status: {lines:?}"));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(op, n)| (op.to_string(), n.parse().expect("a count")))
        .collect()
}

/// `rsync OPTS SRC/ DST/`; it must succeed. Returns stdout.
#[track_caller]
pub fn rsync(opts: &[&str], src: &Path, dst: &Path) -> String {
    let out = Command::new("rsync")
        .args(opts)
        .arg(format!("{}/", s(src)))
        .arg(format!("{}/", s(dst)))
        .output()
        .expect("run rsync");
    assert!(
        out.status.success(),
        "rsync {opts:?} {} {} failed ({:?}):\n{}{}",
        s(src),
        s(dst),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kernel's switch for FUSE over io_uring (read by each new mount at INIT).
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Serializes the tests of one binary that set [`ENABLE_URING`].
static URING_PARAM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`ENABLE_URING`] at a value (root only) and puts the old value back on drop, also
/// when the test panics. Tests of one binary that take it run one at a time.
pub struct UringParam {
    old: String,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl UringParam {
    pub fn set(on: bool) -> UringParam {
        let lock = URING_PARAM.lock().unwrap_or_else(|e| e.into_inner());
        let old = fs::read_to_string(ENABLE_URING)
            .unwrap_or_else(|e| panic!("{ENABLE_URING}: {e} (Linux 6.14+ is needed)"));
        fs::write(ENABLE_URING, if on { "Y" } else { "N" }).expect("set enable_uring (root)");
        UringParam {
            old: old.trim().to_string(),
            _lock: lock,
        }
    }
}

impl Drop for UringParam {
    fn drop(&mut self) {
        let _ = fs::write(ENABLE_URING, &self.old);
    }
}

/// Requests the daemon of `vault` received over io_uring (its status on the control socket).
pub fn ring_requests(vault: &Path) -> u64 {
    let lines = daemon_status(vault);
    lines
        .iter()
        .find_map(|l| l.strip_prefix("fuse requests over io_uring: "))
        .unwrap_or_else(|| panic!("no io_uring count in the status: {lines:?}"))
        .parse()
        .expect("a count")
}
