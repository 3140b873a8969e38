//! One module per subcommand; this file holds what they share: the passphrase, progress bars
//! and human-readable sizes. Errors get their context here, at the CLI edge.

mod backup;
mod check;
mod completions;
mod init;
mod items;
mod points;
mod repair;
mod restore;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

use vaultfs::cli::{Cli, Command};
use vaultfs::vault::Vault;

/// What a command achieved, mapped to the process exit code by `main`.
pub enum Outcome {
    Ok,
    /// Done, but some entries were skipped or failed (exit 3).
    Partial(String),
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let pass = PassSource {
        file: cli.passphrase_file.as_deref(),
    };
    match cli.command {
        Command::Init(a) => init::run(a, &pass),
        Command::Backup(a) => backup::run(a, &pass),
        Command::Items(a) => items::run(a, &pass),
        Command::Points(a) => points::run(a, &pass),
        Command::Restore(a) => restore::run(a, &pass),
        Command::Check(a) => check::run(a, &pass),
        Command::Repair(a) => repair::run(a, &pass),
        Command::Completions(a) => completions::run(a),
    }
}

/// Where the passphrase comes from: `--passphrase-file`, `VAULTFS_PASSPHRASE`, or a prompt.
pub struct PassSource<'a> {
    file: Option<&'a Path>,
}

impl PassSource<'_> {
    pub fn get(&self, vault: &Path, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
        let pass = if let Some(f) = self.file {
            let text = std::fs::read(f)
                .with_context(|| format!("cannot read passphrase file {}", f.display()))?;
            let line = text.split(|b| *b == b'\n').next().unwrap_or(&[]);
            Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
        } else if let Some(v) = std::env::var_os("VAULTFS_PASSPHRASE") {
            Zeroizing::new(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec())
        } else if std::io::stdin().is_terminal() {
            let p = rpassword::prompt_password(format!("passphrase for {}: ", vault.display()))?;
            if confirm {
                let again = rpassword::prompt_password("repeat passphrase: ")?;
                if again != p {
                    bail!("the passphrases do not match");
                }
            }
            Zeroizing::new(p.into_bytes())
        } else {
            bail!(
                "no passphrase: set VAULTFS_PASSPHRASE, use --passphrase-file, or run on a terminal"
            );
        };
        if pass.is_empty() {
            bail!("the passphrase is empty");
        }
        Ok(pass)
    }

    /// Open `vault` with this passphrase.
    pub fn open(&self, vault: &Path) -> Result<Vault> {
        vaultfs::vault::Vault::read_config(vault)?;
        let pass = self.get(vault, false)?;
        Ok(Vault::open(vault, &pass)?)
    }
}

/// A spinner on stderr when it is a terminal; hidden otherwise.
pub fn spinner() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("static template"),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// `1.5 GB`-style decimal sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Print rows as an aligned table with a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}
