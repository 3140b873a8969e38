//! Prometheus metrics: the vault's health (`vault::health`), its jobs and alerts in the
//! OpenMetrics text format, encoded by the `prometheus-client` crate, for `vaultfs metrics`
//! and the mount daemon's `/metrics` endpoint (`--metrics-listen`). Names and units follow
//! Prometheus conventions: `vaultfs_` prefix, base units (seconds, bytes) last in the name.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::vault::alerts::AlertState;
use crate::vault::health;
use crate::vault::jobs::{JobStatus, kind_name};
use crate::vault::{Result, Vault};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// A family of gauges with labels, registered under `name`.
fn family(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, FloatGauge> {
    let f = Family::<Labels, FloatGauge>::default();
    reg.register(name, help, f.clone());
    f
}

/// One gauge without labels.
fn gauge(reg: &mut Registry, name: &str, help: &str, value: f64) {
    let g = FloatGauge::default();
    g.set(value);
    reg.register(name, help, g);
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The metrics of `vault` now, as OpenMetrics text.
pub fn render(vault: &Vault, cache_root: &std::path::Path) -> Result<String> {
    let h = health::gather(vault, cache_root)?;
    let mut reg = Registry::default();

    let age = family(
        &mut reg,
        "vaultfs_item_last_point_age_seconds",
        "Age of the item's newest recovery point",
    );
    let points = family(
        &mut reg,
        "vaultfs_item_points",
        "Live recovery points of the item",
    );
    let overdue = family(
        &mut reg,
        "vaultfs_item_overdue",
        "1 when the item's schedule is missed (due time plus grace passed)",
    );
    let lag = family(
        &mut reg,
        "vaultfs_item_replica_lag_seconds",
        "How far the secondary's newest point of the item is behind the primary's",
    );
    for i in &h.items {
        let l = labels(&[("item", &i.item)]);
        points.get_or_create(&l).set(i.points as f64);
        overdue
            .get_or_create(&l)
            .set(if i.overdue { 1.0 } else { 0.0 });
        if let Some(a) = i.newest_age_seconds {
            age.get_or_create(&l).set(a as f64);
        }
        if let Some(s) = i.replica.as_ref().and_then(|r| r.lag_seconds) {
            lag.get_or_create(&l).set(s as f64);
        }
    }

    let s = &h.space;
    gauge(
        &mut reg,
        "vaultfs_stored_bytes",
        "Bytes in the vault's packs",
        s.stored_bytes as f64,
    );
    gauge(
        &mut reg,
        "vaultfs_packs",
        "Packs in the vault",
        s.packs as f64,
    );
    gauge(
        &mut reg,
        "vaultfs_logical_bytes",
        "Bytes the live points hold as files, each point counted whole",
        s.logical_bytes as f64,
    );
    if let Some(r) = s.dedup_ratio {
        gauge(
            &mut reg,
            "vaultfs_dedup_ratio",
            "Bytes of the live points' files per distinct chunk byte",
            r,
        );
    }
    if let Some(r) = s.compression_ratio {
        gauge(
            &mut reg,
            "vaultfs_compression_ratio",
            "Distinct chunk bytes per sealed byte in the packs",
            r,
        );
    }
    if let Some(free) = s.free_bytes {
        gauge(
            &mut reg,
            "vaultfs_free_bytes",
            "Free bytes on the filesystem holding the vault",
            free as f64,
        );
    }
    let p = &h.protection;
    gauge(
        &mut reg,
        "vaultfs_soft_delete_days",
        "Days a deleted point stays recoverable (0: soft delete off)",
        p.soft_delete_days as f64,
    );
    gauge(
        &mut reg,
        "vaultfs_key_slots",
        "Key slots of the vault",
        p.key_slots.len() as f64,
    );
    if let Some(c) = h.last_check.as_ref().and_then(|c| c.end_ns) {
        gauge(
            &mut reg,
            "vaultfs_last_check_timestamp_seconds",
            "When the last check ended (Unix time)",
            c as f64 / 1e9,
        );
    }

    let alerts = vault.alerts_list()?;
    let active = alerts
        .iter()
        .filter(|a| a.state == AlertState::Active)
        .count();
    gauge(
        &mut reg,
        "vaultfs_alerts_active",
        "Alerts active (raised, not acknowledged or cleared)",
        active as f64,
    );

    // Per kind: the newest successful job's duration, end and bytes added, and the jobs kept
    // per status (a failure shows there and as an alert).
    let jobs = vault.jobs_list()?;
    let duration = family(
        &mut reg,
        "vaultfs_job_duration_seconds",
        "Duration of the newest successful job of the kind",
    );
    let ended = family(
        &mut reg,
        "vaultfs_job_last_success_timestamp_seconds",
        "When the newest successful job of the kind ended (Unix time)",
    );
    let added = family(
        &mut reg,
        "vaultfs_job_last_bytes_added",
        "Bytes the newest successful job of the kind added",
    );
    let counts = family(
        &mut reg,
        "vaultfs_jobs",
        "Jobs in the vault's job log (its newest 1000) by kind and status",
    );
    let mut per_status: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for j in &jobs {
        let kind = kind_name(j.kind);
        *per_status.entry((kind, status_name(j.status))).or_default() += 1;
        let ok = matches!(
            j.status,
            JobStatus::Completed | JobStatus::CompletedWithWarnings
        );
        if let (true, Some(end)) = (ok, j.end_ns) {
            let l = labels(&[("kind", kind)]);
            duration
                .get_or_create(&l)
                .set((end - j.start_ns) as f64 / 1e9);
            ended.get_or_create(&l).set(end as f64 / 1e9);
            added.get_or_create(&l).set(j.figures.bytes_added as f64);
        }
    }
    for ((kind, status), n) in per_status {
        counts
            .get_or_create(&labels(&[("kind", kind), ("status", status)]))
            .set(n as f64);
    }
    gauge(
        &mut reg,
        "vaultfs_jobs_running",
        "Jobs running now",
        h.active_jobs.len() as f64,
    );

    // The FUSE requests this process served (the daemon's; none in a command run offline),
    // counted by the vendored fuser per opcode since the process started: a real counter.
    let requests = Family::<Labels, Counter>::default();
    for (op, n) in fuser::request_counts() {
        requests
            .get_or_create(&labels(&[("op", &op.to_lowercase())]))
            .inc_by(n);
    }
    reg.register(
        "vaultfs_fuse_requests",
        "FUSE requests served by the mount daemon since it started, by operation",
        requests,
    );

    let mut out = String::new();
    encode(&mut out, &reg).map_err(|_| crate::vault::VaultError::Internal("metrics encoding"))?;
    Ok(out)
}

fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::InProgress => "in_progress",
        JobStatus::Completed => "completed",
        JobStatus::CompletedWithWarnings => "completed_with_warnings",
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
    }
}

/// `--metrics-listen`: `PORT` (on 127.0.0.1) or `ADDR:PORT`.
pub fn parse_listen(s: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not PORT or ADDR:PORT (e.g. 127.0.0.1:9469)"))
}

/// Serve `GET /metrics` on `listener` from a thread of its own, one connection at a time.
pub fn serve(listener: TcpListener, vault: Arc<Vault>, cache_root: PathBuf) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                if let Err(e) = answer(stream, &vault, &cache_root) {
                    tracing::debug!("metrics request: {e}");
                }
            }
        })
        .map(|_| ())
}

fn answer(
    mut stream: TcpStream,
    vault: &Vault,
    cache_root: &std::path::Path,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers are read and ignored (bounded: a client cannot make us hold more).
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if path != "/metrics" {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    } else {
        match render(vault, cache_root) {
            Ok(b) => ("200 OK", CONTENT_TYPE, b),
            Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
        }
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
