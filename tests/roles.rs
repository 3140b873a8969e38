//! Roles (DESIGN.md §13) with real non-root users made by the test: a reader, an operator of
//! one item and a contributor, and the owner (root), each trying every operation through the
//! control socket (the vault mounted) and the offline CLI. The allowed/denied table is
//! printed, and must match the roles' rules exactly; denials are audit records.

mod common;
use common::mnt::{Mount, names_in};
use common::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Users made for one test, removed on drop.
struct Users(Vec<String>);

impl Users {
    fn new(roles: &[&str]) -> Users {
        let tag = std::process::id() % 100_000;
        let names: Vec<String> = roles.iter().map(|r| format!("vfs{r}{tag}")).collect();
        for n in &names {
            let out = Command::new("useradd")
                .args(["-M", "-N", "-s", "/bin/false", n])
                .output();
            assert!(out.unwrap().status.success(), "useradd {n}");
        }
        Users(names)
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("userdel").arg(n).output();
        }
    }
}

/// A group made for one test with one member, removed on drop.
struct Group(String);

impl Group {
    fn new(name: &str, member: &str) -> Group {
        let made = Command::new("groupadd").arg(name).status().unwrap();
        assert!(made.success(), "groupadd {name}");
        let group = Group(name.to_string());
        let joined = Command::new("usermod")
            .args(["-a", "-G", name, member])
            .status();
        assert!(joined.unwrap().success(), "usermod -G {name}");
        group
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.0).output();
    }
}

/// `vaultfs ARGS` as `user` (root: as is).
fn as_user(user: &str, args: &[&str]) -> Output {
    let mut c = if user == "root" {
        Command::new(bin())
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--", bin()]);
        c
    };
    c.args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .current_dir("/")
        .output()
        .unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Allowed,
    Denied,
}

/// Allowed (exit 0) or denied (one `denied` line); anything else is a test failure.
fn outcome(user: &str, args: &[&str]) -> Seen {
    let out = as_user(user, args);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Seen::Allowed;
    }
    assert!(
        err.contains("denied"),
        "{user} {args:?}: neither done nor denied (exit {:?}): {err}",
        out.status.code()
    );
    assert_eq!(err.trim().lines().count(), 1, "{user} {args:?}: {err}");
    Seen::Denied
}

#[test]
fn role_matrix_through_the_socket_and_offline() {
    let users = Users::new(&["reader", "operator", "contrib"]);
    let (reader, operator, contrib) = (&users.0[0], &users.0[1], &users.0[2]);
    let dir = tempdir();
    // Other users must reach the vault (search) and, offline, read and write its files.
    let root = dir.path().to_path_buf();
    let vault = root.join("v");
    let src = root.join("src");
    init_vault(&vault);
    make_tree(&src);
    for item in ["web", "db"] {
        ok(&["backup", p(&vault), item, p(&src)]);
    }
    ok(&["role", "grant", p(&vault), "--user", reader, "reader"]);
    ok(&[
        "role",
        "grant",
        p(&vault),
        "--user",
        operator,
        "operator",
        "--item",
        "web",
    ]);
    ok(&["role", "grant", p(&vault), "--user", contrib, "contributor"]);
    // Items without a role on them are not listed.
    let seen = |u: &str| {
        let st = Command::new("chmod")
            .args(["-R", "a+rwX", p(&root)])
            .status();
        assert!(st.unwrap().success());
        String::from_utf8_lossy(&as_user(u, &["items", p(&vault)]).stdout).into_owned()
    };
    let op_items = seen(operator);
    assert!(
        op_items.contains("web") && !op_items.contains("db"),
        "{op_items}"
    );
    let reader_items = seen(reader);
    assert!(
        reader_items.contains("web") && reader_items.contains("db"),
        "{reader_items}"
    );
    let listed = ok(&["role", "list", p(&vault)]);
    assert_eq!(listed.lines().count(), 4, "{listed}");

    let v = p(&vault).to_string();
    let restored = PathBuf::from(format!("/tmp/vfs-restore-{}", std::process::id()));
    let point = |item: &str| {
        let out = ok(&["points", &v, item, "--json"]);
        let js: serde_json::Value = serde_json::from_str(&out).unwrap();
        js.as_array().unwrap().last().unwrap()["point"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // (name, args, rule: reader, operator, contributor; `local` = refused through the socket
    // to everyone but the daemon's user)
    struct Op {
        name: &'static str,
        args: Vec<String>,
        allowed: [bool; 3],
        local: bool,
        undo: Option<Vec<String>>,
    }
    let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let web = format!("web/{}", point("web"));
    let ops = vec![
        Op {
            name: "items",
            args: a(&["items", &v]),
            allowed: [true, true, true],
            local: false,
            undo: None,
        },
        Op {
            name: "points web",
            args: a(&["points", &v, "web"]),
            allowed: [true, true, true],
            local: false,
            undo: None,
        },
        Op {
            name: "points db",
            args: a(&["points", &v, "db"]),
            allowed: [true, false, true],
            local: false,
            undo: None,
        },
        Op {
            name: "restore web",
            args: a(&["restore", &v, "web", p(&restored), "--path", "a"]),
            allowed: [true, true, true],
            local: true,
            undo: None,
        },
        Op {
            name: "backup web",
            args: a(&["backup", &v, "web", p(&src)]),
            allowed: [false, true, true],
            local: true,
            undo: None,
        },
        Op {
            name: "backup db",
            args: a(&["backup", &v, "db", p(&src)]),
            allowed: [false, false, true],
            local: true,
            undo: None,
        },
        Op {
            name: "delete web/P",
            args: a(&["delete", &v, &web]),
            allowed: [false, false, true],
            local: false,
            undo: Some(a(&["undelete", &v, &web])),
        },
        Op {
            name: "policy web",
            args: a(&["policy", &v, "web", "--keep-last", "9"]),
            allowed: [false, false, true],
            local: false,
            undo: None,
        },
        Op {
            name: "settings",
            args: a(&["settings", &v, "--soft-delete-days", "20"]),
            allowed: [false, false, true],
            local: false,
            undo: None,
        },
        Op {
            name: "gc",
            args: a(&["gc", &v]),
            allowed: [false, false, true],
            local: false,
            undo: None,
        },
        Op {
            name: "audit",
            args: a(&["audit", &v]),
            allowed: [false, false, true],
            local: false,
            undo: None,
        },
        Op {
            name: "role list",
            args: a(&["role", "list", &v]),
            allowed: [true, true, true],
            local: false,
            undo: None,
        },
        Op {
            name: "role grant",
            args: a(&[
                "role", "grant", &v, "--user", reader, "reader", "--item", "db",
            ]),
            allowed: [false, false, false],
            local: false,
            undo: None,
        },
        Op {
            // Without a guard, purging early is a contributor's (with one, the owner's).
            name: "gc --expire-now",
            args: a(&["gc", &v, "--expire-now"]),
            allowed: [false, false, true],
            local: false,
            undo: None,
        },
    ];
    let who = [reader.as_str(), operator.as_str(), contrib.as_str(), "root"];
    let open_up = || {
        // Offline, other users need the files (the roles are what is tested, not modes).
        let st = Command::new("chmod")
            .args(["-R", "a+rwX", p(&root)])
            .status()
            .unwrap();
        assert!(st.success());
    };
    let mut table = vec![format!(
        "{:<16} {:>9} {:>9} {:>9} {:>9}",
        "operation (socket/offline)", "reader", "operator", "contrib", "owner"
    )];
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut results: Vec<Vec<(Seen, Seen)>> = Vec::new();
    for op in &ops {
        let mut row = Vec::new();
        for (i, u) in who.iter().enumerate() {
            let args: Vec<&str> = op.args.iter().map(String::as_str).collect();
            let expect = |socket: bool| {
                if i == 3 {
                    true
                } else {
                    op.allowed[i] && !(socket && op.local)
                }
            };
            // Through the socket.
            open_up();
            let mut m = Mount::new(&vault, &mnt);
            let s = outcome(u, &args);
            let _ = fs::remove_dir_all(&restored);
            if s == Seen::Allowed
                && let Some(undo) = &op.undo
            {
                let undo: Vec<&str> = undo.iter().map(String::as_str).collect();
                ok(&undo);
            }
            drop(std::mem::replace(&mut m, Mount::guard(&vault, &mnt)));
            // Offline.
            open_up();
            let o = outcome(u, &args);
            if o == Seen::Allowed
                && let Some(undo) = &op.undo
            {
                let undo: Vec<&str> = undo.iter().map(String::as_str).collect();
                ok(&undo);
            }
            let _ = fs::remove_dir_all(&restored);
            let want = (expect(true), expect(false));
            assert_eq!(
                (s == Seen::Allowed, o == Seen::Allowed),
                want,
                "{u} {}: (socket, offline)",
                op.name
            );
            row.push((s, o));
        }
        let cell = |(s, o): &(Seen, Seen)| {
            let c = |x: &Seen| if *x == Seen::Allowed { "yes" } else { "no" };
            format!("{}/{}", c(s), c(o))
        };
        table.push(format!(
            "{:<26} {:>9} {:>9} {:>9} {:>9}",
            op.name,
            cell(&row[0]),
            cell(&row[1]),
            cell(&row[2]),
            cell(&row[3])
        ));
        results.push(row);
    }
    println!("{}", table.join("\n"));
    // Denials are audit records with the right user.
    open_up();
    let js: serde_json::Value = serde_json::from_str(&ok(&["audit", &v, "--json"])).unwrap();
    let denied: Vec<&serde_json::Value> = js
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .collect();
    assert!(
        denied
            .iter()
            .any(|r| r["user"] == reader.as_str() && r["op"] == "delete")
    );
    assert!(
        denied
            .iter()
            .any(|r| r["user"] == operator.as_str() && r["op"] == "backup")
    );
    assert!(
        denied
            .iter()
            .any(|r| r["user"] == contrib.as_str() && r["op"] == "role grant")
    );
    let _ = results;
}

/// `CMD ARGS` as `user` (root: as is) through the shell-less `runuser`; exit status and stderr.
fn run_as(user: &str, cmd: &[&str]) -> (bool, String) {
    let mut c = if user == "root" {
        Command::new(cmd[0])
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--", cmd[0]]);
        c
    };
    let out = c.args(&cmd[1..]).current_dir("/").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

#[test]
fn role_matrix_through_the_mount() {
    let users = Users::new(&["mreader", "moperator", "mcontrib"]);
    let (reader, operator, contrib) = (&users.0[0], &users.0[1], &users.0[2]);
    let dir = tempdir();
    let root = dir.path().to_path_buf();
    let (vault, src, mnt) = (root.join("v"), root.join("src"), root.join("mnt"));
    init_vault(&vault);
    make_tree(&src);
    fs::create_dir(&mnt).unwrap();
    let v = p(&vault).to_string();
    for item in ["web", "db"] {
        ok(&["backup", &v, item, p(&src)]);
    }
    ok(&["role", "grant", &v, "--user", reader, "reader"]);
    let web_only = ["--item", "web"];
    ok(&[
        &["role", "grant", &v, "--user", operator, "operator"][..],
        &web_only,
    ]
    .concat());
    // The contributor is one through a supplementary group (the request carries the primary).
    let group = Group::new(&format!("vfsmg{}", std::process::id() % 100_000), contrib);
    ok(&["role", "grant", &v, "--group", &group.0, "contributor"]);
    // Other users reach the mount point (and the file they copy); the vault stays root's.
    let st = Command::new("chmod")
        .args(["755", p(&root), p(&mnt), p(&src)])
        .status();
    assert!(st.unwrap().success());
    let mut m = Mount::guard(&vault, &mnt).with_arg("--allow-other");
    m.mount();
    let at = |rel: &str| p(&mnt.join(rel)).to_string();
    let point = names_in(&mnt.join("points/web"))
        .into_iter()
        .find(|n| n != "latest")
        .unwrap();
    // The owner walks everything first: what the kernel keeps of it must let no one else in.
    let (walked, err) = run_as("root", &["ls", "-lR", &at("points"), &at(".deleted")]);
    assert!(walked, "{err}");
    assert!(run_as("root", &["cat", &at("points/db/latest/a")]).0);

    let lists = |u: &str, dir: &str, item: &str| {
        let out = Command::new("runuser")
            .args(["-u", u, "--", "ls", &at(dir)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == item)
    };
    let src_a = p(&src.join("a")).to_string();
    let moved = format!("{}/", at(".deleted/web"));
    let from = at(&format!("points/web/{point}"));
    // (operation, command with USER for the user's name, allowed for reader, operator,
    // contributor, owner)
    type Row = (&'static str, Vec<String>, [bool; 4]);
    let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let rows: Vec<Row> = vec![
        ("ls points/web", a(&["ls", &at("points/web")]), [true; 4]),
        (
            "ls points/db",
            a(&["ls", &at("points/db")]),
            [true, false, true, true],
        ),
        (
            "cat points/web/latest/a",
            a(&["cat", &at("points/web/latest/a")]),
            [true; 4],
        ),
        (
            "cat points/db/latest/a",
            a(&["cat", &at("points/db/latest/a")]),
            [true, false, true, true],
        ),
        (
            "ls .deleted/db",
            a(&["ls", &at(".deleted/db")]),
            [true, false, true, true],
        ),
        (
            "ls versions/db",
            a(&["ls", &at("versions/db")]),
            [true, false, true, true],
        ),
        (
            "cp a incoming/web/",
            a(&["cp", &src_a, &at("incoming/web/USER")]),
            [false, true, true, true],
        ),
        (
            "cp a incoming/db/",
            a(&["cp", &src_a, &at("incoming/db/USER")]),
            [false, false, true, true],
        ),
        (
            "test -w incoming/web",
            a(&["test", "-w", &at("incoming/web")]),
            [false, true, true, true],
        ),
        // Zero-message open: a change to an open file comes as a write or a setattr.
        (
            "truncate incoming/web/root",
            a(&["truncate", "-s", "1", &at("incoming/web/root")]),
            [false, true, true, true],
        ),
        (
            "mv web/P .deleted/web/",
            a(&["mv", &from, &moved]),
            [false, false, true, true],
        ),
    ];
    let who = [reader.as_str(), operator.as_str(), contrib.as_str(), "root"];
    let mut table = vec![format!(
        "{:<26} {:>8} {:>8} {:>8} {:>8}",
        "operation (mount)", "reader", "operator", "contrib", "owner"
    )];
    for (name, cmd, allowed) in &rows {
        let mut cells = Vec::new();
        for (i, u) in who.iter().enumerate() {
            let cmd: Vec<String> = cmd.iter().map(|c| c.replace("USER", u)).collect();
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let (done, err) = run_as(u, &cmd);
            assert!(
                done || err.contains("Permission denied") || name.starts_with("test"),
                "{u} {name}: neither done nor EACCES: {err}"
            );
            assert_eq!(done, allowed[i], "{u} {name}: {err}");
            if done && name.starts_with("mv") {
                let back = format!("{}/", at("points/web"));
                let (undone, err) = run_as(
                    "root",
                    &["mv", &at(&format!(".deleted/web/{point}")), &back],
                );
                assert!(undone, "{err}");
            }
            cells.push(match (done, name.starts_with("test")) {
                (true, _) => "yes",
                (false, true) => "no",
                (false, false) => "EACCES",
            });
        }
        table.push(format!(
            "{name:<26} {:>8} {:>8} {:>8} {:>8}",
            cells[0], cells[1], cells[2], cells[3]
        ));
    }
    // Listings of items show the items a user has a role on, whatever the owner listed before.
    for (u, sees_db) in [(reader, true), (operator, false), (contrib, true)] {
        for area in ["points", ".deleted", "incoming", "versions"] {
            assert!(lists(u, area, "web"), "{u} {area}");
            assert_eq!(lists(u, area, "db"), sees_db, "{u} {area}");
        }
    }
    table.push(format!(
        "{:<26} {:>8} {:>8} {:>8} {:>8}",
        "ls points/ shows db", "yes", "no", "yes", "yes"
    ));
    println!("{}", table.join("\n"));
    // What was written is there, as its writer's.
    let written = names_in(&mnt.join("incoming/web"));
    assert_eq!(written, {
        let mut w = vec![operator.clone(), contrib.clone(), "root".to_string()];
        w.sort();
        w
    });
    // A role revoked while mounted counts at once (the rights of a config generation).
    ok(&["role", "revoke", &v, "--user", reader]);
    let (done, err) = run_as(reader, &["cat", &at("points/web/latest/a")]);
    assert!(!done && err.contains("Permission denied"), "{err}");
    assert!(!lists(reader, "points", "web"));
    // Denied changes are audit records, as the user's; one per user, item and operation.
    let js: serde_json::Value = serde_json::from_str(&ok(&["audit", &v, "--json"])).unwrap();
    let denied = |u: &str, op: &str| {
        js.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == "denied" && r["user"] == u && r["op"] == op)
            .count()
    };
    // Two items, and the truncate of web counted with the cp (once per user, item, operation).
    assert_eq!(denied(reader, "write (mount)"), 2, "{js}");
    // The operator never reaches incoming/db: a lookup refused is not a change (no record).
    assert_eq!(denied(operator, "write (mount)"), 0, "{js}");
    assert_eq!(denied(operator, "delete (mv)"), 1, "{js}");
    assert_eq!(denied(reader, "delete (mv)"), 1, "{js}");
    drop(m);
}

fn make_tree(src: &Path) {
    fs::create_dir_all(src).unwrap();
    fs::write(src.join("a"), b"alpha").unwrap();
}

#[test]
fn bad_role_input_is_one_clear_line_and_changes_nothing() {
    let dir = tempdir();
    let vault = dir.path().join("v");
    init_vault(&vault);
    let before = fs::read(vault.join("config")).unwrap();
    let v = p(&vault);
    for (args, why) in [
        (
            vec!["role", "grant", v, "--user", "no-such-user-xyz", "reader"],
            "no such user",
        ),
        (
            vec!["role", "grant", v, "--group", "no-such-group-xyz", "reader"],
            "no such group",
        ),
        (vec!["role", "revoke", v, "--user", "root"], "has no grant"),
        (
            vec![
                "role", "grant", v, "--user", "root", "reader", "--item", "nope",
            ],
            "no item",
        ),
    ] {
        let err = fails(&args);
        assert!(err.contains(why), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // An unknown role is clap's: exit 2, nothing changed.
    let out = vaultfs(&["role", "grant", v, "--user", "root", "admin"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read(vault.join("config")).unwrap(), before);
}
