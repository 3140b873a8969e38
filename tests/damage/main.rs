//! The damage matrix (issue 11, acceptance 1): for each kind of vault file (data, tree and meta
//! packs, index database files, the config, the lock and other state) and each kind of damage
//! (a byte flipped at a seeded offset, also in headers, trailers and frames; truncation;
//! deletion; swapped or duplicated files; a corrupt unindexed duplicate pack), on a copy of one
//! generated vault:
//! - no wrong data is ever returned, and nothing panics;
//! - `check --read-data` reports the damage (or it did no harm at all);
//! - after `repair` no file that was readable before is unreadable, every point that existed
//!   still exists, and if nothing is lost `check --read-data` is clean.
//!
//! The config cases only ask for a clear error, no panic and no change (healing a damaged
//! config is acceptance 5, built elsewhere). Each test prints its rows of the outcome table
//! (`--nocapture`).
//!
//! Readability is judged through the library (fast: thousands of reads per case); `check` and
//! `repair` are the real binary.

#[path = "../common/mod.rs"]
mod common;
mod harness;
use common::*;
use harness::*;

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use vaultfs::store::backend::Key;
use vaultfs::store::pack::{PackEntry, PackWriter};
use vaultfs::vault::Vault;

/// The pack cases for one kind of pack: seeded flips anywhere and in the header, trailer and
/// frames, truncations, a deletion, a swap and a copy under another name, and corrupt
/// unindexed duplicates.
fn pack_cases(kind: &'static str, flips: u64, truncations: u64, duplicates: u64) -> u32 {
    let b = make_base();
    let packs = &b.packs[kind];
    // Every byte of a pack is a blob, a frame, the header or the trailer: damage to a pack is
    // always reported.
    let case = |label: &str, damage: &dyn Fn(&Path)| -> Outcome {
        let outcome = case(&b, label, false, damage);
        assert_ne!(outcome, Outcome::NoEffect, "{label}: check did not see it");
        outcome
    };
    let mut t = Table::new(kind);
    let pick = |rng: &mut StdRng| packs[rng.random_range(0..packs.len())].clone();
    for i in 0..flips {
        let mut rng = StdRng::seed_from_u64(1000 + i);
        let (pack, entries) = pick(&mut rng);
        let (damage, label) = match i % 5 {
            0 => ("flip in the trailer", "trailer"),
            1 => ("flip in the header", "header"),
            2 => ("flip in a frame", "frame"),
            _ => ("flip anywhere", "anywhere"),
        };
        let label = format!(
            "{kind} pack {}: flip in the {label} (seed {i})",
            pack.display()
        );
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| {
            let rng = &mut *rng.borrow_mut();
            let path = v.join(&pack);
            let n = len(&path);
            let blobs_end = entries
                .iter()
                .map(|e| e.offset as u64 + e.len as u64)
                .max()
                .unwrap();
            let at = match i % 5 {
                0 => rng.random_range(n - 12..n),
                1 => rng.random_range(blobs_end + 8..n - 12),
                2 => {
                    let e = entries[rng.random_range(0..entries.len())];
                    e.offset as u64 - rng.random_range(1..=8)
                }
                _ => rng.random_range(0..n),
            };
            flip_at(&path, at, rng);
        });
        t.add(damage, &label, outcome);
    }
    for i in 0..truncations {
        let mut rng = StdRng::seed_from_u64(2000 + i);
        let (pack, _) = pick(&mut rng);
        let label = format!("{kind} pack {}: truncated (seed {i})", pack.display());
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| truncate(&v.join(&pack), &mut rng.borrow_mut()));
        t.add("truncated", &label, outcome);
    }
    let mut rng = StdRng::seed_from_u64(3000);
    let (pack, _) = pick(&mut rng);
    let label = format!("{kind} pack {}: deleted", pack.display());
    let outcome = case(&label, &|v| std::fs::remove_file(v.join(&pack)).unwrap());
    t.add("deleted", &label, outcome);
    let (a, c) = (packs[0].0.clone(), packs[1].0.clone());
    let label = format!("{kind} packs {} and {}: swapped", a.display(), c.display());
    let outcome = case(&label, &|v| swap(&v.join(&a), &v.join(&c)));
    t.add("swapped with another", &label, outcome);
    let label = format!("{kind} pack {}: copied under another name", pack.display());
    let to = random_pack_name(&mut rng);
    let outcome = case(&label, &|v| {
        std::fs::copy(v.join(&pack), v.join(&to)).unwrap();
    });
    t.add("duplicated (copied under another name)", &label, outcome);
    for i in 0..duplicates {
        let mut rng = StdRng::seed_from_u64(4000 + i);
        let (pack, entries) = pick(&mut rng);
        let label = format!(
            "{kind} pack {}: corrupt unindexed duplicate (seed {i})",
            pack.display()
        );
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| {
            corrupt_duplicate(v, &pack, &entries, &mut rng.borrow_mut())
        });
        t.add("corrupt unindexed duplicate", &label, outcome);
    }
    t.print()
}

/// A second, valid pack holding the blobs of `pack` (as an interrupted write leaves one, under
/// its own id, not indexed), then one byte of one of its blobs flipped.
fn corrupt_duplicate(vault: &Path, pack: &Path, entries: &[PackEntry], rng: &mut StdRng) {
    let v = Vault::open(vault, PASS.as_bytes()).unwrap();
    let store = v.store();
    let mut w = PackWriter::create(store.backend()).unwrap();
    let file = std::fs::read(vault.join(pack)).unwrap();
    let mut placed = Vec::new();
    for e in entries {
        let sealed = &file[e.offset as usize..(e.offset + e.len) as usize];
        placed.push(w.append(store.codec(), e.kind, e.id, sealed).unwrap());
    }
    let (id, _) = w.finish(store.codec()).unwrap();
    drop(v);
    let e = placed[rng.random_range(0..placed.len())];
    let at = e.offset as u64 + rng.random_range(0..e.len as u64);
    flip_at(&vault.join(Key::Pack(id).name()), at, rng);
}

#[test]
fn damage_matrix_data_packs() {
    let n = pack_cases("data", 32, 8, 5);
    assert!(n >= 48, "{n} cases");
}

#[test]
fn damage_matrix_tree_packs() {
    let n = pack_cases("tree", 22, 6, 4);
    assert!(n >= 35, "{n} cases");
}

#[test]
fn damage_matrix_meta_packs() {
    let n = pack_cases("meta", 22, 6, 4);
    assert!(n >= 35, "{n} cases");
}

/// Files of the index database: flips, truncations, deletions, swaps and copies.
#[test]
fn damage_matrix_index_files() {
    let b = make_base();
    let case = |label: &str, damage: &dyn Fn(&Path)| case(&b, label, false, damage);
    let index = b.vault.join("index");
    let files: Vec<PathBuf> = walk(&index)
        .into_iter()
        .filter(|p| p.is_file() && len(p) > 0)
        .map(|p| p.strip_prefix(&b.vault).unwrap().to_path_buf())
        .collect();
    let mut t = Table::new("index");
    let pick = |rng: &mut StdRng| files[rng.random_range(0..files.len())].clone();
    for i in 0..34u64 {
        let mut rng = StdRng::seed_from_u64(5000 + i);
        let f = pick(&mut rng);
        let label = format!("index file {}: flip (seed {i})", f.display());
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| {
            let rng = &mut *rng.borrow_mut();
            let n = len(&v.join(&f));
            // Half of the flips where the engine has written (its log is mostly unused space).
            let at = if i % 2 == 0 {
                rng.random_range(0..n.min(64 << 10))
            } else {
                rng.random_range(0..n)
            };
            flip_at(&v.join(&f), at, rng);
        });
        t.add("flip", &label, outcome);
    }
    for i in 0..10u64 {
        let mut rng = StdRng::seed_from_u64(6000 + i);
        let f = pick(&mut rng);
        let label = format!("index file {}: truncated (seed {i})", f.display());
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| truncate(&v.join(&f), &mut rng.borrow_mut()));
        t.add("truncated", &label, outcome);
    }
    for f in &files {
        let label = format!("index file {}: deleted", f.display());
        let outcome = case(&label, &|v| std::fs::remove_file(v.join(f)).unwrap());
        t.add("deleted", &label, outcome);
    }
    for i in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(7000 + i);
        let (a, c) = (pick(&mut rng), pick(&mut rng));
        if a == c {
            continue;
        }
        let label = format!("index files {} and {}: swapped", a.display(), c.display());
        let outcome = case(&label, &|v| swap(&v.join(&a), &v.join(&c)));
        t.add("swapped with another", &label, outcome);
    }
    for f in &files {
        let label = format!(
            "index file {}: copied to a newer snapshot's name",
            f.display()
        );
        let outcome = case(&label, &|v| {
            std::fs::copy(v.join(f), v.join("index/snap.FFFFFFFFFFFFFFFE")).unwrap();
        });
        t.add("duplicated (copied under another name)", &label, outcome);
    }
    let label = "index: the whole database deleted";
    let outcome = case(label, &|v| {
        std::fs::remove_dir_all(v.join("index")).unwrap()
    });
    t.add("deleted", label, outcome);
    let n = t.print();
    assert!(n >= 50, "{n} cases");
}

/// The config: damage is refused with a clear error and changes nothing (issue 13 heals it).
#[test]
fn damage_matrix_config() {
    let b = make_base();
    let case = |label: &str, damage: &dyn Fn(&Path)| case(&b, label, true, damage);
    let mut t = Table::new("config");
    for i in 0..16u64 {
        let rng = StdRng::seed_from_u64(8000 + i);
        let label = format!("config: flip (seed {i})");
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| {
            let rng = &mut *rng.borrow_mut();
            let n = len(&v.join("config"));
            let at = rng.random_range(0..n);
            flip_at(&v.join("config"), at, rng);
        });
        t.add("flip", &label, outcome);
    }
    for i in 0..4u64 {
        let rng = StdRng::seed_from_u64(8100 + i);
        let label = format!("config: truncated (seed {i})");
        let rng = std::cell::RefCell::new(rng);
        let outcome = case(&label, &|v| {
            truncate(&v.join("config"), &mut rng.borrow_mut())
        });
        t.add("truncated", &label, outcome);
    }
    let label = "config: deleted";
    let outcome = case(label, &|v| std::fs::remove_file(v.join("config")).unwrap());
    t.add("deleted", label, outcome);
    let label = "config: swapped with the lock";
    let outcome = case(label, &|v| swap(&v.join("config"), &v.join("lock")));
    t.add("swapped with another", label, outcome);
    let label = "config: copied beside itself";
    let outcome = case(label, &|v| {
        std::fs::copy(v.join("config"), v.join("config.bak")).unwrap();
    });
    t.add("duplicated (copied under another name)", label, outcome);
    let n = t.print();
    assert!(n >= 22, "{n} cases");
}

/// The lock and other state: what a user, a crash or another tool may leave or take away.
/// After repair the next backup must work too.
#[test]
fn damage_matrix_lock_and_other_state() {
    let b = make_base();
    let mut t = Table::new("lock and other");
    let mut rng = StdRng::seed_from_u64(9000);
    let stray_pack = random_pack_name(&mut rng);
    let garbage_pack = random_pack_name(&mut rng);
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&'static str, &str, Damage)> = vec![
        (
            "deleted",
            "lock deleted",
            Box::new(|v| std::fs::remove_file(v.join("lock")).unwrap()),
        ),
        (
            "flip",
            "lock filled with bytes",
            Box::new(|v| std::fs::write(v.join("lock"), noise(100, 1)).unwrap()),
        ),
        (
            "duplicated (copied under another name)",
            "junk file in tmp/",
            Box::new(|v| {
                std::fs::write(v.join("tmp/packs_00_junk.pack.1234"), noise(5000, 2)).unwrap()
            }),
        ),
        (
            "deleted",
            "tmp/ deleted",
            Box::new(|v| std::fs::remove_dir_all(v.join("tmp")).unwrap()),
        ),
        (
            "truncated",
            "a zero-length pack file",
            Box::new(move |v| std::fs::write(v.join(&stray_pack), b"").unwrap()),
        ),
        (
            "flip",
            "a pack file of random bytes",
            Box::new(move |v| std::fs::write(v.join(&garbage_pack), noise(3000, 3)).unwrap()),
        ),
        (
            "duplicated (copied under another name)",
            "a file that is not a pack in packs/",
            Box::new(|v| std::fs::write(v.join("packs/ab/notes.txt"), b"hello").unwrap()),
        ),
        (
            "deleted",
            "an empty pack directory deleted",
            Box::new(|v| {
                let empty = std::fs::read_dir(v.join("packs"))
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| std::fs::read_dir(p).unwrap().next().is_none())
                    .unwrap();
                std::fs::remove_dir(empty).unwrap();
            }),
        ),
        (
            "duplicated (copied under another name)",
            "an interrupted repair's index.new",
            Box::new(|v| {
                std::fs::create_dir(v.join("index.new")).unwrap();
                std::fs::write(v.join("index.new/db"), noise(4000, 4)).unwrap();
            }),
        ),
        (
            "duplicated (copied under another name)",
            "a junk file in the index database",
            Box::new(|v| std::fs::write(v.join("index/junk"), noise(300, 5)).unwrap()),
        ),
    ];
    let src = tempdir();
    std::fs::write(src.path().join("next.txt"), b"the next backup\n").unwrap();
    for (damage, label, f) in &cases {
        t.add(damage, label, case(&b, label, false, f));
        // And the next command works after repair.
        let (_tmp, vault) = b.copy();
        f(&vault);
        run(&["repair", s(&vault)]);
        ok(&["backup", s(&vault), "next", s(src.path())]);
    }
    let n = t.print();
    assert!(n >= 10, "{n} cases");
}
