//! Customer-managed RSA keys for key slots: PEM parsing, RSA-OAEP (SHA-256, MGF1-SHA-256, empty
//! label) wrap with a public key and unwrap with a private key.
//!
//! aws-lc-rs does the RSA: its OAEP check is constant-time and its decryption blinded, so a key
//! service's key does not leak through timing (the `rsa` crate is open to the Marvin attack,
//! RUSTSEC-2023-0071, with no fixed release; DESIGN.md §3.2). Only the public key is stored in
//! the vault. The private key is read from a PEM file (PKCS#8 `PRIVATE KEY` or PKCS#1
//! `RSA PRIVATE KEY`); every copy of it, its text and DER, lives in zeroizing buffers.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use zeroize::Zeroizing;

use super::KeyError;

/// Key sizes a slot accepts (aws-lc alone would take up to 8192 bits).
pub const BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// An RSA public key a slot wraps to (SubjectPublicKeyInfo DER).
pub struct PublicKey {
    spki: Vec<u8>,
    key: OaepPublicEncryptingKey,
}

/// A private key that unwraps slots.
pub struct PrivateKey {
    spki: Vec<u8>,
    key: OaepPrivateDecryptingKey,
}

fn bad(why: impl Into<String>) -> KeyError {
    KeyError::BadRsaKey(why.into())
}

fn check_bits(bits: usize) -> Result<(), KeyError> {
    if BITS.contains(&bits) {
        Ok(())
    } else {
        Err(bad(format!(
            "the RSA key has {bits} bits; vaultfs accepts {} to {}",
            BITS.start(),
            BITS.end()
        )))
    }
}

/// The label and DER of one PEM block, both buffers zeroized when dropped.
fn pem(text: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let mut buf = Zeroizing::new(vec![0u8; text.len()]);
    let (label, len) = {
        let (label, der) =
            pem_rfc7468::decode(text, &mut buf).map_err(|e| bad(format!("not PEM: {e}")))?;
        (label.to_owned(), der.len())
    };
    buf.truncate(len);
    Ok((label, buf))
}

/// DER: tag, definite length, body.
fn der(tag: u8, body: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 6));
    out.push(tag);
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// AlgorithmIdentifier { rsaEncryption, NULL }.
const RSA_ALG_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// PKCS#1 RSAPrivateKey → PKCS#8 PrivateKeyInfo (aws-lc-rs reads PKCS#8 only).
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::with_capacity(pkcs1.len() + 32));
    body.extend_from_slice(&[0x02, 0x01, 0x00]);
    body.extend_from_slice(&RSA_ALG_ID);
    body.extend_from_slice(&der(0x04, pkcs1));
    der(0x30, &body)
}

/// PKCS#1 RSAPublicKey → SubjectPublicKeyInfo.
fn pkcs1_pub_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = RSA_ALG_ID.to_vec();
    body.extend_from_slice(&der(0x03, &bits));
    der(0x30, &body).to_vec()
}

impl PublicKey {
    /// Parse a PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyError> {
        let (label, der) = pem(text)?;
        let spki = match label.as_str() {
            "PUBLIC KEY" => der.to_vec(),
            "RSA PUBLIC KEY" => pkcs1_pub_to_spki(&der),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                return Err(bad(
                    "this is a private key; give the public key (openssl pkey -pubout)",
                ));
            }
            other => return Err(bad(format!("expected an RSA public key, found {other:?}"))),
        };
        Self::from_spki(&spki)
    }

    /// A public key as stored in a slot (SubjectPublicKeyInfo DER).
    pub fn from_spki(spki: &[u8]) -> Result<PublicKey, KeyError> {
        let key = PublicEncryptingKey::from_der(spki)
            .map_err(|e| bad(format!("not an RSA public key: {e}")))?;
        check_bits(key.key_size_bits())?;
        let key = OaepPublicEncryptingKey::new(key).map_err(|e| bad(e.to_string()))?;
        Ok(PublicKey {
            spki: spki.to_vec(),
            key,
        })
    }

    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    pub fn bits(&self) -> usize {
        self.key.key_size_bits()
    }

    /// RSA-OAEP-SHA256 of 32 secret bytes (empty label).
    pub fn wrap(&self, secret: &[u8; 32]) -> Result<Vec<u8>, KeyError> {
        let mut out = vec![0u8; self.key.ciphertext_size()];
        let n = self
            .key
            .encrypt(&OAEP_SHA256_MGF1SHA256, secret, &mut out, None)
            .map_err(|e| bad(format!("RSA-OAEP encryption failed: {e}")))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

impl PrivateKey {
    /// Parse an unencrypted PEM private key (PKCS#8 or PKCS#1).
    pub fn from_pem(text: &[u8]) -> Result<PrivateKey, KeyError> {
        let (label, der) = pem(text)?;
        let pkcs8 = match label.as_str() {
            "PRIVATE KEY" => der,
            "RSA PRIVATE KEY" => pkcs1_to_pkcs8(&der),
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err(bad(
                    "this is a public key; opening the vault needs the private key",
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(bad(
                    "encrypted private keys are not read; decrypt it to a private file, or use \
                     --unwrap-command with openssl pkeyutl",
                ));
            }
            other => return Err(bad(format!("expected an RSA private key, found {other:?}"))),
        };
        let key = PrivateDecryptingKey::from_pkcs8(&pkcs8)
            .map_err(|e| bad(format!("not an RSA private key: {e}")))?;
        Self::from_key(key)
    }

    /// Wrap an aws-lc key (tests generate keys in process).
    pub fn from_key(key: PrivateDecryptingKey) -> Result<PrivateKey, KeyError> {
        check_bits(key.key_size_bits())?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|e| bad(e.to_string()))?
            .as_ref()
            .to_vec();
        let key = OaepPrivateDecryptingKey::new(key).map_err(|e| bad(e.to_string()))?;
        Ok(PrivateKey { spki, key })
    }

    /// The public half, as a slot stores it.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Undo [`PublicKey::wrap`]; `None` if the bytes do not decrypt to 32 bytes under this key.
    pub fn unwrap(&self, wrapped: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new(vec![0u8; self.key.min_output_size()]);
        let plain = self
            .key
            .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut out, None)
            .ok()?;
        let key: [u8; 32] = plain.try_into().ok()?;
        Some(Zeroizing::new(key))
    }
}

/// Short fingerprint of a public key: the first 8 bytes of SHA-256 of its SPKI, hex, as
/// `openssl pkey -pubin -outform DER | sha256sum` prints it (first 16 digits).
pub fn fingerprint(spki: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    hex::encode(&d.as_ref()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::KeySize;

    #[test]
    fn wrap_unwrap_and_wrong_key() {
        let a = PrivateKey::from_key(PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap())
            .unwrap();
        let b = PrivateKey::from_key(PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap())
            .unwrap();
        let public = PublicKey::from_spki(a.spki()).unwrap();
        assert_eq!(public.bits(), 2048);
        let secret = [7u8; 32];
        let wrapped = public.wrap(&secret).unwrap();
        assert_eq!(*a.unwrap(&wrapped).unwrap(), secret);
        assert!(b.unwrap(&wrapped).is_none());
        let mut flipped = wrapped.clone();
        flipped[5] ^= 1;
        assert!(a.unwrap(&flipped).is_none());
    }

    #[test]
    fn pem_errors_are_messages() {
        assert!(matches!(
            PublicKey::from_pem(b"hello"),
            Err(KeyError::BadRsaKey(_))
        ));
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(PrivateKey::from_pem(pem.as_bytes()).is_err());
    }
}
