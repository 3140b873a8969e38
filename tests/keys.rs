//! Issue 13, keys you control: key slots of every kind (passphrase, keyfile, customer-managed
//! RSA through a private key or an unwrap command), adding, removing and rotating them,
//! data-key epochs, revocation; and the attacks on them: a wrong or revoked key, a refusing
//! key service, rolled-back records and settings, a crafted tree that tries to escape DEST, a
//! flipped byte anywhere in the config, files readable by others.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `vaultfs ARGS` with no passphrase in the environment unless `env` gives one.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("VAULTFS_PASSPHRASE")
        .env_remove("VAULTFS_NEW_PASSPHRASE")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run vaultfs")
}

#[track_caller]
fn run_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(args, env);
    assert!(
        out.status.success(),
        "vaultfs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command fails with one clear line of its own on stderr (no panic; an unwrap command
/// may add its own lines); returns it.
#[track_caller]
fn one_line_failure(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vaultfs"))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(lines[0].starts_with("vaultfs: error: "), "{stderr}");
    lines[0].to_string()
}

/// Every file under `dir` with its bytes (directories as empty entries).
fn state(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = if p.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (p.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

/// An unwrap command that plays a key service holding `private` (OAEP with SHA-256).
fn unwrap_command(private: &Path) -> String {
    format!(
        "openssl pkeyutl -decrypt -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
         -pkeyopt rsa_mgf1_md:sha256 -inkey '{}'",
        private.display()
    )
}

/// Hashes of every pack file.
fn pack_sums(vault: &Path) -> BTreeMap<PathBuf, String> {
    state(&vault.join("packs"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "pack"))
        .map(|(p, b)| (p, blake3::hash(&b).to_hex().to_string()))
        .collect()
}

fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello keys\n").unwrap();
    std::fs::write(src.join("sub/noise.bin"), noise(300_000, 5)).unwrap();
    src
}

/// A vault in `dir/vault` whose one slot is a new RSA key labelled `label`, and a source
/// tree: (private key, vault, source).
fn rsa_vault(dir: &Path, bits: u32, label: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (private, public) = rsa_pair(dir, "kms", bits);
    let vault = dir.join("vault");
    let args = [
        "init",
        s(&vault),
        "--rsa-public-key",
        s(&public),
        "--label",
        label,
    ];
    run_ok(&args, &[]);
    (private, vault, source(dir))
}

/// Acceptance 1 (the commands that need no mount; the mount is in tests/mounted_keys.rs): a vault
/// made with only an RSA public key backs up, restores and checks with the private key, a
/// PKCS#1 copy of it, or an unwrap command; the wrong key or none gives one line and changes
/// nothing.
#[test]
fn rsa_only_vault_works_with_its_private_key_and_refuses_others() {
    let tmp = tempdir();
    let (private, vault, src) = rsa_vault(tmp.path(), 3072, "kms prod");
    let public = tmp.path().join("kms.pub.pem");
    let (other, _) = rsa_pair(tmp.path(), "other", 2048);
    let config = std::fs::read_to_string(vault.join("config")).unwrap();
    assert!(
        !config.contains("argon2"),
        "an RSA-only vault has no passphrase slot: {config}"
    );
    let key = ["--rsa-key", s(&private)];
    let out = run_ok(
        &[&["backup", s(&vault), "web", s(&src)][..], &key].concat(),
        &[],
    );
    let (_, point) = created_point(&out).unwrap();
    let dest = tmp.path().join("dest");
    run_ok(
        &[&["restore", s(&vault), "web", s(&dest)][..], &key].concat(),
        &[],
    );
    assert_same_tree(&src, &dest);
    let check = run_ok(
        &[&["check", s(&vault), "--read-data"][..], &key].concat(),
        &[],
    );
    assert!(check.contains(": 0 errors"), "{check}");
    // The same key as PKCS#1 ("BEGIN RSA PRIVATE KEY"), and through a command.
    let pkcs1 = tmp.path().join("kms.pkcs1.pem");
    sh(&format!(
        "openssl pkey -in '{}' -traditional -out '{}'",
        private.display(),
        pkcs1.display()
    ));
    assert!(
        std::fs::read_to_string(&pkcs1)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    run_ok(&["points", s(&vault), "--rsa-key", s(&pkcs1)], &[]);
    let cmd = unwrap_command(&private);
    let listed = run_ok(&["points", s(&vault), "--unwrap-command", &cmd], &[]);
    assert!(listed.contains(&point), "{listed}");

    let before = state(&vault);
    for (args, want) in [
        (
            vec!["points", s(&vault), "--rsa-key", s(&other)],
            "belongs to no key slot",
        ),
        (vec!["points", s(&vault)], "has no passphrase key slot"),
        (
            vec![
                "restore",
                s(&vault),
                "web",
                s(&tmp.path().join("d2")),
                "--rsa-key",
                s(&other),
            ],
            "belongs to no key slot",
        ),
        (
            vec![
                "check",
                s(&vault),
                "--unwrap-command",
                &unwrap_command(&other),
            ],
            "the unwrap command refused",
        ),
        (
            vec!["backup", s(&vault), "web", s(&src), "--rsa-key", s(&public)],
            "this is a public key",
        ),
    ] {
        let line = one_line_failure(&args, &[("VAULTFS_PASSPHRASE", PASS)]);
        assert!(line.contains(want), "{args:?}: {line}");
    }
    assert_eq!(state(&vault), before, "a refused open changed the vault");
    assert!(!tmp.path().join("d2").exists());
}

/// Acceptance 2: add a passphrase slot, remove the RSA slot: the RSA key no longer opens the
/// vault (the error names the removed slot), the passphrase does; the last slot stays.
#[test]
fn key_add_and_remove_revoke_the_removed_key() {
    let tmp = tempdir();
    let (private, public) = rsa_pair(tmp.path(), "kms", 2048);
    let vault = tmp.path().join("vault");
    run_ok(
        &[
            "init",
            s(&vault),
            "--rsa-public-key",
            s(&public),
            "--label",
            "kms",
        ],
        &[],
    );
    let key = ["--rsa-key", s(&private)];
    let pass = [("VAULTFS_NEW_PASSPHRASE", "second secret")];
    let out = run_ok(
        &[
            &[
                "key",
                "add",
                s(&vault),
                "--label",
                "ops",
                "--kdf-memory-kib",
                "64",
            ][..],
            &["--kdf-iterations", "1"],
            &key,
        ]
        .concat(),
        &pass,
    );
    assert!(out.contains("added key slot 2 (passphrase)"), "{out}");
    let list = run_ok(&["key", "list", s(&vault), "--rsa-key", s(&private)], &[]);
    assert!(
        list.contains("rsa") && list.contains("kms") && list.contains("ops"),
        "{list}"
    );
    let with_pass = [("VAULTFS_PASSPHRASE", "second secret")];
    run_ok(&["key", "remove", s(&vault), "1"], &with_pass);
    let line = one_line_failure(&["points", s(&vault), "--rsa-key", s(&private)], &[]);
    assert!(
        line.contains("revoked") && line.contains("slot 1 (\"kms\")"),
        "the error names the removed slot: {line}"
    );
    run_ok(&["points", s(&vault)], &with_pass);
    let before = state(&vault);
    let line = one_line_failure(&["key", "remove", s(&vault), "2"], &with_pass);
    assert!(line.contains("last"), "{line}");
    let line = one_line_failure(&["key", "remove", s(&vault), "7"], &with_pass);
    assert!(line.contains("slot 7 does not exist"), "{line}");
    assert_eq!(state(&vault), before);
    let line = one_line_failure(&["points", s(&vault)], &[("VAULTFS_PASSPHRASE", "wrong")]);
    assert!(line.contains("wrong passphrase"), "{line}");
}

/// Acceptance 3: rotating an RSA slot to a new key pair: the old private key fails, the new
/// one works, no pack file changed.
#[test]
fn rsa_slot_rotation_rewraps_without_touching_packs() {
    let tmp = tempdir();
    let (old, old_pub) = rsa_pair(tmp.path(), "old", 2048);
    let (new, new_pub) = rsa_pair(tmp.path(), "new", 4096);
    let vault = tmp.path().join("vault");
    let src = source(tmp.path());
    run_ok(&["init", s(&vault), "--rsa-public-key", s(&old_pub)], &[]);
    run_ok(
        &["backup", s(&vault), "web", s(&src), "--rsa-key", s(&old)],
        &[],
    );
    let packs = pack_sums(&vault);
    let out = run_ok(
        &[
            "key",
            "rotate",
            s(&vault),
            "1",
            "--rsa-public-key",
            s(&new_pub),
            "--rsa-key",
            s(&old),
        ],
        &[],
    );
    assert!(out.contains("rotated key slot 1"), "{out}");
    let after = pack_sums(&vault);
    // The rotation's config record went into a pack of its own; every pack there before is
    // byte-identical.
    for (p, sum) in &packs {
        assert_eq!(after.get(p), Some(sum), "pack {} changed", p.display());
    }
    let line = one_line_failure(&["points", s(&vault), "--rsa-key", s(&old)], &[]);
    assert!(
        line.contains("revoked") && line.contains("slot 1"),
        "{line}"
    );
    let dest = tmp.path().join("dest");
    run_ok(
        &["restore", s(&vault), "web", s(&dest), "--rsa-key", s(&new)],
        &[],
    );
    assert_same_tree(&src, &dest);
    // A slot rotates to its own kind only.
    let line = one_line_failure(
        &["key", "rotate", s(&vault), "1", "--rsa-key", s(&new)],
        &[("VAULTFS_NEW_PASSPHRASE", "x")],
    );
    assert!(line.contains("rsa slot"), "{line}");
}

/// Acceptance 4: after `key rotate --data-key`, new data is sealed with the new data key (the
/// old one no longer opens it; `check` shows the epochs), older data restores identically.
#[test]
fn data_key_rotation_seals_new_data_with_the_new_key() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let src = source(tmp.path());
    let (_, first) = created_point(&ok(&["backup", s(&vault), "web", s(&src)])).unwrap();
    let out = ok(&["key", "rotate", s(&vault), "--data-key"]);
    assert!(out.contains("started key epoch 1"), "{out}");
    let src2 = tmp.path().join("src2");
    std::fs::create_dir_all(&src2).unwrap();
    std::fs::write(src2.join("new.bin"), noise(200_000, 9)).unwrap();
    let (_, second) = created_point(&ok(&["backup", s(&vault), "web", s(&src2)])).unwrap();
    let check = ok(&["check", s(&vault), "--read-data"]);
    let epoch = |n: u32| -> u64 {
        let line = check
            .lines()
            .find(|l| l.starts_with(&format!("key epoch {n} ")))
            .unwrap_or_else(|| panic!("no key epoch {n} in: {check}"));
        line.rsplit(": ")
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        epoch(1) > 0,
        "nothing sealed with the new data key: {check}"
    );
    assert!(
        epoch(0) > 0,
        "older data is read with the old data key: {check}"
    );
    assert!(check.contains("seals new data"), "{check}");
    let list = ok(&["key", "list", s(&vault)]);
    assert!(
        list.contains("reads older data") && list.contains("seals new data"),
        "{list}"
    );
    // The new point's data really is sealed under the new key: a codec with epoch 0 alone
    // opens none of its data blobs (the master key is reachable with the test hooks only).
    #[cfg(feature = "test-hooks")]
    {
        let v = vaultfs::vault::Vault::open(&vault, PASS.as_bytes()).unwrap();
        let rec = v.resolve(&format!("web/{second}")).unwrap();
        let tree = v.tree(&rec.root_tree().unwrap()).unwrap();
        let chunk = tree.nodes[0].chunks[0].id;
        let loc = v.store().index().get(&chunk).unwrap().unwrap();
        let sealed =
            vaultfs::store::pack::read_sealed(v.store().backend(), &loc.pack, loc.offset, loc.len)
                .unwrap();
        let old_only = vaultfs::store::codec::Codec::new(v.master_key().derive(), 3);
        assert!(
            old_only
                .open(vaultfs::store::BlobKind::Data, &chunk, &sealed)
                .is_err()
        );
    }
    for (point, want) in [(first, &src), (second, &src2)] {
        let dest = tmp.path().join(format!("dest-{point}"));
        ok(&["restore", s(&vault), &format!("web/{point}"), s(&dest)]);
        assert_same_tree(want, &dest);
    }
}

/// Acceptance 5: an unwrap command plays a key service; once it refuses (the key was revoked
/// there), every command fails with a message naming the slot and the vault does not change.
#[test]
fn a_refusing_key_service_revokes_access_and_is_named() {
    let tmp = tempdir();
    let (private, vault, src) = rsa_vault(tmp.path(), 2048, "key service");
    // The key service: answers while `revoked` does not exist; it logs each request.
    let revoked = tmp.path().join("revoked");
    let log = tmp.path().join("service.log");
    let service = tmp.path().join("kms.sh");
    std::fs::write(
        &service,
        format!(
            "#!/bin/sh\necho \"slot $VAULTFS_SLOT_ID $VAULTFS_SLOT_LABEL\" >> '{}'\n\
             if [ -e '{}' ]; then echo 'kms: key disabled' >&2; exit 3; fi\nexec {}\n",
            log.display(),
            revoked.display(),
            unwrap_command(&private)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&service, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cmd = service.to_str().unwrap();
    let with = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        v.extend(["--unwrap-command".to_string(), cmd.to_string()]);
        v
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let (v, sr) = (s(&vault), s(&src));
    let dest = tmp.path().join("dest");
    let d = s(&dest);
    let full = strs(&with(&["backup", v, "web", sr]));
    run_ok(&full.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("slot 1 key service")
    );
    std::fs::write(&revoked, b"").unwrap();
    let before = state(&vault);
    for args in [
        vec!["points", v],
        vec!["items", v],
        vec!["backup", v, "web", sr],
        vec!["restore", v, "web", d],
        vec!["check", v, "--read-data"],
        vec!["gc", v],
        vec!["settings", v, "--soft-delete-days", "30"],
        vec!["key", "list", v],
        vec!["key", "rotate", v, "--data-key"],
        vec!["repair", v],
    ] {
        let full = with(&args);
        let line = one_line_failure(&full.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        assert!(
            line.contains("slot 1 (\"key service\")") && line.contains("refused"),
            "{args:?}: {line}"
        );
        assert_eq!(state(&vault), before, "{args:?} changed the vault");
    }
    assert!(!dest.exists());
}

/// A keyfile slot: made 0600, opens the vault; a copy readable by others is refused; another
/// key file does not open it.
#[test]
fn keyfile_slots_open_the_vault_and_must_be_private() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let key = tmp.path().join("vault.key");
    run_ok(&["init", s(&vault), "--new-key-file", s(&key)], &[]);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    run_ok(&["items", s(&vault), "--key-file", s(&key)], &[]);
    let loose = tmp.path().join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = one_line_failure(&["items", s(&vault), "--key-file", s(&loose)], &[]);
    assert!(line.contains("chmod 600"), "{line}");
    let other = tmp.path().join("other.key");
    let v2 = tmp.path().join("v2");
    run_ok(&["init", s(&v2), "--new-key-file", s(&other)], &[]);
    let line = one_line_failure(&["items", s(&vault), "--key-file", s(&other)], &[]);
    assert!(line.contains("opens no key slot"), "{line}");
    // Rotating the keyfile slot: the old file is revoked (named), the new one opens.
    let newer = tmp.path().join("newer.key");
    run_ok(
        &[
            "key",
            "rotate",
            s(&vault),
            "1",
            "--new-key-file",
            s(&newer),
            "--key-file",
            s(&key),
        ],
        &[],
    );
    let line = one_line_failure(&["items", s(&vault), "--key-file", s(&key)], &[]);
    assert!(
        line.contains("revoked") && line.contains("slot 1"),
        "{line}"
    );
    run_ok(&["items", s(&vault), "--key-file", s(&newer)], &[]);
}

/// Acceptance 7: whatever the umask, every file under VAULT/ is 0600 and every directory 0700.
#[test]
fn vault_files_are_private_whatever_the_umask() {
    for umask in ["000", "022"] {
        let tmp = tempdir();
        let vault = tmp.path().join("vault");
        let src = source(tmp.path());
        let b = bin();
        let v = s(&vault);
        sh(&format!(
            "umask {umask}; export VAULTFS_PASSPHRASE='{PASS}'; \
             {b} init {v} --kdf-memory-kib 64 --kdf-iterations 1 && \
             {b} backup {v} web {} && {b} key rotate {v} --data-key && \
             {b} settings {v} --soft-delete-days 20 && {b} gc {v} && \
             {b} repair {v} && {b} check {v} --read-data",
            s(&src)
        ));
        let mut seen = 0;
        for p in walk(&vault) {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let want = if md.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "umask {umask}: {} is {mode:o}", p.display());
            seen += 1;
        }
        let root = std::fs::metadata(&vault).unwrap().permissions().mode() & 0o7777;
        assert_eq!(root, 0o700, "umask {umask}: the vault directory");
        assert!(seen >= 270, "umask {umask}: only {seen} entries");
    }
}
