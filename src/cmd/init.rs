//! `vaultfs init`

use anyhow::Result;

use vaultfs::cli::InitArgs;
use vaultfs::keys::KdfParams;
use vaultfs::vault::keyring::NewSlot;
use vaultfs::vault::{InitOptions, Vault};

use super::{Env, Outcome, credential};

pub fn run(a: InitArgs, env: &Env) -> Result<Outcome> {
    let opts = InitOptions {
        soft_delete_days: a.soft_delete_days,
        kdf: KdfParams {
            m_kib: a.kdf_memory_kib,
            t: a.kdf_iterations,
            p: 1,
        },
        chunk_min_bytes: a.chunk_avg / 4,
        chunk_avg_bytes: a.chunk_avg,
        chunk_max_bytes: a.chunk_avg.saturating_mul(4),
        zstd_level: a.zstd_level,
        pack_target_bytes: a.pack_size_mib.saturating_mul(1 << 20),
    };
    let location = env.location(&a.vault)?;
    let first = if let Some(f) = &a.rsa_public_key {
        NewSlot::Rsa(Box::new(credential::rsa_public_key(&env.path(f))?))
    } else if let Some(f) = &a.new_key_file {
        NewSlot::KeyFile(credential::new_key_file(&env.path(f))?)
    } else {
        NewSlot::Passphrase(env.passphrase(&location.shown(), true)?, opts.kdf)
    };
    Vault::create_at(&location, &first, &a.label, &opts)?;
    env.out(format!(
        "created vault {} (soft delete: {})",
        a.vault.display(),
        super::plural(a.soft_delete_days.into(), "day", "days")
    ));
    Ok(Outcome::Ok)
}
