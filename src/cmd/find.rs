//! `vaultfs find`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::FindArgs;
use vaultfs::vault::browse::{Finder, Pattern};
use vaultfs::vault::names::rfc3339;

use super::entry::{entry_json, long_line};
use super::{Env, Outcome, plural};

pub fn run(a: FindArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let pattern = Pattern::new(&a.pattern, a.ignore_case)?;
    let items = match &a.item {
        Some(i) => vec![vault.item(i)?.name],
        None => vault.items()?.into_iter().map(|i| i.name).collect(),
    };
    let mut finder = Finder::default();
    let (mut js, mut found) = (Vec::new(), 0usize);
    for item in items {
        let mut points = vault.points(Some(&item), false)?;
        if let Some(n) = a.newest {
            points.drain(..points.len().saturating_sub(n));
        }
        if let Some(n) = a.oldest {
            points.truncate(n);
        }
        for p in &points {
            let matches = finder.find(vault.store(), p, &pattern)?;
            if matches.is_empty() {
                continue;
            }
            found += matches.len();
            if a.json {
                js.push(json!({
                    "item": p.item, "point": p.name, "created": rfc3339(p.created_ns),
                    "matches": matches.iter().map(|(path, n)| entry_json(path, n)).collect::<Vec<_>>(),
                }));
            } else {
                env.out(format!("{}/{}:", p.item, p.name));
                for (path, n) in &matches {
                    env.out(format!("  {}", long_line(path, n)));
                }
            }
        }
    }
    if a.json {
        env.out(serde_json::to_string_pretty(&js)?);
    } else if found == 0 {
        env.err(format!("no entry matches {:?}", a.pattern));
    } else {
        env.err(format!(
            "{} found",
            plural(found as u64, "entry", "entries")
        ));
    }
    Ok(Outcome::Ok)
}
