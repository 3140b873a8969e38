//! `vaultfs stats`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::StatsArgs;
use vaultfs::vault::stats::stats;

use super::{Env, Outcome, human_bytes, plural};

pub fn run(a: StatsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let (scope, points) = match a.point.as_deref() {
        None => ("vault".to_string(), vault.points(None, false)?),
        Some(spec) if spec.contains('/') => {
            let p = vault.resolve(spec)?;
            (format!("{}/{}", p.item, p.name), vec![p])
        }
        Some(item) => (item.to_string(), vault.points(Some(item), false)?),
    };
    let s = stats(vault.store(), &points)?;
    // The whole vault also holds soft-deleted points, incoming data and garbage until gc.
    let packs = match a.point {
        None => Some(
            vault
                .store()
                .list_packs_sized()?
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
        ),
        Some(_) => None,
    };
    if a.json {
        let js = json!({
            "scope": scope,
            "points": s.points,
            "files": s.files,
            "dirs": s.dirs,
            "logical_bytes": s.logical_bytes,
            "unique_bytes": s.unique_bytes,
            "stored_bytes": s.stored_bytes(),
            "stored_data_bytes": s.stored_data_bytes,
            "stored_tree_bytes": s.stored_tree_bytes,
            "chunks": s.chunks,
            "trees": s.trees,
            "dedup_ratio": round(s.dedup_ratio()),
            "compression_ratio": round(s.compression_ratio()),
            "pack_bytes": packs,
        });
        env.out(serde_json::to_string_pretty(&js)?);
        return Ok(Outcome::Ok);
    }
    let rows = [
        ("points", plural(s.points, "point", "points")),
        (
            "files",
            format!(
                "{} in {}",
                s.files,
                plural(s.dirs, "directory", "directories")
            ),
        ),
        ("logical size", human_bytes(s.logical_bytes)),
        (
            "unique data",
            format!(
                "{} in {}",
                human_bytes(s.unique_bytes),
                plural(s.chunks, "chunk", "chunks")
            ),
        ),
        (
            "stored size",
            format!(
                "{} ({} of trees)",
                human_bytes(s.stored_bytes()),
                human_bytes(s.stored_tree_bytes)
            ),
        ),
        ("dedup ratio", format!("{:.2}x", s.dedup_ratio())),
        (
            "compression ratio",
            format!("{:.2}x", s.compression_ratio()),
        ),
    ];
    env.out(format!("stats of {scope}:"));
    for (k, v) in rows {
        env.out(format!("  {k:<18} {v}"));
    }
    if let Some(n) = packs {
        env.out(format!("  {:<18} {}", "packs on disk", human_bytes(n)));
    }
    Ok(Outcome::Ok)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
