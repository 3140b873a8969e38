//! `vaultfs replicate VAULT [--to TARGET] [--status [--json]]`: bring the secondary up to date,
//! or show how far it lags (per item, the primary's newest point against the newest the
//! secondary holds).

use anyhow::{Result, bail};

use vaultfs::cli::ReplicateArgs;
use vaultfs::vault::Location;
use vaultfs::vault::jobs::JobKind;
use vaultfs::vault::replica::{self, ItemLag};
use vaultfs::vault::replica_settings::ReplicaSettings;
use vaultfs::vault::replicate::{self, ReplicateReport};

use super::{Env, Outcome, human_bytes, table};

pub fn run(a: ReplicateArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let mut settings = ReplicaSettings::load(&vault);
    let target = match &a.to {
        Some(t) => env.location(t)?,
        None => match settings.target(&env.cache_root())? {
            Some(t) => t,
            None => bail!(
                "no secondary: give --to TARGET (a directory or s3://BUCKET/PREFIX), or set one with `vaultfs settings VAULT --replicate-to TARGET`"
            ),
        },
    };
    if a.status {
        let lags = replica::lag(&vault, &target)?;
        show_lag(env, &target.display(), &lags, a.json);
        return Ok(Outcome::Ok);
    }
    let pb = env.bar(0, Some("packs"));
    pb.set_message(format!("replicate to {}", target.display()));
    let progress = |done: u64, total: u64| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let job = vault.job(JobKind::Replicate, None, &env.started_by());
    let result = replicate::replicate(&vault, &target, &progress);
    pb.finish_and_clear();
    job.finish(&result, |r| r.job_end(summary(r, &target)));
    let report = result?;
    if settings.target.is_none() || a.to.is_some() {
        settings.set_target(&target);
    }
    settings.last_ok_ns = Some(vaultfs::vault::now_ns());
    settings.last_error = None;
    settings.save(&vault)?;
    env.out(summary(&report, &target));
    Ok(Outcome::Ok)
}

fn show_lag(env: &Env, target: &str, lags: &[ItemLag], json: bool) {
    if json {
        let doc = serde_json::json!({ "secondary": target, "items": lags });
        env.out(doc.to_string());
        return;
    }
    env.out(format!("secondary: {target}"));
    let rows: Vec<Vec<String>> = lags
        .iter()
        .map(|l| {
            vec![
                l.item.clone(),
                l.primary_newest.clone().unwrap_or_else(|| "-".into()),
                l.replica_newest.clone().unwrap_or_else(|| "-".into()),
                match l.lag_seconds {
                    Some(s) => duration(s),
                    None => "never replicated".into(),
                },
                l.points_missing.to_string(),
            ]
        })
        .collect();
    for line in table(
        &[
            "ITEM",
            "PRIMARY NEWEST",
            "SECONDARY NEWEST",
            "LAG",
            "MISSING",
        ],
        &rows,
    ) {
        env.out(line);
    }
}

pub use vaultfs::report::duration;

fn summary(r: &ReplicateReport, target: &Location) -> String {
    format!(
        "replicated to {}: {} packs copied ({}), {} already there, {} removed{}",
        target.display(),
        r.packs_copied,
        human_bytes(r.bytes_copied),
        r.packs_present,
        r.packs_removed,
        if r.config_written {
            ", config written"
        } else {
            ""
        }
    )
}
