//! Arguments of the access commands (DESIGN.md §13): roles, the guard and the audit log.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Grant a role to a user or a group, on every item or one
    Grant(RoleGrantArgs),
    /// Revoke a user's or group's grant (on --item, or the vault-wide one)
    Revoke(RoleRevokeArgs),
    /// List the grants
    List(RoleListArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Reader,
    Operator,
    Contributor,
}

#[derive(Debug, Args)]
#[group(id = "whom", required = true, multiple = false, args = ["user", "group"])]
pub struct Whom {
    /// A user, by name or uid
    #[arg(long, value_name = "NAME|UID")]
    pub user: Option<String>,
    /// A group, by name or gid
    #[arg(long, value_name = "NAME|GID")]
    pub group: Option<String>,
}

#[derive(Debug, Args)]
pub struct RoleGrantArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    #[command(flatten)]
    pub whom: Whom,
    /// reader (list, read, restore), operator (reader + incoming, snapshot, backup),
    /// contributor (everything but roles, keys and guard-protected operations)
    pub role: RoleArg,
    /// Only this item
    #[arg(long)]
    pub item: Option<String>,
}

#[derive(Debug, Args)]
pub struct RoleRevokeArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    #[command(flatten)]
    pub whom: Whom,
    /// The grant on this item (without: the vault-wide grant)
    #[arg(long)]
    pub item: Option<String>,
}

#[derive(Debug, Args)]
pub struct RoleListArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Make a guard key pair: OUT.key (private, PKCS#8, for the approver only) and OUT.pub
    Keygen(GuardKeygenArgs),
    /// Register the guard's public key: protected operations then need its approval
    /// (replacing a guard needs the current guard's approval)
    Init(GuardInitArgs),
    /// Remove the guard (needs its approval)
    Remove(GuardRemoveArgs),
    /// Sign an approval of one operation on one vault, valid for a while (vault time); prints it
    Approve(GuardApproveArgs),
}

#[derive(Debug, Args)]
pub struct GuardKeygenArgs {
    /// Path prefix: writes PREFIX.key and PREFIX.pub (never over existing files)
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct GuardInitArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// The guard's public key (OUT.pub of `guard keygen`)
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,
    /// A guard approval (from `vaultfs guard approve`) for this operation, used once
    #[arg(long, value_name = "FILE")]
    pub approval: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GuardRemoveArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// A guard approval (from `vaultfs guard approve`) for this operation, used once
    #[arg(long, value_name = "FILE")]
    pub approval: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GuardApproveArgs {
    /// The guard's private key (OUT.key of `guard keygen`)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The vault's id (the refusal of the protected command names it)
    #[arg(long, value_name = "ID")]
    pub vault_id: String,
    /// The exact operation, as the refusal names it (e.g. "gc --expire-now")
    #[arg(long, value_name = "OP")]
    pub op: String,
    /// How long it stays valid: 90m, 1h, 2d (at most 30 days)
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub valid: String,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Only records about this item
    #[arg(long)]
    pub item: Option<String>,
    /// Only records from this time on: a UTC time (2026-11-23T23:10:05Z) or an age (90m, 36h, 7d)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Verify the chain: report a removed, edited, reordered or cut-off record (exit 1)
    #[arg(long)]
    pub verify: bool,
}
