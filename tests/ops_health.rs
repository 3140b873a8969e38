//! Operations (issue 15): Prometheus metrics and the advisor. Run with
//! `cargo test --features test-clock --test ops_health`.
#![cfg(feature = "test-clock")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::mnt::*;
use common::ops::*;
use common::*;
use serde_json::Value;

/// Parse OpenMetrics text with the Python Prometheus client's strict parser (installed when
/// missing, as scripts/deps.sh does); returns `name{labels}` → value.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .unwrap();
    if !have.success() {
        sh(
            "python3 -m pip install -q --disable-pip-version-check --break-system-packages prometheus-client==0.21.1 2>/dev/null || python3 -m pip install -q --disable-pip-version-check prometheus-client==0.21.1",
        );
    }
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `curl http://ADDR/metrics`.
fn curl(addr: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sSf",
            "--max-time",
            "20",
            &format!("http://{addr}/metrics"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The daemon's `/metrics` (opt-in, loopback) parses with a real exposition-format parser,
/// and its values follow a backup; `vaultfs metrics` prints the same families.
#[test]
fn the_daemons_metrics_parse_and_follow_a_backup() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0);
    let v = s(&f.vault);
    make_small_tree(&f.src, 1);
    clock.ok(&["backup", v, "web", s(&f.src)]);
    let offline = parse_metrics(&clock.ok(&["metrics", v]));
    assert_eq!(
        offline[r#"vaultfs_item_points{item="web"}"#], 1.0,
        "{offline:?}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut m = Mount::guard(&f.vault, &f.mnt)
        .with_env("VAULTFS_TEST_CLOCK", s(&clock.file))
        .with_arg("--metrics-listen")
        .with_arg(&port.to_string());
    m.mount();
    let addr = format!("127.0.0.1:{port}");
    let before = parse_metrics(&curl(&addr));
    for name in [
        r#"vaultfs_item_last_point_age_seconds{item="web"}"#,
        "vaultfs_stored_bytes{}",
        "vaultfs_alerts_active{}",
        r#"vaultfs_job_duration_seconds{kind="backup"}"#,
    ] {
        assert!(before.contains_key(name), "no {name} in {before:?}");
    }
    assert_eq!(before[r#"vaultfs_item_points{item="web"}"#], 1.0);
    assert_eq!(
        before[r#"vaultfs_jobs{kind="backup",status="completed"}"#],
        1.0
    );

    clock.set(T0 + 600 * SEC);
    make_small_tree(&f.root.join("src2"), 2);
    clock.ok(&["backup", v, "web", s(&f.root.join("src2"))]);
    let after = parse_metrics(&curl(&addr));
    assert_eq!(
        after[r#"vaultfs_item_points{item="web"}"#], 2.0,
        "{after:?}"
    );
    assert_eq!(
        after[r#"vaultfs_jobs{kind="backup",status="completed"}"#],
        2.0
    );
    assert_eq!(
        after[r#"vaultfs_item_last_point_age_seconds{item="web"}"#],
        0.0
    );
    assert!(after["vaultfs_stored_bytes{}"] > before["vaultfs_stored_bytes{}"]);
    let job = clock.last_job(&f.vault);
    assert_eq!(
        after[r#"vaultfs_job_last_bytes_added{kind="backup"}"#],
        fig(&job, "bytes_added") as f64
    );
    // Dedup and compression apart (hard links count twice as files, once as chunks).
    assert!(after["vaultfs_dedup_ratio{}"] >= 1.0, "{after:?}");
    assert!(after["vaultfs_compression_ratio{}"] > 0.5, "{after:?}");
    // FUSE requests by operation, a counter that grows as files are read through the mount.
    let lookups = |m: &std::collections::BTreeMap<String, f64>, op: &str| {
        m.get(&format!(r#"vaultfs_fuse_requests_total{{op="{op}"}}"#))
            .copied()
            .unwrap_or(0.0)
    };
    let point = f.mnt.join("points/web/latest");
    assert_eq!(
        fs::read(point.join("data.bin")).unwrap(),
        fs::read(f.root.join("src2/data.bin")).unwrap()
    );
    fs::read(point.join("dir/sub/nested.txt")).unwrap();
    let read = parse_metrics(&curl(&addr));
    for op in ["lookup", "read"] {
        assert!(
            lookups(&read, op) > lookups(&after, op),
            "{op}: {} then {} after reading through the mount: {read:?}",
            lookups(&after, op),
            lookups(&read, op)
        );
    }
    // `--metrics-listen PORT` listens on loopback only.
    let listening = sh(&format!("ss -ltnH 'sport = :{port}'"));
    assert!(listening.contains(&addr), "{listening}");
    drop(m);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still served after unmount"
    );
}

/// A tmpfs of `size` mounted on `dir` for one test, unmounted on drop: a filesystem with a
/// known amount of free space.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&dir).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size={size} tmpfs '{}'",
            s(&dir)
        ));
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The advisor's conditions on `vault`, by name (with the item when there is one).
fn advice(clock: &Clock, vault: &Path) -> Vec<(String, Value)> {
    let all = clock.json(&["advisor", s(vault), "--json"]);
    all.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let name = match a["item"].as_str() {
                Some(i) => format!("{}:{i}", a["condition"].as_str().unwrap()),
                None => a["condition"].as_str().unwrap().to_string(),
            };
            (name, a.clone())
        })
        .collect()
}

fn names(a: &[(String, Value)]) -> Vec<&str> {
    let mut n: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    n.sort();
    n
}

/// Run an advised fix (`vaultfs ...` as a shell command line) with the test's binary.
fn run_fix(clock: &Clock, fix: &str) {
    let line = fix.replacen("vaultfs", bin(), 1);
    let out = Command::new("sh")
        .args(["-c", &line])
        .env("VAULTFS_PASSPHRASE", PASS)
        .env("VAULTFS_TEST_CLOCK", &clock.file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{fix}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The advisor lists each condition on a vault that has it, with a severity and a command
/// that fixes it, and nothing on a vault that has none.
#[test]
fn the_advisor_lists_each_condition_where_it_holds_and_only_there() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0);
    make_small_tree(&f.src, 1);

    // A risky vault on a 64 MiB filesystem.
    let small = Tmpfs::new(f.root.join("small"), "64m");
    let risky = small.0.join("vault");
    let r = s(&risky);
    init_vault(&risky);
    clock.ok(&["backup", r, "nopolicy", s(&f.src)]);
    clock.ok(&["backup", r, "late", s(&f.src)]);
    clock.ok(&["policy", r, "late", "--schedule", "hourly"]);
    clock.ok(&["settings", r, "--soft-delete", "off"]);
    clock.set(T0 + 3 * HOUR);
    let got = advice(&clock, &risky);
    assert_eq!(
        names(&got),
        [
            "full_check_too_old",
            "item_overdue:late",
            "item_without_policy:nopolicy",
            "low_space",
            "no_guard",
            "no_replica",
            "not_immutable",
            "only_passphrase_slots",
            "soft_delete_off",
        ],
        "{got:?}"
    );
    for (name, a) in &got {
        assert!(["critical", "warning", "info"].contains(&a["severity"].as_str().unwrap()));
        let fix = a["fix"].as_str().unwrap();
        assert!(
            fix.starts_with("vaultfs ") && fix.contains(r),
            "{name}: {fix}"
        );
    }
    let sev = |n: &str| got.iter().find(|(x, _)| x == n).unwrap().1["severity"].clone();
    assert_eq!(sev("soft_delete_off"), "critical");
    assert_eq!(sev("item_overdue:late"), "critical");
    let text = clock.ok(&["advisor", r]);
    assert!(text.contains("fix: vaultfs check"), "{text}");

    // The advised commands without a blank to fill in fix their condition.
    for name in [
        "item_without_policy:nopolicy",
        "soft_delete_off",
        "full_check_too_old",
    ] {
        let fix = got.iter().find(|(n, _)| n == name).unwrap().1["fix"].clone();
        run_fix(&clock, fix.as_str().unwrap());
        let now = advice(&clock, &risky);
        assert!(
            !names(&now).contains(&name),
            "{name} after its fix: {now:?}"
        );
    }
    // Soft delete short, then on but not always-on.
    clock.ok(&["settings", r, "--soft-delete-days", "3"]);
    assert!(names(&advice(&clock, &risky)).contains(&"soft_delete_short"));
    clock.ok(&["settings", r, "--soft-delete-days", "14"]);
    let now = advice(&clock, &risky);
    assert!(
        names(&now).contains(&"soft_delete_not_always_on"),
        "{now:?}"
    );
    assert!(!names(&now).contains(&"soft_delete_short"), "{now:?}");
    // Last (it forbids lowering soft delete again): the immutability fix.
    let fix = now.iter().find(|(n, _)| n == "not_immutable").unwrap().1["fix"].clone();
    run_fix(&clock, fix.as_str().unwrap());
    assert!(!names(&advice(&clock, &risky)).contains(&"not_immutable"));

    // A vault with none of them, on a 4 GiB filesystem.
    let big = Tmpfs::new(f.root.join("big"), "4g");
    let good = big.0.join("vault");
    let g = s(&good);
    init_vault(&good);
    clock.ok(&["backup", g, "web", s(&f.src)]);
    clock.ok(&[
        "policy",
        g,
        "web",
        "--schedule",
        "daily 02:00",
        "--keep-daily",
        "7",
    ]);
    clock.ok(&["settings", g, "--soft-delete", "always-on"]);
    let keyfile = f.root.join("recovery.key");
    clock.ok(&["key", "add", g, "--new-key-file", s(&keyfile)]);
    clock.ok(&["settings", g, "--replicate-to", s(&big.0.join("secondary"))]);
    clock.ok(&["replicate", g]);
    clock.ok(&["check", g, "--read-data"]);
    clock.ok(&["settings", g, "--immutability", "enabled"]);
    let guard = f.root.join("guard");
    clock.ok(&["guard", "keygen", s(&guard)]);
    let public = f.root.join("guard.pub");
    clock.ok(&["guard", "init", g, "--public-key", s(&public)]);
    let none = advice(&clock, &good);
    assert!(none.is_empty(), "{none:?}");
    assert!(clock.ok(&["advisor", g]).contains("nothing to advise"));
}
