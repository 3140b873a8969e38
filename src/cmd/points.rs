//! `vaultfs points`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::PointsArgs;
use vaultfs::vault::names::display_time;

use super::{Env, Outcome, human_bytes, table};

pub fn run(a: PointsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let points = vault.points(a.item.as_deref(), a.deleted)?;
    if a.json {
        let js: Vec<_> = points
            .iter()
            .map(|p| {
                json!({
                    "item": p.item, "point": p.name, "created": display_time(p.created_ns),
                    "created_ns": p.created_ns, "files": p.files, "dirs": p.dirs, "bytes": p.bytes,
                    "deleted_at": p.deleted_at_ns.map(display_time),
                    "purge_at": p.deleted_at_ns.map(|d| display_time(vault.purge_time(d))),
                })
            })
            .collect();
        env.out(serde_json::to_string_pretty(&js)?);
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            let mut r = vec![
                p.item.clone(),
                p.name.clone(),
                display_time(p.created_ns),
                p.files.to_string(),
                human_bytes(p.bytes),
            ];
            if let Some(d) = p.deleted_at_ns {
                r.push(display_time(vault.purge_time(d)));
            }
            r
        })
        .collect();
    let header: &[&str] = if a.deleted {
        &["ITEM", "POINT", "CREATED", "FILES", "SIZE", "PURGE AT"]
    } else {
        &["ITEM", "POINT", "CREATED", "FILES", "SIZE"]
    };
    table(header, &rows).into_iter().for_each(|l| env.out(l));
    Ok(Outcome::Ok)
}
