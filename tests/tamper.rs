//! Attacks on what is stored, for issue 13 and issue 11's config item: a flipped byte anywhere
//! in the config (damage, found without a key, healed from the other copy, never "wrong
//! passphrase"); an older sealed revision of a point record, of the settings (the config) or of
//! a policy copied back over the newer one (a rollback); a tree crafted through the library
//! whose entry names try to leave DEST.

mod common;

use std::path::Path;

use common::*;
use zeroize::Zeroizing;

use vaultfs::format::{self, ChunkRef, Node, NodeKind, Tree};
use vaultfs::keys::Credential;
use vaultfs::store::BlobKind;
use vaultfs::store::index::Db;
use vaultfs::vault::{Vault, now_ns};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn credential() -> Credential {
    Credential::Passphrase(Zeroizing::new(PASS.as_bytes().to_vec()))
}

/// The only (key, value) of a catalog tree, read with no process holding the vault.
fn catalog_entry(vault: &Path, tree: &str) -> (Vec<u8>, Vec<u8>) {
    let id = hex::decode(Vault::read_config(vault).unwrap().vault_id).unwrap();
    let db = Db::open(&vault.join("index"), &id, None).unwrap();
    let entries: Vec<_> = db
        .tree(tree)
        .unwrap()
        .iter()
        .map(|kv| kv.unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{tree}");
    (entries[0].0.to_vec(), entries[0].1.to_vec())
}

fn put_catalog_entry(vault: &Path, tree: &str, key: &[u8], value: &[u8]) {
    let id = hex::decode(Vault::read_config(vault).unwrap().vault_id).unwrap();
    let db = Db::open(&vault.join("index"), &id, None).unwrap();
    db.tree(tree).unwrap().insert(key, value).unwrap();
    db.flush().unwrap();
}

/// Issue 11, config item: every single-byte change of `config` (each offset, its low bit and
/// its 0x20 bit flipped) is found as damage, reported as such, and healed from `config.copy`; the vault
/// opens every time. `config.copy` likewise at a seeded sample of 200 offsets (each flipped
/// to a random other byte).
#[test]
fn every_byte_flip_of_the_config_is_damage_that_heals() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    ok(&["settings", s(&vault), "--soft-delete-days", "21"]);
    let config = vault.join("config");
    let copy = vault.join("config.copy");
    let good = std::fs::read(&config).unwrap();
    assert_eq!(good, std::fs::read(&copy).unwrap());
    let cred = credential();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Each offset twice: its low bit, and its 0x20 bit (letter case: hex digits must not
    // compare case-insensitively).
    let mut cases: Vec<(&Path, usize, u8)> = (0..good.len())
        .flat_map(|i| [(config.as_path(), i, 0x01), (config.as_path(), i, 0x20)])
        .collect();
    for _ in 0..200 {
        let at = (next() % good.len() as u64) as usize;
        let x = (next() % 255) as u8 + 1;
        cases.push((copy.as_path(), at, x));
    }
    for (file, at, x) in cases {
        let mut bad = good.clone();
        bad[at] ^= x;
        std::fs::write(file, &bad).unwrap();
        let what = format!("{} byte {at} ^ {x:#x}", file.display());
        let v = Vault::open_credential(&vault, &cred).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(v.params().soft_delete_days, 21, "{what}");
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            v.notes()
                .iter()
                .any(|n| n.starts_with(&format!("{name} was damaged"))),
            "{what}: not reported as damage: {:?}",
            v.notes()
        );
        drop(v);
        assert_eq!(
            std::fs::read(&config).unwrap(),
            good,
            "{what}: config not healed"
        );
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            good,
            "{what}: copy not healed"
        );
    }
    // Through the CLI: one note, and the command works.
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x20;
    std::fs::write(&config, &bad).unwrap();
    let out = vaultfs(&["items", s(&vault)]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("note: config was damaged"), "{stderr}");
    assert!(!stderr.contains("passphrase"), "{stderr}");
    // Both copies damaged: an error that says so, not a wrong passphrase.
    std::fs::write(&config, &bad).unwrap();
    std::fs::write(&copy, &bad).unwrap();
    let err = fails(&["items", s(&vault)]);
    assert!(err.contains("config") && err.contains("damaged"), "{err}");
    assert!(!err.contains("passphrase"), "{err}");
}

/// Acceptance 9: an older sealed revision of a point record copied back over the newer one
/// (undoing a soft delete) is found by `check`; `repair` restores the newest.
#[test]
fn a_point_record_copied_back_is_detected() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let src = tmp.path().join("src");
    write(&src.join("f"), b"rollback\n");
    let (_, point) = created_point(&ok(&["backup", s(&vault), "web", s(&src)])).unwrap();
    let (key, live) = catalog_entry(&vault, "points");
    ok(&["delete", s(&vault), &format!("web/{point}")]);
    assert!(!ok(&["points", s(&vault)]).contains(&point));
    assert!(ok(&["check", s(&vault)]).contains(": 0 errors"));
    put_catalog_entry(&vault, "points", &key, &live);
    // The old revision authenticates: the point shows as live again...
    assert!(ok(&["points", s(&vault)]).contains(&point));
    // ...but check compares it with the packs.
    let err = String::from_utf8_lossy(&vaultfs(&["check", s(&vault)]).stderr).into_owned();
    assert!(
        err.contains(&format!("the point record of web/{point} is revision 1"))
            && err.contains("revision 2")
            && err.contains("rollback"),
        "{err}"
    );
    ok(&["repair", s(&vault)]);
    assert!(!ok(&["points", s(&vault)]).contains(&point));
    assert!(ok(&["check", s(&vault)]).contains(": 0 errors"));
}

/// Acceptance 9: an older config (older settings) copied back over both copies is refused at
/// open; `repair` brings back the newest from the packs. A policy record copied back is found
/// by `check`.
#[test]
fn older_settings_and_policies_copied_back_are_detected() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let old = (
        std::fs::read(vault.join("config")).unwrap(),
        std::fs::read(vault.join("config.copy")).unwrap(),
    );
    ok(&["settings", s(&vault), "--soft-delete-days", "30"]);
    ok(&["settings", s(&vault), "--soft-delete", "always-on"]);
    std::fs::write(vault.join("config"), &old.0).unwrap();
    std::fs::write(vault.join("config.copy"), &old.1).unwrap();
    let err = fails(&["settings", s(&vault), "--soft-delete-days", "1"]);
    assert!(
        err.contains("rollback") && err.contains("older config"),
        "{err}"
    );
    let out = ok(&["repair", s(&vault)]);
    assert!(out.contains("rebuilt"), "{out}");
    let shown = ok(&["settings", s(&vault)]);
    assert!(
        shown.contains("30") && shown.contains("always-on"),
        "{shown}"
    );
    assert!(ok(&["check", s(&vault)]).contains(": 0 errors"));

    // A policy: the older revision copied back.
    let src = tmp.path().join("src");
    write(&src.join("f"), b"p\n");
    ok(&["backup", s(&vault), "web", s(&src)]);
    ok(&["policy", s(&vault), "web", "--keep-last", "30"]);
    let (key, lax) = catalog_entry(&vault, "policies");
    ok(&["policy", s(&vault), "web", "--keep-last", "3"]);
    put_catalog_entry(&vault, "policies", &key, &lax);
    let err = String::from_utf8_lossy(&vaultfs(&["check", s(&vault)]).stderr).into_owned();
    assert!(
        err.contains("the policy record of web") && err.contains("rollback"),
        "{err}"
    );
}

fn file_node(name: &[u8], chunk: ChunkRef) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        size: chunk.len as u64,
        chunks: vec![chunk],
        subtree: None,
        target: Vec::new(),
        xattrs: Vec::new(),
        link_group: 0,
        nlink: 1,
        rdev: 0,
        src_ino: 0,
        ctime_ns: 0,
    }
}

fn dir_node(name: &[u8], subtree: vaultfs::store::BlobId) -> Node {
    Node {
        kind: NodeKind::Dir,
        mode: 0o755,
        size: 0,
        chunks: Vec::new(),
        subtree: Some(subtree),
        nlink: 2,
        ..file_node(
            name,
            ChunkRef {
                id: subtree,
                len: 0,
            },
        )
    }
}

/// Acceptance 10: a tree crafted through the library with `..`, `a/b`, `.` and NUL entry names
/// (and a name listed twice) is refused by `restore`, and nothing is written outside DEST.
#[test]
fn restore_refuses_crafted_entry_names() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let v = Vault::open_credential(&vault, &credential()).unwrap();
    let store = v.store();
    let data = b"escaped!\n";
    let chunk = ChunkRef {
        id: store.put(BlobKind::Data, data).unwrap(),
        len: data.len() as u32,
    };
    let put_tree = |nodes: Vec<Node>| {
        store
            .put(BlobKind::Tree, &format::encode(&Tree { nodes }))
            .unwrap()
    };
    let mut bad_points = Vec::new();
    for names in [
        vec![&b".."[..]],
        vec![&b"a/b"[..]],
        vec![&b"."[..]],
        vec![&b"x\0y"[..]],
        vec![&b""[..]],
        vec![&b"twice"[..], &b"twice"[..]],
    ] {
        // The crafted listing sits one level down, beside a harmless file.
        let inner = put_tree(names.iter().map(|n| file_node(n, chunk)).collect());
        let top = put_tree(vec![dir_node(b"deep", inner), file_node(b"ok.txt", chunk)]);
        let failures = store.failures();
        let rec = v
            .commit_point("evil", now_ns(), dir_node(b"", top), (1, 1, 1), failures)
            .unwrap();
        bad_points.push((names, rec.name));
    }
    drop(v);
    for (names, point) in bad_points {
        let area = tmp.path().join(format!("area-{point}"));
        let dest = area.join("a").join("dest");
        let out = vaultfs(&["restore", s(&vault), &format!("evil/{point}"), s(&dest)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{names:?}: {stderr}");
        assert!(stderr.contains("refused"), "{names:?}: {stderr}");
        let mut found: Vec<String> = walk(&area)
            .iter()
            .map(|p| p.strip_prefix(&area).unwrap().display().to_string())
            .collect();
        found.sort();
        assert_eq!(
            found,
            ["a", "a/dest", "a/dest/deep", "a/dest/ok.txt"],
            "{names:?}: written outside the crafted listing's directory"
        );
    }
}
