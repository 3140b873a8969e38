//! Vaults in an S3 object store, against a real server (SeaweedFS on 127.0.0.1, see
//! `server.rs`): the whole flow, rebuilding the index from the bucket alone, replication and
//! restore from the secondary, one writer per bucket, and faults (server gone, wrong
//! credentials, missing bucket, restarts during reads).

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod flow;
mod lock;
mod replication;
mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::PASS;
use common::mnt::Mount;

/// How the tests of one vault run `vaultfs`: the server's endpoint and credentials, a cache
/// directory of their own, and optionally a test clock.
#[derive(Clone)]
pub struct S3 {
    pub env: HashMap<String, String>,
    pub cache: PathBuf,
}

impl S3 {
    pub fn new(server: &server::Server, cache: &Path) -> S3 {
        let mut env: HashMap<String, String> = server
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.insert("VAULTFS_CACHE_DIR".into(), cache.display().to_string());
        env.insert("VAULTFS_PASSPHRASE".into(), PASS.into());
        S3 {
            env,
            cache: cache.to_path_buf(),
        }
    }

    /// The same, with another cache directory (as another machine would have).
    pub fn elsewhere(&self, cache: &Path) -> S3 {
        let mut other = self.clone();
        other
            .env
            .insert("VAULTFS_CACHE_DIR".into(), cache.display().to_string());
        other.cache = cache.to_path_buf();
        other
    }

    pub fn with(&self, key: &str, value: &str) -> S3 {
        let mut other = self.clone();
        other.env.insert(key.into(), value.into());
        other
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::bin());
        c.args(args).env_remove("RUST_LOG").envs(&self.env);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run vaultfs")
    }

    /// The command must succeed; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        common::succeeded(args, self.run(args))
    }

    /// The command must fail with one clear line (no panic); returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} should fail: {stderr}");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.starts_with("vaultfs: "), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        stderr
    }

    pub fn init(&self, url: &str) {
        self.ok(&[
            "init",
            url,
            "--kdf-memory-kib",
            "64",
            "--kdf-iterations",
            "1",
            "--pack-size-mib",
            "1",
        ]);
    }

    /// `backup`; returns the point's name.
    pub fn backup(&self, url: &str, item: &str, src: &Path) -> String {
        let out = self.ok(&["backup", url, item, src.to_str().unwrap()]);
        common::created_point(&out)
            .unwrap_or_else(|| panic!("no point in {out}"))
            .1
    }

    /// A mount guard whose daemon gets this environment.
    pub fn mount(&self, url: &str, mnt: &Path) -> Mount {
        let mut m = Mount::guard(Path::new(url), mnt);
        for (k, v) in &self.env {
            m = m.with_env(k, v);
        }
        m
    }
}

/// A client of `bucket` on `srv`, to look at or destroy what a vault stored.
pub fn client(srv: &server::Server, bucket: &str) -> vaultfs::store::backend::s3::Client {
    let endpoint = vaultfs::store::backend::s3::Endpoint {
        url: url::Url::parse(srv.endpoint()).unwrap(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        credentials: rusty_s3::Credentials::new(
            &srv.env["AWS_ACCESS_KEY_ID"],
            &srv.env["AWS_SECRET_ACCESS_KEY"],
        ),
    };
    vaultfs::store::backend::s3::Client::new(endpoint).unwrap()
}

/// Set the vault clock in `file` (read by `VAULTFS_TEST_CLOCK` builds) to `secs`.
pub fn set_clock(file: &Path, secs: i64) {
    std::fs::write(file, (secs * 1_000_000_000).to_string()).unwrap();
}

/// A test's own key prefix in the shared bucket: `s3://vault/NAME-<random>`.
pub fn url(name: &str) -> String {
    format!("s3://{}/{}", server::BUCKET, unique(name))
}

pub fn unique(name: &str) -> String {
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).unwrap();
    format!("{name}-{}", hex::encode(r))
}
