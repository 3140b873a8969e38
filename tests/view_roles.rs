//! Roles in the view, without FUSE (DESIGN.md §13): the decisions the FUSE door only passes a
//! caller to. A uid with no user entry (its groups are its gid alone) holds a reader grant on
//! one item; the owner is root. The mount itself is tested in `tests/roles.rs`.

mod common;
use common::*;

use std::sync::Arc;

use vaultfs::format::{AuditOutcome, Role, RoleGrant};
use vaultfs::vault::Vault;
use vaultfs::view::ino::{DELETED, INCOMING, POINTS};
use vaultfs::view::{Caller, Lookup, Stability, View, ViewError};

const UID: u32 = 4_242_424;

fn names(view: &View, who: Caller, dir: u64) -> Vec<String> {
    let o = view.opendir_as(who, dir).unwrap();
    assert_eq!(
        o.stability,
        Stability::Caller,
        "listings of items are per caller"
    );
    let list = view.readdir(dir, Some(o.fh), 0).unwrap();
    view.release(o.fh);
    let mut n: Vec<String> = list
        .iter()
        .filter(|e| !e.is_dot())
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    n.sort();
    n
}

fn denied(r: Result<impl std::fmt::Debug, ViewError>) -> bool {
    matches!(r, Err(ViewError::AccessDenied))
}

#[test]
fn the_view_decides_by_the_callers_role() {
    let dir = tempdir();
    let (vault_dir, src) = (dir.path().join("v"), dir.path().join("src"));
    init_vault(&vault_dir);
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"alpha").unwrap();
    for item in ["web", "db"] {
        ok(&[
            "backup",
            vault_dir.to_str().unwrap(),
            item,
            src.to_str().unwrap(),
        ]);
    }
    let vault = Arc::new(Vault::open(&vault_dir, PASS.as_bytes()).unwrap());
    let grant = |role| RoleGrant {
        group: false,
        id: UID,
        name: UID.to_string(),
        role,
        item: Some("web".into()),
    };
    vault.grant(grant(Role::Reader)).unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let view = View::new(vault.clone(), 16 << 20, &staging).unwrap();
    let (user, root) = (Caller { uid: UID, gid: UID }, Caller { uid: 0, gid: 0 });

    // Not enforced (a door only the owner can enter): nothing is checked.
    assert!(matches!(
        view.lookup_as(user, POINTS, b"db"),
        Ok(Lookup::Found(_))
    ));
    view.enforce_roles();

    // Items without a role: refused on lookup, absent from listings.
    for area in [POINTS, DELETED, INCOMING] {
        assert!(denied(view.lookup_as(user, area, b"db")), "{area}");
        match view.lookup_as(user, area, b"web") {
            Ok(Lookup::Found(a)) => assert_eq!(a.stability, Stability::Caller),
            other => panic!("{area}: {other:?}"),
        }
        assert_eq!(names(&view, user, area), ["web"]);
        assert_eq!(names(&view, root, area), ["db", "web"]);
    }
    // A reader changes nothing in incoming/web; the refusal is one audit record however often.
    let Ok(Lookup::Found(web)) = view.lookup_as(user, INCOMING, b"web") else {
        panic!("incoming/web")
    };
    for _ in 0..3 {
        assert!(denied(view.create(web.ino, b"f", 0o644, user)));
        assert!(denied(view.may_change(user, web.ino, Some(b"f"))));
    }
    assert!(denied(view.may_write(user, web.ino)));
    assert!(denied(view.mkdir(INCOMING, b"new", 0o755, user)));
    view.create(web.ino, b"by-root", 0o644, root).unwrap();
    let refused = |op: &str| {
        let log = vault.audit_log().unwrap();
        log.records
            .iter()
            .filter(|r| r.uid == UID && r.op == op && matches!(r.outcome, AuditOutcome::Denied(_)))
            .count()
    };
    assert_eq!(refused("write (mount)"), 2, "incoming/web and incoming/new");

    // A grant changes the config generation: the next request sees it.
    vault.grant(grant(Role::Operator)).unwrap();
    view.create(web.ino, b"f", 0o644, user).unwrap();
    view.may_write(user, web.ino).unwrap();
    // A soft delete needs a contributor.
    let Ok(Lookup::Found(pts)) = view.lookup_as(user, POINTS, b"web") else {
        panic!("points/web")
    };
    let Ok(Lookup::Found(del)) = view.lookup_as(user, DELETED, b"web") else {
        panic!(".deleted/web")
    };
    let point = vault.points(Some("web"), false).unwrap()[0].name.clone();
    let mv = |who| {
        let mode = vaultfs::view::RenameMode::NoReplace;
        view.rename_as(
            who,
            pts.ino,
            point.as_bytes(),
            del.ino,
            point.as_bytes(),
            mode,
        )
    };
    assert!(denied(mv(user)));
    assert_eq!(refused("delete (mv)"), 1);
    assert!(vault.points(Some("web"), false).unwrap().len() == 1);
    vault.grant(grant(Role::Contributor)).unwrap();
    mv(user).unwrap();
    assert!(vault.points(Some("web"), false).unwrap().is_empty());
    view.shutdown().unwrap();
}
