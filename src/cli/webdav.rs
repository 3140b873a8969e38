//! Arguments of `vaultfs serve-webdav`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ServeWebdavArgs {
    /// Path of the vault directory
    pub vault: PathBuf,
    /// Address and port to listen on; port 0 picks a free one (the address served is printed).
    /// An address other than loopback needs --tls-cert/--tls-key and --password-file
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Users and their bcrypt password hashes, one `USER:HASH` a line, as `htpasswd -B` makes
    /// them (apache2-utils). Without it, anyone who can connect to the address reads the vault
    /// (allowed on loopback only)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Memory for cached trees and chunks, e.g. 32M or 1G
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = super::parse_size)]
    pub cache_size: u64,
    /// Requests served from the vault at once
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub threads: usize,
}
