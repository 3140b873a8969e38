//! `vaultfs advisor VAULT [--json]`: recommendations with a severity and the fixing command.

use anyhow::Result;

use vaultfs::cli::StatusArgs;
use vaultfs::vault::advisor::{self, Severity};
use vaultfs::vault::health;

use super::{Env, Outcome, table};

pub fn run(a: StatusArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let h = health::gather(&vault, &env.cache_root())?;
    let advice = advisor::advise(&vault, &h, &a.vault.display().to_string())?;
    if a.json {
        env.out(serde_json::to_string_pretty(&advice)?);
        return Ok(Outcome::Ok);
    }
    if advice.is_empty() {
        env.out("nothing to advise: every item is protected as advised");
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = advice
        .iter()
        .map(|x| {
            vec![
                match x.severity {
                    Severity::Critical => "critical",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                }
                .into(),
                x.message.clone(),
            ]
        })
        .collect();
    for (i, line) in table(&["SEVERITY", "ADVICE"], &rows)
        .into_iter()
        .enumerate()
    {
        env.out(line);
        if i > 0 {
            env.out(format!("          fix: {}", advice[i - 1].fix));
        }
    }
    Ok(Outcome::Ok)
}
