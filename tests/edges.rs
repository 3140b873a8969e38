//! Everyday edges found by trying vaultfs as a new user would (issue 18): each test failed
//! before its change.

mod common;

use std::fs;

use common::mnt::*;
use common::*;

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let out = vaultfs(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn restore_refuses_a_non_empty_target_unless_overwrite_and_has_dry_run_and_verify() {
    let f = Fixture::new();
    fs::create_dir_all(f.src.join("d")).unwrap();
    fs::write(f.src.join("a.txt"), "from the point").unwrap();
    fs::write(f.src.join("d/b.txt"), "b").unwrap();
    backup(&f.vault, "web", &f.src);
    let (v, dest) = (s(&f.vault), f.dir("dest"));
    fs::write(dest.join("a.txt"), "mine, not the point's").unwrap();

    let err = fails(&["restore", v, "web", s(&dest)]);
    assert!(
        err.contains("is not empty") && err.contains("--overwrite"),
        "{err}"
    );
    assert!(err.contains("replace 1 file "), "{err}");
    assert_eq!(
        fs::read(dest.join("a.txt")).unwrap(),
        b"mine, not the point's"
    );

    let dry = ok(&["restore", v, "web", s(&dest), "--dry-run"]);
    assert!(
        dry.contains("would restore 3 entries")
            && dry.contains("1 existing file would be replaced"),
        "{dry}"
    );
    assert!(!dest.join("d").exists(), "a dry run wrote");

    let out = ok(&["restore", v, "web", s(&dest), "--overwrite", "--verify"]);
    assert!(out.contains("verified 2 files"), "{out}");
    assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"from the point");

    // --path SUB restores the contents of SUB into DEST.
    let sub = f.dir("sub");
    ok(&["restore", v, "web", s(&sub), "--path", "d", "--verify"]);
    assert_eq!(names_in(&sub), ["b.txt"]);
}

#[test]
fn gc_dry_run_says_would_purge() {
    let f = Fixture::with_init(|v| init_vault_with(v, &["--soft-delete-days", "1"]));
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("x"), "x").unwrap();
    let p = backup(&f.vault, "web", &f.src);
    backup(&f.vault, "web", &f.src);
    let v = s(&f.vault);
    ok(&["delete", v, &format!("web/{p}")]);
    let out = ok(&["gc", v, "--dry-run", "--expire-now"]);
    assert!(out.contains("dry run: would purge 1 point,"), "{out}");
    assert!(!out.contains("points purged"), "{out}");
    let settings = ok(&["settings", v]);
    assert!(
        settings.contains("soft delete: 1 day\n") || settings.ends_with("1 day"),
        "{settings}"
    );
}

#[test]
fn mount_refuses_a_non_empty_directory_unless_nonempty() {
    let f = Fixture::new();
    fs::write(f.mnt.join("hidden-by-a-mount"), "x").unwrap();
    let mut m = Mount::guard(&f.vault, &f.mnt);
    let out = m.try_mount();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not empty"), "{err}");
    assert!(err.contains("--nonempty"), "{err}");
    assert!(!is_mounted(&f.mnt));
    let mut m = m.with_arg("--nonempty");
    m.mount();
    assert!(is_mounted(&f.mnt));
}

#[test]
fn clap_errors_name_the_argument_and_the_hint_on_one_line() {
    let (code, err) = stderr_of(&["bakup"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("'bakup'") && err.contains("similar subcommand exists: 'backup'"),
        "{err}"
    );
    let (_, err2) = stderr_of(&["backup", "/nonexistent"]);
    assert!(err2.contains("<ITEM>") && err2.contains("<PATH>"), "{err2}");
    let (_, err3) = stderr_of(&["gc", "/nonexistent", "--dry-rn"]);
    assert!(err3.contains("'--dry-run'"), "{err3}");
    for e in [&err, &err2, &err3] {
        assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    }
    let (code, err) = stderr_of(&["--log", "bogus", "items", "/nonexistent"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bogus") && err.contains("--log"), "{err}");
    // Real directives still work.
    let (code, err) = stderr_of(&["--log", "debug,sled=off", "items", "/nonexistent"]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn a_repeat_backup_that_reads_nothing_prints_no_rate_or_ratio_and_counts_in_words() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("only"), noise(10_000, 1)).unwrap();
    let v = s(&f.vault);
    let first = ok(&["backup", v, "web", s(&f.src)]);
    assert!(first.contains("1 file (0 unchanged), 1 dir,"), "{first}");
    assert!(first.contains("MB/s"), "{first}");
    let again = ok(&["backup", v, "web", s(&f.src)]);
    assert!(again.contains("nothing read"), "{again}");
    assert!(!again.contains("MB/s") && !again.contains("x)"), "{again}");
}

#[test]
fn policy_dry_run_shows_which_points_would_be_retired_and_retires_none() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("x"), "x").unwrap();
    let pts: Vec<String> = (0..3).map(|_| backup(&f.vault, "web", &f.src)).collect();
    let v = s(&f.vault);
    let out = ok(&["policy", v, "web", "--keep-last", "1", "--dry-run"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("would retire web/{} (soft delete)", pts[0]).as_str(),
            &format!("would retire web/{} (soft delete)", pts[1]),
            "dry run: would keep 1 point and retire 2; nothing changed",
        ]
    );
    assert_eq!(
        ok(&["points", v, "web"]).lines().count(),
        4,
        "header + 3 points"
    );
    assert!(ok(&["policy", v, "web"]).contains("no policy"));
}

/// Hold VAULT/lock as another vaultfs process would (a whole-file fcntl write lock).
fn hold_lock(vault: &std::path::Path) -> fs::File {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(vault.join("lock"))
        .unwrap();
    // SAFETY: a zeroed flock is valid; F_SETLK on an open fd.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
    f
}

#[test]
fn lock_wait_waits_for_the_process_holding_the_vault() {
    let f = Fixture::new();
    let v = s(&f.vault);
    let lock = hold_lock(&f.vault);
    let err = fails(&["items", v]);
    assert!(err.contains("in use"), "{err}");
    let err = fails(&["items", v, "--lock-wait", "1s"]);
    assert!(err.contains("in use"), "still held after the wait: {err}");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(800));
        drop(lock);
    });
    let start = std::time::Instant::now();
    let out = vaultfs(&["items", v, "--lock-wait", "30s"]);
    releaser.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed().as_secs() < 20);
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting"));
    let err = fails(&["items", v, "--lock-wait", "soon"]);
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn backup_check_and_gc_speak_json() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("x"), noise(3000, 2)).unwrap();
    let v = s(&f.vault);
    let parse = |args: &[&str]| -> serde_json::Value {
        let out = ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let b = parse(&["backup", v, "web", s(&f.src), "--json"]);
    assert_eq!(b["item"], "web");
    assert_eq!(b["files"], 1);
    assert_eq!(b["bytes_read"], 3000);
    let created = b["created"].as_str().unwrap();
    assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");
    let point = b["point"].as_str().unwrap().to_string();
    let c = parse(&["check", v, "--json"]);
    assert_eq!(c["ok"], true);
    assert_eq!(c["points"], 1);
    ok(&["delete", v, &format!("web/{point}")]);
    let g = parse(&["gc", v, "--json", "--dry-run", "--expire-now"]);
    assert_eq!(g["dry_run"], true);
    assert_eq!(g["purged"], serde_json::json!([format!("web/{point}")]));
}

#[test]
fn policy_and_settings_speak_json_in_show_and_change_forms() {
    let f = Fixture::new();
    let v = s(&f.vault);
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("x"), "x").unwrap();
    let mut made = Vec::new();
    for i in 0..3 {
        fs::write(f.src.join("x"), format!("{i}")).unwrap();
        made.push(backup(&f.vault, "web", &f.src));
    }
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let time = |v: &serde_json::Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("no time: {v}"))
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("not RFC 3339: {v}: {e}"))
    };
    // Show, before any policy.
    let shown = json(&["policy", v, "web", "--json"]);
    assert_eq!(shown["policy"], false);
    assert_eq!(shown["set"], serde_json::Value::Null);
    assert_eq!(shown["keep"]["last"], 0);
    // A dry run names what it would retire and changes nothing.
    let dry = json(&[
        "policy",
        v,
        "web",
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry["dry_run"], true);
    let would: Vec<&str> = dry["would_retire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["point"].as_str().unwrap())
        .collect();
    assert_eq!(would, [made[0].as_str(), made[1].as_str()]);
    assert_eq!(dry["would_keep"], 1);
    time(&dry["would_retire"][0]["created"]);
    assert_eq!(
        ok(&["points", v, "web"]).lines().count(),
        4,
        "dry run changed nothing"
    );
    // Change: the new policy, its time, and the points it retired.
    let set = json(&[
        "policy",
        v,
        "web",
        "--keep-last",
        "2",
        "--schedule",
        "daily 02:00",
        "--json",
    ]);
    assert_eq!(set["policy"], true);
    assert_eq!(set["schedule"], "daily 02:00 UTC");
    assert_eq!(set["keep"]["last"], 2);
    let set_at = time(&set["set"]);
    assert!(
        jiff::Timestamp::now()
            .duration_since(set_at)
            .as_secs()
            .abs()
            < 300
    );
    assert_eq!(set["retired"][0]["point"], made[0].as_str());
    assert_eq!(set["retired"].as_array().unwrap().len(), 1);
    assert_eq!(
        json(&["policy", v, "web", "--json"])["retired"],
        serde_json::json!([])
    );

    // Settings: show, then change.
    let st = json(&["settings", v, "--json"]);
    assert_eq!(st["soft_delete_days"], 14);
    assert_eq!(st["soft_delete_always_on"], false);
    assert_eq!(st["immutability"], "disabled");
    assert_eq!(st["replicate_to"], serde_json::Value::Null);
    time(&st["vault_created"]);
    let st = json(&[
        "settings",
        v,
        "--soft-delete-days",
        "30",
        "--alert-command",
        "true",
        "--json",
    ]);
    assert_eq!(st["soft_delete_days"], 30);
    assert_eq!(st["alert_command"], "true");
    assert_eq!(json(&["settings", v, "--json"])["soft_delete_days"], 30);
}

#[test]
fn every_json_time_is_rfc3339() {
    let f = Fixture::new();
    let v = s(&f.vault);
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("x"), "x").unwrap();
    let first = backup(&f.vault, "web", &f.src);
    backup(&f.vault, "web", &f.src);
    ok(&["delete", v, &format!("web/{first}")]);
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let mut seen = 0;
    let mut time = |what: &str, v: &serde_json::Value| {
        let t = v.as_str().unwrap_or_else(|| panic!("{what}: no time: {v}"));
        t.parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{what}: {t:?} is not RFC 3339: {e}"));
        seen += 1;
    };
    let items = json(&["items", v, "--json"]);
    time("items created", &items[0]["created"]);
    let points = json(&["points", v, "--json"]);
    time("points created", &points[0]["created"]);
    let deleted = json(&["points", v, "--deleted", "--json"]);
    time("points deleted_at", &deleted[0]["deleted_at"]);
    time("points purge_at", &deleted[0]["purge_at"]);
    let jobs = json(&["jobs", v, "--json"]);
    time("jobs start", &jobs[0]["start"]);
    time("jobs end", &jobs[0]["end"]);
    let audit = json(&["audit", v, "--json"]);
    time("audit time", &audit[0]["time"]);
    assert_eq!(seen, 7);
}
