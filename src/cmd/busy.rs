//! While `backup` holds an unmounted vault (the index database allows one process), it
//! answers other commands on the vault's control socket, as a mount daemon does: read-only
//! ones run against its open vault, writers are told the vault is in use (and, with
//! `--lock-wait`, their client retries until the backup ends). DESIGN §14.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use vaultfs::cli::{Cli, Command};
use vaultfs::control::{self, Handler, Request, Response};
use vaultfs::vault::Vault;

/// Exit code of a command refused because a backup holds the vault (EX_TEMPFAIL).
pub const EXIT_BUSY: i32 = 75;
/// How the refusal starts, so a client waiting with `--lock-wait` knows it.
pub const BUSY_PREFIX: &str = "vaultfs: error: vault is in use by a running backup";

/// Commands that only read the vault (they may write local files, as `restore` does).
fn read_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Items(_)
            | Command::Points(_)
            | Command::Ls(_)
            | Command::Find(_)
            | Command::Diff(_)
            | Command::Stats(_)
            | Command::Check(_)
            | Command::Restore(_)
            | Command::Jobs(_)
            | Command::Status(_)
            | Command::Advisor(_)
            | Command::Metrics(_)
    )
}

/// The socket of a backup in progress; dropping it stops taking commands and waits (a while)
/// for those running to finish.
pub struct Serving {
    dir: PathBuf,
    gate: Arc<Gate>,
}

/// Commands running, and whether the backup stopped taking more. The handler holds the vault
/// weakly and only while a command runs: the vault must drop at the backup's end, since its
/// drop flushes the index database (the job's end is written there).
#[derive(Default)]
struct Gate {
    active: AtomicUsize,
    closed: AtomicBool,
}

/// Answer commands on `vault`'s control socket until the returned guard drops. `None` when the
/// socket cannot be made (the backup goes on; other commands then find the vault in use).
pub fn serve(vault: &Arc<Vault>) -> Option<Serving> {
    let gate = Arc::new(Gate::default());
    let (weak, count): (Weak<Vault>, _) = (Arc::downgrade(vault), gate.clone());
    let pid = std::process::id();
    let handler: Handler = Arc::new(move |req, out| {
        let Request::Command { argv_hex, .. } = &req else {
            out.err(format!(
                "vaultfs: error: the vault is not mounted; a backup (pid {pid}) holds it"
            ));
            out.send(&Response::Exit(1));
            return;
        };
        let argv = argv_hex
            .iter()
            .map(|a| std::os::unix::ffi::OsStringExt::from_vec(hex::decode(a).unwrap_or_default()));
        let parsed = <Cli as clap::Parser>::try_parse_from(
            std::iter::once(std::ffi::OsString::from("vaultfs")).chain(argv),
        );
        if parsed.is_ok_and(|cli| !read_only(&cli.command)) {
            out.err(format!(
                "{BUSY_PREFIX} (pid {pid}); try again when it ends, or give --lock-wait"
            ));
            out.send(&Response::Exit(EXIT_BUSY));
            return;
        }
        // Counted before looking at `closed`, which the drop sets before looking at the count:
        // either this sees the backup ending, or the drop waits for this command.
        count.active.fetch_add(1, Ordering::SeqCst);
        match weak.upgrade() {
            Some(vault) if !count.closed.load(Ordering::SeqCst) => {
                super::serve_remote(vault, req, out);
            }
            _ => {
                out.err(format!(
                    "{BUSY_PREFIX} (pid {pid}), which is ending; try again"
                ));
                out.send(&Response::Exit(EXIT_BUSY));
            }
        }
        count.active.fetch_sub(1, Ordering::SeqCst);
    });
    let open = !vault.roles().is_empty();
    match control::serve(vault.dir(), handler, open) {
        Ok(()) => Some(Serving {
            dir: vault.dir().to_path_buf(),
            gate,
        }),
        Err(e) => {
            tracing::info!("no control socket during the backup: {e}");
            None
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.gate.closed.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(control::socket_path(&self.dir));
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.gate.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
