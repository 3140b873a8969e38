//! Issue 11, "survive damage": each reproduction of the issue, run as a user runs it (the real
//! binary on a real vault), must now end well: `check` tells damage with the data intact from
//! lost data and names points and paths, `repair` salvages and never discards (every point
//! kept, nothing readable made unreadable, the previous index kept, the same result twice), and
//! a corrupt unindexed duplicate is reported and never preferred.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vaultfs::store::BlobKind;
use vaultfs::store::pack::PackEntry;
use vaultfs::vault::Vault;

const ITEM: &str = "docs";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A vault with two points of a tree of 60 files (1 MiB packs, 64 KiB chunks: several data
/// packs, a pack of trees and a pack of records per backup). Returns (tmp, vault, src, points).
fn vault_with_two_points() -> (tempfile::TempDir, PathBuf, PathBuf, Vec<String>) {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    for i in 0..40u64 {
        let p = src.join(format!("data/f{i:02}.bin"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(10_000 + (i as usize * 7919) % 60_000, i)).unwrap();
    }
    for i in 0..20 {
        let p = src.join(format!("notes/n{i:02}.txt"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("note {i}\n").repeat(50 + i)).unwrap();
    }
    let vault = tmp.path().join("vault");
    init_small_packs(&vault);
    let mut points = Vec::new();
    for round in 0..2 {
        if round == 1 {
            std::fs::write(src.join("notes/second.txt"), b"only in the second point\n").unwrap();
        }
        let out = ok(&["backup", s(&vault), ITEM, s(&src)]);
        points.push(created_point(&out).expect("created point line").1);
    }
    (tmp, vault, src, points)
}

/// Every pack with the entries of its header, read through the library.
fn packs(vault: &Path) -> Vec<(PathBuf, Vec<PackEntry>)> {
    let v = Vault::open(vault, PASS.as_bytes()).unwrap();
    let store = v.store();
    store
        .list_packs()
        .unwrap()
        .into_iter()
        .map(|p| {
            let path = vault.join(vaultfs::store::backend::Key::Pack(p).name());
            (path, store.read_pack_header(&p).unwrap())
        })
        .collect()
}

/// The first pack holding blobs of `kind` only, largest first when `largest`. Meta packs: one
/// holding a point record (not the pack of the config's sealed copy alone).
fn pack_of(vault: &Path, kind: BlobKind, largest: bool) -> (PathBuf, Vec<PackEntry>) {
    let all = packs(vault);
    let v = Vault::open(vault, PASS.as_bytes()).unwrap();
    let holds_point = |es: &[PackEntry]| {
        es.iter().any(|e| {
            let plain = v.store().get(BlobKind::Meta, &e.id).unwrap();
            matches!(
                vaultfs::format::decode::<vaultfs::format::MetaRecord>(&plain, "meta record"),
                Ok(vaultfs::format::MetaRecord::Point(_))
            )
        })
    };
    let mut ps: Vec<_> = all
        .into_iter()
        .filter(|(_, es)| !es.is_empty() && es.iter().all(|e| e.kind == kind))
        .filter(|(_, es)| kind != BlobKind::Meta || holds_point(es))
        .collect();
    drop(v);
    ps.sort_by_key(|(p, _)| std::fs::metadata(p).unwrap().len());
    if largest {
        ps.pop().unwrap()
    } else {
        ps.swap_remove(0)
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

/// `vaultfs ARGS` that must fail (no panic); returns stderr.
fn err_of(args: &[&str]) -> String {
    fails(args)
}

fn points_json(vault: &Path) -> Vec<Value> {
    serde_json::from_str::<Value>(&ok(&["points", s(vault), "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn point_names(vault: &Path) -> Vec<String> {
    points_json(vault)
        .iter()
        .map(|p| p["point"].as_str().unwrap().to_string())
        .collect()
}

/// Restore point `n` of `points` and compare with `src` (the first point lacks
/// `notes/second.txt`).
fn assert_restores(vault: &Path, points: &[String], n: usize, src: &Path) {
    let dest = tempdir();
    let out = dest.path().join("r");
    let point = &points[n];
    ok(&["restore", s(vault), &format!("{ITEM}/{point}"), s(&out)]);
    let mut expect = BTreeMap::new();
    for p in walk(src) {
        if p.is_file() {
            expect.insert(
                p.strip_prefix(src).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    let mut got = BTreeMap::new();
    for p in walk(&out) {
        if p.is_file() {
            got.insert(
                p.strip_prefix(&out).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    if n == 0 {
        expect.remove(Path::new("notes/second.txt"));
    }
    assert_eq!(
        expect.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{point}: files differ"
    );
    assert!(expect == got, "{point}: contents differ");
}

fn assert_clean(vault: &Path, what: &str) {
    let out = ok(&["check", s(vault), "--read-data"]);
    assert!(out.contains(": 0 errors"), "{what}: {out}");
}

/// Lines of `stderr` naming lost paths (`ITEM/POINT:PATH: ...`).
fn lost_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("vaultfs: "))
        .filter(|l| l.starts_with(&format!("{ITEM}/")) && l.contains(": file data is damaged"))
        .map(str::to_string)
        .collect()
}

/// "Removing one small meta pack": check said 2 blobs were lost while every point restored;
/// repair then dropped the point. Now check calls it damage with the data intact, and repair
/// keeps the point, writes its record again, and keeps the old index.
#[test]
fn removed_meta_pack_keeps_every_point() {
    let (_tmp, vault, src, points) = vault_with_two_points();
    let (meta, _) = pack_of(&vault, BlobKind::Meta, true);
    std::fs::remove_file(&meta).unwrap();
    let err = err_of(&["check", s(&vault)]);
    assert!(err.contains("is missing"), "{err}");
    assert!(err.contains("has no intact copy in the packs"), "{err}");
    assert!(lost_lines(&err).is_empty(), "nothing is lost: {err}");
    for n in 0..points.len() {
        assert_restores(&vault, &points, n, &src);
    }
    let out = ok(&["repair", s(&vault)]);
    assert!(out.contains("written again"), "{out}");
    assert!(vault.join("index.prev").is_dir(), "the old index is kept");
    assert_eq!(point_names(&vault), points, "repair kept every point");
    for n in 0..points.len() {
        assert_restores(&vault, &points, n, &src);
    }
    assert_clean(&vault, "after repair");
}

/// "A flipped byte inside a meta blob drops a whole intact point the same way."
#[test]
fn flipped_byte_in_a_meta_blob_keeps_the_point() {
    let (_tmp, vault, src, points) = vault_with_two_points();
    let (meta, entries) = pack_of(&vault, BlobKind::Meta, true);
    let e = entries.last().unwrap();
    flip(&meta, e.offset as usize + e.len as usize / 2);
    let err = err_of(&["check", s(&vault), "--read-data"]);
    assert!(err.contains("data intact"), "{err}");
    assert!(lost_lines(&err).is_empty(), "{err}");
    ok(&["repair", s(&vault)]);
    assert_eq!(point_names(&vault), points);
    for n in 0..points.len() {
        assert_restores(&vault, &points, n, &src);
    }
    assert_clean(&vault, "after repair");
    assert!(
        std::fs::read_dir(vault.join("damaged")).unwrap().count() == 1,
        "the damaged pack is kept aside, not deleted"
    );
}

/// "A flipped byte in a data pack's trailer or header: check reports the files as damaged
/// although restore returns all of them identical; repair then declares every blob of that
/// pack lost." Now: check says damaged container, data intact; repair keeps every file.
#[test]
fn flipped_byte_in_a_data_pack_header_or_trailer_loses_nothing() {
    for (what, from_end) in [
        ("trailer magic", 3usize),
        ("header length", 10),
        ("header", 40),
    ] {
        let (_tmp, vault, src, points) = vault_with_two_points();
        let (pack, _) = pack_of(&vault, BlobKind::Data, true);
        let len = std::fs::metadata(&pack).unwrap().len() as usize;
        flip(&pack, len - from_end);
        let err = err_of(&["check", s(&vault)]);
        assert!(
            err.contains("damaged container, data intact") && lost_lines(&err).is_empty(),
            "{what}: {err}"
        );
        for n in 0..points.len() {
            assert_restores(&vault, &points, n, &src);
        }
        let out = ok(&["repair", s(&vault)]);
        assert!(out.contains("moved to damaged/"), "{what}: {out}");
        for n in 0..points.len() {
            assert_restores(&vault, &points, n, &src);
        }
        assert_clean(&vault, what);
    }
}

/// "A pack truncated to half: 114 files unreadable before repair, 203 after." Now the same
/// files are unreadable after repair as before, the point is kept and marked with exactly
/// those paths, and check after repair lists them.
#[test]
fn pack_truncated_to_half_makes_nothing_more_unreadable() {
    let (tmp, vault, _src, points) = vault_with_two_points();
    let (pack, _) = pack_of(&vault, BlobKind::Data, true);
    let len = std::fs::metadata(&pack).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let unreadable = |n: &str| -> Vec<String> {
        let dest = tmp.path().join(format!("restore-{n}"));
        let out = vaultfs(&[
            "restore",
            s(&vault),
            &format!("{ITEM}/{}", points[1]),
            s(&dest),
        ]);
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("vaultfs: {ITEM}/{}:", points[1])))
            .map(|l| l.split(": ").next().unwrap().to_string())
            .collect();
        lines.sort();
        lines
    };
    let before = unreadable("before");
    assert!(!before.is_empty(), "half a data pack holds some files");
    let err = err_of(&["check", s(&vault)]);
    assert!(err.contains("data lost"), "{err}");
    let out = vaultfs(&["repair", s(&vault)]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "repair: data was lost, points kept"
    );
    assert_eq!(
        unreadable("after"),
        before,
        "repair made nothing more unreadable"
    );
    assert_eq!(point_names(&vault), points, "every point kept");
    let marked: Vec<String> = points_json(&vault)
        .iter()
        .find(|p| p["point"] == points[1].as_str())
        .unwrap()["damaged_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().trim_start_matches('/').to_string())
        .collect();
    let mut marked_sorted = marked.clone();
    marked_sorted.sort();
    assert_eq!(
        marked_sorted, before,
        "the mark lists exactly the lost paths"
    );
    let err = err_of(&["check", s(&vault), "--read-data"]);
    let lost = lost_lines(&err);
    assert_eq!(
        lost.iter()
            .filter(|l| l.starts_with(&format!("{ITEM}/{}:", points[1])))
            .count(),
        before.len(),
        "{err}"
    );
    // Twice gives the same.
    let again = vaultfs(&["repair", s(&vault)]);
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(unreadable("again"), before);
}

/// "A corrupt, unindexed duplicate pack left by an interrupted backup: check --read-data
/// reports 0 errors, and repair then points the index at the corrupt copy."
#[test]
fn corrupt_unindexed_duplicate_is_reported_and_never_used() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    for i in 0..8u64 {
        let p = src.join(format!("f{i}.bin"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(200_000, 50 + i)).unwrap();
    }
    let vault = tmp.path().join("vault");
    init_small_packs(&vault);
    // The pack of the config's sealed copy, written at init.
    let at_init: Vec<PathBuf> = packs(&vault).into_iter().map(|(p, _)| p).collect();
    // A backup killed once its first pack is durable (data and directory fsynced), before
    // anything is indexed, leaves an unindexed pack; the next backup stores the same blobs
    // again, indexed.
    let killed = std::process::Command::new(bin())
        .args(["backup", s(&vault), ITEM, s(&src)])
        .env("VAULTFS_PASSPHRASE", PASS)
        .env("VAULTFS_TEST_KILL_AT_DURABLE", "3")
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "killed by its signal");
    let leftover: Vec<_> = packs(&vault)
        .into_iter()
        .filter(|(p, _)| !at_init.contains(p))
        .collect();
    assert_eq!(leftover.len(), 1, "one durable, unindexed pack");
    let (dup, entries) = leftover.into_iter().next().unwrap();
    let out = ok(&["backup", s(&vault), ITEM, s(&src)]);
    let point = created_point(&out).unwrap().1;
    assert_clean_but_for_warnings(&vault);
    let e = entries[entries.len() / 2];
    flip(&dup, e.offset as usize + e.len as usize / 2);
    let err = err_of(&["check", s(&vault), "--read-data"]);
    assert!(
        err.contains("data intact")
            && err.contains(&e.id.to_string())
            && lost_lines(&err).is_empty(),
        "the corrupt duplicate is reported, nothing is lost: {err}"
    );
    ok(&["repair", s(&vault)]);
    assert_clean(&vault, "after repair");
    let dest = tmp.path().join("r");
    ok(&["restore", s(&vault), &format!("{ITEM}/{point}"), s(&dest)]);
    assert_diff_clean(&src, &dest);
    // Also with no index to prefer the good copy: the intact one is chosen.
    std::fs::remove_dir_all(vault.join("index")).unwrap();
    std::fs::remove_dir_all(vault.join("index.prev")).unwrap();
    ok(&["repair", s(&vault)]);
    assert_clean(&vault, "after repair from the packs alone");
}

fn assert_clean_but_for_warnings(vault: &Path) {
    let out = vaultfs(&["check", s(vault), "--read-data"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": 0 errors"), "{stdout}");
}

/// `repair` keeps the index it replaces (index.prev, which opens as it was), `--dry-run`
/// changes nothing and says what would change, and a second run gives the same vault.
#[test]
fn repair_keeps_the_previous_index_dry_runs_and_repeats() {
    let (tmp, vault, src, points) = vault_with_two_points();
    let (pack, _) = pack_of(&vault, BlobKind::Data, false);
    let len = std::fs::metadata(&pack).unwrap().len() as usize;
    flip(&pack, len - 20);
    // The index engine may rewrite its own log file when a database is opened, whoever opens
    // it (seen under load): its files are compared by what they hold, every other file byte
    // for byte, and no file may appear or go.
    let index = vault.join("index");
    let outside = |files: BTreeMap<PathBuf, Vec<u8>>| -> BTreeMap<PathBuf, Vec<u8>> {
        files
            .into_iter()
            .map(|(p, b)| {
                if p.starts_with(&index) {
                    (p, Vec::new())
                } else {
                    (p, b)
                }
            })
            .collect()
    };
    let before = outside(files_with_bytes(&vault));
    let listed = ok(&["points", s(&vault), "--json"]);
    let out = ok(&["repair", s(&vault), "--dry-run"]);
    assert!(
        out.contains("would: packs:") && out.contains("dry run:"),
        "{out}"
    );
    let after = outside(files_with_bytes(&vault));
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed.is_empty(),
        "a dry run changed the vault: {changed:?}"
    );
    assert_eq!(
        ok(&["points", s(&vault), "--json"]),
        listed,
        "a dry run changed the index"
    );

    let first = ok(&["repair", s(&vault)]);
    let listing = ok(&["points", s(&vault), "--json"]);
    let second = ok(&["repair", s(&vault)]);
    assert_eq!(ok(&["points", s(&vault), "--json"]), listing);
    let salvaged = |out: &str| out.lines().any(|l| l.starts_with("packs:"));
    assert!(!salvaged(&second), "nothing left to salvage: {second}");
    assert!(salvaged(&first), "{first}");
    for n in 0..points.len() {
        assert_restores(&vault, &points, n, &src);
    }
    // The kept index is the first repair's result: put back, it opens with every point.
    let undo = tmp.path().join("undo");
    sh(&format!("cp -a '{}' '{}'", vault.display(), undo.display()));
    std::fs::remove_dir_all(undo.join("index")).unwrap();
    std::fs::rename(undo.join("index.prev"), undo.join("index")).unwrap();
    assert_eq!(point_names(&undo), points);
}

/// Packs of format 2 (no frames) are salvaged as far as the old index allows: the v2 fixture
/// with a data pack's header damaged restores identically after repair.
#[test]
fn version_2_pack_with_a_damaged_header_is_salvaged_from_the_old_index() {
    let tmp = tempdir();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    sh(&format!(
        "tar -xzf '{}' -C '{}'",
        fixtures.join("vault-v2.tar.gz").display(),
        tmp.path().display()
    ));
    let vault = tmp.path().join("vault");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("vault-v2.manifest.json")).unwrap(),
    )
    .unwrap();
    let pass = manifest["passphrase"].as_str().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .env("VAULTFS_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    let v = Vault::open(&vault, pass.as_bytes()).unwrap();
    let data_pack = v
        .store()
        .list_packs()
        .unwrap()
        .into_iter()
        .find(|p| {
            v.store()
                .read_pack_header(p)
                .unwrap()
                .iter()
                .any(|e| e.kind == BlobKind::Data)
        })
        .unwrap();
    drop(v);
    let path = vault.join(vaultfs::store::backend::Key::Pack(data_pack).name());
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    flip(&path, len - 30);
    let dest_of = |n: &str| tmp.path().join(n);
    for pt in manifest["points"].as_array().unwrap() {
        let name = pt["point"].as_str().unwrap();
        let out = run(&[
            "restore",
            s(&vault),
            &format!("{ITEM}/{name}"),
            s(&dest_of(name)),
        ]);
        assert!(out.status.success(), "before repair: {out:?}");
    }
    let out = run(&["repair", s(&vault)]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["check", s(&vault), "--read-data"]);
    assert!(out.status.success(), "{out:?}");
    for pt in manifest["points"].as_array().unwrap() {
        let name = pt["point"].as_str().unwrap();
        let again = dest_of(&format!("{name}-after"));
        let out = run(&["restore", s(&vault), &format!("{ITEM}/{name}"), s(&again)]);
        assert!(out.status.success(), "after repair: {out:?}");
        assert_diff_clean(&dest_of(name), &again);
    }
}
