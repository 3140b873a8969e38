//! What the damage matrix runs on: the generated base vault and what it holds, reading every
//! file of every point through the library, running the real binary, and judging one case.

use crate::common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

use vaultfs::format::{Node, NodeKind};
use vaultfs::store::backend::Key;
use vaultfs::store::pack::PackEntry;
use vaultfs::store::{BlobKind, PackId};
use vaultfs::vault::Vault;

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// What each point holds: path (from its root, `/` first) → blake3 of the file's bytes.
pub type Manifest = BTreeMap<String, BTreeMap<Vec<u8>, [u8; 32]>>;

/// The generated vault every case copies.
pub struct Base {
    _tmp: tempfile::TempDir,
    pub vault: PathBuf,
    /// Points as ITEM/POINT, with what they hold.
    pub manifest: Manifest,
    /// Packs by kind of blob they hold (relative to the vault), with their header entries.
    pub packs: BTreeMap<&'static str, Vec<(PathBuf, Vec<PackEntry>)>>,
}

/// Two items, four points (one soft-deleted): small and multi-chunk files, nested directories,
/// a hard link and a symlink; 1 MiB packs and 64 KiB chunks, so several data packs, a pack of
/// trees and one of records per backup.
pub fn make_base() -> Arc<Base> {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_small_packs(&vault);
    let src = tmp.path().join("src");
    let write = |rel: &str, data: &[u8]| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    for i in 0..30u64 {
        write(
            &format!("text/t{i:02}.txt"),
            format!("line {i}\n").repeat(20 + i as usize).as_bytes(),
        );
    }
    for i in 0..8u64 {
        write(
            &format!("bin/b{i}.bin"),
            &noise(90_000 + i as usize * 40_000, 7 + i),
        );
    }
    write("deep/a/b/c/d.txt", b"deep\n");
    std::fs::hard_link(src.join("text/t01.txt"), src.join("deep/hard.txt")).unwrap();
    std::os::unix::fs::symlink("text/t02.txt", src.join("link")).unwrap();
    let mut manifest = Manifest::new();
    let backup = |item: &str, manifest: &mut Manifest| {
        let out = ok(&["backup", s(&vault), item, s(&src)]);
        let (_, point) = created_point(&out).unwrap();
        manifest.insert(format!("{item}/{point}"), files_of(&src));
        point
    };
    let first = backup("docs", &mut manifest);
    write("text/t05.txt", b"changed in the second point\n");
    write("bin/new.bin", &noise(250_000, 99));
    backup("docs", &mut manifest);
    std::fs::remove_file(src.join("bin/b0.bin")).unwrap();
    write("third.txt", b"third\n");
    backup("docs", &mut manifest);
    write("photos.bin", &noise(300_000, 123));
    backup("photos", &mut manifest);
    ok(&["delete", s(&vault), &format!("docs/{first}")]);

    let v = Vault::open(&vault, PASS.as_bytes()).unwrap();
    let mut packs: BTreeMap<&'static str, Vec<(PathBuf, Vec<PackEntry>)>> = BTreeMap::new();
    for p in v.store().list_packs().unwrap() {
        let entries = v.store().read_pack_header(&p).unwrap();
        let kind = if entries.iter().any(|e| e.kind == BlobKind::Data) {
            "data"
        } else if entries.iter().all(|e| e.kind == BlobKind::Meta) {
            "meta"
        } else {
            "tree"
        };
        packs
            .entry(kind)
            .or_default()
            .push((PathBuf::from(Key::Pack(p).name()), entries));
    }
    drop(v);
    for kind in ["data", "tree", "meta"] {
        assert!(
            packs.get(kind).is_some_and(|v| v.len() >= 2),
            "{kind} packs: {packs:?}"
        );
    }
    Arc::new(Base {
        _tmp: tmp,
        vault,
        manifest,
        packs,
    })
}

impl Base {
    /// A copy of the base vault in a new temp dir (removed with it).
    pub fn copy(&self) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempdir();
        let vault = tmp.path().join("vault");
        sh(&format!(
            "cp -a '{}' '{}'",
            self.vault.display(),
            vault.display()
        ));
        (tmp, vault)
    }
}

/// Regular files under `root` (hard links under each name), path from `/`.
pub fn files_of(root: &Path) -> BTreeMap<Vec<u8>, [u8; 32]> {
    use std::os::unix::ffi::OsStrExt;
    walk(root)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).unwrap().is_file())
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap();
            let mut key = b"/".to_vec();
            key.extend_from_slice(rel.as_os_str().as_bytes());
            (key, *blake3::hash(&std::fs::read(&p).unwrap()).as_bytes())
        })
        .collect()
}

/// Which files of which points read back (never with wrong bytes: that panics), and which
/// points are listed. `None` if the vault does not open. Runs on a thread so that a hang is a
/// failure, not a stuck suite.
pub fn readable(b: &Arc<Base>, vault: &Path, label: &str) -> Option<Readable> {
    let (b, vault, label) = (b.clone(), vault.to_path_buf(), label.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_all(&b, &vault, &label));
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("reading the vault hung or panicked"))
}

/// Files that read (point, path), and the points listed.
pub type Readable = (BTreeSet<(String, Vec<u8>)>, BTreeSet<String>);

pub fn read_all(b: &Base, vault: &Path, label: &str) -> Option<Readable> {
    let v = Vault::open(vault, PASS.as_bytes()).ok()?;
    let mut listed = BTreeSet::new();
    for deleted in [false, true] {
        if let Ok(points) = v.points(None, deleted) {
            listed.extend(points.into_iter().map(|p| format!("{}/{}", p.item, p.name)));
        }
    }
    let mut ok = BTreeSet::new();
    for (point, files) in &b.manifest {
        let Ok(rec) = v.resolve(point) else { continue };
        let mut found = BTreeMap::new();
        collect(&v, &rec.root, b"", &mut found);
        for (path, want) in files {
            let Some(Some(got)) = found.get(path) else {
                continue;
            };
            assert!(
                got == want,
                "{label}: WRONG DATA returned for {point}:{}",
                String::from_utf8_lossy(path)
            );
            ok.insert((point.clone(), path.clone()));
        }
    }
    Some((ok, listed))
}

/// Every file under `node` that reads: path → Some(blake3), or None if a read failed.
pub fn collect(v: &Vault, node: &Node, path: &[u8], out: &mut BTreeMap<Vec<u8>, Option<[u8; 32]>>) {
    match node.kind {
        NodeKind::Dir => {
            let Some(Ok(tree)) = node.subtree.map(|id| v.tree(&id)) else {
                return;
            };
            for child in &tree.nodes {
                let mut p = path.to_vec();
                p.push(b'/');
                p.extend_from_slice(&child.name);
                collect(v, child, &p, out);
            }
        }
        NodeKind::File => {
            let mut h = blake3::Hasher::new();
            let mut ok = true;
            for c in &node.chunks {
                match v.store().get(BlobKind::Data, &c.id) {
                    Ok(bytes) => {
                        h.update(&bytes);
                    }
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            out.insert(path.to_vec(), ok.then(|| *h.finalize().as_bytes()));
        }
        _ => {}
    }
}

/// `vaultfs ARGS`, killed (and the test failed) after two minutes.
pub fn run(args: &[&str]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("vaultfs {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    sane_outcome(args, &out, "damage matrix");
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Nothing read differently and check was clean: the damage did no harm.
    NoEffect,
    /// Reported by check; after repair everything reads and check is clean.
    Repaired,
    /// Reported by check; some data was lost before repair and stays lost (points kept,
    /// marked), nothing more.
    LostKept,
    /// Every command refuses the vault with a clear error; nothing changed (config).
    Refused,
}

/// One case: damage a copy of the base vault with `damage`, then judge. `config`: the damage
/// is to the config, which may only be refused.
pub fn case(b: &Arc<Base>, label: &str, config: bool, damage: impl FnOnce(&Path)) -> Outcome {
    let (_tmp, vault) = b.copy();
    damage(&vault);
    let all: BTreeSet<(String, Vec<u8>)> = b
        .manifest
        .iter()
        .flat_map(|(pt, files)| files.keys().map(move |f| (pt.clone(), f.clone())))
        .collect();
    let points: BTreeSet<String> = b.manifest.keys().cloned().collect();
    let before = readable(b, &vault, label);
    let check = run(&["check", s(&vault), "--read-data"]);
    let reported =
        !check.status.success() || String::from_utf8_lossy(&check.stderr).contains("warning:");
    let harmless = before.as_ref().is_some_and(|(r, _)| *r == all) && !reported;
    let readable_before = before.map(|(r, _)| r).unwrap_or_default();
    assert!(
        reported || readable_before == all,
        "{label}: data was unreadable but check said nothing: {check:?}"
    );
    let files_before = files_with_bytes(&vault);
    let repair = run(&["repair", s(&vault)]);
    // 3: done, with data lost (the points kept, marked).
    if !matches!(repair.status.code(), Some(0) | Some(3)) {
        assert!(config, "{label}: repair failed: {repair:?}");
        // Refused: every command, and nothing changed.
        for args in [vec!["points", s(&vault)], vec!["check", s(&vault)]] {
            assert!(!run(&args).status.success(), "{label}: {args:?} worked");
        }
        assert!(
            files_with_bytes(&vault) == files_before,
            "{label}: a refused command changed the vault"
        );
        return Outcome::Refused;
    }
    let (readable_after, listed) = readable(b, &vault, label)
        .unwrap_or_else(|| panic!("{label}: the vault does not open after repair: {repair:?}"));
    let worse: Vec<_> = readable_before.difference(&readable_after).collect();
    assert!(
        worse.is_empty(),
        "{label}: repair made readable files unreadable: {worse:?}"
    );
    let dropped: Vec<_> = points.difference(&listed).collect();
    assert!(
        dropped.is_empty(),
        "{label}: repair dropped points {dropped:?}"
    );
    let check = run(&["check", s(&vault), "--read-data"]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    if readable_after != all {
        assert!(
            stdout.contains("(0 with the data intact"),
            "{label}: after repair only lost data may be reported: {check:?}"
        );
        return Outcome::LostKept;
    }
    assert!(
        stdout.contains(": 0 errors"),
        "{label}: not clean after repair: {check:?}"
    );
    if harmless {
        Outcome::NoEffect
    } else {
        Outcome::Repaired
    }
}

pub fn flip_at(path: &Path, at: u64, rng: &mut StdRng) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= rng.random_range(1..=255u8);
    std::fs::write(path, b).unwrap();
}

pub fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

pub fn truncate(path: &Path, rng: &mut StdRng) {
    let to = rng.random_range(0..len(path));
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(to)
        .unwrap();
}

pub fn swap(a: &Path, b: &Path) {
    let t = a.with_extension("swap");
    std::fs::rename(a, &t).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(&t, b).unwrap();
}

pub fn random_pack_name(rng: &mut StdRng) -> PathBuf {
    let mut id = [0u8; 16];
    rng.fill(&mut id);
    PathBuf::from(Key::Pack(PackId(id)).name())
}

/// Rows of the outcome table for one kind of file.
pub struct Table {
    kind: &'static str,
    rows: BTreeMap<&'static str, BTreeMap<Outcome, u32>>,
}

impl Table {
    pub fn new(kind: &'static str) -> Table {
        Table {
            kind,
            rows: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, damage: &'static str, label: &str, outcome: Outcome) {
        eprintln!("{label}: {outcome:?}");
        *self
            .rows
            .entry(damage)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }

    pub fn print(&self) -> u32 {
        let mut total = 0;
        for (damage, outcomes) in &self.rows {
            let n: u32 = outcomes.values().sum();
            total += n;
            let cell = |o: Outcome| outcomes.get(&o).copied().unwrap_or(0);
            eprintln!(
                "| {} | {damage} | {n} | {} | {} | {} | {} |",
                self.kind,
                cell(Outcome::NoEffect),
                cell(Outcome::Repaired),
                cell(Outcome::LostKept),
                cell(Outcome::Refused)
            );
        }
        total
    }
}
