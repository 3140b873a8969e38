//! Issue 13 with the vault mounted: a vault with only an RSA slot through the mount
//! (acceptance 1), the control socket letting in its owner by peer credentials alone and
//! refusing every other uid (acceptance 8), and a vault at a path longer than a socket address
//! (acceptance 11).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::mnt::*;
use common::*;

/// Files of several sizes in nested directories (what these tests need; symlink and hard-link
/// fidelity through incoming is tests/incoming.rs's).
fn plain_tree(root: &Path, seed: u64) {
    for (i, len) in [0usize, 100, 70_000, 1_500_000].into_iter().enumerate() {
        let dir = root.join(format!("d{}", i % 2)).join("sub");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), noise(len, seed + i as u64)).unwrap();
    }
}

/// `vaultfs ARGS` with no passphrase or key at all, and no terminal to prompt on.
fn keyless(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("VAULTFS_PASSPHRASE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `vaultfs ARGS` as uid/gid 65534 (nobody), no supplementary groups.
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
        .args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn rsa_only_vault_mounts_takes_rsync_and_snapshots_with_its_private_key() {
    let f = Fixture::with_init(|_| {});
    let (private, public) = rsa_pair(&f.root, "kms", 3072);
    let (other, _) = rsa_pair(&f.root, "other", 2048);
    ok(&["init", s(&f.vault), "--rsa-public-key", s(&public)]);
    plain_tree(&f.src, 3);
    let before = walk(&f.vault)
        .into_iter()
        .map(|p| (fs::read(&p).ok(), p))
        .collect::<Vec<_>>();

    // No key (a passphrase is not a slot of this vault) or the wrong one: one line, no mount.
    for args in [vec![], vec!["--rsa-key".to_string(), s(&other).to_string()]] {
        let mut m = Mount::guard(&f.vault, &f.mnt);
        m.args = args;
        let out = m.try_mount();
        let err = failed_clearly(&["mount"], &out);
        assert!(err.contains("slot") || err.contains("key"), "{err}");
        assert!(!is_mounted(&f.mnt));
    }
    let after = walk(&f.vault)
        .into_iter()
        .map(|p| (fs::read(&p).ok(), p))
        .collect::<Vec<_>>();
    assert!(before == after, "a refused mount changed the vault");

    let item = "kms-item";
    {
        let mut m = Mount::guard(&f.vault, &f.mnt);
        m.args = vec!["--rsa-key".into(), s(&private).into()];
        m.mount();
        let dest = m.path(&format!("incoming/{item}"));
        fs::create_dir(&dest).unwrap();
        sh(&format!("rsync -aHX {}/ {}", s(&f.src), s(&dest)));
        // Through the socket: no key given at all.
        let args = ["snapshot", s(&f.vault), item];
        let out = succeeded(&args, keyless(&args));
        assert!(out.starts_with(&format!("created point {item}/")), "{out}");
        assert_same_tree(&f.src, &m.latest(item));
        ok(&["umount", s(&f.mnt)]);
    }
    let dest = f.root.join("restored");
    let key = ["--rsa-key", s(&private)];
    let args = [&["restore", s(&f.vault), item, s(&dest)][..], &key].concat();
    succeeded(&args, keyless(&args));
    assert_same_tree(&f.src, &dest);
    let args = [&["check", s(&f.vault), "--read-data"][..], &key].concat();
    succeeded(&args, keyless(&args));
}

#[test]
fn the_socket_lets_in_its_owner_without_a_key_and_refuses_other_uids() {
    let f = Fixture::new();
    make_small_tree(&f.src, 4);
    let p1 = backup(&f.vault, "home", &f.src);
    let _m = Mount::new(&f.vault, &f.mnt);

    // The owner: no passphrase, no key, nothing to derive.
    let args = ["points", s(&f.vault)];
    assert!(succeeded(&args, keyless(&args)).contains(&p1));

    // Another uid, even with the passphrase: the vault directory is 0700, so it cannot reach
    // the socket (nor the vault).
    let out = as_nobody(&args);
    failed_clearly(&args, &out);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&p1));

    // Open the way to the socket: the daemon itself refuses the peer by its uid.
    let sock = f.vault.join("control.sock");
    for dir in [&f.root, &f.vault] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).unwrap();
    }
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&args);
    let err = failed_clearly(&args, &out);
    assert!(err.contains("only the vault's owner"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&p1));
    let backup_args = ["backup", s(&f.vault), "home", "/etc/hostname"];
    failed_clearly(&backup_args, &as_nobody(&backup_args));
    assert_eq!(ok(&args).lines().count(), 2, "nobody added no point");
}

#[test]
fn a_vault_at_a_path_over_200_characters_mounts_and_answers_commands() {
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let mut deep = root.clone();
    for c in ['a', 'b', 'c', 'd'] {
        deep.push(c.to_string().repeat(50));
    }
    let vault = deep.join("vault");
    assert!(s(&vault).len() > 200, "{}", s(&vault).len());
    fs::create_dir_all(&deep).unwrap();
    init_vault(&vault);
    let src = root.join("src");
    plain_tree(&src, 5);
    let p1 = backup(&vault, "home", &src);
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let m = Mount::new(&vault, &mnt);
    let points = ok(&["points", s(&vault)]);
    assert!(points.contains(&p1), "{points}");
    // `points` can only have answered through the daemon: sled is locked by it.
    let dest = m.path("incoming/home");
    sh(&format!("rsync -aHX {}/ {}", s(&src), s(&dest)));
    let p2 = snapshot(&vault, "home");
    assert_same_tree(&src, &m.latest("home"));
    assert!(ok(&["points", s(&mnt)]).contains(&p2));
    let pid = m.pid();
    ok(&["umount", s(&mnt)]);
    assert!(!is_mounted(&mnt));
    assert!(wait_gone(pid, std::time::Duration::from_secs(10)));
}
