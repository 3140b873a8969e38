//! Operations (issue 15): jobs, status and alerts, on real vaults with the vault's clock moved
//! through `VAULTFS_TEST_CLOCK`. Run with `cargo test --features test-clock --test ops`.
#![cfg(feature = "test-clock")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::mnt::*;
use common::ops::*;
use common::*;
use serde_json::Value;

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
    // Dedup and compression apart, as `stats` of the whole vault computes them.
    let stats = clock.json(&["stats", v, "--json"]);
    for ratio in ["dedup_ratio", "compression_ratio"] {
        let (a, b) = (h["space"][ratio].as_f64(), stats[ratio].as_f64());
        assert!(
            (a.unwrap() - b.unwrap()).abs() < 0.01,
            "{ratio}: {h} {stats}"
        );
    }
    assert!(text.contains("data reduction: dedup "), "{text}");

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
