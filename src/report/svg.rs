//! Three kinds of chart as inline SVG text: lines over time, vertical (stacked) bars, and
//! horizontal (grouped) bars. Each is a fixed-size picture with axes, ticks on round numbers
//! and a `<title>` on every mark (a browser shows it on hover, with no script). The plot area
//! is filled with the chart's own `tint`, a near-white that names the chart: the report's
//! screenshot test finds each chart by it.

use std::fmt::Write;

pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 240.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;
const AXIS: &str = "#888888";
const GRID: &str = "#dddddd";
const TEXT: &str = "#333333";

/// Formats a value for an axis label or a tooltip.
pub type Fmt = fn(f64) -> String;

/// One line of a time chart: points (ns since the epoch, value), oldest first.
pub struct Series {
    pub label: String,
    pub colour: &'static str,
    pub points: Vec<(i64, f64)>,
}

/// One vertical bar: segments stacked from the axis up.
pub struct Bar {
    /// Shown under the bar when not empty (callers thin labels out).
    pub label: String,
    pub segments: Vec<(f64, &'static str)>,
    pub title: String,
}

/// One row of horizontal bars: one bar per value, side by side, and an optional marker line.
pub struct Row {
    pub label: String,
    pub bars: Vec<(f64, &'static str, String)>,
    /// A value marked across the row (an item's schedule period), with its title.
    pub marker: Option<(f64, String)>,
}

/// Escape text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round step (1, 2 or 5 × 10^k) giving about four intervals up to `max`, and the top of
/// the axis (a multiple of it, at least `max`).
pub fn ticks(max: f64) -> (f64, f64) {
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil().max(1.0) * step)
}

/// The picture's frame: `<svg>`, the tinted plot area, and the value axis' grid and labels
/// (`vertical`: values go up; otherwise they go right).
fn open(tint: &str, label: &str, top: f64, fmt: Fmt, vertical: bool) -> String {
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let mut s = format!(
        r#"<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" font-family="sans-serif" font-size="11">"#,
        esc(label)
    );
    let _ = write!(
        s,
        r#"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="{tint}"/>"#,
        x1 - x0,
        y1 - y0
    );
    let (step, _) = ticks(top);
    let mut v = 0.0;
    while v <= top * 1.000_001 {
        let label = esc(&fmt(v));
        if vertical {
            let y = y1 - (y1 - y0) * v / top;
            let _ = write!(
                s,
                r#"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="{GRID}"/><text x="{}" y="{:.1}" text-anchor="end" fill="{TEXT}">{label}</text>"#,
                x0 - 6.0,
                y + 4.0
            );
        } else {
            let x = x0 + (x1 - x0) * v / top;
            let _ = write!(
                s,
                r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="{GRID}"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="{TEXT}">{label}</text>"#,
                y1 + 14.0
            );
        }
        v += step;
    }
    let _ = write!(
        s,
        r#"<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="{AXIS}"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="{AXIS}"/>"#
    );
    s
}

/// Lines over time; `when` labels the time axis (given a time and the span shown, both ns).
pub fn lines(
    tint: &str,
    label: &str,
    series: &[Series],
    fmt: Fmt,
    when: fn(i64, i64) -> String,
) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let max = all().map(|p| p.1).fold(0.0, f64::max);
    let (_, top) = ticks(max);
    let (mut t0, mut t1) = (
        all().map(|p| p.0).min().unwrap_or(0),
        all().map(|p| p.0).max().unwrap_or(0),
    );
    if t1 - t0 < 60_000_000_000 {
        // One moment (or none): centre it in an hour.
        t0 -= 1_800_000_000_000;
        t1 += 1_800_000_000_000;
    }
    let mut s = open(tint, label, top, fmt, true);
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let x = |t: i64| x0 + 8.0 + (x1 - x0 - 16.0) * (t - t0) as f64 / (t1 - t0) as f64;
    let y = |v: f64| y1 - (y1 - y0) * v / top;
    for i in 0..5 {
        let t = t0 + (t1 - t0) / 4 * i;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" fill="{TEXT}">{}</text>"#,
            x(t),
            y1 + 14.0,
            esc(&when(t, t1 - t0))
        );
    }
    for se in series {
        let pts: Vec<String> = se
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.5"/>"#,
            pts.join(" "),
            se.colour
        );
        for &(t, v) in &se.points {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{}: {}</title></circle>"#,
                x(t),
                y(v),
                se.colour,
                esc(&se.label),
                esc(&fmt(v))
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Vertical bars, segments stacked.
pub fn vbars(tint: &str, label: &str, bars: &[Bar], fmt: Fmt) -> String {
    let max = bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.0).sum::<f64>())
        .fold(0.0, f64::max);
    let (_, top) = ticks(max);
    let mut s = open(tint, label, top, fmt, true);
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let slot = (x1 - x0) / bars.len().max(1) as f64;
    let width = (slot * 0.7).min(48.0);
    for (i, b) in bars.iter().enumerate() {
        let cx = x0 + slot * (i as f64 + 0.5);
        let mut base = y1;
        for &(v, colour) in &b.segments {
            let h = (y1 - y0) * v / top;
            if h > 0.0 {
                let _ = write!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{width:.1}" height="{h:.1}" fill="{colour}"><title>{}</title></rect>"#,
                    cx - width / 2.0,
                    base - h,
                    esc(&b.title)
                );
            }
            base -= h;
        }
        if !b.label.is_empty() {
            let _ = write!(
                s,
                r#"<text x="{cx:.1}" y="{}" text-anchor="middle" fill="{TEXT}">{}</text>"#,
                y1 + 14.0,
                esc(&b.label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one row per label, the row's bars side by side.
pub fn hbars(tint: &str, label: &str, rows: &[Row], fmt: Fmt) -> String {
    let max = rows
        .iter()
        .flat_map(|r| {
            r.bars
                .iter()
                .map(|b| b.0)
                .chain(r.marker.iter().map(|m| m.0))
        })
        .fold(0.0, f64::max);
    let (_, top) = ticks(max);
    let mut s = open(tint, label, top, fmt, false);
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let slot = (y1 - y0) / rows.len().max(1) as f64;
    let x = |v: f64| x0 + (x1 - x0) * v / top;
    for (i, r) in rows.iter().enumerate() {
        let top_y = y0 + slot * i as f64 + slot * 0.15;
        let each = (slot * 0.7 / r.bars.len().max(1) as f64).min(22.0);
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end" fill="{TEXT}">{}</text>"#,
            x0 - 6.0,
            y0 + slot * (i as f64 + 0.5) + 4.0,
            esc(&r.label)
        );
        for (j, (v, colour, title)) in r.bars.iter().enumerate() {
            let _ = write!(
                s,
                r#"<rect x="{x0}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}</title></rect>"#,
                top_y + each * j as f64,
                x(*v) - x0,
                each - 1.0,
                esc(title)
            );
        }
        if let Some((v, title)) = &r.marker {
            let _ = write!(
                s,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{TEXT}" stroke-width="2" stroke-dasharray="4 2"><title>{}</title></line>"#,
                x(*v),
                top_y - 2.0,
                x(*v),
                top_y + each * r.bars.len() as f64 + 2.0,
                esc(title)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(0.0), (1.0, 1.0));
        assert_eq!(ticks(f64::NAN), (1.0, 1.0));
        assert_eq!(ticks(7.0), (2.0, 8.0));
        assert_eq!(ticks(10.0), (5.0, 10.0));
        assert_eq!(ticks(1234.0), (500.0, 1500.0));
        let (step, top) = ticks(3.3e9);
        assert_eq!((step, top), (1e9, 4e9));
    }

    #[test]
    fn text_is_escaped_in_every_chart() {
        let evil = "<script>&\"'";
        let svg = hbars(
            "#ffffff",
            evil,
            &[Row {
                label: evil.into(),
                bars: vec![(1.0, "#000000", evil.into())],
                marker: Some((2.0, evil.into())),
            }],
            |v| format!("{v}"),
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&#39;"));
    }

    #[test]
    fn bars_scale_to_the_plot_area() {
        let svg = vbars(
            "#fefefe",
            "t",
            &[Bar {
                label: "a".into(),
                segments: vec![(4.0, "#00ff00"), (4.0, "#ff0000")],
                title: "x".into(),
            }],
            |v| format!("{v}"),
        );
        // 8 of an axis topped at 8 (step 2): the two segments fill the plot's height.
        let h = HEIGHT - TOP - BOTTOM;
        assert!(
            svg.contains(&format!(r##"height="{:.1}" fill="#00ff00""##, h / 2.0)),
            "{svg}"
        );
        assert!(svg.contains(&format!(r#"y="{TOP:.1}""#)), "{svg}");
    }
}
