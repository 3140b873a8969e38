//! Points record where they came from (format v5): the host, the source paths and `--tag`s of
//! `backup` and `snapshot`, shown by `points` (table and `--json`) and filtered by
//! `--host`, `--tag` and `--path`.

mod common;

use std::fs;

use serde_json::{Value, json};

use common::mnt::*;
use common::*;

fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// `points VAULT ARGS.. --json` as JSON.
fn points_json(vault: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["points", s(vault)];
    all.extend(args);
    all.push("--json");
    serde_json::from_str::<Value>(&ok(&all))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The point names `points VAULT ARGS..` lists.
fn listed(vault: &std::path::Path, args: &[&str]) -> Vec<String> {
    points_json(vault, args)
        .iter()
        .map(|p| p["point"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn points_record_host_sources_and_tags_and_are_filtered_by_them() {
    let f = Fixture::new();
    let v = &f.vault;
    let (a, b) = (f.dir("src-a"), f.dir("src-b"));
    fs::write(a.join("a.txt"), "a").unwrap();
    fs::write(b.join("b.txt"), "b").unwrap();
    let made = |args: &[&str]| {
        let mut all = vec!["backup", s(v)];
        all.extend(args);
        created_point(&ok(&all)).expect("created point").1
    };
    let p1 = made(&["web", s(&a), "--tag", "env=prod", "--tag", "daily"]);
    let p2 = made(&["web", s(&a), s(&b), "--tag", "weekly", "--tag", "weekly"]);
    let p3 = made(&["db", s(&b)]);

    let all = points_json(v, &[]);
    assert_eq!(all.len(), 3);
    // Points of two items may share a name (one second): find them by both.
    let by_name = |i: &str, n: &str| {
        all.iter()
            .find(|p| p["item"] == i && p["point"] == n)
            .unwrap()
            .clone()
    };
    let (j1, j2, j3) = (by_name("web", &p1), by_name("web", &p2), by_name("db", &p3));
    for j in [&j1, &j2, &j3] {
        assert_eq!(j["host"], json!(host()), "{j}");
    }
    assert_eq!(j1["paths"], json!([s(&a)]));
    assert_eq!(j1["tags"], json!(["daily", "env=prod"]), "sorted");
    assert_eq!(j2["paths"], json!([s(&a), s(&b)]));
    assert_eq!(j2["tags"], json!(["weekly"]), "no repeats");
    assert_eq!((&j3["paths"], &j3["tags"]), (&json!([s(&b)]), &json!([])));

    // Tags: every one given must match (also written T1,T2); none matching lists nothing.
    assert_eq!(listed(v, &["--tag", "daily"]), [p1.as_str()]);
    assert_eq!(
        listed(v, &["--tag", "daily", "--tag", "env=prod"]),
        [p1.as_str()]
    );
    assert_eq!(listed(v, &["--tag", "daily,env=prod"]), [p1.as_str()]);
    assert!(listed(v, &["--tag", "daily", "--tag", "weekly"]).is_empty());
    assert!(listed(v, &["--tag", "monthly"]).is_empty());
    assert_eq!(listed(v, &["web", "--tag", "weekly"]), [p2.as_str()]);
    assert!(listed(v, &["db", "--tag", "weekly"]).is_empty());
    // Hosts: any of them.
    assert_eq!(listed(v, &["--host", &host()]).len(), 3);
    assert!(listed(v, &["--host", "elsewhere"]).is_empty());
    assert_eq!(
        listed(v, &["--host", "elsewhere", "--host", &host()]).len(),
        3
    );
    // Paths: all of them, absolute, a trailing slash ignored.
    let mut with_a = listed(v, &["--path", s(&a)]);
    with_a.sort();
    assert_eq!(with_a, [p1.as_str(), p2.as_str()]);
    assert_eq!(
        listed(v, &["--path", &format!("{}/", s(&b)), "--path", s(&a)]),
        [p2.as_str()]
    );
    assert!(listed(v, &["--path", "/nowhere"]).is_empty());
    assert_eq!(
        listed(v, &["--host", &host(), "--tag", "weekly", "--path", s(&b)]),
        [p2.as_str()]
    );
    // A relative --path is taken from the working directory, like backup's sources.
    let out = std::process::Command::new(bin())
        .args(["points", s(v), "--path", "src-b", "--json"])
        .current_dir(&f.root)
        .env("VAULTFS_PASSPHRASE", PASS)
        .output()
        .unwrap();
    let rel: Value = serde_json::from_str(&succeeded(&[], out)).unwrap();
    assert_eq!(rel.as_array().unwrap().len(), 2, "{rel}");

    // The table shows the host and the tags; no match prints only the header.
    let table = ok(&["points", s(v), "web"]);
    let head = table.lines().next().unwrap();
    assert!(head.contains("HOST") && head.contains("TAGS"), "{table}");
    let row1 = table.lines().find(|l| l.contains(&p1)).unwrap();
    assert!(
        row1.contains(&host()) && row1.contains("daily,env=prod"),
        "{table}"
    );
    assert_eq!(ok(&["points", s(v), "--tag", "monthly"]).lines().count(), 1);

    // backup --json names them too.
    let out: Value = serde_json::from_str(&ok(&[
        "backup",
        s(v),
        "web",
        s(&a),
        "--tag",
        "json",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        (&out["host"], &out["paths"], &out["tags"]),
        (&json!(host()), &json!([s(&a)]), &json!(["json"]))
    );
}

#[test]
fn a_bad_tag_is_refused_before_anything_is_stored() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("x"), "x").unwrap();
    for bad in ["two words", "-x", "", "a/b"] {
        let err = fails(&[
            "backup",
            s(&f.vault),
            "web",
            s(&f.src),
            &format!("--tag={bad}"),
        ]);
        assert!(err.contains("tag"), "{bad:?}: {err}");
    }
    assert!(
        ok(&["items", s(&f.vault)])
            .lines()
            .all(|l| !l.contains("web"))
    );
}

#[test]
fn snapshots_record_the_daemons_host_incoming_and_their_tags() {
    let f = Fixture::new();
    let m = Mount::new(&f.vault, &f.mnt);
    fs::create_dir(m.path("incoming/inc")).unwrap();
    fs::write(m.path("incoming/inc/f.txt"), "in").unwrap();
    let out = ok(&["snapshot", s(&f.mnt), "inc", "--tag", "manual"]);
    let (_, point) = created_point(&out).unwrap();
    let all = points_json(&f.vault, &["inc"]);
    assert_eq!(all.len(), 1);
    assert_eq!(
        (&all[0]["host"], &all[0]["paths"], &all[0]["tags"]),
        (&json!(host()), &json!(["incoming/inc"]), &json!(["manual"]))
    );
    assert_eq!(
        listed(&f.vault, &["--path", "incoming/inc", "--tag", "manual"]),
        [point]
    );
    let err = fails(&["snapshot", s(&f.mnt), "inc", "--tag", "a,b"]);
    assert!(err.contains("tag"), "{err}");
    assert_eq!(points_json(&f.vault, &["inc"]).len(), 1);
}
