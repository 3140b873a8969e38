//! One writer at a time on a bucket: the lock object `PREFIX/lock`.
//!
//! The object is never deleted: it is created at `init` (released) with `If-None-Match: *`,
//! and every later change (take, renew, take over, release) is a put with `If-Match: <etag>` of
//! the version just read, so of two writers racing for it exactly one gets 200 and the other
//! 412. The body says who holds it (host, boot id, pid, a random owner nonce) and until when
//! (vault clock); the holder renews it every quarter of its lifetime from a thread of its own.
//! A lock past its expiry, or held by a dead process of this very machine (same host and boot
//! id, no such pid: a `kill -9`), is stale and may be taken over. A holder whose renewal meets
//! 412 has been taken over while it was stopped: it marks itself lost and writes nothing more.
//!
//! A put whose answer was lost is not retried blindly: the object is read back and the owner
//! nonce compared. Servers that ignore the conditions (Garage, FACTS.md) are found at `init`
//! (a second create-only put succeeds) and the lock object records it; on those, a writer
//! puts unconditionally, waits [`SETTLE`], and keeps the lock only if it reads its own nonce
//! back (DESIGN.md §3.7: the documented fallback, which narrows the race but cannot close it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{Client, Cond};
use super::error::RemoteError;
use crate::store::backend::Holder;
use crate::store::{Result, StoreError};

pub const LOCK_NAME: &str = "lock";
const PROBE_NAME: &str = "lock-probe";
/// A lock not renewed for this long may be taken over.
const LIFETIME_NS: i64 = 120 * 1_000_000_000;
/// The fallback's wait between an unconditional put and reading it back.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Body {
    held: bool,
    owner: String,
    host: String,
    boot_id: String,
    pid: u32,
    since_ns: i64,
    expires_ns: i64,
    /// Whether the server honours If-None-Match / If-Match (probed at init).
    conditional: bool,
    /// The cache directory of the holder (its random id): a holder whose cache did not hold
    /// the lock last rebuilds its index, since another machine may have written.
    #[serde(default)]
    cache_id: String,
}

/// What tells this machine and boot apart from others.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether `pid` runs here; a zombie (exited, not yet reaped: a daemon whose parent is gone,
/// in a container whose init does not reap) does not.
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X') | None
        ),
        Err(_) => false,
    }
}

/// The locks this process holds, so [`release_all`] can release them before it exits while
/// something still holds its vault (the mount daemon's threads at exit).
static HELD: Mutex<Vec<std::sync::Weak<Shared>>> = Mutex::new(Vec::new());

/// Release every lock this process holds (the daemon calls it before it exits: Drop does
/// not run at `exit`). Writes through them are refused from then on.
pub fn release_all() {
    let held: Vec<_> = std::mem::take(&mut *HELD.lock().expect("held locks"));
    for s in held.iter().filter_map(std::sync::Weak::upgrade) {
        s.release();
    }
}

impl Body {
    fn stale(&self, now_ns: i64) -> bool {
        if !self.held {
            return true;
        }
        if now_ns > self.expires_ns {
            return true;
        }
        self.host == host() && self.boot_id == boot_id() && !pid_alive(self.pid)
    }

    fn holder(&self) -> Holder {
        let until = jiff::Timestamp::from_nanosecond(self.expires_ns as i128)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        Holder::Remote(format!(
            "pid {} on host {} (its lock expires at {until} unless renewed)",
            self.pid, self.host
        ))
    }
}

fn parse(bytes: &[u8]) -> Option<Body> {
    serde_json::from_slice(bytes).ok()
}

/// The lock object's current version: body (None if unreadable) and etag. `None`: no object.
fn read(client: &Client, name: &str) -> Result<Option<(Option<Body>, String)>> {
    let a = client.get(name, None)?;
    if a.status == 404 {
        return Ok(None);
    }
    Ok(Some((parse(&a.body), a.etag.unwrap_or_default())))
}

/// Create the lock object of a new vault (released), unless it exists, and find out whether
/// the server honours conditional puts: a second create-only put of a probe object must be
/// refused.
pub fn create(client: &Client, prefix: &str) -> Result<()> {
    let probe = format!("{prefix}{PROBE_NAME}");
    client.put(&probe, b"probe", Cond::CreateOnly)?;
    let second = client.put(&probe, b"probe", Cond::CreateOnly)?;
    let conditional = second.status == 412;
    client.delete(&probe)?;
    if !conditional {
        tracing::warn!(
            "the object store ignores conditional puts: the vault lock uses the weaker fallback (DESIGN.md §3.7)"
        );
    }
    let body = Body {
        held: false,
        owner: String::new(),
        host: String::new(),
        boot_id: String::new(),
        pid: 0,
        since_ns: 0,
        expires_ns: 0,
        conditional,
        cache_id: String::new(),
    };
    let a = client.put(
        &format!("{prefix}{LOCK_NAME}"),
        &serde_json::to_vec(&body).expect("lock body"),
        if conditional {
            Cond::CreateOnly
        } else {
            Cond::None
        },
    )?;
    if !a.ok() && a.status != 412 {
        return Err(client.not_found_error("PUT", LOCK_NAME, &a).into());
    }
    Ok(())
}

/// A held lock: renewed by a thread until dropped, then released.
pub struct S3Lock {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

pub(crate) struct Shared {
    client: Arc<Client>,
    name: String,
    state: Mutex<(Body, String)>,
    lost: Arc<AtomicBool>,
}

/// Take the lock at `PREFIX/lock` for the cache directory `cache_id`. `lost` is set if it is
/// ever taken over from this process. Also returns the cache id of the previous holder.
pub fn acquire(
    client: Arc<Client>,
    prefix: &str,
    lost: Arc<AtomicBool>,
    cache_id: &str,
) -> Result<(S3Lock, Option<String>)> {
    let name = format!("{prefix}{LOCK_NAME}");
    let mut nonce = [0u8; 16];
    crate::keys::random_bytes(&mut nonce)?;
    let owner = hex::encode(nonce);
    for _ in 0..3 {
        let now = crate::vault::now_ns();
        let (cond, conditional, previous) = match read(&client, &name)? {
            None => (Cond::CreateOnly, true, None),
            Some((Some(b), _)) if !b.stale(now) => return Err(StoreError::InUse(b.holder())),
            Some((b, etag)) => {
                let conditional = b.as_ref().is_none_or(|b| b.conditional);
                let previous = b.map(|b| b.cache_id).filter(|c| !c.is_empty());
                (Cond::IfMatch(etag), conditional, previous)
            }
        };
        let body = Body {
            held: true,
            owner: owner.clone(),
            host: host(),
            boot_id: boot_id(),
            pid: std::process::id(),
            since_ns: now,
            expires_ns: now + LIFETIME_NS,
            conditional,
            cache_id: cache_id.to_string(),
        };
        let bytes = serde_json::to_vec(&body).expect("lock body");
        let cond = if conditional { cond } else { Cond::None };
        let etag = match client.put(&name, &bytes, cond) {
            Ok(a) if a.status == 412 => continue,
            Ok(a) if a.ok() && conditional => a.etag.unwrap_or_default(),
            Ok(a) if a.ok() => {
                std::thread::sleep(SETTLE);
                match read(&client, &name)? {
                    Some((Some(b), etag)) if b.owner == owner => etag,
                    _ => continue,
                }
            }
            Ok(_) => continue,
            // The answer was lost: whether the put happened is told by reading it back.
            Err(RemoteError::Unreachable { .. }) => match read(&client, &name)? {
                Some((Some(b), etag)) if b.owner == owner => etag,
                _ => continue,
            },
            Err(e) => return Err(e.into()),
        };
        let shared = Arc::new(Shared {
            client,
            name,
            state: Mutex::new((body, etag)),
            lost,
        });
        HELD.lock()
            .expect("held locks")
            .push(Arc::downgrade(&shared));
        let (stop, stopped) = mpsc::channel();
        let s = shared.clone();
        let renewer = std::thread::Builder::new()
            .name("s3-lock".into())
            .spawn(move || renew_loop(&s, stopped))
            .map_err(|e| StoreError::io("start", "the lock renewer", e))?;
        return Ok((
            S3Lock {
                shared,
                stop: Some(stop),
                renewer: Some(renewer),
            },
            previous,
        ));
    }
    // Three rounds lost to other writers: someone holds it now.
    match read(&client, &name)? {
        Some((Some(b), _)) if b.held => Err(StoreError::InUse(b.holder())),
        _ => Err(StoreError::InUse(Holder::Unknown)),
    }
}

fn renew_loop(shared: &Shared, stopped: mpsc::Receiver<()>) {
    let every = Duration::from_nanos((LIFETIME_NS / 4) as u64);
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if let Err(e) = shared.renew(true) {
            tracing::warn!("renewing the vault lock: {e}");
        }
        if shared.lost.load(Ordering::SeqCst) {
            return;
        }
    }
}

impl S3Lock {
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Shared {
    /// Before a write: refuse if the lock was lost, and renew it first if it has not been
    /// renewed for half its lifetime by the vault clock (a process that was stopped past
    /// its expiry learns here, with a 412, that it was taken over, before it writes).
    pub(crate) fn ensure_held(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(StoreError::Remote(RemoteError::LockLost(
                "another writer".into(),
            )));
        }
        let renewed = {
            let st = self.state.lock().expect("lock state");
            st.0.expires_ns - LIFETIME_NS
        };
        if crate::vault::now_ns() - renewed > LIFETIME_NS / 2 {
            self.renew(true)?;
        }
        Ok(())
    }

    /// Put the next version of the lock: renewed (`held`) or released.
    fn renew(&self, held: bool) -> Result<()> {
        let mut st = self.state.lock().expect("lock state");
        let now = crate::vault::now_ns();
        let mut body = st.0.clone();
        body.held = held;
        body.expires_ns = if held { now + LIFETIME_NS } else { now };
        let bytes = serde_json::to_vec(&body).expect("lock body");
        let cond = if body.conditional {
            Cond::IfMatch(st.1.clone())
        } else {
            Cond::None
        };
        let a = self.client.put(&self.name, &bytes, cond)?;
        if a.status == 412 {
            let by = read(&self.client, &self.name)
                .ok()
                .flatten()
                .and_then(|(b, _)| b)
                .map(|b| b.holder().to_string())
                .unwrap_or_else(|| "another writer".into());
            tracing::error!("the vault's lock was taken over by {by}; no more writes");
            self.lost.store(true, Ordering::SeqCst);
            return Err(StoreError::Remote(RemoteError::LockLost(by)));
        }
        *st = (body, a.etag.unwrap_or_default());
        Ok(())
    }
}

impl Shared {
    /// Put the lock released, once; writes are refused afterwards (as after a takeover).
    fn release(&self) {
        if !self.lost.swap(true, Ordering::SeqCst)
            && let Err(e) = self.renew(false)
        {
            tracing::warn!("releasing the vault lock: {e} (it expires on its own)");
        }
    }
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        self.shared.release();
    }
}
