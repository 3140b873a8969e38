//! The control socket: while a daemon holds a vault (the index database allows one process), every CLI command
//! reaches the vault through `VAULT/control.sock`.
//!
//! Protocol: one JSON request line from the client, then JSON lines from the daemon —
//! `{"out": text}` and `{"err": text}` as the command prints, and finally `{"exit": code}`.
//! Only the vault directory's owner (or root) may connect (checked with SO_PEERCRED); the
//! socket file is mode 0600. That is the whole authentication: the daemon already holds the
//! vault's key, so no passphrase or key travels, and a command costs no key derivation.
//!
//! A vault may live at a path longer than a socket address holds (108 bytes). The socket stays
//! `VAULT/control.sock`, but is bound and reached through `/proc/self/fd/N/control.sock`, N an
//! `O_PATH` descriptor of the vault directory: a short address whatever the vault's path.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub const SOCKET_FILE: &str = "control.sock";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Run a CLI command: its argv (without the program name; each argument's bytes in hex, as
    /// Unix arguments need not be UTF-8) and the client's working directory.
    Command { argv_hex: Vec<String>, cwd: PathBuf },
    /// Unmount and stop the daemon; answered once the mount is gone.
    Unmount,
    /// Where is this vault mounted, how many scheduler ticks has the daemon done, and which
    /// FUSE requests has it served?
    Status,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Out(String),
    Err(String),
    Exit(i32),
}

/// Writes responses to one client.
pub struct Responder {
    stream: UnixStream,
    broken: bool,
    /// The client's uid and gid (SO_PEERCRED).
    peer: Option<(u32, u32)>,
}

impl Responder {
    /// The client's uid and gid, from its socket's peer credentials.
    pub fn peer(&self) -> Option<(u32, u32)> {
        self.peer
    }

    pub fn send(&mut self, r: &Response) {
        if self.broken {
            return;
        }
        let mut line = serde_json::to_vec(r).expect("response encodes");
        line.push(b'\n');
        if self.stream.write_all(&line).is_err() {
            self.broken = true;
        }
    }

    pub fn out(&mut self, s: impl Into<String>) {
        self.send(&Response::Out(s.into()));
    }

    pub fn err(&mut self, s: impl Into<String>) {
        self.send(&Response::Err(s.into()));
    }
}

pub type Handler = Arc<dyn Fn(Request, &mut Responder) + Send + Sync>;

pub fn socket_path(vault_dir: &Path) -> PathBuf {
    vault_dir.join(SOCKET_FILE)
}

/// Bind the socket (replacing a stale one: the caller holds the vault lock, so no live daemon
/// owns it) and serve each connection on its own thread.
/// `open`: the vault has roles, so any local user may connect (the socket is 0666) and the
/// command's role check decides; otherwise only root and the vault's owner may.
pub fn serve(vault_dir: &Path, handler: Handler, open: bool) -> std::io::Result<()> {
    let path = socket_path(vault_dir);
    let _ = std::fs::remove_file(&path);
    let listener = with_short_path(vault_dir, |p| UnixListener::bind(p))?;
    let mode = if open { 0o666 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    let owner = std::fs::metadata(vault_dir)?.uid();
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                let handler = handler.clone();
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        serve_one(stream, owner, open, handler);
                    });
            }
        })?;
    Ok(())
}

fn peer_cred(stream: &UnixStream) -> Option<(u32, u32)> {
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `len` bytes into a ucred we own.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some((cred.uid, cred.gid))
}

fn serve_one(stream: UnixStream, owner: u32, open: bool, handler: Handler) {
    let mut responder = match stream.try_clone() {
        Ok(s) => Responder {
            stream: s,
            broken: false,
            peer: peer_cred(&stream),
        },
        Err(_) => return,
    };
    match responder.peer.map(|p| p.0) {
        // The owner of the vault, and only if the daemon runs as that user too: a root
        // daemon serving a user's vault must not run that user's commands as root.
        // SAFETY: geteuid has no preconditions.
        Some(uid) if uid == 0 || (uid == owner && uid == unsafe { libc::geteuid() }) => {}
        // Roles decide, per command (`cmd::role`), and commands touching local paths are
        // refused to other users (`cmd::serve_remote`).
        Some(_) if open => {}
        _ => {
            responder.err(
                "vaultfs: error: permission denied: only the vault's owner may use its daemon",
            );
            responder.send(&Response::Exit(1));
            return;
        }
    }
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    match serde_json::from_str::<Request>(&line) {
        Ok(req) => handler(req, &mut responder),
        Err(e) => {
            responder.err(format!("vaultfs: error: bad control request: {e}"));
            responder.send(&Response::Exit(1));
        }
    }
}

/// Connect to the daemon of `vault_dir`, if one is listening.
pub fn connect(vault_dir: &Path) -> Option<UnixStream> {
    with_short_path(vault_dir, |p| UnixStream::connect(p)).ok()
}

/// Call `f` with a socket address for `VAULT/control.sock` that fits `sun_path` however long
/// the vault's path: `/proc/self/fd/N/control.sock` through an `O_PATH` descriptor of the
/// directory, held open for the call.
fn with_short_path<T>(
    vault_dir: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(vault_dir)?;
    f(&Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(SOCKET_FILE))
}

/// Send `req` and hand each response to `on_response` until the exit code, which is returned.
/// A daemon that hangs up without one yields `None`.
pub fn call(
    mut stream: UnixStream,
    req: &Request,
    mut on_response: impl FnMut(Response),
) -> std::io::Result<Option<i32>> {
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // A daemon that refuses the caller answers and closes without reading: its answer is
    // what counts, not the failed write.
    let written = stream.write_all(&line);
    for l in BufReader::new(&stream).lines() {
        let l = l?;
        match serde_json::from_str::<Response>(&l) {
            Ok(Response::Exit(code)) => return Ok(Some(code)),
            Ok(r) => on_response(r),
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "bad response from the daemon: {e}"
                )));
            }
        }
    }
    written.map(|()| None)
}
