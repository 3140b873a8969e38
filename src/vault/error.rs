//! Errors of the vault layer: what the user did wrong, what is damaged (always a
//! [`StoreError`], whose `Corrupt` is the one variant for bad stored bytes), and what failed
//! locally (an `io::Error`, errno kept).

use std::io;
use std::path::PathBuf;

use crate::keys::KeyError;
use crate::store::{Damaged, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0} is not a vault: {1}")]
    NotAVault(PathBuf, NotAVault),
    #[error("{0} already exists and is not empty")]
    AlreadyExists(PathBuf),
    #[error(
        "vault format version {found} is newer than this vaultfs supports ({supported}); upgrade vaultfs"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("no item named {0:?}")]
    UnknownItem(String),
    #[error("item {0:?} already exists")]
    ItemExists(String),
    #[error("item {item:?} has no point {point:?}")]
    UnknownPoint { item: String, point: String },
    #[error("item {0:?} has no recovery points")]
    NoPoints(String),
    #[error(
        "invalid item name {0:?}: use 1-64 characters of A-Z a-z 0-9 . _ - not starting with '.'"
    )]
    BadItemName(String),
    #[error("invalid point name {0:?}: expected a name like 2026-11-23T23-10-05Z")]
    BadPointName(String),
    #[error("item {0:?} has recovery points; it cannot be removed")]
    HasPoints(String),
    #[error("{item}/{point} is already deleted")]
    AlreadyDeleted { item: String, point: String },
    #[error("{item}/{point} is not deleted")]
    NotDeleted { item: String, point: String },
    #[error("incoming/{0} is empty: mount the vault and copy files into incoming/{0}/ first")]
    IncomingEmpty(String),
    /// Refused by immutability, a role or the guard (DESIGN.md §13): an audit record too.
    #[error("denied: {0}")]
    Denied(String),
    /// An option out of its range (the message says which and why).
    #[error("invalid setting: {0}")]
    BadSetting(String),
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("--path {0}: '..' is not allowed")]
    PathEscapes(PathBuf),
    /// A glob pattern (`find`, `--exclude`) that does not parse.
    #[error("invalid pattern {pattern:?}: {why}")]
    BadPattern { pattern: String, why: String },
    #[error("{path} not found in point {item}/{point}")]
    NotInPoint {
        path: PathBuf,
        item: String,
        point: String,
    },
    /// A pack write failed while the operation ran: some blob it relies on may be lost.
    #[error(
        "a pack write failed during this operation (see earlier errors); nothing was committed, run it again"
    )]
    WriteFailed,
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A thread (or pool of threads) could not be started.
    #[error("cannot start {what}: {source}")]
    Thread {
        what: &'static str,
        source: io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Pool {
        what: &'static str,
        source: rayon::ThreadPoolBuildError,
    },
    #[error(
        "the config is generation {found}, but this vault has seen generation {known}: an older \
         config was copied back (rollback); `vaultfs repair` restores the newest from the packs"
    )]
    ConfigRolledBack { found: u64, known: u64 },
    #[error("key slot {0} does not exist")]
    NoSuchSlot(u32),
    #[error("key slot {0} is the vault's last: add another slot before removing it")]
    LastSlot(u32),
    #[error("the vault is mounted: unmount it (vaultfs umount MNT) before changing its keys")]
    KeysWhileMounted,
    /// A broken invariant of this program (a bug), named.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl VaultError {
    /// The message without item, point or file names, for `daemon.log`: it is plaintext
    /// under VAULT/, where names must never be (DESIGN.md §12).
    pub fn for_log(&self) -> String {
        use VaultError as E;
        match self {
            E::UnknownItem(_) => "no such item".into(),
            E::ItemExists(_) => "the item already exists".into(),
            E::UnknownPoint { .. } => "no such point".into(),
            E::NoPoints(_) => "the item has no recovery points".into(),
            E::BadItemName(_) => "invalid item name".into(),
            E::BadPointName(_) => "invalid point name".into(),
            E::HasPoints(_) => "the item has recovery points".into(),
            E::AlreadyDeleted { .. } => "the point is already deleted".into(),
            E::NotDeleted { .. } => "the point is not deleted".into(),
            E::IncomingEmpty(_) => "the item's incoming/ is empty".into(),
            E::NotADirectory(_) | E::PathEscapes(_) | E::NotInPoint { .. } => {
                "a path in a point".into()
            }
            e => e.to_string(),
        }
    }
}

/// Why a directory is not a vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAVault {
    #[error("no such directory")]
    Missing,
    #[error("it is not a directory")]
    NotADirectory,
    #[error("no config file")]
    NoConfig,
    #[error("config is not a vaultfs config")]
    ForeignConfig,
}

impl VaultError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> VaultError {
        VaultError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The error of a thread (or pool) `what` that could not start, for `map_err`.
    pub fn thread(what: &'static str) -> impl FnOnce(io::Error) -> VaultError {
        move |source| VaultError::Thread { what, source }
    }

    /// A failure that is an errno of its own (ENAMETOOLONG, say), not a call that failed.
    pub fn errno(op: &'static str, errno: i32) -> VaultError {
        VaultError::io(op, "", io::Error::from_raw_os_error(errno))
    }

    /// Stored data that is damaged: `what`, and why.
    pub fn corrupt(what: Damaged, why: impl Into<String>) -> VaultError {
        VaultError::Store(StoreError::corrupt(what, why))
    }

    /// True when the error means stored data is damaged or gone.
    pub fn is_damage(&self) -> bool {
        matches!(self, VaultError::Store(e) if e.is_damage())
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;
