//! The audit log: every state change and denial is a sealed record in a hash chain; removing,
//! editing, swapping or cutting off a record in the vault's files is found by `audit --verify`
//! and by `check` (DESIGN §13).

mod common;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The records of `audit --json`.
fn records(vault: &Path) -> Vec<serde_json::Value> {
    let out = ok(&["audit", p(vault), "--json"]);
    serde_json::from_str(&out).expect("audit --json")
}

fn record_file(vault: &Path, seq: u64) -> PathBuf {
    vault.join("audit").join(format!("{seq:016x}"))
}

/// A vault with a few audited operations: init, backup, delete, undelete, settings (five
/// records), then a mistaken undelete, which changes nothing and leaves no record; returns
/// its point.
fn busy_vault(vault: &Path, src: &Path) -> String {
    init_vault(vault);
    fs::create_dir_all(src).unwrap();
    fs::write(src.join("a"), b"hello").unwrap();
    let out = ok(&["backup", p(vault), "web", p(src)]);
    let (_, point) = created_point(&out).unwrap();
    let spec = format!("web/{point}");
    ok(&["delete", p(vault), &spec]);
    ok(&["undelete", p(vault), &spec]);
    ok(&["settings", p(vault), "--soft-delete-days", "20"]);
    fails(&["undelete", p(vault), &spec]);
    point
}

#[test]
fn every_state_change_is_recorded_with_who_and_outcome() {
    let dir = tempdir();
    let vault = dir.path().join("v");
    let point = busy_vault(&vault, &dir.path().join("src"));
    // Reading commands leave no record.
    ok(&["points", p(&vault)]);
    ok(&["items", p(&vault)]);
    let recs = records(&vault);
    let ops: Vec<&str> = recs.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        ["init", "backup", "delete", "undelete", "settings"],
        "{recs:#?}"
    );
    let me = unsafe { libc::getuid() };
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
        assert_eq!(r["uid"], me);
        assert_eq!(r["user"], "root");
    }
    assert_eq!(recs[2]["item"], "web");
    assert!(recs[2]["params"].as_str().unwrap().contains(&point));
    assert!(recs.iter().all(|r| r["outcome"] == "ok"), "{recs:#?}");
    // Filters.
    let only_web = ok(&["audit", p(&vault), "--item", "web"]);
    assert_eq!(only_web.lines().count(), 1 + 3, "{only_web}");
    let future = ok(&["audit", p(&vault), "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future.lines().count(), 1, "{future}");
    let recent = ok(&["audit", p(&vault), "--since", "1h"]);
    assert_eq!(recent.lines().count(), 1 + 5, "{recent}");
    let out = ok(&["audit", p(&vault), "--verify"]);
    assert!(out.contains("5 records, the chain is intact"), "{out}");
    ok(&["check", p(&vault)]);
}

/// What `audit --verify` and `check` say after `tamper` changed the vault's audit files.
fn detected(tamper: impl FnOnce(&Path), expect: &str) {
    let dir = tempdir();
    let vault = dir.path().join("v");
    busy_vault(&vault, &dir.path().join("src"));
    tamper(&vault);
    let err = fails(&["audit", p(&vault), "--verify"]);
    assert!(err.contains(expect), "verify said: {err}");
    assert!(err.contains("tampered"), "verify said: {err}");
    let err = fails(&["check", p(&vault)]);
    assert!(err.contains(expect), "check said: {err}");
}

#[test]
fn a_removed_record_is_detected() {
    detected(
        |v| fs::remove_file(record_file(v, 3)).unwrap(),
        "audit record 3 is missing",
    );
}

#[test]
fn a_cut_off_end_is_detected() {
    detected(
        |v| {
            fs::remove_file(record_file(v, 5)).unwrap();
            fs::remove_file(record_file(v, 4)).unwrap();
        },
        "audit record 4 is missing",
    );
}

#[test]
fn an_edited_record_is_detected() {
    detected(
        |v| {
            let f = record_file(v, 4);
            let mut b = fs::read(&f).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 1;
            fs::write(&f, b).unwrap();
        },
        "audit record 4 does not authenticate",
    );
}

#[test]
fn swapped_records_are_detected() {
    detected(
        |v| {
            let (a, b) = (record_file(v, 2), record_file(v, 3));
            let tmp = v.join("audit").join("tmp");
            fs::rename(&a, &tmp).unwrap();
            fs::rename(&b, &a).unwrap();
            fs::rename(&tmp, &b).unwrap();
        },
        "audit record 2 does not authenticate",
    );
}

#[test]
fn a_record_from_another_vault_is_detected() {
    let dir = tempdir();
    let other = dir.path().join("other");
    busy_vault(&other, &dir.path().join("src2"));
    detected(
        |v| {
            fs::copy(record_file(&other, 3), record_file(v, 3))
                .map(drop)
                .unwrap()
        },
        "audit record 3 does not authenticate",
    );
}

#[test]
fn a_last_record_replaced_by_an_older_one_is_detected() {
    // Copying record 4 over 5 cannot authenticate (its place is sealed in); the head in the
    // index names the true last one.
    detected(
        |v| {
            fs::copy(record_file(v, 4), record_file(v, 5))
                .map(drop)
                .unwrap()
        },
        "audit record 5 does not authenticate",
    );
}

#[test]
fn bad_since_is_one_clear_line() {
    let dir = tempdir();
    let vault = dir.path().join("v");
    init_vault(&vault);
    let err = fails(&["audit", p(&vault), "--since", "yesterday"]);
    assert!(err.contains("--since"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
