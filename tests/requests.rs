//! FUSE requests per file of an rsync into `incoming/`: counted by the daemon itself (its
//! status on the control socket), so exact where times are not. These counts are how the suite
//! guards the ingest path's round trips (DESIGN.md §6.1, "What FUSE costs").

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::mnt::*;
use common::*;

/// Files in the tree (in `DIRS` directories), each small enough for one WRITE.
const FILES: usize = 120;
const DIRS: usize = 4;
/// Files the second rsync finds changed.
const CHANGED: usize = 30;

type Counts = BTreeMap<String, u64>;

/// `after - before`, per opcode, leaving out zeros.
fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn total(c: &Counts) -> u64 {
    c.values().sum()
}

/// `rsync -a --delete SRC/ DST/`; it must succeed.
#[track_caller]
fn rsync_a(src: &Path, dst: &Path) {
    rsync(&["-a", "--delete"], src, dst);
}

/// A mount of the fixture's vault with the test tree in `FILES`/`DIRS` made at `fx.src`, and
/// the empty item directory `incoming/r`.
fn mount_with_tree(fx: &Fixture) -> (Mount, std::path::PathBuf) {
    make_tree(&fx.src);
    let m = Mount::new(&fx.vault, &fx.mnt);
    let dst = m.path("incoming/r");
    fs::create_dir(&dst).unwrap();
    (m, dst)
}

/// `FILES` files of 100 B to 16 KiB in `DIRS` directories, modes and mtimes varied.
fn make_tree(root: &Path) {
    for i in 0..FILES {
        let dir = root.join(format!("d{}", i % DIRS));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("file-{i:03}.txt"));
        fs::write(&p, noise(100 + (i * 137) % 16_000, i as u64)).unwrap();
        sh(&format!(
            "chmod {} '{}' && touch -d '2020-01-01 00:00:{:02}' '{}'",
            if i % 3 == 0 { "0600" } else { "0644" },
            p.display(),
            i % 60,
            p.display()
        ));
    }
}

/// Run `f` and return the requests the daemon of `vault` served meanwhile.
fn counted(vault: &Path, f: impl FnOnce()) -> Counts {
    let before = fuse_requests(vault);
    f();
    delta(&before, &fuse_requests(vault))
}

fn per_file(c: &Counts, files: usize) -> f64 {
    total(c) as f64 / files as f64
}

#[test]
fn rsync_into_incoming_costs_few_requests_per_file() {
    let fx = Fixture::new();
    let (mut m, dst) = mount_with_tree(&fx);

    let new = counted(&fx.vault, || rsync_a(&fx.src, &dst));
    let unchanged_warm = counted(&fx.vault, || rsync_a(&fx.src, &dst));
    for i in 0..CHANGED {
        let p = fx
            .src
            .join(format!("d{}/file-{:03}.txt", (i * 4) % DIRS, i * 4));
        fs::write(&p, noise(200 + i * 11, 1000 + i as u64)).unwrap();
    }
    let changed = counted(&fx.vault, || rsync_a(&fx.src, &dst));
    // A fresh mount: nothing cached by the kernel, as for tomorrow's rsync.
    drop(m);
    m = Mount::new(&fx.vault, &fx.mnt);
    let unchanged_cold = counted(&fx.vault, || rsync_a(&fx.src, &dst));
    let differ = rsync(&["-a", "-n", "-i", "--delete"], &fx.src, &dst);
    assert!(
        differ.is_empty(),
        "incoming differs from the source after the rsyncs: {differ}"
    );
    drop(m);

    let report = format!(
        "requests per file ({FILES} files in {DIRS} directories, {CHANGED} changed):\n\
         new            {:5.2}  {new:?}\n\
         unchanged warm {:5.2}  {unchanged_warm:?}\n\
         changed        {:5.2}  {changed:?}\n\
         unchanged cold {:5.2}  {unchanged_cold:?}",
        per_file(&new, FILES),
        per_file(&unchanged_warm, FILES),
        per_file(&changed, CHANGED),
        per_file(&unchanged_cold, FILES),
    );
    eprintln!("{report}");
    // Exact per-opcode counts per new file (DESIGN.md §6.1 has the table before and after each
    // lever): LOOKUP of the name, of rsync's temporary name and of the rename target (the
    // kernel always asks for the last two), CREATE, SETATTR for rsync's fchmod, times and mode,
    // GETXATTR(security.capability) before the first write, WRITE, GETATTR after it (a write
    // makes the kernel drop size and mtime), RENAME. No OPEN, RELEASE or FLUSH.
    for (op, each) in [("CREATE", 1), ("WRITE", 1), ("RENAME", 1), ("GETXATTR", 1)] {
        assert_eq!(
            new.get(op).copied(),
            Some(each * FILES as u64),
            "{op}: {report}"
        );
    }
    // The first OPEN is answered ENOSYS; the kernel opened a directory or two before it.
    for op in ["OPEN", "RELEASE"] {
        assert!(new.get(op).copied().unwrap_or(0) <= 2, "{op}: {report}");
        assert_eq!(changed.get(op), None, "{op}: {report}");
    }
    // Directories cost a few requests each; with FILES = 30 x DIRS they stay under 0.3 a file.
    assert!(per_file(&new, FILES) <= 11.1, "{report}");
    assert!(per_file(&changed, CHANGED) <= 10.8, "{report}");
    assert!(per_file(&unchanged_warm, FILES) <= 0.5, "{report}");
    assert!(per_file(&unchanged_cold, FILES) <= 1.5, "{report}");
}

/// Listing and reading every file of a point once (`find`-like walk and `cat`, in a fresh
/// mount): the listings carry the entries (READDIRPLUS) and read-ahead pushes the small files'
/// pages into the kernel's cache, so most files cost no request at all; none is opened.
#[test]
fn reading_a_point_costs_few_requests_per_file() {
    let fx = Fixture::new();
    let (mut m, dst) = mount_with_tree(&fx);
    rsync_a(&fx.src, &dst);
    snapshot(&fx.mnt, "r");
    drop(m);
    m = Mount::new(&fx.vault, &fx.mnt);
    let root = m.latest("r");
    let mut read_files = 0;
    let read = counted(&fx.vault, || {
        for d in 0..DIRS {
            let dir = root.join(format!("d{d}"));
            for f in names_in(&dir) {
                let want = fs::read(fx.src.join(format!("d{d}")).join(&f)).unwrap();
                assert_eq!(fs::read(dir.join(&f)).unwrap(), want, "d{d}/{f}");
                read_files += 1;
            }
        }
    });
    drop(m);
    assert_eq!(read_files, FILES);
    let report = format!(
        "requests per file listed and read from a point: {:5.2}  {read:?}",
        per_file(&read, FILES)
    );
    eprintln!("{report}");
    assert!(
        read.get("READ").copied().unwrap_or(0) <= FILES as u64,
        "{report}"
    );
    for op in ["OPEN", "RELEASE", "FLUSH"] {
        assert!(read.get(op).copied().unwrap_or(0) <= 1, "{op}: {report}");
    }
    assert!(per_file(&read, FILES) <= 1.2, "{report}");
}
