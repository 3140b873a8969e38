//! Roles (DESIGN.md §13): the owner (the vault directory's owner; root counts as owner) grants
//! reader, operator or contributor to users and groups, on every item or one. The grants live
//! in the config (bound into its authenticated parameters); what a caller may do is decided
//! here, once per command.

use std::os::unix::fs::MetadataExt;

use crate::format::{Role, RoleGrant};

use super::{Result, Vault, VaultError, names};

/// What an operation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// List items and points, read, restore: `Some` item, or any role at all (`None`).
    Read(Option<String>),
    /// Write incoming, snapshot, backup of the item.
    Operate(String),
    /// Everything else but roles, keys and the guard: of the item, or vault-wide (`None`).
    Contribute(Option<String>),
    Owner,
}

/// Who asks: a uid and every group it is in.
#[derive(Debug, Clone)]
pub struct Subject {
    pub uid: u32,
    pub groups: Vec<u32>,
}

/// Whether grant `g` is to `who` (to the user, or to one of its groups).
pub fn applies(g: &RoleGrant, who: &Subject) -> bool {
    if g.group {
        who.groups.contains(&g.id)
    } else {
        g.id == who.uid
    }
}

/// Whether `grants` let `who` (not the owner) do what `need` says.
pub fn allows(grants: &[RoleGrant], who: &Subject, need: &Need) -> bool {
    let mine = || grants.iter().filter(|g| applies(g, who));
    let on = |g: &RoleGrant, item: &Option<String>| match (&g.item, item) {
        (None, _) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    };
    match need {
        Need::Owner => false,
        Need::Read(None) => mine().next().is_some(),
        Need::Read(item) => mine().any(|g| on(g, item)),
        Need::Operate(item) => {
            mine().any(|g| g.role >= Role::Operator && on(g, &Some(item.clone())))
        }
        Need::Contribute(item) => mine().any(|g| g.role == Role::Contributor && on(g, item)),
    }
}

impl Vault {
    /// The uid owning the vault (its directory's owner).
    pub fn owner_uid(&self) -> Option<u32> {
        std::fs::metadata(self.dir()).ok().map(|m| m.uid())
    }

    pub fn is_owner(&self, uid: u32) -> bool {
        uid == 0 || Some(uid) == self.owner_uid()
    }

    pub fn roles(&self) -> Vec<RoleGrant> {
        self.config.lock().expect("config lock").0.roles.clone()
    }

    /// Refuse `need` to `who` unless the owner or a grant allows it.
    pub fn check_access(&self, who: &Subject, need: &Need) -> Result<()> {
        if self.is_owner(who.uid) || allows(&self.roles(), who, need) {
            return Ok(());
        }
        let what = match need {
            Need::Owner => "only the vault's owner may do this".to_string(),
            Need::Read(None) => "uid {uid} has no role on this vault".to_string(),
            Need::Read(Some(i)) => format!("uid {{uid}} may not read item {i}"),
            Need::Operate(i) => format!("uid {{uid}} is not an operator of item {i}"),
            Need::Contribute(Some(i)) => format!("uid {{uid}} is not a contributor of item {i}"),
            Need::Contribute(None) => "uid {uid} is not a contributor of this vault".to_string(),
        };
        Err(VaultError::Denied(
            what.replace("{uid}", &who.uid.to_string()),
        ))
    }

    /// Grant `grant` (replacing any grant to the same user or group on the same items).
    pub fn grant(&self, grant: RoleGrant) -> Result<()> {
        if let Some(i) = &grant.item {
            self.item(i)?;
        }
        self.edit_roles(|roles| {
            roles.retain(|g| !(g.group == grant.group && g.id == grant.id && g.item == grant.item));
            roles.push(grant);
        })
    }

    /// Revoke the grants to a user or group (on `item`, or on every item when `None`); false if
    /// there were none.
    pub fn revoke(&self, group: bool, id: u32, item: Option<&str>) -> Result<bool> {
        if let Some(i) = item {
            names::check_item(i)?;
        }
        let hit = |g: &RoleGrant| g.group == group && g.id == id && g.item.as_deref() == item;
        if !self.roles().iter().any(hit) {
            return Ok(false);
        }
        self.edit_roles(|roles| roles.retain(|g| !hit(g)))?;
        Ok(true)
    }

    fn edit_roles(&self, f: impl FnOnce(&mut Vec<RoleGrant>)) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        f(&mut config.roles);
        self.write_config(config)
    }
}
