//! `vaultfs jobs VAULT [--item I] [--since WHEN] [--failed] [--json]`, `vaultfs jobs show VAULT ID`.

use anyhow::{Result, bail};
use serde_json::Value;

use vaultfs::cli::{JobShowArgs, JobsArgs, JobsCommand};
use vaultfs::vault::jobs::{JobRecord, JobStatus, kind_name};
use vaultfs::vault::names::{display_time, rfc3339};
use vaultfs::vault::now_ns;

use super::{Env, Outcome, human_bytes, table};

pub fn run(a: JobsArgs, env: &Env) -> Result<Outcome> {
    if let Some(JobsCommand::Show(s)) = a.show {
        return show(s, env);
    }
    let Some(vault) = &a.vault else {
        bail!("give the vault: vaultfs jobs VAULT");
    };
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let vault = env.open(vault)?;
    let jobs: Vec<JobRecord> = vault
        .jobs_list()?
        .into_iter()
        .filter(|j| a.item.is_none() || j.item == a.item)
        .filter(|j| since.is_none_or(|s| j.start_ns >= s))
        .filter(|j| !a.failed || matches!(j.status, JobStatus::Failed | JobStatus::Cancelled))
        .collect();
    if a.json {
        let docs: Vec<Value> = jobs.iter().map(json).collect();
        env.out(serde_json::to_string_pretty(&docs)?);
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                kind(j),
                j.item.clone().unwrap_or_else(|| "-".into()),
                j.started_by.clone(),
                display_time(j.start_ns),
                j.end_ns
                    .map(|e| format!("{:.1}s", (e - j.start_ns) as f64 / 1e9))
                    .unwrap_or_else(|| "running".into()),
                status(j.status).into(),
                j.figures.files.to_string(),
                human_bytes(j.figures.bytes_read),
                human_bytes(j.figures.bytes_added),
                j.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "ID", "KIND", "ITEM", "BY", "STARTED", "TOOK", "STATUS", "FILES", "READ", "ADDED", "ERROR",
    ];
    for line in table(&header, &rows) {
        env.out(line);
    }
    Ok(Outcome::Ok)
}

fn show(a: JobShowArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let Some(j) = vault.jobs_list()?.into_iter().find(|j| j.id == a.id) else {
        bail!(
            "no job {} in this vault (`vaultfs jobs VAULT` lists them)",
            a.id
        );
    };
    if a.json {
        env.out(serde_json::to_string_pretty(&json(&j))?);
        return Ok(Outcome::Ok);
    }
    let f = &j.figures;
    let mut lines = vec![
        format!("job {}: {}", j.id, kind(&j)),
        format!("item: {}", j.item.as_deref().unwrap_or("-")),
        format!("started by: {}", j.started_by),
        format!("started: {}", display_time(j.start_ns)),
        format!(
            "ended: {}",
            j.end_ns.map_or("(running)".into(), display_time)
        ),
        format!("status: {}", status(j.status)),
        format!(
            "files: {}, total {}, read {}, added {}, removed {}",
            f.files,
            human_bytes(f.bytes_total),
            human_bytes(f.bytes_read),
            human_bytes(f.bytes_added),
            human_bytes(f.bytes_removed)
        ),
        format!("warnings: {}", j.warnings),
    ];
    if let Some(e) = &j.error {
        lines.push(format!("error: {e}"));
    }
    if let Some(s) = &j.summary {
        lines.push(format!("summary: {s}"));
    }
    lines.into_iter().for_each(|l| env.out(l));
    Ok(Outcome::Ok)
}

/// A job as JSON: the record's fields plus readable times and its duration.
pub fn json(j: &JobRecord) -> Value {
    let mut v = serde_json::to_value(j).expect("a job record serialises");
    v["start"] = rfc3339(j.start_ns).into();
    v["end"] = j.end_ns.map(rfc3339).into();
    v["seconds"] = j.end_ns.map(|e| (e - j.start_ns) as f64 / 1e9).into();
    v
}

fn kind(j: &JobRecord) -> String {
    kind_name(j.kind).into()
}

pub fn status(s: JobStatus) -> &'static str {
    match s {
        JobStatus::InProgress => "in progress",
        JobStatus::Completed => "completed",
        JobStatus::CompletedWithWarnings => "completed with warnings",
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
    }
}

/// `--since`: `90m`, `24h`, `7d`, `30s` back from the vault's now, or a UTC time.
fn parse_since(s: &str) -> Result<i64> {
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    if let Some(last) = s.chars().last()
        && let Some(mult) = unit(last)
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        return Ok(now_ns() - n * mult * 1_000_000_000);
    }
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(t.as_nanosecond() as i64),
        Err(_) => bail!(
            "--since {s:?}: give a duration back from now (90m, 24h, 7d) or a UTC time (2026-11-23T10:00:00Z)"
        ),
    }
}
