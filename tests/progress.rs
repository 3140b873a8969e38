//! Progress bars (issue 15, acceptance 6): backup, restore, check --read-data, gc and
//! replicate draw a bar with rate and ETA on stderr under a pseudo-terminal (`script` from
//! util-linux), and print nothing extra when stderr is a file.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::mnt::*;
use common::*;

/// `vaultfs ARGS` under a pseudo-terminal; returns everything it wrote there.
fn on_terminal(args: &[&str]) -> String {
    let line = std::iter::once(bin())
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .output()
        .expect("run script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vaultfs {args:?} on a terminal failed: {text}"
    );
    text
}

/// `vaultfs ARGS` with stderr to a file; returns what it wrote there.
fn stderr_to_file(args: &[&str], dir: &Path) -> String {
    let file = dir.join("stderr");
    let out = Command::new(bin())
        .args(args)
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stderr(fs::File::create(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "vaultfs {args:?} failed");
    fs::read_to_string(&file).unwrap()
}

/// A drawn bar: its rate and ETA are there, with the command's own words.
fn assert_bar(text: &str, what: &str, words: &[&str]) {
    assert!(
        text.contains("ETA") && text.contains("/s"),
        "{what}: no bar with rate and ETA on the terminal: {text:?}"
    );
    for w in words {
        assert!(
            text.contains(w),
            "{what}: {w:?} missing from the bar: {text:?}"
        );
    }
}

#[test]
fn long_commands_draw_a_bar_on_a_terminal_and_nothing_extra_otherwise() {
    let f = Fixture::new();
    let v = s(&f.vault);
    // Enough data that each command runs for more than one redraw of the bar (0.2 s).
    fs::create_dir_all(&f.src).unwrap();
    for i in 0..4 {
        fs::write(f.src.join(format!("f{i}.bin")), noise(16 << 20, i)).unwrap();
    }
    let quiet = f.root.join("quiet");
    fs::create_dir_all(&quiet).unwrap();

    let text = on_terminal(&["backup", v, "web", s(&f.src)]);
    assert_bar(&text, "backup", &["backup web", "MiB"]);
    assert_eq!(
        stderr_to_file(&["backup", v, "web2", s(&f.src)], &quiet),
        ""
    );

    let text = on_terminal(&["restore", v, "web", s(&f.root.join("r1"))]);
    assert_bar(&text, "restore", &["restore web/", "/4 entries"]);
    let err = stderr_to_file(&["restore", v, "web", s(&f.root.join("r2"))], &quiet);
    assert_eq!(err, "");

    let text = on_terminal(&["check", v, "--read-data"]);
    assert_bar(&text, "check", &["check", "packs"]);
    assert_eq!(stderr_to_file(&["check", v, "--read-data"], &quiet), "");

    let second = f.root.join("second");
    let text = on_terminal(&["replicate", v, "--to", s(&second)]);
    assert_bar(&text, "replicate", &["replicate to", "packs"]);
    let third = f.root.join("third");
    assert_eq!(
        stderr_to_file(&["replicate", v, "--to", s(&third)], &quiet),
        ""
    );

    // gc with something to do: the points are deleted and purged at once.
    ok(&["settings", v, "--soft-delete-days", "0"]);
    for item in ["web", "web2"] {
        let point = vaultfs_points(v, item);
        ok(&["delete", v, &format!("{item}/{point}")]);
    }
    let text = on_terminal(&["gc", v]);
    assert_bar(&text, "gc", &["gc: "]);
    assert!(text.contains("purged"), "{text}");
    assert_eq!(stderr_to_file(&["gc", v], &quiet), "");
}

fn vaultfs_points(v: &str, item: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(&ok(&["points", v, item, "--json"])).unwrap();
    doc[0]["point"].as_str().unwrap().to_string()
}
