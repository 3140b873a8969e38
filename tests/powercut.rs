//! Power cuts at every durability point of `backup` (DESIGN.md §4.2): the vault runs in this
//! process on its real local backend and index, observed by `store::backend::fault::PowerCut`,
//! which refuses the n-th durability call (fsync of a file or directory, index flush) and then
//! throws away everything that call and the ones after it would have made durable. After the
//! "reboot", the real binary must find every point acknowledged before the cut complete and
//! bit-identical, nothing half visible (also after `repair`, which reads the packs alone),
//! `check --read-data` clean, and the next backup working.
//! Needs the `test-hooks` feature (the suite's `test-clock` build brings it).
#![cfg(feature = "test-hooks")]

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vaultfs::store::backend::fault::{Call, PowerCut};
use vaultfs::vault::Vault;
use vaultfs::vault::backup::{Progress, backup};

const ITEM: &str = "docs";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Three states of a source tree, each with new data the previous ones lack.
fn sources(root: &Path) -> Vec<PathBuf> {
    let v1 = root.join("v1");
    for i in 0..20 {
        write(
            &v1,
            &format!("notes/n{i}.txt"),
            format!("note {i}\n").as_bytes(),
        );
    }
    write(&v1, "big/a.bin", &noise(1_500_000, 1));
    std::os::unix::fs::symlink("notes/n1.txt", v1.join("link")).unwrap();
    let v2 = root.join("v2");
    sh(&format!("cp -a '{}' '{}'", v1.display(), v2.display()));
    write(&v2, "big/b.bin", &noise(1_500_000, 2));
    write(&v2, "notes/n3.txt", b"changed in v2\n");
    let v3 = root.join("v3");
    sh(&format!("cp -a '{}' '{}'", v2.display(), v3.display()));
    write(&v3, "big/c.bin", &noise(1_200_000, 3));
    std::fs::remove_file(v3.join("big/a.bin")).unwrap();
    vec![v1, v2, v3]
}

fn points(vault: &Path) -> BTreeSet<String> {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["points", p(vault), ITEM, "--json"])).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|pt| pt["point"].as_str().unwrap().to_string())
        .collect()
}

fn assert_restores(vault: &Path, point: &str, src: &Path, what: &str) {
    let dest = tempdir();
    let out = dest.path().join("r");
    let args = ["restore", p(vault), &format!("{ITEM}/{point}"), p(&out)];
    succeeded(&args, vaultfs(&args));
    eprintln!("{what}: {point} restores");
    assert_same_tree(src, &out);
}

fn assert_checks_clean(vault: &Path, what: &str) {
    let out = ok(&["check", p(vault), "--read-data"]);
    assert!(out.contains(": 0 errors"), "{what}: check: {out}");
}

/// Back up `srcs` one after another in this process with `cut` observing. Returns the points
/// acknowledged (name, source index) and the index of the backup the cut interrupted.
fn run(
    vault: &Path,
    cut: &Arc<PowerCut>,
    srcs: &[PathBuf],
) -> (Vec<(String, usize)>, Option<usize>) {
    let v = Vault::open_observed(vault, PASS.as_bytes(), cut.clone()).expect("open the vault");
    let mut acked = Vec::new();
    for (i, src) in srcs.iter().enumerate() {
        match backup(&v, ITEM, src, &Progress::default()) {
            Ok(s) => acked.push((s.point.name, i)),
            Err(e) => {
                assert!(cut.is_off(), "backup failed without a power cut: {e}");
                return (acked, Some(i));
            }
        }
    }
    (acked, None)
}

/// After a reboot: `known` points (name, source) are all there and whole; a point that is not
/// known can only be the one `interrupted` was writing, and is whole too.
fn verify(vault: &Path, known: &[(String, PathBuf)], interrupted: Option<&Path>, what: &str) {
    let listed = points(vault);
    for (name, src) in known {
        assert!(listed.contains(name), "{what}: lost {name}: {listed:?}");
        assert_restores(vault, name, src, what);
    }
    let extra: Vec<&String> = listed
        .iter()
        .filter(|n| !known.iter().any(|(k, _)| k == *n))
        .collect();
    assert!(extra.len() <= 1, "{what}: unexpected points {extra:?}");
    if let Some(name) = extra.first() {
        let src =
            interrupted.unwrap_or_else(|| panic!("{what}: point {name} appeared from nowhere"));
        assert_restores(vault, name, src, what);
    }
    assert_checks_clean(vault, what);
}

#[test]
fn power_cut_at_every_durability_point_of_backup() {
    let tmp = tempdir();
    let srcs = sources(&tmp.path().join("src"));
    // 1 MiB packs and 64 KiB chunks: each backup finishes several data packs, a pack of trees
    // and one of records, so cuts land between every step of the write order.
    let base = tmp.path().join("base");
    init_vault_with(
        &base,
        &[
            "--pack-size-mib",
            "1",
            "--chunk-avg",
            &(64 << 10).to_string(),
        ],
    );
    let out = ok(&["backup", p(&base), ITEM, p(&srcs[0])]);
    let (_, first) = created_point(&out).expect("created point line");

    // A run without a cut counts the durability points.
    let fresh = |n: &str| -> (PathBuf, PathBuf) {
        let dir = tmp.path().join(n);
        std::fs::create_dir(&dir).unwrap();
        sh(&format!(
            "cp -a '{}' '{}'",
            base.display(),
            dir.join("vault").display()
        ));
        (dir.join("vault"), dir)
    };
    let (vault, work) = fresh("count");
    let cut = Arc::new(PowerCut::new(&vault, None, &work).unwrap());
    let (acked, interrupted) = run(&vault, &cut, &srcs[1..]);
    assert_eq!((acked.len(), interrupted), (2, None));
    let calls = cut.calls();
    let count = |f: fn(&Call) -> bool| calls.iter().filter(|c| f(c)).count();
    eprintln!(
        "two backups: {} durability points ({} file fsyncs, {} directory fsyncs, {} index flushes)",
        calls.len(),
        count(|c| matches!(c, Call::Data(_))),
        count(|c| matches!(c, Call::Entries(_))),
        count(|c| matches!(c, Call::Index)),
    );
    assert!(
        count(|c| matches!(c, Call::Entries(_))) >= 6,
        "too few packs to test the write order: {calls:?}"
    );

    for n in 1..=calls.len() {
        let what = format!(
            "cut at durability point {n} of {} ({:?})",
            calls.len(),
            calls[n - 1]
        );
        let (vault, work) = fresh(&format!("cut-{n}"));
        let cut = Arc::new(PowerCut::new(&vault, Some(n), &work).unwrap());
        let (acked, interrupted) = run(&vault, &cut, &srcs[1..]);
        assert!(interrupted.is_some(), "{what}: no backup was interrupted");
        cut.reboot().unwrap();
        eprintln!("{what}: {} backups acknowledged", acked.len());

        let mut known = vec![(first.clone(), srcs[0].clone())];
        known.extend(
            acked
                .iter()
                .map(|(name, i)| (name.clone(), srcs[i + 1].clone())),
        );
        let interrupted_src = interrupted.map(|i| srcs[i + 1].as_path());
        verify(&vault, &known, interrupted_src, &what);
        // The packs alone (repair) hold nothing half written either.
        ok(&["repair", p(&vault)]);
        verify(
            &vault,
            &known,
            interrupted_src,
            &format!("{what}, after repair"),
        );
        // The next backup works and stores the newest tree.
        let out = ok(&["backup", p(&vault), ITEM, p(&srcs[2])]);
        let (_, name) = created_point(&out).expect("created point line");
        assert_restores(&vault, &name, &srcs[2], &format!("{what}, next backup"));
        std::fs::remove_dir_all(&work).unwrap();
    }
}
