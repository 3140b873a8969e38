//! Simulated power cuts and kills at exact durability points, for crash tests (built with the
//! `test-hooks` feature only). [`KillAt`] sends SIGKILL at the n-th durability call of the
//! real binary.
//!
//! [`PowerCut`] is an [`Observer`] of a vault's local backend and index. It counts durability
//! calls; the `n`-th is refused and the power is off from then on (every later change or
//! durability call fails with EIO). After the vault is dropped, [`PowerCut::reboot`] puts the
//! directory in the state a real cut could leave, the most pessimistic one POSIX allows:
//! - file data not fsynced since it was written is gone (the file is cut to its last durable
//!   length);
//! - creates, renames, exchanges, removals and mkdirs in a directory not fsynced since are
//!   undone (a directory removed is kept aside until then);
//! - each index database is what its last completed flush made durable: its directory is
//!   copied after each flush and the copy put back (the engine promises no more than that). A
//!   database directory renamed or exchanged takes its copy along (`repair` builds a new
//!   database beside the old one and swaps them).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Change, Durable, Observer};

/// A durability call, as counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Data(PathBuf),
    Entries(PathBuf),
    Index,
}

/// A change to directory entries not yet durable.
#[derive(Debug)]
enum Entry {
    Created(PathBuf),
    MadeDir(PathBuf),
    /// The new name of a rename (durable with its directory); `replaced`: the file that was
    /// at the new name, kept as a hard link in the stash until then.
    RenamedTo {
        from: PathBuf,
        to: PathBuf,
        replaced: Option<PathBuf>,
    },
    /// The old name of a rename going away (durable with its directory).
    RenamedFrom {
        from: PathBuf,
        to: PathBuf,
    },
    /// A removed file, kept as a hard link in the stash until the removal is durable.
    Removed {
        path: PathBuf,
        kept: PathBuf,
    },
    /// Two entries of one directory swapped.
    Exchanged {
        a: PathBuf,
        b: PathBuf,
    },
    /// A removed directory, copied to the stash until the removal is durable; `db`: the
    /// durable copy of the database it held, if it was one.
    RemovedDir {
        path: PathBuf,
        kept: PathBuf,
        db: Option<PathBuf>,
    },
}

impl Entry {
    /// The directory whose fsync makes this change durable.
    fn dir(&self) -> &Path {
        let p = match self {
            Entry::Created(p) | Entry::MadeDir(p) => p,
            Entry::RenamedTo { to, .. } => to,
            Entry::RenamedFrom { from, .. } => from,
            Entry::Removed { path, .. } | Entry::RemovedDir { path, .. } => path,
            Entry::Exchanged { a, .. } => a,
        };
        p.parent().unwrap_or(Path::new("/"))
    }
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    off: bool,
    /// Files written since their last fsync: path → length durable before.
    unsynced: HashMap<PathBuf, u64>,
    pending: Vec<Entry>,
    stashed: u64,
    /// Each database directory → a copy of it as of its last completed flush.
    dbs: HashMap<PathBuf, PathBuf>,
}

pub struct PowerCut {
    /// The durability call (1-based) that is refused; `None`: never.
    cut_at: Option<usize>,
    stash: PathBuf,
    state: Mutex<State>,
}

fn power_off() -> io::Error {
    io::Error::other("simulated power cut")
}

impl PowerCut {
    /// Observe the vault at `vault_dir` (closed now; its index as it is counts as durable),
    /// refusing durability call `cut_at`. `work` holds the index copy and removed files.
    pub fn new(vault_dir: &Path, cut_at: Option<usize>, work: &Path) -> io::Result<PowerCut> {
        let pc = PowerCut {
            cut_at,
            stash: work.join("removed"),
            state: Mutex::new(State::default()),
        };
        fs::create_dir_all(&pc.stash)?;
        let index = vault_dir.join(crate::vault::INDEX_DIR);
        if index.is_dir() {
            let mut st = pc.lock();
            let copy = pc.stash_path(&mut st);
            copy_dir(&index, &copy)?;
            st.dbs.insert(index, copy);
        }
        Ok(pc)
    }

    /// A fresh name in the stash.
    fn stash_path(&self, st: &mut State) -> PathBuf {
        st.stashed += 1;
        self.stash.join(st.stashed.to_string())
    }

    /// The durability calls so far, the refused one included.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// True once the power went out.
    pub fn is_off(&self) -> bool {
        self.lock().off
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("power cut state")
    }

    /// Put the vault in the state the cut left. Call after the vault is dropped (the index
    /// database closed).
    pub fn reboot(&self) -> io::Result<()> {
        let mut st = self.lock();
        for (path, len) in st.unsynced.drain() {
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                f.set_len(len)?;
            }
        }
        // Renames whose old name's removal, or whose new name, is not durable.
        let (mut old_kept, mut new_lost) = (HashSet::new(), HashSet::new());
        for e in &st.pending {
            match e {
                Entry::RenamedFrom { from, .. } => old_kept.insert(from.clone()),
                Entry::RenamedTo { to, .. } => new_lost.insert(to.clone()),
                _ => false,
            };
        }
        let pending: Vec<Entry> = st.pending.drain(..).rev().collect();
        for e in pending {
            match e {
                Entry::Created(p) => remove_if_there(&p)?,
                Entry::MadeDir(p) => {
                    // Its entry never reached the disk, nor anything in it.
                    let _ = fs::remove_dir_all(&p);
                    st.dbs.remove(&p);
                }
                // The new name never reached the disk: the file is back under its old name if
                // that removal was not durable either, and gone otherwise.
                Entry::RenamedTo { from, to, replaced } => {
                    if old_kept.contains(&from) {
                        fs::rename(&to, &from)?;
                        move_db(&mut st.dbs, &to, &from);
                    } else {
                        remove_any(&to)?;
                        st.dbs.remove(&to);
                    }
                    // A rename over a file: the old file is still there.
                    if let Some(kept) = replaced {
                        fs::rename(&kept, &to)?;
                    }
                }
                // The new name is durable but the old one's removal is not: both names remain
                // (a file; a directory cannot have two names, and is renamed within one
                // directory, so both changes are durable together).
                Entry::RenamedFrom { from, to } if !new_lost.contains(&to) && to.is_file() => {
                    fs::hard_link(&to, &from)?
                }
                Entry::RenamedFrom { .. } => {}
                Entry::Removed { path, kept } => fs::rename(&kept, &path)?,
                Entry::Exchanged { a, b } => {
                    crate::store::index::exchange(&a, &b)?;
                    swap_dbs(&mut st.dbs, &a, &b);
                }
                Entry::RemovedDir { path, kept, db } => {
                    fs::rename(&kept, &path)?;
                    if let Some(copy) = db {
                        st.dbs.insert(path, copy);
                    }
                }
            }
        }
        for (dir, copy) in &st.dbs {
            if dir.exists() {
                fs::remove_dir_all(dir)?;
            }
            copy_dir(copy, dir)?;
        }
        st.off = false;
        Ok(())
    }
}

/// The database at `from` is now at `to`: so is its durable copy.
fn move_db(dbs: &mut HashMap<PathBuf, PathBuf>, from: &Path, to: &Path) {
    if let Some(copy) = dbs.remove(from) {
        dbs.insert(to.to_path_buf(), copy);
    }
}

fn swap_dbs(dbs: &mut HashMap<PathBuf, PathBuf>, a: &Path, b: &Path) {
    let (ca, cb) = (dbs.remove(a), dbs.remove(b));
    if let Some(c) = ca {
        dbs.insert(b.to_path_buf(), c);
    }
    if let Some(c) = cb {
        dbs.insert(a.to_path_buf(), c);
    }
}

/// Kills this process with SIGKILL on entering a chosen durability call: kill -9 at an exact
/// point of the write order, in the real binary. Set by `VAULTFS_TEST_KILL_AT_DURABLE` in a
/// `test-hooks` build (`Vault::open` installs it): `N` is the N-th durability call (file and
/// directory fsyncs and index flushes, counted like [`PowerCut`]); `index:K+J` the J-th call
/// after the K-th index flush (J = 0: that flush), which names the same step of a commit
/// however many packs came before it.
pub struct KillAt {
    /// (index flushes to see first, then calls to let through).
    at: (u64, u64),
    state: Mutex<(u64, u64)>,
}

impl KillAt {
    pub const ENV: &str = "VAULTFS_TEST_KILL_AT_DURABLE";

    /// The observer the environment asks for, if any.
    pub fn from_env() -> Option<Arc<dyn Observer>> {
        let spec = std::env::var(Self::ENV).ok()?;
        let at = match spec.strip_prefix("index:") {
            Some(rest) => {
                let (k, j) = rest.split_once('+').unwrap_or((rest, "0"));
                (k.parse().ok()?, j.parse().ok()?)
            }
            None => (0, spec.parse::<u64>().ok()?.checked_sub(1)?),
        };
        Some(Arc::new(KillAt {
            at,
            state: Mutex::new((0, 0)),
        }))
    }
}

impl Observer for KillAt {
    fn change(&self, _: Change<'_>) -> io::Result<()> {
        Ok(())
    }

    fn before_durable(&self, what: Durable<'_>) -> io::Result<()> {
        let mut st = self.state.lock().expect("kill state");
        let (flushes, after) = &mut *st;
        if matches!(what, Durable::Index(_)) && *flushes < self.at.0 {
            // This call is that flush: calls after it count from here.
            *flushes += 1;
            *after = 0;
        }
        if (*flushes, *after) == self.at {
            // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, nothing runs after it.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        *after += 1;
        Ok(())
    }

    fn durable(&self, _: Durable<'_>) {}
}

impl Observer for PowerCut {
    fn timed_index_flushes(&self) -> bool {
        false
    }

    fn change(&self, change: Change<'_>) -> io::Result<()> {
        let mut st = self.lock();
        if st.off {
            return Err(power_off());
        }
        match change {
            Change::Create(p) => {
                st.unsynced.insert(p.to_path_buf(), 0);
                st.pending.push(Entry::Created(p.to_path_buf()));
            }
            Change::MakeDir(p) => st.pending.push(Entry::MadeDir(p.to_path_buf())),
            Change::Write(p) => {
                if !st.unsynced.contains_key(p) {
                    let len = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    st.unsynced.insert(p.to_path_buf(), len);
                }
            }
            Change::Rename { from, to } => {
                if let Some(len) = st.unsynced.remove(from) {
                    st.unsynced.insert(to.to_path_buf(), len);
                }
                move_db(&mut st.dbs, from, to);
                let replaced = if to.is_file() {
                    let kept = self.stash_path(&mut st);
                    fs::hard_link(to, &kept)?;
                    Some(kept)
                } else {
                    None
                };
                let (from, to) = (from.to_path_buf(), to.to_path_buf());
                st.pending.push(Entry::RenamedTo {
                    from: from.clone(),
                    to: to.clone(),
                    replaced,
                });
                st.pending.push(Entry::RenamedFrom { from, to });
            }
            Change::Exchange { a, b } => {
                swap_dbs(&mut st.dbs, a, b);
                st.pending.push(Entry::Exchanged {
                    a: a.to_path_buf(),
                    b: b.to_path_buf(),
                });
            }
            Change::Remove(p) => {
                if p.exists() {
                    let kept = self.stash_path(&mut st);
                    fs::hard_link(p, &kept)?;
                    if let Some(len) = st.unsynced.remove(p) {
                        st.unsynced.insert(kept.clone(), len);
                    }
                    st.pending.push(Entry::Removed {
                        path: p.to_path_buf(),
                        kept,
                    });
                }
            }
            Change::RemoveDir(p) => {
                if p.exists() {
                    let kept = self.stash_path(&mut st);
                    copy_dir(p, &kept)?;
                    let db = st.dbs.remove(p);
                    st.pending.push(Entry::RemovedDir {
                        path: p.to_path_buf(),
                        kept,
                        db,
                    });
                }
            }
        }
        Ok(())
    }

    fn before_durable(&self, what: Durable<'_>) -> io::Result<()> {
        let mut st = self.lock();
        if st.off {
            return Err(power_off());
        }
        st.calls.push(match what {
            Durable::Data(p) => Call::Data(p.to_path_buf()),
            Durable::Entries(p) => Call::Entries(p.to_path_buf()),
            Durable::Index(_) => Call::Index,
        });
        if Some(st.calls.len()) == self.cut_at {
            st.off = true;
            return Err(power_off());
        }
        Ok(())
    }

    fn durable(&self, what: Durable<'_>) {
        let mut st = self.lock();
        match what {
            Durable::Data(p) => {
                st.unsynced.remove(p);
            }
            Durable::Entries(dir) => {
                let (done, left): (Vec<Entry>, Vec<Entry>) =
                    st.pending.drain(..).partition(|e| e.dir() == dir);
                st.pending = left;
                for e in done {
                    match e {
                        Entry::Removed { kept, .. }
                        | Entry::RenamedTo {
                            replaced: Some(kept),
                            ..
                        } => {
                            let _ = fs::remove_file(kept);
                        }
                        Entry::RemovedDir { kept, .. } => {
                            let _ = fs::remove_dir_all(kept);
                        }
                        _ => {}
                    }
                }
            }
            Durable::Index(dir) => {
                // The copy is what survives a cut from now on. A failed copy must fail the
                // test, not pass it quietly.
                let copy = self.stash_path(&mut st);
                copy_dir(dir, &copy).expect("copy the index after a flush");
                if let Some(old) = st.dbs.insert(dir.to_path_buf(), copy) {
                    let _ = fs::remove_dir_all(old);
                }
            }
        }
    }
}

/// Remove a file or a directory tree, if there.
fn remove_any(p: &Path) -> io::Result<()> {
    if p.is_dir() {
        fs::remove_dir_all(p)
    } else {
        remove_if_there(p)
    }
}

fn remove_if_there(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Copy a directory tree of plain files.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}
