//! `vaultfs items`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::ItemsArgs;
use vaultfs::vault::names::rfc3339;

use super::{Env, Outcome, human_bytes, table};

pub fn run(a: ItemsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let mut rows = Vec::new();
    let mut js = Vec::new();
    // Items the caller has no role on are not listed (DESIGN §13).
    for item in vault
        .items()?
        .into_iter()
        .filter(|i| env.may_read(&vault, &i.name))
    {
        let points = vault.points(Some(&item.name), false)?;
        let deleted = vault.points(Some(&item.name), true)?.len();
        let last = points.last();
        js.push(json!({
            "name": item.name,
            "created": rfc3339(item.created_ns),
            "points": points.len(),
            "deleted_points": deleted,
            "latest": last.map(|p| p.name.clone()),
            "latest_bytes": last.map(|p| p.bytes),
        }));
        rows.push(vec![
            item.name.clone(),
            points.len().to_string(),
            deleted.to_string(),
            last.map(|p| p.name.clone()).unwrap_or_else(|| "-".into()),
            last.map(|p| human_bytes(p.bytes))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    if a.json {
        env.out(serde_json::to_string_pretty(&js)?);
    } else {
        table(&["ITEM", "POINTS", "DELETED", "LATEST", "SIZE"], &rows)
            .into_iter()
            .for_each(|l| env.out(l));
    }
    Ok(Outcome::Ok)
}
