//! `vaultfs completions`

use anyhow::Result;
use clap::CommandFactory;

use vaultfs::cli::{Cli, CompletionsArgs};

use super::Outcome;

pub fn run(a: CompletionsArgs) -> Result<Outcome> {
    clap_complete::generate(
        a.shell,
        &mut Cli::command(),
        "vaultfs",
        &mut std::io::stdout(),
    );
    Ok(Outcome::Ok)
}
