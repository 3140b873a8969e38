//! Roles on a door several users share (a mount with `--allow-other`, DESIGN.md §13): what a
//! caller may do, worked out once per (uid, gid) and config generation, so a request costs one
//! hash lookup and no read of the user or group database. A view not told to enforce roles
//! (a door only its owner can enter) checks nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::View;
use super::error::{ViewError, ViewResult};
use super::ino::{DELETED, INCOMING, POINTS, VERSIONS};
use super::types::{Caller, DirEntry, Lookup, Stability};
use crate::format::{AuditOutcome, Role};
use crate::identity::{self, Actor};
use crate::vault::Vault;
use crate::vault::audit::What;
use crate::vault::roles::{Subject, applies};

/// What an operation needs of the caller on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    /// See the item, browse and read its points and deleted points.
    Read,
    /// Change `incoming/ITEM/`.
    Operate,
    /// Delete and undelete its points.
    Contribute,
}

impl Level {
    fn role(self) -> Role {
        match self {
            Level::Read => Role::Reader,
            Level::Operate => Role::Operator,
            Level::Contribute => Role::Contributor,
        }
    }
}

/// One caller's rights, from the grants of one config generation.
#[derive(Debug)]
pub(super) struct Rights {
    owner: bool,
    /// The strongest grant on every item.
    every: Option<Role>,
    /// The strongest grant per item.
    items: HashMap<String, Role>,
}

impl Rights {
    fn of(vault: &Vault, who: Caller) -> Rights {
        if vault.is_owner(who.uid) {
            return Rights {
                owner: true,
                every: None,
                items: HashMap::new(),
            };
        }
        // The request's gid and the user's groups from the group database (once per uid).
        let mut groups = identity::groups_of(who.uid, who.gid);
        if !groups.contains(&who.gid) {
            groups.push(who.gid);
        }
        let subject = Subject {
            uid: who.uid,
            groups,
        };
        let (mut every, mut items) = (None, HashMap::<String, Role>::new());
        for g in vault.roles().iter().filter(|g| applies(g, &subject)) {
            match &g.item {
                None => every = every.max(Some(g.role)),
                Some(i) => {
                    let r = items.entry(i.clone()).or_insert(g.role);
                    *r = (*r).max(g.role);
                }
            }
        }
        Rights {
            owner: false,
            every,
            items,
        }
    }

    pub(super) fn may(&self, level: Level, item: &str) -> bool {
        self.owner || self.every.max(self.items.get(item).copied()) >= Some(level.role())
    }
}

/// The rights of each (uid, gid) seen since the config generation kept with them.
type RightsCache = (u64, HashMap<(u32, u32), Arc<Rights>>);

/// The rights of every caller seen, for one config generation.
#[derive(Default)]
pub(super) struct Access {
    enforce: AtomicBool,
    cache: Mutex<RightsCache>,
    /// Denials already in the audit log this generation, by (uid, item, operation): a reader's
    /// rsync into `incoming/` is one record, not one per file.
    audited: Mutex<HashSet<(u32, String, &'static str)>>,
}

impl Access {
    pub(super) fn enforce(&self) {
        self.enforce.store(true, Ordering::Relaxed);
    }

    pub(super) fn enforced(&self) -> bool {
        self.enforce.load(Ordering::Relaxed)
    }

    /// `who`'s rights, or `None` when roles are not enforced (everything is allowed).
    pub(super) fn rights(&self, vault: &Vault, who: Caller) -> Option<Arc<Rights>> {
        if !self.enforced() {
            return None;
        }
        let generation = vault.config_generation();
        {
            let mut cache = self.cache.lock();
            if cache.0 != generation {
                *cache = (generation, HashMap::new());
                self.audited.lock().clear();
            }
            if let Some(r) = cache.1.get(&(who.uid, who.gid)) {
                return Some(r.clone());
            }
        }
        // The user and group databases are read outside the lock, once per caller.
        let rights = Arc::new(Rights::of(vault, who));
        let mut cache = self.cache.lock();
        if cache.0 == generation {
            cache.1.insert((who.uid, who.gid), rights.clone());
        }
        Some(rights)
    }

    /// Refuse `level` on `item` to `who` with EACCES unless a role allows it; a refused change
    /// (`op`, not `None`) is an audit record, once per user, item and operation.
    pub(super) fn check(
        &self,
        vault: &Vault,
        who: Caller,
        level: Level,
        item: &str,
        op: Option<(&'static str, &str)>,
    ) -> ViewResult<()> {
        match self.rights(vault, who) {
            Some(r) if !r.may(level, item) => {
                if let Some((op, params)) = op
                    && self.audited.lock().insert((who.uid, item.to_string(), op))
                {
                    let why = format!("uid {} may not {op} on item {item}", who.uid);
                    let what = What::new(op, Some(item), params);
                    if let Err(e) =
                        vault.audit(&Actor::of_uid(who.uid), &what, AuditOutcome::Denied(why))
                    {
                        tracing::warn!("an audit record could not be written: {}", e.for_log());
                    }
                }
                Err(ViewError::AccessDenied)
            }
            _ => Ok(()),
        }
    }
}

/// The directories whose names are items (`versions/` too): the gate of every path into an
/// item.
pub(super) fn lists_items(dir: u64) -> bool {
    matches!(dir, POINTS | DELETED | INCOMING | VERSIONS)
}

impl View {
    /// Decide every request by its caller's role (a door other users may enter).
    pub fn enforce_roles(&self) {
        self.access.enforce();
    }

    pub fn enforces_roles(&self) -> bool {
        self.access.enforced()
    }

    /// [`View::lookup`] on behalf of `who`: an item it has no role on answers EACCES. Item
    /// directories found are `Stability::Caller`, so the door asks again on every path through
    /// them (another user's cached entry lets no one in).
    pub fn lookup_as(&self, who: Caller, parent: u64, name: &[u8]) -> ViewResult<Lookup> {
        let gate = self.enforces_roles() && lists_items(parent);
        if gate && let Ok(item) = std::str::from_utf8(name) {
            self.access
                .check(&self.vault, who, Level::Read, item, None)?;
        }
        match self.lookup(parent, name)? {
            Lookup::Found(mut a) if gate => {
                a.stability = Stability::Caller;
                Ok(Lookup::Found(a))
            }
            found => Ok(found),
        }
    }

    /// Whether `who` may change inode `ino` or, with `name`, the names in directory `ino`
    /// (in `incoming/` itself, `name` is the item made or removed): an operator of its item.
    /// Denials are audit records. Changes elsewhere are refused by the view anyway.
    pub fn may_change(&self, who: Caller, ino: u64, name: Option<&[u8]>) -> ViewResult<()> {
        self.change_allowed(who, ino, name, true)
    }

    /// `access(2)` asking for write permission: what [`View::may_change`] would answer, with
    /// no audit record (nothing was tried).
    pub fn may_write(&self, who: Caller, ino: u64) -> ViewResult<()> {
        self.change_allowed(who, ino, None, false)
    }

    fn change_allowed(
        &self,
        who: Caller,
        ino: u64,
        name: Option<&[u8]>,
        audit: bool,
    ) -> ViewResult<()> {
        if !self.enforces_roles() {
            return Ok(());
        }
        let item: std::sync::Arc<str> = match (ino, name) {
            (INCOMING, Some(n)) => std::str::from_utf8(n)
                .map_err(|_| ViewError::Invalid)?
                .into(),
            _ if super::side_of(ino) == super::Side::Incoming => self.incoming.item_of(ino)?,
            _ => return Ok(()),
        };
        let params = format!("incoming/{item}/");
        let op = audit.then_some(("write (mount)", params.as_str()));
        self.access
            .check(&self.vault, who, Level::Operate, &item, op)
    }

    /// `list` (of directory `dir`) without the items `who` has no role on.
    pub(super) fn visible(&self, who: Caller, dir: u64, list: Vec<DirEntry>) -> Vec<DirEntry> {
        if !lists_items(dir) {
            return list;
        }
        let Some(rights) = self.access.rights(&self.vault, who) else {
            return list;
        };
        list.into_iter()
            .filter(|e| {
                e.is_dot() || std::str::from_utf8(&e.name).is_ok_and(|i| rights.may(Level::Read, i))
            })
            .collect()
    }

    /// How long the door may keep what it learns about `dir`'s names: not at all for the
    /// listings of items when roles are enforced.
    pub(super) fn names_for(&self, dir: u64, s: Stability) -> Stability {
        if self.enforces_roles() && lists_items(dir) {
            Stability::Caller
        } else {
            s
        }
    }
}
