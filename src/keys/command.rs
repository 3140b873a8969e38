//! `--unwrap-command`: an outside program (a key service's client, a hardware module's tool,
//! `openssl pkeyutl`) that holds the RSA private key and unwraps a slot's key for vaultfs.
//!
//! It runs under `sh -c` with the slot's RSA-OAEP ciphertext on stdin and must print the 32
//! unwrapped bytes (raw, or 64 hex digits) on stdout and exit 0. Its stderr is the user's; a
//! prompt it needs goes to /dev/tty (stdin carries the key). It learns which slot and vault it
//! serves from `VAULTFS_SLOT_ID`, `VAULTFS_SLOT_LABEL` and `VAULTFS_RSA_KEY_FINGERPRINT`. Any
//! other exit, or output of another length, is a refusal that names the slot. What it prints is
//! still only a candidate: the slot's AES-GCM wrap must open with it (see `slot`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::slot::SlotName;
use super::{KeyError, rsa};
use crate::format::KeySlot;

/// Most a command may print: 64 hex digits and a line end, or a little more to tell it is wrong.
const MAX_OUTPUT: u64 = 256;

pub fn unwrap(cmd: &str, slot: &KeySlot, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let refused = |why: String| KeyError::CommandRefused {
        slot: SlotName::of(slot),
        why,
    };
    let spki = slot.rsa_public_key.as_deref().unwrap_or_default();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("VAULTFS_SLOT_ID", slot.id.to_string())
        .env("VAULTFS_SLOT_LABEL", &slot.label)
        .env(
            "VAULTFS_RSA_KEY_FINGERPRINT",
            rsa::fingerprint(&hex::decode(spki).unwrap_or_default()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| refused(format!("cannot run it: {e}")))?;
    // A command that exits without reading its input is a refusal, not a broken pipe.
    let _ = child.stdin.take().expect("piped stdin").write_all(wrapped);
    let mut out = Zeroizing::new(Vec::with_capacity(MAX_OUTPUT as usize));
    let read = child
        .stdout
        .take()
        .expect("piped stdout")
        .take(MAX_OUTPUT)
        .read_to_end(&mut out);
    let status = child
        .wait()
        .map_err(|e| refused(format!("waiting for it: {e}")))?;
    if !status.success() {
        return Err(refused(match status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        }));
    }
    read.map_err(|e| refused(format!("reading its output: {e}")))?;
    parse_key(&out).ok_or_else(|| {
        refused(format!(
            "it printed {} bytes, not a 32-byte key (raw or 64 hex digits)",
            out.len()
        ))
    })
}

/// 32 raw bytes, or 64 hex digits with an optional line end.
fn parse_key(out: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    if out.len() == 32 {
        key.copy_from_slice(out);
        return Some(key);
    }
    let text = out.strip_suffix(b"\n").unwrap_or(out);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.len() == 64 {
        hex::decode_to_slice(text, key.as_mut()).ok()?;
        return Some(key);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> KeySlot {
        let mut s = crate::keys::MasterKey::generate()
            .unwrap()
            .wrap_keyfile(4, &[0; 32])
            .unwrap();
        s.label = "hsm".into();
        s
    }

    #[test]
    fn output_forms_and_refusals() {
        let k = unwrap(
            &format!("cat >/dev/null; echo {}", "ab".repeat(32)),
            &slot(),
            b"x",
        )
        .unwrap();
        assert_eq!(*k, [0xab; 32]);
        let raw = unwrap("head -c 32", &slot(), &[5; 40]).unwrap();
        assert_eq!(*raw, [5; 32]);
        let e = unwrap("exit 3", &slot(), b"x").unwrap_err().to_string();
        assert!(
            e.contains("slot 4 (\"hsm\")") && e.contains("exit status 3"),
            "{e}"
        );
        let e = unwrap("echo short", &slot(), b"x").unwrap_err().to_string();
        assert!(e.contains("not a 32-byte key"), "{e}");
    }
}
