//! `vaultfs diff`

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::DiffArgs;
use vaultfs::vault::diff::{self, Change};

use super::entry::{kind_word, path_text};
use super::{Env, Outcome, human_bytes, plural};

pub fn run(a: DiffArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let (from, to) = (vault.resolve(&a.from)?, vault.resolve(&a.to)?);
    let sub = a.path.as_deref().unwrap_or(Path::new(""));
    let changes = diff::diff(vault.store(), &from, &to, sub)?;
    if a.json {
        let js: Vec<_> = changes.iter().map(change_json).collect();
        env.out(serde_json::to_string_pretty(&js)?);
        return Ok(Outcome::Ok);
    }
    let count = |w: &str| changes.iter().filter(|c| c.word() == w).count() as u64;
    for c in &changes {
        env.out(line(c));
    }
    env.out(format!(
        "{}/{} → {}/{}: {} added, {} removed, {} changed",
        from.item,
        from.name,
        to.item,
        to.name,
        plural(count("added"), "entry", "entries"),
        count("removed"),
        count("changed")
    ));
    Ok(Outcome::Ok)
}

/// `+ /new (12 B)`, `- /gone (3 B)`, `M /edited (3 B → 5 B)`, `U /chmodded` (metadata only):
/// restic's letters.
fn line(c: &Change) -> String {
    let path = path_text(&c.path);
    let size = |n: &vaultfs::format::Node| human_bytes(n.size);
    match (&c.before, &c.after) {
        (None, Some(n)) => format!("+ {path} ({})", size(n)),
        (Some(n), None) => format!("- {path} ({})", size(n)),
        (Some(b), Some(n)) if c.content => format!("M {path} ({} → {})", size(b), size(n)),
        _ => format!("U {path}"),
    }
}

fn change_json(c: &Change) -> serde_json::Value {
    let node = c
        .after
        .as_ref()
        .or(c.before.as_ref())
        .expect("a change has a side");
    json!({
        "path": path_text(&c.path),
        "change": c.word(),
        "type": kind_word(node.kind),
        "content": c.content,
        "metadata": c.metadata,
        "size_before": c.before.as_ref().map(|n| n.size),
        "size_after": c.after.as_ref().map(|n| n.size),
    })
}
