//! The advisor: what in a vault is unprotected or risky, how bad it is, and the exact command
//! that fixes it, from the vault's health (`vault::health`). DESIGN §15 lists the rules.

use serde::Serialize;

use super::alerts::low_space;
use super::health::Health;
use super::{DAY_NS, Vault};

/// Soft delete shorter than this is advised against (Azure's default).
pub const SOFT_DELETE_DAYS_ADVISED: u32 = 14;
/// A full check (`check --read-data`) older than this is advised against.
pub const FULL_CHECK_MAX_AGE_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub severity: Severity,
    /// A stable name of the condition (`item_without_policy`, ...).
    pub condition: &'static str,
    pub item: Option<String>,
    pub message: String,
    /// The command that fixes it (UPPERCASE words are for the user to fill in).
    pub fix: String,
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:+=@,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The advice for `vault` with health `h`; `shown` is the vault as the user named it.
pub fn advise(vault: &Vault, h: &Health, shown: &str) -> super::Result<Vec<Advice>> {
    let v = shell_quote(shown);
    let mut out = Vec::new();
    let mut add = |severity, condition, item: Option<&str>, message: String, fix: String| {
        out.push(Advice {
            severity,
            condition,
            item: item.map(str::to_string),
            message,
            fix,
        })
    };
    for i in &h.items {
        let it = shell_quote(&i.item);
        if i.schedule.is_none() {
            add(
                Severity::Warning,
                "item_without_policy",
                Some(&i.item),
                format!("item {} has no schedule: nothing makes its points", i.item),
                format!(
                    "vaultfs policy {v} {it} --schedule 'daily 02:00' --keep-daily 7 --keep-weekly 4 --keep-monthly 12"
                ),
            );
        }
        if i.overdue {
            let fix = if vault.incoming(&i.item)?.is_some() {
                format!("vaultfs snapshot {v} {it}")
            } else {
                format!("vaultfs backup {v} {it} SOURCE")
            };
            add(
                Severity::Critical,
                "item_overdue",
                Some(&i.item),
                format!(
                    "item {} is overdue: its newest point is {} old, its schedule is {}",
                    i.item,
                    i.newest_age_seconds
                        .map_or("missing".into(), |s| format!("{} s", s)),
                    i.schedule.as_deref().unwrap_or("-")
                ),
                fix,
            );
        }
    }
    let p = &h.protection;
    let days = SOFT_DELETE_DAYS_ADVISED;
    if p.soft_delete_days == 0 {
        add(
            Severity::Critical,
            "soft_delete_off",
            None,
            "soft delete is off: a deleted point can be purged at once".into(),
            format!("vaultfs settings {v} --soft-delete-days {days}"),
        );
    } else if p.soft_delete_days < days {
        add(
            Severity::Warning,
            "soft_delete_short",
            None,
            format!(
                "soft delete keeps deleted points {} days (advised: {days})",
                p.soft_delete_days
            ),
            format!("vaultfs settings {v} --soft-delete-days {days}"),
        );
    } else if !p.soft_delete_always_on {
        add(
            Severity::Info,
            "soft_delete_not_always_on",
            None,
            "soft delete can be switched off by anyone holding the key".into(),
            format!("vaultfs settings {v} --soft-delete always-on"),
        );
    }
    if p.immutability == "disabled" {
        add(
            Severity::Warning,
            "not_immutable",
            None,
            "the vault is not immutable: whoever holds a key can delete points inside their \
             retention"
                .into(),
            format!("vaultfs settings {v} --immutability enabled"),
        );
    }
    if !p.guard {
        add(
            Severity::Info,
            "no_guard",
            None,
            "no guard: weakening the protection needs no second person's approval".into(),
            format!(
                "vaultfs guard keygen GUARD (by the second person) && vaultfs guard init {v} \
                 --public-key GUARD.pub"
            ),
        );
    }
    if p.key_slots.iter().all(|k| k == "passphrase") {
        add(
            Severity::Info,
            "only_passphrase_slots",
            None,
            "only passphrase key slots: a forgotten passphrase loses the vault".into(),
            format!("vaultfs key add {v} --new-key-file RECOVERY.key --label recovery"),
        );
    }
    if p.replica.is_none() {
        add(
            Severity::Warning,
            "no_replica",
            None,
            "no secondary copy: losing this disk loses every point".into(),
            format!(
                "vaultfs settings {v} --replicate-to SECONDARY --replicate-every 'daily 03:00'"
            ),
        );
    }
    let stale = h
        .last_full_check_ns
        .is_none_or(|t| h.now_ns - t > FULL_CHECK_MAX_AGE_DAYS * DAY_NS);
    if stale && !h.items.is_empty() {
        add(
            Severity::Warning,
            "full_check_too_old",
            None,
            match h.last_full_check_ns {
                None => "no check has read every chunk yet".into(),
                Some(_) => format!(
                    "the last check that read every chunk is over {FULL_CHECK_MAX_AGE_DAYS} days old"
                ),
            },
            format!("vaultfs check {v} --read-data"),
        );
    }
    if let Some(free) = h.space.free_bytes
        && low_space(free, h.space.stored_bytes)
    {
        add(
            Severity::Critical,
            "low_space",
            None,
            format!("{free} bytes free where the vault is: backups will soon fail"),
            format!("vaultfs gc {v}"),
        );
    }
    out.sort_by_key(|a| a.severity);
    Ok(out)
}
