//! `vaultfs role grant|revoke|list`, and what each command needs of its caller (DESIGN.md §13).

use anyhow::{Result, bail};
use serde_json::json;

use vaultfs::cli::{Command, GuardCommand, RoleArg, RoleCommand, Whom};
use vaultfs::format::{Role, RoleGrant};
use vaultfs::identity;
use vaultfs::vault::roles::Need;

use super::{Env, Outcome, table};

/// What running `command` needs; `None` for commands that open no vault.
pub fn need(command: &Command) -> Option<Need> {
    let item = |spec: &str| spec.split('/').next().unwrap_or_default().to_string();
    Some(match command {
        Command::Items(_) => Need::Read(None),
        Command::Audit(_) => Need::Contribute(None),
        Command::Points(a) => Need::Read(a.item.clone()),
        // Browsing one item is reading it; across items (no item named, or a diff of two
        // items) it shows every item's paths, so it takes a contributor (DESIGN §13).
        Command::Ls(a) => Need::Read(Some(item(&a.point))),
        Command::Find(a) => match &a.item {
            Some(i) => Need::Read(Some(i.clone())),
            None => Need::Contribute(None),
        },
        Command::Diff(a) if item(&a.from) == item(&a.to) => Need::Read(Some(item(&a.from))),
        Command::Diff(_) => Need::Contribute(None),
        // Jobs of one item are that item's; every other view of operations covers the whole
        // vault (DESIGN §13).
        Command::Jobs(a) => match (&a.show, &a.item) {
            (None, Some(i)) => Need::Read(Some(i.clone())),
            _ => Need::Contribute(None),
        },
        Command::Status(_)
        | Command::Alerts(_)
        | Command::Metrics(_)
        | Command::Advisor(_)
        | Command::Report(_) => Need::Contribute(None),
        Command::Stats(a) => match &a.point {
            Some(p) => Need::Read(Some(item(p))),
            None => Need::Contribute(None),
        },
        Command::Restore(a) => Need::Read(Some(item(&a.point))),
        Command::Backup(a) => Need::Operate(a.item.clone()),
        Command::Snapshot(a) => Need::Operate(a.item.clone()),
        Command::Delete(a) | Command::Undelete(a) => Need::Contribute(Some(item(&a.point))),
        Command::Policy(a) => Need::Contribute(Some(a.item.clone())),
        Command::Settings(_)
        | Command::Gc(_)
        | Command::Check(_)
        | Command::Repair(_)
        | Command::Replicate(_) => Need::Contribute(None),
        Command::Role(RoleCommand::List(_)) => Need::Read(None),
        Command::Role(_) | Command::Key(_) | Command::Mount(_) | Command::ServeWebdav(_) => {
            Need::Owner
        }
        Command::Guard(GuardCommand::Init(_) | GuardCommand::Remove(_)) => Need::Owner,
        Command::Init(_) | Command::Umount(_) | Command::Completions(_) | Command::Guard(_) => {
            return None;
        }
    })
}

/// A user or group named by name or number.
fn whom(w: &Whom) -> Result<(bool, u32, String)> {
    if let Some(u) = &w.user {
        if let Some((uid, _)) = identity::user_by_name(u) {
            return Ok((false, uid, u.clone()));
        }
        if let Ok(uid) = u.parse::<u32>() {
            let name = identity::user_name(uid).unwrap_or_else(|| u.clone());
            return Ok((false, uid, name));
        }
        bail!("--user {u:?}: no such user");
    }
    let g = w.group.as_deref().unwrap_or_default();
    if let Some(gid) = identity::group_by_name(g) {
        return Ok((true, gid, g.to_string()));
    }
    if let Ok(gid) = g.parse::<u32>() {
        let name = identity::group_name(gid).unwrap_or_else(|| g.to_string());
        return Ok((true, gid, name));
    }
    bail!("--group {g:?}: no such group");
}

fn role_of(r: RoleArg) -> Role {
    match r {
        RoleArg::Reader => Role::Reader,
        RoleArg::Operator => Role::Operator,
        RoleArg::Contributor => Role::Contributor,
    }
}

fn describe(g: &RoleGrant) -> String {
    format!(
        "{} {} ({}): {} on {}",
        if g.group { "group" } else { "user" },
        g.name,
        g.id,
        g.role.as_str(),
        g.item.as_deref().unwrap_or("every item")
    )
}

pub fn run(r: RoleCommand, env: &Env) -> Result<Outcome> {
    match r {
        RoleCommand::Grant(a) => {
            let (group, id, name) = whom(&a.whom)?;
            let vault = env.open(&a.vault)?;
            let grant = RoleGrant {
                group,
                id,
                name,
                role: role_of(a.role),
                item: a.item,
            };
            vault.grant(grant.clone())?;
            env.out(format!("granted {}", describe(&grant)));
        }
        RoleCommand::Revoke(a) => {
            let (group, id, name) = whom(&a.whom)?;
            let vault = env.open(&a.vault)?;
            if !vault.revoke(group, id, a.item.as_deref())? {
                bail!(
                    "{} {name} has no grant on {}",
                    if group { "group" } else { "user" },
                    a.item.as_deref().unwrap_or("every item")
                );
            }
            env.out(format!("revoked the grant of {name}"));
        }
        RoleCommand::List(a) => {
            let vault = env.open(&a.vault)?;
            let roles = vault.roles();
            if a.json {
                let js: Vec<_> = roles
                    .iter()
                    .map(|g| {
                        json!({"kind": if g.group { "group" } else { "user" }, "id": g.id,
                               "name": g.name, "role": g.role.as_str(), "item": g.item})
                    })
                    .collect();
                env.out(serde_json::to_string_pretty(&js)?);
            } else {
                let rows: Vec<Vec<String>> = roles
                    .iter()
                    .map(|g| {
                        vec![
                            if g.group { "group" } else { "user" }.to_string(),
                            format!("{} ({})", g.name, g.id),
                            g.role.as_str().to_string(),
                            g.item.clone().unwrap_or_else(|| "*".into()),
                        ]
                    })
                    .collect();
                for l in table(&["KIND", "WHO", "ROLE", "ITEM"], &rows) {
                    env.out(l);
                }
            }
        }
    }
    Ok(Outcome::Ok)
}
