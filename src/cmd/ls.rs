//! `vaultfs ls`

use std::path::Path;

use anyhow::Result;

use vaultfs::cli::LsArgs;
use vaultfs::vault::browse;

use super::entry::{entry_json, long_line, path_text};
use super::{Env, Outcome};

pub fn run(a: LsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let point = vault.resolve(&a.point)?;
    let sub = a.path.as_deref().unwrap_or(Path::new(""));
    let entries = browse::list(vault.store(), &point, sub, a.recursive)?;
    if a.json {
        let js: Vec<_> = entries.iter().map(|(p, n)| entry_json(p, n)).collect();
        env.out(serde_json::to_string_pretty(&js)?);
    } else {
        for (p, n) in &entries {
            env.out(if a.long {
                long_line(p, n)
            } else {
                path_text(p)
            });
        }
    }
    Ok(Outcome::Ok)
}
