//! Operations (issue 15): jobs and status, on real vaults with the vault's clock moved through
//! `VAULTFS_TEST_CLOCK`. Run with `cargo test --features test-clock --test ops`.
#![cfg(feature = "test-clock")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::mnt::*;
use common::*;
use serde_json::Value;

const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SEC;
/// 2026-11-23T10:00:00Z.
const T0: i64 = 1_795_428_000 * SEC;

/// The vault clock of one test: a file of ns since the epoch, named to every command.
struct Clock {
    file: PathBuf,
}

impl Clock {
    fn new(dir: &Path, ns: i64) -> Clock {
        let c = Clock {
            file: dir.join("clock"),
        };
        c.set(ns);
        c
    }

    fn set(&self, ns: i64) {
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, format!("{ns}\n")).unwrap();
        fs::rename(&tmp, &self.file).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("VAULTFS_PASSPHRASE", PASS)
            .env("VAULTFS_TEST_CLOCK", &self.file)
            .env_remove("RUST_LOG")
            .output()
            .expect("run vaultfs")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// The newest job of `vault`.
    #[track_caller]
    fn last_job(&self, vault: &Path) -> Value {
        let jobs = self.json(&["jobs", s(vault), "--json"]);
        jobs.as_array().unwrap().last().expect("a job").clone()
    }
}

/// `cmd`'s `human_bytes`: the form summaries print sizes in.
fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

fn fig(job: &Value, name: &str) -> u64 {
    job["figures"][name].as_u64().unwrap()
}

/// The number before `word` in `line` (`"2 files (0 unchanged)"`, `"files"` → 2).
fn count_before(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.trim_matches(|c: char| !c.is_alphanumeric()) == word)
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    words[i - 1].trim_start_matches('(').parse().unwrap()
}

/// Wait until the daemon of `vault` has done two more scheduler ticks.
fn wait_for_scheduler(vault: &Path) {
    use vaultfs::control::{self, Request, Response};
    let ticks = || {
        let stream = control::connect(vault).expect("the daemon's control socket");
        let mut n = None;
        control::call(stream, &Request::Status, |r| {
            if let Response::Out(line) = r
                && let Some(t) = line.strip_prefix("scheduler ticks: ")
            {
                n = t.parse::<u64>().ok();
            }
        })
        .expect("status from the daemon");
        n.expect("scheduler ticks in the status")
    };
    let from = ticks();
    assert!(
        wait_until(Duration::from_secs(60), || ticks() >= from + 2),
        "the scheduler made no progress"
    );
}

#[test]
fn each_kind_of_job_is_recorded_with_its_summarys_figures() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0);
    let v = s(&f.vault);
    make_small_tree(&f.src, 1);

    // backup: figures equal to the command's own summary
    let out = clock.ok(&["backup", v, "web", s(&f.src)]);
    let line = out.lines().nth(1).unwrap();
    let job = clock.last_job(&f.vault);
    assert_eq!(job["kind"], "backup");
    assert_eq!(job["item"], "web");
    assert_eq!(job["status"], "completed");
    assert_eq!(job["started_by"], "uid 0");
    assert_eq!(fig(&job, "files"), count_before(line, "files"));
    assert!(line.contains(&format!("{} read", human(fig(&job, "bytes_read")))));
    assert!(line.contains(&format!("{} added", human(fig(&job, "bytes_added")))));
    assert!(fig(&job, "bytes_added") > 0);
    assert!(job["summary"].as_str().unwrap().ends_with(line), "{job}");
    let first = job["id"].as_u64().unwrap();

    // a backup of a source that is gone: a failed job with the error
    let args = ["backup", v, "web", "/nonexistent/source"];
    let err = failed_clearly(&args, &clock.run(&args));
    let failed = clock.last_job(&f.vault);
    assert_eq!(failed["status"], "failed");
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        failed["error"].as_str().unwrap().contains("does not exist"),
        "{failed}"
    );

    // restore
    let dest = f.root.join("restored");
    let out = clock.ok(&["restore", v, "web", s(&dest)]);
    let job = clock.last_job(&f.vault);
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("restore"), Some("completed"))
    );
    assert_eq!(fig(&job, "files"), count_before(&out, "entries"));
    assert!(
        out.trim_end().ends_with(&human(fig(&job, "bytes_read"))),
        "{out} {job}"
    );

    // check --read-data
    let out = clock.ok(&["check", v, "--read-data"]);
    let line = out.lines().next().unwrap();
    let job = clock.last_job(&f.vault);
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("check"), Some("completed"))
    );
    assert_eq!(fig(&job, "files"), count_before(line, "points"));
    assert!(line.contains(&format!(
        "{} of data verified",
        human(fig(&job, "bytes_read"))
    )));

    // gc, after deleting the point with soft delete off, so something is freed
    let point = clock.json(&["points", v, "web", "--json"])[0]["point"]
        .as_str()
        .unwrap()
        .to_string();
    clock.ok(&["settings", v, "--soft-delete", "off"]);
    clock.ok(&["delete", v, &format!("web/{point}")]);
    let out = clock.ok(&["gc", v]);
    let job = clock.last_job(&f.vault);
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("gc"), Some("completed"))
    );
    assert_eq!(fig(&job, "files"), 1, "{out}");
    assert!(fig(&job, "bytes_removed") > 0, "{job}");
    assert!(out.contains(&format!("({} freed)", human(fig(&job, "bytes_removed")))));

    // replicate
    make_small_tree(&f.root.join("src2"), 2);
    clock.ok(&["backup", v, "web", s(&f.root.join("src2"))]);
    let sec = f.root.join("secondary");
    let out = clock.ok(&["replicate", v, "--to", s(&sec)]);
    let job = clock.last_job(&f.vault);
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("replicate"), Some("completed"))
    );
    assert_eq!(fig(&job, "files"), count_before(&out, "packs"));
    assert!(out.contains(&format!("({})", human(fig(&job, "bytes_added")))));

    // snapshot by hand and by the daemon's schedule, with `jobs` answered by the daemon
    let mut m = Mount::guard(&f.vault, &f.mnt).with_env("VAULTFS_TEST_CLOCK", s(&clock.file));
    m.mount();
    fs::create_dir(f.mnt.join("incoming/inc")).ok();
    fs::write(f.mnt.join("incoming/inc/a.txt"), b"one\n").unwrap();
    clock.ok(&["policy", v, "inc", "--schedule", "hourly"]);
    clock.set(T0 + 10 * SEC);
    let out = clock.ok(&["snapshot", s(&f.mnt), "inc"]);
    let job = clock.last_job(&f.vault);
    assert_eq!(
        (job["kind"].as_str(), job["started_by"].as_str()),
        (Some("snapshot"), Some("uid 0"))
    );
    assert!(
        out.contains(job["summary"].as_str().unwrap()),
        "{out} {job}"
    );
    assert_eq!(fig(&job, "files"), 1);
    fs::write(f.mnt.join("incoming/inc/b.txt"), b"two\n").unwrap();
    clock.set(T0 + HOUR + 30 * SEC);
    wait_for_scheduler(&f.vault);
    let job = clock.last_job(&f.vault);
    assert_eq!(
        (job["kind"].as_str(), job["started_by"].as_str()),
        (Some("snapshot"), Some("scheduler")),
        "{job}"
    );
    assert_eq!((job["item"].as_str(), fig(&job, "files")), (Some("inc"), 2));
    drop(m);

    // filters and `jobs show`
    let failed_only = clock.json(&["jobs", v, "--failed", "--json"]);
    assert_eq!(failed_only.as_array().unwrap().len(), 1, "{failed_only}");
    let of_inc = clock.json(&["jobs", v, "--item", "inc", "--json"]);
    assert_eq!(of_inc.as_array().unwrap().len(), 2, "{of_inc}");
    let recent = clock.json(&["jobs", v, "--since", "30m", "--json"]);
    assert_eq!(recent.as_array().unwrap().len(), 1, "{recent}");
    let shown = clock.ok(&["jobs", "show", v, &first.to_string()]);
    assert!(
        shown.contains("status: completed") && shown.contains("summary: point "),
        "{shown}"
    );
    let args = ["jobs", "show", v, "999"];
    failed_clearly(&args, &clock.run(&args));
}

/// `status` shows each item's newest point against its schedule and, with a secondary set,
/// how far the secondary lags: non-zero before `replicate`, zero after.
#[test]
fn status_shows_overdue_items_and_the_replica_lag() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0);
    let v = s(&f.vault);
    make_small_tree(&f.src, 1);
    clock.ok(&["backup", v, "web", s(&f.src)]);
    clock.ok(&["policy", v, "web", "--schedule", "hourly"]);
    let sec = f.root.join("secondary");
    clock.ok(&["settings", v, "--replicate-to", s(&sec)]);
    clock.ok(&["replicate", v]);

    let item = |h: &Value| h["items"][0].clone();
    let h = clock.json(&["status", v, "--json"]);
    assert_eq!(item(&h)["replica"]["lag_seconds"], 0, "{h}");
    assert_eq!(item(&h)["overdue"], false, "{h}");
    assert_eq!(h["protection"]["soft_delete_days"], 14);
    assert_eq!(
        h["protection"]["key_slots"],
        serde_json::json!(["passphrase"])
    );
    assert!(h["space"]["stored_bytes"].as_u64().unwrap() > 0);
    assert!(h["space"]["free_bytes"].as_u64().unwrap() > 0);

    // Three hours on: the hourly item is overdue; a new point is not on the secondary yet.
    clock.set(T0 + 3 * HOUR);
    let h = clock.json(&["status", v, "--json"]);
    assert_eq!(item(&h)["overdue"], true, "{h}");
    assert_eq!(item(&h)["newest_age_seconds"], 3 * 3600, "{h}");
    make_small_tree(&f.root.join("src2"), 2);
    clock.ok(&["backup", v, "web", s(&f.root.join("src2"))]);
    let h = clock.json(&["status", v, "--json"]);
    assert_eq!(item(&h)["overdue"], false, "{h}");
    assert_eq!(item(&h)["replica"]["lag_seconds"], 3 * 3600, "{h}");
    assert_eq!(item(&h)["replica"]["points_missing"], 1, "{h}");
    let text = clock.ok(&["status", v]);
    let row = text.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(row.ends_with("3h 0m"), "{text}");

    clock.ok(&["replicate", v]);
    let h = clock.json(&["status", v, "--json"]);
    assert_eq!(item(&h)["replica"]["lag_seconds"], 0, "{h}");
    assert_eq!(item(&h)["replica"]["points_missing"], 0, "{h}");
    let text = clock.ok(&["status", v]);
    assert!(text.contains("last replicated"), "{text}");
}

/// The active (not cleared) alerts of `vault`, as `alerts --json` lists them.
fn active_alerts(clock: &Clock, vault: &Path) -> Vec<Value> {
    clock
        .json(&["alerts", s(vault), "--json"])
        .as_array()
        .unwrap()
        .clone()
}

/// A failing backup: a failed job, one alert, one run of the alert command with the alert's
/// JSON; failing again raises nothing new; a good backup clears it.
#[test]
fn a_failed_backup_raises_one_alert_delivered_once_to_the_alert_command() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0);
    let v = s(&f.vault);
    let inbox = f.dir("inbox");
    let cmd = format!("cat > {}/alert-$$.json", s(&inbox));
    clock.ok(&["settings", v, "--alert-command", &cmd]);
    let args = ["backup", v, "web", "/nonexistent/source"];
    failed_clearly(&args, &clock.run(&args));
    let job = clock.last_job(&f.vault);
    assert_eq!(job["status"], "failed");

    let delivered: Vec<PathBuf> = fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let sent: Value = serde_json::from_slice(&fs::read(&delivered[0]).unwrap()).unwrap();
    assert_eq!(sent["kind"], "job_failed", "{sent}");
    assert_eq!(sent["item"], "web");
    assert_eq!(sent["job"], job["id"]);
    assert_eq!(sent["vault"], v);
    assert!(
        sent["message"].as_str().unwrap().contains("does not exist"),
        "{sent}"
    );

    let alerts = active_alerts(&clock, &f.vault);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["id"], sent["id"]);
    assert_eq!(alerts[0]["state"], "active");
    let deliveries = alerts[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (
            deliveries[0]["attempt"].as_u64(),
            deliveries[0]["ok"].as_bool()
        ),
        (Some(1), Some(true))
    );

    // The same cause again: no second alert, no second delivery.
    failed_clearly(&args, &clock.run(&args));
    assert_eq!(active_alerts(&clock, &f.vault).len(), 1);
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 1);

    // A good backup of the item clears it.
    make_small_tree(&f.src, 1);
    clock.ok(&["backup", v, "web", s(&f.src)]);
    assert!(active_alerts(&clock, &f.vault).is_empty());
    let all = clock.json(&["alerts", v, "--all", "--json"]);
    assert_eq!(all[0]["state"], "cleared", "{all}");
}

/// With the test clock, a missed schedule raises exactly one alert however often the vault
/// looks, an acknowledgement keeps it out of the active list, and the next point clears it.
/// Soft delete turned off and damage met by `check` raise their own alerts.
#[test]
fn a_missed_schedule_raises_exactly_one_alert_and_the_next_point_clears_it() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0);
    let v = s(&f.vault);
    make_small_tree(&f.src, 1);
    clock.ok(&["backup", v, "web", s(&f.src)]);
    clock.ok(&["policy", v, "web", "--schedule", "hourly"]);
    clock.set(T0 + HOUR + 5 * 60 * SEC);
    assert!(
        active_alerts(&clock, &f.vault).is_empty(),
        "inside the grace"
    );

    clock.set(T0 + 2 * HOUR);
    let alerts = active_alerts(&clock, &f.vault);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0]["kind"].as_str(), alerts[0]["item"].as_str()),
        (Some("missed_schedule"), Some("web"))
    );
    clock.set(T0 + 3 * HOUR);
    let status = clock.json(&["status", v, "--json"]);
    assert_eq!(status["alerts"].as_array().unwrap().len(), 1, "{status}");
    let again = active_alerts(&clock, &f.vault);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], alerts[0]["id"]);

    let id = alerts[0]["id"].to_string();
    clock.ok(&["alerts", "ack", v, &id]);
    assert_eq!(active_alerts(&clock, &f.vault)[0]["state"], "acknowledged");
    let args = ["alerts", "ack", v, &id];
    failed_clearly(&args, &clock.run(&args));

    make_small_tree(&f.root.join("src2"), 2);
    clock.ok(&["backup", v, "web", s(&f.root.join("src2"))]);
    assert!(active_alerts(&clock, &f.vault).is_empty());
    assert_eq!(
        clock
            .json(&["alerts", v, "--all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Protection weakened: soft delete off, then on again.
    clock.ok(&["settings", v, "--soft-delete", "off"]);
    let alerts = active_alerts(&clock, &f.vault);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "protection_weakened");
    clock.ok(&["settings", v, "--soft-delete-days", "7"]);
    assert!(active_alerts(&clock, &f.vault).is_empty());

    // Corruption met by check: a flipped byte in a data pack.
    let pack = walk(&f.vault.join("packs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[100] ^= 0x40;
    fs::write(&pack, bytes).unwrap();
    let args = ["check", v, "--read-data"];
    assert!(!clock.run(&args).status.success());
    let alerts = active_alerts(&clock, &f.vault);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "corruption");
}

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
            "no_replica",
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
    let none = advice(&clock, &good);
    assert!(none.is_empty(), "{none:?}");
    assert!(clock.ok(&["advisor", g]).contains("nothing to advise"));
}
