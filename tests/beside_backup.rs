//! Read-only commands beside a backup of an unmounted vault (DESIGN §14): the backup holds the
//! index database (one process at a time) and answers other commands on the vault's control
//! socket; readers get answers, writers are told the vault is in use, or wait with
//! `--lock-wait`. The backup is held before its commit by the `test-clock` build's
//! `VAULTFS_TEST_HOLD_BACKUP` hook, so the state it is seen in is known.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::mnt::*;
use common::*;

/// A `vaultfs` child killed if the test ends before it does.
struct Bg(Option<Child>);

impl Bg {
    fn start(args: &[&str], hold: Option<&Path>) -> Bg {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("VAULTFS_PASSPHRASE", PASS)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(h) = hold {
            cmd.env("VAULTFS_TEST_HOLD_BACKUP", h);
        }
        Bg(Some(cmd.spawn().expect("start vaultfs")))
    }

    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn names(json: &str) -> Vec<String> {
    serde_json::from_str::<Value>(json)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["point"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn readers_answer_and_writers_are_refused_or_wait_while_a_backup_runs() {
    let f = Fixture::new();
    let (v, vault) = (s(&f.vault), &f.vault);
    fs::create_dir_all(f.src.join("sub")).unwrap();
    fs::write(f.src.join("sub/one.txt"), "one\n").unwrap();
    let first = backup(vault, "web", &f.src);
    fs::write(f.src.join("two.bin"), noise(3 << 20, 5)).unwrap();

    let hold = f.root.join("hold");
    fs::write(&hold, "").unwrap();
    let running = Bg::start(&["backup", v, "web", s(&f.src)], Some(&hold));
    let sock = vault.join("control.sock");
    assert!(
        wait_until(Duration::from_secs(60), || sock.exists()),
        "the backup never opened its control socket"
    );

    // Readers: answered from the vault as it is (the held point is not committed yet).
    assert!(ok(&["items", v]).contains("web"));
    assert_eq!(
        names(&ok(&["points", v, "web", "--json"])),
        [first.as_str()]
    );
    let ls: Value = serde_json::from_str(&ok(&["ls", v, "web", "--json"])).unwrap();
    let mut listed: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["/sub"], "{ls}");
    let check = ok(&["check", v]);
    assert!(check.contains(": 0 errors"), "{check}");
    let restored = f.root.join("restored");
    ok(&["restore", v, &format!("web/{first}"), s(&restored)]);
    assert_eq!(fs::read(restored.join("sub/one.txt")).unwrap(), b"one\n");

    // Writers: refused at once, naming why; the running backup is not disturbed.
    for args in [
        vec!["backup", v, "other", s(&f.src)],
        vec!["gc", v],
        vec!["delete", v, &format!("web/{first}")],
    ] {
        let started = std::time::Instant::now();
        let err = fails(&args);
        assert!(
            err.contains("in use") && err.contains("backup"),
            "{args:?}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    // A writer with --lock-wait waits for the backup and then runs.
    let waiter = Bg::start(
        &["backup", v, "other", s(&f.src), "--lock-wait", "2m"],
        None,
    );
    std::thread::sleep(Duration::from_millis(600));
    fs::remove_file(&hold).unwrap();
    let out = running.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = created_point(&String::from_utf8_lossy(&out.stdout))
        .unwrap()
        .1;
    let out = waiter.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting"), "{stderr}");
    assert!(created_point(&String::from_utf8_lossy(&out.stdout)).is_some());

    assert!(!sock.exists(), "the backup left its socket behind");
    assert_eq!(names(&ok(&["points", v, "web", "--json"])), [first, second]);
    assert_eq!(names(&ok(&["points", v, "other", "--json"])).len(), 1);
    assert!(ok(&["check", v]).contains(": 0 errors"));
    // Both backups recorded their jobs' end (the vault dropped, flushing it, at their exit).
    let jobs: Value = serde_json::from_str(&ok(&["jobs", v, "--json"])).unwrap();
    let backups: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "backup")
        .collect();
    assert_eq!(backups.len(), 3, "{jobs}");
    assert!(backups.iter().all(|j| j["status"] == "completed"), "{jobs}");
}
