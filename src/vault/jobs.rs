//! Jobs: every backup, snapshot, restore, check, gc and replication leaves a record of who
//! started it, when, how it ended and its figures, so an operator sees what the vault did
//! without a wrapper script (issue 15, DESIGN §15).
//!
//! Records are sealed values in the index database's `jobs` tree, keyed by id (u64 big-endian).
//! A job costs two small inserts (one at start, one at the end) and no flush of its own: the
//! database's own flushes carry them. The tree keeps the newest [`JOBS_MAX`] jobs: starting
//! job N drops job N − `JOBS_MAX`. A running job's figures live in memory ([`Progress`]);
//! a record still "in progress" that no job of this process owns was cut short (a crash or a
//! kill) and is shown as cancelled.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use crate::format::{JobFigures, JobKind, JobRecord, JobStatus};
use crate::store::Damaged;
use crate::store::codec::Codec;
use crate::store::index::Db;

use super::alerts::{AlertKind, Cause};
use super::backup::Progress;
use super::oplog::OpLog;
use super::{Result, Vault, VaultError, now_ns};

pub const JOBS_TREE: &str = "jobs";
/// Jobs kept; older ones are dropped.
pub const JOBS_MAX: u64 = 1000;
const JOB_AAD: &[u8] = b"vaultfs catalog job";
/// `started_by` of the mount daemon's scheduled work.
pub const SCHEDULER: &str = "scheduler";
/// The error shown for a job whose process ended before it did.
pub const INTERRUPTED: &str = "interrupted: the process running it ended first";

/// The vault's job log and its running jobs.
pub struct Jobs {
    log: OpLog,
    /// Running jobs of this process, with their live figures.
    active: Mutex<Vec<(u64, Arc<Progress>)>>,
}

/// A running job; [`Job::finish`] records its end (dropped unfinished: cancelled).
pub struct Job<'a> {
    vault: &'a Vault,
    rec: JobRecord,
    pub progress: Arc<Progress>,
    done: bool,
    /// A failure meant damaged data (`check`).
    corrupt: bool,
    /// Time spent recording (shown at debug level: scripts/bench-jobs.sh and DESIGN §15).
    cost: std::time::Duration,
}

/// How a job ended.
#[derive(Debug, Default)]
pub struct JobEnd {
    pub figures: JobFigures,
    pub warnings: u64,
    pub summary: Option<String>,
}

impl Jobs {
    pub fn new(db: Db) -> Jobs {
        Jobs {
            log: OpLog::new(db, JOBS_TREE, JOB_AAD, "job record", JOBS_MAX),
            active: Mutex::new(Vec::new()),
        }
    }

    /// Every job kept, oldest first, running ones with their live figures.
    pub fn list(&self, codec: &Codec) -> Result<Vec<JobRecord>> {
        let active = self.active.lock().expect("jobs lock").clone();
        let mut out = Vec::new();
        for (id, mut rec) in self.log.list::<JobRecord>(codec)? {
            if rec.id != id {
                return Err(VaultError::corrupt(
                    Damaged::Record("job record"),
                    "is stored under another job's id",
                ));
            }
            if rec.status == JobStatus::InProgress {
                match active.iter().find(|(a, _)| *a == id) {
                    Some((_, p)) => {
                        rec.figures.files = p.files.load(Ordering::Relaxed);
                        rec.figures.bytes_read = p.bytes_read.load(Ordering::Relaxed);
                    }
                    None => {
                        rec.status = JobStatus::Cancelled;
                        rec.error = Some(INTERRUPTED.into());
                    }
                }
            }
            out.push(rec);
        }
        Ok(out)
    }
}

impl Vault {
    /// Start a job of `kind` (on `item`), started by `started_by` (`uid N`, `scheduler`).
    /// Recording never fails the work: a record that cannot be written is logged.
    pub fn job(&self, kind: JobKind, item: Option<&str>, started_by: &str) -> Job<'_> {
        let mut rec = JobRecord {
            id: 0,
            kind,
            item: item.map(str::to_string),
            started_by: started_by.to_string(),
            start_ns: now_ns(),
            end_ns: None,
            status: JobStatus::InProgress,
            figures: JobFigures::default(),
            warnings: 0,
            error: None,
            summary: None,
        };
        let jobs = self.jobs();
        if bench_without_jobs() {
            return Job {
                vault: self,
                rec,
                progress: Arc::new(Progress::default()),
                done: true,
                corrupt: false,
                cost: std::time::Duration::ZERO,
            };
        }
        let started = std::time::Instant::now();
        match jobs.log.append(self.store().codec(), |id| {
            rec.id = id;
            rec.clone()
        }) {
            Ok(id) => rec.id = id,
            Err(e) => {
                rec.id = 0;
                tracing::warn!("cannot record the start of a {kind:?} job: {}", e.for_log());
            }
        }
        let progress = Arc::new(Progress::default());
        if rec.id != 0 {
            let mut active = jobs.active.lock().expect("jobs lock");
            active.push((rec.id, progress.clone()));
        }
        Job {
            vault: self,
            rec,
            progress,
            done: false,
            corrupt: false,
            cost: started.elapsed(),
        }
    }

    /// Every job kept, oldest first.
    pub fn jobs_list(&self) -> Result<Vec<JobRecord>> {
        self.jobs().list(self.store().codec())
    }
}

/// The cause of the alert for damaged data.
pub const CORRUPTION: &str = "corruption";

/// A kind's name as `jobs --json` shows it.
pub fn kind_name(k: JobKind) -> &'static str {
    match k {
        JobKind::Backup => "backup",
        JobKind::Snapshot => "snapshot",
        JobKind::Restore => "restore",
        JobKind::Check => "check",
        JobKind::Gc => "gc",
        JobKind::Replicate => "replicate",
    }
}

impl super::gc::GcReport {
    /// The figures of a gc job (by hand or the daemon's daily one).
    pub fn figures(&self) -> JobFigures {
        JobFigures {
            files: self.purged.len() as u64,
            bytes_total: self.bytes_after,
            bytes_removed: self.bytes_before.saturating_sub(self.bytes_after),
            ..JobFigures::default()
        }
    }
}

impl super::replicate::ReplicateReport {
    /// The end of a replication job: packs copied and their bytes.
    pub fn job_end(&self, summary: String) -> JobEnd {
        JobEnd {
            figures: JobFigures {
                files: self.packs_copied,
                bytes_added: self.bytes_copied,
                bytes_removed: 0,
                ..JobFigures::default()
            },
            warnings: 0,
            summary: Some(summary),
        }
    }
}

/// `VAULTFS_BENCH_NO_JOBS` (test-hooks builds only): record no job and raise or clear no
/// alert, so scripts/bench.sh can measure what recording costs with one binary.
fn bench_without_jobs() -> bool {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("VAULTFS_BENCH_NO_JOBS").is_some() {
        return true;
    }
    false
}

impl Job<'_> {
    pub fn id(&self) -> u64 {
        self.rec.id
    }

    /// Record the end: completed (with warnings when `end.warnings` > 0).
    pub fn complete(self, end: JobEnd) -> JobRecord {
        let status = if end.warnings > 0 {
            JobStatus::CompletedWithWarnings
        } else {
            JobStatus::Completed
        };
        self.end(status, end, None)
    }

    /// Record a failure with its error (and raise its alert).
    pub fn fail(self, end: JobEnd, error: &str) -> JobRecord {
        self.end(JobStatus::Failed, end, Some(error.to_string()))
    }

    /// Record a check that met damaged data: failed, with a corruption alert rather than a
    /// failed-job one.
    pub fn fail_corrupt(mut self, end: JobEnd, error: &str) -> JobRecord {
        self.corrupt = true;
        self.end(JobStatus::Failed, end, Some(error.to_string()))
    }

    /// Record the outcome of `result`: its figures by `figures` when it is `Ok`.
    pub fn finish<T, E: std::fmt::Display>(
        self,
        result: &std::result::Result<T, E>,
        figures: impl FnOnce(&T) -> JobEnd,
    ) -> JobRecord {
        match result {
            Ok(v) => self.complete(figures(v)),
            Err(e) => self.fail(JobEnd::default(), &e.to_string()),
        }
    }

    fn end(mut self, status: JobStatus, end: JobEnd, error: Option<String>) -> JobRecord {
        if self.done {
            return self.rec.clone(); // not recorded (bench_without_jobs)
        }
        self.done = true;
        let started = std::time::Instant::now();
        self.rec.status = status;
        self.rec.end_ns = Some(now_ns());
        self.rec.figures = end.figures;
        self.rec.warnings = end.warnings;
        self.rec.summary = end.summary;
        self.rec.error = error;
        self.record();
        self.alert();
        tracing::debug!(
            "job {} recorded in {} µs (start and end, with its alerts)",
            self.rec.id,
            (self.cost + started.elapsed()).as_micros()
        );
        self.rec.clone()
    }

    /// A failure raises an alert for its cause (kind and item); a success clears it, and a
    /// new point clears its item's missed schedule.
    fn alert(&self) {
        let r = &self.rec;
        let kind = kind_name(r.kind);
        let cause = format!("job_failed/{kind}/{}", r.item.as_deref().unwrap_or("-"));
        let v = self.vault;
        if r.status != JobStatus::Failed {
            v.clear(&cause);
            match (r.kind, &r.item) {
                (JobKind::Check, _) => v.clear(CORRUPTION),
                (JobKind::Backup | JobKind::Snapshot, Some(item)) => {
                    v.clear(&format!("missed_schedule/{item}"))
                }
                _ => {}
            }
            return;
        }
        let error = r.error.as_deref().unwrap_or("failed");
        let of = r
            .item
            .as_deref()
            .map(|i| format!(" of {i}"))
            .unwrap_or_default();
        v.raise(Cause {
            kind: if self.corrupt {
                AlertKind::Corruption
            } else {
                AlertKind::JobFailed
            },
            cause: if self.corrupt {
                CORRUPTION.into()
            } else {
                cause
            },
            item: r.item.as_deref(),
            message: format!("{kind} job {}{of} failed: {error}", r.id),
            job: Some(r.id),
        });
    }

    fn record(&self) {
        if self.rec.id == 0 {
            return;
        }
        let jobs = self.vault.jobs();
        if let Err(e) = jobs
            .log
            .put(self.vault.store().codec(), self.rec.id, &self.rec)
        {
            tracing::warn!("cannot record job {}: {}", self.rec.id, e.for_log());
        }
        let mut active = jobs.active.lock().expect("jobs lock");
        active.retain(|(id, _)| *id != self.rec.id);
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rec.status = JobStatus::Cancelled;
            self.rec.end_ns = Some(now_ns());
            self.rec.error = Some(INTERRUPTED.into());
            self.record();
        }
    }
}
