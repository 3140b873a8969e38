//! Bad input from the user: every mistake ends with a non-zero exit, exactly one clear line on
//! stderr (`vaultfs: ...`, naming what was wrong), no panic, no hang, and no change to the vault
//! or to any other path the command was given.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A command that needs longer than this is taken to be hanging (e.g. waiting for a prompt).
const HANG: Duration = Duration::from_secs(30);

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Run `vaultfs ARGS` with stdin closed, the test passphrase in the environment unless `env`
/// changes it, and a time limit.
fn run_with(args: &[&str], env: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env(&mut cmd);
    let child = cmd.spawn().expect("spawn vaultfs");
    let pid = child.id() as i32;
    // Output is read while the command runs (a pipe holds 64 KiB: `completions bash` is more).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(HANG) {
        Ok(out) => out,
        Err(_) => {
            // SAFETY: kill(2) of the child this function spawned, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv().unwrap();
            panic!(
                "vaultfs {args:?} hung for {HANG:?} (stderr so far: {})",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn run(args: &[&str]) -> Output {
    run_with(args, |_| {})
}

/// The failure contract: non-zero exit (not a panic's), stderr is exactly one non-empty line
/// starting with `vaultfs: `, and it names each of `mentions`. Returns that line.
fn assert_one_line_failure(args: &[&str], out: &Output, mentions: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "vaultfs {args:?} should fail but succeeded; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.status.code().is_some(),
        "vaultfs {args:?} died of a signal: {:?}",
        out.status
    );
    assert!(
        ![70, 101].contains(&out.status.code().unwrap()),
        "vaultfs {args:?} panicked: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "vaultfs {args:?} panicked: {stderr}"
    );
    let line = stderr.trim();
    assert!(
        !line.is_empty(),
        "vaultfs {args:?} failed without a message"
    );
    assert!(
        !line.contains('\n'),
        "vaultfs {args:?}: more than one line on stderr:\n{stderr}"
    );
    assert!(
        line.starts_with("vaultfs: "),
        "vaultfs {args:?}: stderr does not start with `vaultfs: `: {line}"
    );
    for m in mentions {
        assert!(
            line.contains(m),
            "vaultfs {args:?}: the error does not name {m:?}: {line}"
        );
    }
    line.to_string()
}

/// `vaultfs ARGS` must fail by the contract; returns the error line.
fn fails1(args: &[&str], mentions: &[&str]) -> String {
    let out = run(args);
    assert_one_line_failure(args, &out, mentions)
}

/// Everything at and under `path`: kind, mode, size and a content hash of each file, symlink
/// targets. A missing path is recorded as such.
fn state(path: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let describe = |p: &Path| -> String {
        let md = match fs::symlink_metadata(p) {
            Ok(md) => md,
            Err(e) => return format!("missing ({})", e.kind()),
        };
        let mode = md.permissions().mode();
        if md.file_type().is_symlink() {
            format!(
                "symlink {mode:o} -> {}",
                fs::read_link(p).unwrap().display()
            )
        } else if md.is_dir() {
            format!("dir {mode:o}")
        } else {
            let data = fs::read(p).unwrap();
            format!(
                "file {mode:o} {} {}",
                data.len(),
                blake3::hash(&data).to_hex()
            )
        }
    };
    out.insert(PathBuf::from("."), describe(path));
    if fs::symlink_metadata(path)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        for e in walk(path) {
            out.insert(e.strip_prefix(path).unwrap().to_path_buf(), describe(&e));
        }
    }
    out
}

/// Run `f` and assert that nothing at or under any of `paths` changed.
fn unchanged<T>(paths: &[&Path], f: impl FnOnce() -> T) -> T {
    let before: Vec<_> = paths.iter().map(|p| state(p)).collect();
    let r = f();
    for (p, b) in paths.iter().zip(before) {
        let after = state(p);
        assert!(
            after == b,
            "{} changed:\nbefore: {b:#?}\nafter: {after:#?}",
            p.display()
        );
    }
    r
}

/// A vault holding item `web01` with one point of a small tree.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    vault: PathBuf,
    src: PathBuf,
    point: String,
}

fn fixture() -> Fixture {
    let tmp = tempdir();
    let root = tmp.path().to_path_buf();
    let (vault, src) = (root.join("vault"), root.join("src"));
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(src.join("data.bin"), noise(100_000, 3)).unwrap();
    init_vault(&vault);
    let out = ok(&["backup", p(&vault), "web01", p(&src)]);
    let point = out
        .lines()
        .find_map(|l| l.strip_prefix("created point web01/"))
        .expect("created point line")
        .trim()
        .to_string();
    // The first open after a write lets sled replace its recovery snapshot (index/snap.*), also
    // for a successful read. Do that here, so the comparisons below see only what the bad
    // command itself changed.
    ok(&["items", p(&vault)]);
    Fixture {
        _tmp: tmp,
        root,
        vault,
        src,
        point,
    }
}

impl Fixture {
    fn v(&self) -> &str {
        p(&self.vault)
    }

    /// A path under the fixture's temp dir that does not exist.
    fn absent(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        assert!(!path.exists());
        path
    }

    /// The points of `web01`, from `points --json`.
    fn points(&self) -> Vec<String> {
        let out = ok(&["points", self.v(), "web01", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["point"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn unknown_item() {
    let f = fixture();
    let dest = f.absent("dest");
    unchanged(&[&f.vault, &dest], || {
        fails1(&["restore", f.v(), "nosuchitem", p(&dest)], &["nosuchitem"]);
        fails1(
            &[
                "restore",
                f.v(),
                &format!("nosuchitem/{}", f.point),
                p(&dest),
            ],
            &["nosuchitem"],
        );
        fails1(
            &["restore", f.v(), "nosuchitem/latest", p(&dest)],
            &["nosuchitem"],
        );
    });
}

#[test]
fn points_of_an_unknown_item() {
    let f = fixture();
    unchanged(&[&f.vault], || {
        fails1(&["points", f.v(), "unknownitem"], &["unknownitem"]);
        fails1(
            &["points", f.v(), "unknownitem", "--json"],
            &["unknownitem"],
        );
    });
    // The known item still lists its point: the failure above is about the name, not the vault.
    assert_eq!(f.points(), vec![f.point.clone()]);
}

#[test]
fn bad_point_names() {
    let f = fixture();
    let dest = f.absent("dest");
    let stamp = f.point.clone();
    let bad = [
        "notapoint".to_string(),
        "2026-11-23T23:10:05Z".to_string(),
        format!("{stamp}-"),
        format!("{stamp}x"),
        format!("{stamp}/etc"),
        "../../etc".to_string(),
        "latest2".to_string(),
        stamp[..stamp.len() - 1].to_string(),
    ];
    unchanged(&[&f.vault, &dest], || {
        for name in &bad {
            fails1(
                &["restore", f.v(), &format!("web01/{name}"), p(&dest)],
                &[name],
            );
        }
    });
}

#[test]
fn restore_of_a_point_that_does_not_exist() {
    let f = fixture();
    let dest = f.absent("dest");
    // Well-formed names, one before and one after the real point, and a suffixed twin of it.
    let missing = [
        "2001-02-03T04-05-06Z".to_string(),
        "2999-12-31T23-59-59Z".to_string(),
        format!("{}-1", f.point),
    ];
    unchanged(&[&f.vault, &dest], || {
        for name in &missing {
            fails1(
                &["restore", f.v(), &format!("web01/{name}"), p(&dest)],
                &["web01", name],
            );
        }
    });
    // The real one restores: the names above failed for being absent, not for their form.
    ok(&["restore", f.v(), &format!("web01/{}", f.point), p(&dest)]);
    assert_same_tree(&f.src, &dest);
}

#[test]
fn restore_of_a_path_not_in_the_point() {
    let f = fixture();
    let dest = f.absent("dest");
    unchanged(&[&f.vault, &dest], || {
        for sub in ["no/such/file", "etc/nosuch", "data.bin/inside"] {
            fails1(
                &["restore", f.v(), "web01", p(&dest), "--path", sub],
                &[sub],
            );
        }
    });
    ok(&["restore", f.v(), "web01", p(&dest), "--path", "etc/hosts"]);
    assert_eq!(
        fs::read(dest.join("hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
}

#[test]
fn restore_onto_a_file() {
    let f = fixture();
    let file = f.root.join("a-file");
    fs::write(&file, b"keep me\n").unwrap();
    unchanged(&[&f.vault, &file], || {
        fails1(&["restore", f.v(), "web01", p(&file)], &[p(&file)]);
    });
}

#[test]
fn missing_source_path() {
    let f = fixture();
    let missing = f.absent("no-such-source");
    let file = f.root.join("plain-file");
    fs::write(&file, b"not a directory\n").unwrap();
    // A backup whose source is gone is a failed job (issue 15): its record and alert are
    // the only change, in the index database; the packs and config stay byte for byte.
    let packs = f.vault.join("packs");
    let config = f.vault.join("config");
    unchanged(&[&packs, &config, &file], || {
        fails1(&["backup", f.v(), "web01", p(&missing)], &[p(&missing)]);
        fails1(&["backup", f.v(), "newitem", p(&missing)], &[p(&missing)]);
        fails1(&["backup", f.v(), "web01", p(&file)], &[p(&file)]);
    });
    let jobs: serde_json::Value =
        serde_json::from_str(&ok(&["jobs", f.v(), "--failed", "--json"])).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 3, "{jobs}");
    assert!(!missing.exists());
    assert_eq!(
        f.points(),
        vec![f.point.clone()],
        "a failed backup left a point"
    );
    let items = ok(&["items", f.v(), "--json"]);
    assert!(
        !items.contains("newitem"),
        "a failed backup created its item: {items}"
    );
}

#[test]
fn vault_path_is_a_file() {
    let f = fixture();
    let file = f.root.join("not-a-vault.txt");
    fs::write(&file, b"just a file\n").unwrap();
    let v = p(&file);
    let dest = f.absent("dest");
    unchanged(&[&file, &dest, &f.src], || {
        for args in [
            vec!["items", v],
            vec!["points", v],
            vec!["points", v, "web01"],
            vec!["check", v],
            vec!["check", v, "--read-data"],
            vec!["repair", v],
            vec!["backup", v, "web01", p(&f.src)],
            vec!["restore", v, "web01", p(&dest)],
            vec!["init", v],
        ] {
            fails1(&args, &[v]);
        }
    });
}

#[test]
fn vault_path_that_does_not_exist() {
    let f = fixture();
    let missing = f.absent("no-vault-here");
    let v = p(&missing);
    let dest = f.absent("dest");
    for args in [
        vec!["items", v],
        vec!["points", v],
        vec!["check", v, "--read-data"],
        vec!["repair", v],
        vec!["backup", v, "web01", p(&f.src)],
        vec!["restore", v, "web01", p(&dest)],
    ] {
        fails1(&args, &[v]);
        assert!(!missing.exists(), "vaultfs {args:?} created the vault path");
        assert!(
            !dest.exists(),
            "vaultfs {args:?} created the restore target"
        );
    }
}

#[test]
fn directory_that_is_not_a_vault() {
    let f = fixture();
    let empty = f.root.join("empty-dir");
    fs::create_dir(&empty).unwrap();
    let full = f.root.join("some-dir");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("notes.txt"), b"my notes\n").unwrap();
    fs::create_dir(full.join("sub")).unwrap();
    let dest = f.absent("dest");
    for dir in [&empty, &full, &f.src] {
        let v = p(dir);
        unchanged(&[dir, &dest], || {
            for args in [
                vec!["items", v],
                vec!["points", v],
                vec!["check", v],
                vec!["repair", v],
                vec!["backup", v, "web01", p(&f.src)],
                vec!["restore", v, "web01", p(&dest)],
            ] {
                fails1(&args, &[v]);
            }
        });
    }
}

#[test]
fn init_onto_a_non_empty_directory() {
    let f = fixture();
    let dir = f.root.join("occupied");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("precious.txt"), b"do not touch\n").unwrap();
    unchanged(&[&dir], || {
        fails1(
            &[
                "init",
                p(&dir),
                "--kdf-memory-kib",
                "64",
                "--kdf-iterations",
                "1",
            ],
            &[p(&dir)],
        );
    });
    // Nor onto an existing vault (it would replace the key and lose every point).
    unchanged(&[&f.vault], || {
        fails1(
            &[
                "init",
                f.v(),
                "--kdf-memory-kib",
                "64",
                "--kdf-iterations",
                "1",
            ],
            &[f.v()],
        );
    });
    assert_eq!(f.points(), vec![f.point.clone()]);
}

#[test]
fn item_names_with_a_slash_or_a_leading_dot() {
    let f = fixture();
    let dest = f.absent("dest");
    unchanged(&[&f.vault, &f.src, &dest], || {
        for name in [
            "a/b",
            "web01/x",
            ".hidden",
            ".",
            "..",
            "sp ace",
            "caf\u{e9}",
        ] {
            fails1(&["backup", f.v(), name, p(&f.src)], &[name]);
        }
        for name in [".hidden", "..", ".web01"] {
            fails1(&["points", f.v(), name], &[name]);
            fails1(&["restore", f.v(), name, p(&dest)], &[name]);
        }
        fails1(&["backup", f.v(), "", p(&f.src)], &["invalid item name"]);
    });
    let items = ok(&["items", f.v(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&items).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web01"]);
}

#[test]
fn item_name_of_65_characters() {
    let f = fixture();
    let long = "a".repeat(65);
    let dest = f.absent("dest");
    unchanged(&[&f.vault, &dest], || {
        fails1(&["backup", f.v(), &long, p(&f.src)], &[&long]);
        fails1(&["points", f.v(), &long], &[&long]);
        fails1(&["restore", f.v(), &long, p(&dest)], &[&long]);
    });
    // 64 is the limit, and allowed.
    let ok64 = "b".repeat(64);
    let out = ok(&["backup", f.v(), &ok64, p(&f.src)]);
    assert!(out.contains(&format!("created point {ok64}/")), "{out}");
}

#[test]
fn missing_passphrase_fails_without_waiting_for_a_prompt() {
    let f = fixture();
    let dest = f.absent("dest");
    let new_vault = f.absent("new-vault");
    let no_pass = |c: &mut Command| {
        c.env_remove("VAULTFS_PASSPHRASE");
    };
    unchanged(&[&f.vault, &dest, &new_vault], || {
        for args in [
            vec!["items", f.v()],
            vec!["points", f.v(), "web01"],
            vec!["check", f.v()],
            vec!["repair", f.v()],
            vec!["backup", f.v(), "web01", p(&f.src)],
            vec!["restore", f.v(), "web01", p(&dest)],
            vec!["init", p(&new_vault)],
        ] {
            let out = run_with(&args, no_pass);
            assert_one_line_failure(&args, &out, &["passphrase"]);
        }
    });
    assert_eq!(f.points(), vec![f.point.clone()]);
}

#[test]
fn passphrase_file_that_does_not_exist() {
    let f = fixture();
    let missing = f.absent("no-such-passphrase-file");
    let dest = f.absent("dest");
    let new_vault = f.absent("new-vault");
    let pf = p(&missing);
    unchanged(&[&f.vault, &dest, &new_vault], || {
        for args in [
            vec!["--passphrase-file", pf, "items", f.v()],
            vec!["backup", f.v(), "web01", p(&f.src), "--passphrase-file", pf],
            vec!["restore", f.v(), "web01", p(&dest), "--passphrase-file", pf],
            vec!["init", p(&new_vault), "--passphrase-file", pf],
        ] {
            // Also with VAULTFS_PASSPHRASE set: the file was asked for, so no silent fallback.
            fails1(&args, &[pf]);
            let out = run_with(&args, |c| {
                c.env_remove("VAULTFS_PASSPHRASE");
            });
            assert_one_line_failure(&args, &out, &[pf]);
        }
    });
}

#[test]
fn wrong_or_empty_passphrase() {
    let f = fixture();
    let dest = f.absent("dest");
    let wrong = f.root.join("wrong-pass");
    fs::write(&wrong, b"not the passphrase\n").unwrap();
    let empty = f.root.join("empty-pass");
    fs::write(&empty, b"").unwrap();
    unchanged(&[&f.vault, &dest], || {
        for args in [
            vec!["items", f.v()],
            vec!["backup", f.v(), "web01", p(&f.src)],
            vec!["restore", f.v(), "web01", p(&dest)],
            vec!["check", f.v(), "--read-data"],
            vec!["repair", f.v()],
        ] {
            let out = run_with(&args, |c| {
                c.env("VAULTFS_PASSPHRASE", "not the passphrase");
            });
            assert_one_line_failure(&args, &out, &["passphrase"]);
            let mut with_file = vec!["--passphrase-file", p(&wrong)];
            with_file.extend(&args);
            fails1(&with_file, &["passphrase"]);
            let mut with_empty = vec!["--passphrase-file", p(&empty)];
            with_empty.extend(&args);
            fails1(&with_empty, &["passphrase"]);
        }
    });
    // The right passphrase from a file works (the failures above were about the passphrase).
    let right = f.root.join("right-pass");
    fs::write(&right, format!("{PASS}\n")).unwrap();
    let out = run_with(
        &["--passphrase-file", p(&right), "points", f.v(), "web01"],
        |c| {
            c.env_remove("VAULTFS_PASSPHRASE");
        },
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&f.point));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_with(&["completions", shell], |c| {
            c.env_remove("VAULTFS_PASSPHRASE");
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "completions {shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "completions {shell} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.trim().len() > 100,
            "completions {shell} printed almost nothing: {stdout}"
        );
        assert!(
            stdout.contains("vaultfs"),
            "completions {shell} do not mention vaultfs"
        );
        // Every subcommand is completed.
        for sub in [
            "init", "backup", "items", "points", "restore", "check", "repair",
        ] {
            assert!(stdout.contains(sub), "completions {shell} lack `{sub}`");
        }
    }
    // An unknown shell is a usage error: non-zero, no panic, and it names the bad value.
    let out = run(&["completions", "nosuchshell"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(
        ![70, 101].contains(&out.status.code().unwrap()) && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(stderr.contains("nosuchshell"), "{stderr}");
}
