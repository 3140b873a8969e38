//! Backup selection: several sources, `--exclude`, `--exclude-file`, `--exclude-if-present`,
//! `--one-file-system` (a tmpfs mounted inside the tree), and never entering a vaultfs mount
//! (the vault's own, mounted inside the tree being backed up).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::mnt::*;
use common::*;

/// A tmpfs mounted on a directory for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: &Path) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size=1m vaultfs-test '{}'",
            dir.display()
        ));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn tree(vault: &Path, point: &str) -> Vec<String> {
    ok(&["ls", s(vault), point, "-R"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_point_holds_exactly_what_the_selection_lets_in() {
    let f = Fixture::new();
    let src = f.src.clone();
    for d in ["sub/deep/more", "cache", "tmpfs", "mnt", "build"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for (p, body) in [
        ("keep.txt", "k"),
        ("skip.log", "l"),
        ("sub/a.txt", "a"),
        ("sub/b.tmp", "b"),
        ("sub/deep/secret.key", "s"),
        ("sub/deep/more/kept.key", "m"),
        (
            "cache/CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55",
        ),
        ("cache/blob", "c"),
        ("build/x.o", "o"),
    ] {
        fs::write(src.join(p), body).unwrap();
    }
    let other = f.dir("other");
    fs::write(other.join("o.txt"), "o").unwrap();
    let _tmpfs = Tmpfs::new(&src.join("tmpfs"));
    fs::write(src.join("tmpfs/on-tmpfs"), "t").unwrap();
    // The vault's own mount inside the tree: a backup must not read the points back in.
    let seed = f.dir("seed");
    fs::write(seed.join("x"), "seed").unwrap();
    backup(&f.vault, "seed", &seed);
    let _m = Mount::new(&f.vault, &src.join("mnt"));
    assert!(src.join("mnt/points/seed").exists());

    let excludes = f.root.join("excludes");
    fs::write(&excludes, "# build products\n*.tmp\n\n/never/matches\n").unwrap();
    let (v, srcs, oth) = (s(&f.vault), s(&src), s(&other));
    let out = ok(&[
        "backup",
        v,
        "web",
        srcs,
        oth,
        "--exclude",
        "*.log",
        "--exclude",
        "deep/*.key",
        "--exclude",
        &format!("{srcs}/build"),
        "--exclude-file",
        s(&excludes),
        "--exclude-if-present",
        "CACHEDIR.TAG",
        "--one-file-system",
    ]);
    let (_, point) = created_point(&out).expect("a point");
    assert_eq!(
        tree(&f.vault, &format!("web/{point}")),
        [
            "/other",
            "/other/o.txt",
            "/src",
            "/src/keep.txt",
            "/src/mnt",
            "/src/sub",
            "/src/sub/a.txt",
            "/src/sub/deep",
            "/src/sub/deep/more",
            "/src/sub/deep/more/kept.key",
            "/src/tmpfs",
        ]
    );

    // Without options: everything but the vaultfs mount, whose directory stays, empty.
    let plain = backup(&f.vault, "plain", &src);
    let all = tree(&f.vault, &format!("plain/{plain}"));
    assert!(all.contains(&"/tmpfs/on-tmpfs".to_string()), "{all:?}");
    assert!(all.contains(&"/cache/blob".to_string()), "{all:?}");
    assert!(all.contains(&"/mnt".to_string()), "{all:?}");
    assert!(
        !all.iter().any(|p| p.starts_with("/mnt/")),
        "walked into the vault's own mount: {all:?}"
    );
}

#[test]
fn bad_selections_are_refused_with_one_line() {
    let f = Fixture::new();
    let (a, b) = (f.dir("one/same"), f.dir("two/same"));
    let v = s(&f.vault);
    let err = fails(&["backup", v, "web", s(&a), s(&b)]);
    assert!(err.contains("different last names"), "{err}");
    let err = fails(&["backup", v, "web", s(&a), "--exclude", "a[b"]);
    assert!(err.contains("invalid pattern \"a[b\""), "{err}");
    let err = fails(&[
        "backup",
        v,
        "web",
        s(&a),
        "--exclude-file",
        "/nonexistent/x",
    ]);
    assert!(err.contains("exclude file"), "{err}");
    assert!(ok(&["points", v]).lines().count() <= 1, "no point was made");
}
