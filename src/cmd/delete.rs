//! `vaultfs delete` and `vaultfs undelete`

use anyhow::{Result, bail};

use vaultfs::cli::PointArg;
use vaultfs::vault::names::display_time;

use super::{Env, Outcome};

pub fn run(a: PointArg, env: &Env, delete: bool) -> Result<Outcome> {
    let Some((item, point)) = a.point.split_once('/') else {
        bail!("expected ITEM/POINT, got {:?}", a.point);
    };
    let vault = env.open(&a.vault)?;
    let rec = vault.set_deleted(item, point, delete)?;
    match rec.deleted_at_ns {
        Some(at) => {
            let purge = vault.purge_time(at);
            env.out(format!(
                "deleted {item}/{point}; recoverable until {}",
                display_time(purge)
            ));
        }
        None => env.out(format!("undeleted {item}/{point}")),
    }
    Ok(Outcome::Ok)
}
