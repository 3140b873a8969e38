//! Multi-user authorization (DESIGN.md §13): with a guard registered, each protected operation
//! fails without an approval and runs with a valid one; an expired, reused, tampered,
//! other-vault or other-operation approval is refused with its reason; each refusal is an
//! audit record. Bad key and approval files are one clear line.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const HOUR: i64 = 3_600 * 1_000_000_000;
/// 2026-11-02T10:00:00Z
const START: i64 = 1_793_613_600 * 1_000_000_000;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct T {
    dir: tempfile::TempDir,
    clock: PathBuf,
    vault: PathBuf,
}

impl T {
    fn new() -> T {
        let dir = tempdir();
        let clock = dir.path().join("clock");
        let vault = dir.path().join("v");
        let t = T { dir, clock, vault };
        t.set(START);
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&self, ns: i64) {
        fs::write(&self.clock, format!("{ns}\n")).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        vaultfs_at(&self.clock, args)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// Fails with exit 1 and one `vaultfs: ` line containing `why`.
    #[track_caller]
    fn refused(&self, args: &[&str], why: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("vaultfs: ") && err.contains(why),
            "{args:?}: {err}"
        );
    }

    /// An approval file of `op` on vault `id`, signed with `key`, valid for `valid`.
    fn approve(&self, key: &Path, id: &str, op: &str, valid: &str, name: &str) -> PathBuf {
        let out = self.ok(&[
            "guard",
            "approve",
            "--key",
            p(key),
            "--vault-id",
            id,
            "--op",
            op,
            "--valid",
            valid,
        ]);
        let f = self.path(name);
        fs::write(&f, out).unwrap();
        f
    }
}

fn vault_id(vault: &Path) -> String {
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(vault.join("config")).unwrap()).unwrap();
    cfg["vault_id"].as_str().unwrap().to_string()
}

fn pub_hex(t: &T, name: &str) -> String {
    fs::read_to_string(t.path(&format!("{name}.pub")))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn protected_operations_need_one_valid_approval_each() {
    let t = T::new();
    let v = p(&t.vault).to_string();
    init_vault(&t.vault);
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    t.ok(&["backup", &v, "web", p(&src)]);
    t.ok(&["policy", &v, "web", "--keep-daily", "5"]);
    let kf = t.path("second.key");
    t.ok(&["key", "add", &v, "--new-key-file", p(&kf)]);
    t.ok(&["guard", "keygen", p(&t.path("g"))]);
    let gkey = t.path("g.key");
    let mode = fs::metadata(&gkey).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    t.ok(&["guard", "init", &v, "--public-key", p(&t.path("g.pub"))]);
    let id = vault_id(&t.vault);

    // Each protected operation: refused without an approval, runs with one.
    t.ok(&["guard", "keygen", p(&t.path("g2"))]);
    let g2 = pub_hex(&t, "g2");
    let g2pub = t.path("g2.pub");
    let g2key = t.path("g2.key");
    let cases: Vec<(Vec<&str>, String, &Path)> = vec![
        (
            vec!["settings", &v, "--soft-delete-days", "7"],
            "settings --soft-delete-days 7".into(),
            &gkey,
        ),
        (
            vec!["policy", &v, "web", "--keep-daily", "2"],
            "policy web --keep-last 0 --keep-daily 2 --keep-weekly 0 --keep-monthly 0 \
             --keep-yearly 0"
                .into(),
            &gkey,
        ),
        (vec!["key", "remove", &v, "2"], "key remove 2".into(), &gkey),
        (
            vec!["gc", &v, "--expire-now"],
            "gc --expire-now".into(),
            &gkey,
        ),
        (
            vec!["guard", "init", &v, "--public-key", p(&g2pub)],
            format!("guard init --public-key {g2}"),
            &gkey,
        ),
        (vec!["guard", "remove", &v], "guard remove".into(), &g2key),
    ];
    for (n, (args, op, key)) in cases.iter().enumerate() {
        t.refused(args, "protected by the guard");
        t.refused(args, op);
        let f = t.approve(key, &id, op, "1h", &format!("a{n}"));
        let mut with = args.clone();
        with.extend(["--approval", p(&f)]);
        t.ok(&with);
    }
    // The guard is gone now: gc --expire-now runs without approval; and immutability's
    // disabling is protected once a guard is back.
    t.ok(&["gc", &v, "--expire-now"]);
    t.ok(&["guard", "init", &v, "--public-key", p(&t.path("g.pub"))]);
    t.ok(&["settings", &v, "--immutability", "enabled"]);
    let off = ["settings", &v, "--immutability", "disabled"];
    t.refused(&off, "protected by the guard");
    let f = t.approve(&gkey, &id, "settings --immutability disabled", "1h", "imm");
    t.ok(&[&off[..], &["--approval", p(&f)]].concat());
    let out = t.ok(&["settings", &v]);
    assert!(!out.contains("immutability: enabled"), "{out}");

    // Every refusal is in the audit log as a denial.
    let js: serde_json::Value = serde_json::from_str(&t.ok(&["audit", &v, "--json"])).unwrap();
    let denied = js
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .count();
    assert_eq!(denied, 2 * cases.len() + 1, "{js:#}");
}

#[test]
fn bad_approvals_are_refused_with_their_reason() {
    let t = T::new();
    let v = p(&t.vault).to_string();
    init_vault(&t.vault);
    let other = t.path("other");
    init_vault(&other);
    t.ok(&["guard", "keygen", p(&t.path("g"))]);
    t.ok(&["guard", "keygen", p(&t.path("stranger"))]);
    let gkey = t.path("g.key");
    t.ok(&["guard", "init", &v, "--public-key", p(&t.path("g.pub"))]);
    let id = vault_id(&t.vault);
    let gc = |f: &Path| {
        vec![
            "gc".to_string(),
            v.clone(),
            "--expire-now".into(),
            "--approval".into(),
            p(f).into(),
        ]
    };
    let run_gc = |f: &Path, why: &str| {
        let args = gc(f);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        t.refused(&args, why);
    };
    // Expired: valid for 1h, the vault's clock is 2h later.
    let f = t.approve(&gkey, &id, "gc --expire-now", "1h", "expired");
    t.set(START + 2 * HOUR);
    run_gc(&f, "expired");
    // Other operation, other vault, another key.
    let f = t.approve(&gkey, &id, "key remove 1", "1h", "other-op");
    run_gc(&f, "another operation");
    let f = t.approve(
        &gkey,
        &vault_id(&other),
        "gc --expire-now",
        "1h",
        "other-vault",
    );
    run_gc(&f, "another vault");
    let f = t.approve(
        &t.path("stranger.key"),
        &id,
        "gc --expire-now",
        "1h",
        "stranger",
    );
    run_gc(&f, "signature does not verify");
    // Tampered: a later expiry, or another operation, written into a valid approval.
    let good = t.approve(&gkey, &id, "gc --expire-now", "1h", "good");
    let text = fs::read_to_string(&good).unwrap();
    let mut js: serde_json::Value = serde_json::from_str(&text).unwrap();
    js["expires_ns"] = (js["expires_ns"].as_i64().unwrap() + 1000 * HOUR).into();
    let f = t.path("tampered");
    fs::write(&f, js.to_string()).unwrap();
    run_gc(&f, "signature does not verify");
    let mut js: serde_json::Value = serde_json::from_str(&text).unwrap();
    let other_op = t.approve(&gkey, &id, "key remove 1", "1h", "for-op");
    let sig: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(other_op).unwrap()).unwrap();
    js["signature"] = sig["signature"].clone();
    fs::write(&f, js.to_string()).unwrap();
    run_gc(&f, "signature does not verify");
    // Valid once, then used up.
    let args = gc(&good);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    t.ok(&args);
    run_gc(&good, "already used");
    // Bad files: one clear line, nothing changed.
    let junk = t.path("junk");
    fs::write(&junk, "not json").unwrap();
    run_gc(&junk, "not a guard approval");
    t.refused(
        &["guard", "init", &v, "--public-key", p(&junk)],
        "not a guard public key",
    );
    t.refused(
        &[
            "guard",
            "approve",
            "--key",
            p(&junk),
            "--vault-id",
            &id,
            "--op",
            "gc --expire-now",
        ],
        "not a guard private key",
    );
    t.refused(
        &[
            "guard",
            "approve",
            "--key",
            p(&gkey),
            "--vault-id",
            "xyz",
            "--op",
            "gc",
        ],
        "32 hex digits",
    );
    t.refused(
        &[
            "guard",
            "approve",
            "--key",
            p(&gkey),
            "--vault-id",
            &id,
            "--op",
            "gc",
            "--valid",
            "99d",
        ],
        "at most 30 days",
    );
    t.refused(&["guard", "keygen", p(&t.path("g"))], "cannot create");
}
