//! Acceptance (issue 2, item 9): `man/` holds a page per command generated from the clap
//! definitions, and this test fails when they are stale. Regenerate with
//! `VAULTFS_UPDATE_MAN=1 cargo test --test man`.

use std::path::Path;

use clap::CommandFactory;
use vaultfs::cli::Cli;

/// clap's page with EXAMPLES, ENVIRONMENT and EXIT STATUS added before VERSION.
fn render(cmd: clap::Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("render man page");
    let text = String::from_utf8(out).expect("roff is UTF-8");
    let extra = extra_sections(&name);
    let text = match text.find(".SH VERSION") {
        Some(i) => format!("{}{extra}{}", &text[..i], &text[i..]),
        None => format!("{text}{extra}"),
    };
    text.into_bytes()
}

/// `-` and `\` escaped for roff.
fn roff(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

fn tagged(items: &[(&str, &str)]) -> String {
    items
        .iter()
        .map(|(tag, text)| format!(".TP\n\\fB{}\\fR\n{}\n", roff(tag), roff(text)))
        .collect()
}

/// Examples of a page (`vaultfs`, `vaultfs-backup`, ...), if it has some.
fn examples(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "vaultfs" => &[
            (
                "vaultfs init /srv/vault",
                "Create a vault (asks for a passphrase).",
            ),
            (
                "vaultfs backup /srv/vault web01 /var/www",
                "Back up a directory as a new point of item web01.",
            ),
            (
                "vaultfs mount /srv/vault /mnt/vault",
                "Browse points under /mnt/vault/points/, file histories under /mnt/vault/versions/.",
            ),
            (
                "vaultfs restore /srv/vault web01 /tmp/web01",
                "Restore the newest point of web01.",
            ),
        ],
        "vaultfs-backup" => &[
            (
                "vaultfs backup /srv/vault web01 /var/www",
                "Back up one directory: it is the point's root.",
            ),
            (
                "vaultfs backup /srv/vault home /home/ann /etc -x --exclude '*.tmp' --exclude-if-present CACHEDIR.TAG",
                "Back up two sources (the point holds ann/ and etc/), stay on their filesystems, leave out temporary files and tagged cache directories.",
            ),
        ],
        "vaultfs-restore" => &[
            (
                "vaultfs restore /srv/vault web01 /tmp/out --dry-run",
                "Say what a restore would write and replace.",
            ),
            (
                "vaultfs restore /srv/vault web01/2026-11-23T23-10-05Z /tmp/out --path etc --verify",
                "Restore the contents of etc/ of that point into /tmp/out and check every file read back.",
            ),
        ],
        "vaultfs-mount" => &[
            (
                "vaultfs mount /srv/vault /mnt/vault",
                "Mount; the command returns once the daemon serves the mount.",
            ),
            (
                "ls /mnt/vault/versions/web01/etc/hosts/",
                "Every distinct version of /etc/hosts across web01's points.",
            ),
        ],
        "vaultfs-serve-webdav" => &[
            (
                "htpasswd -B -c /etc/vaultfs/webdav.htpasswd ann",
                "Make a password file with a bcrypt line for user ann (apache2-utils).",
            ),
            (
                "vaultfs serve-webdav /srv/vault --password-file /etc/vaultfs/webdav.htpasswd",
                "Serve points/ and versions/ read-only at http://127.0.0.1:8080/.",
            ),
            (
                "vaultfs serve-webdav /srv/vault --listen 0.0.0.0:8443 --password-file /etc/vaultfs/webdav.htpasswd --tls-cert cert.pem --tls-key key.pem",
                "Serve to other machines: HTTPS and a password file are both required.",
            ),
            (
                "rclone copy :webdav:points/web01/latest /tmp/web01 --webdav-url https://vault.example:8443 --webdav-user ann --webdav-pass \"$(rclone obscure 'PASSWORD')\"",
                "Copy the newest point of web01 out with rclone.",
            ),
        ],
        "vaultfs-ls" => &[(
            "vaultfs ls /srv/vault web01 etc -l",
            "List /etc of the newest point, long form.",
        )],
        "vaultfs-find" => &[
            (
                "vaultfs find /srv/vault '*.conf' --item web01 --newest 3",
                "Which of web01's three newest points hold a .conf file, and where.",
            ),
            (
                "vaultfs find /srv/vault 'home/*/notes.txt' -i --json",
                "Whole-path match, any case, as JSON.",
            ),
        ],
        "vaultfs-diff" => &[(
            "vaultfs diff /srv/vault web01/2026-11-22T23-10-05Z web01",
            "What changed between that point and the newest.",
        )],
        "vaultfs-stats" => &[(
            "vaultfs stats /srv/vault web01 --json",
            "Sizes and ratios of web01's points.",
        )],
        "vaultfs-policy" => &[(
            "vaultfs policy /srv/vault web01 --keep-daily 7 --dry-run",
            "Which points a daily-7 retention would retire.",
        )],
        "vaultfs-gc" => &[(
            "vaultfs gc /srv/vault --dry-run",
            "What gc would purge and free.",
        )],
        _ => &[],
    }
}

fn extra_sections(name: &str) -> String {
    let mut out = String::new();
    let ex = examples(name);
    if !ex.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        out.push_str(&tagged(ex));
    }
    out.push_str(".SH ENVIRONMENT\n");
    out.push_str(&tagged(&[
        ("VAULTFS_PASSPHRASE", "The vault's passphrase, instead of --passphrase-file or a prompt (removed from the environment at start)."),
        ("VAULTFS_NEW_PASSPHRASE", "The new passphrase of key add and key rotate."),
        ("VAULTFS_CACHE_DIR", "Where S3 vaults and secondaries keep their local cache (as --cache-dir)."),
        ("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN", "Credentials of S3 vaults."),
        ("AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION", "Endpoint and region of S3 vaults (as --s3-endpoint, --s3-region)."),
    ]));
    out.push_str(".SH \"EXIT STATUS\"\n");
    out.push_str(&tagged(&[
        ("0", "Success."),
        ("1", "Error (one line on standard error says what)."),
        ("2", "Bad arguments."),
        ("3", "Partial: done, but some entries were skipped (a backup whose point lacks entries that could not be read; a repair that found lost data)."),
        ("70", "Internal error (a bug), reported as one line."),
        ("75", "The vault is in use by a running backup, which answers only read-only commands; try again, or give --lock-wait."),
    ]));
    out
}

/// (file name, content) of every page: `vaultfs.1` and `vaultfs-SUB.1` per subcommand.
fn pages() -> Vec<(String, Vec<u8>)> {
    // `vaultfs help` exists, but has no page of its own to refer to.
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut out = vec![("vaultfs.1".to_string(), render(top.clone()))];
    add_pages(&top, "vaultfs", &mut out);
    out
}

/// A page per subcommand of `cmd`, and of theirs (`vaultfs-key-add.1`).
fn add_pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{prefix}-{}", sub.get_name());
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = sub
            .clone()
            .name(static_name)
            .version(env!("CARGO_PKG_VERSION"));
        out.push((format!("{name}.1"), render(page)));
        add_pages(sub, &name, out);
    }
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("VAULTFS_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    let pages = pages();
    for (file, content) in &pages {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(file.clone());
        }
    }
    let expected: std::collections::BTreeSet<String> =
        pages.iter().map(|(f, _)| f.clone()).collect();
    let present: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let extra: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "man pages are stale {stale:?} or left over {extra:?}: run VAULTFS_UPDATE_MAN=1 cargo test --test man"
    );
    assert!(pages.len() >= 8, "a page per command");
    let top = String::from_utf8_lossy(&pages[0].1).into_owned();
    assert!(
        !top.contains("vaultfs\\-help"),
        "vaultfs.1 names no vaultfs-help(1)"
    );
    for (file, content) in &pages {
        let text = String::from_utf8_lossy(content);
        for section in [".SH ENVIRONMENT", ".SH \"EXIT STATUS\""] {
            assert!(text.contains(section), "{file} has no {section}");
        }
    }
    assert!(
        top.contains(".SH EXAMPLES") && top.contains("Partial"),
        "{top}"
    );
}
