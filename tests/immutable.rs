//! The immutable vault (DESIGN.md §13), with the test clock: `enabled` refuses deleting a point
//! its retention keeps (CLI and `mv` into `.deleted/`), lowering retention or soft delete and
//! purging early, while retention still retires points whose time is over; `locked` cannot
//! be undone by anyone, not even by editing the config. Every refusal is an audit record.

mod common;
use common::mnt::Mount;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

const DAY: i64 = 86_400 * 1_000_000_000;
/// 2026-11-02T10:00:00Z
const START: i64 = 1_793_613_600 * 1_000_000_000;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Clock(PathBuf);

impl Clock {
    fn set(&self, ns: i64) {
        let tmp = self.0.with_extension("tmp");
        fs::write(&tmp, format!("{ns}\n")).unwrap();
        fs::rename(&tmp, &self.0).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        vaultfs_at(&self.0, args)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// Refused as a denial: exit 1, one line naming immutability.
    #[track_caller]
    fn denied(&self, args: &[&str], why: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should be denied: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("denied") && err.contains(why),
            "{args:?}: {err}"
        );
    }

    fn backup(&self, vault: &Path, src: &Path, at: i64) -> String {
        self.set(at);
        fs::write(src.join("f"), format!("at {at}")).unwrap();
        let out = self.ok(&["backup", p(vault), "web", p(src)]);
        created_point(&out).unwrap().1
    }
}

fn live(c: &Clock, vault: &Path, deleted: bool) -> Vec<String> {
    let mut args = vec!["points", p(vault), "web", "--json"];
    if deleted {
        args.push("--deleted");
    }
    let js: serde_json::Value = serde_json::from_str(&c.ok(&args)).unwrap();
    js.as_array()
        .unwrap()
        .iter()
        .map(|p| p["point"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn enabled_refuses_deleting_inside_retention_and_retires_after_it() {
    let dir = tempdir();
    let vault = dir.path().join("v");
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let c = Clock(dir.path().join("clock"));
    c.set(START);
    init_vault(&vault);
    // Day 1: two points (the older one is past its retention at once: keep-daily keeps the
    // newest of the day); day 2: one.
    let d1a = c.backup(&vault, &src, START);
    c.ok(&["policy", p(&vault), "web", "--keep-daily", "2"]);
    let d1b = c.backup(&vault, &src, START + 3_600_000_000_000);
    let d2 = c.backup(&vault, &src, START + DAY);
    assert_eq!(
        live(&c, &vault, true),
        vec![d1a.clone()],
        "retired by retention"
    );
    c.ok(&["undelete", p(&vault), &format!("web/{d1a}")]);
    let out = c.ok(&["settings", p(&vault), "--immutability", "enabled"]);
    assert!(out.contains("immutability: enabled"), "{out}");

    // Inside retention: no delete, by the CLI or by mv.
    c.denied(
        &["delete", p(&vault), &format!("web/{d2}")],
        "inside its retention",
    );
    c.denied(
        &["delete", p(&vault), &format!("web/{d1b}")],
        "inside its retention",
    );
    // Past retention (not kept by the policy): deletable.
    c.ok(&["delete", p(&vault), &format!("web/{d1a}")]);
    // Lowering retention, soft delete, purging early: refused. Raising is fine.
    c.denied(
        &["policy", p(&vault), "web", "--keep-daily", "1"],
        "retention",
    );
    // Trading one rule for another still lowers one of them.
    let trade = [
        "policy",
        p(&vault),
        "web",
        "--keep-daily",
        "1",
        "--keep-weekly",
        "4",
    ];
    c.denied(&trade, "retention");
    c.ok(&["policy", p(&vault), "web", "--keep-daily", "3"]);
    c.denied(
        &["policy", p(&vault), "web", "--keep-daily", "2"],
        "retention",
    );
    c.denied(
        &["settings", p(&vault), "--soft-delete-days", "5"],
        "soft-delete days",
    );
    c.denied(
        &["settings", p(&vault), "--soft-delete", "off"],
        "soft-delete days",
    );
    c.ok(&["settings", p(&vault), "--soft-delete-days", "30"]);
    c.denied(&["gc", p(&vault), "--expire-now"], "purge time");

    // mv into .deleted/ through the mount: EPERM, and the point stays.
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = Mount::guard(&vault, &mnt).with_env("VAULTFS_TEST_CLOCK", p(&c.0));
    m.mount();
    let from = mnt.join("points/web").join(&d2);
    let err = fs::rename(&from, mnt.join(".deleted/web").join(&d2)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    assert!(from.is_dir());
    drop(m);

    // Time passes: days 3, 4 and 5 get points; keep-daily 3 retires d1b and d2 normally.
    for day in 2..5 {
        c.backup(&vault, &src, START + day * DAY);
    }
    let retired = live(&c, &vault, true);
    assert!(
        retired.contains(&d2) && retired.contains(&d1b),
        "{retired:?}"
    );

    // Every refusal is in the audit log as a denial, by this user.
    let js: serde_json::Value =
        serde_json::from_str(&c.ok(&["audit", p(&vault), "--json"])).unwrap();
    let denied: Vec<&serde_json::Value> = js
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .collect();
    let ops: Vec<&str> = denied.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "delete",
            "delete",
            "policy",
            "policy",
            "policy",
            "settings",
            "settings",
            "gc",
            "delete (mv)"
        ],
        "{denied:#?}"
    );
    assert!(denied.iter().all(|r| r["user"] == "root"));
}

#[test]
fn locked_can_never_be_disabled() {
    let dir = tempdir();
    let vault = dir.path().join("v");
    let c = Clock(dir.path().join("clock"));
    c.set(START);
    init_vault(&vault);
    c.ok(&["settings", p(&vault), "--immutability", "locked"]);
    c.denied(
        &["settings", p(&vault), "--immutability", "disabled"],
        "locked",
    );
    c.denied(
        &["settings", p(&vault), "--immutability", "enabled"],
        "locked",
    );
    let cfg = fs::read_to_string(vault.join("config")).unwrap();
    assert!(cfg.contains("\"immutability\": \"locked\""), "{cfg}");
    // Editing the config (both copies, checksums made right) to drop the lock: the vault
    // no longer opens with any key, so nothing can be deleted through it.
    let edited = cfg.replace("\"immutability\": \"locked\",\n  ", "");
    assert_ne!(edited, cfg);
    let body = &edited[..edited.find(",\n  \"checksum\"").unwrap()];
    let sum = blake3::hash(body.as_bytes()).to_hex().to_string();
    let old_sum = &cfg[cfg.find("\"checksum\": \"").unwrap() + 13..][..64];
    let edited = edited.replace(old_sum, &sum);
    fs::write(vault.join("config"), &edited).unwrap();
    fs::write(vault.join("config.copy"), &edited).unwrap();
    let out = c.run(&["points", p(&vault)]);
    assert!(!out.status.success(), "an unlocked config opened");
    let out = c.run(&["settings", p(&vault), "--immutability", "disabled"]);
    assert!(!out.status.success());
}
