//! A full disk wedges nothing (issue 11, acceptance 4): a vault on a small tmpfs, filled up;
//! every command is run once while it is full (through the real binary, and a mount); none
//! panics, each works or fails with one clear line, none leaves a zero-length or partial file
//! in the vault, and the vault's files are as they were (the index database's engine may
//! rewrite its own files in place with the same content, DESIGN.md §11.5). After the space is
//! freed every command works without `repair`, and `check --read-data` is clean.

mod common;
use common::mnt::Mount;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ITEM: &str = "docs";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A tmpfs of `mib` MiB mounted on a directory, unmounted on drop (also on a panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size={mib}m vaultfs-test-full '{}'",
            dir.display()
        ));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the filesystem of `dir` to the last byte; returns the files that did it.
fn fill(dir: &Path) -> Vec<PathBuf> {
    let mut fillers = Vec::new();
    for (i, bs) in ["1M", "4k", "1"].iter().enumerate() {
        let f = dir.join(format!("filler-{i}"));
        // dd stops at ENOSPC (and says so on stderr): that is the point.
        let _ = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", f.display()))
            .arg(format!("bs={bs}"))
            .output()
            .unwrap();
        fillers.push(f);
    }
    let free = sh(&format!("stat -f -c '%a' '{}'", dir.display()));
    assert_eq!(free.trim(), "0", "the filesystem is not full");
    fillers
}

/// Every file of the vault `dir` but the index database's, with its size and a hash of its
/// bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file() && !p.starts_with(dir.join("index")))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            let h = blake3::hash(&b).to_hex().to_string();
            (p, (b.len() as u64, h))
        })
        .collect()
}

/// No zero-length file in the vault but its lock, nothing left under `tmp/`, no half-built
/// index.
fn assert_no_debris(vault: &Path, what: &str) {
    for p in walk(vault) {
        if p.is_file() && std::fs::metadata(&p).unwrap().len() == 0 {
            assert_eq!(
                p,
                vault.join("lock"),
                "{what}: left a zero-length file {p:?}"
            );
        }
    }
    let tmp: Vec<PathBuf> = walk(&vault.join("tmp"));
    assert!(tmp.is_empty(), "{what}: left {tmp:?}");
    assert!(!vault.join("index.new").exists(), "{what}: left index.new");
}

/// The command must not panic; a failure must be one clear line.
fn run_once(args: &[&str], what: &str) -> bool {
    sane_outcome(args, &vaultfs(args), what)
}

/// A vault (small packs) on a 40 MiB tmpfs: `TMP/fs/vault`.
fn small_vault() -> (tempfile::TempDir, Tmpfs) {
    let tmp = tempdir();
    let fs = tmp.path().canonicalize().unwrap().join("fs");
    let tmpfs = Tmpfs::mount(&fs, 40);
    init_small_packs(&fs.join("vault"));
    (tmp, tmpfs)
}

#[test]
fn full_disk_wedges_nothing_and_everything_works_once_space_is_freed() {
    let (tmp, _tmpfs) = small_vault();
    let root = tmp.path().canonicalize().unwrap();
    let (fs, vault) = (root.join("fs"), root.join("fs/vault"));
    let src = root.join("src");
    for i in 0..30u64 {
        let p = src.join(format!("d{}/f{i}.bin", i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(40_000 + i as usize * 3000, i)).unwrap();
    }
    let p1 = created_point(&ok(&["backup", s(&vault), ITEM, s(&src)]))
        .unwrap()
        .1;
    std::fs::write(src.join("second.txt"), b"second\n").unwrap();
    let p2 = created_point(&ok(&["backup", s(&vault), ITEM, s(&src)]))
        .unwrap()
        .1;
    ok(&["delete", s(&vault), &format!("{ITEM}/{p1}")]);
    ok(&["policy", s(&vault), ITEM, "--keep-last", "5"]);
    // An incoming tree, so `snapshot VAULT ITEM` has something to freeze offline.
    let mnt = root.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    {
        let m = Mount::new(&vault, &mnt);
        std::fs::write(m.path(&format!("incoming/{ITEM}/in.txt")), b"incoming\n").unwrap();
    }
    // Full right after a write: opening the index database needs room (its engine writes a
    // snapshot at open), so a read fails, cleanly, and leaves nothing that fails the next.
    let fillers = fill(&fs);
    for args in [vec!["points", s(&vault)], vec!["check", s(&vault)]] {
        let worked = run_once(&args, "full after a write");
        eprintln!("full after a write: {args:?}: worked: {worked}");
        assert_no_debris(&vault, &format!("{args:?} full after a write"));
    }
    for f in &fillers {
        std::fs::remove_file(f).unwrap();
    }
    ok(&["points", s(&vault)]);

    let fillers = fill(&fs);
    let before = files(&vault);
    let out = root.join("restored-while-full");
    let vault2 = fs.join("vault2");
    let (v, d1, d2) = (s(&vault), format!("{ITEM}/{p1}"), format!("{ITEM}/{p2}"));
    let commands: Vec<Vec<&str>> = vec![
        vec!["items", v],
        vec!["points", v],
        vec!["points", v, "--deleted"],
        vec!["restore", v, &d2, s(&out)],
        vec!["check", v],
        vec!["check", v, "--read-data"],
        vec!["backup", v, ITEM, s(&src)],
        vec!["backup", v, "other", s(&src)],
        vec!["delete", v, &d2],
        vec!["undelete", v, &d1],
        vec!["policy", v, ITEM, "--keep-last", "3"],
        vec!["settings", v, "--soft-delete-days", "20"],
        vec!["snapshot", v, ITEM],
        vec!["gc", v, "--dry-run"],
        vec!["gc", v],
        vec!["repair", v, "--dry-run"],
        vec!["repair", v],
        vec![
            "init",
            s(&vault2),
            "--kdf-memory-kib",
            "64",
            "--kdf-iterations",
            "1",
        ],
    ];
    for args in &commands {
        let worked = run_once(args, "while full");
        eprintln!(
            "while full: {args:?}: {}",
            if worked { "worked" } else { "failed cleanly" }
        );
        assert_no_debris(&vault, &format!("{args:?} while full"));
        let now = files(&vault);
        let changed: Vec<&PathBuf> = now
            .keys()
            .chain(before.keys())
            .filter(|p| now.get(*p) != before.get(*p))
            .collect();
        assert!(
            changed.is_empty(),
            "{args:?} changed the vault while the disk was full: {changed:?}"
        );
    }
    assert!(!vault2.exists(), "a failed init left {vault2:?}");
    {
        // The mount: it works or fails cleanly, and unmounts.
        let mut m = Mount::guard(&vault, &mnt);
        let out = m.try_mount();
        if out.status.success() {
            let w = std::fs::write(
                m.path(&format!("incoming/{ITEM}/full.txt")),
                b"x".repeat(1 << 20),
            );
            eprintln!("while full: a write into incoming: {w:?}");
            run_once(&["snapshot", s(&mnt), ITEM], "while full, mounted");
        } else {
            run_once(&["mount", v, s(&mnt)], "while full");
        }
    }
    assert_no_debris(&vault, "mount while full");

    for f in &fillers {
        std::fs::remove_file(f).unwrap();
    }
    let out2 = root.join("restored");
    let works: Vec<Vec<&str>> = vec![
        vec!["items", v],
        vec!["points", v],
        vec!["restore", v, &d2, s(&out2)],
        vec!["check", v],
        vec!["backup", v, ITEM, s(&src)],
        vec!["backup", v, "other", s(&src)],
        vec!["undelete", v, &d1],
        vec!["delete", v, &d2],
        vec!["undelete", v, &d2],
        vec!["policy", v, ITEM, "--keep-last", "3"],
        vec!["settings", v, "--soft-delete-days", "20"],
        vec!["snapshot", v, ITEM],
        vec!["gc", v],
        vec![
            "init",
            s(&vault2),
            "--kdf-memory-kib",
            "64",
            "--kdf-iterations",
            "1",
        ],
    ];
    for args in &works {
        ok(args);
    }
    let check = ok(&["check", v, "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");
    assert_same_tree(&src, &out2);
    let listed = ok(&["points", v, ITEM]);
    assert!(listed.contains(&p1) && listed.contains(&p2), "{listed}");
    {
        let m = Mount::new(&vault, &mnt);
        std::fs::write(m.path(&format!("incoming/{ITEM}/after.txt")), b"after\n").unwrap();
        ok(&["snapshot", s(&mnt), ITEM]);
    }
    assert_no_debris(&vault, "after");
}

/// A backup that meets a full disk (issue 15, acceptance 1): it fails with one clear line,
/// its alert reaches the alert command exactly once (the command writes elsewhere), and once
/// space is freed the vault lists the failed job and the alert.
#[test]
fn a_backup_on_a_full_disk_is_a_failed_job_with_one_alert_delivered() {
    let (tmp, _tmpfs) = small_vault();
    let root = tmp.path().canonicalize().unwrap();
    let (fs, vault) = (root.join("fs"), root.join("fs/vault"));
    let v = s(&vault);
    let inbox = root.join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let cmd = format!("cat > {}/alert-$$.json", s(&inbox));
    ok(&["settings", v, "--alert-command", &cmd]);
    let src = root.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.bin"), noise(2 << 20, 7)).unwrap();
    ok(&["backup", v, ITEM, s(&src)]);
    std::fs::write(src.join("b.bin"), noise(8 << 20, 8)).unwrap();
    let fillers = fill(&fs);
    // Room for the index database to open, none for the new data.
    std::fs::remove_file(&fillers[0]).unwrap();
    let keep = fs.join("keep");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=37"])
        .arg(format!("of={}", keep.display()))
        .output()
        .unwrap();
    let args = ["backup", v, ITEM, s(&src)];
    let out = vaultfs(&args);
    assert!(!sane_outcome(&args, &out, "backup on a full disk"));
    let delivered: Vec<PathBuf> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let sent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&delivered[0]).unwrap()).unwrap();
    assert_eq!(sent["kind"], "job_failed", "{sent}");
    assert_eq!(sent["item"], ITEM);

    for f in fillers.iter().chain([&keep]) {
        let _ = std::fs::remove_file(f);
    }
    let jobs: serde_json::Value = serde_json::from_str(&ok(&["jobs", v, "--json"])).unwrap();
    let last = jobs.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["status"].as_str()),
        (Some("backup"), Some("failed")),
        "{jobs}"
    );
    assert_eq!(sent["job"], last["id"]);
    let alerts: serde_json::Value = serde_json::from_str(&ok(&["alerts", v, "--json"])).unwrap();
    let of_kind = |k: &str| -> Vec<serde_json::Value> {
        let all = alerts.as_array().unwrap().iter();
        all.filter(|a| a["kind"] == k).cloned().collect()
    };
    let failed = of_kind("job_failed");
    assert_eq!(failed.len(), 1, "{alerts}");
    assert_eq!(failed[0]["id"], sent["id"]);
    assert_eq!(failed[0]["deliveries"].as_array().unwrap().len(), 1);
    // The small filesystem is also low on space (under 1 GiB free): its own alert, its own
    // delivery; the failed job's was not repeated.
    assert_eq!(of_kind("low_space").len(), 1, "{alerts}");
    let kinds: Vec<String> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|e| {
            let doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            doc["kind"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "job_failed").count(),
        1,
        "{kinds:?}"
    );
}
