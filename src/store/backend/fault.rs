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
//! - creates, renames, removals and mkdirs in a directory not fsynced since are undone;
//! - the index database is what its last completed flush made durable: the index directory is
//!   copied after each flush and the copy put back (the engine promises no more than that).

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
    /// The new name of a rename (durable with its directory).
    RenamedTo {
        from: PathBuf,
        to: PathBuf,
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
}

impl Entry {
    /// The directory whose fsync makes this change durable.
    fn dir(&self) -> &Path {
        let p = match self {
            Entry::Created(p) | Entry::MadeDir(p) => p,
            Entry::RenamedTo { to, .. } => to,
            Entry::RenamedFrom { from, .. } => from,
            Entry::Removed { path, .. } => path,
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
}

pub struct PowerCut {
    /// The durability call (1-based) that is refused; `None`: never.
    cut_at: Option<usize>,
    index_dir: PathBuf,
    /// The index directory as of its last completed flush.
    index_copy: PathBuf,
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
            index_dir: vault_dir.join(crate::vault::INDEX_DIR),
            index_copy: work.join("index-durable"),
            stash: work.join("removed"),
            state: Mutex::new(State::default()),
        };
        fs::create_dir_all(&pc.stash)?;
        copy_dir(&pc.index_dir, &pc.index_copy)?;
        Ok(pc)
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
        for e in st.pending.drain(..).rev() {
            match e {
                Entry::Created(p) => remove_if_there(&p)?,
                Entry::MadeDir(p) => {
                    let _ = fs::remove_dir(&p);
                }
                // The new name never reached the disk: the file is back under its old name if
                // that removal was not durable either, and gone otherwise.
                Entry::RenamedTo { from, to } if old_kept.contains(&from) => {
                    fs::rename(&to, &from)?
                }
                Entry::RenamedTo { to, .. } => remove_if_there(&to)?,
                // The new name is durable but the old one's removal is not: both names remain.
                Entry::RenamedFrom { from, to } if !new_lost.contains(&to) => {
                    fs::hard_link(&to, &from)?
                }
                Entry::RenamedFrom { .. } => {}
                Entry::Removed { path, kept } => fs::rename(&kept, &path)?,
            }
        }
        if self.index_dir.exists() {
            fs::remove_dir_all(&self.index_dir)?;
        }
        copy_dir(&self.index_copy, &self.index_dir)?;
        st.off = false;
        Ok(())
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
                let (from, to) = (from.to_path_buf(), to.to_path_buf());
                st.pending.push(Entry::RenamedTo {
                    from: from.clone(),
                    to: to.clone(),
                });
                st.pending.push(Entry::RenamedFrom { from, to });
            }
            Change::Remove(p) => {
                if p.exists() {
                    st.stashed += 1;
                    let kept = self.stash.join(st.stashed.to_string());
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
                    if let Entry::Removed { kept, .. } = e {
                        let _ = fs::remove_file(kept);
                    }
                }
            }
            Durable::Index(_) => {
                // The copy is what survives a cut from now on. A failed copy must fail the
                // test, not pass it quietly.
                let _ = fs::remove_dir_all(&self.index_copy);
                copy_dir(&self.index_dir, &self.index_copy).expect("copy the index after a flush");
            }
        }
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
