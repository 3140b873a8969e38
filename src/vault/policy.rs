//! Backup policies: when an item is snapshotted (schedule) and which points stay (retention).
//!
//! Retention follows restic's `forget`: points are taken newest first; keep-last keeps the first
//! N; keep-daily (weekly, monthly, yearly) keeps the newest point of each of the last N UTC
//! days (ISO weeks, months, years) that have points; a point kept by any rule stays, and the
//! newest point always stays. Retired points are soft-deleted, never purged directly.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::format::{MetaRecord, PointRecord, PolicyRecord, Retention, Schedule};

use super::{Result, Vault, VaultError, now_ns};

const HOUR_NS: i64 = 3_600 * 1_000_000_000;
const MINUTE_NS: i64 = 60 * 1_000_000_000;
const DAY_NS: i64 = super::DAY_NS;
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parse `hourly`, `every 4h`, `daily 02:00`, `weekly sun 03:00`; `none` is `Ok(None)`.
pub fn parse_schedule(spec: &str) -> Result<Option<Schedule>> {
    let bad = || {
        VaultError::BadSetting(format!(
            "schedule {spec:?}: use hourly, every Nh, daily HH:MM, weekly DAY HH:MM or none"
        ))
    };
    let words: Vec<String> = spec
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let hhmm = |s: &str| -> Result<u32> {
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let words: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
    Ok(Some(match words.as_slice() {
        ["none"] => return Ok(None),
        ["hourly"] => Schedule::EveryHours(1),
        ["every", n] => {
            let h: u32 = n
                .strip_suffix('h')
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?;
            if !(1..=24 * 366).contains(&h) {
                return Err(bad());
            }
            Schedule::EveryHours(h)
        }
        ["daily"] => Schedule::Daily(0),
        ["daily", t] => Schedule::Daily(hhmm(t)?),
        ["weekly", d, t] => {
            let wd = WEEKDAYS
                .iter()
                .position(|w| d.starts_with(w))
                .ok_or_else(bad)?;
            Schedule::Weekly {
                weekday: wd as u8,
                minute: hhmm(t)?,
            }
        }
        _ => return Err(bad()),
    }))
}

pub fn show_schedule(s: &Option<Schedule>) -> String {
    let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    match s {
        None => "none".into(),
        Some(Schedule::EveryHours(1)) => "hourly".into(),
        Some(Schedule::EveryHours(h)) => format!("every {h}h"),
        Some(Schedule::Daily(m)) => format!("daily {} UTC", hm(*m)),
        Some(Schedule::Weekly { weekday, minute }) => {
            format!(
                "weekly {} {} UTC",
                WEEKDAYS[*weekday as usize % 7],
                hm(*minute)
            )
        }
    }
}

/// The first scheduled time strictly after `after_ns`.
pub fn next_after(s: Schedule, after_ns: i64) -> i64 {
    let day_start = after_ns.div_euclid(DAY_NS) * DAY_NS;
    match s {
        Schedule::EveryHours(h) => {
            let step = h.max(1) as i64 * HOUR_NS;
            (after_ns.div_euclid(step) + 1) * step
        }
        Schedule::Daily(m) => {
            let t = day_start + m as i64 * MINUTE_NS;
            if t > after_ns { t } else { t + DAY_NS }
        }
        Schedule::Weekly { weekday, minute } => {
            // 1970-01-01 was a Thursday (Monday-zero offset 3).
            let today = (after_ns.div_euclid(DAY_NS) + 3).rem_euclid(7);
            let monday = day_start - today * DAY_NS;
            let t = monday + weekday as i64 * DAY_NS + minute as i64 * MINUTE_NS;
            if t > after_ns { t } else { t + 7 * DAY_NS }
        }
    }
}

/// Calendar buckets of a time, UTC: (day, ISO week, month, year).
fn buckets(ns: i64) -> (i64, (i16, i8), (i16, i8), i16) {
    let ts = Timestamp::from_nanosecond(ns as i128).unwrap_or(Timestamp::UNIX_EPOCH);
    let date = TimeZone::UTC.to_datetime(ts).date();
    let week = date.iso_week_date();
    (
        ns.div_euclid(DAY_NS),
        (week.year(), week.week()),
        (date.year(), date.month()),
        date.year(),
    )
}

/// Names of the points `keep` retires, given every live point of one item.
pub fn retire(points: &[PointRecord], keep: &Retention) -> Vec<String> {
    if *keep == Retention::default() || points.is_empty() {
        return Vec::new();
    }
    let mut newest_first: Vec<&PointRecord> = points.iter().collect();
    newest_first.sort_by(|a, b| {
        (b.created_ns, b.name.len(), &b.name).cmp(&(a.created_ns, a.name.len(), &a.name))
    });
    let mut kept: HashSet<&str> = HashSet::new();
    kept.insert(&newest_first[0].name);
    for p in newest_first.iter().take(keep.last as usize) {
        kept.insert(&p.name);
    }
    type Bucket = fn(i64) -> i64;
    let rules: [(u32, Bucket); 4] = [
        (keep.daily, |ns| buckets(ns).0),
        (keep.weekly, |ns| {
            let (y, w) = buckets(ns).1;
            y as i64 * 100 + w as i64
        }),
        (keep.monthly, |ns| {
            let (y, m) = buckets(ns).2;
            y as i64 * 100 + m as i64
        }),
        (keep.yearly, |ns| buckets(ns).3 as i64),
    ];
    for (n, bucket) in rules {
        let mut left = n;
        let mut last = None;
        for p in &newest_first {
            if left == 0 {
                break;
            }
            let b = bucket(p.created_ns);
            if last != Some(b) {
                kept.insert(&p.name);
                last = Some(b);
                left -= 1;
            }
        }
    }
    newest_first
        .iter()
        .filter(|p| !kept.contains(p.name.as_str()))
        .map(|p| p.name.clone())
        .collect()
}

impl Vault {
    pub fn policy(&self, item: &str) -> Result<Option<PolicyRecord>> {
        self.item(item)?;
        self.catalog.policy(self.store.codec(), item)
    }

    /// Change an item's policy: `schedule` `Some(None)` clears it; retention fields given
    /// replace the old ones.
    pub fn set_policy(
        &self,
        item: &str,
        schedule: Option<Option<Schedule>>,
        retention: impl FnOnce(&mut Retention),
    ) -> Result<PolicyRecord> {
        self.item(item)?;
        let _commit = self.commit_lock.lock().expect("commit lock");
        let failures_before = self.store.failures();
        let old = self.catalog.policy(self.store.codec(), item)?;
        let mut rec = old.clone().unwrap_or(PolicyRecord {
            item: item.into(),
            schedule: None,
            retention: Retention::default(),
            set_ns: now_ns(),
            revision: 0,
        });
        if let Some(s) = schedule {
            if s != rec.schedule {
                rec.set_ns = now_ns();
            }
            rec.schedule = s;
        }
        let before = rec.retention;
        retention(&mut rec.retention);
        self.may_change_retention(&before, &rec.retention)?;
        rec.revision += 1;
        self.record(&[MetaRecord::Policy(rec.clone())], failures_before)?;
        Ok(rec)
    }

    /// Note that a due snapshot was skipped: the schedule counts from now.
    pub fn touch_policy(&self, item: &str) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let failures_before = self.store.failures();
        if let Some(mut rec) = self.catalog.policy(self.store.codec(), item)? {
            rec.set_ns = now_ns();
            rec.revision += 1;
            self.record(&[MetaRecord::Policy(rec)], failures_before)?;
        }
        Ok(())
    }

    /// Soft-delete the points the item's retention retires. Returns them.
    pub fn apply_retention(&self, item: &str) -> Result<Vec<PointRecord>> {
        let Some(policy) = self.catalog.policy(self.store.codec(), item)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for name in retire(&self.points(Some(item), false)?, &policy.retention) {
            out.push(self.set_deleted(item, &name, true)?);
        }
        if !out.is_empty() {
            tracing::info!("retention retired {} points of an item", out.len());
        }
        Ok(out)
    }

    /// True when `item`'s schedule says a snapshot is due at `now`.
    pub fn snapshot_due(&self, item: &str, now: i64) -> Result<bool> {
        let Some(policy) = self.catalog.policy(self.store.codec(), item)? else {
            return Ok(false);
        };
        let Some(s) = policy.schedule else {
            return Ok(false);
        };
        let newest = self.points(Some(item), false)?.last().map(|p| p.created_ns);
        let after = newest.unwrap_or(policy.set_ns).max(policy.set_ns);
        Ok(next_after(s, after) <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_nanosecond() as i64
    }

    #[test]
    fn schedules_parse_and_step() {
        let p = |s| parse_schedule(s).unwrap().unwrap();
        assert_eq!(p("hourly"), Schedule::EveryHours(1));
        assert_eq!(p("every 4h"), Schedule::EveryHours(4));
        assert_eq!(p("daily 02:00"), Schedule::Daily(120));
        assert_eq!(
            p("weekly sun 03:00"),
            Schedule::Weekly {
                weekday: 6,
                minute: 180
            }
        );
        assert!(parse_schedule("none").unwrap().is_none());
        for bad in [
            "",
            "daily 25:00",
            "weekly xyz 01:00",
            "every h",
            "sometimes",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad:?}");
        }
        let t = ts("2026-11-24T03:40:00Z"); // a Tuesday
        assert_eq!(next_after(p("hourly"), t), ts("2026-11-24T04:00:00Z"));
        assert_eq!(next_after(p("every 4h"), t), ts("2026-11-24T04:00:00Z"));
        assert_eq!(next_after(p("daily 02:00"), t), ts("2026-11-25T02:00:00Z"));
        assert_eq!(next_after(p("daily 04:00"), t), ts("2026-11-24T04:00:00Z"));
        assert_eq!(
            next_after(p("weekly sun 03:00"), t),
            ts("2026-11-29T03:00:00Z")
        );
        assert_eq!(
            next_after(p("weekly tue 03:40"), t),
            ts("2026-12-01T03:40:00Z")
        );
    }
}
