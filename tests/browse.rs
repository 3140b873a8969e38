//! `ls`, `find`, `diff` and `stats` against known trees: exact lists, and their `--json`
//! parses into the same facts.

mod common;

use std::fs;
use std::path::Path;

use common::mnt::*;
use common::*;
use serde_json::Value;

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// a.txt, dir/b.txt, dir/sub/c.md, link -> a.txt
fn known_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("a.txt"), "aaa").unwrap();
    fs::write(root.join("dir/b.txt"), "bbbbb").unwrap();
    fs::write(root.join("dir/sub/c.md"), "c").unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    sh(&format!("chmod 0640 '{}/a.txt'", root.display()));
}

#[test]
fn ls_lists_exactly_the_entries_of_a_point_or_a_path_in_it() {
    let f = Fixture::new();
    known_tree(&f.src);
    let point = backup(&f.vault, "web", &f.src);
    let v = s(&f.vault);
    assert_eq!(lines(&ok(&["ls", v, "web"])), ["/a.txt", "/dir", "/link"]);
    assert_eq!(
        lines(&ok(&["ls", v, &format!("web/{point}"), "--recursive"])),
        [
            "/a.txt",
            "/dir",
            "/dir/b.txt",
            "/dir/sub",
            "/dir/sub/c.md",
            "/link"
        ]
    );
    assert_eq!(
        lines(&ok(&["ls", v, "web", "dir"])),
        ["/dir/b.txt", "/dir/sub"]
    );
    assert_eq!(
        lines(&ok(&["ls", v, "web", "/dir/sub/c.md"])),
        ["/dir/sub/c.md"]
    );

    let long = ok(&["ls", v, "web", "-l"]);
    let long = lines(&long);
    assert!(long[0].starts_with("-rw-r----- "), "{long:?}");
    assert!(
        long[0].ends_with(" /a.txt") && long[0].contains(" 3 "),
        "{long:?}"
    );
    assert!(long[1].starts_with("drwx"), "{long:?}");
    assert!(long[2].starts_with("lrwxrwxrwx") && long[2].ends_with("/link -> a.txt"));

    let js = json(&["ls", v, "web", "-R", "--json"]);
    let rows: Vec<(String, String, u64)> = js
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
                e["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("/a.txt", "file", 3),
        ("/dir", "dir", 0),
        ("/dir/b.txt", "file", 5),
        ("/dir/sub", "dir", 0),
        ("/dir/sub/c.md", "file", 1),
        ("/link", "symlink", 5),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(p, t, n)| (p.to_string(), t.to_string(), *n as u64))
        .collect();
    assert_eq!(rows, want);
    assert_eq!(js[0]["mode"], "0640");
    assert_eq!(js[5]["target"], "a.txt");
    let mtime = js[0]["mtime"].as_str().unwrap();
    assert!(
        mtime.parse::<jiff::Timestamp>().is_ok(),
        "RFC 3339: {mtime}"
    );

    let err = fails(&["ls", v, "web", "nope/x"]);
    assert!(err.contains("nope/x not found"), "{err}");
}

#[test]
fn find_names_the_points_holding_matching_paths() {
    let f = Fixture::new();
    let v = s(&f.vault);
    known_tree(&f.src);
    fs::write(f.src.join("notes.txt"), "n").unwrap();
    let p1 = backup(&f.vault, "web", &f.src);
    fs::remove_file(f.src.join("notes.txt")).unwrap();
    fs::write(f.src.join("dir/Photo.JPG"), "jpeg").unwrap();
    let p2 = backup(&f.vault, "web", &f.src);
    fs::write(f.src.join("dir/sub/notes.txt"), "n2").unwrap();
    let p3 = backup(&f.vault, "web", &f.src);
    // Another item, to see --item at work.
    let other = f.dir("other");
    fs::write(other.join("notes.txt"), "o").unwrap();
    let q1 = backup(&f.vault, "mail", &other);

    let found = |args: &[&str]| -> Vec<(String, Vec<String>)> {
        let mut a = vec!["find", v];
        a.extend_from_slice(args);
        a.push("--json");
        json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let paths = p["matches"].as_array().unwrap();
                (
                    format!(
                        "{}/{}",
                        p["item"].as_str().unwrap(),
                        p["point"].as_str().unwrap()
                    ),
                    paths
                        .iter()
                        .map(|m| m["path"].as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let pt = |item: &str, p: &str| format!("{item}/{p}");
    let v1 = |x: &str| vec![x.to_string()];
    assert_eq!(
        found(&["notes.txt"]),
        [
            (pt("mail", &q1), v1("/notes.txt")),
            (pt("web", &p1), v1("/notes.txt")),
            (pt("web", &p3), v1("/dir/sub/notes.txt")),
        ]
    );
    assert_eq!(found(&["*.jpg"]), []);
    assert_eq!(
        found(&["*.jpg", "-i"]),
        [
            (pt("web", &p2), v1("/dir/Photo.JPG")),
            (pt("web", &p3), v1("/dir/Photo.JPG"))
        ]
    );
    assert_eq!(
        found(&["notes.*", "--item", "web", "--newest", "1"]),
        [(pt("web", &p3), v1("/dir/sub/notes.txt"))]
    );
    assert_eq!(
        found(&["notes.*", "--item", "web", "--oldest", "2"]),
        [(pt("web", &p1), v1("/notes.txt"))]
    );
    // A pattern with a slash matches whole paths from the root; `*` stays within one name.
    assert_eq!(
        found(&["dir/*.txt", "--item", "web", "--oldest", "1"]),
        [(pt("web", &p1), v1("/dir/b.txt"))]
    );
    assert_eq!(
        found(&["/dir/**/*.txt", "--newest", "1", "--item", "web"]),
        [(
            pt("web", &p3),
            vec!["/dir/b.txt".to_string(), "/dir/sub/notes.txt".to_string()]
        )]
    );

    // The human form lists the same.
    let out = ok(&["find", v, "*.JPG", "--item", "web"]);
    let heads: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads, [format!("web/{p2}:"), format!("web/{p3}:")]);

    let err = fails(&["find", v, "a[", "--item", "web"]);
    assert!(err.contains("invalid pattern \"a[\""), "{err}");
    let err = fails(&["find", v, "x", "--item", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn diff_lists_added_removed_and_changed_entries_with_sizes() {
    let f = Fixture::new();
    let v = s(&f.vault);
    known_tree(&f.src);
    let p1 = backup(&f.vault, "web", &f.src);
    let src = f.src.display();
    fs::write(f.src.join("a.txt"), "aaaa-longer").unwrap(); // content
    sh(&format!("chmod 0600 '{src}/dir/b.txt'")); // metadata only
    fs::remove_dir_all(f.src.join("dir/sub")).unwrap(); // removed, with its file
    fs::create_dir(f.src.join("new")).unwrap();
    fs::write(f.src.join("new/x.bin"), vec![7u8; 2000]).unwrap(); // added, with its dir
    fs::remove_file(f.src.join("link")).unwrap();
    fs::write(f.src.join("link"), "now a file").unwrap(); // kind change
    let p2 = backup(&f.vault, "web", &f.src);

    let (a, b) = (format!("web/{p1}"), format!("web/{p2}"));
    let out = ok(&["diff", v, &a, &b]);
    assert_eq!(
        lines(&out),
        [
            "M /a.txt (3 B → 11 B)",
            "U /dir/b.txt",
            "- /dir/sub (0 B)",
            "- /dir/sub/c.md (1 B)",
            "- /link (5 B)",
            "+ /link (10 B)",
            "+ /new (0 B)",
            "+ /new/x.bin (2.00 kB)",
            &format!("web/{p1} → web/{p2}: 3 entries added, 3 removed, 2 changed"),
        ]
    );
    // The other way round, limited to a path.
    assert_eq!(
        lines(&ok(&["diff", v, &b, &a, "dir"])),
        [
            "U /dir/b.txt",
            "+ /dir/sub (0 B)",
            "+ /dir/sub/c.md (1 B)",
            &format!("web/{p2} → web/{p1}: 2 entries added, 0 removed, 1 changed"),
        ]
    );
    let js = json(&["diff", v, &a, &b, "--json"]);
    let rows: Vec<(String, String, bool, bool, Value, Value)> = js
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
                c["content"].as_bool().unwrap(),
                c["metadata"].as_bool().unwrap(),
                c["size_before"].clone(),
                c["size_after"].clone(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 8);
    assert_eq!(
        rows[0],
        (
            "/a.txt".into(),
            "changed".into(),
            true,
            true,
            3.into(),
            11.into()
        )
    );
    assert_eq!(
        rows[1],
        (
            "/dir/b.txt".into(),
            "changed".into(),
            false,
            true,
            5.into(),
            5.into()
        )
    );
    assert_eq!(rows[7].1, "added");
    assert_eq!(rows[7].5, 2000);
    // Identical points: nothing.
    assert_eq!(
        lines(&ok(&["diff", v, &b, &b])),
        [format!("{b} → {b}: 0 entries added, 0 removed, 0 changed")]
    );
}

#[test]
fn stats_counts_files_unique_chunks_and_ratios() {
    let f = Fixture::new();
    let v = s(&f.vault);
    fs::create_dir_all(f.src.join("d")).unwrap();
    let body = noise(100_000, 3);
    fs::write(f.src.join("one.bin"), &body).unwrap();
    fs::write(f.src.join("d/same.bin"), &body).unwrap(); // dedups with one.bin
    fs::write(f.src.join("d/other.txt"), "x".repeat(50_000)).unwrap();
    let p1 = backup(&f.vault, "web", &f.src);
    backup(&f.vault, "web", &f.src);
    let logical = 2 * 100_000 + 50_000;

    let st = json(&["stats", v, &format!("web/{p1}"), "--json"]);
    assert_eq!(st["points"], 1);
    assert_eq!(st["files"], 3);
    assert_eq!(st["dirs"], 1);
    assert_eq!(st["logical_bytes"], logical);
    assert_eq!(st["chunks"], 2, "one chunk per distinct small file");
    assert_eq!(st["unique_bytes"], 150_000);
    // Noise does not compress, a run of x does: stored is between the noise and everything.
    let stored = st["stored_data_bytes"].as_u64().unwrap();
    assert!((100_000..150_000).contains(&stored), "{st}");
    assert!(st["compression_ratio"].as_f64().unwrap() > 1.0, "{st}");
    assert!(
        st["pack_bytes"].is_null(),
        "only the whole vault shows its packs"
    );

    let all = json(&["stats", v, "--json"]);
    assert_eq!(all["points"], 2);
    assert_eq!(all["files"], 6);
    assert_eq!(all["logical_bytes"], 2 * logical);
    assert_eq!(all["chunks"], 2);
    assert_eq!(all["unique_bytes"], 150_000);
    assert_eq!(all["trees"], 2, "both points share their trees");
    let dedup = ((2 * logical) as f64 / 150_000.0 * 1000.0).round() / 1000.0;
    assert_eq!(all["dedup_ratio"].as_f64().unwrap(), dedup);
    assert!(all["pack_bytes"].as_u64().unwrap() >= all["stored_bytes"].as_u64().unwrap());

    let text = ok(&["stats", v, "web"]);
    assert!(text.contains("points             2 points"), "{text}");
    assert!(
        text.contains("files              6 in 2 directories"),
        "{text}"
    );
    assert!(text.contains("2 chunks"), "{text}");
}
