//! Jobs: every backup, snapshot, restore, check, gc and replication leaves a record of who
//! started it, when, how it ended and its figures, so an operator sees what the vault did
//! without a wrapper script (issue 15, DESIGN §13).
//!
//! Records are sealed values in the index database's `jobs` tree, keyed by id (u64 big-endian).
//! A job costs two small inserts (one at start, one at the end) and no flush of its own: the
//! database's own flushes carry them. The tree keeps the newest [`JOBS_MAX`] jobs: starting
//! job N drops job N − `JOBS_MAX`. A running job's figures live in memory ([`Progress`]);
//! a record still "in progress" that no job of this process owns was cut short (a crash or a
//! kill) and is shown as cancelled.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use crate::format;
pub use crate::format::{JobFigures, JobKind, JobRecord, JobStatus};
use crate::store::Damaged;
use crate::store::codec::Codec;
use crate::store::index::{Db, Tree};

use super::backup::Progress;
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
    db: Db,
    /// Opened at the first job: a vault only read (a dry run) must not gain a tree.
    tree: OnceLock<Tree>,
    /// Running jobs of this process, with their live figures.
    active: Mutex<Vec<(u64, Arc<Progress>)>>,
    /// Serialises id allocation.
    alloc: Mutex<()>,
}

/// A running job; [`Job::finish`] records its end (dropped unfinished: cancelled).
pub struct Job<'a> {
    jobs: &'a Jobs,
    codec: &'a Codec,
    rec: JobRecord,
    pub progress: Arc<Progress>,
    done: bool,
}

/// How a job ended.
#[derive(Debug, Default)]
pub struct JobEnd {
    pub figures: JobFigures,
    pub warnings: u64,
    pub summary: Option<String>,
}

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn aad(id: u64) -> Vec<u8> {
    let mut a = JOB_AAD.to_vec();
    a.extend_from_slice(&key(id));
    a
}

fn damaged(e: impl std::fmt::Display) -> VaultError {
    VaultError::corrupt(Damaged::Record("job record"), format!("is damaged: {e}"))
}

impl Jobs {
    pub fn new(db: Db) -> Jobs {
        Jobs {
            db,
            tree: OnceLock::new(),
            active: Mutex::new(Vec::new()),
            alloc: Mutex::new(()),
        }
    }

    fn tree(&self) -> Result<&Tree> {
        if let Some(t) = self.tree.get() {
            return Ok(t);
        }
        let t = self.db.tree(JOBS_TREE)?;
        Ok(self.tree.get_or_init(|| t))
    }

    fn put(&self, codec: &Codec, rec: &JobRecord) -> Result<()> {
        let v = codec.seal_raw(&format::encode(rec), &aad(rec.id))?;
        self.tree()?.insert(key(rec.id), v)?;
        Ok(())
    }

    /// Write the start record under a fresh id and drop the job that falls out of the window.
    fn begin(&self, codec: &Codec, rec: &mut JobRecord) -> Result<()> {
        let _alloc = self.alloc.lock().expect("job id lock");
        let tree = self.tree()?;
        rec.id = match tree.last()? {
            Some((k, _)) => <[u8; 8]>::try_from(k.as_ref()).map_or(1, u64::from_be_bytes) + 1,
            None => 1,
        };
        self.put(codec, rec)?;
        if rec.id > JOBS_MAX {
            tree.remove(key(rec.id - JOBS_MAX))?;
        }
        Ok(())
    }

    /// Every job kept, oldest first, running ones with their live figures.
    pub fn list(&self, codec: &Codec) -> Result<Vec<JobRecord>> {
        let tree = match self.tree.get() {
            Some(t) => t.clone(),
            None => match self.db.tree_if_exists(JOBS_TREE)? {
                Some(t) => t,
                None => return Ok(Vec::new()),
            },
        };
        let active = self.active.lock().expect("jobs lock").clone();
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(damaged)?;
            let plain = codec.open_raw(&v, &aad(id)).map_err(damaged)?;
            let mut rec: JobRecord = format::decode(&plain, "job record").map_err(damaged)?;
            if rec.id != id {
                return Err(damaged("stored under another job's id"));
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
        let codec = self.store().codec();
        if let Err(e) = jobs.begin(codec, &mut rec) {
            tracing::warn!("cannot record the start of a {kind:?} job: {}", e.for_log());
        }
        let progress = Arc::new(Progress::default());
        if rec.id != 0 {
            let mut active = jobs.active.lock().expect("jobs lock");
            active.push((rec.id, progress.clone()));
        }
        Job {
            jobs,
            codec,
            rec,
            progress,
            done: false,
        }
    }

    /// Every job kept, oldest first.
    pub fn jobs_list(&self) -> Result<Vec<JobRecord>> {
        self.jobs().list(self.store().codec())
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

    /// Record a failure with its error.
    pub fn fail(self, end: JobEnd, error: &str) -> JobRecord {
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
        self.done = true;
        self.rec.status = status;
        self.rec.end_ns = Some(now_ns());
        self.rec.figures = end.figures;
        self.rec.warnings = end.warnings;
        self.rec.summary = end.summary;
        self.rec.error = error;
        self.record();
        self.rec.clone()
    }

    fn record(&self) {
        if self.rec.id == 0 {
            return;
        }
        if let Err(e) = self.jobs.put(self.codec, &self.rec) {
            tracing::warn!("cannot record job {}: {}", self.rec.id, e.for_log());
        }
        let mut active = self.jobs.active.lock().expect("jobs lock");
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
