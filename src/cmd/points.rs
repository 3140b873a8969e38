//! `vaultfs points`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::PointsArgs;
use vaultfs::format::PointRecord;
use vaultfs::vault::names::{display_time, rfc3339};
use vaultfs::vault::origin::PointFilter;

use super::{Env, Outcome, human_bytes, table};

pub fn run(a: PointsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let mut points = vault.points(a.item.as_deref(), a.deleted)?;
    let f = &a.filter;
    let filter = PointFilter::new(&f.hosts, &f.tags, &f.paths, env.cwd());
    points.retain(|p| env.may_read(&vault, &p.item) && filter.matches(p));
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
                    "item": p.item, "point": p.name, "created": rfc3339(p.created_ns),
                    "created_ns": p.created_ns, "files": p.files, "dirs": p.dirs, "bytes": p.bytes,
                    "deleted_at": p.deleted_at_ns.map(rfc3339),
                    "purge_at": p.deleted_at_ns.map(|d| rfc3339(vault.purge_time(d))),
                    "damaged_paths": lost,
                    "host": host_json(p), "paths": paths_json(p), "tags": tags_json(p),
                })
            })
            .collect();
        env.out(serde_json::to_string_pretty(&js)?);
        return Ok(Outcome::Ok);
    }
    let any_damage = lost.iter().any(|l| !l.is_empty());
    // Points made before format v5 have no origin: the columns only when some point has one.
    let any_origin = points.iter().any(|p| p.origin.is_some());
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
            if any_origin {
                let o = p.origin.as_ref();
                let dash = |s: String| if s.is_empty() { "-".into() } else { s };
                r.push(dash(o.map(|o| o.host.clone()).unwrap_or_default()));
                r.push(dash(o.map(|o| o.tags.join(",")).unwrap_or_default()));
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
    if any_origin {
        header.extend(["HOST", "TAGS"]);
    }
    table(&header, &rows).into_iter().for_each(|l| env.out(l));
    Ok(Outcome::Ok)
}

/// A point's host for JSON: null for points made before format v5 (or where it was unknown).
pub fn host_json(p: &PointRecord) -> Option<&str> {
    p.origin
        .as_ref()
        .map(|o| o.host.as_str())
        .filter(|h| !h.is_empty())
}

/// A point's source paths for JSON (lossy where not UTF-8).
pub fn paths_json(p: &PointRecord) -> Vec<String> {
    p.origin
        .iter()
        .flat_map(|o| &o.paths)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

pub fn tags_json(p: &PointRecord) -> &[String] {
    p.origin.as_ref().map(|o| o.tags.as_slice()).unwrap_or(&[])
}
