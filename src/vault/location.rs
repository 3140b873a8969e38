//! Where a vault is: a local directory, or a prefix in an S3 bucket (`s3://BUCKET/PREFIX`).
//!
//! Every vault also has a local directory, [`Location::local_dir`]: for a local vault the
//! vault itself; for an S3 vault its cache directory `CACHE/<vault id>-<12 hex>` (the hex is
//! a hash of endpoint, bucket and prefix: a replica of the same vault elsewhere has the same
//! id and must not share an index). It holds what is not a store object: the index database
//! (a cache the packs rebuild), the local half of the lock, and, while mounted, `control.sock`
//! and `daemon.log`. A file `location` there names the bucket, so the cache directory (the
//! mount's source in /proc/mounts) leads back to the vault.
//!
//! S3 settings come from flags or the usual AWS variables, and only these: AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
//! AWS_ENDPOINT_URL. No credential chain, never the instance metadata service: without
//! explicit credentials no client is built.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Result, VaultError};
use crate::store::backend::Backend;
use crate::store::backend::local::LocalBackend;
use crate::store::backend::s3::{Endpoint, S3Backend};

/// The file naming an S3 vault in its cache directory.
pub const LOCATION_FILE: &str = "location";
const SCHEME: &str = "s3://";

/// How to reach S3 vaults, from the command line (each falls back to its AWS variable).
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// Root of the cache directories of S3 vaults.
    pub cache_root: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Location),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket: String,
    /// No leading or trailing `/`; may be empty.
    pub prefix: String,
    pub endpoint: String,
    pub region: String,
    #[serde(skip)]
    pub cache_root: PathBuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Places {
    /// Root of the cache directories (`--cache-dir`, else the XDG cache).
    pub fn cache_root(&self) -> PathBuf {
        if let Some(d) = &self.cache_root {
            return d.clone();
        }
        if let Some(d) = var("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("vaultfs");
        }
        match var("HOME") {
            Some(h) => PathBuf::from(h).join(".cache/vaultfs"),
            None => PathBuf::from("/var/cache/vaultfs"),
        }
    }

    fn region(&self) -> String {
        self.region
            .clone()
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into())
    }
}

impl Location {
    /// What the user named: `s3://BUCKET/PREFIX`, an S3 vault's cache directory, or a local
    /// directory (relative to `cwd`).
    pub fn parse(given: &Path, cwd: &Path, places: &Places) -> Result<Location> {
        let text = given.to_string_lossy();
        if let Some(rest) = text.strip_prefix(SCHEME) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(VaultError::BadSetting(format!(
                    "{text}: no bucket (expected s3://BUCKET/PREFIX)"
                )));
            }
            let region = places.region();
            let endpoint = places
                .endpoint
                .clone()
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
            return Ok(Location::S3(S3Location {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
                endpoint: endpoint.trim_end_matches('/').into(),
                region,
                cache_root: places.cache_root(),
            }));
        }
        let dir = if given.is_absolute() {
            given.to_path_buf()
        } else {
            cwd.join(given)
        };
        let named = dir.join(LOCATION_FILE);
        if named.is_file() && !dir.join(crate::store::backend::CONFIG_NAME).exists() {
            let bytes = std::fs::read(&named).map_err(|e| VaultError::io("read", &named, e))?;
            let mut s3: S3Location = serde_json::from_slice(&bytes).map_err(|e| {
                VaultError::BadSetting(format!("{}: not a location: {e}", named.display()))
            })?;
            s3.cache_root = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
            return Ok(Location::S3(s3));
        }
        Ok(Location::Local(dir))
    }

    /// As the user would write it (an S3 location with its endpoint).
    pub fn display(&self) -> String {
        match self {
            Location::Local(dir) => dir.display().to_string(),
            Location::S3(s) => s.url(),
        }
    }

    /// The path errors name (a local directory, or the URL).
    pub fn shown(&self) -> PathBuf {
        match self {
            Location::Local(dir) => dir.clone(),
            Location::S3(s) => PathBuf::from(s.url()),
        }
    }

    /// The vault's local directory (see the module doc).
    pub fn local_dir(&self, vault_id: &str) -> PathBuf {
        match self {
            Location::Local(dir) => dir.clone(),
            Location::S3(s) => s.cache_root.join(format!("{vault_id}-{}", s.hash12())),
        }
    }

    /// The backend holding the vault's objects; `local_dir` is where an S3 vault keeps the
    /// local half of its lock (needed only to lock).
    pub fn backend(&self, local_dir: Option<&Path>) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            Location::Local(dir) => Arc::new(LocalBackend::new(dir)),
            Location::S3(s) => Arc::new(s.backend(local_dir)?),
        })
    }

    /// Where this machine keeps its index of a secondary copy at this location that it
    /// reads (`mount --replica`, `restore --replica`): apart from the place `replicate`
    /// locks, so reading a secondary and updating it do not exclude each other.
    pub fn replica_dir(&self, vault_id: &str, cache_root: &Path) -> PathBuf {
        let identity = match self {
            Location::Local(dir) => dir
                .canonicalize()
                .unwrap_or_else(|_| dir.clone())
                .display()
                .to_string(),
            Location::S3(s) => s.identity(),
        };
        let hash = &blake3::hash(identity.as_bytes()).to_hex()[..12];
        cache_root.join(format!("{vault_id}-{hash}-replica"))
    }

    /// True if both name the same vault place.
    pub fn same_as(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => same_dir(a, b),
            (Location::S3(a), Location::S3(b)) => a.identity() == b.identity(),
            _ => false,
        }
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3(_))
    }
}

/// True if both paths name the same existing directory.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

impl S3Location {
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("{SCHEME}{}", self.bucket)
        } else {
            format!("{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }

    fn identity(&self) -> String {
        format!("{} {} {}", self.endpoint, self.bucket, self.prefix)
    }

    fn hash12(&self) -> String {
        blake3::hash(self.identity().as_bytes()).to_hex()[..12].to_string()
    }

    pub fn backend(&self, local_dir: Option<&Path>) -> Result<S3Backend> {
        let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(VaultError::BadSetting(format!(
                "no credentials for {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                self.url()
            )));
        };
        let credentials = match var("AWS_SESSION_TOKEN") {
            Some(token) => rusty_s3::Credentials::new_with_token(key, secret, token),
            None => rusty_s3::Credentials::new(key, secret),
        };
        let url = url::Url::parse(&self.endpoint).map_err(|e| {
            VaultError::BadSetting(format!("endpoint {:?} is not a URL: {e}", self.endpoint))
        })?;
        let endpoint = Endpoint {
            url,
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            credentials,
        };
        Ok(S3Backend::new(endpoint, &self.prefix, local_dir)?)
    }

    /// Make the cache directory (mode 0700) and name the vault in it.
    pub fn prepare_local_dir(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| VaultError::io("create", dir, e))?;
        let named = dir.join(LOCATION_FILE);
        let text = serde_json::to_vec_pretty(self).expect("location serialises");
        if std::fs::read(&named).ok().as_deref() != Some(&text[..]) {
            std::fs::write(&named, text).map_err(|e| VaultError::io("write", &named, e))?;
        }
        Ok(())
    }
}
