//! Replication to a secondary, its lag, restoring from it with the primary gone, and
//! `kill -9` of `replicate` at several moments.

use std::fs;
use std::os::unix::process::ExitStatusExt;

use crate::common::mnt::s;
use crate::common::{assert_same_tree, make_rich_tree, noise, tempdir};
use crate::{S3, server, set_clock, unique, url};

/// The lag per item from `replicate --status --json`: (item, lag seconds or None, missing);
/// `status --json` must show the same.
fn lags(s3: &S3, vault: &str) -> Vec<(String, Option<i64>, u64)> {
    let lags = crate::common::replica_lags(&s3.ok(&["replicate", vault, "--status", "--json"]));
    let status: serde_json::Value =
        serde_json::from_str(s3.ok(&["status", vault, "--json"]).trim()).expect("status JSON");
    let shown: Vec<(String, Option<i64>, u64)> = status["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["item"].as_str().unwrap().to_string(),
                i["replica"]["lag_seconds"].as_i64(),
                i["replica"]["points_missing"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown, lags,
        "status and replicate --status disagree: {status}"
    );
    lags
}

/// Delete every object under a vault's prefix: the primary is gone.
fn destroy(srv: &server::Server, vault_url: &str) {
    let rest = vault_url.strip_prefix("s3://").unwrap();
    let (bucket, prefix) = rest.split_once('/').unwrap();
    let client = crate::client(srv, bucket);
    let objects = client.list(&format!("{prefix}/")).unwrap();
    assert!(objects.len() > 3, "{objects:?}");
    for o in objects {
        assert!(client.delete(&o.name).unwrap().ok());
    }
    assert!(client.list(&format!("{prefix}/")).unwrap().is_empty());
}

/// Replicate, change the source, back up again (the lag shows), replicate (no lag); then
/// destroy the primary, mount the secondary and restore from it: identical to the newest
/// replicated point.
#[test]
fn replicate_and_restore_from_the_secondary_with_the_primary_gone() {
    let srv = server::shared();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let clock = root.join("clock");
    let t0 = 1_900_000_000;
    set_clock(&clock, t0);
    let s3 = S3::new(srv, &root.join("cache")).with("VAULTFS_TEST_CLOCK", s(&clock));
    let primary = url("primary");
    let secondary = format!("s3://{}/{}", server::BUCKET2, unique("secondary"));
    s3.init(&primary);
    let src = root.join("src");
    make_rich_tree(&src);
    let first = s3.backup(&primary, "web", &src);

    // Before any replication the secondary holds nothing.
    let out = s3.ok(&["replicate", &primary, "--to", &secondary, "--status"]);
    assert!(out.contains("never replicated"), "{out}");
    let out = s3.ok(&["replicate", &primary, "--to", &secondary]);
    assert!(out.contains("packs copied"), "{out}");
    assert_eq!(lags(&s3, &primary), vec![("web".into(), Some(0), 0)]);

    // A change, an hour later: the secondary lags by that hour and one point.
    fs::write(src.join("new.bin"), noise(2_000_000, 9)).unwrap();
    fs::write(src.join("small.txt"), "changed\n").unwrap();
    set_clock(&clock, t0 + 3600);
    let second = s3.backup(&primary, "web", &src);
    assert_eq!(lags(&s3, &primary), vec![("web".into(), Some(3600), 1)]);
    let human = s3.ok(&["replicate", &primary, "--status"]);
    assert!(human.contains("1h 0m") && human.contains(&first), "{human}");
    // Incremental: only what the secondary lacks is copied.
    let out = s3.ok(&["replicate", &primary]);
    assert!(out.contains("already there"), "{out}");
    assert!(!out.contains(" 0 packs copied"), "{out}");
    assert_eq!(lags(&s3, &primary), vec![("web".into(), Some(0), 0)]);
    let again = s3.ok(&["replicate", &primary]);
    assert!(again.contains(" 0 packs copied"), "{again}");

    // The primary is gone entirely.
    destroy(srv, &primary);
    let err = s3.fails(&["points", &primary]);
    assert!(err.contains("not a vault"), "{err}");

    // Mount the secondary (read-only) on a machine that never saw it.
    let elsewhere = s3.elsewhere(&root.join("cache-elsewhere"));
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = elsewhere.mount(&secondary, &mnt).with_arg("--replica");
    m.mount();
    assert_same_tree(&src, &mnt.join(format!("points/web/{second}")));
    assert!(mnt.join(format!("points/web/{first}")).is_dir());
    let write = fs::write(mnt.join("incoming/web/x"), b"x").unwrap_err();
    assert_eq!(write.raw_os_error(), Some(libc::EROFS), "{write}");
    drop(m);

    let dest = root.join("restored");
    elsewhere.ok(&["restore", "--replica", &secondary, "web", s(&dest)]);
    assert_same_tree(&src, &dest);
    let check = elsewhere.ok(&["check", "--replica", "--read-data", &secondary]);
    assert!(check.contains(": 0 errors"), "{check}");
    // A secondary takes no writes.
    let err = elsewhere.fails(&["backup", "--replica", &secondary, "web", s(&src)]);
    assert!(err.contains("Read-only"), "{err}");
}

/// `kill -9` of `replicate` at several of its durability calls (packs, directories, the
/// config of a local secondary): after each, the partial secondary is a consistent vault
/// (`check --read-data` clean); a rerun completes it, and a restore from it is identical.
#[test]
fn replicate_killed_at_several_moments_then_rerun() {
    let srv = server::shared();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let s3 = S3::new(srv, &root.join("cache"));
    let primary = url("killed");
    s3.init(&primary);
    let src = root.join("src");
    make_rich_tree(&src);
    for n in 0..6 {
        fs::write(src.join(format!("big{n}.bin")), noise(1_500_000, n)).unwrap();
    }
    s3.backup(&primary, "data", &src);
    let target = root.join("secondary");
    let t = s(&target);
    for at in ["3", "2", "6", "1"] {
        let out = s3
            .command(&["replicate", &primary, "--to", t])
            .env("VAULTFS_TEST_KILL_AT_DURABLE", at)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "replicate was not killed at durability call {at}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if target.join("config").exists() {
            let check = s3.ok(&["check", "--replica", "--read-data", t]);
            assert!(
                check.contains(": 0 errors"),
                "after a kill at {at}: {check}"
            );
        }
    }
    let out = s3.ok(&["replicate", &primary, "--to", t]);
    assert!(out.contains("packs copied"), "{out}");
    let check = s3.ok(&["check", "--replica", "--read-data", t]);
    assert!(check.contains(": 0 errors"), "{check}");
    assert_eq!(lags(&s3, &primary), vec![("data".into(), Some(0), 0)]);
    let dest = root.join("restored");
    s3.ok(&["restore", "--replica", t, "data", s(&dest)]);
    assert_same_tree(&src, &dest);
}
