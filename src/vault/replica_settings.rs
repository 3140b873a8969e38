//! Which secondary a vault replicates to, and how often the mount daemon does it.
//!
//! Kept in the vault's local directory (`replication.json`: the vault itself, or an S3
//! vault's cache directory), not in the vault's objects: like a cron job, the schedule belongs
//! to the machine that runs the daemon, and the secondary's place holds no secret (the
//! credentials stay in the environment). So it is no change to the vault's format.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::format::Schedule;

use super::jobs::{JobKind, SCHEDULER};
use super::location::{Location, Places};
use super::policy::next_after;
use super::{Result, Vault, VaultError, now_ns, replicate};

pub const SETTINGS_FILE: &str = "replication.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSettings {
    /// The secondary as given: a directory (absolute) or `s3://BUCKET/PREFIX`.
    pub target: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// When the mount daemon replicates (None: only on demand).
    pub schedule: Option<Schedule>,
    /// When a run last started and last succeeded (vault clock), and its last error.
    pub last_started_ns: Option<i64>,
    pub last_ok_ns: Option<i64>,
    pub last_error: Option<String>,
}

impl ReplicaSettings {
    pub fn load(vault: &Vault) -> ReplicaSettings {
        load_local(vault, SETTINGS_FILE)
    }

    pub fn save(&self, vault: &Vault) -> Result<()> {
        save_local(vault, SETTINGS_FILE, self)
    }

    /// Remember `target` (as the user named it) as the vault's secondary.
    pub fn set_target(&mut self, target: &Location) {
        match target {
            Location::Local(dir) => {
                self.target = Some(dir.display().to_string());
                self.endpoint = None;
                self.region = None;
            }
            Location::S3(s3) => {
                self.target = Some(s3.url());
                self.endpoint = Some(s3.endpoint.clone());
                self.region = Some(s3.region.clone());
            }
        }
    }

    /// The remembered secondary, if any.
    pub fn target(&self, cache_root: &Path) -> Result<Option<Location>> {
        let Some(t) = &self.target else {
            return Ok(None);
        };
        let places = Places {
            cache_root: Some(cache_root.to_path_buf()),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
        };
        Location::parse(Path::new(t), Path::new("/"), &places).map(Some)
    }

    /// True when a scheduled run is due at `now`.
    pub fn due(&self, now: i64) -> bool {
        match (self.schedule, &self.target) {
            (Some(s), Some(_)) => next_after(s, self.last_started_ns.unwrap_or(0)) <= now,
            _ => false,
        }
    }
}

/// One scheduled replication at a time per process.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// From the daemon's scheduler: if a run is due, start it on a thread of its own (a long copy
/// must not hold up scheduled snapshots) and return.
pub fn start_if_due(vault: &std::sync::Arc<Vault>, cache_root: &Path) {
    let mut settings = ReplicaSettings::load(vault);
    let now = now_ns();
    if !settings.due(now) || RUNNING.swap(true, Ordering::SeqCst) {
        return;
    }
    settings.last_started_ns = Some(now);
    if let Err(e) = settings.save(vault) {
        tracing::warn!("scheduled replication: {e}");
    }
    let (vault, cache_root) = (vault.clone(), cache_root.to_path_buf());
    let spawned = std::thread::Builder::new()
        .name("replicate".into())
        .spawn(move || {
            let job = vault.job(JobKind::Replicate, None, SCHEDULER);
            let result = settings
                .target(&cache_root)
                .and_then(|t| t.ok_or(VaultError::Internal("no replication target")))
                .and_then(|t| replicate::replicate(&vault, &t, &|_, _| {}));
            job.finish(&result, |r| {
                r.job_end(format!(
                    "scheduled replication: {} packs copied ({} bytes), {} removed",
                    r.packs_copied, r.bytes_copied, r.packs_removed
                ))
            });
            let mut now_settings = ReplicaSettings::load(&vault);
            match result {
                Ok(r) => {
                    tracing::info!(
                        "scheduled replication: {} packs copied ({} bytes), {} removed",
                        r.packs_copied,
                        r.bytes_copied,
                        r.packs_removed
                    );
                    now_settings.last_ok_ns = Some(now_ns());
                    now_settings.last_error = None;
                }
                Err(e) => {
                    tracing::warn!("scheduled replication failed: {e}");
                    now_settings.last_error = Some(e.to_string());
                }
            }
            if let Err(e) = now_settings.save(&vault) {
                tracing::warn!("scheduled replication: {e}");
            }
            RUNNING.store(false, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start scheduled replication: {e}");
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// A JSON settings file in the vault's local directory (`replication.json`, `alerting.json`);
/// missing or unreadable: the defaults.
pub fn load_local<T: serde::de::DeserializeOwned + Default>(vault: &Vault, name: &str) -> T {
    std::fs::read(vault.dir().join(name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Write a settings file of the vault's local directory (write, then rename over it).
pub fn save_local<T: Serialize>(vault: &Vault, name: &str, value: &T) -> Result<()> {
    let path = vault.dir().join(name);
    let tmp = vault.dir().join(format!("{name}.tmp"));
    let text = serde_json::to_vec_pretty(value).expect("settings serialise");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| VaultError::io("write", &path, e))
}
