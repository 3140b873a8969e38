//! Alerts: the vault raises them itself (a failed job, a missed schedule, corruption met by
//! `check`, low space, protection weakened), keeps each until its cause is gone or someone
//! acknowledges it, and hands each new one to the alert command (DESIGN §15).
//!
//! One alert per cause: raising a cause that already has an alert not yet cleared does
//! nothing, so a backup failing every hour is one alert, and one run of the command, until a
//! backup of that item succeeds again.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::format::{AlertDelivery, AlertKind, AlertRecord, AlertState};
use crate::store::index::Db;

use super::health::item_schedule;
use super::jobs::CORRUPTION;
use super::oplog::OpLog;
use super::{Result, Vault, now_ns, replica_settings};

pub const ALERTS_TREE: &str = "alerts";
/// Alerts kept; older ones are dropped (an active one is never that old in practice: a
/// thousand newer alerts came after it).
pub const ALERTS_MAX: u64 = 1000;
const ALERT_AAD: &[u8] = b"vaultfs catalog alert";
pub const SETTINGS_FILE: &str = "alerting.json";
/// Runs of the alert command per alert, and the pause before each retry.
const ATTEMPTS: u32 = 3;
const BACKOFF: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];
/// An alert command still running after this is killed (the attempt failed).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Low space: less free than this where the vault is, or than a tenth of what the vault
/// stores (room for a few backups that change much), whichever is more.
pub const LOW_SPACE_FLOOR_BYTES: u64 = 1 << 30;

pub struct Alerts {
    log: OpLog,
    /// Serialises raise/clear/ack (a cause's check and its new alert are one step).
    lock: Mutex<()>,
}

impl Alerts {
    pub fn new(db: Db) -> Alerts {
        Alerts {
            log: OpLog::new(db, ALERTS_TREE, ALERT_AAD, "alert record", ALERTS_MAX),
            lock: Mutex::new(()),
        }
    }
}

/// Where alerts are delivered: kept beside the vault like the replication settings (the
/// command belongs to the machine that runs it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    pub command: Option<String>,
}

impl AlertSettings {
    pub fn load(vault: &Vault) -> AlertSettings {
        replica_settings::load_local(vault, SETTINGS_FILE)
    }

    pub fn save(&self, vault: &Vault) -> Result<()> {
        replica_settings::save_local(vault, SETTINGS_FILE, self)
    }
}

/// What raising needs to know about a cause.
pub struct Cause<'a> {
    pub kind: AlertKind,
    pub cause: String,
    pub item: Option<&'a str>,
    pub message: String,
    pub job: Option<u64>,
}

impl Vault {
    /// Every alert kept, oldest first.
    pub fn alerts_list(&self) -> Result<Vec<AlertRecord>> {
        Ok(self
            .alerts()
            .log
            .list::<AlertRecord>(self.store().codec())?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// Raise an alert for `c` unless its cause has one not yet cleared; a new one goes to the
    /// alert command. Returns the new alert. Never fails the caller's work: errors are logged.
    pub fn raise(&self, c: Cause) -> Option<AlertRecord> {
        match self.try_raise(c) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot raise an alert: {}", e.for_log());
                None
            }
        }
    }

    fn try_raise(&self, c: Cause) -> Result<Option<AlertRecord>> {
        let mut rec = {
            let _g = self.alerts().lock.lock().expect("alerts lock");
            if self
                .alerts_list()?
                .iter()
                .any(|a| a.cause == c.cause && a.state != AlertState::Cleared)
            {
                return Ok(None);
            }
            let now = now_ns();
            let mut rec = AlertRecord {
                id: 0,
                kind: c.kind,
                cause: c.cause,
                item: c.item.map(str::to_string),
                message: c.message,
                raised_ns: now,
                state: AlertState::Active,
                changed_ns: now,
                job: c.job,
                deliveries: Vec::new(),
            };
            let codec = self.store().codec();
            rec.id = self
                .alerts()
                .log
                .append(codec, |id| AlertRecord { id, ..rec.clone() })?;
            rec
        };
        tracing::info!("alert {}: {}", rec.id, rec.message);
        if let Some(cmd) = AlertSettings::load(self).command {
            self.deliver(&cmd, &mut rec)?;
        }
        Ok(Some(rec))
    }

    /// Run the alert command with the alert as JSON on stdin, retrying with backoff; every
    /// attempt is recorded in the alert.
    fn deliver(&self, cmd: &str, rec: &mut AlertRecord) -> Result<()> {
        let mut doc = serde_json::to_value(&*rec).expect("an alert serialises");
        doc["vault"] = self.location().display().into();
        let body = doc.to_string();
        for attempt in 1..=ATTEMPTS {
            let (ok, detail) = run_command(cmd, &body);
            rec.deliveries.push(AlertDelivery {
                at_ns: now_ns(),
                attempt,
                ok,
                detail,
            });
            self.alerts().log.put(self.store().codec(), rec.id, rec)?;
            if ok {
                break;
            }
            if let Some(pause) = BACKOFF.get(attempt as usize - 1) {
                std::thread::sleep(*pause);
            }
        }
        Ok(())
    }

    /// Damaged data met by a read through the mount (the read answered EIO): the corruption
    /// alert `check` raises too, so one alert until a check passes. Raised on a thread of its
    /// own, so the EIO is not held up by the alert command; while one is being raised, others
    /// are not started (they would find it and do nothing).
    pub fn raise_read_corruption(self: &Arc<Self>, item: &str, point: &str, why: &str) {
        static RAISING: AtomicBool = AtomicBool::new(false);
        if RAISING.swap(true, Ordering::AcqRel) {
            return;
        }
        let (vault, item) = (self.clone(), item.to_string());
        // No item or file name in the text: it is logged, and the log is plaintext (§12).
        let message = format!(
            "damaged data read through the mount in point {point}: {why} (`vaultfs check` names the files)"
        );
        let spawned = std::thread::Builder::new()
            .name("alert".into())
            .spawn(move || {
                vault.raise(Cause {
                    kind: AlertKind::Corruption,
                    cause: CORRUPTION.into(),
                    item: Some(&item),
                    message,
                    job: None,
                });
                RAISING.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            RAISING.store(false, Ordering::Release);
        }
    }

    /// The cause is gone: its alert (active or acknowledged) is cleared.
    pub fn clear(&self, cause: &str) {
        let r = self.set_state(
            |a| a.cause == cause && a.state != AlertState::Cleared,
            AlertState::Cleared,
        );
        if let Err(e) = r {
            tracing::warn!("cannot clear an alert: {}", e.for_log());
        }
    }

    /// `alerts ack ID`: acknowledged; false when there is no such alert still active.
    pub fn acknowledge(&self, id: u64) -> Result<bool> {
        Ok(self.set_state(
            |a| a.id == id && a.state == AlertState::Active,
            AlertState::Acknowledged,
        )? > 0)
    }

    fn set_state(&self, which: impl Fn(&AlertRecord) -> bool, state: AlertState) -> Result<u64> {
        let _g = self.alerts().lock.lock().expect("alerts lock");
        let mut n = 0;
        for mut a in self.alerts_list()? {
            if which(&a) {
                a.state = state;
                a.changed_ns = now_ns();
                self.alerts().log.put(self.store().codec(), a.id, &a)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Look at the conditions the vault raises alerts for by itself (missed schedules, low
    /// space, soft delete off): raise what holds, clear what no longer does. The daemon does
    /// this every scheduler tick; `alerts` and `status` before they answer.
    pub fn evaluate_alerts(&self) -> Result<()> {
        let now = now_ns();
        for it in self.items()? {
            let cause = format!("missed_schedule/{}", it.name);
            match item_schedule(self, &it.name, now)? {
                Some(s) if s.overdue => {
                    self.raise(Cause {
                        kind: AlertKind::MissedSchedule,
                        cause,
                        item: Some(&it.name),
                        message: format!(
                            "item {}: no point since {} (schedule {}): its recovery point objective is breached",
                            it.name,
                            s.newest.as_deref().unwrap_or("it was protected"),
                            s.schedule
                        ),
                        job: None,
                    });
                }
                _ => self.clear(&cause),
            }
        }
        let low = match self.location() {
            super::Location::Local(_) => {
                let stored = self
                    .store()
                    .backend()
                    .list(crate::store::backend::Kind::Pack)?;
                let stored: u64 = stored.iter().map(|o| o.size).sum();
                crate::view::space::free_bytes(self.dir()).filter(|&f| low_space(f, stored))
            }
            super::Location::S3(_) => None,
        };
        match low {
            Some(free) => {
                self.raise(Cause {
                    kind: AlertKind::LowSpace,
                    cause: "low_space".into(),
                    item: None,
                    message: format!(
                        "low space: {free} bytes free where the vault is (under 1 GiB, or under a tenth of what the vault stores)"
                    ),
                    job: None,
                });
            }
            None => self.clear("low_space"),
        }
        if self.params().soft_delete_days == 0 {
            self.raise(Cause {
                kind: AlertKind::ProtectionWeakened,
                cause: "soft_delete_off".into(),
                item: None,
                message: "soft delete is off: a deleted point can be purged at once".into(),
                job: None,
            });
        } else {
            self.clear("soft_delete_off");
        }
        Ok(())
    }
}

/// Whether `free` bytes are too few for a vault storing `stored` bytes.
pub fn low_space(free: u64, stored: u64) -> bool {
    free < LOW_SPACE_FLOOR_BYTES.max(stored / 10)
}

/// Run `sh -c cmd` with `body` on stdin; (succeeded, what happened).
fn run_command(cmd: &str, body: &str) -> (bool, String) {
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot run: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input still counts by its exit status.
        let _ = stdin.write_all(body.as_bytes());
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status.success(), status.to_string()),
            Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return (
                    false,
                    format!("killed after {} s", COMMAND_TIMEOUT.as_secs()),
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return (false, format!("cannot wait for it: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_space_is_under_a_gib_or_a_tenth_of_the_vault() {
        const GIB: u64 = 1 << 30;
        assert!(low_space(GIB - 1, 0));
        assert!(!low_space(GIB, 0));
        assert!(!low_space(7 * GIB, 50 * GIB));
        assert!(low_space(4 * GIB, 50 * GIB));
    }
}
