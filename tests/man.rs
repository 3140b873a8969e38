//! Acceptance (issue 2, item 9): `man/` holds a page per command generated from the clap
//! definitions, and this test fails when they are stale. Regenerate with
//! `VAULTFS_UPDATE_MAN=1 cargo test --test man`.

use std::path::Path;

use clap::CommandFactory;
use vaultfs::cli::Cli;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("render man page");
    out
}

/// (file name, content) of every page: `vaultfs.1` and `vaultfs-SUB.1` per subcommand.
fn pages() -> Vec<(String, Vec<u8>)> {
    let mut top = Cli::command();
    top.build();
    let mut out = vec![("vaultfs.1".to_string(), render(top.clone()))];
    add_pages(&top, "vaultfs", &mut out);
    out
}

/// A page per subcommand of `cmd`, and of theirs (`vaultfs-key-add.1`).
fn add_pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{prefix}-{}", sub.get_name());
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = sub
            .clone()
            .name(static_name)
            .version(env!("CARGO_PKG_VERSION"));
        out.push((format!("{name}.1"), render(page)));
        add_pages(sub, &name, out);
    }
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("VAULTFS_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    let pages = pages();
    for (file, content) in &pages {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(file.clone());
        }
    }
    let expected: std::collections::BTreeSet<String> =
        pages.iter().map(|(f, _)| f.clone()).collect();
    let present: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let extra: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "man pages are stale {stale:?} or left over {extra:?}: run VAULTFS_UPDATE_MAN=1 cargo test --test man"
    );
    assert!(pages.len() >= 8, "a page per command");
}
