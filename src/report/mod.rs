//! `vaultfs report VAULT --html OUT`: the vault's health and history as one HTML page that
//! needs nothing else — no script, no font, no stylesheet or image from anywhere: the charts
//! are inline SVG drawn by [`svg`], the style is inline, and a print stylesheet keeps each
//! chart on one page. The figures come from [`crate::vault::report`].
//!
//! Colours: items take the Okabe–Ito palette (told apart with colour blindness) in name
//! order; each chart's plot area has its own near-white tint ([`TINTS`]), which the
//! screenshot test (tests/report.rs) uses to find the charts.

pub mod svg;

use std::fmt::Write;

use crate::vault::names::display_time;
use crate::vault::report::{ItemGrowth, Report};
use svg::{Bar, Row, Series, esc};

/// Colours of items, in name order (then again).
pub const ITEM_COLOURS: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#8c564b", "#7f7f7f",
];
pub const OK: &str = "#2e7d32";
pub const BAD: &str = "#c62828";
pub const UNSCHEDULED: &str = "#9e9e9e";
pub const DEDUP: &str = "#5e35b1";
pub const COMPRESSION: &str = "#00897b";
/// Plot-area tints, in page order: growth, added per point, ratios, jobs, point counts, age.
pub const TINTS: [&str; 6] = [
    "#eef4fb", "#f4eefb", "#eefbf1", "#fbf1ee", "#fbf9e8", "#e8f9fb",
];
/// Bars of "data added per point": the newest this many points of the vault.
pub const ADDED_POINTS_MAX: usize = 60;

const STYLE: &str = "
body { font-family: sans-serif; color: #222; margin: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
p.meta, p.note { color: #555; margin: 2px 0 8px; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid #ccc; border-radius: 4px; padding: 6px 12px; min-width: 110px; }
.card b { display: block; font-size: 18px; }
.card span { font-size: 12px; color: #555; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #c62828; font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(660px, 1fr)); gap: 16px; }
section.chart { border: 1px solid #ddd; border-radius: 4px; padding: 10px; }
.legend { font-size: 12px; margin: 4px 0 0; }
.legend span { margin-right: 12px; white-space: nowrap; }
svg.chart { display: block; max-width: 100%; height: auto; }
@media print {
  body { margin: 0; font-size: 10pt; }
  .charts { display: block; }
  section.chart { break-inside: avoid; margin-bottom: 10px; border: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
@page { size: A4; margin: 12mm; }
";

/// `1.5 GB`-style decimal sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `5m 3s`, `2h 10m`, `3d 4h`.
pub fn duration(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

fn strftime(ns: i64, f: &str) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.strftime(f).to_string())
        .unwrap_or_default()
}

fn axis_bytes(v: f64) -> String {
    human_bytes(v as u64)
}

fn axis_when(t: i64, span: i64) -> String {
    strftime(
        t,
        if span < 8 * 86_400_000_000_000 {
            "%m-%d %H:%M"
        } else {
            "%Y-%m-%d"
        },
    )
}

fn axis_ratio(v: f64) -> String {
    format!("{v:.1}x")
}

fn axis_count(v: f64) -> String {
    format!("{v:.0}")
}

fn axis_hours(v: f64) -> String {
    if v >= 48.0 {
        format!("{:.0} d", v / 24.0)
    } else {
        format!("{v:.0} h")
    }
}

fn colour_of(i: usize) -> &'static str {
    ITEM_COLOURS[i % ITEM_COLOURS.len()]
}

fn legend(entries: &[(&str, &str)]) -> String {
    let mut s = String::from(r#"<div class="legend">"#);
    for (label, colour) in entries {
        let _ = write!(
            s,
            r#"<span><svg width="10" height="10"><rect width="10" height="10" fill="{colour}"/></svg> {}</span>"#,
            esc(label)
        );
    }
    s.push_str("</div>");
    s
}

fn section(title: &str, note: &str, chart: String, legend: String) -> String {
    format!(
        r#"<section class="chart"><h2>{}</h2><p class="note">{}</p>{chart}{legend}</section>"#,
        esc(title),
        esc(note)
    )
}

/// The whole page.
pub fn html(r: &Report) -> String {
    let h = &r.health;
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vaultfs report: {}</title><style>{STYLE}</style></head><body>",
        esc(&h.vault)
    );
    let _ = write!(
        page,
        r#"<h1>vaultfs report: {}</h1><p class="meta">vault id {} · generated {} (vault time)</p>"#,
        esc(&h.vault),
        esc(&h.vault_id),
        esc(&display_time(h.now_ns))
    );
    page.push_str(&cards(r));
    page.push_str(&items_table(r));
    page.push_str(r#"<div class="charts">"#);
    for s in charts(r) {
        page.push_str(&s);
    }
    page.push_str("</div>");
    page.push_str(&alerts_table(r));
    page.push_str("</body></html>\n");
    page
}

fn cards(r: &Report) -> String {
    let h = &r.health;
    let ratio = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
    let points: u64 = h.items.iter().map(|i| i.points).sum();
    let active = h
        .alerts
        .iter()
        .filter(|a| a.state == crate::vault::alerts::AlertState::Active)
        .count();
    let cards = [
        (h.items.len().to_string(), "items"),
        (points.to_string(), "recovery points"),
        (human_bytes(h.space.stored_bytes), "stored in packs"),
        (
            h.space.free_bytes.map_or("-".into(), human_bytes),
            "free where the vault is",
        ),
        (ratio(h.space.dedup_ratio), "dedup ratio"),
        (ratio(h.space.compression_ratio), "compression ratio"),
        (active.to_string(), "active alerts"),
        (
            h.recent_failed_jobs.to_string(),
            "failed of the newest 100 jobs",
        ),
    ];
    let mut s = String::from(r#"<div class="cards">"#);
    for (v, label) in cards {
        let _ = write!(
            s,
            r#"<div class="card"><b>{}</b><span>{label}</span></div>"#,
            esc(&v)
        );
    }
    s.push_str("</div>");
    s
}

fn items_table(r: &Report) -> String {
    let mut s = String::from(
        "<table><tr><th>item</th><th>points</th><th>newest</th><th>age</th><th>schedule</th><th>state</th><th>stored</th><th>dedup</th><th>compression</th></tr>",
    );
    for (i, g) in r.health.items.iter().zip(&r.items) {
        let stored = g.points.last().map_or(0, |p| p.stored_bytes);
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td class="num">{}</td><td class="num">{:.2}x</td><td class="num">{:.2}x</td></tr>"#,
            esc(&i.item),
            i.points,
            esc(i.newest.as_deref().unwrap_or("-")),
            i.newest_age_seconds.map_or("-".into(), duration),
            esc(i.schedule.as_deref().unwrap_or("none")),
            if i.overdue { r#" class="bad""# } else { "" },
            if i.overdue { "OVERDUE" } else { "ok" },
            human_bytes(stored),
            g.dedup_ratio,
            g.compression_ratio
        );
    }
    s.push_str("</table>");
    s
}

fn alerts_table(r: &Report) -> String {
    let alerts = &r.health.alerts;
    if alerts.is_empty() {
        return r#"<h2>Alerts</h2><p class="note">none</p>"#.into();
    }
    let mut s = String::from(
        "<h2>Alerts</h2><table><tr><th>id</th><th>raised</th><th>state</th><th>message</th></tr>",
    );
    for a in alerts {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
            a.id,
            esc(&display_time(a.raised_ns)),
            a.state,
            esc(&a.message)
        );
    }
    s.push_str("</table>");
    s
}

fn item_legend(items: &[ItemGrowth]) -> String {
    let e: Vec<(&str, &str)> = items
        .iter()
        .enumerate()
        .map(|(i, g)| (g.item.as_str(), colour_of(i)))
        .collect();
    legend(&e)
}

/// The six chart sections, in page order (the order of [`TINTS`]).
fn charts(r: &Report) -> Vec<String> {
    let growth: Vec<Series> = r
        .items
        .iter()
        .enumerate()
        .map(|(i, g)| Series {
            label: g.item.clone(),
            colour: colour_of(i),
            points: g
                .points
                .iter()
                .map(|p| (p.created_ns, p.stored_bytes as f64))
                .collect(),
        })
        .collect();
    let mut added: Vec<(usize, &str, &crate::vault::report::PointGrowth)> = r
        .items
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.points.iter().map(move |p| (i, g.item.as_str(), p)))
        .collect();
    added.sort_by_key(|(_, _, p)| p.created_ns);
    let added = &added[added.len().saturating_sub(ADDED_POINTS_MAX)..];
    let every = added.len().div_ceil(8).max(1);
    let added_bars: Vec<Bar> = added
        .iter()
        .enumerate()
        .map(|(n, (i, item, p))| Bar {
            label: if n % every == 0 {
                strftime(p.created_ns, "%m-%d %H:%M")
            } else {
                String::new()
            },
            segments: vec![(p.added_bytes as f64, colour_of(*i))],
            title: format!(
                "{item}/{}: {} added ({} of files)",
                p.name,
                human_bytes(p.added_bytes),
                human_bytes(p.logical_bytes)
            ),
        })
        .collect();
    let sp = &r.health.space;
    let mut ratio_rows = vec![Row {
        label: "vault".into(),
        bars: vec![
            (
                sp.dedup_ratio.unwrap_or(1.0),
                DEDUP,
                format!("vault: dedup {:.2}x", sp.dedup_ratio.unwrap_or(1.0)),
            ),
            (
                sp.compression_ratio.unwrap_or(1.0),
                COMPRESSION,
                format!(
                    "vault: compression {:.2}x",
                    sp.compression_ratio.unwrap_or(1.0)
                ),
            ),
        ],
        marker: None,
    }];
    ratio_rows.extend(r.items.iter().map(|g| Row {
        label: g.item.clone(),
        bars: vec![
            (
                g.dedup_ratio,
                DEDUP,
                format!("{}: dedup {:.2}x", g.item, g.dedup_ratio),
            ),
            (
                g.compression_ratio,
                COMPRESSION,
                format!("{}: compression {:.2}x", g.item, g.compression_ratio),
            ),
        ],
        marker: None,
    }));
    let every_day = r.job_days.len().div_ceil(8).max(1);
    let job_bars: Vec<Bar> = r
        .job_days
        .iter()
        .enumerate()
        .map(|(n, d)| Bar {
            label: if n % every_day == 0 {
                strftime(d.day_ns, "%m-%d")
            } else {
                String::new()
            },
            segments: vec![(d.succeeded as f64, OK), (d.failed as f64, BAD)],
            title: format!(
                "{}: {} succeeded, {} failed",
                strftime(d.day_ns, "%Y-%m-%d"),
                d.succeeded,
                d.failed
            ),
        })
        .collect();
    let count_rows: Vec<Row> = r
        .health
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| Row {
            label: it.item.clone(),
            bars: vec![(
                it.points as f64,
                colour_of(i),
                format!("{}: {} points", it.item, it.points),
            )],
            marker: None,
        })
        .collect();
    let age_rows: Vec<Row> = r
        .health
        .items
        .iter()
        .filter_map(|it| {
            let age = it.newest_age_seconds?;
            let colour = match (it.overdue, it.period_seconds) {
                (true, _) => BAD,
                (false, Some(_)) => OK,
                (false, None) => UNSCHEDULED,
            };
            Some(Row {
                label: it.item.clone(),
                bars: vec![(
                    age as f64 / 3600.0,
                    colour,
                    format!("{}: newest point {} old", it.item, duration(age)),
                )],
                marker: it.period_seconds.map(|p| {
                    (
                        p as f64 / 3600.0,
                        format!("schedule period: {}", duration(p)),
                    )
                }),
            })
        })
        .collect();
    vec![
        section(
            "Storage growth per item",
            "Sealed bytes each item's live points reference, after each point (chunks and trees counted once).",
            svg::lines(
                TINTS[0],
                "storage growth per item",
                &growth,
                axis_bytes,
                axis_when,
            ),
            item_legend(&r.items),
        ),
        section(
            "Data added per point",
            &format!(
                "What each point added to its item's storage; the newest {ADDED_POINTS_MAX} points at most."
            ),
            svg::vbars(TINTS[1], "data added per point", &added_bars, axis_bytes),
            item_legend(&r.items),
        ),
        section(
            "Dedup and compression ratios",
            "Dedup: bytes of files per distinct chunk byte. Compression: distinct chunk bytes per sealed byte.",
            svg::hbars(
                TINTS[2],
                "dedup and compression ratios",
                &ratio_rows,
                axis_ratio,
            ),
            legend(&[("dedup", DEDUP), ("compression", COMPRESSION)]),
        ),
        section(
            "Job history",
            &format!(
                "Jobs per day (UTC) by how they ended; the last {} days at most.",
                crate::vault::report::JOB_DAYS_MAX
            ),
            svg::vbars(TINTS[3], "job history", &job_bars, axis_count),
            legend(&[("succeeded", OK), ("failed or cancelled", BAD)]),
        ),
        section(
            "Recovery points per item",
            "Live points (soft-deleted ones not counted).",
            svg::hbars(
                TINTS[4],
                "recovery points per item",
                &count_rows,
                axis_count,
            ),
            item_legend(&r.items),
        ),
        section(
            "Recovery point age per item",
            "Age of each item's newest point; the dashed line is its schedule's period.",
            svg::hbars(
                TINTS[5],
                "recovery point age per item",
                &age_rows,
                axis_hours,
            ),
            legend(&[
                ("on time", OK),
                ("overdue", BAD),
                ("no schedule", UNSCHEDULED),
            ]),
        ),
    ]
}
