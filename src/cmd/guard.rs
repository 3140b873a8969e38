//! `vaultfs guard keygen|init|remove|approve`, and reading `--approval FILE` for the protected
//! commands (DESIGN.md §13).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use vaultfs::cli::GuardCommand;
use vaultfs::keys::guard::{self, Approval};
use vaultfs::vault::{Vault, now_ns};

use super::{Env, Outcome};

/// The approval in `--approval FILE`, if given.
pub fn approval(env: &Env, file: &Option<PathBuf>) -> Result<Option<Approval>> {
    let Some(f) = file else { return Ok(None) };
    let path = env.path(f);
    let bytes = std::fs::read(&path).with_context(|| format!("--approval {}", f.display()))?;
    Approval::parse(&bytes)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--approval {}: {e}", f.display()))
}

/// Run the guard check of `op` with the command's `--approval`.
pub fn authorize(env: &Env, vault: &Vault, op: &str, file: &Option<PathBuf>) -> Result<()> {
    if vault.guard_key().is_none() {
        return Ok(());
    }
    // With a guard, protected operations are the owner's, whatever role (DESIGN §13).
    if !env.is_owner(vault) {
        return Err(vaultfs::vault::VaultError::Denied(format!(
            "\"{op}\" is for the vault's owner only"
        ))
        .into());
    }
    let a = approval(env, file)?;
    Ok(vault.authorize(op, a.as_ref())?)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// `90m`, `1h`, `2d` as nanoseconds (at most 30 days).
fn parse_valid(s: &str) -> Result<i64> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let secs = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--valid {s:?}: give minutes, hours or days, like 90m, 1h, 2d"),
    };
    let n: i64 =
        n.parse().ok().filter(|n| *n > 0).with_context(|| {
            format!("--valid {s:?}: give minutes, hours or days, like 90m, 1h, 2d")
        })?;
    let ns = n.saturating_mul(secs).saturating_mul(1_000_000_000);
    if ns > 30 * 86_400 * 1_000_000_000 {
        bail!("--valid {s:?}: an approval is valid for at most 30 days");
    }
    Ok(ns)
}

fn read_public(env: &Env, file: &Path) -> Result<[u8; 32]> {
    let bytes = std::fs::read(env.path(file))
        .with_context(|| format!("--public-key {}", file.display()))?;
    guard::parse_public(&bytes).with_context(|| format!("--public-key {}", file.display()))
}

pub fn run(g: GuardCommand, env: &Env) -> Result<Outcome> {
    match g {
        GuardCommand::Keygen(a) => {
            let out = env.path(&a.out);
            let (key, public) = guard::generate()?;
            let key_path = PathBuf::from(format!("{}.key", out.display()));
            let pub_path = PathBuf::from(format!("{}.pub", out.display()));
            write_new(&key_path, &key, 0o600)?;
            write_new(
                &pub_path,
                format!("{}\n", hex::encode(public)).as_bytes(),
                0o644,
            )?;
            env.out(format!(
                "wrote {} (give it to the approver only) and {}",
                key_path.display(),
                pub_path.display()
            ));
        }
        GuardCommand::Init(a) => {
            let public = read_public(env, &a.public_key)?;
            let vault = env.open(&a.vault)?;
            if vault.guard_key().is_some() {
                let op = format!("guard init --public-key {}", hex::encode(public));
                authorize(env, &vault, &op, &a.approval)?;
            }
            vault.set_guard(Some(public))?;
            env.out(format!(
                "guard registered (public key {}); protected operations now need its approval",
                hex::encode(public)
            ));
        }
        GuardCommand::Remove(a) => {
            let vault = env.open(&a.vault)?;
            if vault.guard_key().is_none() {
                bail!("this vault has no guard");
            }
            authorize(env, &vault, "guard remove", &a.approval)?;
            vault.set_guard(None)?;
            env.out("guard removed");
        }
        GuardCommand::Approve(a) => {
            let valid = parse_valid(&a.valid)?;
            let der = zeroize::Zeroizing::new(
                std::fs::read(env.path(&a.key))
                    .with_context(|| format!("--key {}", a.key.display()))?,
            );
            let id_ok = a.vault_id.len() == 32 && hex::decode(&a.vault_id).is_ok();
            if !id_ok {
                bail!("--vault-id {:?}: a vault id is 32 hex digits", a.vault_id);
            }
            let approval = guard::approve(&der, &a.vault_id, &a.op, now_ns() + valid)
                .with_context(|| format!("--key {}", a.key.display()))?;
            env.out(serde_json::to_string(&approval)?);
        }
    }
    Ok(Outcome::Ok)
}
