//! `vaultfs report VAULT --html OUT`: the HTML report (see `vaultfs::report`).

use anyhow::{Context, Result};

use vaultfs::cli::ReportArgs;
use vaultfs::vault::report;

use super::{Env, Outcome};

pub fn run(a: ReportArgs, env: &Env) -> Result<Outcome> {
    let out = env.path(&a.html);
    let vault = env.open(&a.vault)?;
    vault.evaluate_alerts()?;
    let r = report::gather(&vault, &env.cache_root())?;
    let page = vaultfs::report::html(&r);
    // Written beside the target and renamed over it: a reader never sees half a page.
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name()
            .map_or("report".into(), |n| n.to_string_lossy())
    ));
    std::fs::write(&tmp, page.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &out))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", out.display()))?;
    env.out(format!(
        "wrote {} ({} items, {} bytes)",
        out.display(),
        r.items.len(),
        page.len()
    ));
    Ok(Outcome::Ok)
}
