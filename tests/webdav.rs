//! The WebDAV door (issue 18, acceptance 4): a real `vaultfs serve-webdav` process, real
//! clients (rclone's WebDAV backend, curl), a real password file made by `htpasswd -B`, a real
//! self-signed certificate made by `openssl req`. Every server is stopped by a guard (also
//! when a test panics). `scripts/deps.sh` installs rclone and apache2-utils.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mnt::{Fixture, backup, s};
use common::*;

const USER: &str = "alice";
const SECRET: &str = "correct horse battery staple";

/// A running `vaultfs serve-webdav`, killed on drop (SIGTERM, then SIGKILL).
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Start the server; it must print the address it serves.
    fn start(vault: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve-webdav", s(vault), "--listen", "127.0.0.1:0"])
            .args(args)
            .env("VAULTFS_PASSPHRASE", PASS)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve-webdav");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let mut server = Server {
            child,
            url: String::new(),
        };
        let Some(url) = line.split(" at ").nth(1).and_then(|r| r.split(' ').next()) else {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut err);
            panic!("serve-webdav did not start: {line:?} {err}");
        };
        server.url = url.trim_end_matches('/').to_string();
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A password file with `users` (name, password), made by `htpasswd -B` (bcrypt), passwords
/// given on its stdin.
fn htpasswd(path: &Path, users: &[(&str, &str)]) {
    for (i, (user, pass)) in users.iter().enumerate() {
        let mut cmd = Command::new("htpasswd");
        cmd.arg("-i").arg("-B");
        if i == 0 {
            cmd.arg("-c");
        }
        let mut child = cmd
            .arg(path)
            .arg(user)
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("htpasswd (apache2-utils; scripts/deps.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(pass.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "htpasswd failed");
    }
}

/// `curl` with `args`; returns (HTTP status, body).
fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let code = std::str::from_utf8(&body[nl + 1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (code, body)
}

fn auth() -> String {
    format!("{USER}:{SECRET}")
}

/// `rclone ARGS` against the server as `user`, with an on-the-fly WebDAV remote (no config).
fn rclone(srv: &Server, dir: &Path, user: &str, pass: &str, args: &[&str]) -> std::process::Output {
    let obscured = Command::new("rclone")
        .args(["obscure", pass])
        .output()
        .unwrap();
    Command::new("rclone")
        .args(["--config", s(&dir.join("rclone.conf")), "--retries", "1"])
        .args(args)
        .env("RCLONE_WEBDAV_URL", &srv.url)
        .env("RCLONE_WEBDAV_VENDOR", "other")
        .env("RCLONE_WEBDAV_USER", user)
        .env(
            "RCLONE_WEBDAV_PASS",
            String::from_utf8_lossy(&obscured.stdout).trim(),
        )
        .output()
        .expect("rclone (scripts/deps.sh installs it)")
}

#[track_caller]
fn rclone_ok(srv: &Server, dir: &Path, args: &[&str]) -> String {
    let out = rclone(srv, dir, USER, SECRET, args);
    assert!(
        out.status.success(),
        "rclone {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A source tree: text, a "photo", a multi-chunk binary, a name with a space, nested
/// directories, an empty file, and a symlink (which WebDAV cannot carry).
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    fs::write(root.join("hello.txt"), "hello over webdav\n").unwrap();
    fs::write(root.join("photo.jpg"), noise(40_000, 3)).unwrap();
    fs::write(root.join("big.bin"), noise(5_000_000, 7)).unwrap();
    fs::write(root.join("docs/a report.md"), "# report\n").unwrap();
    fs::write(root.join("docs/deep/er/leaf.json"), "{\"x\": 1}\n").unwrap();
    fs::write(root.join("docs/empty"), "").unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    sh(&format!(
        "touch -d '2011-02-03 04:05:06' '{}/big.bin'",
        root.display()
    ));
}

/// Regular files under `dir`, relative, with their bytes and mtime (whole seconds).
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>, i64)> {
    walk(dir)
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().is_file())
        .map(|p| {
            let md = fs::metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            (rel, fs::read(&p).unwrap(), md.mtime())
        })
        .collect()
}

fn served(f: &Fixture) -> (Server, String, PathBuf) {
    make_tree(&f.src);
    let point = backup(&f.vault, "web", &f.src);
    let pw = f.root.join("htpasswd");
    htpasswd(&pw, &[(USER, SECRET)]);
    let srv = Server::start(&f.vault, &["--password-file", s(&pw)]);
    (srv, point, pw)
}

#[test]
fn rclone_lists_and_copies_a_point_bit_for_bit() {
    let f = Fixture::new();
    let (srv, point, _) = served(&f);
    let work = f.dir("work");

    assert_eq!(
        rclone_ok(&srv, &work, &["lsf", ":webdav:"]),
        "points/\nversions/\n"
    );
    let items = rclone_ok(&srv, &work, &["lsf", ":webdav:points/web"]);
    assert_eq!(items, format!("{point}/\nlatest/\n"));
    let listing = rclone_ok(
        &srv,
        &work,
        &["lsf", "-R", &format!(":webdav:points/web/{point}")],
    );
    assert!(listing.contains("docs/a report.md\n"), "{listing}");
    assert!(!listing.contains("link"), "a symlink was served: {listing}");

    // Copied out, by name and through `latest`: the same bytes and mtimes as the source.
    for (from, to) in [(point.as_str(), "copy"), ("latest", "latest")] {
        let dst = f.root.join(to);
        rclone_ok(
            &srv,
            &work,
            &["copy", &format!(":webdav:points/web/{from}"), s(&dst)],
        );
        let (want, got) = (files(&f.src), files(&dst));
        assert_eq!(want.len(), 6);
        assert_eq!(
            got.iter().map(|(p, b, _)| (p, b)).collect::<Vec<_>>(),
            want.iter().map(|(p, b, _)| (p, b)).collect::<Vec<_>>(),
            "{from}: bytes differ"
        );
        assert_eq!(
            got.iter().map(|(p, _, t)| (p, t)).collect::<Vec<_>>(),
            want.iter().map(|(p, _, t)| (p, t)).collect::<Vec<_>>(),
            "{from}: modification times differ"
        );
    }
    // The version history of the mount, as WebDAV.
    let versions = rclone_ok(&srv, &work, &["lsf", ":webdav:versions/web/hello.txt"]);
    assert_eq!(versions, format!("{point}.txt\n"));

    // A wrong password gets nothing.
    let out = rclone(&srv, &work, USER, "wrong", &["lsf", ":webdav:points"]);
    assert!(
        !out.status.success(),
        "rclone with a wrong password listed points"
    );
}

#[test]
fn propfind_get_ranges_and_head_tell_the_truth() {
    let f = Fixture::new();
    let (srv, point, _) = served(&f);
    let base = format!("{}/points/web/{point}", srv.url);
    let big = fs::read(f.src.join("big.bin")).unwrap();

    let (code, body) = curl(&[
        "-u",
        &auth(),
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{base}/"),
    ]);
    assert_eq!(code, 207);
    let xml = String::from_utf8(body).unwrap();
    let prop_of = |name: &str| -> String {
        let at = xml
            .find(&format!("{name}</D:href>"))
            .unwrap_or_else(|| panic!("{name}: {xml}"));
        let end = xml[at..].find("</D:response>").unwrap() + at;
        xml[at..end].to_string()
    };
    let b = prop_of("big.bin");
    assert!(
        b.contains("<D:getcontentlength>5000000</D:getcontentlength>"),
        "{b}"
    );
    assert!(b.contains("Thu, 03 Feb 2011 04:05:06 GMT"), "{b}");
    assert!(prop_of("hello.txt").contains("text/plain"), "{xml}");
    assert!(prop_of("photo.jpg").contains("image/jpeg"), "{xml}");
    assert!(prop_of("docs/").contains("<D:collection"), "{xml}");
    assert!(
        !xml.contains("link</D:href>"),
        "a symlink was listed: {xml}"
    );

    // Ranges, across chunk boundaries and at the end.
    for (from, to) in [
        (0usize, 99usize),
        (1_048_570, 3_000_000),
        (4_999_990, 4_999_999),
    ] {
        let (code, body) = curl(&[
            "-u",
            &auth(),
            "-r",
            &format!("{from}-{to}"),
            &format!("{base}/big.bin"),
        ]);
        assert_eq!(code, 206, "range {from}-{to}");
        assert!(body == big[from..=to], "range {from}-{to}: wrong bytes");
    }
    let (code, body) = curl(&["-u", &auth(), &format!("{base}/docs/a%20report.md")]);
    assert_eq!((code, body.as_slice()), (200, &b"# report\n"[..]));

    let (code, head) = curl(&["-u", &auth(), "-I", &format!("{base}/big.bin")]);
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert_eq!(code, 200);
    assert!(head.contains("content-length: 5000000"), "{head}");
    assert!(head.contains("accept-ranges: bytes"), "{head}");

    // Nothing but the read-only view: not incoming/, not .deleted/, not a way around them.
    for path in [
        "incoming/",
        ".deleted/",
        "incoming/web/",
        "points/../incoming/",
        "points/web/nope",
    ] {
        let (code, _) = curl(&[
            "-u",
            &auth(),
            "--path-as-is",
            &format!("{}/{path}", srv.url),
        ]);
        assert_eq!(code, 404, "{path}");
    }
}

#[test]
fn wrong_or_missing_credentials_are_refused() {
    let f = Fixture::new();
    let (srv, point, _) = served(&f);
    let file = format!("{}/points/web/{point}/hello.txt", srv.url);
    let (code, body) = curl(&["-u", &auth(), &file]);
    assert_eq!((code, body.as_slice()), (200, &b"hello over webdav\n"[..]));
    for args in [
        vec![],
        vec!["-u", "alice:wrong"],
        vec!["-u", "alice:"],
        vec!["-u", "mallory:correct horse battery staple"],
        vec!["-H", "Authorization: Bearer abc"],
        vec!["-H", "Authorization: Basic !!!"],
    ] {
        let mut a = args.clone();
        a.push(&file);
        let (code, body) = curl(&a);
        assert_eq!(code, 401, "{args:?}");
        assert!(
            !body.windows(5).any(|w| w == b"hello"),
            "{args:?} got the file"
        );
        let mut a = args.clone();
        let root = format!("{}/", srv.url);
        a.extend(["-X", "PROPFIND", "-H", "Depth: 1", &root]);
        assert_eq!(curl(&a).0, 401, "PROPFIND {args:?}");
    }
}

#[test]
fn every_write_method_is_refused_and_the_vault_is_unchanged() {
    let f = Fixture::new();
    let (srv, point, _) = served(&f);
    let work = f.dir("work");
    let before = rclone_ok(&srv, &work, &["lsjson", "-R", ":webdav:points"]);
    let upload = f.root.join("upload.txt");
    fs::write(&upload, "should not land\n").unwrap();
    let dir = format!("{}/points/web/{point}", srv.url);
    let tries: Vec<Vec<String>> = [
        vec!["-T", s(&upload), &format!("{dir}/new.txt")],
        vec!["-T", s(&upload), &format!("{dir}/hello.txt")],
        vec![
            "-T",
            s(&upload),
            &format!("{}/incoming/web/new.txt", srv.url),
        ],
        vec!["-X", "DELETE", &format!("{dir}/hello.txt")],
        vec!["-X", "DELETE", &dir],
        vec!["-X", "MKCOL", &format!("{dir}/newdir")],
        vec!["-X", "MKCOL", &format!("{}/incoming/newitem", srv.url)],
        vec![
            "-X",
            "MOVE",
            "-H",
            &format!("Destination: {}/points/web/moved", srv.url),
            &dir,
        ],
        vec![
            "-X",
            "MOVE",
            "-H",
            &format!("Destination: {}/.deleted/web/{point}", srv.url),
            &dir,
        ],
        vec![
            "-X",
            "COPY",
            "-H",
            &format!("Destination: {dir}/copy.txt"),
            &format!("{dir}/hello.txt"),
        ],
        vec![
            "-X",
            "PROPPATCH",
            "--data",
            "<x/>",
            &format!("{dir}/hello.txt"),
        ],
        vec!["-X", "LOCK", "--data", "<x/>", &format!("{dir}/hello.txt")],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    for t in &tries {
        let mut args = vec!["-u".to_string(), auth()];
        args.extend(t.iter().cloned());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _) = curl(&a);
        assert!(code == 403 || code == 405, "{t:?} answered {code}");
    }
    let out = rclone(
        &srv,
        &work,
        USER,
        SECRET,
        &["copy", s(&upload), &format!(":webdav:points/web/{point}")],
    );
    assert!(!out.status.success(), "rclone uploaded into a point");
    assert_eq!(
        rclone_ok(&srv, &work, &["lsjson", "-R", ":webdav:points"]),
        before
    );
    drop(srv);
    // The vault: still one point of the same files, nothing soft-deleted, nothing incoming.
    let points = ok(&["points", s(&f.vault), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&points).unwrap();
    assert_eq!(doc.as_array().map(|a| a.len()), Some(1), "{points}");
    assert!(
        ok(&["points", s(&f.vault), "--deleted"])
            .lines()
            .all(|l| !l.contains(&point))
    );
    let restored = f.root.join("restored");
    ok(&[
        "restore",
        s(&f.vault),
        &format!("web/{point}"),
        s(&restored),
    ]);
    assert_eq!(files(&restored), files(&f.src));
    ok(&["check", s(&f.vault)]);
}

/// `serve-webdav VAULT --listen 127.0.0.1:0 EXTRA...` must fail clearly; returns its stderr.
fn refused(vault: &str, extra: &[&str]) -> String {
    let mut args = vec!["serve-webdav", vault, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    fails(&args)
}

/// Self-signed certificate for 127.0.0.1 made by `openssl req`: (cert, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
         -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '{}' -out '{}' 2>/dev/null",
        key.display(),
        cert.display()
    ));
    (cert, key)
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let f = Fixture::new();
    make_tree(&f.src);
    let point = backup(&f.vault, "web", &f.src);
    let pw = f.root.join("htpasswd");
    htpasswd(&pw, &[(USER, SECRET)]);
    let (cert, key) = self_signed(&f.root);
    let srv = Server::start(
        &f.vault,
        &[
            "--password-file",
            s(&pw),
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
        ],
    );
    assert!(srv.url.starts_with("https://"), "{}", srv.url);
    let file = format!("{}/points/web/{point}/big.bin", srv.url);
    let (code, body) = curl(&["--cacert", s(&cert), "-u", &auth(), &file]);
    assert_eq!(code, 200);
    assert!(
        body == fs::read(f.src.join("big.bin")).unwrap(),
        "TLS: wrong bytes"
    );
    // Not trusted without the certificate; plain HTTP gets no answer from the TLS port.
    assert_eq!(curl(&["-u", &auth(), &file]).0, 0);
    let plain = file.replacen("https://", "http://", 1);
    assert_ne!(curl(&["-u", &auth(), &plain]).0, 200);
    // rclone over TLS, trusting the certificate.
    let work = f.dir("work");
    let dst = f.root.join("copy");
    rclone_ok(
        &srv,
        &work,
        &[
            "--ca-cert",
            s(&cert),
            "copy",
            &format!(":webdav:points/web/{point}"),
            s(&dst),
        ],
    );
    assert_eq!(
        files(&dst)
            .into_iter()
            .map(|(p, b, _)| (p, b))
            .collect::<Vec<_>>(),
        files(&f.src)
            .into_iter()
            .map(|(p, b, _)| (p, b))
            .collect::<Vec<_>>()
    );
}

#[test]
fn unsafe_or_broken_setups_are_refused_at_start() {
    let f = Fixture::new();
    make_tree(&f.src);
    backup(&f.vault, "web", &f.src);
    let v = s(&f.vault);
    let pw = f.root.join("htpasswd");
    htpasswd(&pw, &[(USER, SECRET)]);
    let (cert, key) = self_signed(&f.root);
    // Beyond loopback: TLS and a password file, both.
    for extra in [
        vec![],
        vec!["--password-file", s(&pw)],
        vec!["--tls-cert", s(&cert), "--tls-key", s(&key)],
    ] {
        let mut args = vec!["serve-webdav", v, "--listen", "0.0.0.0:0"];
        args.extend(extra.iter());
        let err = fails(&args);
        assert!(err.contains("without TLS and authentication"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // Password files: only bcrypt (an MD5 line from htpasswd -m is refused), readable, users.
    let md5 = f.root.join("md5");
    sh(&format!(
        "htpasswd -b -m -c '{}' bob pw 2>/dev/null",
        md5.display()
    ));
    let err = refused(v, &["--password-file", s(&md5)]);
    assert!(
        err.contains("line 1") && err.contains("htpasswd -B"),
        "{err}"
    );
    let err = refused(v, &["--password-file", s(&f.root.join("missing"))]);
    assert!(err.contains("cannot read the password file"), "{err}");
    let empty = f.root.join("empty");
    fs::write(&empty, "# nobody\n").unwrap();
    assert!(refused(v, &["--password-file", s(&empty)]).contains("no users"));
    // TLS files that are not what they claim.
    let err = refused(v, &["--tls-cert", s(&pw), "--tls-key", s(&key)]);
    assert!(err.contains("TLS certificate"), "{err}");
    // Loopback without a password file: allowed, with a warning, and anyone connecting reads.
    {
        let srv = Server::start(&f.vault, &[]);
        let (code, _) = curl(&[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 1",
            &format!("{}/points/", srv.url),
        ]);
        assert_eq!(code, 207);
    }
    // The vault's key is checked like every command's.
    let out = Command::new(bin())
        .args(["serve-webdav", v, "--listen", "127.0.0.1:0"])
        .env("VAULTFS_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vaultfs: error:"));
}

#[test]
fn roles_decide_what_each_webdav_user_sees() {
    let f = Fixture::new();
    make_tree(&f.src);
    let web = backup(&f.vault, "web", &f.src);
    let db = backup(&f.vault, "db", &f.src);
    let v = s(&f.vault);
    // Local accounts every Debian system has: `daemon` reads web, `nobody` has no role.
    ok(&[
        "role", "grant", v, "--user", "daemon", "reader", "--item", "web",
    ]);
    let pw = f.root.join("htpasswd");
    htpasswd(&pw, &[("daemon", "pw-d"), ("nobody", "pw-n")]);
    let srv = Server::start(&f.vault, &["--password-file", s(&pw)]);
    let list = |who: &str, path: &str| {
        let (code, body) = curl(&[
            "-u",
            who,
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 1",
            &format!("{}/{path}", srv.url),
        ]);
        (code, String::from_utf8_lossy(&body).into_owned())
    };
    let (code, xml) = list("daemon:pw-d", "points/");
    assert_eq!(code, 207);
    assert!(
        xml.contains("/points/web/") && !xml.contains("/points/db/"),
        "{xml}"
    );
    let (_, xml) = list("nobody:pw-n", "points/");
    assert!(
        !xml.contains("/points/web/") && !xml.contains("/points/db/"),
        "{xml}"
    );
    let get = |who: &str, item: &str, point: &str| {
        curl(&[
            "-u",
            who,
            &format!("{}/points/{item}/{point}/hello.txt", srv.url),
        ])
        .0
    };
    assert_eq!(get("daemon:pw-d", "web", &web), 200);
    assert_eq!(get("daemon:pw-d", "db", &db), 403);
    assert_eq!(get("nobody:pw-n", "web", &web), 403);
    assert_eq!(
        curl(&[
            "-u",
            "daemon:pw-d",
            &format!("{}/versions/db/hello.txt/", srv.url)
        ])
        .0,
        403
    );
    drop(srv);
    // With roles, a WebDAV user must be a local account (roles name local users).
    htpasswd(&pw, &[("no-such-user-here", "pw")]);
    let err = refused(v, &["--password-file", s(&pw)]);
    assert!(
        err.contains("no-such-user-here") && err.contains("no local user"),
        "{err}"
    );
}
