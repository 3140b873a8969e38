//! `mount -t fuse.vaultfs VAULT MNT -o OPTIONS` and fstab lines: mount(8) runs
//! `/sbin/mount.fuse.vaultfs VAULT MNT [-sfnv] -o OPTIONS`; installed as a link to this binary
//! under that name, the arguments become `vaultfs [KEY OPTIONS] mount VAULT MNT [FLAGS]`.
//!
//! Options: `passphrase_file=F`, `key_file=F`, `rsa_key=PEM`, `allow_other`, `nonempty`,
//! `replica`, `cache_size=SIZE`, `threads=N`, `staging_dir=DIR`, `lock_wait=DURATION`; the
//! generic ones mount(8) and systemd pass on (`rw`, `defaults`, `auto`, `noauto`, `user`,
//! `nofail`, `_netdev`, `nosuid`, `nodev`, `noexec`, `noatime`, `x-systemd.*`, ...) are taken
//! and ignored (vaultfs mounts nosuid, nodev and noatime itself).

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// Names this binary answers to as a mount helper.
const HELPER_NAMES: [&str; 2] = ["mount.fuse.vaultfs", "mount.vaultfs"];

/// Options mount(8), fstab and systemd add that mean nothing more here.
const IGNORED: [&str; 18] = [
    "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "nofail", "_netdev", "suid",
    "nosuid", "dev", "nodev", "exec", "noexec", "atime", "noatime", "relatime",
];

/// The `vaultfs` arguments for a mount-helper invocation, or `None` if this binary was not
/// started as one; `Some(Err)` names a bad option.
pub fn helper_args(argv: &[OsString]) -> Option<Result<Vec<OsString>, String>> {
    let name = Path::new(argv.first()?).file_name()?.to_str()?;
    if !HELPER_NAMES.contains(&name) {
        return None;
    }
    Some(translate(&argv[1..]))
}

fn translate(args: &[OsString]) -> Result<Vec<OsString>, String> {
    let (mut positional, mut options) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => options.push(it.next().ok_or("-o needs options")?.clone()),
            Some(o) if o.starts_with("-o") => options.push(OsString::from(&o[2..])),
            // sloppy, no mtab, verbose: nothing to do; fake: do nothing at all.
            Some("-s" | "-n" | "-v") => {}
            Some("-f") => return Ok(Vec::new()),
            Some(o) if o.starts_with('-') => return Err(format!("unknown flag {o}")),
            _ => positional.push(a.clone()),
        }
    }
    let [vault, mnt] = positional.as_slice() else {
        return Err("usage: mount.fuse.vaultfs VAULT MOUNTPOINT [-o OPTIONS]".into());
    };
    let (mut global, mut flags) = (Vec::<OsString>::new(), Vec::<OsString>::new());
    for opts in &options {
        let opts = opts.to_str().ok_or("options must be UTF-8")?;
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            let with = |flag: &str| -> Result<[OsString; 2], String> {
                let v = value.ok_or(format!("option {key} needs a value ({key}=...)"))?;
                Ok([flag.into(), v.into()])
            };
            match key {
                "passphrase_file" => global.extend(with("--passphrase-file")?),
                "key_file" => global.extend(with("--key-file")?),
                "rsa_key" => global.extend(with("--rsa-key")?),
                "lock_wait" => global.extend(with("--lock-wait")?),
                "cache_size" => flags.extend(with("--cache-size")?),
                "threads" => flags.extend(with("--threads")?),
                "io_uring" => flags.extend(with("--io-uring")?),
                "staging_dir" => flags.extend(with("--staging-dir")?),
                "allow_other" => flags.push("--allow-other".into()),
                "nonempty" => flags.push("--nonempty".into()),
                "replica" => global.push("--replica".into()),
                k if IGNORED.contains(&k) || k.starts_with("x-") || k.starts_with("comment=") => {}
                k => return Err(format!("unknown mount option {k:?}")),
            }
        }
    }
    let mut out: Vec<OsString> = vec!["vaultfs".into()];
    out.extend(global);
    out.extend([OsStr::new("mount").into(), vault.clone(), mnt.clone()]);
    out.extend(flags);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn mount_options_become_vaultfs_arguments() {
        let got = helper_args(&args(&[
            "/sbin/mount.fuse.vaultfs",
            "/srv/vault",
            "/mnt/v",
            "-o",
            "rw,passphrase_file=/etc/v.pass,allow_other,noauto,x-systemd.automount,cache_size=64M,io_uring=on",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            args(&[
                "vaultfs",
                "--passphrase-file",
                "/etc/v.pass",
                "mount",
                "/srv/vault",
                "/mnt/v",
                "--allow-other",
                "--cache-size",
                "64M",
                "--io-uring",
                "on",
            ])
        );
        assert!(helper_args(&args(&["vaultfs", "mount"])).is_none());
        let bad = helper_args(&args(&["mount.vaultfs", "v", "m", "-o", "bogus"])).unwrap();
        assert!(bad.unwrap_err().contains("bogus"));
        let fake = helper_args(&args(&["mount.vaultfs", "v", "m", "-f"])).unwrap();
        assert!(fake.unwrap().is_empty(), "-f mounts nothing");
    }
}
