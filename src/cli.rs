//! Command-line definitions (clap types only). Man pages and completions are generated from these.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod access;
pub use access::*;
mod browse;
pub use browse::{DiffArgs, FindArgs, LsArgs, StatsArgs};
mod origin;
pub use origin::{PointFilterArgs, TagArgs};
mod webdav;
pub use webdav::ServeWebdavArgs;

#[derive(Debug, Parser)]
#[command(name = "vaultfs", version, about = "An encrypted, deduplicated backup vault you can mount", long_about = None)]
#[command(propagate_version = true, disable_help_subcommand = false)]
pub struct Cli {
    /// Read the passphrase from this file (first line) instead of VAULTFS_PASSPHRASE or a prompt.
    /// While a vault is mounted, its daemon runs its owner's commands without any passphrase or key
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Open the vault with this key file (a keyfile slot) instead of a passphrase
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Open the vault with this RSA private key (PEM, PKCS#8 or PKCS#1; an RSA slot)
    #[arg(long, global = true, value_name = "PEM")]
    pub rsa_key: Option<PathBuf>,

    /// Open the vault through an RSA slot with this shell command: it reads the slot's wrapped
    /// key on stdin and prints the unwrapped key (a key service or hardware module holds the
    /// private key)
    #[arg(long, global = true, value_name = "CMD")]
    pub unwrap_command: Option<String>,

    /// Log detail for diagnostics (error, warn, info, debug, trace)
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn", value_parser = log_spec)]
    pub log: String,

    /// Where vaults on S3 keep their local cache: index, lock, control socket, daemon log
    /// [default: $XDG_CACHE_HOME/vaultfs or ~/.cache/vaultfs]
    #[arg(long, global = true, value_name = "DIR", env = "VAULTFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// S3 endpoint URL for s3:// vaults [default: AWS_ENDPOINT_URL, else AWS's for the region];
    /// plain http only to a loopback address
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// S3 region [default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1]
    #[arg(long, global = true, value_name = "REGION")]
    pub s3_region: Option<String>,

    /// VAULT is a secondary copy made by `replicate`: open it read-only (mount shows its
    /// points read-only; restore, points, items and check work), also with the primary gone
    #[arg(long, global = true)]
    pub replica: bool,

    /// If another process (a running backup, gc, ...) holds the vault, wait up to DURATION for
    /// it (`30s`, `5m`, `1h`; a number is seconds) instead of failing at once
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_wait: Option<std::time::Duration>,

    #[command(subcommand)]
    pub command: Command,
}

/// `--log`: a level, or comma-separated `LEVEL` / `TARGET=LEVEL` directives.
fn log_spec(s: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for part in s.split(',') {
        let level = part.rsplit_once('=').map_or(part, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "unknown level {level:?}: use error, warn, info, debug, trace or off (or TARGET=LEVEL)"
            ));
        }
    }
    Ok(s.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault
    Init(InitArgs),
    /// Ingest a directory as a new recovery point, without mounting
    Backup(BackupArgs),
    /// List protected items
    Items(ItemsArgs),
    /// List recovery points
    Points(PointsArgs),
    /// Restore a point, or a path inside it, to a directory
    Restore(RestoreArgs),
    /// List the entries of a point, or of a path inside it
    Ls(LsArgs),
    /// Find which points hold paths matching a glob pattern
    Find(FindArgs),
    /// Show what was added, removed and changed between two points
    Diff(DiffArgs),
    /// Sizes of the vault, an item or a point: logical, unique and stored bytes, dedup and
    /// compression ratios, files and chunks
    Stats(StatsArgs),
    /// Verify the index, every tree and (with --read-data) every chunk
    Check(CheckArgs),
    /// Rebuild the index and catalog from everything that still authenticates: the packs, the
    /// old index and catalog; keeps every point (marking those with lost data) and the
    /// previous index (index.prev)
    Repair(RepairArgs),
    /// Mount a vault: incoming/ITEM writable, points/ITEM/POINT read-only, .deleted/ for
    /// soft-deleted points
    Mount(MountArgs),
    /// Serve the points (and versions/) of a vault read-only over WebDAV, for machines
    /// without FUSE
    ServeWebdav(ServeWebdavArgs),
    /// Freeze incoming/ITEM of a mounted vault into a new recovery point; prints its name
    Snapshot(SnapshotArgs),
    /// Unmount a mounted vault cleanly (finishes pending work first)
    Umount(UmountArgs),
    /// Soft-delete a point: it moves to .deleted/ and is purged after the soft-delete period
    Delete(PointArg),
    /// Bring a soft-deleted point back
    Undelete(PointArg),
    /// Purge soft-deleted points past their purge time and reclaim unused space
    Gc(GcArgs),
    /// Show or change vault settings (soft delete)
    Settings(SettingsArgs),
    /// Show or set an item's backup policy (schedule and retention)
    Policy(PolicyArgs),
    /// Copy the vault to a secondary (a directory or a bucket) that can be mounted and
    /// restored from when the primary is gone; or show how far the secondary lags
    Replicate(ReplicateArgs),
    /// List jobs (backup, snapshot, restore, check, gc, replicate), or show one
    Jobs(JobsArgs),
    /// Health of the vault: per item the newest point's age against its schedule, protection,
    /// space, ratios, last check, running jobs
    Status(StatusArgs),
    /// List alerts (failed jobs, missed schedules, corruption, low space, weakened
    /// protection), or acknowledge one
    Alerts(AlertsArgs),
    /// Print the vault's metrics in the Prometheus (OpenMetrics) text format
    Metrics(MetricsArgs),
    /// What is unprotected or risky in the vault, with the command that fixes each
    Advisor(StatusArgs),
    /// Write the vault's health and history as one self-contained HTML page with charts
    /// (storage growth, data added, ratios, job history, points, recovery point age)
    Report(ReportArgs),
    /// Manage key slots and data-key epochs (list, add, remove, rotate)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Roles: grant, revoke and list who may read, operate or contribute (owner only)
    #[command(subcommand)]
    Role(RoleCommand),
    /// Multi-user authorization: a guard key whose approvals protected operations need
    #[command(subcommand)]
    Guard(GuardCommand),
    /// Show the audit log (who did what, when, and how it ended), or verify its chain
    Audit(AuditArgs),
    /// Print shell completions
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List key slots and data-key epochs
    List(KeyListArgs),
    /// Add a key slot (opened with any existing slot)
    Add(KeyAddArgs),
    /// Remove a key slot: its key no longer opens the vault (the last slot cannot be removed)
    Remove(KeyRemoveArgs),
    /// Re-wrap a slot under a new secret of its kind (no pack changes), or with --data-key
    /// start a new data key for everything written from now on
    Rotate(KeyRotateArgs),
}

#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

/// The secret of a new or rotated slot (none given: a new passphrase).
#[derive(Debug, Args)]
pub struct NewSecretArgs {
    /// The new slot is a keyfile: write a new random 256-bit key to FILE (created 0600, must not
    /// exist)
    #[arg(long, value_name = "FILE", conflicts_with = "rsa_public_key")]
    pub new_key_file: Option<PathBuf>,
    /// The new slot is a customer-managed RSA key (PEM public key, 2048-4096 bits); the vault
    /// stores only the public key
    #[arg(long, value_name = "PEM")]
    pub rsa_public_key: Option<PathBuf>,
    /// The new passphrase, first line of FILE (else VAULTFS_NEW_PASSPHRASE, or a prompt)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["new_key_file", "rsa_public_key"])]
    pub new_passphrase_file: Option<PathBuf>,
    /// Argon2id memory cost of a new passphrase slot, KiB
    #[arg(long, default_value_t = 65536, value_name = "KIB")]
    pub kdf_memory_kib: u32,
    /// Argon2id passes of a new passphrase slot
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub kdf_iterations: u32,
}

#[derive(Debug, Args)]
pub struct KeyAddArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    #[command(flatten)]
    pub secret: NewSecretArgs,
    /// A name for the slot (`ops laptop`, `kms prod`)
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub label: String,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Id of the slot (see `vaultfs key list`)
    pub slot: u32,
    /// A guard approval (from `vaultfs guard approve`) for this operation, used once
    #[arg(long, value_name = "FILE")]
    pub approval: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Id of the slot to re-wrap under a new secret of its kind
    #[arg(required_unless_present = "data_key", conflicts_with = "data_key")]
    pub slot: Option<u32>,
    /// Start a new data key: data written from now on is sealed with it; older data keys stay
    /// wrapped to read older data
    #[arg(long)]
    pub data_key: bool,
    #[command(flatten)]
    pub secret: NewSecretArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Report what would be purged and freed, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Purge every soft-deleted point now, not only expired ones (refused when soft delete is
    /// always-on)
    #[arg(long)]
    pub expire_now: bool,
    /// A guard approval (from `vaultfs guard approve`) for this operation, used once
    #[arg(long, value_name = "FILE")]
    pub approval: Option<PathBuf>,
    /// Print JSON (times in RFC 3339)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SoftDeleteMode {
    /// Soft delete can never be turned off again, and its period can only grow
    AlwaysOn,
    /// Deleted points may be purged by the next gc (same as --soft-delete-days 0)
    Off,
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Days a deleted point stays recoverable before gc may purge it (1-180; 0 = off)
    #[arg(long, value_name = "N")]
    pub soft_delete_days: Option<u32>,
    /// always-on (irreversible) or off
    #[arg(long, value_name = "MODE")]
    pub soft_delete: Option<SoftDeleteMode>,
    /// The secondary the mount daemon replicates to (a directory or s3://BUCKET/PREFIX), or
    /// `none`
    #[arg(long, value_name = "TARGET")]
    pub replicate_to: Option<PathBuf>,
    /// How often the mount daemon replicates: `every 6h`, `hourly`, `daily 02:00`, ... (as
    /// policy schedules), or `none`
    #[arg(long, value_name = "SPEC")]
    pub replicate_every: Option<String>,
    /// enabled: no point inside its retention can be deleted and retention and soft delete
    /// cannot be lowered; locked: enabled for ever; disabled
    #[arg(long, value_name = "MODE")]
    pub immutability: Option<ImmutabilityArg>,
    /// A guard approval (from `vaultfs guard approve`) for this operation, used once
    #[arg(long, value_name = "FILE")]
    pub approval: Option<PathBuf>,
    /// A shell command run with each new alert as JSON on its stdin (a mail or webhook
    /// script), retried with backoff; `none` stops delivery
    #[arg(long, value_name = "CMD")]
    pub alert_command: Option<String>,
    /// Print the settings (after any change) as JSON, times in RFC 3339
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImmutabilityArg {
    Disabled,
    Enabled,
    Locked,
}

impl From<ImmutabilityArg> for crate::format::Immutability {
    fn from(a: ImmutabilityArg) -> Self {
        match a {
            ImmutabilityArg::Disabled => Self::Disabled,
            ImmutabilityArg::Enabled => Self::Enabled,
            ImmutabilityArg::Locked => Self::Locked,
        }
    }
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// The item
    pub item: String,
    /// When the mount daemon snapshots incoming/ITEM: `hourly`, `every 4h`, `daily 02:00`,
    /// `weekly sun 03:00` (UTC), or `none`
    #[arg(long, value_name = "SPEC")]
    pub schedule: Option<String>,
    /// Keep the N newest points
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest point of each of the last N days that have points
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest point of each of the last N ISO weeks that have points
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest point of each of the last N months that have points
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest point of each of the last N years that have points
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// A guard approval (from `vaultfs guard approve`) for this operation, used once
    #[arg(long, value_name = "FILE")]
    pub approval: Option<PathBuf>,
    /// Show which points the new retention would retire; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the policy (after any change) and the points retired as JSON, times in RFC 3339
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// The vault (a directory or s3://BUCKET/PREFIX)
    pub vault: PathBuf,
    /// The secondary: a directory or s3://BUCKET/PREFIX [default: the one set with
    /// `settings --replicate-to`, else the last one replicated to]
    #[arg(long, value_name = "TARGET")]
    pub to: Option<PathBuf>,
    /// Copy nothing: show per item how far the secondary's newest point is behind the
    /// primary's
    #[arg(long)]
    pub status: bool,
    /// With --status: print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VaultArg {
    /// Path of the vault directory
    pub vault: PathBuf,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The vault directory, or the directory it is mounted on
    pub vault: PathBuf,
    /// The item whose incoming/ITEM tree becomes a point
    pub item: String,
    #[command(flatten)]
    pub tags: TagArgs,
}

#[derive(Debug, Args)]
pub struct PointArg {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// ITEM/POINT
    pub point: String,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Directory to mount it on
    pub mountpoint: PathBuf,
    /// Stay in the foreground (log to stderr) instead of returning once mounted
    #[arg(long)]
    pub foreground: bool,
    /// Let other users access the mount; their roles decide what they see and change (`vaultfs
    /// role`), not the files' modes
    #[arg(long)]
    pub allow_other: bool,
    /// Memory for cached trees and chunks, e.g. 32M or 1G (the kernel's page cache keeps
    /// file contents too; this cache serves partial reads and directory listings)
    #[arg(long, default_value = "16M", value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: u64,
    /// FUSE worker threads
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub threads: usize,
    /// Carry FUSE requests over io_uring (Linux 6.14+ with the fuse module parameter
    /// enable_uring=Y): `auto` when the kernel offers it, `on` or fail, `off` /dev/fuse only
    #[arg(long, value_enum, default_value_t = IoUring::Auto, value_name = "MODE")]
    pub io_uring: IoUring,
    /// Where data written into incoming/ waits until it is sealed into the vault, encrypted
    /// with a key only the daemon holds; a directory vaultfs-<vault id> (mode 0700) is made in it
    #[arg(long, default_value = "/var/tmp", value_name = "DIR")]
    pub staging_dir: PathBuf,
    /// Mount even if the mount point holds files (they are hidden while mounted)
    #[arg(long)]
    pub nonempty: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics from the daemon: `PORT` listens on
    /// 127.0.0.1 only; give an address (`0.0.0.0:9469`) to expose it beyond this machine
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = crate::metrics::parse_listen)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `mount --io-uring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoUring {
    Auto,
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Mount point
    pub mountpoint: PathBuf,
}

/// `30s`, `5m`, `2h`, `1d`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("unknown unit in {s:?} (use s, m, h or d)")),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s or 5m"))?;
    Ok(std::time::Duration::from_secs(n.saturating_mul(mult)))
}

/// `256M`, `1G`, `4096` (bytes), `64K`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

impl Cli {
    /// Where S3 vaults are reached and cached, as the flags say.
    pub fn places(&self) -> crate::vault::Places {
        crate::vault::Places {
            cache_root: self.cache_dir.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
        }
    }
}

impl Command {
    /// The vault a command works on, if any (used to reach a running daemon).
    pub fn vault_path(&self) -> Option<&std::path::Path> {
        match self {
            Command::Backup(a) => Some(&a.vault),
            Command::Items(a) => Some(&a.vault),
            Command::Points(a) => Some(&a.vault),
            Command::Restore(a) => Some(&a.vault),
            Command::Ls(a) => Some(&a.vault),
            Command::Find(a) => Some(&a.vault),
            Command::Diff(a) => Some(&a.vault),
            Command::Stats(a) => Some(&a.vault),
            Command::Check(a) => Some(&a.vault),
            Command::Repair(a) => Some(&a.vault),
            Command::Mount(a) => Some(&a.vault),
            Command::ServeWebdav(a) => Some(&a.vault),
            Command::Snapshot(a) => Some(&a.vault),
            Command::Delete(a) | Command::Undelete(a) => Some(&a.vault),
            Command::Gc(a) => Some(&a.vault),
            Command::Settings(a) => Some(&a.vault),
            Command::Policy(a) => Some(&a.vault),
            Command::Replicate(a) => Some(&a.vault),
            Command::Audit(a) => Some(&a.vault),
            Command::Role(r) => Some(match r {
                RoleCommand::Grant(a) => &a.vault,
                RoleCommand::Revoke(a) => &a.vault,
                RoleCommand::List(a) => &a.vault,
            }),
            Command::Guard(g) => match g {
                GuardCommand::Init(a) => Some(&a.vault),
                GuardCommand::Remove(a) => Some(&a.vault),
                GuardCommand::Keygen(_) | GuardCommand::Approve(_) => None,
            },
            Command::Jobs(a) => match &a.show {
                Some(JobsCommand::Show(s)) => Some(&s.vault),
                None => a.vault.as_deref(),
            },
            Command::Status(a) => Some(&a.vault),
            Command::Metrics(a) => Some(&a.vault),
            Command::Advisor(a) => Some(&a.vault),
            Command::Report(a) => Some(&a.vault),
            Command::Alerts(a) => match &a.ack {
                Some(AlertsCommand::Ack(s)) => Some(&s.vault),
                None => a.vault.as_deref(),
            },
            Command::Key(k) => Some(match k {
                KeyCommand::List(a) => &a.vault,
                KeyCommand::Add(a) => &a.vault,
                KeyCommand::Remove(a) => &a.vault,
                KeyCommand::Rotate(a) => &a.vault,
            }),
            Command::Init(_) | Command::Umount(_) | Command::Completions(_) => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Path of the vault directory to create (must not exist, or be empty), or
    /// s3://BUCKET/PREFIX (an existing bucket; nothing may be stored under PREFIX yet)
    pub vault: PathBuf,
    /// Days a deleted point is kept, recoverable, before gc may purge it (1-180)
    #[arg(long, default_value_t = 14, value_name = "N")]
    pub soft_delete_days: u32,
    /// Argon2id memory cost of the passphrase key slot, KiB
    #[arg(long, default_value_t = 65536, value_name = "KIB")]
    pub kdf_memory_kib: u32,
    /// Argon2id passes of the passphrase key slot
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub kdf_iterations: u32,
    /// Average chunk size in bytes (min is a quarter, max four times); fixed for the vault's life
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub chunk_avg: u32,
    /// zstd compression level (1-19); 5 keeps the vault smaller than restic's at backup speed
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub zstd_level: i32,
    /// Target pack file size in MiB
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub pack_size_mib: u64,
    /// The first key slot is a customer-managed RSA key (PEM public key, 2048-4096 bits)
    /// instead of a passphrase: open the vault with --rsa-key or --unwrap-command
    #[arg(long, value_name = "PEM", conflicts_with = "new_key_file")]
    pub rsa_public_key: Option<PathBuf>,
    /// The first key slot is a keyfile: write a new random 256-bit key to FILE (created 0600)
    /// and open the vault with --key-file FILE
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<PathBuf>,
    /// A name for the first key slot
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub label: String,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Item to back up into (created on first use)
    pub item: String,
    /// Directory to back up; with several sources (directories or files), the point holds
    /// each under its last name
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Leave out entries matching PATTERN (repeatable): without `/` it matches names
    /// (`*.log`), from `/` the absolute path (`/home/*/.cache`), otherwise the end of the path
    /// (`build/*.o`); `*` stays within a name, `**` crosses directories
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from FILE, one per line (`#` comments and blank lines skipped)
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Leave out every directory that holds an entry named NAME (e.g. CACHEDIR.TAG), with
    /// its contents
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<std::ffi::OsString>,
    /// Keep directories on other filesystems than their source empty (vaultfs mounts are
    /// never entered, with or without this)
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    #[command(flatten)]
    pub tags: TagArgs,
    /// Print JSON (times in RFC 3339)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ItemsArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PointsArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Only this item's points
    pub item: Option<String>,
    /// List soft-deleted points instead, with their purge time
    #[arg(long)]
    pub deleted: bool,
    #[command(flatten)]
    pub filter: PointFilterArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// ITEM (its newest point) or ITEM/POINT
    pub point: String,
    /// Directory to restore into (created if missing; must be empty unless --overwrite)
    pub dest: PathBuf,
    /// Restore only this path inside the point: the contents of directory SUB go into DEST
    /// (not DEST/SUB); a file SUB goes to DEST/NAME
    #[arg(long, value_name = "SUB")]
    pub path: Option<PathBuf>,
    /// Restore into a DEST that holds files: entries of the point replace files of the same
    /// name; other files are left alone
    #[arg(long)]
    pub overwrite: bool,
    /// Say what would be restored (entries, bytes, files replaced), write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// After restoring, read every restored file back and check it against the point
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Also read, decrypt and verify every blob of every pack, indexed or not
    #[arg(long)]
    pub read_data: bool,
    /// Print JSON (times in RFC 3339)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Say what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate completions for
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct JobsArgs {
    /// Path of the vault directory
    #[arg(required = true)]
    pub vault: Option<PathBuf>,
    /// Only jobs of this item
    #[arg(long, value_name = "ITEM")]
    pub item: Option<String>,
    /// Only jobs started since: a duration back from now (`90m`, `24h`, `7d`) or a UTC time
    /// (`2026-11-23T10:00:00Z`)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only failed (and cancelled) jobs
    #[arg(long)]
    pub failed: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub show: Option<JobsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Show one job in full
    Show(JobShowArgs),
}

#[derive(Debug, Args)]
pub struct JobShowArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// The job's id (see `vaultfs jobs VAULT`)
    pub id: u64,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AlertsArgs {
    /// Path of the vault directory
    #[arg(required = true)]
    pub vault: Option<PathBuf>,
    /// Also cleared alerts
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub ack: Option<AlertsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Acknowledge an active alert: it is no longer listed as active, and is cleared once its
    /// cause is gone
    Ack(AlertAckArgs),
}

#[derive(Debug, Args)]
pub struct AlertAckArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// The alert's id (see `vaultfs alerts VAULT`)
    pub id: u64,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// The HTML file to write (replaced if it exists)
    #[arg(long, value_name = "OUT.html")]
    pub html: PathBuf,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
}
