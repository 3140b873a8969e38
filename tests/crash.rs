//! Crash safety of `vaultfs backup`: SIGKILL at several moments of a backup (as soon as the
//! vault is open, while packs are being written and indexed, while the point is committed) must
//! leave a vault that `check --read-data` accepts, in which every earlier point restores
//! bit-identically, whose point list holds only complete points, and on which the next `backup`
//! succeeds.
//!
//! Everything runs the real binary on real temp dirs. Each interrupted backup writes 128 MiB of
//! never-seen data (plus edits to small files). Kills wait for events, not for time: the vault
//! lock taken, the n-th new pack durable, all data written, and the binary's own n-th
//! durability call (`VAULTFS_TEST_KILL_AT_DURABLE`, a test-hooks build kills itself there),
//! aimed at the commit. Power cuts, which also lose what was not fsynced, are
//! `tests/powercut.rs`.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// New random data written by the timed backup and by each interrupted one.
const FRESH_FILES: u64 = 8;
const FRESH_BYTES: usize = 16 << 20;
/// The item every backup goes into.
const ITEM: &str = "data";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// The source directory and frozen copies of it as it was for each round.
///
/// Round `r` backs up the small files as edited in that round plus `fresh{r}/`, 128 MiB of new
/// random data. To avoid copying that data, `frozen/{r}` is a `cp -a` of the source taken before
/// `fresh{r}/` is written, and `fresh{r}/` is moved (a rename keeps content, mode, owner, mtime
/// and xattrs) into `frozen/{r}` when round `r + 1` starts (both are dropped instead if no point
/// holds round `r`). Until then round `r`'s tree is `src` itself.
struct Source {
    src: PathBuf,
    frozen: PathBuf,
    round: Option<u64>,
}

impl Source {
    /// The starting tree: 128 small files in 8 dirs, a compressible text file, 4 MiB of random
    /// data, symlinks (one dangling), a hard link, an empty dir, an xattr and odd modes.
    fn new(root: &Path) -> Source {
        let src = root.join("src");
        for d in 0..8u64 {
            for f in 0..16u64 {
                let n = ((d * 16 + f) * 797 % 6000) as usize;
                write(&src, &format!("d{d}/f{f}"), &noise(n, 1000 + d * 16 + f));
            }
        }
        write(
            &src,
            "notes.txt",
            &b"the quick brown fox jumps over the lazy dog\n".repeat(3000),
        );
        write(&src, "base.bin", &noise(4 << 20, 7));
        fs::create_dir_all(src.join("empty/dir")).unwrap();
        std::os::unix::fs::symlink("d0/f1", src.join("link")).unwrap();
        std::os::unix::fs::symlink("no/such/target", src.join("dangling")).unwrap();
        fs::hard_link(src.join("d1/f1"), src.join("hardlink")).unwrap();
        sh(&format!(
            "setfattr -n user.tag -v crash '{}'",
            src.join("d0/f1").display()
        ));
        sh(&format!(
            "chmod 0600 '{}' && chmod 0750 '{}'",
            src.join("d2/f2").display(),
            src.join("d3").display()
        ));
        let frozen = root.join("frozen");
        fs::create_dir_all(&frozen).unwrap();
        sh(&format!(
            "cp -a '{}' '{}'",
            src.display(),
            frozen.join("base").display()
        ));
        Source {
            src,
            frozen,
            round: None,
        }
    }

    /// Start round `round` (0, 1, 2, ... in order): rewrite some small files (new sizes and
    /// contents), replace one file by another, freeze, and add `fresh{round}/`.
    fn next_round(&mut self, round: u64) {
        assert_eq!(self.round.map_or(0, |r| r + 1), round);
        if let Some(prev) = self.round {
            let name = format!("fresh{prev}");
            let keep = self.frozen.join(prev.to_string());
            if keep.exists() {
                fs::rename(self.src.join(&name), keep.join(&name)).unwrap();
            } else {
                fs::remove_dir_all(self.src.join(&name)).unwrap();
            }
        }
        for i in 0..8u64 {
            let rel = format!("d{}/f{}", (round + i) % 8, (i * 3 + round) % 16);
            let n = 500 + ((round * 31 + i * 977) % 5000) as usize;
            write(&self.src, &rel, &noise(n, 50_000 + round * 100 + i));
        }
        if round > 0 {
            fs::remove_file(self.src.join(format!("d7/extra{}", round - 1))).unwrap();
        }
        write(
            &self.src,
            &format!("d7/extra{round}"),
            format!("round {round}\n").as_bytes(),
        );
        sh(&format!(
            "cp -a '{}' '{}'",
            self.src.display(),
            self.frozen.join(round.to_string()).display()
        ));
        for f in 0..FRESH_FILES {
            let data = noise(FRESH_BYTES, 90_000 + round * 10 + f);
            write(&self.src, &format!("fresh{round}/part{f}"), &data);
        }
        self.round = Some(round);
    }

    /// No point holds round `round`'s tree: drop its frozen copy.
    fn forget(&self, round: u64) {
        fs::remove_dir_all(self.frozen.join(round.to_string())).unwrap();
    }

    /// The tree a point of round `round` (`None`: the starting tree) must restore to.
    fn tree_of(&self, round: Option<u64>) -> PathBuf {
        match round {
            None => self.frozen.join("base"),
            Some(r) if Some(r) == self.round => self.src.clone(),
            Some(r) => self.frozen.join(r.to_string()),
        }
    }
}

/// `(item, point)` of every live point, from `points --json`.
fn list_points(vault: &Path) -> BTreeSet<(String, String)> {
    let out = ok(&["points", p(vault), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("points --json is JSON");
    v.as_array()
        .expect("points --json is an array")
        .iter()
        .map(|o| {
            (
                o["item"].as_str().expect("item field").to_string(),
                o["point"].as_str().expect("point field").to_string(),
            )
        })
        .collect()
}

/// Restore `item/point` into a fresh directory and compare it with `expected`.
fn assert_restores(vault: &Path, (item, point): &(String, String), expected: &Path) {
    let dest = tempdir();
    let out = dest.path().join("r");
    ok(&["restore", p(vault), &format!("{item}/{point}"), p(&out)]);
    assert_same_tree(expected, &out);
}

/// `vaultfs backup` of `src`; `kill_at`: the durability call at which it kills itself
/// (`VAULTFS_TEST_KILL_AT_DURABLE` syntax).
fn spawn_backup(vault: &Path, src: &Path, kill_at: Option<String>) -> Child {
    let mut cmd = Command::new(bin());
    if let Some(at) = kill_at {
        cmd.env("VAULTFS_TEST_KILL_AT_DURABLE", at);
    }
    cmd.args(["backup", p(vault), ITEM, p(src)])
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vaultfs backup")
}

/// A complete point and the round whose tree it holds (`None`: the starting tree).
type Known = Vec<((String, String), Option<u64>)>;

fn live(known: &Known) -> BTreeSet<(String, String)> {
    known.iter().map(|(k, _)| k.clone()).collect()
}

/// When a round sends SIGKILL.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// As soon as the backup holds the vault's lock: open, nothing written yet.
    AtLock,
    /// Once this many new packs are in `packs/` (durable; their index entries follow).
    Packs(usize),
    /// Once the backup has written as many bytes as its new data holds (`wchar` in
    /// /proc/PID/io): every data pack is then written, and what is left is the last pack's
    /// header, fsync and rename, the point's records, the index and the catalog: the commit.
    DataWritten,
    /// On entering the durability call (an fsync of a pack or a directory, an index flush)
    /// `.1` calls after the `.0`-th index flush of the run: the binary kills itself there.
    /// A backup's commit ends in: finish the last data pack and the pack of trees, flush 1,
    /// the pack of records (its data and directory), flush 2, the catalog, flush 3.
    Durable(u64, u64),
}

/// Bytes process `pid` has passed to write(2) so far.
fn written_bytes(pid: u32) -> Option<u64> {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:")?.trim().parse().ok())
}

/// Packs under `vault/packs/`.
fn pack_count(vault: &Path) -> usize {
    walk(&vault.join("packs"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .count()
}

/// Does `pid` hold a POSIX write lock on the file with inode `ino` (per /proc/locks)?
fn holds_lock(pid: u32, ino: u64) -> bool {
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 6
            && f[1] == "POSIX"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(&ino.to_string())
    })
}

/// Wait until `event` holds (checked every millisecond) or `child` exits; panics after a
/// minute. Returns false if the child exited first.
fn wait_for(child: &mut Child, what: &Kill, mut event: impl FnMut(u32) -> bool) -> bool {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if event(child.id()) {
            return true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what:?}: the event never came"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One round: change the source, start `backup`, SIGKILL it at `when` (unless it already
/// exited), then hold the vault to the crash contract. Returns whether the kill interrupted
/// the backup, and whether the backup had committed its point by then.
fn crash_round(
    vault: &Path,
    source: &mut Source,
    known: &mut Known,
    round: u64,
    when: Kill,
) -> (bool, bool) {
    source.next_round(round);
    let before = live(known);

    let t0 = Instant::now();
    let packs_before = pack_count(vault);
    let kill_at = match when {
        Kill::Durable(k, j) => Some(format!("index:{k}+{j}")),
        _ => None,
    };
    let mut child = spawn_backup(vault, &source.src, kill_at);
    let lock_ino = fs::metadata(vault.join("lock")).unwrap().ino();
    let data = FRESH_FILES * FRESH_BYTES as u64;
    let reached = match when {
        Kill::AtLock => wait_for(&mut child, &when, |pid| holds_lock(pid, lock_ino)),
        Kill::Packs(n) => wait_for(&mut child, &when, |_| pack_count(vault) >= packs_before + n),
        Kill::DataWritten => wait_for(&mut child, &when, |pid| {
            written_bytes(pid).is_some_and(|w| w >= data)
        }),
        // It kills itself at the event; wait for that (or for the end).
        Kill::Durable(..) => child.wait().map(|_| true).unwrap(),
    };
    let at = t0.elapsed();
    if child.try_wait().unwrap().is_none() {
        child.kill().expect("SIGKILL the backup");
    }
    assert!(
        reached || matches!(when, Kill::Durable(..)),
        "round {round}: the backup ended before {when:?}: the round tested nothing"
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9);
    if !killed {
        assert!(
            out.status.success(),
            "backup of round {round} failed on its own: {stderr}"
        );
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "round {round}: {stderr}"
    );

    // Only complete points: every earlier one, plus at most this run's (if it got as far as
    // committing before the kill), and that one must be whole.
    let now = list_points(vault);
    assert!(
        now.is_superset(&before),
        "kill at {when:?} ({at:?}) lost points: had {before:?}, now {now:?}"
    );
    let new: Vec<_> = now.difference(&before).cloned().collect();
    assert!(
        new.len() <= 1,
        "kill at {when:?}: more than one new point: {new:?}"
    );
    if let Some(pt) = created_point(&stdout) {
        assert_eq!(
            new,
            vec![pt],
            "round {round}: the reported point must be listed"
        );
    }
    if !killed {
        assert_eq!(
            new.len(),
            1,
            "round {round}: a backup that exited 0 must leave its point"
        );
    }
    eprintln!(
        "round {round}: kill at {when:?}, {} ms after the start: {}",
        at.as_millis(),
        match (killed, new.is_empty()) {
            (true, true) => "interrupted, no point",
            (true, false) => "interrupted after the point was committed",
            (false, _) => "the backup had finished",
        }
    );

    let check = ok(&["check", p(vault), "--read-data"]);
    assert!(
        check.contains(": 0 errors"),
        "check after a kill at {when:?} ({at:?}): {check}"
    );
    let committed = !new.is_empty();
    if let Some(pt) = new.into_iter().next() {
        assert_eq!(pt.0, ITEM);
        known.push((pt, Some(round)));
    } else {
        source.forget(round);
    }
    // Every point, old and (if any) new, restores bit-identically to its source.
    for (pt, r) in known.iter() {
        assert_restores(vault, pt, &source.tree_of(*r));
    }
    (killed, committed)
}

#[test]
fn kill_9_during_backup_leaves_a_consistent_vault() {
    let started = Instant::now();
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    // 4 MiB packs: every interrupted run finishes (and indexes) many packs before it commits,
    // so kills land between "pack durable and indexed" and "point recorded".
    init_vault(&vault);
    let mut source = Source::new(tmp.path());
    let mut known: Known = Vec::new();

    // Point 1: the starting tree.
    let out = ok(&["backup", p(&vault), ITEM, p(&source.src)]);
    let pt = created_point(&out).expect("backup prints `created point ITEM/POINT`");
    assert_eq!(pt.0, ITEM);
    known.push((pt, None));

    // Point 2: round 0, the same amount of new data every interrupted run writes, with its
    // packs counted for the pack events.
    source.next_round(0);
    let packs_before = pack_count(&vault);
    let out = ok(&["backup", p(&vault), ITEM, p(&source.src)]);
    let new_packs = pack_count(&vault) - packs_before;
    let pt = created_point(&out).expect("created point line");
    known.push((pt, Some(0)));
    assert_eq!(
        list_points(&vault),
        live(&known),
        "points after two complete backups"
    );
    eprintln!(
        "backup of {} MiB of new data: {new_packs} packs",
        (FRESH_FILES * FRESH_BYTES as u64) >> 20
    );
    let data_packs = new_packs - 2;

    let mut round = 0;
    let mut interrupted = 0;
    let events = [
        Kill::AtLock,
        Kill::Packs(1),
        Kill::Packs(data_packs / 2),
        Kill::Packs(data_packs - 4),
        Kill::DataWritten,
    ];
    for when in events {
        round += 1;
        let (killed, _) = crash_round(&vault, &mut source, &mut known, round, when);
        assert!(
            killed,
            "round {round}: {when:?} did not interrupt the backup"
        );
        interrupted += 1;
    }
    // The commit, step by step: at the first index flush (every pack of data and trees
    // durable, nothing flushed), at the fsyncs of the pack of records, at the flush after it,
    // at the last flush (catalog written, not flushed); then a run that gets to its point.
    let commit = [(1, 0), (1, 1), (1, 2), (2, 0), (3, 0), (4, 0)];
    let mut committed_once = false;
    for (k, j) in commit {
        round += 1;
        let when = Kill::Durable(k, j);
        let (killed, committed) = crash_round(&vault, &mut source, &mut known, round, when);
        interrupted += killed as usize;
        // Past the point's commit the run may still be killed: its audit record and job
        // end are written after the point (DESIGN §13, §15); the point stays either way.
        if k <= 3 {
            assert_eq!(
                (killed, committed),
                (true, false),
                "round {round}: {when:?}"
            );
        } else {
            assert!(committed, "round {round}: {when:?} left no point");
        }
        committed_once |= committed;
    }
    assert!(committed_once, "no run got as far as its point");
    // Every run up to the commit was interrupted; the last may or may not have been.
    assert!(interrupted >= events.len() + commit.len() - 1);

    // A re-run after all the crashes succeeds and stores the tree as it is now.
    let out = ok(&["backup", p(&vault), ITEM, p(&source.src)]);
    let pt = created_point(&out).expect("created point line");
    let mut expected = live(&known);
    expected.insert(pt.clone());
    assert_eq!(list_points(&vault), expected, "points after the re-run");
    let check = ok(&["check", p(&vault), "--read-data"]);
    assert!(
        check.contains(": 0 errors"),
        "check after the re-run: {check}"
    );
    assert_restores(&vault, &pt, &source.src);
    // The killed runs' unfinished packs do not stay behind.
    let leftovers: Vec<PathBuf> = walk(&vault.join("tmp"));
    assert!(
        leftovers.is_empty(),
        "unfinished packs of killed runs left in tmp/: {leftovers:?}"
    );
    // Rebuilding the index and catalog from the packs alone keeps every point (a point whose
    // records reached a pack but not the catalog may come back: it is complete) and a vault
    // that checks clean and restores.
    ok(&["repair", p(&vault)]);
    let repaired = list_points(&vault);
    assert!(
        repaired.is_superset(&expected),
        "repair lost points: had {expected:?}, now {repaired:?}"
    );
    let check = ok(&["check", p(&vault)]);
    assert!(check.contains(": 0 errors"), "check after repair: {check}");
    assert_restores(&vault, &pt, &source.src);
    eprintln!("crash test took {:?}", started.elapsed());
}
