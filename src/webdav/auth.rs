//! Basic authentication from an htpasswd file of bcrypt lines (`htpasswd -B -c FILE USER`, from
//! apache2-utils): `USER:$2y$COST$...`, one per line, `#` comments and blank lines skipped.
//! Other htpasswd formats (MD5 `$apr1$`, SHA-1 `{SHA}`, crypt, plain text) are refused when the
//! file is read: they are weak or unsalted.
//!
//! bcrypt is slow on purpose (a few ms at htpasswd's default cost 5, far more at cost 10+), and
//! a WebDAV client sends the password with every request: after a first successful check, the
//! pair (user, password) is remembered as a keyed blake3 hash (the key random per process) and
//! later requests compare hashes in constant time. An unknown user costs one bcrypt check of a
//! dummy hash, so timing does not tell which users exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use parking_lot::Mutex;

/// A password file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the password file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("password file {}, line {line}: {why}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("password file {} has no users", path.display())]
    Empty { path: PathBuf },
}

/// A bcrypt hash no password matches, checked for unknown users (cost 5, like htpasswd -B).
const DUMMY_HASH: &str = "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

/// The users of a password file.
pub struct Users {
    hashes: HashMap<String, String>,
    /// (user → keyed hash of the password) of passwords already checked against bcrypt.
    checked: Mutex<HashMap<String, blake3::Hash>>,
    key: [u8; 32],
}

impl Users {
    pub fn read(path: &Path) -> Result<Users, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |line: usize, why: String| AuthError::Line {
            path: path.to_path_buf(),
            line,
            why,
        };
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(bad(i + 1, "expected USER:HASH".into()));
            };
            if user.is_empty() {
                return Err(bad(i + 1, "empty user name".into()));
            }
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p))
                || hash.parse::<bcrypt::HashParts>().is_err()
            {
                return Err(bad(
                    i + 1,
                    format!(
                        "user {user}: only bcrypt hashes are accepted (make them with htpasswd -B)"
                    ),
                ));
            }
            if hashes.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(bad(i + 1, format!("user {user} appears twice")));
            }
        }
        if hashes.is_empty() {
            return Err(AuthError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the system's random source");
        Ok(Users {
            hashes,
            checked: Mutex::new(HashMap::new()),
            key,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    /// The user an `Authorization` header value proves, if it does (blocking: bcrypt).
    pub fn check(&self, header: &[u8]) -> Option<String> {
        let (user, password) = basic(header)?;
        let mine = self.keyed(&user, &password);
        if self.checked.lock().get(&user) == Some(&mine) {
            return Some(user);
        }
        let ok = match self.hashes.get(&user) {
            Some(hash) => bcrypt::verify(&password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&password, DUMMY_HASH);
                false
            }
        };
        if !ok {
            return None;
        }
        self.checked.lock().insert(user.clone(), mine);
        Some(user)
    }

    fn keyed(&self, user: &str, password: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password);
        h.finalize()
    }
}

/// User and password of a `Basic` credential (RFC 7617; the scheme name in any case).
fn basic(header: &[u8]) -> Option<(String, Vec<u8>)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}
