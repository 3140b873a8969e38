//! Errors of the vault layer: what the user did wrong, what is damaged, and what failed locally.

use std::io;
use std::path::PathBuf;

use crate::keys::KeyError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0} is not a vault: {1}")]
    NotAVault(PathBuf, String),
    #[error("{0} already exists and is not empty")]
    AlreadyExists(PathBuf),
    #[error(
        "vault format version {found} is newer than this vaultfs supports ({supported}); upgrade vaultfs"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("vault config is damaged: {0}")]
    BadConfig(String),
    #[error("vault is in use by pid {0}")]
    InUse(i64),
    #[error("no item named {0:?}")]
    UnknownItem(String),
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
    #[error("invalid setting: {0}")]
    BadSetting(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("catalog entry is damaged: {0}")]
    BadCatalog(String),
    #[error("{0}")]
    Failed(String),
}

impl VaultError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> VaultError {
        VaultError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;
