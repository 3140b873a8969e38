//! Arguments of the commands that read points as paths: `ls`, `find`, `diff`, `stats`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// ITEM (its newest point) or ITEM/POINT
    pub point: String,
    /// A path inside the point (default: its root); a directory lists its entries
    pub path: Option<PathBuf>,
    /// Long listing: mode, owner, group, size, modification time
    #[arg(short = 'l', long)]
    pub long: bool,
    /// List subdirectories' entries too
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print JSON (one array of entries)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Glob (`*`, `?`, `[abc]`, `{a,b}`, `**`): matched against each entry's name, or
    /// against its whole path from the point's root if it holds a `/`
    pub pattern: String,
    /// Only this item's points
    #[arg(long)]
    pub item: Option<String>,
    /// Only the N newest points of each item
    #[arg(long, value_name = "N", conflicts_with = "oldest")]
    pub newest: Option<usize>,
    /// Only the N oldest points of each item
    #[arg(long, value_name = "N")]
    pub oldest: Option<usize>,
    /// Match regardless of case
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// Print JSON (one object per point with matches)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// The older point: ITEM/POINT (or ITEM: its newest)
    pub from: String,
    /// The newer point: ITEM/POINT (or ITEM: its newest)
    pub to: String,
    /// Compare only this path inside both points
    pub path: Option<PathBuf>,
    /// Print JSON (one array of changes)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// ITEM (all its live points) or ITEM/POINT; default: every live point
    pub point: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}
