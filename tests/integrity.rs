//! Integrity acceptance tests against the real `vaultfs` binary on real temp dirs:
//! deduplication, confidentiality, corruption handling, index loss, wrong passphrase and
//! exclusive access.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------------------------
// helpers

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 test path")
}

/// `vaultfs init` with cheap key derivation and the given chunk/pack sizes.
fn init_sized(vault: &Path, pack_mib: u32, chunk_avg: u32) {
    let (pack, chunk) = (pack_mib.to_string(), chunk_avg.to_string());
    init_vault_with(vault, &["--pack-size-mib", &pack, "--chunk-avg", &chunk]);
}

/// `vaultfs backup`; returns (point name, summary line).
fn backup(vault: &Path, item: &str, src: &Path) -> (String, String) {
    let out = ok(&["backup", s(vault), item, s(src)]);
    let mut lines = out.lines();
    let first = lines.next().unwrap_or_default();
    let spec = first
        .strip_prefix("created point ")
        .unwrap_or_else(|| panic!("unexpected backup output: {out}"));
    let (it, point) = spec.split_once('/').expect("ITEM/POINT");
    assert_eq!(it, item, "backup output names another item: {out}");
    let summary = lines
        .next()
        .unwrap_or_else(|| panic!("no summary line: {out}"));
    (point.to_string(), summary.to_string())
}

/// Bytes "added to the vault" according to a backup summary line (decimal units, 2 decimals).
fn bytes_added(summary: &str) -> f64 {
    let head = summary
        .split(" added to the vault")
        .next()
        .filter(|h| h.len() < summary.len())
        .unwrap_or_else(|| panic!("no 'added to the vault' in {summary:?}"));
    let field = head.rsplit(", ").next().unwrap();
    let (num, unit) = field
        .split_once(' ')
        .unwrap_or_else(|| panic!("bad size {field:?}"));
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => panic!("unknown unit in {field:?}"),
    };
    num.parse::<f64>()
        .unwrap_or_else(|_| panic!("bad number in {field:?}"))
        * mult
}

/// Number of blobs in the index, from `vaultfs check` ("checked N packs, M blobs, ...").
fn blob_count(vault: &Path) -> u64 {
    let out = ok(&["check", s(vault)]);
    let line = out
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or_else(|| panic!("no summary in check output: {out}"));
    let after = line
        .split(" packs, ")
        .nth(1)
        .unwrap_or_else(|| panic!("bad check line {line:?}"));
    after
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("bad check line {line:?}"))
}

/// Run the binary with a custom environment (no test passphrase unless given).
fn run_with(args: &[&str], pass: Option<&str>) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("RUST_LOG")
        .env_remove("VAULTFS_PASSPHRASE");
    if let Some(p) = pass {
        c.env("VAULTFS_PASSPHRASE", p);
    }
    c.stdin(Stdio::null()).output().expect("run vaultfs")
}

/// The command failed cleanly: non-zero exit, no panic, exactly one line on stderr and it is
/// vaultfs's error line. Returns that line.
fn failed_one_line(what: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what} should fail but succeeded: {stderr}"
    );
    assert!(
        out.status.code().is_some(),
        "{what} died from a signal: {stderr}"
    );
    assert!(
        !matches!(out.status.code(), Some(70) | Some(101)),
        "{what} panicked ({:?}): {stderr}",
        out.status.code()
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{what} panicked: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one clear line on stderr, got {}:\n{stderr}",
        lines.len()
    );
    assert!(
        lines[0].starts_with("vaultfs: "),
        "{what}: stderr line is not vaultfs's error line: {stderr}"
    );
    lines[0].to_string()
}

/// Every path under `dir` (relative) with its content (files), link target (symlinks) or
/// nothing (dirs): a complete picture to compare a vault before and after a command.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let v = if md.is_file() {
                ("file".to_string(), std::fs::read(&p).unwrap())
            } else if md.file_type().is_symlink() {
                (
                    "symlink".to_string(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else {
                (format!("other {:o}", md.mode() & 0o170000), Vec::new())
            };
            (p.strip_prefix(dir).unwrap().to_path_buf(), v)
        })
        .collect()
}

fn assert_vault_unchanged(before: &BTreeMap<PathBuf, (String, Vec<u8>)>, vault: &Path, what: &str) {
    let after = snapshot(vault);
    let names = |m: &BTreeMap<PathBuf, (String, Vec<u8>)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(before),
        names(&after),
        "{what} changed the vault's file list"
    );
    for (p, v) in before {
        assert!(
            after[p] == *v,
            "{what} changed {} in the vault",
            p.display()
        );
    }
}

/// Pack files under VAULT/packs, largest first.
fn packs_by_size(vault: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = walk(&vault.join("packs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .map(|p| {
            let n = std::fs::metadata(&p).unwrap().len();
            (p, n)
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert!(!v.is_empty(), "no packs under {}", vault.display());
    v
}

fn pack_hex(p: &Path) -> String {
    p.file_stem().unwrap().to_str().unwrap().to_string()
}

/// Regular files under `root`, relative.
fn files_under(root: &Path) -> Vec<PathBuf> {
    walk(root)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).unwrap().is_file())
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Text that compresses but has no repeated runs (so it is not deduplicated against itself).
fn unique_text(n: usize, seed: u64) -> Vec<u8> {
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    ];
    let r = noise(n / 4 + 64, seed);
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0usize;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{i:08} {} {} {:02x}{:02x}\n",
                words[r[i % r.len()] as usize % 10],
                words[r[(i + 1) % r.len()] as usize % 10],
                r[(i + 2) % r.len()],
                r[(i + 3) % r.len()]
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// `cp -a` (keeps hard links, xattrs, owners, modes, times, sparseness).
fn copy_tree(from: &Path, to: &Path) {
    sh(&format!("cp -a '{}' '{}'", from.display(), to.display()));
}

/// Affected entries named by `check`/`restore` errors of the form `ITEM/POINT:PATH: why`.
/// Paths are returned relative (no leading `/`) with whether the damage is to a directory.
fn damaged_paths(stderr: &str, item: &str, point: &str) -> Vec<(String, bool)> {
    let label = format!("{item}/{point}:");
    let mut out = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line
            .strip_prefix("vaultfs: ")
            .and_then(|l| l.strip_prefix(&label))
        else {
            continue;
        };
        let Some((path, why)) = rest.split_once(": ") else {
            continue;
        };
        let rel = path.trim_start_matches('/').to_string();
        out.push((rel, why.starts_with("directory listing is damaged")));
    }
    out
}

/// After a restore from a damaged vault: every file the restore produced has exactly the
/// source's bytes and mode (nothing is ever returned with wrong content), and every file not
/// in `affected` (or under an affected directory) was restored.
fn assert_restore_consistent(src: &Path, dest: &Path, affected: &[String]) {
    let is_affected = |rel: &Path| {
        affected
            .iter()
            .any(|a| a.is_empty() || rel == Path::new(a) || rel.starts_with(a))
    };
    for rel in files_under(src) {
        let (a, b) = (src.join(&rel), dest.join(&rel));
        if is_affected(&rel) {
            if let Ok(md) = std::fs::symlink_metadata(&b) {
                panic!(
                    "damaged file {} was left in the restore ({} bytes)",
                    rel.display(),
                    md.len()
                );
            }
            continue;
        }
        assert!(
            b.exists(),
            "undamaged file {} was not restored",
            rel.display()
        );
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "restored {} has wrong content",
            rel.display()
        );
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode(),
            std::fs::metadata(&b).unwrap().permissions().mode(),
            "restored {} has the wrong mode",
            rel.display()
        );
    }
}

/// A small vault for the corruption tests: 1 MiB packs, 256 KiB average chunks, a few random
/// files (several packs) plus small files in a subdirectory. Returns (tmp, vault, src, point).
fn corruption_fixture(item: &str) -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    for i in 0..4u64 {
        write(
            &src.join(format!("data-{i}.bin")),
            &noise(600 << 10, 100 + i),
        );
    }
    write(&src.join("sub/inner.bin"), &noise(400 << 10, 200));
    write(&src.join("sub/notes.txt"), &unique_text(20_000, 201));
    write(&src.join("readme.txt"), b"read me\n");
    sh(&format!(
        "chmod 0600 '{}'",
        src.join("data-1.bin").display()
    ));
    init_sized(&vault, 1, 256 << 10);
    let (point, _) = backup(&vault, item, &src);
    assert!(
        packs_by_size(&vault).len() >= 3,
        "fixture should span several packs"
    );
    (tmp, vault, src, point)
}

// ---------------------------------------------------------------------------------------------
// 1. deduplication

/// 1a: backing up the same tree again grows the vault (every file under it, sled included)
/// by less than 1 %.
#[test]
fn dedup_second_backup_of_same_tree_grows_vault_under_one_percent() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    make_rich_tree(&src);
    init_vault(&vault);
    backup(&vault, "rich", &src);
    let first = dir_bytes(&vault);
    let (_, summary) = backup(&vault, "rich", &src);
    let second = dir_bytes(&vault);
    let growth = second.saturating_sub(first);
    eprintln!("vault {first} -> {second} bytes (+{growth}); {summary}");
    assert!(
        first > 11 << 20,
        "first backup should hold the tree's data, vault is {first} bytes"
    );
    assert!(
        (growth as f64) < first as f64 * 0.01,
        "second backup of the same tree grew the vault by {growth} bytes ({:.3} %), limit 1 %",
        growth as f64 * 100.0 / first as f64
    );
    assert!(
        bytes_added(&summary) < first as f64 * 0.01,
        "summary reports too much added: {summary}"
    );
}

/// 1b: a 64 MiB random file, then the same file with one byte inserted in the middle: the
/// second point adds at most 3 data chunks (plus one tree and one point record).
#[test]
fn dedup_one_byte_insert_in_64mib_file_adds_at_most_three_chunks() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    let data = noise(64 << 20, 0xD1);
    write(&src.join("big.bin"), &data);
    init_vault(&vault);
    backup(&vault, "big", &src);
    let before = blob_count(&vault);
    // 64 MiB in chunks of at most 4 MiB: at least 16 data chunks, plus a tree and 2 records.
    assert!(
        before >= 16 + 3,
        "only {before} blobs after a 64 MiB backup"
    );

    let mid = data.len() / 2;
    let mut edited = Vec::with_capacity(data.len() + 1);
    edited.extend_from_slice(&data[..mid]);
    edited.push(0x5A);
    edited.extend_from_slice(&data[mid..]);
    drop(data);
    write(&src.join("big.bin"), &edited);
    drop(edited);
    let (_, summary) = backup(&vault, "big", &src);
    let after = blob_count(&vault);
    let new_blobs = after - before;
    // Exactly one new root tree (the file changed) and one point record; the rest is data.
    let new_data = new_blobs.saturating_sub(2);
    eprintln!("{before} -> {after} blobs; {summary}");
    assert!(
        new_blobs >= 3,
        "an insert must add at least one chunk, a tree and a record ({new_blobs} blobs added)"
    );
    assert!(
        new_data <= 3,
        "one-byte insert added {new_data} data chunks (blobs {before} -> {after})"
    );
    let added = bytes_added(&summary);
    let limit = 3.0 * (4u64 << 20) as f64 + (64 << 10) as f64;
    assert!(
        added <= limit && added < (64u64 << 20) as f64 / 4.0,
        "one-byte insert added {added} bytes: {summary}"
    );
}

/// 1c: two items backed up from the same files share their chunks: the second item adds
/// only its records (and trees that are identical anyway), also for a renamed copy.
#[test]
fn dedup_two_items_from_same_files_share_chunks() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    write(&src.join("one.bin"), &noise(1536 << 10, 31));
    write(&src.join("dir/two.bin"), &noise(1 << 20, 32));
    write(&src.join("dir/three.txt"), &unique_text(300_000, 33));
    init_vault(&vault);
    let (_, s1) = backup(&vault, "alpha", &src);
    let b1 = blob_count(&vault);
    let v1 = dir_bytes(&vault);
    let first_added = bytes_added(&s1);
    assert!(first_added > 2.5e6, "first backup added too little: {s1}");

    let (beta_point, s2) = backup(&vault, "beta", &src);
    let b2 = blob_count(&vault);
    let v2 = dir_bytes(&vault);
    assert!(
        s2.contains("(0 unchanged)"),
        "a new item must read the files, not reuse another item's list: {s2}"
    );
    // New: an item record and a point record; the trees are byte-identical to alpha's.
    assert!(
        b2 - b1 <= 2,
        "second item added {} blobs (expected only its 2 records)",
        b2 - b1
    );
    assert!(
        bytes_added(&s2) < first_added * 0.01,
        "second item added too much: {s2}"
    );
    assert!(
        ((v2 - v1) as f64) < v1 as f64 * 0.01,
        "second item grew the vault {v1} -> {v2}"
    );

    // The same files renamed and moved into other directories: only new trees and records.
    let moved = tmp.path().join("moved");
    write(
        &moved.join("x/y/renamed-one.bin"),
        &std::fs::read(src.join("one.bin")).unwrap(),
    );
    write(
        &moved.join("two-again.bin"),
        &std::fs::read(src.join("dir/two.bin")).unwrap(),
    );
    write(
        &moved.join("z/three.txt"),
        &std::fs::read(src.join("dir/three.txt")).unwrap(),
    );
    let (_, s3) = backup(&vault, "gamma", &moved);
    let b3 = blob_count(&vault);
    assert!(
        b3 - b2 <= 2 + 4,
        "renamed copy added {} blobs (records + 4 trees at most)",
        b3 - b2
    );
    assert!(
        bytes_added(&s3) < first_added * 0.01,
        "renamed copy added too much: {s3}"
    );

    // And the shared data restores.
    let out = tmp.path().join("out");
    ok(&["restore", s(&vault), &format!("beta/{beta_point}"), s(&out)]);
    assert_same_tree(&src, &out);
}

// ---------------------------------------------------------------------------------------------
// 2. confidentiality

#[test]
fn confidentiality_no_names_or_content_in_vault_files() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    let tag = random_hex(16);
    let secret_name = format!("secretname-{tag}");
    let secret_dir = format!("secretdir-{tag}");
    let secret_content = format!("unique content string {tag} that must never be visible");
    let secret_target = format!("secret-link-target-{tag}");
    let secret_xattr = format!("secret-xattr-value-{tag}");
    let random = noise(
        256 << 10,
        u64::from_le_bytes(tag.as_bytes()[..8].try_into().unwrap()),
    );
    let text = unique_text(256 << 10, 77);
    write(
        &src.join(&secret_dir).join(&secret_name),
        secret_content.as_bytes(),
    );
    write(&src.join("random.bin"), &random);
    write(&src.join("notes.txt"), &text);
    std::os::unix::fs::symlink(&secret_target, src.join("link")).unwrap();
    sh(&format!(
        "setfattr -n user.secret -v '{secret_xattr}' '{}'",
        src.join("notes.txt").display()
    ));
    init_vault(&vault);
    let (point, _) = backup(&vault, "conf", &src);
    // A second point (and thus a re-read catalog) must not leak either.
    std::fs::write(src.join("notes.txt"), [&text[..], b"appended\n"].concat()).unwrap();
    backup(&vault, "conf", &src);

    // Needles: every 16-byte window of the secret strings, and 16-byte pieces of both files
    // at many offsets.
    let mut needles: HashSet<[u8; 16]> = HashSet::new();
    for secret in [
        &secret_name,
        &secret_dir,
        &secret_content,
        &secret_target,
        &secret_xattr,
    ] {
        for w in secret.as_bytes().windows(16) {
            needles.insert(w.try_into().unwrap());
        }
    }
    for data in [&random, &text] {
        let step = (data.len() - 16) / 300;
        for k in 0..=300 {
            let o = k * step;
            needles.insert(data[o..o + 16].try_into().unwrap());
        }
    }
    let mut files = 0;
    let mut scanned = 0usize;
    for p in walk(&vault) {
        let name = p
            .strip_prefix(&vault)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !name.contains(&tag),
            "vault path {name} contains the secret tag"
        );
        if !std::fs::symlink_metadata(&p).unwrap().is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        files += 1;
        scanned += bytes.len();
        for (off, w) in bytes.windows(16).enumerate() {
            let w: &[u8; 16] = w.try_into().unwrap();
            assert!(
                !needles.contains(w),
                "{name} reveals plaintext at offset {off}: {:?}",
                String::from_utf8_lossy(w)
            );
        }
        // The tag as text, also hex-encoded (catches hex-dumped or JSON-escaped names).
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(&tag), "{name} contains the secret tag");
        assert!(
            !hay.contains(&hex::encode(secret_name.as_bytes())[..32]),
            "{name} contains the hex-encoded secret name"
        );
    }
    assert!(
        files >= 5 && scanned > 256 << 10,
        "scanned only {files} files / {scanned} bytes"
    );
    assert!(
        walk(&vault.join("index")).iter().any(|p| p.is_file()),
        "sled files must have been scanned"
    );

    // Sanity: the vault does hold the data.
    let out = tmp.path().join("out");
    ok(&["restore", s(&vault), &format!("conf/{point}"), s(&out)]);
    assert_eq!(
        std::fs::read(out.join(&secret_dir).join(&secret_name)).unwrap(),
        secret_content.as_bytes()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. corruption

/// 3a: one flipped byte in the middle of the largest pack: `check --read-data` and `restore`
/// name the item, point and damaged path; every other file restores intact; the damaged
/// file is not left with wrong bytes.
#[test]
fn corruption_flipped_byte_is_reported_and_other_files_restore() {
    let (tmp, vault, src, point) = corruption_fixture("web01");
    let (pack, len) = packs_by_size(&vault)[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = (len / 2) as usize;
    bytes[at] ^= 0xFF;
    std::fs::write(&pack, &bytes).unwrap();

    let err = fails(&["check", s(&vault), "--read-data"]);
    let damaged = damaged_paths(&err, "web01", &point);
    // The byte lies in a data chunk unless it hit one of the few-hundred-byte listings; either
    // way the damaged entry must be named.
    assert!(
        !damaged.is_empty(),
        "check --read-data did not name a damaged path:\n{err}"
    );
    assert!(
        err.contains(&pack_hex(&pack)),
        "check does not name the damaged pack:\n{err}"
    );
    for (p, _) in &damaged {
        assert!(
            src.join(p).exists(),
            "check names {p:?}, which is not in the source:\n{err}"
        );
    }
    let affected: Vec<String> = damaged.iter().map(|(p, _)| p.clone()).collect();

    let dest = tmp.path().join("restore");
    let rerr = fails(&["restore", s(&vault), &format!("web01/{point}"), s(&dest)]);
    for (p, _) in &damaged {
        assert!(
            rerr.contains(&format!("web01/{point}:{p}")),
            "restore does not name damaged path {p}:\n{rerr}"
        );
    }
    assert_restore_consistent(&src, &dest, &affected);
    assert!(
        files_under(&src).len() > affected.len(),
        "every file was damaged; nothing to compare"
    );
}

/// 3a (output): with a damaged pack, `check` and `restore` list one `vaultfs: ` line per
/// problem and nothing else: no duplicated log records, no terminal colour codes in a pipe.
#[test]
fn corruption_reports_are_plain_vaultfs_lines() {
    let (tmp, vault, _src, point) = corruption_fixture("plain");
    let (pack, len) = packs_by_size(&vault)[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[(len / 2) as usize] ^= 0x01;
    std::fs::write(&pack, &bytes).unwrap();
    let dest = tmp.path().join("restore");
    for args in [
        vec!["check", s(&vault), "--read-data"],
        vec!["restore", s(&vault), &format!("plain/{point}"), s(&dest)],
    ] {
        let err = fails(&args);
        for line in err.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.starts_with("vaultfs: ") && !line.contains('\x1b'),
                "{args:?}: stray stderr line {line:?} in:\n{err}"
            );
        }
        let lines: Vec<&str> = err.lines().collect();
        let unique: HashSet<&str> = lines.iter().copied().collect();
        assert_eq!(
            lines.len(),
            unique.len(),
            "{args:?}: duplicated stderr lines:\n{err}"
        );
    }
}

/// 3b: a pack missing its last 100 bytes (its trailer and the end of its header; every blob
/// is before the cut): `check` fails naming the truncated pack and says its data is intact, no
/// panic; a restore returns every file identical (issue 11: check tells the truth).
#[test]
fn corruption_truncated_pack_is_reported() {
    let (tmp, vault, src, point) = corruption_fixture("trunc");
    let (pack, len) = packs_by_size(&vault)[0].clone();
    let f = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);
    let hex = pack_hex(&pack);
    for args in [
        vec!["check", s(&vault)],
        vec!["check", s(&vault), "--read-data"],
    ] {
        let err = fails(&args);
        assert!(
            err.contains(&format!("pack {hex} is truncated")),
            "{args:?} does not report the truncated pack:\n{err}"
        );
        assert!(
            err.contains("data intact") && damaged_paths(&err, "trunc", &point).is_empty(),
            "{args:?}: every blob lies before the cut:\n{err}"
        );
    }
    let dest = tmp.path().join("restore");
    ok(&["restore", s(&vault), &format!("trunc/{point}"), s(&dest)]);
    assert_same_tree(&src, &dest);
}

/// 3c: a deleted pack: `check` names the missing pack and the affected paths; `restore`
/// fails cleanly, naming the affected file, and restores everything else.
#[test]
fn corruption_deleted_pack_is_reported_and_restore_fails_cleanly() {
    let (tmp, vault, src, point) = corruption_fixture("gone");
    let (pack, _) = packs_by_size(&vault)[0].clone();
    std::fs::remove_file(&pack).unwrap();
    let hex = pack_hex(&pack);
    let err = fails(&["check", s(&vault)]);
    assert!(
        err.contains(&format!("pack {hex} is missing")),
        "check does not name the missing pack:\n{err}"
    );
    let damaged = damaged_paths(&err, "gone", &point);
    assert!(
        !damaged.is_empty(),
        "check does not name affected paths:\n{err}"
    );
    for (p, _) in &damaged {
        assert!(
            src.join(p).exists(),
            "check names {p:?}, which is not in the source:\n{err}"
        );
    }
    let err2 = fails(&["check", s(&vault), "--read-data"]);
    assert!(
        err2.contains(&format!("pack {hex} is missing")),
        "check --read-data:\n{err2}"
    );

    let dest = tmp.path().join("restore");
    let rerr = fails(&["restore", s(&vault), &format!("gone/{point}"), s(&dest)]);
    for (p, _) in &damaged {
        assert!(
            rerr.contains(&format!("gone/{point}:{p}")),
            "restore does not name damaged path {p}:\n{rerr}"
        );
    }
    let affected: Vec<String> = damaged.iter().map(|(p, _)| p.clone()).collect();
    assert_restore_consistent(&src, &dest, &affected);
}

/// 3d: a garbled sled index: `items`, `points`, `check`, `restore` fail with one clear line
/// pointing at `repair`, never a panic; `repair` then brings everything back.
fn garbled_index_case(mode: &str, pick: impl Fn(&Path) -> bool) {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    write(&src.join("a.txt"), b"alpha\n");
    write(&src.join("d/b.bin"), &noise(300 << 10, 5));
    init_vault(&vault);
    let (point, _) = backup(&vault, "idx", &src);
    backup(&vault, "other", &src);
    let index_files: Vec<PathBuf> = files_under(&vault.join("index"));
    let mut touched = Vec::new();
    for rel in &index_files {
        if pick(rel) {
            let p = vault.join("index").join(rel);
            let len = std::fs::metadata(&p).unwrap().len() as usize;
            std::fs::write(&p, noise(len, 1000 + len as u64)).unwrap();
            touched.push(rel.clone());
        }
    }
    assert!(
        !touched.is_empty(),
        "{mode}: no file to garble in {index_files:?}"
    );
    let dest = tmp.path().join("restore-garbled");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["items", s(&vault)],
        vec!["points", s(&vault), "--json"],
        vec!["check", s(&vault)],
        vec!["restore", s(&vault), "idx", s(&dest)],
    ];
    for args in &cmds {
        let line = failed_one_line(
            &format!("{mode} ({touched:?}): vaultfs {args:?}"),
            &vaultfs(args),
        );
        assert!(
            line.contains("index") && line.contains("repair"),
            "{mode}: {args:?}: error does not point at the index and repair: {line}"
        );
    }
    let rep = ok(&["repair", s(&vault)]);
    assert!(rep.contains("2 items, 2 points"), "{mode}: repair: {rep}");
    ok(&["check", s(&vault), "--read-data"]);
    let dest = tmp.path().join("restore-ok");
    ok(&["restore", s(&vault), &format!("idx/{point}"), s(&dest)]);
    assert_same_tree(&src, &dest);
}

#[test]
fn corruption_garbled_index_all_files_fails_cleanly_and_repair_recovers() {
    garbled_index_case("every index file overwritten with random bytes", |_| true);
}

#[test]
fn corruption_garbled_index_log_fails_cleanly_and_repair_recovers() {
    garbled_index_case(
        "the sled log (index/db) overwritten with random bytes",
        |p| p == Path::new("db"),
    );
}

#[test]
fn corruption_garbled_index_snapshot_fails_cleanly_and_repair_recovers() {
    garbled_index_case(
        "the sled snapshots (index/snap.*) overwritten with random bytes",
        |p| p.to_string_lossy().starts_with("snap."),
    );
}

/// 3e: a vault whose config says a newer format version: every command fails with an error
/// naming it, and the vault is not touched.
#[test]
fn corruption_newer_format_version_is_refused_by_every_command() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    write(&src.join("f.txt"), b"future\n");
    init_vault(&vault);
    let (point, _) = backup(&vault, "ver", &src);
    let cfg_path = vault.join("config");
    let original = std::fs::read(&cfg_path).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let current = vaultfs::format::FORMAT_VERSION;
    assert_eq!(cfg["version"], current, "config: {cfg}");
    // As a newer vaultfs would write it (this build's checksum does not cover its layout).
    cfg["version"] = (current + 1).into();
    let newer = format!("version {}", current + 1);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let before = snapshot(&vault);
    let dest = tmp.path().join("dest");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["items", s(&vault)],
        vec!["items", s(&vault), "--json"],
        vec!["points", s(&vault)],
        vec!["points", s(&vault), "ver"],
        vec!["check", s(&vault)],
        vec!["check", s(&vault), "--read-data"],
        vec!["backup", s(&vault), "ver", s(&src)],
        vec!["backup", s(&vault), "newitem", s(&src)],
        vec!["restore", s(&vault), "ver", s(&dest)],
        vec!["repair", s(&vault)],
        vec!["gc", s(&vault)],
        vec!["settings", s(&vault), "--soft-delete-days", "20"],
        vec!["policy", s(&vault), "ver", "--keep-last", "1"],
        vec!["snapshot", s(&vault), "ver"],
    ];
    for args in &cmds {
        let line = failed_one_line(&format!("vaultfs {args:?}"), &vaultfs(args));
        assert!(
            line.contains(&newer) && line.contains("newer"),
            "{args:?}: error does not mention the newer format version: {line}"
        );
        assert_vault_unchanged(&before, &vault, &format!("{args:?}"));
    }
    assert!(
        !dest.exists(),
        "restore created its destination although it failed"
    );
    // Put the current version back: the vault is intact.
    std::fs::write(&cfg_path, &original).unwrap();
    let out = tmp.path().join("out");
    ok(&["restore", s(&vault), &format!("ver/{point}"), s(&out)]);
    assert_same_tree(&src, &out);
}

// ---------------------------------------------------------------------------------------------
// 4. index loss

#[test]
fn index_loss_repair_rebuilds_every_point() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    // Item "rich": two points; the source of each point is kept as it was.
    let rich1 = tmp.path().join("rich1");
    make_rich_tree(&rich1);
    let (r1, _) = backup(&vault, "rich", &rich1);
    let rich2 = tmp.path().join("rich2");
    copy_tree(&rich1, &rich2);
    write(
        &rich2.join("a/new-file.txt"),
        b"added in the second point\n",
    );
    std::fs::remove_file(rich2.join("with space/file name with spaces")).unwrap();
    let mut lorem = std::fs::read(rich2.join("text/lorem.txt")).unwrap();
    lorem.extend_from_slice(b"one more line\n");
    std::fs::write(rich2.join("text/lorem.txt"), lorem).unwrap();
    let (r2, _) = backup(&vault, "rich", &rich2);
    // Item "docs": two points.
    let docs1 = tmp.path().join("docs1");
    write(&docs1.join("report.txt"), &unique_text(100_000, 9));
    write(&docs1.join("img/photo.raw"), &noise(700 << 10, 10));
    let (d1, _) = backup(&vault, "docs", &docs1);
    let docs2 = tmp.path().join("docs2");
    copy_tree(&docs1, &docs2);
    write(&docs2.join("img/photo2.raw"), &noise(300 << 10, 11));
    std::fs::write(docs2.join("report.txt"), unique_text(120_000, 9)).unwrap();
    let (d2, _) = backup(&vault, "docs", &docs2);

    let points_before: serde_json::Value =
        serde_json::from_str(&ok(&["points", s(&vault), "--json"])).unwrap();
    assert_eq!(points_before.as_array().unwrap().len(), 4);

    std::fs::remove_dir_all(vault.join("index")).unwrap();
    for args in [vec!["items", s(&vault)], vec!["points", s(&vault)]] {
        let line = failed_one_line(&format!("{args:?} without an index"), &vaultfs(&args));
        assert!(
            line.contains("repair"),
            "{args:?}: error does not point at repair: {line}"
        );
    }
    let rep = ok(&["repair", s(&vault)]);
    assert!(rep.contains("2 items, 4 points"), "repair: {rep}");

    let points_after: serde_json::Value =
        serde_json::from_str(&ok(&["points", s(&vault), "--json"])).unwrap();
    let key = |v: &serde_json::Value| {
        let mut rows: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {} {}",
                    p["item"], p["point"], p["created_ns"], p["files"], p["dirs"], p["bytes"]
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(
        key(&points_before),
        key(&points_after),
        "repair lost or changed points"
    );
    let items: serde_json::Value =
        serde_json::from_str(&ok(&["items", s(&vault), "--json"])).unwrap();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs", "rich"]);

    for (item, point, source) in [
        ("rich", &r1, &rich1),
        ("rich", &r2, &rich2),
        ("docs", &d1, &docs1),
        ("docs", &d2, &docs2),
    ] {
        let dest = tmp.path().join(format!("out-{item}-{point}"));
        ok(&["restore", s(&vault), &format!("{item}/{point}"), s(&dest)]);
        assert_same_tree(source, &dest);
    }
    let out = ok(&["check", s(&vault), "--read-data"]);
    assert!(out.contains(": 0 errors"), "check after repair: {out}");
}

// ---------------------------------------------------------------------------------------------
// 5. wrong passphrase

#[test]
fn wrong_passphrase_is_refused_and_vault_unchanged() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let src = tmp.path().join("src");
    write(&src.join("f.txt"), b"content\n");
    write(&src.join("d/g.bin"), &noise(200 << 10, 3));
    init_vault(&vault);
    let (point, _) = backup(&vault, "pw", &src);
    write(&src.join("h.txt"), b"second\n");
    backup(&vault, "pw", &src);
    let before = snapshot(&vault);
    assert!(before.len() > 5);
    let dest = tmp.path().join("dest");
    let wrong_file = tmp.path().join("wrong-pass");
    std::fs::write(&wrong_file, "also wrong\n").unwrap();
    let spec = format!("pw/{point}");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["items", s(&vault)],
        vec!["items", s(&vault), "--json"],
        vec!["points", s(&vault)],
        vec!["points", s(&vault), "pw", "--json"],
        vec!["check", s(&vault)],
        vec!["check", s(&vault), "--read-data"],
        vec!["backup", s(&vault), "pw", s(&src)],
        vec!["backup", s(&vault), "another", s(&src)],
        vec!["restore", s(&vault), &spec, s(&dest)],
        vec!["repair", s(&vault)],
    ];
    for args in &cmds {
        let line = failed_one_line(
            &format!("{args:?} with a wrong passphrase"),
            &run_with(args, Some("wrong")),
        );
        assert!(
            line.contains("passphrase"),
            "{args:?}: error does not mention the passphrase: {line}"
        );
        assert_vault_unchanged(
            &before,
            &vault,
            &format!("{args:?} with a wrong passphrase"),
        );
        let mut with_file = args.clone();
        with_file.extend(["--passphrase-file", s(&wrong_file)]);
        let line = failed_one_line(&format!("{with_file:?}"), &run_with(&with_file, None));
        assert!(
            line.contains("passphrase"),
            "{with_file:?}: error does not mention the passphrase: {line}"
        );
        assert_vault_unchanged(&before, &vault, &format!("{with_file:?}"));
    }
    assert!(!dest.exists(), "a refused restore created its destination");
    // The right passphrase still opens it.
    let out = run_with(&["items", s(&vault)], Some(PASS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pw"));
}

// ---------------------------------------------------------------------------------------------
// 6. exclusive access

/// Kills the child on drop, so a failing test never leaves a backup running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Is a POSIX write lock on the file with inode `ino` held by `pid` (per /proc/locks)?
fn holds_posix_lock(pid: u32, ino: u64) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: POSIX  ADVISORY  WRITE 1234 fd:01:567 0 EOF"
        f.len() >= 6
            && f[1] == "POSIX"
            && f[3] == "WRITE"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(&ino.to_string())
    })
}

#[test]
fn exclusive_access_second_command_names_holder_pid() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    let small = tmp.path().join("small");
    write(&small.join("f.txt"), b"kept\n");
    init_vault(&vault);
    let (point, _) = backup(&vault, "base", &small);

    // A sparse file of 256 GiB: reading it takes minutes, so the backup is seen holding the
    // vault; it is then stopped (SIGSTOP), so it holds it for as long as the test needs.
    let huge = tmp.path().join("huge");
    std::fs::create_dir(&huge).unwrap();
    let f = std::fs::File::create(huge.join("sparse")).unwrap();
    f.set_len(256 << 30).unwrap();
    drop(f);
    let log = std::fs::File::create(tmp.path().join("backup.stderr")).unwrap();
    let child = Command::new(bin())
        .args(["backup", s(&vault), "huge", s(&huge)])
        .env("VAULTFS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start backup");
    let mut child = KillOnDrop(child);
    let pid = child.0.id();
    let ino = std::fs::metadata(vault.join("lock")).unwrap().ino();
    let start = Instant::now();
    while !holds_posix_lock(pid, ino) {
        if let Some(st) = child.0.try_wait().unwrap() {
            panic!(
                "backup ended ({st}) before it was seen holding the lock: {}",
                std::fs::read_to_string(tmp.path().join("backup.stderr")).unwrap()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "backup pid {pid} never took the vault lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);

    let dest = tmp.path().join("dest");
    let spec = format!("base/{point}");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["items", s(&vault)],
        vec!["points", s(&vault)],
        vec!["check", s(&vault)],
        vec!["backup", s(&vault), "base", s(&small)],
        vec!["restore", s(&vault), &spec, s(&dest)],
        vec!["repair", s(&vault)],
    ];
    for args in &cmds {
        let line = failed_one_line(
            &format!("{args:?} while the vault is in use"),
            &vaultfs(args),
        );
        assert!(
            line.contains(&format!("vault is in use by pid {pid}")),
            "{args:?}: {line}"
        );
    }
    assert!(!dest.exists(), "a refused restore created its destination");
    drop(child);

    // The interrupted backup left no damage and no point.
    let out = ok(&["check", s(&vault), "--read-data"]);
    assert!(out.contains(": 0 errors"), "{out}");
    let items: serde_json::Value =
        serde_json::from_str(&ok(&["items", s(&vault), "--json"])).unwrap();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["base"],
        "the killed backup must not have created an item"
    );
    ok(&["restore", s(&vault), &format!("base/{point}"), s(&dest)]);
    assert_same_tree(&small, &dest);
}
