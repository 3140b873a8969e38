//! `vaultfs report --html` (issue 15, acceptance 4): a vault with two items, points over
//! three days and a failed job is reported; the page must reference nothing outside itself,
//! and headless Chromium (Debian's `chromium`, installed by scripts/deps.sh) must draw every
//! chart: each chart's plot area is found in the screenshot by its tint, and the colours of
//! its marks must be inside it. Set VAULTFS_KEEP_SCREENSHOT=FILE to keep the PNG.
#![cfg(feature = "test-clock")]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::mnt::*;
use common::ops::*;
use common::*;

const DAY: i64 = 24 * HOUR;
const WINDOW: (u32, u32) = (1400, 2200);
/// The page's colours (`vaultfs::report`): plot tints in page order, and marks.
const TINTS: [u32; 6] = [0xeef4fb, 0xf4eefb, 0xeefbf1, 0xfbf1ee, 0xfbf9e8, 0xe8f9fb];
/// Items take colours in name order.
const DB: u32 = 0x0072b2;
const WEB: u32 = 0xe69f00;
const OK_GREEN: u32 = 0x2e7d32;
const BAD_RED: u32 = 0xc62828;
const DEDUP: u32 = 0x5e35b1;
const COMPRESSION: u32 = 0x00897b;
/// The plot area of every chart (`report::svg`: 640 × 240 less the margins).
const PLOT: (u32, u32) = (640 - 72 - 36, 240 - 12 - 34);

struct Shot {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Shot {
    fn load(path: &Path) -> Shot {
        let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
        let info = reader.next_frame(&mut buf).expect("a PNG frame");
        let step = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected PNG colour type {other:?}"),
        };
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let rgb = buf[..info.buffer_size()]
            .chunks(step)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Shot {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    /// Pixels within `tol` of `colour` in each channel, as (x, y).
    fn matching(&self, colour: u32, tol: u8) -> impl Iterator<Item = (u32, u32)> + '_ {
        let want = [(colour >> 16) as u8, (colour >> 8) as u8, colour as u8];
        self.rgb.iter().enumerate().filter_map(move |(i, p)| {
            let close = p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= tol);
            close.then(|| (i as u32 % self.width, i as u32 / self.width))
        })
    }

    /// The bounding box (x0, y0, x1, y1) of the pixels of `colour`.
    fn bbox(&self, colour: u32) -> Option<(u32, u32, u32, u32)> {
        self.matching(colour, 1).fold(None, |b, (x, y)| {
            Some(match b {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            })
        })
    }

    fn count_in(&self, colour: u32, b: (u32, u32, u32, u32)) -> usize {
        self.matching(colour, 3)
            .filter(|&(x, y)| x >= b.0 && x <= b.2 && y >= b.1 && y <= b.3)
            .count()
    }
}

#[test]
fn the_html_report_is_self_contained_and_chromium_draws_every_chart() {
    let f = Fixture::new();
    let clock = Clock::new(&f.root, T0 - 3 * DAY);
    let v = s(&f.vault);
    let db_src = f.root.join("db-src");
    // Three days: a point of each item per day, growing; a failed backup on the second.
    for day in 0..3 {
        clock.set(T0 - (3 - day) * DAY + HOUR);
        let _ = fs::remove_dir_all(&f.src);
        make_small_tree(&f.src, 1);
        fs::write(
            f.src.join(format!("day{day}.bin")),
            noise(400_000, day as u64 + 10),
        )
        .unwrap();
        clock.ok(&["backup", v, "web", s(&f.src)]);
        fs::create_dir_all(&db_src).unwrap();
        // Text of random hex digits: compresses about 2:1.
        let dump: String = noise(120_000, day as u64 + 20)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        fs::write(db_src.join(format!("dump{day}.sql")), dump).unwrap();
        clock.ok(&["backup", v, "db", s(&db_src)]);
        if day == 1 {
            let args = ["backup", v, "db", "/nonexistent/source"];
            failed_clearly(&args, &clock.run(&args));
        }
    }
    // Two hours after the last points: web is on time (daily), db overdue (hourly).
    clock.ok(&["policy", v, "web", "--schedule", "daily 00:30"]);
    clock.ok(&["policy", v, "db", "--schedule", "hourly"]);
    clock.set(T0 - DAY + 3 * HOUR);
    clock.ok(&["check", v]);

    let out = f.root.join("report.html");
    let said = clock.ok(&["report", v, "--html", s(&out)]);
    assert!(said.contains("wrote"), "{said}");
    let html = fs::read_to_string(&out).unwrap();
    let lower = html.to_lowercase();
    for outside in [
        "http://", "https://", "<script", "<link", "@import", "url(", "<img", "src=",
    ] {
        assert!(
            !lower.contains(outside),
            "the page refers outside: {outside}"
        );
    }
    assert_eq!(
        html.matches("<svg class=\"chart\"").count(),
        6,
        "six charts"
    );
    assert!(html.contains("@media print"), "a print stylesheet");
    assert_eq!(
        html.matches("OVERDUE").count(),
        1,
        "db is overdue, web is not"
    );

    let png = f.root.join("report.png");
    let shot = chromium_screenshot(&out, &png);
    if let Ok(keep) = std::env::var("VAULTFS_KEEP_SCREENSHOT") {
        fs::copy(&png, keep).unwrap();
    }
    assert_eq!((shot.width, shot.height), WINDOW);
    let marks: [(&str, &[u32]); 6] = [
        ("storage growth", &[WEB, DB]),
        ("data added per point", &[WEB, DB]),
        ("ratios", &[DEDUP, COMPRESSION]),
        ("job history", &[OK_GREEN, BAD_RED]),
        ("point counts", &[WEB, DB]),
        ("recovery point age", &[OK_GREEN, BAD_RED]),
    ];
    let mut boxes = Vec::new();
    for (tint, (chart, colours)) in TINTS.iter().zip(marks) {
        let b = shot
            .bbox(*tint)
            .unwrap_or_else(|| panic!("{chart}: its plot area is not drawn"));
        let (w, h) = (b.2 - b.0 + 1, b.3 - b.1 + 1);
        assert!(
            w.abs_diff(PLOT.0) <= 3 && h.abs_diff(PLOT.1) <= 3,
            "{chart}: plot area {w}x{h} at {b:?}, expected {PLOT:?}"
        );
        for c in colours {
            let n = shot.count_in(*c, b);
            assert!(
                n >= 20,
                "{chart}: {n} pixels of #{c:06x} in its plot area {b:?}"
            );
        }
        boxes.push(b);
    }
    // Page order: left to right, then top to bottom.
    for pair in boxes.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            b.1 > a.1 + 10 || (b.1.abs_diff(a.1) <= 10 && b.0 > a.2),
            "charts out of order: {a:?} then {b:?}"
        );
    }
}

/// A screenshot of `html` by headless Chromium.
fn chromium_screenshot(html: &Path, png: &Path) -> Shot {
    let profile = html.with_file_name("chromium-profile");
    let out = Command::new("timeout")
        .arg("180")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .env("HOME", html.parent().unwrap())
        .output()
        .expect("run chromium (scripts/deps.sh installs Debian's chromium)");
    assert!(
        png.exists(),
        "chromium wrote no screenshot ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Shot::load(png)
}
