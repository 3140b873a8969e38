//! The daemon as a process: forked by `vaultfs mount` (before any thread exists: the index database and
//! rayon start threads), detached from the terminal with its output in the vault's log, telling
//! its parent over a pipe when the mount is ready; and found again by `vaultfs umount`, which
//! must not return before the process is gone.
//!
//! Why wait for the process and not only for the vault lock: the lock (a POSIX record lock) is
//! released while the exiting process closes its files one by one, before the index database's own lock on
//! its database (an flock, released later in the exit) and the FUSE device. A `mount` started
//! in that moment failed to open the index ("could not acquire lock"). A pidfd becomes readable
//! only once the process has exited, its files closed and every lock with them.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::vault::lock;

/// Where a daemon's stdout and stderr go, in the vault directory.
pub const LOG_FILE: &str = "daemon.log";

/// The write end of the pipe on which a forked daemon reports to its parent.
pub struct Ready(Option<OwnedFd>);

impl Ready {
    /// A daemon in the foreground has no parent to tell.
    pub fn foreground() -> Ready {
        Ready(None)
    }

    pub fn is_foreground(&self) -> bool {
        self.0.is_none()
    }

    /// Tell the parent the mount is ready, or why it is not.
    pub fn send(self, r: Result<(), &dyn std::fmt::Display>) {
        if let Some(fd) = self.0 {
            let mut f = std::fs::File::from(fd);
            let _ = match r {
                Ok(()) => f.write_all(b"ok\n"),
                Err(e) => f.write_all(format!("err {e}\n").as_bytes()),
            };
        }
    }
}

/// What a forked daemon told its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The mount is ready.
    Ready,
    /// It could not mount; its one-line reason.
    Refused(String),
    /// It exited without a word (see its log).
    Died,
}

/// Fork a daemon that runs `run` (whose result is its exit code) detached, with stdio to the
/// vault's log. Returns its pid and what it reported.
///
/// # Safety of use
/// Call before any thread exists in this process.
pub fn fork_daemon(
    vault: &Path,
    run: impl FnOnce(Ready) -> i32,
) -> std::io::Result<(i32, Started)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fds are fresh and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller forks before any thread exists (see above).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(read_end);
        let ready = Ready(Some(write_end));
        let code = match detach(vault) {
            Ok(()) => run(ready),
            Err(e) => {
                ready.send(Err(&format_args!("cannot start the daemon: {e}")));
                1
            }
        };
        std::process::exit(code);
    }
    drop(write_end);
    let mut msg = String::new();
    let _ = std::fs::File::from(read_end).read_to_string(&mut msg);
    let started = match msg.strip_prefix("ok") {
        Some(_) => Started::Ready,
        None if msg.is_empty() => Started::Died,
        None => Started::Refused(msg.trim_start_matches("err ").trim().to_string()),
    };
    if started != Started::Ready {
        // Reap it: a mount tried right after a refused one must not find the vault still
        // locked by this daemon on its way out.
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    Ok((pid, started))
}

/// Detach from the terminal: new session, stdin from /dev/null, stdout and stderr to the log.
fn detach(vault: &Path) -> std::io::Result<()> {
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        libc::setsid();
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(vault.join(LOG_FILE))?;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 onto the standard fds; the sources stay open until after.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(())
}

/// The process holding a vault (its daemon), pinned by a pidfd: a pid reused after it exits
/// cannot be mistaken for it.
pub struct Holder {
    pidfd: OwnedFd,
}

impl Holder {
    /// The process that holds the vault's lock now, if there is one this process can see.
    pub fn of(vault: &Path) -> Option<Holder> {
        let pid = lock::holder(vault).filter(|p| *p > 0)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh fd owned by nobody else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // The pid may have changed hands between the two calls: it must still hold the lock.
        (lock::holder(vault) == Some(pid)).then_some(Holder { pidfd })
    }

    /// Wait until the process has exited, at most `limit`; true if it has.
    pub fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: poll on one pollfd we own.
            match unsafe { libc::poll(&mut pfd, 1, ms) } {
                n if n > 0 => return true,
                0 => return false,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
    }
}

/// Wait until nobody holds the vault's lock, at most `limit` (for a holder this process cannot
/// pin, e.g. one in another pid namespace); true if it is free.
pub fn wait_unlocked(vault: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while lock::holder(vault).is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
