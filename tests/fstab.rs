//! `mount -t fuse.vaultfs VAULT MNT -o passphrase_file=F,allow_other`: mount(8) runs the
//! binary as `/sbin/mount.fuse.vaultfs` (a link, as the README installs it), the vault mounts,
//! and `umount` unmounts it and ends the daemon.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::mnt::*;
use common::*;

const HELPER: &str = "/sbin/mount.fuse.vaultfs";

/// The helper link for the test's life (left alone if something else is installed there).
struct Helper(Option<PathBuf>);

impl Helper {
    fn install() -> Helper {
        match fs::symlink_metadata(HELPER) {
            Ok(_) => Helper(None),
            Err(_) => {
                std::os::unix::fs::symlink(bin(), HELPER).unwrap();
                Helper(Some(PathBuf::from(HELPER)))
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

#[test]
fn mount_t_fuse_vaultfs_mounts_with_a_passphrase_file_and_umount_unmounts() {
    let f = Fixture::new();
    fs::create_dir_all(&f.src).unwrap();
    fs::write(f.src.join("hello"), "through fstab").unwrap();
    let point = backup(&f.vault, "web", &f.src);
    let pass = f.root.join("pass");
    fs::write(&pass, format!("{PASS}\n")).unwrap();
    let _helper = Helper::install();
    let _guard = Mount::guard(&f.vault, &f.mnt);

    let opts = format!("rw,passphrase_file={},allow_other,noatime", s(&pass));
    let out = std::process::Command::new("mount")
        .args(["-t", "fuse.vaultfs", s(&f.vault), s(&f.mnt), "-o", &opts])
        .env_remove("VAULTFS_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount -t fuse.vaultfs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&f.mnt));
    assert_eq!(
        fs::read(f.mnt.join(format!("points/web/{point}/hello"))).unwrap(),
        b"through fstab"
    );
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts.lines().find(|l| l.contains(s(&f.mnt))).unwrap();
    assert!(line.contains("allow_other"), "{line}");

    // A bad option is refused with one line, before anything is mounted.
    let other = f.dir("other");
    let out = std::process::Command::new("mount")
        .args([
            "-t",
            "fuse.vaultfs",
            s(&f.vault),
            s(&other),
            "-o",
            "bogus_option",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_option"));
    assert!(!is_mounted(&other));

    sh(&format!("umount '{}'", s(&f.mnt)));
    assert!(!is_mounted(&f.mnt));
    // The daemon let go of the vault.
    assert!(
        wait_until(Duration::from_secs(10), || vaultfs(&["items", s(&f.vault)])
            .status
            .success()),
        "the daemon still holds the vault after umount"
    );
}
