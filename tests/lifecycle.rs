//! Acceptance tests of policies, retention, soft-delete expiry and garbage collection (issue 5):
//! the real `vaultfs` binary on real vaults, with the vault's clock moved through a file named by
//! `VAULTFS_TEST_CLOCK` (a `test-clock` build), so simulated days and years pass in seconds.
//! Run with `cargo test --features test-clock --test lifecycle`.
//!
//! Every test has its own vault, sources, clock file and mount point in a private temp dir; mounts
//! are held by a [`Mount`] guard that always unmounts.
//!
//! Without the `test-clock` feature the binary ignores the clock file, so the file is empty then.
#![cfg(feature = "test-clock")]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::mnt::*;
use common::*;

const ITEM: &str = "web";
const SEC: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SEC;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// helpers: the test clock and commands that see it

/// The vault clock of one test: a file holding ns since the epoch, named to every vaultfs
/// process of the test (and inherited by a mount daemon) through `VAULTFS_TEST_CLOCK`.
struct Clock {
    file: PathBuf,
}

impl Clock {
    fn new(dir: &Path, start_ns: i64) -> Clock {
        let c = Clock {
            file: dir.join("clock"),
        };
        c.set(start_ns);
        c
    }

    fn set(&self, ns: i64) {
        // Write then rename: a daemon reading the clock never sees a half-written number.
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, format!("{ns}\n")).unwrap();
        fs::rename(&tmp, &self.file).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("VAULTFS_PASSPHRASE", PASS)
            .env("VAULTFS_TEST_CLOCK", &self.file)
            .env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run vaultfs")
    }

    /// The command must succeed; returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// The command must fail with exit code 1 and exactly one `vaultfs: ` line on stderr.
    #[track_caller]
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = failed_clearly(args, &out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "vaultfs {args:?} should exit 1: {stderr}"
        );
        stderr
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (or with fractional seconds) to ns since the epoch.
fn ts(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
        .as_nanosecond() as i64
}

fn strftime(ns: i64, fmt: &str) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .unwrap()
        .strftime(fmt)
        .to_string()
}

/// The name of a point created at `ns` (no collision suffix).
fn pname(ns: i64) -> String {
    strftime(ns, "%Y-%m-%dT%H-%M-%SZ")
}

/// How `points --json` shows a time (RFC 3339).
fn disp(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .unwrap()
        .to_string()
}

/// One row of `points VAULT ITEM [--deleted] --json`.
#[derive(Debug, Clone)]
struct Pt {
    name: String,
    created_ns: i64,
    deleted_at: Option<String>,
    purge_at: Option<String>,
}

fn points(clock: &Clock, vault: &Path, item: &str, deleted: bool) -> Vec<Pt> {
    let mut args = vec!["points", s(vault), item, "--json"];
    if deleted {
        args.push("--deleted");
    }
    let out = clock.ok(&args);
    let js: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("points --json: {e}: {out}"));
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let mut v: Vec<Pt> = js
        .as_array()
        .unwrap_or_else(|| panic!("points --json is not an array: {out}"))
        .iter()
        .map(|p| {
            assert_eq!(p["item"].as_str(), Some(item), "{p}");
            Pt {
                name: p["point"].as_str().expect("point").to_string(),
                created_ns: p["created_ns"].as_i64().expect("created_ns"),
                deleted_at: text(&p["deleted_at"]),
                purge_at: text(&p["purge_at"]),
            }
        })
        .collect();
    v.sort_by(|a, b| (a.created_ns, &a.name).cmp(&(b.created_ns, &b.name)));
    v
}

fn names(pts: &[Pt]) -> Vec<String> {
    pts.iter().map(|p| p.name.clone()).collect()
}

/// `backup VAULT ITEM SRC` with the clock at `at`; returns the new point's name.
#[track_caller]
fn backup_at(clock: &Clock, vault: &Path, item: &str, src: &Path, at: i64) -> String {
    clock.set(at);
    let out = clock.ok(&["backup", s(vault), item, s(src)]);
    let first = out.lines().next().unwrap_or_default();
    let spec = first
        .strip_prefix("created point ")
        .unwrap_or_else(|| panic!("unexpected backup output: {out}"));
    let (it, point) = spec.split_once('/').expect("ITEM/POINT");
    assert_eq!(it, item, "{out}");
    assert!(
        point.starts_with(&pname(at)),
        "point {point} is not named by the vault clock ({})",
        pname(at)
    );
    point.to_string()
}

/// The `ITEM/POINT` of every `purged ITEM/POINT` line of gc's output, sorted.
fn purged(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("purged "))
        .map(|l| l.trim().to_string())
        .collect();
    v.sort();
    v
}

/// `check VAULT --read-data` must pass.
#[track_caller]
fn check(clock: &Clock, vault: &Path, when: &str) {
    let out = clock.run(&["check", s(vault), "--read-data"]);
    assert!(
        out.status.success(),
        "check --read-data failed {when}:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restore ITEM/POINT into a fresh directory under `root` and compare it with `src`.
#[track_caller]
fn restores_as(clock: &Clock, vault: &Path, root: &Path, spec: &str, src: &Path) {
    let dest = root.join(format!("restore-{}", spec.replace('/', "_")));
    if dest.exists() {
        fs::remove_dir_all(&dest).unwrap();
    }
    clock.ok(&["restore", s(vault), spec, s(&dest)]);
    assert_same_tree(src, &dest);
    fs::remove_dir_all(&dest).unwrap();
}

/// Mount with the test clock (the daemon inherits it); returns the guard.
#[track_caller]
fn mount(clock: &Clock, vault: &Path, mnt: &Path) -> Mount {
    mount_with(clock, vault, mnt, &[])
}

/// [`mount`] with extra options.
#[track_caller]
fn mount_with(clock: &Clock, vault: &Path, mnt: &Path, extra: &[&str]) -> Mount {
    let mut m = Mount::guard(vault, mnt);
    let mut args = vec!["mount", s(vault), s(&m.mnt)];
    args.extend_from_slice(extra);
    let out = clock.run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(pid) = daemon_pid(&stdout) {
        m.pids.push(pid);
    }
    assert!(
        out.status.success(),
        "vaultfs mount failed ({:?}):\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&m.mnt), "{} is not mounted", s(&m.mnt));
    m
}

/// Scheduler ticks the daemon of `vault` has done (its status through the control socket).
fn scheduler_ticks(vault: &Path) -> u64 {
    use vaultfs::control::{self, Request, Response};
    let stream = control::connect(vault).expect("the daemon's control socket");
    let mut ticks = None;
    control::call(stream, &Request::Status, |r| {
        if let Response::Out(line) = r
            && let Some(n) = line.strip_prefix("scheduler ticks: ")
        {
            ticks = n.parse().ok();
        }
    })
    .expect("status from the daemon");
    ticks.expect("the status shows the scheduler's ticks")
}

/// Wait until the daemon's scheduler has done two whole ticks from now, so it has looked at
/// the vault's clock as it is now (a tick in progress may have read it before it moved).
#[track_caller]
fn wait_for_scheduler(vault: &Path) {
    let from = scheduler_ticks(vault);
    assert!(
        wait_until(Duration::from_secs(60), || scheduler_ticks(vault)
            >= from + 2),
        "the scheduler made no progress"
    );
}

/// A directory of `n` files of `size` bytes of noise (seeds `seed..seed+n`).
fn noise_tree(root: &Path, n: usize, size: usize, seed: u64) {
    fs::create_dir_all(root).unwrap();
    for i in 0..n {
        fs::write(
            root.join(format!("f{i:03}.bin")),
            noise(size, seed + i as u64),
        )
        .unwrap();
    }
}

/// Copy a directory tree with `cp -a`.
fn copy_tree(src: &Path, dst: &Path) {
    sh(&format!("cp -a '{}' '{}'", s(src), s(dst)));
}

/// Read a file through the mount after dropping its pages from the kernel's cache, so the read
/// reaches the daemon.
fn read_uncached(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut f = fs::File::open(p)?;
    // SAFETY: posix_fadvise on an open descriptor; no memory is passed.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// 1. hourly schedule, keep-last 3, over a simulated day

#[test]
fn hourly_keep_last_3_over_a_simulated_day() {
    let started = Instant::now();
    let f = Fixture::new();
    let t0 = ts("2030-03-10T00:20:00Z");
    let clock = Clock::new(&f.root, t0);
    let vault = f.vault.clone();
    let m = mount(&clock, &vault, &f.mnt);
    let inc = m.path(&format!("incoming/{ITEM}"));
    fs::create_dir(&inc).unwrap();
    fs::write(inc.join("hour.txt"), "hour 0\n").unwrap();
    let shown = clock.ok(&[
        "policy",
        s(&vault),
        ITEM,
        "--schedule",
        "hourly",
        "--keep-last",
        "3",
    ]);
    let shown_again = clock.ok(&["policy", s(&vault), ITEM]);
    for text in [&shown, &shown_again] {
        assert!(
            text.contains("hourly") && text.contains("last 3"),
            "policy not shown: {text:?}"
        );
    }
    // Nothing is due before the first full hour.
    wait_for_scheduler(&vault);
    assert!(
        points(&clock, &vault, ITEM, false).is_empty(),
        "a point was made before the schedule was due"
    );

    let mut made = Vec::new();
    for k in 1..=24i64 {
        // Each hour's snapshot holds that hour's content.
        fs::write(inc.join("hour.txt"), format!("hour {k}\n")).unwrap();
        let at = t0 + k * HOUR;
        clock.set(at);
        let (want_live, want_deleted) = (k.min(3) as usize, (k - 3).max(0) as usize);
        let mut seen = (Vec::new(), Vec::new());
        let done = poll(Duration::from_secs(60), Duration::from_millis(150), || {
            let live = points(&clock, &vault, ITEM, false);
            let dead = points(&clock, &vault, ITEM, true);
            let ok = live.last().is_some_and(|p| p.created_ns == at)
                && live.len() == want_live
                && dead.len() == want_deleted;
            seen = (names(&live), names(&dead));
            ok
        });
        assert!(
            done,
            "hour {k} ({}): expected a new point {} with {want_live} live and {want_deleted} \
             deleted points; live = {:?}, deleted = {:?}",
            disp(at),
            pname(at),
            seen.0,
            seen.1
        );
        made.push(pname(at));
    }
    // The schedule is not due again until the clock moves: no extra points.
    wait_for_scheduler(&vault);
    let live = points(&clock, &vault, ITEM, false);
    let dead = points(&clock, &vault, ITEM, true);
    assert_eq!(names(&live), made[21..].to_vec(), "live points");
    assert_eq!(names(&dead), made[..21].to_vec(), "deleted points");
    for (i, p) in dead.iter().enumerate() {
        // made[i] was taken at hour i+1 and retired when the point of hour i+4 was taken.
        assert_eq!(p.created_ns, t0 + (i as i64 + 1) * HOUR, "{}", p.name);
        let retired = t0 + (i as i64 + 4) * HOUR;
        assert_eq!(
            p.deleted_at.as_deref(),
            Some(disp(retired).as_str()),
            "deleted_at of {}",
            p.name
        );
        assert_eq!(
            p.purge_at.as_deref(),
            Some(disp(retired + 14 * DAY).as_str()),
            "purge_at of {}",
            p.name
        );
    }
    for p in &live {
        assert_eq!(p.deleted_at, None, "{p:?}");
    }
    // The mount shows the same: three points and latest, the others under .deleted/.
    let del_dir = m.path(&format!(".deleted/{ITEM}"));
    let pts_dir = m.path(&format!("points/{ITEM}"));
    let mut want_pts: Vec<String> = made[21..].to_vec();
    want_pts.push("latest".into());
    want_pts.sort();
    let shown = poll(Duration::from_secs(30), Duration::from_millis(100), || {
        names_in(&del_dir) == made[..21] && names_in(&pts_dir) == want_pts
    });
    assert!(
        shown,
        "mount: .deleted/{ITEM} = {:?}, points/{ITEM} = {:?}",
        names_in(&del_dir),
        names_in(&pts_dir)
    );
    for (dir, idx) in [
        (&del_dir, 0usize),
        (&del_dir, 20),
        (&pts_dir, 21),
        (&pts_dir, 23),
    ] {
        let got = fs::read_to_string(dir.join(&made[idx]).join("hour.txt")).unwrap();
        assert_eq!(
            got,
            format!("hour {}\n", idx + 1),
            "content of {}",
            made[idx]
        );
    }
    drop(m);
    check(&clock, &vault, "after the simulated day");
    eprintln!("hourly day: {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 2. grandfather-father-son retention against hand-computed lists

struct GfsCase {
    name: &'static str,
    /// Creation times of the points made before the policy is set.
    before: Vec<i64>,
    /// The backup made after the policy is set (applies retention).
    last: i64,
    policy: &'static [&'static str],
    /// Names of the live points after the last backup, by hand.
    kept: &'static [&'static str],
}

/// Daily 12:00 points over three years as they matter to the rules: every day of the last 40
/// days (with a point just before and one just after the new year and two on one day), every
/// Sunday for a year before that (plus Feb 28 and 29, 2028, Dec 31, 2027 and Jan 1, 2028), and
/// the 1st and 15th of each month before that (plus Dec 31, 2026).
fn three_years() -> Vec<i64> {
    let noon = |d: jiff::civil::Date| ts(&format!("{d}T12:00:00Z"));
    let date = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
    let mut v = Vec::new();
    let mut d = date("2028-12-01");
    while d <= date("2029-01-09") {
        v.push(noon(d));
        d = d.tomorrow().unwrap();
    }
    v.extend(
        [
            "2028-12-31T23:59:59Z",
            "2029-01-01T00:00:00Z",
            "2029-01-09T06:00:00Z",
        ]
        .map(ts),
    );
    let mut d = date("2027-12-05");
    while d < date("2028-12-01") {
        assert_eq!(d.weekday(), jiff::civil::Weekday::Sunday);
        v.push(noon(d));
        d = d.checked_add(jiff::Span::new().days(7)).unwrap();
    }
    for s in [
        "2028-02-28",
        "2028-02-29",
        "2027-12-31",
        "2028-01-01",
        "2026-12-31",
    ] {
        v.push(noon(date(s)));
    }
    for y in [2026, 2027] {
        for mo in 1..=12 {
            for day in [1, 15] {
                let d = jiff::civil::date(y, mo, day);
                if d < date("2027-12-01") {
                    v.push(noon(d));
                }
            }
        }
    }
    v.sort();
    v
}

fn gfs_cases() -> Vec<GfsCase> {
    vec![
        GfsCase {
            name: "three years, daily 7 weekly 4 monthly 12 yearly 3",
            before: three_years(),
            last: ts("2029-01-10T12:00:00Z"),
            policy: &[
                "--keep-daily",
                "7",
                "--keep-weekly",
                "4",
                "--keep-monthly",
                "12",
                "--keep-yearly",
                "3",
            ],
            kept: &[
                // yearly: 2027's newest point (Dec 31, a Friday; Jan 1, 2028 belongs to 2028)
                "2027-12-31T12-00-00Z",
                // monthly: Feb 2028 is the 12th month back; its newest point is the leap day
                "2028-02-29T12-00-00Z",
                // monthly: the last Sunday of each month, March to November 2028
                "2028-03-26T12-00-00Z",
                "2028-04-30T12-00-00Z",
                "2028-05-28T12-00-00Z",
                "2028-06-25T12-00-00Z",
                "2028-07-30T12-00-00Z",
                "2028-08-27T12-00-00Z",
                "2028-09-24T12-00-00Z",
                "2028-10-29T12-00-00Z",
                "2028-11-26T12-00-00Z",
                // weekly: ISO week 2028-W51 (Dec 18-24)
                "2028-12-24T12-00-00Z",
                // weekly 2028-W52, monthly Dec 2028, yearly 2028: the last second of the year
                "2028-12-31T23-59-59Z",
                // daily: the last 7 days with points (Jan 9 12:00, not 06:00); Jan 7 is also
                // the newest of ISO week 2029-W01
                "2029-01-04T12-00-00Z",
                "2029-01-05T12-00-00Z",
                "2029-01-06T12-00-00Z",
                "2029-01-07T12-00-00Z",
                "2029-01-08T12-00-00Z",
                "2029-01-09T12-00-00Z",
                // the new point: daily, weekly 2029-W02, monthly, yearly
                "2029-01-10T12-00-00Z",
            ],
        },
        GfsCase {
            // 2030-01-01 is a Tuesday: ISO week 2030-W01 runs Dec 31, 2029 to Jan 6, 2030.
            name: "ISO weeks across the new year, weekly 3",
            before: (0..23)
                .map(|i| ts("2029-12-17T12:00:00Z") + i * DAY)
                .collect(),
            last: ts("2030-01-09T12:00:00Z"),
            policy: &["--keep-weekly", "3"],
            kept: &[
                "2029-12-30T12-00-00Z", // newest of 2029-W52 (Dec 24-30)
                "2030-01-06T12-00-00Z", // newest of 2030-W01 (Dec 31-Jan 6)
                "2030-01-09T12-00-00Z", // 2030-W02
            ],
        },
        GfsCase {
            // Two points in one second get names with a suffix; keep-last and keep-daily add up.
            name: "keep-last 2 and daily 2 with several points a day",
            before: [
                "2030-05-01T08:00:00Z",
                "2030-05-01T20:00:00Z",
                "2030-05-02T08:00:00Z",
                "2030-05-02T20:00:00Z",
                "2030-05-03T08:00:00.100Z",
                "2030-05-03T08:00:00.500Z",
            ]
            .map(ts)
            .to_vec(),
            last: ts("2030-05-03T20:00:00Z"),
            policy: &["--keep-last", "2", "--keep-daily", "2"],
            kept: &[
                "2030-05-02T20-00-00Z",   // daily: newest of May 2
                "2030-05-03T08-00-00Z-1", // last 2 (the later of the two at 08:00:00)
                "2030-05-03T20-00-00Z",   // last 2, daily
            ],
        },
    ]
}

#[test]
fn gfs_retention_keeps_the_hand_computed_points() {
    let started = Instant::now();
    for case in gfs_cases() {
        let f = Fixture::new();
        let clock = Clock::new(&f.root, case.before[0]);
        let v = f.vault.clone();
        let src = f.dir("src");
        fs::write(src.join("a.txt"), "tiny\n").unwrap();
        let mut made = Vec::new();
        for &at in &case.before {
            made.push(backup_at(&clock, &v, ITEM, &src, at));
        }
        let mut all: BTreeSet<String> = made.iter().cloned().collect();
        assert_eq!(all.len(), case.before.len(), "{}: names collide", case.name);
        // Setting the policy may or may not apply retention at once; either way nothing
        // outside the hand-computed set plus the points the last backup retires may go.
        let mut args = vec!["policy", s(&v), ITEM];
        args.extend_from_slice(case.policy);
        clock.ok(&args);
        let last = backup_at(&clock, &v, ITEM, &src, case.last);
        all.insert(last.clone());
        let live: BTreeSet<String> = names(&points(&clock, &v, ITEM, false))
            .into_iter()
            .collect();
        let want: BTreeSet<String> = case.kept.iter().map(|s| s.to_string()).collect();
        assert!(
            want.is_subset(&all),
            "{}: the hand list names points never made: {:?}",
            case.name,
            want.difference(&all).collect::<Vec<_>>()
        );
        assert_eq!(
            live,
            want,
            "{}: live points differ\nkept but should be retired: {:?}\nretired but should be kept: {:?}",
            case.name,
            live.difference(&want).collect::<Vec<_>>(),
            want.difference(&live).collect::<Vec<_>>()
        );
        // Every other point is soft-deleted, not gone.
        let dead: BTreeSet<String> = names(&points(&clock, &v, ITEM, true)).into_iter().collect();
        let retired: BTreeSet<String> = all.difference(&want).cloned().collect();
        assert_eq!(dead, retired, "{}: soft-deleted points", case.name);
        eprintln!(
            "{}: {} points, {} kept, {:.1?}",
            case.name,
            all.len(),
            live.len(),
            started.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. a deleted point stays restorable until its purge time

#[test]
fn deleted_point_is_restorable_until_its_purge_time_then_gone() {
    // (soft-delete days set before deleting, or None for the default of 14)
    for days in [None, Some(3u32)] {
        let f = Fixture::new();
        let t0 = ts("2030-06-01T10:00:00Z");
        let clock = Clock::new(&f.root, t0);
        let v = f.vault.clone();
        if let Some(d) = days {
            let out = clock.ok(&["settings", s(&v), "--soft-delete-days", &d.to_string()]);
            assert_eq!(out.trim(), format!("soft delete: {d} days"));
        }
        let period = days.unwrap_or(14) as i64 * DAY;
        let srcs: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = f.root.join(format!("src{i}"));
                make_small_tree(&p, 100 + i);
                p
            })
            .collect();
        let pts: Vec<String> = (0..3)
            .map(|i| backup_at(&clock, &v, ITEM, &srcs[i], t0 + i as i64 * MINUTE))
            .collect();
        check(&clock, &v, "after the backups");
        let deleted_at = t0 + HOUR;
        clock.set(deleted_at);
        let victim = format!("{ITEM}/{}", pts[1]);
        clock.ok(&["delete", s(&v), &victim]);
        let purge = deleted_at + period;
        let dead = points(&clock, &v, ITEM, true);
        assert_eq!(names(&dead), vec![pts[1].clone()]);
        assert_eq!(
            dead[0].deleted_at.as_deref(),
            Some(disp(deleted_at).as_str())
        );
        assert_eq!(dead[0].purge_at.as_deref(), Some(disp(purge).as_str()));
        assert_eq!(
            names(&points(&clock, &v, ITEM, false)),
            vec![pts[0].clone(), pts[2].clone()]
        );
        check(&clock, &v, "after the delete");

        // Through the mount, just before the purge time: listed and readable under .deleted/,
        // and a gc through the daemon keeps it.
        clock.set(purge - SEC);
        {
            let m = mount(&clock, &v, &f.mnt);
            let del = m.path(&format!(".deleted/{ITEM}"));
            assert_eq!(names_in(&del), vec![pts[1].clone()]);
            assert!(!names_in(&m.path(&format!("points/{ITEM}"))).contains(&pts[1]));
            assert_same_tree(&srcs[1], &del.join(&pts[1]));
            let out = clock.ok(&["gc", s(&v)]);
            assert_eq!(purged(&out), Vec::<String>::new(), "gc before purge: {out}");
            assert_same_tree(&srcs[1], &del.join(&pts[1]));
        }
        check(&clock, &v, "after gc before the purge time");
        restores_as(&clock, &v, &f.root, &victim, &srcs[1]);
        let out = clock.ok(&["gc", s(&v), "--dry-run"]);
        assert!(!out.contains(&pts[1]), "dry run before purge: {out}");

        // Past the purge time: the dry run names it, gc purges it, and it is gone for good.
        clock.set(purge + SEC);
        let out = clock.ok(&["gc", s(&v), "--dry-run"]);
        assert!(out.contains(&victim), "dry run after purge time: {out}");
        assert_eq!(names(&points(&clock, &v, ITEM, true)), vec![pts[1].clone()]);
        check(&clock, &v, "after the dry run");
        let out = clock.ok(&["gc", s(&v)]);
        assert_eq!(purged(&out), vec![victim.clone()], "gc: {out}");
        assert!(points(&clock, &v, ITEM, true).is_empty());
        assert_eq!(
            names(&points(&clock, &v, ITEM, false)),
            vec![pts[0].clone(), pts[2].clone()]
        );
        check(&clock, &v, "after the purge");
        let dest = f.root.join("gone");
        let out = clock.run(&["restore", s(&v), &victim, s(&dest)]);
        failed_clearly(&["restore", &victim], &out);
        let out = clock.run(&["undelete", s(&v), &victim]);
        failed_clearly(&["undelete", &victim], &out);
        for i in [0, 2] {
            restores_as(&clock, &v, &f.root, &format!("{ITEM}/{}", pts[i]), &srcs[i]);
        }
        let out = clock.ok(&["gc", s(&v)]);
        assert_eq!(purged(&out), Vec::<String>::new(), "second gc: {out}");
        check(&clock, &v, "after a second gc");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. gc frees the space of purged points

#[test]
fn gc_frees_the_unique_data_of_purged_points() {
    const N: usize = 6;
    const UNIQUE: usize = 3 * MIB;
    for mounted in [false, true] {
        let f = Fixture::new();
        let t0 = ts("2030-07-01T00:00:00Z");
        let clock = Clock::new(&f.root, t0);
        let v = f.vault.clone();
        let shared = noise(MIB, 4242);
        let srcs: Vec<PathBuf> = (0..N)
            .map(|i| {
                let p = f.dir(&format!("src{i}"));
                fs::write(p.join("unique.bin"), noise(UNIQUE, 1000 + i as u64)).unwrap();
                fs::write(p.join("shared.bin"), &shared).unwrap();
                p
            })
            .collect();
        let pts: Vec<String> = (0..N)
            .map(|i| backup_at(&clock, &v, ITEM, &srcs[i], t0 + i as i64 * HOUR))
            .collect();
        let packs = v.join("packs");
        assert!(
            dir_bytes(&packs) >= (N * UNIQUE) as u64,
            "incompressible data should take its size: {}",
            dir_bytes(&packs)
        );
        // Delete half: the oldest, one in the middle and the newest.
        let gone = [0usize, 3, 5];
        clock.set(t0 + DAY);
        for &i in &gone {
            clock.ok(&["delete", s(&v), &format!("{ITEM}/{}", pts[i])]);
        }
        clock.set(t0 + DAY + 14 * DAY + HOUR);
        // Mounted after the clock moved: the daemon's own daily gc is not due during the test.
        let m = mounted.then(|| mount(&clock, &v, &f.mnt));
        let mut want_purged: Vec<String> =
            gone.iter().map(|&i| format!("{ITEM}/{}", pts[i])).collect();
        want_purged.sort();
        let before = dir_bytes(&packs);
        let dry = clock.ok(&["gc", s(&v), "--dry-run"]);
        for p in &want_purged {
            assert!(dry.contains(&format!("would purge {p}")), "dry run: {dry}");
        }
        assert_eq!(dir_bytes(&packs), before, "a dry run changed the packs");
        let out = clock.ok(&["gc", s(&v)]);
        assert_eq!(purged(&out), want_purged, "gc output: {out}");
        let after = dir_bytes(&packs);
        let unique_gone = (gone.len() * UNIQUE) as u64;
        let freed = before.saturating_sub(after);
        eprintln!(
            "gc (mounted: {mounted}): packs {before} -> {after}, freed {freed} of {unique_gone}"
        );
        assert!(
            freed * 10 >= unique_gone * 7,
            "gc freed {freed} bytes, expected at least 70% of the {unique_gone} unique bytes \
             of the purged points (packs {before} -> {after}); gc said: {out}"
        );
        let kept_data = ((N - gone.len()) * UNIQUE + MIB) as u64;
        assert!(
            after >= kept_data,
            "packs hold {after} bytes, less than the {kept_data} bytes of live data"
        );
        if let Some(m) = &m {
            for i in (0..N).filter(|i| !gone.contains(i)) {
                let p = m.path(&format!("points/{ITEM}/{}", pts[i]));
                assert_same_tree(&srcs[i], &p);
            }
        }
        drop(m);
        let out = clock.ok(&["gc", s(&v)]);
        assert_eq!(purged(&out), Vec::<String>::new(), "second gc: {out}");
        assert!(points(&clock, &v, ITEM, true).is_empty());
        check(&clock, &v, "after gc");
        for i in (0..N).filter(|i| !gone.contains(i)) {
            restores_as(&clock, &v, &f.root, &format!("{ITEM}/{}", pts[i]), &srcs[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. always-on soft delete

#[test]
fn always_on_soft_delete_cannot_be_weakened() {
    for mounted in [false, true] {
        let f = Fixture::new();
        let t0 = ts("2030-08-01T00:00:00Z");
        let clock = Clock::new(&f.root, t0);
        let v = f.vault.clone();
        let vs = s(&v);
        let src = f.dir("src");
        make_small_tree(&src, 5);
        let p1 = backup_at(&clock, &v, ITEM, &src, t0);
        let _p2 = backup_at(&clock, &v, ITEM, &src, t0 + MINUTE);
        let m = mounted.then(|| mount(&clock, &v, &f.mnt));
        let settings = || clock.ok(&["settings", vs]).trim().to_string();
        assert_eq!(settings(), "soft delete: 14 days");
        let out = clock.ok(&["settings", vs, "--soft-delete", "always-on"]);
        assert_eq!(out.trim(), "soft delete: 14 days, always-on");
        assert_eq!(settings(), "soft delete: 14 days, always-on");

        let refused: &[&[&str]] = &[
            &["--soft-delete-days", "13"],
            &["--soft-delete-days", "1"],
            &["--soft-delete-days", "0"],
            &["--soft-delete", "off"],
            &["--soft-delete", "off", "--soft-delete-days", "0"],
            &["--soft-delete-days", "7", "--soft-delete", "always-on"],
        ];
        for extra in refused {
            let mut args = vec!["settings", vs];
            args.extend_from_slice(extra);
            clock.refused(&args);
            assert_eq!(
                settings(),
                "soft delete: 14 days, always-on",
                "after refused {extra:?}"
            );
        }
        let out = clock.ok(&["settings", vs, "--soft-delete-days", "30"]);
        assert_eq!(out.trim(), "soft delete: 30 days, always-on");
        for extra in [
            &["--soft-delete-days", "29"][..],
            &["--soft-delete-days", "14"],
        ] {
            let mut args = vec!["settings", vs];
            args.extend_from_slice(extra);
            clock.refused(&args);
        }
        assert_eq!(settings(), "soft delete: 30 days, always-on");

        // A deleted point waits out the full (raised) period; gc cannot cut it short.
        let deleted_at = t0 + HOUR;
        clock.set(deleted_at);
        let victim = format!("{ITEM}/{p1}");
        clock.ok(&["delete", vs, &victim]);
        let purge = deleted_at + 30 * DAY;
        let dead = points(&clock, &v, ITEM, true);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].purge_at.as_deref(), Some(disp(purge).as_str()));
        clock.refused(&["gc", vs, "--expire-now"]);
        for at in [deleted_at + DAY, deleted_at + 14 * DAY + HOUR, purge - SEC] {
            clock.set(at);
            if mounted {
                // Give the daemon's daily gc (due after a day of vault time) its chance too.
                wait_for_scheduler(&v);
            }
            let out = clock.ok(&["gc", vs]);
            assert_eq!(
                purged(&out),
                Vec::<String>::new(),
                "gc at {}: {out}",
                disp(at)
            );
            assert_eq!(
                names(&points(&clock, &v, ITEM, true)),
                vec![p1.clone()],
                "at {}",
                disp(at)
            );
        }
        restores_as(&clock, &v, &f.root, &victim, &src);
        clock.set(purge + SEC);
        let out = clock.ok(&["gc", vs]);
        if mounted {
            // The daemon's daily gc may have purged it first.
            assert!(
                purged(&out).is_empty() || purged(&out) == vec![victim.clone()],
                "gc past the purge time: {out}"
            );
        } else {
            assert_eq!(
                purged(&out),
                vec![victim.clone()],
                "gc past the purge time: {out}"
            );
        }
        assert!(
            points(&clock, &v, ITEM, true).is_empty(),
            "{victim} not purged after its purge time"
        );
        drop(m);
        assert_eq!(settings(), "soft delete: 30 days, always-on");
        check(&clock, &v, "after the always-on checks");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. kill -9 of gc at several moments

#[test]
fn kill_9_of_gc_leaves_a_sound_vault() {
    // Small chunks and small packs: many blobs and packs for gc to go through.
    let f = Fixture::with_init(|p| {
        init_vault_with(p, &["--pack-size-mib", "1", "--chunk-avg", "16384"])
    });
    let t0 = ts("2030-09-01T00:00:00Z");
    let clock = Clock::new(&f.root, t0);
    let base = f.vault.clone();
    // A: 48 files; B: every third of them and new ones; C: new files only. Purging A and C
    // leaves packs with a third of their data live (rewritten) and packs with none (deleted).
    let a = f.root.join("a");
    noise_tree(&a, 48, 1_000_000, 1);
    let b = f.root.join("b");
    fs::create_dir(&b).unwrap();
    for i in (0..48).step_by(3) {
        fs::copy(
            a.join(format!("f{i:03}.bin")),
            b.join(format!("f{i:03}.bin")),
        )
        .unwrap();
    }
    noise_tree(&b.join("new"), 6, 300_000, 500);
    let c = f.root.join("c");
    noise_tree(&c, 10, 500_000, 900);
    let pa = backup_at(&clock, &base, ITEM, &a, t0);
    let pb = backup_at(&clock, &base, ITEM, &b, t0 + HOUR);
    let pc = backup_at(&clock, &base, ITEM, &c, t0 + 2 * HOUR);
    clock.set(t0 + 3 * HOUR);
    for p in [&pa, &pc] {
        clock.ok(&["delete", s(&base), &format!("{ITEM}/{p}")]);
    }
    // Another item with data of its own, untouched by the purge.
    let d = f.root.join("d");
    noise_tree(&d, 5, 200_000, 1300);
    let pd = backup_at(&clock, &base, "other", &d, t0 + 4 * HOUR);
    let expire = t0 + 3 * HOUR + 14 * DAY + HOUR;
    clock.set(expire);
    let packs_before = dir_bytes(&base.join("packs"));

    // How long an uninterrupted gc takes, on a copy.
    let probe = f.root.join("probe");
    copy_tree(&base, &probe);
    let t = Instant::now();
    let out = clock.ok(&["gc", s(&probe)]);
    let full = t.elapsed();
    eprintln!("full gc: {full:.1?}: {}", out.trim());
    let mut want_purged = vec![format!("{ITEM}/{pa}"), format!("{ITEM}/{pc}")];
    want_purged.sort();
    assert_eq!(purged(&out), want_purged);
    let probe_after = dir_bytes(&probe.join("packs"));
    assert!(probe_after < packs_before, "gc freed nothing: {out}");

    // Kill at fixed moments and at fractions of the measured run.
    let mut delays: Vec<Duration> = [0u64, 20, 50, 100, 200].map(Duration::from_millis).to_vec();
    delays.extend([0.1, 0.25, 0.4, 0.55, 0.7, 0.85].map(|x| full.mul_f64(x)));
    let live = [(ITEM, &pb, &b), ("other", &pd, &d)];
    let mut interrupted = 0;
    let mut leaks = Vec::new();
    for (n, delay) in delays.into_iter().enumerate() {
        let v = f.root.join(format!("v{n}"));
        copy_tree(&base, &v);
        let mut child = clock
            .cmd(&["gc", s(&v)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gc");
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        if finished {
            assert!(status.success(), "gc failed on its own: {err}");
        } else {
            interrupted += 1;
        }
        let when = format!("after gc was killed at {delay:.1?}");
        check(&clock, &v, &when);
        for (item, p, src) in live {
            restores_as(&clock, &v, &f.root, &format!("{item}/{p}"), src);
        }
        // Whatever was not purged yet is still listed as deleted, and a new gc finishes the job.
        let dead = names(&points(&clock, &v, ITEM, true));
        assert!(
            dead.iter().all(|d| d == &pa || d == &pc),
            "{when}: unexpected deleted points {dead:?}"
        );
        let out = clock.ok(&["gc", s(&v)]);
        eprintln!(
            "gc killed at {delay:.1?} (had finished: {finished}); {} left deleted; then: {}",
            dead.len(),
            out.lines().last().unwrap_or_default()
        );
        let mut all_purged = purged(&out);
        all_purged.extend(
            want_purged
                .iter()
                .filter(|p| !dead.iter().any(|d| p.ends_with(d.as_str())))
                .cloned(),
        );
        all_purged.sort();
        assert_eq!(all_purged, want_purged, "{when}: the second gc: {out}");
        assert!(points(&clock, &v, ITEM, true).is_empty(), "{when}");
        check(&clock, &v, &format!("{when} and a full gc"));
        for (item, p, src) in live {
            restores_as(&clock, &v, &f.root, &format!("{item}/{p}"), src);
        }
        let size = dir_bytes(&v.join("packs"));
        if size > probe_after + MIB as u64 {
            leaks.push(format!("killed at {delay:.1?}: {size} bytes"));
        }
        fs::remove_dir_all(&v).unwrap();
    }
    assert!(
        interrupted >= 4,
        "only {interrupted} kills landed before gc finished (a full gc takes {full:.1?})"
    );
    // A crash may cost the work done, not space for good: the next gc cleans up after it.
    assert!(
        leaks.is_empty(),
        "packs after a killed gc and a full gc hold more than the {probe_after} bytes an \
         uninterrupted gc leaves (space lost to the crash): {leaks:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. gc while an rsync into incoming and a reader of a point are active

#[test]
fn gc_runs_alongside_rsync_into_incoming_and_a_reader() {
    let f = Fixture::with_init(|p| {
        init_vault_with(p, &["--pack-size-mib", "1", "--chunk-avg", "65536"])
    });
    let t0 = ts("2030-10-01T00:00:00Z");
    let clock = Clock::new(&f.root, t0);
    let v = f.vault.clone();
    // M: 30 files; R: every third of them (its data lives in M's packs). Deleting M makes gc
    // rewrite the packs R reads from while the reader reads.
    let msrc = f.root.join("m");
    noise_tree(&msrc, 30, 400_000, 7000);
    let rsrc = f.root.join("r");
    fs::create_dir(&rsrc).unwrap();
    for i in (0..30).step_by(3) {
        fs::copy(
            msrc.join(format!("f{i:03}.bin")),
            rsrc.join(format!("f{i:03}.bin")),
        )
        .unwrap();
    }
    let pm = backup_at(&clock, &v, ITEM, &msrc, t0);
    let pr = backup_at(&clock, &v, ITEM, &rsrc, t0 + HOUR);
    clock.set(t0 + 2 * HOUR);
    clock.ok(&["delete", s(&v), &format!("{ITEM}/{pm}")]);
    let new_src = f.root.join("new");
    noise_tree(&new_src.join("big"), 12, 1_000_000, 9000);
    make_small_tree(&new_src.join("small"), 77);
    sh(&format!(
        "find '{}' -mindepth 1 -exec touch -h -d '2005-01-02 03:04:05' {{}} +",
        s(&new_src)
    ));
    clock.set(t0 + 2 * HOUR + 15 * DAY);

    // A small daemon cache, so the reader's reads go to the packs gc rewrites.
    let m = mount_with(&clock, &v, &f.mnt, &["--cache-size", "1M"]);
    let inc = m.path("incoming/new");
    fs::create_dir(&inc).unwrap();
    let want: Vec<(String, Vec<u8>)> = (0..30)
        .step_by(3)
        .map(|i| {
            let n = format!("f{i:03}.bin");
            let data = fs::read(rsrc.join(&n)).unwrap();
            (n, data)
        })
        .collect();
    let rdir = m.path(&format!("points/{ITEM}/{pr}"));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let rdir = rdir.clone();
        std::thread::spawn(move || -> Result<usize, String> {
            let mut rounds = 0;
            loop {
                for (n, data) in &want {
                    let got = read_uncached(&rdir.join(n)).map_err(|e| format!("read {n}: {e}"))?;
                    if got != *data {
                        return Err(format!("{n}: content differs in round {rounds}"));
                    }
                }
                rounds += 1;
                if stop.load(Ordering::Relaxed) && rounds >= 2 {
                    return Ok(rounds);
                }
            }
        })
    };
    let rsync_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (src, dst, done) = (new_src.clone(), inc.clone(), rsync_done.clone());
        std::thread::spawn(move || {
            let out = Command::new("rsync")
                // Slowed down so that it runs for a while (about 1.5 s) next to gc.
                .args(["-aHX", "--delete", "--bwlimit=8000"])
                .arg(format!("{}/", s(&src)))
                .arg(format!("{}/", s(&dst)))
                .output()
                .expect("run rsync");
            done.store(true, Ordering::Relaxed);
            out
        })
    };
    // gc, again and again while rsync runs (at least twice), from when it starts writing.
    let writing = wait_until(Duration::from_secs(60), || {
        rsync_done.load(Ordering::Relaxed)
            || fs::read_dir(&inc).is_ok_and(|mut d| d.next().is_some())
    });
    assert!(writing, "rsync did not start");
    assert!(
        !rsync_done.load(Ordering::Relaxed),
        "rsync finished before gc started; the test did not overlap them"
    );
    let mut gcs = Vec::new();
    while gcs.len() < 2 || !rsync_done.load(Ordering::Relaxed) {
        let t = Instant::now();
        let out = clock.ok(&["gc", s(&v)]);
        gcs.push((out, t.elapsed(), rsync_done.load(Ordering::Relaxed)));
        assert!(gcs.len() < 500, "rsync does not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rsync_out = writer.join().unwrap();
    assert!(
        rsync_out.status.success(),
        "rsync into incoming failed: {}",
        String::from_utf8_lossy(&rsync_out.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    let rounds = reader
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("reader: {e}"));
    eprintln!(
        "{} gcs (first {:.1?}), reader rounds {rounds}",
        gcs.len(),
        gcs[0].1
    );
    assert_eq!(
        purged(&gcs[0].0),
        vec![format!("{ITEM}/{pm}")],
        "first gc: {}",
        gcs[0].0
    );
    for g in &gcs[1..] {
        assert_eq!(purged(&g.0), Vec::<String>::new(), "later gc: {}", g.0);
    }
    let out = clock.ok(&["snapshot", s(&f.mnt), "new"]);
    let pn = out
        .trim()
        .strip_prefix("created point new/")
        .unwrap_or_else(|| panic!("snapshot output: {out}"))
        .to_string();
    assert_same_tree(&new_src, &m.path(&format!("points/new/{pn}")));
    assert_same_tree(&rsrc, &rdir);
    drop(m);
    check(&clock, &v, "after gc alongside rsync and a reader");
    restores_as(&clock, &v, &f.root, &format!("new/{pn}"), &new_src);
    restores_as(&clock, &v, &f.root, &format!("{ITEM}/{pr}"), &rsrc);
}

/// Issue 4: data written to incoming and deleted before any snapshot does not stay in the
/// vault: once the daemon saved incoming without it, `gc` reclaims its space, and what is still
/// in incoming (and every point) stays intact.
#[test]
fn gc_reclaims_incoming_data_deleted_before_any_snapshot() {
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let (vault, mnt) = (root.join("vault"), root.join("mnt"));
    fs::create_dir(&mnt).unwrap();
    let clock = Clock::new(&root, ts("2027-03-01T10:00:00Z"));
    init_vault(&vault);
    let m = mount(&clock, &vault, &mnt);
    let inc = mnt.join("incoming").join(ITEM);
    fs::create_dir(&inc).unwrap();
    let keep = noise(2 * MIB, 41);
    fs::write(inc.join("keep.bin"), &keep).unwrap();
    clock.ok(&["snapshot", s(&vault), ITEM]);
    // 8 MiB of incompressible data, stored (fsync makes it durable), then deleted.
    let junk = inc.join("junk.bin");
    fs::write(&junk, noise(8 * MIB, 42)).unwrap();
    fs::File::open(&junk).unwrap().sync_all().unwrap();
    let packs = vault.join("packs");
    let with_junk = dir_bytes(&packs);
    fs::remove_file(&junk).unwrap();
    // The directory is saved without it (fsyncdir saves incoming).
    fs::File::open(&inc).unwrap().sync_all().unwrap();
    let out = clock.ok(&["gc", s(&vault)]);
    let after = dir_bytes(&packs);
    assert!(
        with_junk - after >= 7 * MIB as u64,
        "gc freed only {} bytes of 8 MiB deleted from incoming ({with_junk} -> {after}): {out}",
        with_junk.saturating_sub(after)
    );
    assert_eq!(fs::read(inc.join("keep.bin")).unwrap(), keep);
    assert_eq!(
        fs::read(mnt.join("points").join(ITEM).join("latest/keep.bin")).unwrap(),
        keep
    );
    drop(m);
    check(&clock, &vault, "after gc of deleted incoming data");
}

/// The secondary's record of the daemon's scheduled replications (`replication.json` in the
/// vault): (last started, last succeeded), vault clock.
fn replication_runs(vault: &Path) -> (Option<i64>, Option<i64>) {
    let Ok(text) = fs::read(vault.join("replication.json")) else {
        return (None, None);
    };
    let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
    (doc["last_started_ns"].as_i64(), doc["last_ok_ns"].as_i64())
}

/// `settings --replicate-to DIR --replicate-every "every 6h"`: the mount daemon replicates at
/// once (never replicated yet), then not again until 6 hours of vault time have passed since
/// the last run, then again; the secondary ends with every point and passes a full check.
#[test]
fn the_daemon_replicates_on_its_schedule() {
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let (vault, mnt, sec) = (root.join("vault"), root.join("mnt"), root.join("secondary"));
    fs::create_dir(&mnt).unwrap();
    let t0 = ts("2027-04-01T00:00:00Z");
    let clock = Clock::new(&root, t0);
    init_vault(&vault);
    let src = root.join("src");
    noise_tree(&src, 4, 64 * 1024, 70);
    backup_at(&clock, &vault, ITEM, &src, t0);
    clock.ok(&[
        "settings",
        s(&vault),
        "--replicate-to",
        s(&sec),
        "--replicate-every",
        "every 6h",
    ]);
    assert_eq!(replication_runs(&vault), (None, None));

    let m = mount(&clock, &vault, &mnt);
    let replicated_at = |t: i64, when: &str| {
        assert!(
            wait_until(Duration::from_secs(60), || replication_runs(&vault).1
                == Some(t)),
            "no scheduled replication {when}: {:?}\n{}",
            replication_runs(&vault),
            m.log_tail()
        );
    };
    // Never replicated: due at once.
    replicated_at(t0, "at mount");
    // A new point one hour later: not due yet, so not replicated.
    let inc = mnt.join("incoming").join(ITEM);
    fs::create_dir_all(&inc).unwrap();
    fs::write(inc.join("new.bin"), noise(100_000, 71)).unwrap();
    clock.set(t0 + HOUR);
    clock.ok(&["snapshot", s(&vault), ITEM]);
    wait_for_scheduler(&vault);
    assert_eq!(replication_runs(&vault), (Some(t0), Some(t0)));
    // Six hours after the last run: due again.
    let t1 = t0 + 6 * HOUR;
    clock.set(t1);
    replicated_at(t1, "6 h after the last");
    drop(m);
    let status = clock.ok(&["replicate", s(&vault), "--status", "--json"]);
    assert_eq!(replica_lags(&status), vec![(ITEM.to_string(), Some(0), 0)]);
    let out = clock.ok(&["check", "--replica", "--read-data", s(&sec)]);
    assert!(out.contains(": 0 errors"), "{out}");
}
