//! One S3 bucket reached over HTTP(S), blocking: requests signed by `rusty-s3` (sans-IO SigV4
//! presigned URLs), sent by `ureq` (rustls on aws-lc-rs). No async runtime: the store's callers
//! are rayon and FUSE threads that block anyway.
//!
//! Every call is retried with backoff while the answer is transient (no connection, a reset,
//! 5xx, 429) for up to a retry budget (20 s by default: a SeaweedFS restart answers 500 for
//! about 4 s), then fails with one clear [`RemoteError`]. Conditional puts are the exception:
//! after a lost answer the caller must read the object back (see `lock`), so they are sent once.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use super::error::{ErrorBody, RemoteError};

/// How long a presigned request stays valid (it is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(600);
const RETRY_BUDGET: Duration = Duration::from_secs(20);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The largest body read into memory (a pack is at most `MAX_OBJECT_BYTES`).
const BODY_LIMIT: u64 = 2 << 30;
/// Keys per page of a listing.
const LIST_PAGE: usize = 1000;

/// Where a bucket is and how to sign for it.
#[derive(Clone)]
pub struct Endpoint {
    pub url: Url,
    pub region: String,
    pub bucket: String,
    pub credentials: Credentials,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Endpoint({} {} {})", self.url, self.region, self.bucket)
    }
}

/// True for 127.0.0.0/8, ::1 and `localhost`: the only hosts plain HTTP may go to.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The condition of a put.
#[derive(Debug, Clone)]
pub enum Cond {
    None,
    /// `If-None-Match: *`: only if no object has the name.
    CreateOnly,
    /// `If-Match: <etag>`: only if the object is still that version.
    IfMatch(String),
}

/// An answer the caller handles itself: success, or 404/412/416.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    pub length: Option<u64>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A listed object: name (after the bucket) and size.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub size: u64,
}

/// Requests made, by kind (tests assert counts; the bench reports them).
#[derive(Debug, Default)]
pub struct Counts {
    pub get: AtomicU64,
    pub get_bytes: AtomicU64,
    pub put: AtomicU64,
    pub put_bytes: AtomicU64,
    pub head: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
}

pub struct Client {
    bucket: Bucket,
    endpoint: Endpoint,
    agent: ureq::Agent,
    retry_budget: Duration,
    pub counts: Arc<Counts>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Put,
    Head,
    Delete,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Result<Client, RemoteError> {
        let url = &endpoint.url;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(url) => {}
            "http" => {
                return Err(RemoteError::Setup(format!(
                    "plain http is allowed only to a loopback endpoint, not {url}; use https"
                )));
            }
            s => {
                return Err(RemoteError::Setup(format!(
                    "endpoint {url}: unsupported scheme {s:?}"
                )));
            }
        }
        // AWS itself takes bucket names in the host; other endpoints (a local server, most
        // S3-compatible stores) take them in the path.
        let style = if url
            .host_str()
            .is_some_and(|h| h.ends_with(".amazonaws.com"))
        {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            url.clone(),
            style,
            endpoint.bucket.clone(),
            endpoint.region.clone(),
        )
        .map_err(|e| RemoteError::Setup(format!("bucket {:?}: {e}", endpoint.bucket)))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .max_idle_connections_per_host(16)
            .user_agent(concat!("vaultfs/", env!("CARGO_PKG_VERSION")));
        if is_loopback(url) {
            // A proxy from the environment cannot reach this machine's loopback.
            config = config.proxy(None);
        }
        let retry_budget = std::env::var("VAULTFS_S3_RETRY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(RETRY_BUDGET);
        Ok(Client {
            bucket,
            endpoint,
            agent: config.build().into(),
            retry_budget,
            counts: Arc::new(Counts::default()),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn creds(&self) -> Option<&Credentials> {
        Some(&self.endpoint.credentials)
    }

    /// GET an object, or `len` bytes of it from `offset`. 404 and 416 come back as answers.
    pub fn get(&self, name: &str, range: Option<(u64, u64)>) -> Result<Answer, RemoteError> {
        let url = self.bucket.get_object(self.creds(), name).sign(SIGNED_FOR);
        let range = range.map(|(o, l)| format!("bytes={o}-{}", o + l.max(1) - 1));
        let headers: Vec<(&str, String)> = range.map(|r| ("range", r)).into_iter().collect();
        let a = self.send("GET", name, Verb::Get, url, &headers, None, true)?;
        self.counts.get.fetch_add(1, Ordering::Relaxed);
        self.counts
            .get_bytes
            .fetch_add(a.body.len() as u64, Ordering::Relaxed);
        Ok(a)
    }

    pub fn head(&self, name: &str) -> Result<Answer, RemoteError> {
        let url = self.bucket.head_object(self.creds(), name).sign(SIGNED_FOR);
        self.counts.head.fetch_add(1, Ordering::Relaxed);
        self.send("HEAD", name, Verb::Head, url, &[], None, true)
    }

    /// PUT a whole object. With a condition, a 412 comes back as an answer and the request
    /// is not retried after a transport failure (the caller reads the object back).
    pub fn put(&self, name: &str, body: &[u8], cond: Cond) -> Result<Answer, RemoteError> {
        let url = self.bucket.put_object(self.creds(), name).sign(SIGNED_FOR);
        let headers: Vec<(&str, String)> = match &cond {
            Cond::None => vec![],
            Cond::CreateOnly => vec![("if-none-match", "*".into())],
            Cond::IfMatch(etag) => vec![("if-match", etag.clone())],
        };
        let retry = matches!(cond, Cond::None);
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        self.counts
            .put_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        self.send("PUT", name, Verb::Put, url, &headers, Some(body), retry)
    }

    pub fn delete(&self, name: &str) -> Result<Answer, RemoteError> {
        let url = self
            .bucket
            .delete_object(self.creds(), name)
            .sign(SIGNED_FOR);
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        self.send("DELETE", name, Verb::Delete, url, &[], None, true)
    }

    /// Every object whose name starts with `prefix`, following continuation tokens.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, RemoteError> {
        self.list_up_to(prefix, usize::MAX)
    }

    /// At most about `max` objects under `prefix` (whole pages).
    pub fn list_up_to(&self, prefix: &str, max: usize) -> Result<Vec<Listed>, RemoteError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.creds());
            action.with_prefix(prefix);
            action.with_max_keys(LIST_PAGE.min(max.max(1)));
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            self.counts.list.fetch_add(1, Ordering::Relaxed);
            let a = self.send("LIST", prefix, Verb::Get, url, &[], None, true)?;
            if a.status == 404 {
                return Err(self.not_found_error("LIST", prefix, &a));
            }
            let text = String::from_utf8_lossy(&a.body);
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
                RemoteError::BadResponse {
                    op: "LIST",
                    object: prefix.to_string(),
                    why: format!("the listing does not parse: {e}"),
                }
            })?;
            out.extend(page.contents.into_iter().map(|c| Listed {
                name: c.key,
                size: c.size,
            }));
            match page.next_continuation_token {
                Some(t) if out.len() < max => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// The error for a 404 that is not an answer the caller expects: a missing bucket is
    /// named as such.
    pub fn not_found_error(&self, op: &'static str, name: &str, a: &Answer) -> RemoteError {
        let body = ErrorBody::parse(&a.body);
        if body.code == "NoSuchBucket" {
            return self.no_bucket();
        }
        RemoteError::Status {
            op,
            object: self.object_name(name),
            status: a.status,
            code: body.code,
            message: body.message,
        }
    }

    pub fn no_bucket(&self) -> RemoteError {
        RemoteError::NoBucket {
            endpoint: self.endpoint.url.to_string(),
            bucket: self.endpoint.bucket.clone(),
        }
    }

    fn object_name(&self, name: &str) -> String {
        format!("s3://{}/{name}", self.endpoint.bucket)
    }

    /// Send one request, retrying transient failures within the budget.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        op: &'static str,
        name: &str,
        verb: Verb,
        url: Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        retry: bool,
    ) -> Result<Answer, RemoteError> {
        let start = Instant::now();
        let mut backoff = BACKOFF_FIRST;
        loop {
            let last_chance = !retry || start.elapsed() + backoff > self.retry_budget;
            match self.send_once(verb, &url, headers, body) {
                Ok(a) => {
                    let transient = a.status >= 500 || a.status == 429;
                    if transient && !last_chance {
                        tracing::debug!("{op} {name}: {} (retrying)", a.status);
                    } else {
                        return self.sort(op, name, verb, a);
                    }
                }
                Err(why) => {
                    if last_chance {
                        return Err(RemoteError::Unreachable {
                            endpoint: self.endpoint.url.to_string(),
                            why,
                            secs: start.elapsed().as_secs(),
                        });
                    }
                    tracing::debug!("{op} {name}: {why} (retrying)");
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Success and the statuses callers handle (304, 404, 412, 416) are answers; the rest errors.
    fn sort(
        &self,
        op: &'static str,
        name: &str,
        verb: Verb,
        a: Answer,
    ) -> Result<Answer, RemoteError> {
        if a.ok() || matches!(a.status, 304 | 404 | 412 | 416) {
            if a.status == 404 && verb == Verb::Head {
                // HEAD has no body to tell a missing bucket from a missing key.
                return Ok(a);
            }
            if a.status == 404 && ErrorBody::parse(&a.body).code == "NoSuchBucket" {
                return Err(self.no_bucket());
            }
            return Ok(a);
        }
        let body = ErrorBody::parse(&a.body);
        if a.status == 403 {
            return Err(RemoteError::Denied {
                endpoint: self.endpoint.url.to_string(),
                code: if body.code.is_empty() {
                    "403".into()
                } else {
                    body.code
                },
            });
        }
        Err(RemoteError::Status {
            op,
            object: self.object_name(name),
            status: a.status,
            code: body.code,
            message: body.message,
        })
    }

    /// One HTTP exchange; `Err` is a transport failure (retryable).
    fn send_once(
        &self,
        verb: Verb,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Answer, String> {
        let result = match verb {
            Verb::Get => {
                let mut r = self.agent.get(url.as_str());
                for (k, v) in headers {
                    r = r.header(*k, v);
                }
                r.call()
            }
            Verb::Head => self.agent.head(url.as_str()).call(),
            Verb::Delete => self.agent.delete(url.as_str()).call(),
            Verb::Put => {
                let mut r = self.agent.put(url.as_str());
                for (k, v) in headers {
                    r = r.header(*k, v);
                }
                r.send(body.unwrap_or(&[]))
            }
        };
        let mut resp = result.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let length = header("content-length").and_then(|v| v.parse().ok());
        let body = if verb == Verb::Head {
            Vec::new()
        } else {
            resp.body_mut()
                .with_config()
                .limit(BODY_LIMIT)
                .read_to_vec()
                .map_err(|e| format!("reading the answer: {e}"))?
        };
        Ok(Answer {
            status,
            etag,
            length,
            body,
        })
    }
}
