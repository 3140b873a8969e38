//! The guard key (multi-user authorization, DESIGN.md §13): an ed25519 key pair whose private
//! half a second person holds. An approval is that person's signature over one operation on one
//! vault, with an expiry and a random id; the vault accepts each id once.
//!
//! Files: the private key is PKCS#8 DER (what aws-lc-rs makes and reads), written 0600; the
//! public key is 64 hex digits and a newline (32 raw bytes are read too). An approval is one
//! JSON object: `vault_id`, `op`, `expires_ns`, `id`, `signature` (hex), signed over
//! "vaultfs guard approval v1\0" ‖ vault_id ‖ "\0" ‖ op ‖ "\0" ‖ expires_ns i64 LE ‖ id.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{KeyError, random_bytes};

const APPROVAL_CONTEXT: &[u8] = b"vaultfs guard approval v1\0";

/// A new key pair: (PKCS#8 DER of the private key, the 32-byte public key).
pub fn generate() -> Result<(Zeroizing<Vec<u8>>, [u8; 32]), KeyError> {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| KeyError::BadKeyFile("cannot generate an ed25519 key".into()))?;
    let der = Zeroizing::new(doc.as_ref().to_vec());
    let pair = Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|e| KeyError::BadKeyFile(format!("generated key rejected: {e}")))?;
    let public = pair
        .public_key()
        .as_ref()
        .try_into()
        .map_err(|_| KeyError::BadKeyFile("ed25519 public key length".into()))?;
    Ok((der, public))
}

/// A public key file's bytes: 64 hex digits (with or without a newline) or 32 raw bytes.
pub fn parse_public(bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    let bad = || {
        KeyError::BadKeyFile(
            "not a guard public key: expected 64 hex digits (from `vaultfs guard keygen`)".into(),
        )
    };
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(t) = text
        && t.len() == 64
        && let Ok(v) = hex::decode(t)
    {
        return v.try_into().map_err(|_| bad());
    }
    bytes.try_into().map_err(|_| bad())
}

/// An approval as written to its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub vault_id: String,
    pub op: String,
    pub expires_ns: i64,
    /// 16 random bytes, hex: what the vault remembers once the approval is used.
    pub id: String,
    pub signature: String,
}

fn message(vault_id: &str, op: &str, expires_ns: i64, id: &str) -> Vec<u8> {
    let mut m = APPROVAL_CONTEXT.to_vec();
    m.extend_from_slice(vault_id.as_bytes());
    m.push(0);
    m.extend_from_slice(op.as_bytes());
    m.push(0);
    m.extend_from_slice(&expires_ns.to_le_bytes());
    m.extend_from_slice(id.as_bytes());
    m
}

/// Sign an approval of `op` on vault `vault_id` until `expires_ns` with the PKCS#8 key `der`.
pub fn approve(
    der: &[u8],
    vault_id: &str,
    op: &str,
    expires_ns: i64,
) -> Result<Approval, KeyError> {
    let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| {
        KeyError::BadKeyFile(format!(
            "not a guard private key (PKCS#8 ed25519 from `vaultfs guard keygen`): {e}"
        ))
    })?;
    let mut raw = [0u8; 16];
    random_bytes(&mut raw)?;
    let id = hex::encode(raw);
    let sig = pair.sign(&message(vault_id, op, expires_ns, &id));
    Ok(Approval {
        vault_id: vault_id.into(),
        op: op.into(),
        expires_ns,
        id,
        signature: hex::encode(sig.as_ref()),
    })
}

impl Approval {
    /// Parse an approval file; one line saying what is wrong otherwise.
    pub fn parse(bytes: &[u8]) -> Result<Approval, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a guard approval: {e}"))
    }

    /// Whether `public` signed exactly this approval.
    pub fn signed_by(&self, public: &[u8; 32]) -> bool {
        let Ok(sig) = hex::decode(&self.signature) else {
            return false;
        };
        let m = message(&self.vault_id, &self.op, self.expires_ns, &self.id);
        UnparsedPublicKey::new(&ED25519, public)
            .verify(&m, &sig)
            .is_ok()
    }
}
