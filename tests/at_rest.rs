//! Nothing plaintext at rest (issue 13, acceptance 6): a vault and its staging directory on a
//! loop-mounted ext4 image; marker names and contents rsynced into `incoming/`; the daemon
//! killed with -9 mid-rsync; then the raw bytes of the image (free blocks, the journal, inode
//! tables: everything, not just the files) hold no marker. The same after a clean rsync,
//! snapshot and unmount.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mnt::*;
use common::*;
use rand::Rng;

const BLOCK: usize = 4096;

/// A unique random marker: a common prefix (for the scan) and 26 random letters and digits.
fn marker(rng: &mut impl Rng) -> String {
    let tail: String = (0..26)
        .map(|_| {
            let c = rng.random_range(0..36u8);
            (if c < 10 { b'0' + c } else { b'a' + c - 10 }) as char
        })
        .collect();
    format!("zqmrk{tail}")
}

/// `len` bytes with `mark` at the start of every 4 KiB block (so a scan of the image finds it
/// even when the file's blocks are scattered), noise or (compressible) zeros between.
fn marked(len: usize, mark: &str, noisy: bool, seed: u64) -> Vec<u8> {
    let mut data = if noisy {
        noise(len, seed)
    } else {
        vec![0; len]
    };
    for at in (0..len.saturating_sub(mark.len())).step_by(BLOCK) {
        data[at..at + mark.len()].copy_from_slice(mark.as_bytes());
    }
    data
}

/// Markers in names (a directory, files) and in contents (large noisy, large compressible,
/// small): the source tree and every marker in it.
fn marked_tree(src: &Path, rng: &mut impl Rng) -> Vec<String> {
    let mut markers = Vec::new();
    let dir_mark = marker(rng);
    let dir = src.join(format!("dir-{dir_mark}"));
    fs::create_dir_all(&dir).unwrap();
    markers.push(dir_mark);
    let files = [
        (48 << 20, true),
        (6 << 20, false),
        (3 << 20, true),
        (40 << 10, true),
    ];
    for (i, (len, noisy)) in files.into_iter().enumerate() {
        let (name, content) = (marker(rng), marker(rng));
        fs::write(
            dir.join(format!("f{i}-{name}")),
            marked(len, &content, noisy, i as u64 + 1),
        )
        .unwrap();
        markers.extend([name, content]);
    }
    markers
}

/// A loop-mounted ext4 image, unmounted on drop.
struct Image {
    file: PathBuf,
    dir: PathBuf,
}

impl Image {
    fn new(root: &Path) -> Image {
        let (file, dir) = (root.join("disk.img"), root.join("disk"));
        sh(&format!("truncate -s 768M {}", s(&file)));
        sh(&format!("mkfs.ext4 -q -F {}", s(&file)));
        fs::create_dir_all(&dir).unwrap();
        let img = Image { file, dir };
        img.mount();
        img
    }

    fn mount(&self) {
        sh(&format!("mount -o loop {} {}", s(&self.file), s(&self.dir)));
    }

    fn unmount(&self) {
        sh(&format!("umount {}", s(&self.dir)));
    }

    /// The markers found anywhere in the image's bytes (unmounted, so everything is on it).
    fn scan(&self, markers: &[String]) -> Vec<String> {
        let patterns = self.file.with_extension("markers");
        fs::write(&patterns, markers.join("\n") + "\n").unwrap();
        let out = Command::new("grep")
            .args(["-a", "-o", "-F", "-f", s(&patterns), s(&self.file)])
            .output()
            .unwrap();
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "grep failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The bytes `pid` has written so far (`wchar` of /proc/PID/io).
fn written(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mount_on_image(img: &Image, vault: &Path, mnt: &Path) -> Mount {
    let mut m = Mount::guard(vault, mnt);
    m.args = vec!["--staging-dir".into(), s(&img.dir.join("staging")).into()];
    m.mount();
    m
}

#[test]
fn no_marker_reaches_the_disk_after_kill_9_or_a_clean_unmount() {
    let tmp = tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let mut rng = rand::rng();
    let src = root.join("src");
    let mut markers = marked_tree(&src, &mut rng);
    let item = format!("item{}", marker(&mut rng));
    markers.push(item.clone());

    let img = Image::new(&root);
    fs::create_dir(img.dir.join("staging")).unwrap();
    let vault = img.dir.join("vault");
    init_vault(&vault);
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();

    // The scan can find a marker: one written in plain to the image is found.
    let control = marker(&mut rng);
    fs::write(img.dir.join("control"), marked(64 << 10, &control, true, 9)).unwrap();

    // Kill -9 while rsync is writing into incoming/ (slowed so it is caught midway).
    {
        let mut m = mount_on_image(&img, &vault, &mnt);
        let dest = m.path(&format!("incoming/{item}"));
        fs::create_dir(&dest).unwrap();
        let mut rsync = Command::new("rsync")
            .args(["-a", "--bwlimit=20m", &format!("{}/", s(&src)), s(&dest)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = m.pid();
        let start = written(pid);
        assert!(
            wait_until(Duration::from_secs(60), || written(pid)
                > start + (24 << 20)),
            "the daemon did not stage 24 MB"
        );
        // Staged blocks reach the disk on the kernel's writeback (within 30 s); force it, as a
        // crash a while into a long rsync would find it done. Without that an unlinked file's
        // dirty pages die with it and the test could not fail.
        sh(&format!("sync -f {}", s(&img.dir)));
        assert!(rsync.try_wait().unwrap().is_none(), "rsync finished early");
        // SAFETY: kill(2) of the daemon this test started.
        assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGKILL) }, 0);
        assert!(wait_gone(pid, Duration::from_secs(30)), "survived kill -9");
        let _ = rsync.kill();
        let _ = rsync.wait();
        sh(&format!("umount -l {}", s(&mnt)));
        m.pids.clear();
    }
    img.unmount();
    let seen = img.scan(std::slice::from_ref(&control));
    assert_eq!(seen, [control], "the scan misses a marker written in plain");
    let found = img.scan(&markers);
    assert!(found.is_empty(), "after kill -9, on the image: {found:?}");

    // A clean rsync, snapshot and unmount; the data comes back from the point.
    img.mount();
    {
        let m = mount_on_image(&img, &vault, &mnt);
        let staging = fs::read_dir(img.dir.join("staging")).unwrap().count();
        assert_eq!(staging, 1, "one staging directory, its leftovers gone");
        let dest = m.path(&format!("incoming/{item}"));
        fs::create_dir_all(&dest).unwrap();
        sh(&format!("rsync -a --delete {}/ {}", s(&src), s(&dest)));
        snapshot(&vault, &item);
        assert_same_tree(&src, &m.latest(&item));
        ok(&["umount", s(&mnt)]);
    }
    let log = fs::read_to_string(vault.join("daemon.log")).unwrap();
    img.unmount();
    let found = img.scan(&markers);
    assert!(
        found.is_empty(),
        "after a clean unmount, on the image: {found:?}"
    );
    assert!(!markers.iter().any(|mk| log.contains(mk.as_str())), "{log}");
}

/// The staging directory sits in a shared directory: what another user planted under its
/// name is refused, never followed or taken over.
#[test]
fn a_planted_staging_directory_is_refused_and_left_alone() {
    let f = Fixture::new();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(f.vault.join("config")).unwrap()).unwrap();
    let id = config["vault_id"].as_str().unwrap().to_string();
    let base = f.dir("shared-tmp");
    let planted = base.join(format!("vaultfs-{id}"));
    let victim = f.dir("victim");
    fs::write(victim.join("precious"), b"keep me").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();

    let attempt = |what: &str| {
        let mut m = Mount::guard(&f.vault, &f.mnt);
        m.args = vec!["--staging-dir".into(), s(&base).into()];
        let out = m.try_mount();
        let err = failed_clearly(&["mount", what], &out);
        assert!(err.contains(s(&planted)), "{what}: {err}");
        assert!(!is_mounted(&f.mnt), "{what}");
    };
    // A symlink to someone's directory: not followed (its files stay, its mode too).
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    attempt("symlink");
    assert_eq!(fs::read(victim.join("precious")).unwrap(), b"keep me");
    let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    fs::remove_file(&planted).unwrap();
    // A directory of another user: refused, its content left alone.
    fs::create_dir(&planted).unwrap();
    fs::write(planted.join("theirs"), b"x").unwrap();
    sh(&format!("chown -R 65534:65534 {}", s(&planted)));
    attempt("other owner");
    assert!(planted.join("theirs").exists());
    // Our own, left by a killed daemon: taken, leftovers removed, made 0700.
    sh(&format!("chown -R 0:0 {}", s(&planted)));
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o755)).unwrap();
    let mut m = Mount::guard(&f.vault, &f.mnt);
    m.args = vec!["--staging-dir".into(), s(&base).into()];
    m.mount();
    assert!(!planted.join("theirs").exists());
    let mode = fs::metadata(&planted).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}
