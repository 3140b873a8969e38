//! Power cuts at every durability point of `backup`, `snapshot` through the mount, `gc`, `repair`
//! and a `settings` change (DESIGN.md §4.2): the vault runs in this process on its real local
//! backend and index, observed by `store::backend::fault::PowerCut`, which refuses the n-th durability call (fsync
//! of a file or directory, index flush) and then throws away everything that call and the ones
//! after it would have made durable. After the "reboot", the real binary must find every point
//! acknowledged before the cut complete and bit-identical, nothing half visible (also after
//! `repair`), `check --read-data` clean, and the next command working.
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
use vaultfs::vault::gc::{Purge, gc};
use vaultfs::vault::repair::repair_observed;

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
    init_small_packs(&base);
    let out = ok(&["backup", p(&base), ITEM, p(&srcs[0])]);
    let (_, first) = created_point(&out).expect("created point line");

    // A run without a cut counts the durability points.
    let fresh = |n: &str| fresh(tmp.path(), &base, n);
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
        if interrupted.is_none() && cut.calls().len() < n {
            // The index engine's flushes vary by one or two between runs: this run had no
            // n-th durability point to cut at (every point it had was cut in the rounds before).
            eprintln!("{what}: this run had only {} points", cut.calls().len());
            continue;
        }
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

/// A copy of the vault `base` in `tmp/name/vault`, and `tmp/name` as the power cut's work dir.
fn fresh(tmp: &Path, base: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = tmp.join(name);
    std::fs::create_dir(&dir).unwrap();
    sh(&format!(
        "cp -a '{}' '{}'",
        base.display(),
        dir.join("vault").display()
    ));
    (dir.join("vault"), dir)
}

/// One operation on an open vault; `Err` when it failed.
type Op<'a> = &'a dyn Fn(&Path, Arc<PowerCut>) -> Result<(), String>;

/// Run `op` on a copy of `base` without a cut (it must work; `verify` is called with `true`),
/// then on a fresh copy with a power cut at each of its durability points: the run must fail,
/// and after the reboot `verify(vault, false, what)` holds. Returns the durability calls.
fn at_every_cut(
    tmp: &Path,
    base: &Path,
    name: &str,
    op: Op,
    verify: &dyn Fn(&Path, bool, &str),
) -> Vec<Call> {
    let (vault, work) = fresh(tmp, base, &format!("{name}-count"));
    let cut = Arc::new(PowerCut::new(&vault, None, &work).unwrap());
    op(&vault, cut.clone()).unwrap_or_else(|e| panic!("{name} without a cut: {e}"));
    let calls = cut.calls();
    let count = |f: fn(&Call) -> bool| calls.iter().filter(|c| f(c)).count();
    eprintln!(
        "{name}: {} durability points ({} file fsyncs, {} directory fsyncs, {} index flushes)",
        calls.len(),
        count(|c| matches!(c, Call::Data(_))),
        count(|c| matches!(c, Call::Entries(_))),
        count(|c| matches!(c, Call::Index)),
    );
    verify(&vault, true, &format!("{name} without a cut"));
    for n in 1..=calls.len() {
        let what = format!(
            "{name}: cut at durability point {n} of {} ({:?})",
            calls.len(),
            calls[n - 1]
        );
        let (vault, work) = fresh(tmp, base, &format!("{name}-cut-{n}"));
        let cut = Arc::new(PowerCut::new(&vault, Some(n), &work).unwrap());
        let result = op(&vault, cut.clone());
        assert!(
            result.is_err(),
            "{what}: the operation did not notice the cut"
        );
        assert!(
            cut.is_off(),
            "{what}: failed without a power cut: {result:?}"
        );
        cut.reboot().unwrap();
        verify(&vault, false, &what);
        std::fs::remove_dir_all(&work).unwrap();
    }
    calls
}

/// Points of the item, deleted ones or live ones.
fn listed(vault: &Path, deleted: bool) -> BTreeSet<String> {
    let mut args = vec!["points", p(vault), ITEM, "--json"];
    if deleted {
        args.push("--deleted");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|pt| pt["point"].as_str().unwrap().to_string())
        .collect()
}

/// A vault with a point of each of `srcs`, made by the binary; returns the point names.
fn vault_of(vault: &Path, srcs: &[PathBuf]) -> Vec<String> {
    init_small_packs(vault);
    srcs.iter()
        .map(|src| {
            let out = ok(&["backup", p(vault), ITEM, p(src)]);
            created_point(&out).expect("created point line").1
        })
        .collect()
}

#[test]
fn power_cut_at_every_durability_point_of_gc() {
    let tmp = tempdir();
    let srcs = sources(&tmp.path().join("src"));
    let base = tmp.path().join("base");
    let names = vault_of(&base, &srcs);
    // The first two points go: big/a.bin (only in them) is garbage, packs are deleted and
    // rewritten, records' packs too.
    for n in &names[..2] {
        ok(&["delete", p(&base), &format!("{ITEM}/{n}")]);
    }
    let op = |vault: &Path, cut: Arc<PowerCut>| -> Result<(), String> {
        let v = Vault::open_observed(vault, PASS.as_bytes(), cut).map_err(|e| e.to_string())?;
        let r = gc(&v, false, Purge::AllDeleted).map_err(|e| e.to_string())?;
        assert!(
            r.packs_deleted + r.packs_rewritten > 0,
            "gc had work: {r:?}"
        );
        Ok(())
    };
    let verify = |vault: &Path, done: bool, what: &str| {
        assert_eq!(
            listed(vault, false),
            BTreeSet::from([names[2].clone()]),
            "{what}"
        );
        assert_restores(vault, &names[2], &srcs[2], what);
        let deleted = listed(vault, true);
        if done {
            assert!(deleted.is_empty(), "{what}: {deleted:?}");
        }
        for (n, src) in names[..2].iter().zip(&srcs) {
            if deleted.contains(n) {
                assert_restores(vault, n, src, &format!("{what}, not purged yet"));
            }
        }
        assert_checks_clean(vault, what);
        ok(&["gc", p(vault), "--expire-now"]);
        assert!(listed(vault, true).is_empty(), "{what}: gc again");
        assert_restores(vault, &names[2], &srcs[2], &format!("{what}, gc again"));
        assert_checks_clean(vault, &format!("{what}, gc again"));
    };
    let calls = at_every_cut(tmp.path(), &base, "gc", &op, &verify);
    assert!(calls.len() >= 4, "gc wrote too little to test: {calls:?}");
}

#[test]
fn power_cut_at_every_durability_point_of_repair() {
    let tmp = tempdir();
    let srcs = sources(&tmp.path().join("src"));
    let base = tmp.path().join("base");
    let names = vault_of(&base, &srcs);
    // A data pack whose trailer is damaged: repair copies its blobs out, builds and swaps in a
    // new index, and sets the pack aside.
    let pack = walk(&base.join("packs"))
        .into_iter()
        .filter(|f| f.is_file())
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() - 2;
    bytes[at] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let op = |vault: &Path, cut: Arc<PowerCut>| -> Result<(), String> {
        let (v, report) = repair_observed(vault, &passphrase(), cut).map_err(|e| e.to_string())?;
        assert!(v.is_some() && report.damaged.is_empty(), "{report:?}");
        Ok(())
    };
    let verify = |vault: &Path, done: bool, what: &str| {
        // Before the swap the old index reads the damaged pack's blobs where they are; after
        // it, the new one reads their copies.
        let all: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(points(vault), all, "{what}");
        for (n, src) in names.iter().zip(&srcs) {
            assert_restores(vault, n, src, what);
        }
        if done {
            assert_checks_clean(vault, what);
        }
        ok(&["repair", p(vault)]);
        assert_eq!(points(vault), all, "{what}, repair again");
        assert_checks_clean(vault, &format!("{what}, repair again"));
        for (n, src) in names.iter().zip(&srcs) {
            assert_restores(vault, n, src, &format!("{what}, repair again"));
        }
    };
    let calls = at_every_cut(tmp.path(), &base, "repair", &op, &verify);
    assert!(
        calls.len() >= 6,
        "repair wrote too little to test: {calls:?}"
    );
}

#[test]
fn power_cut_at_every_durability_point_of_a_settings_change() {
    let tmp = tempdir();
    let srcs = sources(&tmp.path().join("src"));
    let base = tmp.path().join("base");
    let names = vault_of(&base, &srcs[..1]);
    let op = |vault: &Path, cut: Arc<PowerCut>| -> Result<(), String> {
        let v = Vault::open_observed(vault, PASS.as_bytes(), cut).map_err(|e| e.to_string())?;
        v.set_soft_delete(Some(30), false)
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let verify = |vault: &Path, done: bool, what: &str| {
        let shown = ok(&["settings", p(vault)]);
        if done {
            assert!(shown.contains("30 days"), "{what}: {shown}");
        } else {
            assert!(
                shown.contains("30 days") || shown.contains("14 days"),
                "{what}: the old or the new setting: {shown}"
            );
        }
        assert_restores(vault, &names[0], &srcs[0], what);
        ok(&["settings", p(vault), "--soft-delete-days", "20"]);
        assert!(ok(&["settings", p(vault)]).contains("20 days"), "{what}");
        assert_checks_clean(vault, what);
    };
    let calls = at_every_cut(tmp.path(), &base, "settings", &op, &verify);
    // The config and its copy (data, then directory, each), then the config's copy sealed
    // into a pack (format 3: what `repair` restores it from) and the index.
    assert_eq!(
        calls.len(),
        9,
        "config, config.copy, the sealed copy's pack, the index: {calls:?}"
    );
}

fn passphrase() -> vaultfs::keys::Credential {
    vaultfs::keys::Credential::Passphrase(zeroize::Zeroizing::new(PASS.as_bytes().to_vec()))
}

/// `snapshot` through the mount: the daemon's own view of the vault (`view::View`, which the
/// FUSE door calls; here without the kernel, so the power cut can observe it) takes files
/// written into `incoming/ITEM`, freezes them into a point, and is then shut down as at unmount.
#[test]
fn power_cut_at_every_durability_point_of_snapshot_through_the_mount() {
    use vaultfs::view::ino::INCOMING;
    use vaultfs::view::{Caller, Lookup, SetAttr, View};

    let tmp = tempdir();
    let srcs = sources(&tmp.path().join("src"));
    let base = tmp.path().join("base");
    let names = vault_of(&base, &srcs[..1]);
    // What is written into incoming: small files, and big ones that fill several packs.
    let written = tmp.path().join("written");
    write(&written, "a.txt", b"written through the mount\n");
    write(&written, "big.bin", &noise(1_500_000, 10));
    write(&written, "sub/c.bin", &noise(900_000, 11));
    write(&written, "sub/d.txt", &b"d\n".repeat(5000));
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let op = |vault: &Path, cut: Arc<PowerCut>| -> Result<(), String> {
        let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
        let v =
            Arc::new(Vault::open_observed(vault, PASS.as_bytes(), cut.clone()).map_err(|x| e(&x))?);
        let view = View::new(v.clone(), 8 << 20, &staging).map_err(|x| e(&x))?;
        let who = Caller { uid: 0, gid: 0 };
        let result = (|| -> Result<(), String> {
            let root = match view.lookup(INCOMING, ITEM.as_bytes()).map_err(|x| e(&x))? {
                Lookup::Found(a) => a,
                Lookup::Absent(_) => view
                    .mkdir(INCOMING, ITEM.as_bytes(), 0o755, who)
                    .map_err(|x| e(&x))?,
            };
            let sub = view
                .mkdir(root.ino, b"sub", 0o755, who)
                .map_err(|x| e(&x))?;
            for (dir, name) in [
                (root.ino, "a.txt"),
                (root.ino, "big.bin"),
                (sub.ino, "sub/c.bin"),
                (sub.ino, "sub/d.txt"),
            ] {
                let leaf = Path::new(name).file_name().unwrap().as_encoded_bytes();
                let (attr, opened) = view.create(dir, leaf, 0o644, who).map_err(|x| e(&x))?;
                let data = std::fs::read(written.join(name)).unwrap();
                let meta = std::fs::metadata(written.join(name)).unwrap();
                for (i, part) in data.chunks(128 << 10).enumerate() {
                    view.write(attr.ino, (i * (128 << 10)) as u64, part)
                        .map_err(|x| e(&x))?;
                }
                view.release(opened.fh);
                // As rsync -t does.
                use std::os::unix::fs::MetadataExt;
                let mtime_ns = Some(meta.mtime() * 1_000_000_000 + meta.mtime_nsec());
                view.setattr(
                    attr.ino,
                    SetAttr {
                        mtime_ns,
                        ..SetAttr::default()
                    },
                )
                .map_err(|x| e(&x))?;
            }
            v.snapshot(ITEM).map_err(|x| e(&x))?;
            eprintln!(
                "snapshot acknowledged after {} durability points",
                cut.calls().len()
            );
            view.shutdown().map_err(|x| e(&x))
        })();
        // The vault is closed before the reboot: wait for the commit threads to let go of it.
        drop(view);
        assert!(
            common::mnt::wait_until(std::time::Duration::from_secs(10), || {
                Arc::strong_count(&v) == 1
            }),
            "the incoming threads keep the vault open"
        );
        result
    };
    let verify = |vault: &Path, done: bool, what: &str| {
        let listed = points(vault);
        assert!(listed.contains(&names[0]), "{what}: lost {}", names[0]);
        assert_restores(vault, &names[0], &srcs[0], what);
        let new: Vec<&String> = listed.iter().filter(|n| **n != names[0]).collect();
        assert!(new.len() <= 1, "{what}: {listed:?}");
        assert!(!done || new.len() == 1, "{what}: no point after snapshot");
        if let Some(n) = new.first() {
            assert_restores(vault, n, &written, what);
        }
        assert_checks_clean(vault, what);
        let out = ok(&["backup", p(vault), ITEM, p(&srcs[1])]);
        let (_, name) = created_point(&out).expect("created point line");
        assert_restores(vault, &name, &srcs[1], &format!("{what}, next backup"));
    };
    let calls = at_every_cut(tmp.path(), &base, "snapshot", &op, &verify);
    assert!(calls.len() >= 6, "snapshot wrote too little: {calls:?}");
}
