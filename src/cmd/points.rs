//! `vaultfs points`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::PointsArgs;
use vaultfs::vault::names::display_time;

use super::{Env, Outcome, human_bytes, table};

pub fn run(a: PointsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let mut points = vault.points(a.item.as_deref(), a.deleted)?;
    points.retain(|p| env.may_read(&vault, &p.item));
    // Paths `repair` found lost, per point.
    let mut lost: Vec<Vec<String>> = Vec::new();
    for p in &points {
        let paths = vault.damage(p)?.map(|d| d.paths).unwrap_or_default();
        lost.push(
            paths
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        );
    }
    if a.json {
        let js: Vec<_> = points
            .iter()
            .zip(&lost)
            .map(|(p, lost)| {
                json!({
                    "item": p.item, "point": p.name, "created": display_time(p.created_ns),
                    "created_ns": p.created_ns, "files": p.files, "dirs": p.dirs, "bytes": p.bytes,
                    "deleted_at": p.deleted_at_ns.map(display_time),
                    "purge_at": p.deleted_at_ns.map(|d| display_time(vault.purge_time(d))),
                    "damaged_paths": lost,
                })
            })
            .collect();
        env.out(serde_json::to_string_pretty(&js)?);
        return Ok(Outcome::Ok);
    }
    let any_damage = lost.iter().any(|l| !l.is_empty());
    let rows: Vec<Vec<String>> = points
        .iter()
        .zip(&lost)
        .map(|(p, lost)| {
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
            if any_damage {
                r.push(match lost.len() {
                    0 => "-".into(),
                    n => format!("{n} paths lost"),
                });
            }
            r
        })
        .collect();
    let mut header: Vec<&str> = vec!["ITEM", "POINT", "CREATED", "FILES", "SIZE"];
    if a.deleted {
        header.push("PURGE AT");
    }
    if any_damage {
        header.push("DAMAGED");
    }
    table(&header, &rows).into_iter().for_each(|l| env.out(l));
    Ok(Outcome::Ok)
}
