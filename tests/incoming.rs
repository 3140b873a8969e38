//! Acceptance tests of the writable incoming area (issue 4): real FUSE mounts through the
//! `vaultfs` binary, real rsync, cp, tar and git writing into `MNT/incoming/ITEM/`, and
//! `vaultfs snapshot` turning it into recovery points. Every test has its own vault, sources and
//! mount point in a private temp dir and holds a [`Mount`] guard that always unmounts.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::mnt::*;
use common::*;

const ITEM: &str = "home";

// ---------------------------------------------------------------------------------------------
// helpers

/// Wait (the kernel caches entries and links for 1 s) until `points/ITEM/POINT` is
/// listed and `points/ITEM/latest` points to it; returns `points/ITEM/latest/`.
#[track_caller]
fn latest_is(m: &Mount, item: &str, point: &str) -> PathBuf {
    let dir = m.path(&format!("points/{item}"));
    let there = wait_until(Duration::from_secs(30), || {
        fs::read_dir(&dir).is_ok()
            && names_in(&dir).iter().any(|n| n == point)
            && latest_target(m, item).as_deref() == Some(point)
    });
    assert!(
        there,
        "point {item}/{point} not shown as latest: points/{item} = {:?}, latest -> {:?}",
        fs::read_dir(&dir).map(|_| names_in(&dir)).ok(),
        latest_target(m, item)
    );
    m.latest(item)
}

/// Log how long a test took to get here (shown with --nocapture or on failure).
fn phase(start: Instant, what: &str) {
    eprintln!("{:>8.2?} {what}", start.elapsed());
}

/// `MNT/incoming/ITEM`.
fn incoming(m: &Mount, item: &str) -> PathBuf {
    m.path(&format!("incoming/{item}"))
}

/// `MNT/points/ITEM/POINT`.
fn point_dir(m: &Mount, item: &str, point: &str) -> PathBuf {
    m.path(&format!("points/{item}/{point}"))
}

/// `rsync -aHX -n -i --delete SRC/ DST/` must report nothing left to do.
#[track_caller]
fn assert_rsync_clean(src: &Path, dst: &Path) {
    let out = rsync(&["-aHX", "-n", "-i", "--delete"], src, dst);
    assert!(
        out.trim().is_empty(),
        "rsync -n -i finds differences between {} and {}:\n{out}",
        s(src),
        s(dst)
    );
}

/// The number after `label` in `rsync --stats` output (thousands separators dropped).
fn rsync_stat(stats: &str, label: &str) -> u64 {
    let line = stats
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in rsync stats:\n{stats}"));
    let digits: String = line[label.len()..]
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap()
}

/// Set atime and mtime of `p` (not following symlinks) to `sec.nsec`.
fn set_times(p: &Path, sec: i64, nsec: i64) {
    // SAFETY: timespec is plain old data.
    let mut ts: [libc::timespec; 2] = unsafe { std::mem::zeroed() };
    for t in &mut ts {
        t.tv_sec = sec;
        t.tv_nsec = nsec;
    }
    let c = cpath(p);
    // SAFETY: valid NUL-terminated path and a two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    libc_result(r).unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

/// `llistxattr(p)`, sorted.
fn list_xattrs(p: &Path) -> Vec<String> {
    let c = cpath(p);
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid NUL-terminated path; buf is a live buffer of its length.
    let r = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(
        r >= 0,
        "listxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    let mut v: Vec<String> = buf[..r as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    v.sort();
    v
}

/// Deviations that a test notes and goes on after (each printed as found), reported together
/// at its end by [`Problems::assert_none`].
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    #[track_caller]
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let msg = format!("line {}: {}", std::panic::Location::caller().line(), what());
            eprintln!("problem: {msg}");
            self.0.push(msg);
        }
    }

    #[track_caller]
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        let ok = got == want;
        self.check(ok, || format!("{what}: {got:?}, want {want:?}"));
    }

    /// `r` must fail with one of `errnos`; with no errnos, it must succeed.
    #[track_caller]
    fn errno<T: std::fmt::Debug>(&mut self, what: &str, r: std::io::Result<T>, errnos: &[i32]) {
        let msg = match (&r, errnos.is_empty()) {
            (Ok(_), true) => None,
            (Err(e), true) => Some(format!("{what} failed: {e}")),
            (Ok(v), false) => Some(format!("{what} succeeded ({v:?}); want errno {errnos:?}")),
            (Err(e), false) if e.raw_os_error().is_some_and(|n| errnos.contains(&n)) => None,
            (Err(e), false) => Some(format!("{what}: want errno {errnos:?}, got: {e}")),
        };
        if let Some(msg) = msg {
            self.check(false, || msg);
        }
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} deviation(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn write_file(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Add to `root` (next to what [`make_rich_tree`] puts there): `n_small` small files (0-6 KB,
/// text and binary) in 200 nested directories under `tree/`, `n_big` 4 MiB noise files under
/// `big/`, a hard-link group of three and ten pairs under `hl/` + `links/`, relative, absolute
/// and directory symlinks, xattrs (also binary and on a directory), modes and owners, and old
/// mtimes with distinct nanoseconds on everything (see [`make_rich_tree`] on why old).
fn add_files(root: &Path, n_small: usize, n_big: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut made = Vec::new();
    for i in 0..n_small {
        let rel = format!("tree/d{}/s{}/f{i}.txt", i % 10, (i / 10) % 20);
        let len = rng.random_range(0..6000usize);
        let data = if i % 2 == 0 {
            noise(len, seed * 1_000_003 + i as u64)
        } else {
            let mut t = format!("file {i} of tree {seed}, a line of text\n")
                .repeat(len / 30 + 1)
                .into_bytes();
            t.truncate(len);
            t
        };
        let p = root.join(&rel);
        write_file(&p, &data);
        if i % 7 == 0 {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        } else if i % 11 == 0 {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        if i % 13 == 0 {
            std::os::unix::fs::chown(&p, Some(1000 + i as u32 % 5), Some(2000 + i as u32 % 3))
                .unwrap();
        }
        if i % 97 == 0 {
            set_xattr(&p, "user.idx", i.to_string().as_bytes()).unwrap();
            set_xattr(&p, "user.bin", &[0, 1, 2, 255, 10]).unwrap();
        }
        made.push(p);
    }
    for k in 0..n_big {
        let p = root.join(format!("big/noise{k}.bin"));
        write_file(&p, &noise(4 << 20, seed * 7919 + k as u64));
        made.push(p);
    }
    if n_big > 0 {
        set_xattr(&root.join("big/noise0.bin"), "user.big", &noise(300, seed)).unwrap();
    }
    fs::create_dir_all(root.join("links")).unwrap();
    for k in 0..10 {
        let target = root.join(format!("hl/f{k}"));
        write_file(
            &target,
            format!("hard-linked file {k} of tree {seed}\n").as_bytes(),
        );
        fs::hard_link(&target, root.join(format!("links/h{k}"))).unwrap();
        std::os::unix::fs::symlink(
            format!("../tree/d{k}/s0/f{k}.txt"),
            root.join(format!("links/s{k}")),
        )
        .unwrap();
    }
    fs::hard_link(root.join("hl/f3"), root.join("links/h3b")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute/target", root.join("links/abs")).unwrap();
    std::os::unix::fs::symlink("../tree/d1", root.join("links/dirlink")).unwrap();
    if n_small > 2 {
        set_xattr(&root.join("tree/d2"), "user.dir", b"yes").unwrap();
    }
    for dir in ["tree", "big", "links", "hl"] {
        if root.join(dir).exists() {
            made.push(root.join(dir));
            made.extend(walk(&root.join(dir)));
        }
    }
    made.sort();
    made.dedup();
    for (i, p) in made.iter().enumerate() {
        set_times(
            p,
            1_100_000_000 + i as i64,
            (i as i64 * 7919 + 13) % 1_000_000_000,
        );
    }
}

/// [`make_rich_tree`] with its 50 MB sparse file replaced by a 6 MB one (cheaper to write
/// through the mount many times).
fn make_rich_tree_light(root: &Path) {
    make_rich_tree(root);
    let sparse = root.join("sparse");
    fs::remove_file(&sparse).unwrap();
    sh(&format!(
        "truncate -s 6M '{0}' && printf 'tail' | dd of='{0}' bs=1 seek=5000000 conv=notrunc status=none",
        s(&sparse)
    ));
    set_times(&sparse, 1_049_511_628, 123_456_789);
}

/// Give every symlink and fifo under `root` an old mtime: rsync leaves the mtime of a symlink
/// or special file alone when it equals, to the second, that of the copy it just made (see
/// [`make_rich_tree`]), which makes entries created just before an rsync compare unequal.
fn age_specials(root: &Path) {
    for (i, p) in walk(root).iter().enumerate() {
        let ft = fs::symlink_metadata(p).unwrap().file_type();
        if ft.is_symlink() || std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
            set_times(p, 1_000_000_000 + i as i64, 500_000_000 + i as i64);
        }
    }
}

/// zstd-compressed size of the regular files under `root`, each inode counted once: about
/// what a deduplicating, compressing store needs for one copy.
fn compressed_unique_bytes(root: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for p in walk(root) {
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_file() && seen.insert(md.ino()) {
            let data = fs::read(&p).unwrap();
            total += zstd::bulk::compress(&data, 3).unwrap().len() as u64;
        }
    }
    total
}

/// `cp -a SRC DST` (keeps hard links, xattrs, owners and ns times).
fn copy_tree(src: &Path, dst: &Path) {
    sh(&format!("cp -a '{}' '{}'", s(src), s(dst)));
}

/// Read every regular file under `dir`; any error (EIO, ENOENT...) fails.
fn read_every_file(dir: &Path) -> usize {
    let mut n = 0;
    for p in walk(dir) {
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_file() {
            let data = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            assert_eq!(data.len() as u64, md.len(), "size of {}", p.display());
            n += 1;
        }
    }
    n
}

fn fsync_path(p: &Path) {
    File::open(p)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("fsync {}: {e}", p.display()));
}

/// Paths of files under `root` (recursively, not following symlinks) whose bytes contain one
/// of `needles`, with the needle found.
fn files_containing(root: &Path, needles: &[&[u8]]) -> Vec<(PathBuf, String)> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                stack.push(p.clone());
            } else if md.is_file() {
                // Files may vanish while the daemon runs (temp files): skip those.
                let Ok(data) = fs::read(&p) else { continue };
                for n in needles {
                    if data.windows(n.len()).any(|w| w == *n) {
                        hits.push((p.clone(), String::from_utf8_lossy(n).into_owned()));
                    }
                }
            } else if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap_or_default();
                let t = t.as_os_str().as_encoded_bytes();
                for n in needles {
                    if t.windows(n.len()).any(|w| w == *n) {
                        hits.push((p.clone(), String::from_utf8_lossy(n).into_owned()));
                    }
                }
            }
            // The names themselves must not leak either.
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            for n in needles {
                if name.windows(n.len()).any(|w| w == *n) {
                    hits.push((p.clone(), format!("name {}", String::from_utf8_lossy(n))));
                }
            }
        }
    }
    hits
}

fn random_hex(rng: &mut impl Rng, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rng.fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. rsync of a real tree, then snapshot

#[test]
fn rsync_a_real_tree_into_incoming_then_snapshot() {
    let t0 = Instant::now();
    let f = Fixture::new();
    make_rich_tree(&f.src);
    add_files(&f.src, 2000, 3, 1);
    // One flat directory of 1500 entries (readdir across many FUSE buffers).
    let flat = f.src.join("flat");
    fs::create_dir(&flat).unwrap();
    for i in 0..1500 {
        let p = flat.join(format!("entry-with-a-longer-name-{i:05}"));
        fs::write(&p, format!("{i}\n")).unwrap();
        set_times(&p, 1_150_000_000 + i, 42);
    }
    phase(t0, "source made");
    let m = Mount::new(&f.vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();

    rsync(&["-aHX", "--delete"], &f.src, &inc);
    phase(t0, "rsync into incoming");
    assert_rsync_clean(&f.src, &inc);
    phase(t0, "rsync -n -i");
    assert_diff_clean(&f.src, &inc);
    phase(t0, "diff -r");
    assert_same_tree(&f.src, &inc);
    phase(t0, "same tree");

    let point = snapshot(&f.mnt, ITEM);
    phase(t0, "snapshot");
    let latest = latest_is(&m, ITEM, &point);
    assert_same_tree(&f.src, &latest);
    assert_diff_clean(&f.src, &latest);
    phase(t0, "point compared");

    // The vault holds the data once (incoming and the point share chunks): about one
    // compressed copy. A snapshot with nothing changed adds next to nothing.
    let stored = dir_bytes(&f.vault);
    let compressed = compressed_unique_bytes(&f.src);
    eprintln!("vault {stored} bytes for {compressed} bytes of compressed unique content");
    assert!(
        stored < compressed + compressed / 10 + (4 << 20),
        "the vault holds {stored} bytes for {compressed} bytes of compressed content"
    );
    let again = snapshot(&f.mnt, ITEM);
    assert_ne!(again, point);
    let grown = dir_bytes(&f.vault).saturating_sub(stored);
    assert!(
        grown < 256 << 10,
        "a snapshot of an unchanged tree added {grown} bytes"
    );
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &again));
    phase(t0, "vault size checked");

    // Incoming keeps its content after the snapshot: nothing to send again.
    assert_rsync_clean(&f.src, &inc);
    assert_same_tree(&f.src, &inc);
    let listed = ok(&["points", s(&f.vault), ITEM]);
    assert!(listed.contains(&point), "{listed}");
    ok(&["check", s(&f.vault), "--read-data"]);
    assert!(alive(m.pid()));
    phase(t0, "incoming compared again, check --read-data");
    drop(m);
    phase(t0, "unmounted");
    drop(f);
    phase(t0, "temp dir removed");
}

// ---------------------------------------------------------------------------------------------
// 2. incremental: mutate, rsync again, snapshot

/// What [`mutate`] changed.
struct Mutation {
    /// Upper estimate of the new data the vault must store (64 KiB average chunks: a change
    /// inside a file re-stores at most two maximum-size (256 KiB) chunks around it).
    new_bytes: u64,
    /// Regular files rsync has to send (modified, added, and those under the renamed dir).
    transfers: u64,
}

/// Modify, add and delete files and rename a directory in a tree made by [`add_files`] with
/// ≥ 1000 small files and ≥ 4 big ones.
fn mutate(root: &Path, seed: u64) -> Mutation {
    const CHUNK_MAX: u64 = 256 << 10;
    let mut new_bytes = 0;
    let mut transfers = 0;
    let mut touched = Vec::new();
    // Modify 50 small files (new content, new length).
    for i in (0..500).filter(|i| i % 10 == 1) {
        let p = root.join(format!("tree/d1/s{}/f{i}.txt", (i / 10) % 20));
        let data = noise(1000 + i * 3, seed * 31 + i as u64);
        new_bytes += data.len() as u64;
        fs::write(&p, data).unwrap();
        transfers += 1;
        touched.push(p);
    }
    // Overwrite 4 KiB in the middle of two big files, append 100 KiB to a third.
    for k in 0..2 {
        let p = root.join(format!("big/noise{k}.bin"));
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&noise(4096, seed * 17 + k), 2 << 20)
            .unwrap();
        new_bytes += 2 * CHUNK_MAX;
        transfers += 1;
        touched.push(p);
    }
    let p = root.join("big/noise2.bin");
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(&noise(100 << 10, seed * 19)).unwrap();
    new_bytes += CHUNK_MAX + (100 << 10);
    transfers += 1;
    touched.push(p);
    // Delete a big file and 100 small ones.
    fs::remove_file(root.join("big/noise3.bin")).unwrap();
    for i in (0..1000).filter(|i| i % 10 == 8) {
        fs::remove_file(root.join(format!("tree/d8/s{}/f{i}.txt", (i / 10) % 20))).unwrap();
    }
    // Add a 1 MiB file, 100 small ones and a symlink.
    let p = root.join("big/added.bin");
    write_file(&p, &noise(1 << 20, seed * 23));
    new_bytes += 1 << 20;
    transfers += 1;
    touched.push(p);
    for j in 0..100 {
        let p = root.join(format!("tree/new/n{j}.txt"));
        let data = format!("new file {j} of mutation {seed}\n").repeat(j + 1);
        new_bytes += data.len() as u64;
        write_file(&p, data.as_bytes());
        transfers += 1;
        touched.push(p);
    }
    touched.push(root.join("tree/new"));
    std::os::unix::fs::symlink("new/n1.txt", root.join("tree/new-link")).unwrap();
    touched.push(root.join("tree/new-link"));
    // Rename a directory (its files are new paths to rsync, but their data dedups).
    let renamed: u64 = walk(&root.join("tree/d9"))
        .iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().is_file())
        .count() as u64;
    fs::rename(root.join("tree/d9"), root.join("tree/d9-renamed")).unwrap();
    transfers += renamed;
    for (i, p) in touched.iter().enumerate() {
        set_times(
            p,
            1_200_000_000 + i as i64,
            (i as i64 * 104_729 + 7) % 1_000_000_000,
        );
    }
    Mutation {
        new_bytes,
        transfers,
    }
}

#[test]
fn incremental_rsync_stores_only_the_change() {
    let f = Fixture::with_init(|v| init_vault_with(v, &["--chunk-avg", "65536"]));
    make_rich_tree(&f.src);
    add_files(&f.src, 1500, 4, 2);
    let mut m = Mount::new(&f.vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();
    rsync(&["-aHX", "--delete"], &f.src, &inc);
    let p1 = snapshot(&f.vault, ITEM);
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &p1));

    let old = f.root.join("src-old");
    copy_tree(&f.src, &old);
    let change = mutate(&f.src, 2);

    ok(&["umount", s(&f.mnt)]);
    let before = dir_bytes(&f.vault);
    m.mount();

    let stats = rsync(&["-aHX", "--delete", "--stats"], &f.src, &inc);
    let sent = rsync_stat(&stats, "Number of regular files transferred");
    assert_eq!(
        sent, change.transfers,
        "the second rsync should send only what changed (incoming kept its metadata):\n{stats}"
    );
    assert_rsync_clean(&f.src, &inc);
    let p2 = snapshot(&f.vault, ITEM);
    assert_ne!(p1, p2);
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &p2));
    assert_same_tree(&old, &point_dir(&m, ITEM, &p1));
    assert_diff_clean(&old, &point_dir(&m, ITEM, &p1));
    assert_same_tree(&f.src, &inc);

    ok(&["umount", s(&f.mnt)]);
    let after = dir_bytes(&f.vault);
    let grown = after.saturating_sub(before);
    let bound = 3 * change.new_bytes + (2 << 20);
    eprintln!(
        "vault {before} -> {after} bytes: grew {grown}, new data ≤ {}, bound {bound}, tree {}",
        change.new_bytes,
        dir_bytes(&f.src)
    );
    assert!(
        grown < bound,
        "the vault grew by {grown} bytes for ≤ {} bytes of new data (bound {bound})",
        change.new_bytes
    );

    // Both points stay as they were after a remount.
    m.mount();
    assert_same_tree(&old, &point_dir(&m, ITEM, &p1));
    assert_same_tree(&f.src, &point_dir(&m, ITEM, &p2));
}

// ---------------------------------------------------------------------------------------------
// 3. randomized file operations against a local reference

const RAND_MAX_LEN: u64 = 3 << 20;

/// A file in incoming and its local reference, both open read-write.
struct Twin {
    name: String,
    inc_path: PathBuf,
    ref_path: PathBuf,
    inc: Option<File>,
    reff: Option<File>,
}

impl Twin {
    fn new(name: &str, inc_dir: &Path, ref_dir: &Path) -> Twin {
        let mut t = Twin {
            name: name.to_string(),
            inc_path: inc_dir.join(name),
            ref_path: ref_dir.join(name),
            inc: None,
            reff: None,
        };
        t.open(false);
        t
    }

    fn open(&mut self, truncate: bool) {
        let o = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(truncate)
                .open(p)
                .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
        };
        self.inc = Some(o(&self.inc_path));
        self.reff = Some(o(&self.ref_path));
    }

    fn close(&mut self) {
        self.inc = None;
        self.reff = None;
    }

    fn inc(&self) -> &File {
        self.inc.as_ref().expect("open")
    }

    fn reff(&self) -> &File {
        self.reff.as_ref().expect("open")
    }

    fn len(&self) -> u64 {
        self.reff().metadata().unwrap().len()
    }

    /// The whole file through a fresh open must equal the reference.
    #[track_caller]
    fn assert_same(&self, log: &[String]) {
        let want = fs::read(&self.ref_path).unwrap();
        let got = fs::read(&self.inc_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.inc_path.display()));
        assert_content(&self.name, &got, &want, log);
    }
}

#[track_caller]
fn assert_content(what: &str, got: &[u8], want: &[u8], log: &[String]) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let tail = &log[log.len().saturating_sub(15)..];
        panic!(
            "{what}: content differs (len {} vs reference {}, first difference at byte {first}); \
             last ops:\n{}",
            got.len(),
            want.len(),
            tail.join("\n")
        );
    }
}

fn read_at_full(f: &File, off: u64, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = f.read_at(&mut buf[got..], off + got as u64).unwrap();
        if k == 0 {
            break;
        }
        got += k;
    }
    buf.truncate(got);
    buf
}

/// `ops` random operations, each applied to the incoming file and its reference.
fn random_ops(rng: &mut StdRng, twins: &mut [Twin], ops: usize, log: &mut Vec<String>) {
    for n in 0..ops {
        let t = &mut twins[rng.random_range(0..2usize)];
        let len = t.len();
        let size = |rng: &mut StdRng| -> usize {
            match rng.random_range(0..100) {
                0..70 => rng.random_range(1..4096),
                70..95 => rng.random_range(4096..131_072),
                _ => rng.random_range(131_072..(1 << 20)),
            }
        };
        let op = rng.random_range(0..100);
        match op {
            0..35 => {
                let off = rng.random_range(0..=(len + 65536).min(RAND_MAX_LEN - 1));
                let k = size(rng).min((RAND_MAX_LEN - off) as usize);
                let mut data = vec![0u8; k];
                rng.fill(&mut data[..]);
                log.push(format!("{n}: {} pwrite {k} @ {off} (len {len})", t.name));
                t.inc()
                    .write_all_at(&data, off)
                    .unwrap_or_else(|e| panic!("pwrite {} @ {off}: {e}", t.name));
                t.reff().write_all_at(&data, off).unwrap();
            }
            35..55 => {
                let off = rng.random_range(0..=len + 100);
                let k = size(rng);
                log.push(format!("{n}: {} pread {k} @ {off} (len {len})", t.name));
                let got = read_at_full(t.inc(), off, k);
                let want = read_at_full(t.reff(), off, k);
                assert_content(&format!("pread of {} at {off}", t.name), &got, &want, log);
            }
            55..65 => {
                let new = rng.random_range(0..=(len + len / 5 + 65536).min(RAND_MAX_LEN));
                log.push(format!("{n}: {} set_len {new} (len {len})", t.name));
                t.inc()
                    .set_len(new)
                    .unwrap_or_else(|e| panic!("ftruncate {} to {new}: {e}", t.name));
                t.reff().set_len(new).unwrap();
            }
            65..72 => {
                let k = size(rng).min((RAND_MAX_LEN.saturating_sub(len)) as usize);
                let mut data = vec![0u8; k];
                rng.fill(&mut data[..]);
                log.push(format!("{n}: {} O_APPEND write {k} (len {len})", t.name));
                for p in [&t.inc_path, &t.ref_path] {
                    let mut a = OpenOptions::new()
                        .append(true)
                        .open(p)
                        .unwrap_or_else(|e| panic!("open O_APPEND {}: {e}", p.display()));
                    a.write_all(&data)
                        .unwrap_or_else(|e| panic!("append to {}: {e}", p.display()));
                }
            }
            72..80 => {
                log.push(format!("{n}: {} close and reopen", t.name));
                t.close();
                t.open(false);
            }
            80..81 => {
                log.push(format!("{n}: {} reopen with O_TRUNC", t.name));
                t.close();
                t.open(true);
            }
            81..86 => {
                log.push(format!("{n}: {} fsync", t.name));
                t.inc()
                    .sync_all()
                    .unwrap_or_else(|e| panic!("fsync {}: {e}", t.name));
            }
            86..90 => {
                // Overwrite the whole file with new content of another length.
                let k = rng.random_range(0..(RAND_MAX_LEN as usize / 2));
                let mut data = vec![0u8; k];
                rng.fill(&mut data[..]);
                log.push(format!(
                    "{n}: {} overwrite whole with {k} (len {len})",
                    t.name
                ));
                for f in [t.inc(), t.reff()] {
                    f.write_all_at(&data, 0).unwrap();
                    f.set_len(k as u64).unwrap();
                }
            }
            _ => {
                // Sequential writes through the file offset.
                let off = rng.random_range(0..=len.min(RAND_MAX_LEN - 1));
                let pieces = rng.random_range(1..6u64);
                let k = rng
                    .random_range(1..16384u64)
                    .min((RAND_MAX_LEN - off) / pieces);
                let mut data = vec![0u8; k as usize];
                log.push(format!(
                    "{n}: {} seek {off} + {pieces} writes of {k} (len {len})",
                    t.name
                ));
                for mut f in [t.inc(), t.reff()] {
                    f.seek(SeekFrom::Start(off)).unwrap();
                }
                for _ in 0..pieces {
                    rng.fill(&mut data[..]);
                    for mut f in [t.inc(), t.reff()] {
                        f.write_all(&data)
                            .unwrap_or_else(|e| panic!("write {}: {e}", t.name));
                    }
                }
            }
        }
        let (got, want) = (t.inc().metadata().unwrap().len(), t.len());
        if got != want {
            panic!(
                "fstat size of {} is {got}, reference {want}; last ops:\n{}",
                t.name,
                log[log.len().saturating_sub(15)..].join("\n")
            );
        }
        if n % 250 == 249 {
            for t in twins.iter() {
                t.assert_same(log);
            }
        }
    }
    for t in twins.iter() {
        t.assert_same(log);
    }
}

#[test]
fn random_file_operations_match_a_local_file() {
    let f = Fixture::new();
    let refdir = f.dir("reference");
    let mut m = Mount::new(&f.vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    let mut log = Vec::new();
    let mut twins = [
        Twin::new("rand-a.bin", &inc, &refdir),
        Twin::new("rand-b.bin", &inc, &refdir),
    ];
    let saved = |twins: &[Twin]| -> Vec<Vec<u8>> {
        twins
            .iter()
            .map(|t| fs::read(&t.ref_path).unwrap())
            .collect()
    };
    let check_point = |m: &Mount, point: &str, want: &[Vec<u8>], log: &[String]| {
        for (t, w) in twins_names().iter().zip(want) {
            let p = point_dir(m, ITEM, point).join(t);
            let got = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            assert_content(&format!("{t} in point {point}"), &got, w, log);
        }
    };

    random_ops(&mut rng, &mut twins, 2500, &mut log);

    // A snapshot with both files open and written to.
    let p1 = snapshot(&f.mnt, ITEM);
    let at_p1 = saved(&twins);
    latest_is(&m, ITEM, &p1);
    check_point(&m, &p1, &at_p1, &log);
    for t in &twins {
        t.assert_same(&log);
    }

    // More writes to the same open files must not change the point.
    random_ops(&mut rng, &mut twins, 1500, &mut log);
    check_point(&m, &p1, &at_p1, &log);

    // Remount: incoming as left, the point unchanged.
    for t in &mut twins {
        t.close();
    }
    let before_umount = saved(&twins);
    ok(&["umount", s(&f.mnt)]);
    m.mount();
    for t in &twins {
        t.assert_same(&log);
    }
    check_point(&m, &p1, &at_p1, &log);
    let p2 = snapshot(&f.vault, ITEM);
    latest_is(&m, ITEM, &p2);
    check_point(&m, &p2, &before_umount, &log);

    // Keep going on the remounted files, snapshot again.
    for t in &mut twins {
        t.open(false);
    }
    random_ops(&mut rng, &mut twins, 1000, &mut log);
    for t in &mut twins {
        t.close();
    }
    let p3 = snapshot(&f.mnt, ITEM);
    latest_is(&m, ITEM, &p3);
    check_point(&m, &p3, &saved(&twins), &log);
    check_point(&m, &p2, &before_umount, &log);
    check_point(&m, &p1, &at_p1, &log);
    ok(&["umount", s(&f.mnt)]);
    m.mount();
    for t in &twins {
        t.assert_same(&log);
    }
    check_point(&m, &p3, &saved(&twins), &log);
    check_point(&m, &p1, &at_p1, &log);
}

fn twins_names() -> [&'static str; 2] {
    ["rand-a.bin", "rand-b.bin"]
}

// ---------------------------------------------------------------------------------------------
// 4. the usual tools write into incoming

#[test]
fn rsync_inplace_partial_cp_tar_and_git_clone_into_incoming() {
    let t0 = Instant::now();
    let f = Fixture::new();
    make_rich_tree_light(&f.src);
    add_files(&f.src, 300, 1, 4);
    let m = Mount::new(&f.vault, &f.mnt);
    let item = |name: &str| {
        let p = incoming(&m, name);
        fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    };

    // rsync --inplace: an old version first, then the new one updated in place with the delta
    // algorithm (reads and random writes into files already in incoming).
    let old = f.root.join("src-old");
    copy_tree(&f.src, &old);
    {
        let big = old.join("big/noise0.bin");
        let h = OpenOptions::new().write(true).open(&big).unwrap();
        h.write_all_at(&noise(50_000, 99), 1_000_000).unwrap();
        h.set_len(3 << 20).unwrap();
        let lorem = old.join("text/lorem.txt");
        let mut t = fs::read(&lorem).unwrap();
        t.extend_from_slice(b"an extra tail that the new version does not have\n");
        fs::write(&lorem, t).unwrap();
        fs::write(old.join("small.txt"), b"old").unwrap();
        fs::write(old.join("only-in-old.txt"), b"deleted later\n").unwrap();
    }
    let inplace = item("inplace");
    rsync(&["-aHX", "--delete", "--inplace"], &old, &inplace);
    assert_same_tree(&old, &inplace);
    rsync(
        &["-aHX", "--delete", "--inplace", "--no-whole-file"],
        &f.src,
        &inplace,
    );
    assert_rsync_clean(&f.src, &inplace);
    assert_diff_clean(&f.src, &inplace);
    assert_same_tree(&f.src, &inplace);

    phase(t0, "rsync --inplace");
    // rsync --partial: interrupted (SIGINT to the group, like ^C) mid-file, the partial file is
    // kept; a second run with the delta algorithm completes it.
    let psrc = f.dir("partial-src");
    write_file(&psrc.join("big.bin"), &noise(8 << 20, 77));
    write_file(&psrc.join("small.txt"), b"small\n");
    let partial = item("partial");
    let mut child = Command::new("rsync")
        .args(["-aHX", "--partial", "--bwlimit=2000"])
        .arg(format!("{}/", s(&psrc)))
        .arg(format!("{}/", s(&partial)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Interrupt once rsync's temp file holds at least 1 MiB (of 8 MiB at ~2 MB/s).
    let temp_len = || -> u64 {
        fs::read_dir(&partial)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".big.bin."))
            .filter_map(|e| e.metadata().ok())
            .map(|md| md.len())
            .max()
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || temp_len() >= 1 << 20),
        "rsync --partial did not get 1 MiB into its temp file"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "rsync --bwlimit finished too early"
    );
    // SAFETY: kill(2) of the process group of the rsync this test started.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let st = child.wait().unwrap();
    assert!(!st.success(), "interrupted rsync should fail");
    // rsync's receiver, a grandchild, keeps the partial file after the main process exits.
    let pgid = child.id() as i32;
    wait_until(Duration::from_secs(30), || {
        // SAFETY: signal 0 only checks whether the group still has processes.
        let r = unsafe { libc::kill(-pgid, 0) };
        r != 0
    });
    wait_until(Duration::from_secs(30), || partial.join("big.bin").exists());
    let kept = fs::read(partial.join("big.bin")).expect("rsync --partial keeps the partial file");
    let full = fs::read(psrc.join("big.bin")).unwrap();
    assert!(
        !kept.is_empty() && kept.len() < full.len(),
        "partial file of {} bytes",
        kept.len()
    );
    assert!(
        kept[..] == full[..kept.len()],
        "the partial file is not a prefix of the source"
    );
    rsync(&["-aHX", "--partial", "--no-whole-file"], &psrc, &partial);
    assert_rsync_clean(&psrc, &partial);
    assert_same_tree(&psrc, &partial);

    phase(t0, "rsync --partial");
    // cp -a and tar -x (of a pax archive: ns times, xattrs), both at once into two items, each
    // compared with the same command into a local directory.
    let tarball = f.root.join("src.tar");
    sh(&format!(
        "tar --format=posix --xattrs --xattrs-include='*' -C '{}' -cf '{}' .",
        s(&f.src),
        s(&tarball)
    ));
    let (cp, tar) = (item("cp"), item("tar"));
    let (local_cp, local_tar) = (f.dir("local-cp"), f.dir("local-tar"));
    let cp_cmd = |dir: &Path| format!("cp -a '{}/.' '{}/'", s(&f.src), s(dir));
    let tar_cmd = |dir: &Path| {
        format!(
            "tar --xattrs --xattrs-include='*' --same-owner -xpf '{}' -C '{}'",
            s(&tarball),
            s(dir)
        )
    };
    std::thread::scope(|scope| {
        let a = scope.spawn(|| sh(&cp_cmd(&cp)));
        let b = scope.spawn(|| sh(&tar_cmd(&tar)));
        a.join().expect("cp -a into incoming");
        b.join().expect("tar -x into incoming");
    });
    sh(&cp_cmd(&local_cp));
    sh(&tar_cmd(&local_tar));
    assert_same_tree(&local_cp, &cp);
    assert_diff_clean(&f.src, &cp);
    assert_same_tree(&local_tar, &tar);
    assert_diff_clean(&f.src, &tar);

    phase(t0, "cp -a and tar -x");
    // git clone of a local repository, then work in the clone.
    let repo = f.dir("repo");
    let git = |dir: &Path, args: &str| -> String {
        sh(&format!(
            "export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_COUNT=4 \
             GIT_CONFIG_KEY_0=user.name GIT_CONFIG_VALUE_0=Test \
             GIT_CONFIG_KEY_1=user.email GIT_CONFIG_VALUE_1=test@example.com \
             GIT_CONFIG_KEY_2=init.defaultBranch GIT_CONFIG_VALUE_2=main \
             GIT_CONFIG_KEY_3=safe.directory GIT_CONFIG_VALUE_3='*'; cd '{}' && git {args}",
            s(dir)
        ))
    };
    git(&repo, "init -q");
    write_file(&repo.join("README"), b"a repository\n");
    write_file(&repo.join("src/main.c"), b"int main(void) { return 0; }\n");
    write_file(&repo.join("data/blob.bin"), &noise(200_000, 5));
    write_file(&repo.join("run.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(repo.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/main.c", repo.join("main-link")).unwrap();
    git(&repo, "add -A && git commit -q -m one");
    write_file(&repo.join("src/util.c"), b"int util(void) { return 1; }\n");
    fs::write(repo.join("README"), b"a repository, second version\n").unwrap();
    git(&repo, "add -A && git commit -q -m two");
    let gitdir = item("git");
    git(&gitdir, &format!("clone -q '{}' clone", s(&repo)));
    let clone = gitdir.join("clone");
    git(&clone, "fsck --full --strict");
    assert_eq!(git(&clone, "status --porcelain"), "");
    assert_eq!(git(&clone, "log --oneline").lines().count(), 2);
    sh(&format!(
        "diff -r --no-dereference --exclude=.git '{}' '{}'",
        s(&repo),
        s(&clone)
    ));
    fs::write(clone.join("src/main.c"), b"int main(void) { return 2; }\n").unwrap();
    git(
        &clone,
        "commit -q -am three && git gc -q && git fsck --full --strict",
    );
    assert_eq!(git(&clone, "status --porcelain"), "");
    let head = git(&clone, "rev-parse HEAD");

    phase(t0, "git");
    // Every item snapshots to a point equal to its incoming tree.
    for name in ["inplace", "partial", "cp", "tar", "git"] {
        let point = snapshot(&f.mnt, name);
        phase(t0, &format!("snapshot of {name}"));
        let latest = latest_is(&m, name, &point);
        assert_same_tree(&incoming(&m, name), &latest);
        phase(t0, &format!("point of {name} compared"));
    }
    assert_same_tree(&f.src, &m.latest("inplace"));
    let pclone = m.latest("git").join("clone");
    git(&pclone, "--no-optional-locks fsck --full --strict");
    assert_eq!(git(&pclone, "--no-optional-locks rev-parse HEAD"), head);
    assert_eq!(
        git(&pclone, "--no-optional-locks status --porcelain"),
        "",
        "the cloned repository in the point"
    );
    phase(t0, "snapshots compared");
}

// ---------------------------------------------------------------------------------------------
// 5. kill -9 of the daemon during an rsync

/// Files (not rsync's dot-named temp files) in the directories under `dir`, counted while rsync
/// writes there: entries may come and go between listing and looking.
fn small_files_in(dir: &Path) -> usize {
    let Ok(top) = fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    let mut dirs: Vec<PathBuf> = top.flatten().map(|e| e.path()).collect();
    while let Some(d) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(e.path()),
                Ok(t) if t.is_file() && !e.file_name().to_string_lossy().starts_with('.') => n += 1,
                _ => {}
            }
        }
    }
    n
}

#[test]
fn kill_9_during_rsync_then_remount_and_finish() {
    let f = Fixture::new();
    make_rich_tree_light(&f.src);
    let mut m = Mount::new(&f.vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();
    rsync(&["-aHX", "--delete"], &f.src, &inc);
    let p1 = snapshot(&f.mnt, ITEM);
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &p1));

    // Fsynced data survives a crash.
    let fsynced = noise(1 << 20, 55);
    {
        let mut h = File::create(inc.join("fsynced.bin")).unwrap();
        h.write_all(&fsynced).unwrap();
        h.sync_all().unwrap();
    }
    fsync_path(&inc);

    // A bigger tree: the first tree plus, in `bulk/`, a 4 MiB file and then 2500 small files
    // (~7 MB), sent at ~1.2 MB/s. Once rsync is creating the small files, incoming is fsynced;
    // once it has created a few hundred more, the daemon is killed.
    let src2 = f.root.join("src2");
    copy_tree(&f.src, &src2);
    add_files(&src2.join("bulk"), 2500, 1, 5);

    let mut child = Command::new("rsync")
        .args(["-aHX", "--bwlimit=1200"])
        .arg(format!("{}/", s(&src2)))
        .arg(format!("{}/", s(&inc)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let small_files = || small_files_in(&inc.join("bulk/tree"));
    let started = wait_until(Duration::from_secs(60), || small_files() >= 300);
    assert!(
        started,
        "rsync did not start writing the small files into incoming"
    );
    // An fsync of the item directory mid-rsync: its entries (bulk/ among them) are durable,
    // and the daemon saves the tree as it is at that moment, half-written files and all.
    fsync_path(&inc);
    let at_fsync = small_files();
    let more = wait_until(Duration::from_secs(60), || {
        small_files() >= at_fsync + 300 || child.try_wait().unwrap().is_some()
    });
    assert!(more, "rsync wrote no more files after the fsync");
    assert!(
        child.try_wait().unwrap().is_none(),
        "rsync finished before the kill; the test needs a bigger tree"
    );
    let pid = m.pid();
    // SAFETY: kill(2) of the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(
        wait_until(Duration::from_secs(60), || !alive(pid)),
        "daemon survived kill -9"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rsync hangs after the daemon was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "rsync should fail when the daemon dies");

    m.mount();
    assert_ne!(m.pid(), pid);
    let check = vaultfs(&["check", s(&f.vault), "--read-data"]);
    assert!(
        check.status.success(),
        "check --read-data after kill -9 ({:?}):\n{}{}",
        check.status.code(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_same_tree(&f.src, &point_dir(&m, ITEM, &p1));
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &p1));

    // Incoming: as of its last fsync or snapshot, never torn. Every file reads, the fsynced
    // file is there, and the first tree (which the rsync did not touch) is intact.
    let files = read_every_file(&inc);
    eprintln!(
        "after the crash incoming holds {files} files ({} of bulk/)",
        if inc.join("bulk").exists() {
            read_every_file(&inc.join("bulk"))
        } else {
            0
        }
    );
    assert!(
        inc.join("bulk").is_dir(),
        "bulk/ was in incoming when incoming was fsynced, it must survive kill -9"
    );
    // rsync writes a temp file and renames it once complete. A file under its final name is
    // whole, or (DESIGN §4.1: a file not yet stored when incoming was saved keeps its last
    // stored content, here none, with mtime 0 so the next rsync sends it again) empty with
    // mtime 0; never partly written.
    let (mut whole, mut old, mut torn) = (0, 0, Vec::new());
    for p in walk(&inc.join("bulk")) {
        let rel = p.strip_prefix(&inc).unwrap();
        let md = fs::symlink_metadata(&p).unwrap();
        let temp = p.file_name().unwrap().to_string_lossy().starts_with('.');
        if md.is_file() && !temp {
            let want = fs::read(src2.join(rel)).unwrap();
            if fs::read(&p).unwrap() == want {
                whole += 1;
            } else if md.len() == 0 && (md.mtime(), md.mtime_nsec()) == (0, 0) {
                old += 1;
            } else {
                torn.push(format!(
                    "{} ({} of {} bytes, mtime {}.{:09})",
                    rel.display(),
                    md.len(),
                    want.len(),
                    md.mtime(),
                    md.mtime_nsec()
                ));
            }
        }
    }
    eprintln!("after the crash: {whole} files whole, {old} not stored yet (empty, mtime 0)");
    assert!(
        torn.is_empty(),
        "{} files under their final names are torn after kill -9: {:?}",
        torn.len(),
        &torn[..torn.len().min(10)]
    );
    let got = fs::read(inc.join("fsynced.bin")).expect("the fsynced file survives kill -9");
    assert!(got == fsynced, "content of the fsynced file after kill -9");
    for rel in walk(&f.src) {
        let rel = rel.strip_prefix(&f.src).unwrap();
        let (a, b) = (f.src.join(rel), inc.join(rel));
        let (ma, mb) = (
            fs::symlink_metadata(&a).unwrap(),
            fs::symlink_metadata(&b)
                .unwrap_or_else(|e| panic!("{} after kill -9: {e}", b.display())),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", rel.display());
        if ma.is_file() {
            assert!(
                fs::read(&a).unwrap() == fs::read(&b).unwrap(),
                "content of {} after kill -9",
                rel.display()
            );
        }
    }

    rsync(&["-aHX", "--delete"], &src2, &inc);
    assert_rsync_clean(&src2, &inc);
    let p2 = snapshot(&f.mnt, ITEM);
    assert_same_tree(&src2, &latest_is(&m, ITEM, &p2));
    assert_same_tree(&f.src, &point_dir(&m, ITEM, &p1));
    ok(&["umount", s(&f.mnt)]);
    ok(&["check", s(&f.vault), "--read-data"]);
}

// ---------------------------------------------------------------------------------------------
// 6. confidentiality

#[test]
fn nothing_under_the_vault_reveals_names_or_content() {
    let f = Fixture::new();
    let mut rng = StdRng::seed_from_u64(0xc0ff_ee06 ^ std::process::id() as u64);
    let name = format!("secretname-{}", random_hex(&mut rng, 12));
    let dirname = format!("secretdir-{}", random_hex(&mut rng, 12));
    let content = format!("secretcontent-{}", random_hex(&mut rng, 16));
    let target = format!("secrettarget-{}", random_hex(&mut rng, 12));
    let xname = format!("user.secretattr{}", random_hex(&mut rng, 8));
    let xvalue = format!("secretxattr-{}", random_hex(&mut rng, 12));
    let needles: Vec<&[u8]> = vec![
        name.as_bytes(),
        dirname.as_bytes(),
        content.as_bytes(),
        target.as_bytes(),
        xname.as_bytes(),
        xvalue.as_bytes(),
    ];

    let dir = f.src.join(&dirname);
    let mut text = format!("{content}\n").into_bytes();
    text.extend(noise(256 << 10, 6));
    text.extend(format!("{content}\n").into_bytes());
    write_file(&dir.join(&name), &text);
    write_file(
        &f.src.join("plain.txt"),
        format!("{content}\n").repeat(100).as_bytes(),
    );
    std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
    set_xattr(&dir.join(&name), &xname, xvalue.as_bytes()).unwrap();
    age_specials(&f.src);

    let m = Mount::new(&f.vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();
    let before = dir_bytes(&f.vault);
    rsync(&["-aHX"], &f.src, &inc);
    let file = inc.join(&dirname).join(&name);
    fsync_path(&file);
    fsync_path(&inc.join("plain.txt"));
    fsync_path(&inc.join(&dirname));
    fsync_path(&inc);
    assert!(fs::read(&file).unwrap() == text);
    assert_eq!(get_xattr(&file, &xname).unwrap(), xvalue.as_bytes());
    let grown = dir_bytes(&f.vault) - before;
    assert!(
        grown >= 200 << 10,
        "after fsync the vault grew by only {grown} bytes: the data did not reach it"
    );
    let assert_clean = |when: &str| {
        let hits = files_containing(&f.vault, &needles);
        assert!(hits.is_empty(), "plaintext under VAULT/ {when}: {hits:?}");
    };
    assert_clean("after rsync and fsync");

    // Data still being written (open, not fsynced, larger than what waits in memory).
    let open_name = format!("secretopen-{}", random_hex(&mut rng, 12));
    let open_content = format!("secretwriting-{}", random_hex(&mut rng, 16));
    let mut pending = Vec::new();
    for i in 0..24 {
        pending.extend(format!("{open_content}\n").into_bytes());
        pending.extend(noise(128 << 10, 600 + i));
    }
    let mut h = File::create(inc.join(&open_name)).unwrap();
    h.write_all(&pending).unwrap();
    let hits = files_containing(&f.vault, &[open_name.as_bytes(), open_content.as_bytes()]);
    assert!(
        hits.is_empty(),
        "plaintext under VAULT/ of a file being written: {hits:?}"
    );
    drop(h);
    fs::remove_file(inc.join(&open_name)).unwrap();

    let point = snapshot(&f.mnt, ITEM);
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &point));
    assert_clean("after snapshot");

    ok(&["umount", s(&f.mnt)]);
    assert_clean("after umount");
    let hits = files_containing(&f.vault, &[open_name.as_bytes(), open_content.as_bytes()]);
    assert!(
        hits.is_empty(),
        "plaintext under VAULT/ after umount: {hits:?}"
    );
    // Staging (outside the vault) is emptied once files are committed.
    let mut staging_hits = Vec::new();
    for e in fs::read_dir("/var/tmp").unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("vaultfs-") {
            staging_hits.extend(files_containing(&e.path(), &needles));
        }
    }
    assert!(
        staging_hits.is_empty(),
        "plaintext left in staging after snapshot and umount: {staging_hits:?}"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(f.vault.join("config")).unwrap()).unwrap();
    let id = config["vault_id"].as_str().expect("vault_id in the config");
    let staging = PathBuf::from(format!("/var/tmp/vaultfs-{id}"));
    if staging.exists() {
        let left: Vec<PathBuf> = walk(&staging);
        assert!(
            left.is_empty(),
            "staging not emptied after snapshot and umount: {left:?}"
        );
    }
    drop(m);
}

// ---------------------------------------------------------------------------------------------
// 7. disk full

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn new(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        sh(&format!("mount -t tmpfs -o size={size} tmpfs '{}'", s(dir)));
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

#[test]
fn disk_full_is_enospc_and_the_daemon_stays_up() {
    let f = Fixture::with_init(|_| {});
    let fsdir = f.root.join("small-fs");
    let tmpfs = Tmpfs::new(&fsdir, "64m");
    let vault = fsdir.join("vault");
    init_vault(&vault);
    make_small_tree(&f.src, 7);
    age_specials(&f.src);
    let m = Mount::new(&vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();
    rsync(&["-aHX", "--delete"], &f.src, &inc);
    let p1 = snapshot(&f.mnt, ITEM);
    assert_same_tree(&f.src, &latest_is(&m, ITEM, &p1));

    // 96 MiB of incompressible data into a 64 MiB file system.
    let big = inc.join("too-big.bin");
    let mut errors = Vec::new();
    {
        let mut h = File::create(&big).unwrap();
        for i in 0..96u64 {
            if let Err(e) = h.write_all(&noise(1 << 20, 1000 + i)) {
                errors.push(("write", e));
                break;
            }
        }
        if let Err(e) = h.sync_all() {
            errors.push(("fsync", e));
        }
        // close(2) reports a failed flush.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(h);
        // SAFETY: fd is owned here and closed once.
        if let Err(e) = libc_result(unsafe { libc::close(fd) }) {
            errors.push(("close", e));
        }
    }
    assert!(
        !errors.is_empty(),
        "writing 96 MiB into a vault on a 64 MiB file system reported no error"
    );
    eprintln!("errors on the full vault: {errors:?}");
    for (what, e) in &errors {
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ENOSPC),
            "{what} on a full vault must fail with ENOSPC, got: {e}"
        );
    }

    // The daemon is up, the mount answers, the earlier point reads back right.
    assert!(alive(m.pid()), "the daemon died on a full disk");
    names_in(&f.mnt);
    names_in(&inc);
    assert_same_tree(&f.src, &point_dir(&m, ITEM, &p1));

    // Free space, drop the big file, snapshot.
    sh(&format!("mount -o remount,size=512m '{}'", s(&fsdir)));
    fs::remove_file(&big).unwrap();
    write_file(&inc.join("after.bin"), &noise(1 << 20, 2));
    fs::copy(inc.join("after.bin"), f.src.join("after.bin")).unwrap();
    let t = fs::symlink_metadata(inc.join("after.bin")).unwrap();
    set_times(&f.src.join("after.bin"), t.mtime(), t.mtime_nsec());
    let p2 = snapshot(&f.mnt, ITEM);
    let latest = latest_is(&m, ITEM, &p2);
    assert_same_tree(&inc, &latest);
    assert_same_tree(&f.src, &latest);
    assert_same_tree(&f.src, &point_dir(&m, ITEM, &p2));
    ok(&["check", s(&vault), "--read-data"]);
    assert!(alive(m.pid()));
    drop(m);
    drop(tmpfs);
}

// ---------------------------------------------------------------------------------------------
// 8. POSIX semantics in incoming

#[test]
fn posix_semantics_in_incoming_and_in_the_point() {
    let f = Fixture::new();
    let mut m = Mount::new(&f.vault, &f.mnt);
    let mut pb = Problems::default();

    // mkdir creates an item; bad names are refused; files cannot be items.
    let d = incoming(&m, ITEM);
    fs::create_dir(&d).unwrap();
    fs::create_dir(incoming(&m, "other.item-2")).unwrap();
    assert!(names_in(&m.path("incoming")).contains(&ITEM.to_string()));
    let items: serde_json::Value =
        serde_json::from_str(&ok(&["items", s(&f.vault), "--json"])).unwrap();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(
        names.contains(&ITEM) && names.contains(&"other.item-2"),
        "items: {names:?}"
    );
    for bad in [".hidden", "with space", &"x".repeat(65)] {
        pb.check(fs::create_dir(incoming(&m, bad)).is_err(), || {
            format!("mkdir incoming/{bad} succeeded: not an item name")
        });
    }
    pb.check(File::create(m.path("incoming/a-file")).is_err(), || {
        "a regular file directly in incoming/ was accepted".into()
    });
    let args = ["snapshot", s(&f.mnt), "no-such-item"];
    failed_clearly(&args, &vaultfs(&args));

    let p = |rel: &str| d.join(rel);

    // Rename over an existing file; a reader of the replaced file keeps its data.
    fs::write(p("a.txt"), b"AAA").unwrap();
    fs::write(p("b.txt"), b"BBB").unwrap();
    let mut old_b = File::open(p("b.txt")).unwrap();
    fs::rename(p("a.txt"), p("b.txt")).unwrap();
    assert!(!p("a.txt").exists());
    assert_eq!(fs::read(p("b.txt")).unwrap(), b"AAA");
    let mut s_old = String::new();
    old_b.read_to_string(&mut s_old).unwrap();
    assert_eq!(
        s_old, "BBB",
        "an open fd of a replaced file keeps reading its data"
    );
    drop(old_b);

    // Rename of directories: plain, over an empty dir, not over a non-empty one.
    fs::create_dir_all(p("d1/x")).unwrap();
    fs::write(p("d1/x/y.txt"), b"in d1").unwrap();
    fs::rename(p("d1"), p("d2")).unwrap();
    assert!(!p("d1").exists());
    assert_eq!(fs::read(p("d2/x/y.txt")).unwrap(), b"in d1");
    fs::create_dir(p("empty")).unwrap();
    fs::rename(p("d2"), p("empty")).unwrap();
    assert_eq!(fs::read(p("empty/x/y.txt")).unwrap(), b"in d1");
    fs::rename(p("empty"), p("dir")).unwrap();
    fs::create_dir_all(p("full/z")).unwrap();
    pb.errno(
        "rename a dir over a non-empty dir",
        fs::rename(p("dir"), p("full")),
        &[libc::ENOTEMPTY, libc::EEXIST],
    );
    pb.errno(
        "rename a file over a dir",
        fs::rename(p("b.txt"), p("full")),
        &[libc::EISDIR],
    );
    pb.errno(
        "rename a dir over a file",
        fs::rename(p("full"), p("b.txt")),
        &[libc::ENOTDIR],
    );
    pb.errno(
        "rmdir of a non-empty dir",
        fs::remove_dir(p("full")),
        &[libc::ENOTEMPTY],
    );
    fs::remove_dir(p("full/z")).unwrap();
    fs::remove_dir(p("full")).unwrap();
    assert!(!p("full").exists());
    fs::rename(p("dir/x/y.txt"), p("moved-out.txt")).unwrap();
    fs::rename(p("moved-out.txt"), p("dir/y-back.txt")).unwrap();

    // Unlink of an open file: it stays readable and writable through its fd.
    {
        let mut h = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(p("unlinked.txt"))
            .unwrap();
        h.write_all(b"still here").unwrap();
        fs::remove_file(p("unlinked.txt")).unwrap();
        assert!(!p("unlinked.txt").exists());
        assert!(!names_in(&d).contains(&"unlinked.txt".to_string()));
        h.write_all_at(b", and more", 10).unwrap();
        let mut back = String::new();
        h.seek(SeekFrom::Start(0)).unwrap();
        h.read_to_string(&mut back).unwrap();
        assert_eq!(back, "still here, and more");
        pb.eq(
            "fstat nlink of an unlinked open file",
            h.metadata().unwrap().nlink(),
            0,
        );
    }

    // O_EXCL, O_TRUNC, O_APPEND, ENOENT.
    pb.errno(
        "O_CREAT|O_EXCL on an existing file",
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p("b.txt")),
        &[libc::EEXIST],
    );
    pb.errno(
        "open of a missing file",
        File::open(p("missing")),
        &[libc::ENOENT],
    );
    fs::write(p("t.txt"), b"0123456789").unwrap();
    drop(
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(p("t.txt"))
            .unwrap(),
    );
    assert_eq!(fs::metadata(p("t.txt")).unwrap().len(), 0);
    for part in [&b"one,"[..], b"two,", b"three"] {
        let mut h = OpenOptions::new().append(true).open(p("t.txt")).unwrap();
        h.write_all(part).unwrap();
    }
    assert_eq!(fs::read(p("t.txt")).unwrap(), b"one,two,three");
    fs::OpenOptions::new()
        .write(true)
        .open(p("t.txt"))
        .unwrap()
        .set_len(3)
        .unwrap();
    assert_eq!(fs::read(p("t.txt")).unwrap(), b"one");
    {
        let h = OpenOptions::new().write(true).open(p("t.txt")).unwrap();
        h.set_len(100_000).unwrap();
        h.sync_all().unwrap();
    }
    let grown = fs::read(p("t.txt")).unwrap();
    assert_eq!(grown.len(), 100_000);
    assert!(grown[..3] == *b"one" && grown[3..].iter().all(|&b| b == 0));

    // Symlink, hard link.
    std::os::unix::fs::symlink("dir/y-back.txt", p("sym")).unwrap();
    assert_eq!(
        fs::read_link(p("sym")).unwrap(),
        PathBuf::from("dir/y-back.txt")
    );
    assert!(
        fs::symlink_metadata(p("sym"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(p("sym")).unwrap(), b"in d1");
    std::os::unix::fs::symlink("nowhere/at/all", p("dangling")).unwrap();
    fs::write(p("h1"), b"linked").unwrap();
    fs::hard_link(p("h1"), p("dir/h2")).unwrap();
    fs::hard_link(p("h1"), p("h3")).unwrap();
    let (m1, m2) = (
        fs::metadata(p("h1")).unwrap(),
        fs::metadata(p("dir/h2")).unwrap(),
    );
    assert_eq!((m1.nlink(), m2.nlink()), (3, 3), "link counts");
    assert_eq!(m1.ino(), m2.ino(), "hard links share an inode");
    OpenOptions::new()
        .write(true)
        .open(p("dir/h2"))
        .unwrap()
        .write_all_at(b"L", 0)
        .unwrap();
    assert_eq!(fs::read(p("h1")).unwrap(), b"Linked");
    fs::remove_file(p("h3")).unwrap();
    assert_eq!(fs::metadata(p("h1")).unwrap().nlink(), 2);

    // chmod, chown, lchown.
    fs::set_permissions(p("b.txt"), fs::Permissions::from_mode(0o4751)).unwrap();
    assert_eq!(fs::metadata(p("b.txt")).unwrap().mode() & 0o7777, 0o4751);
    std::os::unix::fs::chown(p("t.txt"), Some(1234), Some(5678)).unwrap();
    let md = fs::metadata(p("t.txt")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    std::os::unix::fs::lchown(p("sym"), Some(42), Some(43)).unwrap();
    let md = fs::symlink_metadata(p("sym")).unwrap();
    assert_eq!((md.uid(), md.gid()), (42, 43));
    fs::set_permissions(p("dir"), fs::Permissions::from_mode(0o750)).unwrap();

    // xattrs.
    let x = p("b.txt");
    set_xattr(&x, "user.a", b"1").unwrap();
    set_xattr(&x, "user.bin", &[0, 255, 10, 0]).unwrap();
    set_xattr(&x, "user.empty", b"").unwrap();
    assert_eq!(list_xattrs(&x), ["user.a", "user.bin", "user.empty"]);
    assert_eq!(get_xattr(&x, "user.bin").unwrap(), [0, 255, 10, 0]);
    assert_eq!(get_xattr(&x, "user.empty").unwrap(), b"");
    pb.errno(
        "setxattr XATTR_CREATE of an existing name",
        set_xattr_flags(&x, "user.a", b"2", libc::XATTR_CREATE),
        &[libc::EEXIST],
    );
    pb.errno(
        "setxattr XATTR_REPLACE of a missing name",
        set_xattr_flags(&x, "user.nope", b"2", libc::XATTR_REPLACE),
        &[libc::ENODATA],
    );
    set_xattr_flags(&x, "user.a", b"22", libc::XATTR_REPLACE).unwrap();
    sh(&format!("setfattr -n user.tool -v fromtool '{}'", s(&x)));
    sh(&format!("setfattr -x user.a '{}'", s(&x)));
    pb.errno(
        "getxattr of a removed name",
        get_xattr(&x, "user.a"),
        &[libc::ENODATA],
    );
    let got = sh(&format!(
        "getfattr --absolute-names -n user.tool --only-values '{}'",
        s(&x)
    ));
    assert_eq!(got, "fromtool");
    set_xattr(&p("dir"), "user.on-dir", b"d").unwrap();
    assert_eq!(list_xattrs(&x), ["user.bin", "user.empty", "user.tool"]);

    // mkfifo.
    let fifo = cpath(&p("fifo"));
    // SAFETY: valid NUL-terminated path.
    libc_result(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }).unwrap();
    let md = fs::symlink_metadata(p("fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&md.file_type()));
    assert_eq!(md.mode() & 0o7777, 0o640);

    // statfs.
    let cd = cpath(&d);
    // SAFETY: statvfs is plain old data; valid NUL-terminated path.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    libc_result(unsafe { libc::statvfs(cd.as_ptr(), &mut sv) }).unwrap();
    assert!(
        sv.f_bsize > 0 && sv.f_blocks > 0 && sv.f_bavail <= sv.f_blocks,
        "statvfs of incoming: bsize {} blocks {} bavail {}",
        sv.f_bsize,
        sv.f_blocks,
        sv.f_bavail
    );
    sh(&format!("df '{}'", s(&d)));

    // fsync of files and dirs.
    fsync_path(&p("b.txt"));
    fsync_path(&d);

    // utimens with ns precision, last (after the directories' contents are final).
    let set = |rel: &str, a: (i64, i64), mt: (i64, i64)| {
        // SAFETY: timespec is plain old data.
        let mut ts: [libc::timespec; 2] = unsafe { std::mem::zeroed() };
        (ts[0].tv_sec, ts[0].tv_nsec) = a;
        (ts[1].tv_sec, ts[1].tv_nsec) = mt;
        let c = cpath(&p(rel));
        // SAFETY: valid path and a two-element timespec array.
        libc_result(unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .unwrap_or_else(|e| panic!("utimensat {rel}: {e}"));
    };
    set(
        "b.txt",
        (1_500_000_000, 111_111_111),
        (1_234_567_890, 123_456_789),
    );
    let md = fs::metadata(p("b.txt")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_234_567_890, 123_456_789));
    pb.eq(
        "atime after utimensat",
        (md.atime(), md.atime_nsec()),
        (1_500_000_000, 111_111_111),
    );
    set("b.txt", (0, libc::UTIME_OMIT), (1_234_567_891, 987_654_321));
    let md = fs::metadata(p("b.txt")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_234_567_891, 987_654_321));
    pb.eq(
        "atime after utimensat with UTIME_OMIT for atime",
        (md.atime(), md.atime_nsec()),
        (1_500_000_000, 111_111_111),
    );
    set("sym", (1_000_000_001, 1), (1_000_000_002, 999_999_999));
    let md = fs::symlink_metadata(p("sym")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_000_000_002, 999_999_999));
    for (i, rel) in ["h1", "t.txt", "fifo", "dangling", "dir/y-back.txt"]
        .iter()
        .enumerate()
    {
        set(
            rel,
            (1_300_000_000, 5),
            (1_300_000_000 + i as i64, 100 + i as i64),
        );
    }
    set("dir", (1_400_000_000, 7), (1_400_000_001, 424_242_424));
    let md = fs::metadata(p("dir")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_400_000_001, 424_242_424));

    // Snapshot: the point shows all of it.
    let point = snapshot(&f.mnt, ITEM);
    let latest = latest_is(&m, ITEM, &point);
    assert_same_tree(&d, &latest);
    assert_eq!(
        names_in(&latest),
        ["b.txt", "dangling", "dir", "fifo", "h1", "sym", "t.txt"]
    );
    let md = fs::metadata(latest.join("b.txt")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4751);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_234_567_891, 987_654_321));
    assert_eq!(fs::read(latest.join("b.txt")).unwrap(), b"AAA");
    let md = fs::metadata(latest.join("dir")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert_eq!(
        (md.mtime(), md.mtime_nsec()),
        (1_400_000_001, 424_242_424),
        "directory mtime in the point"
    );
    assert_eq!(
        xattrs(&latest.join("b.txt")),
        xattrs(&p("b.txt")),
        "xattrs in the point"
    );
    assert_eq!(
        fs::metadata(latest.join("h1")).unwrap().ino(),
        fs::metadata(latest.join("dir/h2")).unwrap().ino()
    );
    assert_eq!(fs::read(latest.join("dir/h2")).unwrap(), b"Linked");
    assert_eq!(
        fs::read_link(latest.join("sym")).unwrap(),
        PathBuf::from("dir/y-back.txt")
    );
    let md = fs::symlink_metadata(latest.join("sym")).unwrap();
    assert_eq!((md.uid(), md.gid()), (42, 43));

    // Changes after a snapshot (renames, unlinks, rmdir, chmod, xattr removal, truncate) show
    // in the next snapshot and survive a remount; the first point stays as it was.
    let p1_copy = f.root.join("p1-copy");
    copy_tree(&point_dir(&m, ITEM, &point), &p1_copy);
    assert_same_tree(&p1_copy, &point_dir(&m, ITEM, &point));
    fs::rename(p("b.txt"), p("renamed.txt")).unwrap();
    fs::remove_file(p("t.txt")).unwrap();
    fs::rename(p("dir"), p("dir2")).unwrap();
    fs::remove_file(p("dir2/y-back.txt")).unwrap();
    fs::create_dir(p("newdir")).unwrap();
    fs::write(p("newdir/f"), b"new after the snapshot").unwrap();
    fs::create_dir(p("gone")).unwrap();
    fs::remove_dir(p("gone")).unwrap();
    sh(&format!("setfattr -x user.tool '{}'", s(&p("renamed.txt"))));
    fs::set_permissions(p("fifo"), fs::Permissions::from_mode(0o600)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(p("h1"))
        .unwrap()
        .set_len(2)
        .unwrap();
    // An editor's save: a temp file renamed over the original while still open and written.
    {
        let mut h = File::create(p("newdir/.f.swp")).unwrap();
        h.write_all(b"saved by an editor").unwrap();
        fs::rename(p("newdir/.f.swp"), p("newdir/f")).unwrap();
        h.write_all(b", then more").unwrap();
    }
    assert_eq!(
        fs::read(p("newdir/f")).unwrap(),
        b"saved by an editor, then more"
    );
    // A hard link made while the file is open and being written.
    {
        let mut h = File::create(p("newdir/l1")).unwrap();
        h.write_all(b"one").unwrap();
        fs::hard_link(p("newdir/l1"), p("l2")).unwrap();
        h.write_all(b" two").unwrap();
    }
    assert_eq!(fs::read(p("l2")).unwrap(), b"one two");
    // A directory of 1500 entries: listed whole, then removed by rm -rf (unlinks while
    // reading the directory).
    fs::create_dir(p("many")).unwrap();
    for i in 0..1500 {
        fs::write(p(&format!("many/entry-{i:04}")), i.to_string()).unwrap();
    }
    let listed = names_in(&p("many"));
    assert_eq!(listed.len(), 1500, "readdir of a directory of 1500 entries");
    assert_eq!(listed[1499], "entry-1499");
    sh(&format!("rm -rf '{}'", s(&p("many"))));
    assert!(!p("many").exists());
    let p2 = snapshot(&f.vault, ITEM);
    let latest = latest_is(&m, ITEM, &p2);
    assert_eq!(
        names_in(&latest),
        [
            "dangling",
            "dir2",
            "fifo",
            "h1",
            "l2",
            "newdir",
            "renamed.txt",
            "sym"
        ],
        "the second point"
    );
    assert_same_tree(&d, &latest);
    assert_eq!(fs::read(latest.join("dir2/h2")).unwrap(), b"Li");
    assert_eq!(
        fs::read(latest.join("newdir/f")).unwrap(),
        b"saved by an editor, then more"
    );
    assert_eq!(fs::read(latest.join("l2")).unwrap(), b"one two");
    assert_eq!(
        fs::metadata(latest.join("l2")).unwrap().ino(),
        fs::metadata(latest.join("newdir/l1")).unwrap().ino()
    );
    assert_same_tree(&p1_copy, &point_dir(&m, ITEM, &point));
    ok(&["umount", s(&f.mnt)]);
    m.mount();
    assert_same_tree(&point_dir(&m, ITEM, &p2), &d);
    assert_same_tree(&p1_copy, &point_dir(&m, ITEM, &point));

    // rmdir of an item that has points is refused, also when its incoming tree is empty.
    sh(&format!("rm -rf '{}'/* ", s(&d)));
    assert!(names_in(&d).is_empty());
    pb.errno(
        "rmdir of an item with points",
        fs::remove_dir(&d),
        &[libc::EBUSY],
    );
    assert!(names_in(&m.path("incoming")).contains(&ITEM.to_string()));
    assert_eq!(names_in(&point_dir(&m, ITEM, &point)).len(), 7);
    assert!(ok(&["items", s(&f.vault)]).contains(ITEM));
    // An item without points and nothing in it can go.
    pb.errno(
        "rmdir of an empty item without points",
        fs::remove_dir(incoming(&m, "other.item-2")).map(|_| -1),
        &[],
    );
    pb.check(
        !names_in(&m.path("incoming")).contains(&"other.item-2".to_string()),
        || "incoming/other.item-2 still listed after its rmdir".into(),
    );
    pb.assert_none();
}

// ---------------------------------------------------------------------------------------------
// 9. parallel writers, and memory bounded for a big file

/// Peak resident memory of `pid` in KiB (VmHWM).
fn peak_rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn parallel_writers_and_a_big_file_with_bounded_memory() {
    const BLOCK: usize = 64 << 10;
    const THREADS: usize = 4;
    const BLOCKS: usize = 64;
    const BIG_MIB: u64 = 320;
    let f = Fixture::new();
    let m = Mount::new(&f.vault, &f.mnt);
    let inc = incoming(&m, ITEM);
    fs::create_dir(&inc).unwrap();

    // Four handles write interleaved blocks of one file while four others each write a file.
    let shared = inc.join("shared.bin");
    File::create(&shared).unwrap();
    let block = |t: usize, i: usize| noise(BLOCK, (t * 1000 + i) as u64);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (shared, inc) = (&shared, &inc);
            scope.spawn(move || {
                let h = OpenOptions::new().write(true).open(shared).unwrap();
                for i in 0..BLOCKS {
                    let off = ((i * THREADS + t) * BLOCK) as u64;
                    h.write_all_at(&block(t, i), off)
                        .unwrap_or_else(|e| panic!("pwrite at {off}: {e}"));
                }
            });
            scope.spawn(move || {
                let mut h = File::create(inc.join(format!("own-{t}.bin"))).unwrap();
                for i in 0..BLOCKS {
                    h.write_all(&block(t + 10, i)).unwrap();
                }
                h.sync_all().unwrap();
            });
        }
    });
    let mut want_shared = Vec::with_capacity(THREADS * BLOCKS * BLOCK);
    for i in 0..BLOCKS {
        for t in 0..THREADS {
            want_shared.extend(block(t, i));
        }
    }
    let check_parallel = |dir: &Path| {
        assert!(
            fs::read(dir.join("shared.bin")).unwrap() == want_shared,
            "content of shared.bin under {}",
            dir.display()
        );
        for t in 0..THREADS {
            let want: Vec<u8> = (0..BLOCKS).flat_map(|i| block(t + 10, i)).collect();
            assert!(
                fs::read(dir.join(format!("own-{t}.bin"))).unwrap() == want,
                "content of own-{t}.bin under {}",
                dir.display()
            );
        }
    };
    check_parallel(&inc);

    // A file much bigger than the daemon's memory budgets.
    let big = inc.join("big.bin");
    let mut want = blake3::Hasher::new();
    {
        let mut h = File::create(&big).unwrap();
        for i in 0..BIG_MIB {
            let data = noise(1 << 20, 50_000 + i);
            want.update(&data);
            h.write_all(&data).unwrap();
        }
        h.sync_all().unwrap();
    }
    let want = want.finalize();
    let hash = |p: &Path| {
        let mut h = blake3::Hasher::new();
        let mut file = File::open(p).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = file.read(&mut buf).unwrap();
            if k == 0 {
                break h.finalize();
            }
            h.update(&buf[..k]);
        }
    };
    assert_eq!(hash(&big), want, "content of the big file in incoming");
    let point = snapshot(&f.mnt, ITEM);
    let latest = latest_is(&m, ITEM, &point);
    assert_eq!(
        hash(&latest.join("big.bin")),
        want,
        "the big file in the point"
    );
    check_parallel(&latest);
    let peak = peak_rss_kib(m.pid());
    eprintln!("daemon peak RSS: {} MiB", peak >> 10);
    assert!(
        peak < 256 << 10,
        "the daemon's peak RSS reached {} MiB writing a {BIG_MIB} MiB file",
        peak >> 10
    );
}
