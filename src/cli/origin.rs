//! Arguments about where points came from: `--tag` when making one, and the filters of
//! `points` (format v5, DESIGN §14).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Default, Args)]
pub struct TagArgs {
    /// Tag the new point with TAG (repeatable; letters, digits and . _ : @ + = -)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct PointFilterArgs {
    /// Only points made on host H (repeatable: any of them)
    #[arg(long = "host", value_name = "H")]
    pub hosts: Vec<String>,
    /// Only points tagged T (repeatable, or T1,T2: all of them)
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Only points whose sources include the absolute path P (repeatable: all of them;
    /// `incoming/ITEM` for snapshots)
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<PathBuf>,
}
