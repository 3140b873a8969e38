//! Vaults written by each format version, committed as they were made
//! (`tests/fixtures/vault-vN.tar.gz`, passphrase in `vault-vN.manifest.json`): every later
//! vaultfs must open them, find them clean with `check --read-data` and restore each of their
//! points identically to the committed manifest (paths, kinds, modes, owners, sizes, mtimes,
//! blake3 of contents, symlink targets, xattrs, hard links). Each holds a few files, a symlink,
//! a hard link, xattrs, two live points and one soft-deleted point.
//!
//! A fixture is made by `VAULTFS_FIXTURE_WRITE=1 cargo test --test fixture` for the current
//! format version (it never overwrites one); a new format version adds a new fixture and keeps
//! the older ones.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const ITEM: &str = "docs";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `vaultfs ARGS` with passphrase `pass`; must succeed.
fn run(pass: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .args(args)
        .env("VAULTFS_PASSPHRASE", pass)
        .env_remove("RUST_LOG")
        .output()
        .expect("run vaultfs");
    succeeded(args, out)
}

/// Every entry under `root` (itself as "."), as the manifest records it. Hard links: the
/// sorted paths of an inode's links share the index of the first.
fn entries(root: &Path) -> Value {
    let mut paths = vec![root.to_path_buf()];
    paths.extend(walk(root));
    let mut first_link: BTreeMap<u64, String> = BTreeMap::new();
    let mut out = Vec::new();
    for path in paths {
        let md = std::fs::symlink_metadata(&path).unwrap();
        let rel = match path.strip_prefix(root).unwrap() {
            r if r.as_os_str().is_empty() => ".".to_string(),
            r => r.to_string_lossy().into_owned(),
        };
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let mut e = json!({
            "path": rel,
            "kind": kind,
            "mode": format!("{:o}", md.mode() & 0o7777),
            "owner": format!("{}:{}", md.uid(), md.gid()),
            "xattrs": xattrs(&path)
                .into_iter()
                .map(|(n, v)| format!("{n}={}", hex::encode(v)))
                .collect::<Vec<_>>(),
        });
        e["mtime_ns"] = json!(md.mtime() * 1_000_000_000 + md.mtime_nsec());
        if kind == "file" {
            e["size"] = json!(md.len());
            e["blake3"] = json!(
                blake3::hash(&std::fs::read(&path).unwrap())
                    .to_hex()
                    .as_str()
            );
            if md.nlink() > 1 {
                let leader = first_link.entry(md.ino()).or_insert_with(|| rel.clone());
                e["hard_link_of"] = json!(leader.clone());
            }
        }
        if kind == "symlink" {
            e["target"] = json!(std::fs::read_link(&path).unwrap().to_string_lossy());
        }
        out.push(e);
    }
    Value::Array(out)
}

fn listed(pass: &str, vault: &Path, deleted: bool) -> BTreeSet<String> {
    let mut args = vec!["points", p(vault), ITEM, "--json"];
    if deleted {
        args.push("--deleted");
    }
    let json: Value = serde_json::from_str(&run(pass, &args)).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|pt| pt["point"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn version_2_fixture_vault_opens_checks_and_restores_identically() {
    fixture_opens_checks_and_restores_identically(2);
}

#[test]
fn version_3_fixture_vault_opens_checks_and_restores_identically() {
    fixture_opens_checks_and_restores_identically(3);
}

#[test]
fn version_4_fixture_vault_opens_checks_and_restores_identically() {
    fixture_opens_checks_and_restores_identically(4);
}

#[test]
fn version_5_fixture_vault_opens_checks_and_restores_identically() {
    fixture_opens_checks_and_restores_identically(5);
}

fn fixture_opens_checks_and_restores_identically(version: u32) {
    let tar = fixtures().join(format!("vault-v{version}.tar.gz"));
    let manifest_path = fixtures().join(format!("vault-v{version}.manifest.json"));
    if !tar.exists()
        && std::env::var_os("VAULTFS_FIXTURE_WRITE").is_some()
        && version == vaultfs::format::FORMAT_VERSION
    {
        make_fixture(version, &tar, &manifest_path);
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let pass = manifest["passphrase"].as_str().unwrap();
    let tmp = tempdir();
    sh(&format!(
        "tar -xzf '{}' -C '{}'",
        tar.display(),
        tmp.path().display()
    ));
    let vault = tmp.path().join("vault");

    let points = manifest["points"].as_array().unwrap();
    let expect = |deleted: bool| -> BTreeSet<String> {
        points
            .iter()
            .filter(|pt| pt["deleted"] == json!(deleted))
            .map(|pt| pt["point"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(pass, &vault, false), expect(false), "live points");
    assert_eq!(
        listed(pass, &vault, true),
        expect(true),
        "soft-deleted points"
    );
    assert_eq!((expect(false).len(), expect(true).len()), (2, 1));
    // Points record their origin from format v5; older ones show none.
    for deleted in [false, true] {
        let mut args = vec!["points", p(&vault), ITEM, "--json"];
        if deleted {
            args.push("--deleted");
        }
        let json: Value = serde_json::from_str(&run(pass, &args)).unwrap();
        for pt in json.as_array().unwrap() {
            let name = pt["point"].as_str().unwrap();
            let want = points.iter().find(|m| m["point"] == pt["point"]).unwrap();
            if version < 5 {
                assert_eq!(
                    (&pt["host"], &pt["paths"], &pt["tags"]),
                    (&Value::Null, &json!([]), &json!([])),
                    "v{version} point {name} shows an origin"
                );
            } else {
                assert_eq!(&pt["tags"], &want["tags"], "point {name}");
                assert_eq!(&pt["host"], &want["host"], "point {name}");
                assert_eq!(pt["paths"].as_array().unwrap().len(), 1, "point {name}");
            }
        }
    }

    let check = run(pass, &["check", p(&vault), "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");
    for pt in points {
        let name = pt["point"].as_str().unwrap();
        let dest = tmp.path().join(format!("restore-{name}"));
        run(
            pass,
            &["restore", p(&vault), &format!("{ITEM}/{name}"), p(&dest)],
        );
        let got = entries(&dest);
        assert_eq!(
            &got, &pt["entries"],
            "point {name} restores differently from the manifest"
        );
    }
    // gc finds live meta blobs by encoding records again: a point recorded by an older
    // format must keep its bytes, or gc drops its record and a repair loses the point.
    run(pass, &["gc", p(&vault)]);
    run(pass, &["repair", p(&vault)]);
    assert_eq!(
        listed(pass, &vault, false),
        expect(false),
        "live points after gc and repair"
    );
}

/// Versions 1 and 2 differ only in record kinds v2 added, and v3 only in the config: a v1 or v2
/// vault is upgraded in place at its first open (config rewritten as v3, its copy made, a copy
/// sealed into the packs) and keeps every point.
#[test]
fn version_1_and_2_vaults_are_upgraded_in_place() {
    for version in [1, 2] {
        let tmp = tempdir();
        sh(&format!(
            "tar -xzf '{}' -C '{}'",
            fixtures().join("vault-v2.tar.gz").display(),
            tmp.path().display()
        ));
        let vault = tmp.path().join("vault");
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join("vault-v2.manifest.json")).unwrap(),
        )
        .unwrap();
        let pass = manifest["passphrase"].as_str().unwrap();
        let cfg_path = vault.join("config");
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
        cfg["version"] = version.into();
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let before = listed(pass, &vault, false);
        let cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
        assert_eq!(
            cfg["version"],
            vaultfs::format::FORMAT_VERSION,
            "v{version} not upgraded: {cfg}"
        );
        assert_eq!(
            std::fs::read(&cfg_path).unwrap(),
            std::fs::read(vault.join("config.copy")).unwrap(),
            "v{version}: the config's copy"
        );
        assert_eq!(listed(pass, &vault, false), before);
        let check = run(pass, &["check", p(&vault), "--read-data"]);
        assert!(check.contains(": 0 errors"), "v{version}: {check}");
    }
}

/// Write the fixture vault and its manifest (from the source trees, not from a restore).
fn make_fixture(version: u32, tar: &Path, manifest_path: &Path) {
    let pass = format!("fixture passphrase v{version}");
    let run = |args: &[&str]| run(&pass, args);
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let vault = tmp.path().join("vault");
    let w = |rel: &str, data: &[u8]| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    w(
        "README",
        format!("a vault made by format version {version}\n").as_bytes(),
    );
    w("data/blob.bin", &noise(60_000, 7));
    w("data/empty", b"");
    std::os::unix::fs::symlink("data/blob.bin", src.join("latest")).unwrap();
    std::fs::hard_link(src.join("README"), src.join("data/README.link")).unwrap();
    let s = src.display();
    sh(&format!(
        "setfattr -n user.comment -v 'kept' '{s}/README' && setfattr -n user.bin -v 0x00ff '{s}/data' \
         && chmod 0640 '{s}/data/empty' && chown 1234:5678 '{s}/data/blob.bin' \
         && find '{s}' -exec touch -h -d '2020-01-02 03:04:05.123456789' {{}} +"
    ));
    run(&[
        "init",
        p(&vault),
        "--kdf-memory-kib",
        "64",
        "--kdf-iterations",
        "1",
        "--chunk-avg",
        "16384",
    ]);
    let mut points = Vec::new();
    let backup = |points: &mut Vec<Value>| {
        let n = points.len().to_string();
        let mut args = vec!["backup", p(&vault), ITEM, p(&src)];
        if version >= 5 {
            args.extend(["--tag", "fixture", "--tag", &n]);
        }
        let out = run(&args);
        let (_, name) = created_point(&out).expect("created point line");
        let mut pt = json!({"point": name, "deleted": false, "entries": entries(&src)});
        if version >= 5 {
            let mut tags = vec!["fixture".to_string(), n.clone()];
            tags.sort();
            pt["tags"] = json!(tags);
            pt["host"] = json!(
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .unwrap()
                    .trim()
            );
        }
        points.push(pt);
    };
    backup(&mut points);
    w("data/second.txt", b"added for the second point\n");
    sh(&format!(
        "touch -d '2021-01-01' '{s}/data/second.txt' '{s}/data'"
    ));
    backup(&mut points);
    std::fs::remove_file(src.join("data/empty")).unwrap();
    w("third.txt", &noise(20_000, 8));
    sh(&format!(
        "touch -d '2022-01-01' '{s}/third.txt' '{s}/data' '{s}'"
    ));
    backup(&mut points);
    let first = points[0]["point"].as_str().unwrap().to_string();
    run(&["delete", p(&vault), &format!("{ITEM}/{first}")]);
    points[0]["deleted"] = json!(true);
    sh(&format!(
        "tar --sort=name --owner=0 --group=0 --numeric-owner -czf '{}' -C '{}' vault",
        tar.display(),
        tmp.path().display()
    ));
    let doc = json!({
        "about": format!(
            "the vault in vault-v{version}.tar.gz (format version {version}) and what each point restores to"
        ),
        "passphrase": pass,
        "points": points,
    });
    std::fs::write(
        manifest_path,
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
}
