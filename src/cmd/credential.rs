//! Secrets at the CLI edge: the credential that opens a vault (`--key-file`, `--rsa-key`,
//! `--unwrap-command` or a passphrase), and the secret of a new slot (a new passphrase, a new
//! key file written 0600, an RSA public key). Every buffer that holds one is zeroized.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use vaultfs::cli::NewSecretArgs;
use vaultfs::keys::{Credential, KdfParams, SlotName, random_key, rsa, slot};
use vaultfs::vault::Vault;
use vaultfs::vault::keyring::NewSlot;
use vaultfs::vault::location::Location;

use super::Env;

/// Secrets taken from the environment at start (see [`take_env_secrets`]).
static ENV_SECRETS: std::sync::OnceLock<EnvSecrets> = std::sync::OnceLock::new();

struct EnvSecrets {
    passphrase: Option<Zeroizing<Vec<u8>>>,
    new_passphrase: Option<Zeroizing<Vec<u8>>>,
}

/// Take `VAULTFS_PASSPHRASE` and `VAULTFS_NEW_PASSPHRASE` out of the environment: keep them in
/// zeroizing memory, overwrite their bytes where the kernel shows the process's environment
/// (`/proc/PID/environ` reads the original block, so `unsetenv` alone would leave them there,
/// also in a forked mount daemon), then unset them, so no child (an unwrap command) inherits
/// them. Called first thing in `main`, before any thread exists.
pub fn take_env_secrets() {
    let take = |name: &str| {
        let value = std::env::var_os(name)?;
        let secret =
            Zeroizing::new(std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec());
        let cname = std::ffi::CString::new(name).expect("no NUL in the name");
        // SAFETY: no other thread exists yet; getenv's pointer is to the live environment
        // string, whose strlen bytes we overwrite before unsetting it.
        unsafe {
            let p = libc::getenv(cname.as_ptr());
            if !p.is_null() {
                let n = libc::strlen(p);
                std::ptr::write_bytes(p, 0, n);
            }
            libc::unsetenv(cname.as_ptr());
        }
        Some(secret)
    };
    let _ = ENV_SECRETS.set(EnvSecrets {
        passphrase: take("VAULTFS_PASSPHRASE"),
        new_passphrase: take("VAULTFS_NEW_PASSPHRASE"),
    });
}

/// `VAULTFS_PASSPHRASE` as it was at start.
pub fn env_passphrase() -> Option<Zeroizing<Vec<u8>>> {
    ENV_SECRETS.get()?.passphrase.clone()
}

fn env_new_passphrase() -> Option<Zeroizing<Vec<u8>>> {
    ENV_SECRETS.get()?.new_passphrase.clone()
}

/// Read a key file: 64 hex digits (as vaultfs writes it) or 32 raw bytes. A file others can
/// read is refused, as ssh refuses such a private key.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let md = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    if md.mode() & 0o077 != 0 {
        bail!(
            "key file {} can be read by others (mode {:o}): chmod 600 it",
            path.display(),
            md.mode() & 0o777
        );
    }
    let text = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
    if trimmed.len() == 64 && hex::decode_to_slice(trimmed, key.as_mut()).is_ok() {
        return Ok(key);
    }
    if text.len() == 32 {
        key.copy_from_slice(&text);
        return Ok(key);
    }
    bail!(
        "{} is not a vaultfs key file (64 hex digits or 32 bytes)",
        path.display()
    )
}

/// Make a new key file at `path` (0600, never over an existing file).
pub fn new_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let key = random_key()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    let mut text = Zeroizing::new(hex::encode(key.as_ref()).into_bytes());
    text.push(b'\n');
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    Ok(key)
}

fn read_pem(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    Ok(Zeroizing::new(std::fs::read(path).with_context(|| {
        format!("cannot read {}", path.display())
    })?))
}

pub fn rsa_public_key(path: &Path) -> Result<rsa::PublicKey> {
    rsa::PublicKey::from_pem(&read_pem(path)?).with_context(|| path.display().to_string())
}

impl Env<'_> {
    /// What the user gave to open the vault at `location` (its config read first, so a vault
    /// without a passphrase slot is named as such instead of prompting for a passphrase).
    pub fn credential(&self, location: &Location) -> Result<Credential> {
        let config = Vault::read_config_at(location)?;
        let vault = &location.shown();
        let given = [
            self.key_file.is_some(),
            self.rsa_key.is_some(),
            self.unwrap_command.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            bail!("give one of --key-file, --rsa-key and --unwrap-command");
        }
        if let Some(f) = &self.key_file {
            return Ok(Credential::KeyFile(read_key_file(&self.path(f))?));
        }
        if let Some(f) = &self.rsa_key {
            let f = self.path(f);
            let key = rsa::PrivateKey::from_pem(&read_pem(&f)?)
                .with_context(|| f.display().to_string())?;
            return Ok(Credential::Rsa(Box::new(key)));
        }
        if let Some(cmd) = &self.unwrap_command {
            return Ok(Credential::UnwrapCommand(cmd.clone()));
        }
        if !config.key_slots.iter().any(|s| s.kind == slot::PASSPHRASE) {
            let slots: Vec<String> = config
                .key_slots
                .iter()
                .map(|s| format!("{} {}", s.kind, SlotName::of(s)))
                .collect();
            bail!(
                "{} has no passphrase key slot: open it with --key-file, --rsa-key or \
                 --unwrap-command (its slots: {})",
                vault.display(),
                slots.join(", ")
            );
        }
        Ok(Credential::Passphrase(self.passphrase(vault, false)?))
    }

    /// The secret of a new or rotated slot: a key file, an RSA public key, else a new passphrase.
    pub fn new_slot(&self, a: &NewSecretArgs, vault: &Path) -> Result<NewSlot> {
        if let Some(f) = &a.rsa_public_key {
            return Ok(NewSlot::Rsa(Box::new(rsa_public_key(&self.path(f))?)));
        }
        if let Some(f) = &a.new_key_file {
            return Ok(NewSlot::KeyFile(new_key_file(&self.path(f))?));
        }
        let kdf = KdfParams {
            m_kib: a.kdf_memory_kib,
            t: a.kdf_iterations,
            p: 1,
        };
        let pass = if let Some(f) = &a.new_passphrase_file {
            first_line(&self.path(f))?
        } else if let Some(p) = env_new_passphrase() {
            p
        } else if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let p = Zeroizing::new(rpassword::prompt_password(format!(
                "new passphrase for {}: ",
                vault.display()
            ))?);
            let again = Zeroizing::new(rpassword::prompt_password("repeat new passphrase: ")?);
            if again != p {
                bail!("the passphrases do not match");
            }
            Zeroizing::new(p.as_bytes().to_vec())
        } else {
            bail!(
                "no new passphrase: set VAULTFS_NEW_PASSPHRASE, use --new-passphrase-file, \
                 --new-key-file or --rsa-public-key, or run on a terminal"
            );
        };
        if pass.is_empty() {
            bail!("the new passphrase is empty");
        }
        Ok(NewSlot::Passphrase(pass, kdf))
    }
}

/// The first line of a file (a passphrase), without its line end.
pub fn first_line(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let text = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let line = text.split(|b| *b == b'\n').next().unwrap_or(&[]);
    Ok(Zeroizing::new(
        line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
    ))
}
