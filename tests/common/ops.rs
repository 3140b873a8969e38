//! Helpers of the operations tests (tests/ops.rs, tests/ops_health.rs): the vault clock,
//! the newest job, figures as summaries print them, the scheduler's progress.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use super::mnt::*;
use super::*;

pub const SEC: i64 = 1_000_000_000;
pub const HOUR: i64 = 3600 * SEC;
/// 2026-11-23T10:00:00Z.
pub const T0: i64 = 1_795_428_000 * SEC;

/// The vault clock of one test: a file of ns since the epoch, named to every command.
pub struct Clock {
    pub file: PathBuf,
}

impl Clock {
    pub fn new(dir: &Path, ns: i64) -> Clock {
        let c = Clock {
            file: dir.join("clock"),
        };
        c.set(ns);
        c
    }

    pub fn set(&self, ns: i64) {
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, format!("{ns}\n")).unwrap();
        fs::rename(&tmp, &self.file).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("VAULTFS_PASSPHRASE", PASS)
            .env("VAULTFS_TEST_CLOCK", &self.file)
            .env_remove("RUST_LOG")
            .output()
            .expect("run vaultfs")
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// The newest job of `vault`.
    #[track_caller]
    pub fn last_job(&self, vault: &Path) -> Value {
        let jobs = self.json(&["jobs", s(vault), "--json"]);
        jobs.as_array().unwrap().last().expect("a job").clone()
    }
}

/// `cmd`'s `human_bytes`: the form summaries print sizes in.
pub fn human(n: u64) -> String {
    vaultfs::report::human_bytes(n)
}

pub fn fig(job: &Value, name: &str) -> u64 {
    job["figures"][name].as_u64().unwrap()
}

/// The number before `word` in `line` (`"2 files (0 unchanged)"`, `"files"` → 2).
pub fn count_before(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            // "1 point" as well as "2 points".
            w == word || Some(w) == word.strip_suffix('s')
        })
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    words[i - 1].trim_start_matches('(').parse().unwrap()
}

/// Wait until the daemon of `vault` has done two more scheduler ticks.
pub fn wait_for_scheduler(vault: &Path) {
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
