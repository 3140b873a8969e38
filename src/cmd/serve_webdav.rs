//! `vaultfs serve-webdav`: open the vault as every command does (the same key options), refuse
//! an exposed address without TLS and authentication, then serve the view over WebDAV in the
//! foreground until SIGINT/SIGTERM (DESIGN.md §16).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use vaultfs::cli::ServeWebdavArgs;
use vaultfs::view::{Caller, View};
use vaultfs::webdav::{self, Login, Options, Users};

use super::{Env, Outcome};

/// Where the view's incoming side would stage data (nothing is written through this door).
const STAGING: &str = "/var/tmp";

pub fn run(a: ServeWebdavArgs, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        bail!(
            "{} is mounted and its daemon holds it: unmount it first (serve-webdav opens the \
             vault itself)",
            a.vault.display()
        );
    }
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((env.path(c), env.path(k))),
        _ => None,
    };
    if !a.listen.ip().is_loopback() && (tls.is_none() || a.password_file.is_none()) {
        bail!(
            "refusing to serve {} beyond this machine without TLS and authentication: give \
             --tls-cert, --tls-key and --password-file, or listen on 127.0.0.1",
            a.listen
        );
    }
    let users = match &a.password_file {
        Some(f) => Some(Users::read(&env.path(f))?),
        None => None,
    };
    let vault = env.open(&a.vault)?;
    // SAFETY: geteuid/getegid have no preconditions.
    let me = Caller {
        uid: unsafe { libc::geteuid() },
        gid: unsafe { libc::getegid() },
    };
    let roles = !vault.roles().is_empty();
    let login = match users {
        None => {
            env.err(format!(
                "vaultfs: no --password-file: anyone who can connect to {} reads the whole vault",
                a.listen
            ));
            Login::Anyone(me)
        }
        Some(users) => Login::Users {
            callers: if roles {
                local_users(&users)?
            } else {
                HashMap::new()
            },
            users,
            default: me,
        },
    };
    let view = View::new(
        vault.clone(),
        a.cache_size.clamp(16 << 20, 64 << 30) as usize,
        std::path::Path::new(STAGING),
    )
    .context("opening the view")?;
    if roles {
        view.enforce_roles();
    }
    let view = Arc::new(view);
    let opts = Options {
        listen: a.listen,
        tls,
        threads: a.threads.clamp(1, 64),
    };
    let location = vault.location().display();
    let served = webdav::serve(view.clone(), login, &opts, |addr, tls| {
        let scheme = if tls { "https" } else { "http" };
        env.out(format!(
            "serving {location} read-only at {scheme}://{addr}/ (Ctrl-C to stop)"
        ));
    });
    view.shutdown().context("closing the view")?;
    served?;
    Ok(Outcome::Ok)
}

/// With a role table, each WebDAV user is the local account of the same name, whose roles
/// decide what it sees (as a uid does on the mount); a user without one is refused up front.
fn local_users(users: &Users) -> Result<HashMap<String, Caller>> {
    users
        .names()
        .map(|name| {
            let (uid, gid) = vaultfs::identity::user_by_name(name).ok_or_else(|| {
                anyhow!(
                    "WebDAV user {name} is no local user: the vault has roles, which name local \
                     users (add the account, or remove the user from the password file)"
                )
            })?;
            Ok((name.to_string(), Caller { uid, gid }))
        })
        .collect()
}
