//! Faults of the object store: wrong credentials, a missing bucket, plain HTTP off loopback,
//! the server stopped in the middle of a backup, and restarted under a mount's reads. Each is
//! a clear error (no panic), nothing is damaged, and a rerun completes. These tests stop and
//! start their own server.

use std::fs;
use std::io::Read;
use std::time::Duration;

use crate::common::mnt::{poll, s};
use crate::common::{assert_same_tree, make_rich_tree, noise, tempdir};
use crate::{S3, server, url};

#[test]
fn wrong_credentials_missing_bucket_and_plain_http_are_clear_errors() {
    let srv = server::shared();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let s3 = S3::new(srv, &root.join("cache"));
    let v = url("creds");
    s3.init(&v);

    let wrong = s3.with("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let err = wrong.fails(&["points", &v]);
    assert!(err.contains("refused the credentials"), "{err}");
    let err = wrong.fails(&["init", &url("creds2")]);
    assert!(err.contains("refused the credentials"), "{err}");

    let err = s3.fails(&["init", "s3://no-such-bucket/x"]);
    assert!(
        err.contains("bucket \"no-such-bucket\" does not exist"),
        "{err}"
    );
    let err = s3.fails(&["points", "s3://no-such-bucket/x"]);
    assert!(err.contains("does not exist"), "{err}");

    let err = s3
        .with("AWS_ENDPOINT_URL", "http://example.com")
        .fails(&["points", &v]);
    assert!(err.contains("only to a loopback endpoint"), "{err}");
    let mut no_keys = s3.clone();
    no_keys.env.remove("AWS_ACCESS_KEY_ID");
    let err = no_keys.fails(&["points", &v]);
    assert!(err.contains("no credentials"), "{err}");
    // Nothing was damaged.
    let check = s3.ok(&["check", &v, "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");

    // A vault whose only slot is an RSA key: opening it with no key names the slot kinds
    // (read from the bucket's config) instead of asking for a passphrase it cannot use.
    let private = root.join("kms.pem");
    let public = root.join("kms.pub.pem");
    crate::common::sh(&format!(
        "openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '{}' && \
         openssl pkey -in '{}' -pubout -out '{}'",
        s(&private),
        s(&private),
        s(&public)
    ));
    let rsa_only = url("rsa-only");
    s3.ok(&["init", &rsa_only, "--rsa-public-key", s(&public)]);
    let err = s3.fails(&["points", &rsa_only]);
    assert!(err.contains("has no passphrase key slot"), "{err}");
    assert!(err.contains("--rsa-key"), "{err}");
    s3.ok(&["points", &rsa_only, "--rsa-key", s(&private)]);
}

/// The server goes away in the middle of a backup (after some packs were written): the backup
/// fails clearly; with the server back, a rerun completes and the vault checks clean. Then the
/// server restarts while a mount reads: reads during the outage fail with EIO (no hang past the
/// retry budget), reads after it work, and the mount unmounts cleanly.
#[test]
fn server_stopped_mid_backup_and_restarted_under_a_mount() {
    let srv = server::Server::start();
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let s3 = S3::new(&srv, &root.join("cache")).with("VAULTFS_S3_RETRY_SECS", "3");
    let v = format!("s3://{}/faults", server::BUCKET);
    s3.init(&v);
    let src = root.join("src");
    make_rich_tree(&src);
    for n in 0..24 {
        fs::write(src.join(format!("big{n}.bin")), noise(1 << 20, 100 + n)).unwrap();
    }

    let mut backup = s3
        .command(&["backup", &v, "big", s(&src)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once the backup has written a few packs.
    let client = crate::client(&srv, server::BUCKET);
    let busy = poll(Duration::from_secs(60), Duration::from_millis(20), || {
        client.list("faults/packs/").map(|l| l.len()).unwrap_or(0) >= 3
    });
    assert!(busy, "the backup wrote no packs");
    srv.stop();
    let status = backup.wait().unwrap();
    let mut stderr = String::new();
    backup
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the object store"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    srv.restart();
    let point = s3.backup(&v, "big", &src);
    let check = s3.ok(&["check", &v, "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");

    // A restart under a mount's reads.
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut m = s3.mount(&v, &mnt);
    m.mount();
    let p = mnt.join(format!("points/big/{point}"));
    assert_eq!(fs::read(p.join("big0.bin")).unwrap(), noise(1 << 20, 100));
    srv.stop();
    // big9 is backed up last (names in byte order), so its pack is far from big0's and no
    // read-ahead of big0's fetched it.
    let gone = fs::read(p.join("big9.bin")).unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::EIO), "{gone}");
    srv.restart();
    assert_eq!(fs::read(p.join("big9.bin")).unwrap(), noise(1 << 20, 109));
    assert_same_tree(&src, &p);
    drop(m);
    let check = s3.ok(&["check", &v, "--read-data"]);
    assert!(check.contains(": 0 errors"), "{check}");
}
