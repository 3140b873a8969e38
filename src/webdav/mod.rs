//! The WebDAV door (issue 18): the read-only part of the view (`points/`, `versions/`) served
//! over HTTP(S) to WebDAV clients (rclone, davfs2, cadaver, file managers), for machines
//! without FUSE. Another thin door over [`crate::view::View`], beside the FUSE one: the tree is
//! the view's, this module only translates (`tree.rs` paths to inodes, `fs.rs` dav-server's
//! traits, `auth.rs` the password file).
//!
//! Threads (DESIGN.md §16): dav-server and hyper are async, so a tokio runtime lives here and
//! nowhere else: two workers accept connections, speak HTTP and TLS; every call into the view
//! (lookups, listings, reads, bcrypt checks) runs on tokio's blocking pool, at most
//! `Options::threads` at once, since the view is synchronous and may load trees and chunks.

mod auth;
mod fs;
mod tree;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dav_server::DavHandler;
use dav_server::DavMethodSet;
use dav_server::body::Body;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use auth::{AuthError, Users};

use crate::view::{Caller, View};

/// Bytes dav-server asks the view for per read of a GET (the view's reads go up to 1 MiB).
const READ_BUF_BYTES: usize = 1 << 20;

/// Why the door could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebdavError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("TLS {what} {}: {why}", path.display())]
    Tls {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the WebDAV server: {0}")]
    Runtime(std::io::Error),
}

/// Who may come in, and as whom the view sees them.
pub enum Login {
    /// No password file: every client is this caller (loopback only, see `cmd`).
    Anyone(Caller),
    /// Basic authentication; a user's caller is `callers[user]`, else `default`.
    Users {
        users: Users,
        callers: HashMap<String, Caller>,
        default: Caller,
    },
}

pub struct Options {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Calls into the view at once.
    pub threads: usize,
}

struct State {
    dav: DavHandler<Caller>,
    login: Login,
}

impl State {
    async fn handle(self: Arc<State>, req: Request<Incoming>) -> Response<Body> {
        let (user, caller) = match &self.login {
            Login::Anyone(c) => (String::new(), *c),
            Login::Users {
                callers, default, ..
            } => match self.authenticate(&req).await {
                Some(user) => {
                    let c = callers.get(&user).copied().unwrap_or(*default);
                    (user, c)
                }
                None => return unauthorized(),
            },
        };
        self.dav.handle_guarded(req, user, caller).await
    }

    /// The user the request's credentials prove, if any.
    async fn authenticate(self: &Arc<State>, req: &Request<Incoming>) -> Option<String> {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)?
            .as_bytes()
            .to_vec();
        let state = self.clone();
        tokio::task::spawn_blocking(move || match &state.login {
            Login::Users { users, .. } => users.check(&header),
            Login::Anyone(_) => None,
        })
        .await
        .ok()
        .flatten()
    }
}

fn unauthorized() -> Response<Body> {
    let mut r = Response::new(Body::from("authentication required\n"));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"vaultfs\", charset=\"UTF-8\""),
    );
    r
}

/// The TLS server configuration from a PEM certificate chain and key, on aws-lc-rs (the
/// project's one crypto provider).
fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, WebdavError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what, path: &Path, why: String| WebdavError::Tls {
        what,
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad("certificate", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("certificate", cert, "no certificate in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("setup", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad("key", key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `view` until SIGINT or SIGTERM. `ready` gets the address listened on (a port 0
/// becomes the one the system chose) once clients can connect.
pub fn serve(
    view: Arc<View>,
    login: Login,
    opts: &Options,
    ready: impl FnOnce(SocketAddr, bool),
) -> Result<(), WebdavError> {
    let tls = match &opts.tls {
        Some((cert, key)) => Some(TlsAcceptor::from(tls_config(cert, key)?)),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(opts.threads.max(1))
        .thread_name("webdav")
        .enable_all()
        .build()
        .map_err(WebdavError::Runtime)?;
    let dav = DavHandler::<Caller>::builder()
        .filesystem(Box::new(fs::Fs::new(tree::Tree::new(view))))
        .methods(DavMethodSet::WEBDAV_RO)
        .read_buf_size(READ_BUF_BYTES)
        .autoindex(true)
        .build_handler();
    let state = Arc::new(State { dav, login });
    let listen = opts.listen;
    let served = runtime.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| WebdavError::Bind {
                addr: listen,
                source,
            })?;
        let local = listener.local_addr().map_err(WebdavError::Runtime)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(WebdavError::Runtime)?;
        ready(local, tls.is_some());
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accepting a WebDAV connection: {e}");
                        continue;
                    }
                },
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            };
            let _ = stream.set_nodelay(true);
            let (state, tls) = (state.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(state.handle(req).await) }
                });
                let http = http1::Builder::new();
                let r = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => http.serve_connection(TokioIo::new(s), svc).await,
                        Err(e) => {
                            tracing::info!("a TLS handshake failed: {e}");
                            return;
                        }
                    },
                    None => http.serve_connection(TokioIo::new(stream), svc).await,
                };
                if let Err(e) = r {
                    tracing::debug!("a WebDAV connection ended: {e}");
                }
            });
        }
        Ok(())
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    served
}
