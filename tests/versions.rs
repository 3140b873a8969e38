//! `MNT/versions/ITEM/PATH/`: the distinct versions of a file across an item's points, each
//! with the right bytes and metadata, named by the first point that has it; directories list
//! every name found under them in any point.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::mnt::*;
use common::*;

#[test]
fn a_file_changed_in_5_of_20_points_shows_exactly_5_versions_with_their_bytes() {
    let f = Fixture::new();
    fs::create_dir_all(f.src.join("docs")).unwrap();
    fs::write(f.src.join("keep.md"), "never changes").unwrap();
    fs::write(f.src.join("docs/gone.txt"), "only in the first point").unwrap();
    let report = f.src.join("docs/report.txt");
    let mut points = Vec::new();
    // (point number, expected bytes and mode of the version it starts)
    let mut want: Vec<(usize, Vec<u8>, u32)> = Vec::new();
    for i in 1..=20usize {
        match i {
            2 => fs::remove_file(f.src.join("docs/gone.txt")).unwrap(),
            // Created in point 3, rewritten in 6 and 10, chmodded (metadata only) in 14,
            // gone in 16 and 17, back with new bytes in 18.
            3 | 6 | 10 | 18 => {
                let body = noise(5_000 + i * 100, i as u64);
                fs::write(&report, &body).unwrap();
                fs::set_permissions(&report, fs::Permissions::from_mode(0o644)).unwrap();
                want.push((i, body, 0o644));
            }
            14 => {
                fs::set_permissions(&report, fs::Permissions::from_mode(0o600)).unwrap();
                let body = want.last().unwrap().1.clone();
                want.push((i, body, 0o600));
            }
            16 => fs::remove_file(&report).unwrap(),
            _ => {}
        }
        points.push(backup(&f.vault, "web", &f.src));
    }
    let m = Mount::new(&f.vault, &f.mnt);

    assert_eq!(names_in(&m.path("versions")), ["web"]);
    assert_eq!(names_in(&m.path("versions/web")), ["docs", "keep.md"]);
    assert_eq!(
        names_in(&m.path("versions/web/docs")),
        ["gone.txt", "report.txt"]
    );
    let dir = m.path("versions/web/docs/report.txt");
    // In listing order (oldest first; points of one second sort `-13` before `-2` by name).
    let names = listed(&dir);
    let expected: Vec<String> = want
        .iter()
        .map(|(i, _, _)| format!("{}.txt", points[i - 1]))
        .collect();
    assert_eq!(
        names, expected,
        "one version per change, named by its first point"
    );
    for ((i, body, mode), name) in want.iter().zip(&names) {
        let p = dir.join(name);
        assert_eq!(
            &fs::read(&p).unwrap(),
            body,
            "bytes of the version of point {i}"
        );
        let md = fs::metadata(&p).unwrap();
        assert_eq!(
            md.permissions().mode() & 0o7777,
            *mode,
            "mode of version {i}"
        );
        assert_eq!(md.len(), body.len() as u64);
    }
    assert_eq!(
        names_in(&m.path("versions/web/keep.md")),
        [format!("{}.md", points[0])]
    );
    assert_eq!(
        fs::read(
            m.path("versions/web/docs/gone.txt")
                .join(format!("{}.txt", points[0]))
        )
        .unwrap(),
        b"only in the first point"
    );
    assert!(!m.path("versions/web/nothing").exists());
    assert!(!m.path("versions/nosuchitem").exists());
    // Read-only like the points.
    let e = fs::write(dir.join("new"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");

    // A new point with another change shows at once (the catalog changed).
    fs::write(&report, "the sixth").unwrap();
    let p21 = backup(&f.vault, "web", &f.src);
    let names = listed(&dir);
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(names[5], format!("{p21}.txt"));
    assert_eq!(fs::read(dir.join(&names[5])).unwrap(), b"the sixth");
}

/// Names in `dir` in the order the mount lists them.
fn listed(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}
