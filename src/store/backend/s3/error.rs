//! Errors of an object store, sorted so a user can act on them: the store cannot be reached,
//! refuses the credentials, has no such bucket, or answered something else. One line each,
//! naming the endpoint or the object.

use std::fmt;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// No answer (connection refused or reset, timeout, name not found), after retries.
    #[error("cannot reach the object store at {endpoint}: {why} (tried for {secs} s)")]
    Unreachable {
        endpoint: String,
        why: String,
        secs: u64,
    },
    /// 403: wrong or missing credentials, or a policy that forbids the call.
    #[error(
        "the object store at {endpoint} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    Denied { endpoint: String, code: String },
    #[error("bucket {bucket:?} does not exist at {endpoint}")]
    NoBucket { endpoint: String, bucket: String },
    /// Any other answer that is not success, after retries for the transient ones.
    #[error("{op} {object}: the object store answered {status} {code}: {message}")]
    Status {
        op: &'static str,
        object: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The answer could not be understood (a listing that does not parse, a short body).
    #[error("{op} {object}: {why}")]
    BadResponse {
        op: &'static str,
        object: String,
        why: String,
    },
    /// How to reach the store is not set up (credentials, endpoint, plain HTTP off loopback).
    #[error("{0}")]
    Setup(String),
    /// This process's lock on the vault was taken over by another writer (it had stopped
    /// renewing it past its expiry): nothing more is written.
    #[error("the vault's lock was taken over by {0}; this process stopped writing")]
    LockLost(String),
}

/// What the S3 error body says (`<Code>`, `<Message>`), best effort.
#[derive(Debug, Default, Clone)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> ErrorBody {
        let text = String::from_utf8_lossy(body);
        ErrorBody {
            code: tag(&text, "Code").unwrap_or_default(),
            message: tag(&text, "Message").unwrap_or_default(),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// The text of the first `<name>…</name>` in an XML document (S3's error bodies are flat).
pub fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_string())
}
