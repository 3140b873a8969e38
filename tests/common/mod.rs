//! Shared helpers for the integration tests: run the real `vaultfs` binary against real
//! directories in private temp dirs.
#![allow(dead_code)]

pub mod mnt;
pub mod ops;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASS: &str = "test passphrase";

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vaultfs")
}

/// `vaultfs ARGS...` with the test passphrase in the environment.
pub fn vaultfs(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .output()
        .expect("run vaultfs")
}

/// Like [`vaultfs`] but the command must succeed; returns stdout.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    succeeded(args, vaultfs(args))
}

/// `out` (of `vaultfs args`) must be a success; returns its stdout.
#[track_caller]
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "vaultfs {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lag per item in `replicate VAULT --status --json`'s output: (item, lag in seconds, or
/// None when the secondary has none of its points; points missing).
#[allow(dead_code)] // not every test binary reads a replica's status
pub fn replica_lags(json: &str) -> Vec<(String, Option<i64>, u64)> {
    let doc: serde_json::Value = serde_json::from_str(json.trim()).expect("status JSON");
    doc["items"]
        .as_array()
        .expect("an items array")
        .iter()
        .map(|i| {
            (
                i["item"].as_str().unwrap().to_string(),
                i["lag_seconds"].as_i64(),
                i["points_missing"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The `(ITEM, POINT)` of the `created point ITEM/POINT` line of a backup's output.
pub fn created_point(stdout: &str) -> Option<(String, String)> {
    stdout.lines().find_map(|l| {
        let rest = l.strip_prefix("created point ")?;
        let (i, pt) = rest.trim().split_once('/')?;
        Some((i.to_string(), pt.to_string()))
    })
}

/// The command must fail with a non-zero exit and one clear line on stderr (no panic).
/// Returns that stderr.
pub fn fails(args: &[&str]) -> String {
    let out = vaultfs(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "vaultfs {args:?} should fail but succeeded: {stderr}"
    );
    assert_ne!(
        out.status.code(),
        Some(70),
        "vaultfs {args:?} panicked: {stderr}"
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "vaultfs {args:?} panicked: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "vaultfs {args:?} panicked: {stderr}"
    );
    assert!(
        stderr.contains("vaultfs: "),
        "no error line from vaultfs {args:?}: {stderr}"
    );
    stderr
}

/// A fresh temp dir (removed on drop).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vaultfs-test-")
        .tempdir()
        .expect("tempdir")
}

/// `vaultfs init` with cheap key derivation (tests only) and small packs.
pub fn init_vault(path: &Path) {
    init_vault_with(path, &[]);
}

pub fn init_vault_with(path: &Path, extra: &[&str]) {
    let p = path.to_str().unwrap();
    let mut args = vec!["init", p, "--kdf-memory-kib", "64", "--kdf-iterations", "1"];
    if !extra.contains(&"--pack-size-mib") {
        args.extend_from_slice(&["--pack-size-mib", "4"]);
    }
    args.extend_from_slice(extra);
    ok(&args);
}

/// [`init_vault_with`] 1 MiB packs and 64 KiB chunks: a few MB of files fill several packs of
/// each kind, so damage and power cuts land between packs.
pub fn init_small_packs(path: &Path) {
    init_vault_with(
        path,
        &[
            "--pack-size-mib",
            "1",
            "--chunk-avg",
            &(64 << 10).to_string(),
        ],
    );
}

/// `what`: `vaultfs ARGS` did not panic and, if it failed, said why in a `vaultfs: ` line.
/// Returns whether it succeeded.
pub fn sane_outcome(args: &[&str], out: &Output, what: &str) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !matches!(out.status.code(), Some(70) | Some(101)) && !stderr.contains("panicked"),
        "{what}: vaultfs {args:?} panicked: {stderr}"
    );
    if !out.status.success() {
        assert!(
            stderr.lines().any(|l| l.starts_with("vaultfs: ")),
            "{what}: vaultfs {args:?} failed without a clear line: {stderr}"
        );
    }
    out.status.success()
}

/// Every file under `dir` with its bytes.
pub fn files_with_bytes(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Run a shell command; it must succeed. Returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "`{cmd}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic pseudo-random bytes.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Total bytes of all files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in walk(dir) {
        let md = std::fs::symlink_metadata(&e).unwrap();
        if md.is_file() {
            total += md.len();
        }
    }
    total
}

/// Every path under `dir` (not including `dir`), sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Compare two trees entry by entry: kind, content, mode, uid, gid, mtime (ns), symlink
/// targets, xattrs and hard-link structure. Panics with the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| -> Vec<PathBuf> {
        walk(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    let (la, lb) = (list(a), list(b));
    if la != lb {
        let only = |x: &[PathBuf], y: &[PathBuf]| -> Vec<PathBuf> {
            let y: std::collections::HashSet<&PathBuf> = y.iter().collect();
            x.iter()
                .filter(|p| !y.contains(p))
                .take(20)
                .cloned()
                .collect()
        };
        panic!(
            "different entries under {} ({}) and {} ({}):\nonly in the first: {:?}\nonly in the second: {:?}",
            a.display(),
            la.len(),
            b.display(),
            lb.len(),
            only(&la, &lb),
            only(&lb, &la)
        );
    }
    let mut links_a = std::collections::HashMap::new();
    let mut links_b = std::collections::HashMap::new();
    for rel in &la {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).unwrap(),
            std::fs::symlink_metadata(&pb).unwrap(),
        );
        let what = rel.display();
        assert_eq!(ma.file_type(), mb.file_type(), "type of {what}");
        assert_eq!(ma.mode(), mb.mode(), "mode of {what}");
        assert_eq!(
            (ma.uid(), ma.gid()),
            (mb.uid(), mb.gid()),
            "owner of {what}"
        );
        if !ma.is_dir() {
            assert_eq!(
                (ma.mtime(), ma.mtime_nsec()),
                (mb.mtime(), mb.mtime_nsec()),
                "mtime of {what}"
            );
            assert_eq!(ma.nlink(), mb.nlink(), "link count of {what}");
        }
        if ma.is_file() {
            assert_eq!(ma.len(), mb.len(), "size of {what}");
            assert!(
                std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap(),
                "content of {what}"
            );
            if ma.nlink() > 1 {
                links_a
                    .entry(ma.ino())
                    .or_insert_with(Vec::new)
                    .push(rel.clone());
                links_b
                    .entry(mb.ino())
                    .or_insert_with(Vec::new)
                    .push(rel.clone());
            }
        }
        if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&pa).unwrap(),
                std::fs::read_link(&pb).unwrap(),
                "target of {what}"
            );
        }
        assert_eq!(xattrs(&pa), xattrs(&pb), "xattrs of {what}");
    }
    let groups = |m: std::collections::HashMap<u64, Vec<PathBuf>>| {
        let mut v: Vec<Vec<PathBuf>> = m.into_values().collect();
        v.sort();
        v
    };
    assert_eq!(groups(links_a), groups(links_b), "hard-link groups differ");
}

/// Every extended attribute of `p` (not following symlinks) as (name, value), sorted by name:
/// what `getfattr -h -d -m -` shows, read in-process (spawning getfattr for each entry made
/// comparing trees of thousands of files take many seconds).
pub fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 1 << 16];
    // SAFETY: valid NUL-terminated path; the buffer is live and of the given length.
    let n = unsafe { libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ENOTSUP),
            "llistxattr {}: {e}",
            p.display()
        );
        return Vec::new();
    }
    let mut v = Vec::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = std::ffi::CString::new(name).unwrap();
        let mut value = vec![0u8; 1 << 16];
        // SAFETY: valid NUL-terminated path and name; the buffer is live and of its length.
        let k = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(
            k >= 0,
            "lgetxattr {} {}: {}",
            p.display(),
            String::from_utf8_lossy(name),
            std::io::Error::last_os_error()
        );
        value.truncate(k as usize);
        v.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    v.sort();
    v
}

/// A tree with every kind of entry a backup must keep: regular files (empty, small, > 10 MiB,
/// sparse), nested dirs, symlinks (also dangling), hard links, a fifo, xattrs, odd names (spaces,
/// newlines, non-UTF-8 bytes), modes, owners and ns mtimes.
pub fn make_rich_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    std::fs::create_dir_all(root).unwrap();
    w("empty", b"");
    w("small.txt", b"hello vault\n");
    w("big.bin", &noise(11 << 20, 1));
    w(
        "text/lorem.txt",
        &b"lorem ipsum dolor sit amet, consectetur adipiscing elit\n".repeat(20_000),
    );
    w("a/b/c/d/deep.txt", b"deep\n");
    w("with space/file name with spaces", b"spaces\n");
    w("newline\nname", b"newline in the name\n");
    let odd = root.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9"));
    std::fs::write(&odd, b"non-utf8 name\n").unwrap();
    sh(&format!(
        "truncate -s 50M '{}' && printf 'tail' | dd of='{}' bs=1 seek=40000000 conv=notrunc status=none",
        root.join("sparse").display(),
        root.join("sparse").display()
    ));
    std::os::unix::fs::symlink("small.txt", root.join("link-to-small")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("small.txt"), root.join("a/hardlink-to-small")).unwrap();
    std::fs::hard_link(root.join("small.txt"), root.join("text/second-hardlink")).unwrap();
    sh(&format!("mkfifo '{}'", root.join("fifo").display()));
    sh(&format!(
        "setfattr -n user.color -v blue '{}'",
        root.join("small.txt").display()
    ));
    sh(&format!(
        "setfattr -n user.bin -v 0x00ff10 '{}'",
        root.join("text").display()
    ));
    sh(&format!(
        "chmod 0640 '{}' && chmod 4755 '{}' && chmod 0700 '{}'",
        root.join("empty").display(),
        root.join("text/lorem.txt").display(),
        root.join("a/b").display()
    ));
    sh(&format!(
        "chown 1234:5678 '{}' && chown -h 42:43 '{}'",
        root.join("big.bin").display(),
        root.join("dangling").display()
    ));
    // rsync does not set the mtime of a symlink or special file whose mtime equals, at second
    // granularity, that of the copy it just made: an entry made less than a second before an
    // `rsync -a` would keep the copy's own time. Old mtimes keep that rsync quirk out of tests.
    sh(&format!(
        "find '{}' -mindepth 1 -exec touch -h -d '2003-04-05 06:07:08.123456789' {{}} +",
        root.display()
    ));
    sh(&format!(
        "touch -h -d '2001-02-03 04:05:06.123456789' '{}' '{}' '{}'",
        root.join("small.txt").display(),
        root.join("dangling").display(),
        root.join("a/b/c").display()
    ));
}

/// `diff -r` between two trees must be clean. GNU diff reports two fifos as a difference
/// ("is a fifo while file ... is a fifo"); those lines are ignored, the types are compared by
/// [`assert_same_tree`].
pub fn assert_diff_clean(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .expect("run diff");
    let text = String::from_utf8_lossy(&out.stdout);
    let real: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains(" is a fifo while file ") && l.ends_with(" is a fifo")))
        .collect();
    assert!(
        real.is_empty() && out.status.code() != Some(2),
        "diff -r {} {}:\n{}{}",
        a.display(),
        b.display(),
        real.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An RSA key pair made by openssl: (private PEM, public PEM).
pub fn rsa_pair(dir: &Path, name: &str, bits: u32) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    sh(&format!(
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{bits} -out '{}' 2>/dev/null \
         && openssl pkey -in '{}' -pubout -out '{}'",
        private.display(),
        private.display(),
        public.display()
    ));
    (private, public)
}

/// `vaultfs ARGS` with the test passphrase and the vault clock read from `clock` (a file of ns
/// since the epoch; `test-clock` builds).
pub fn vaultfs_at(clock: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env("VAULTFS_TEST_CLOCK", clock)
        .env_remove("RUST_LOG")
        .output()
        .expect("run vaultfs")
}
