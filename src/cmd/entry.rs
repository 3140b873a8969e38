//! How `ls`, `find` and `diff` show one entry of a point: its path, `ls -l`'s columns, and its
//! JSON object (times in RFC 3339).

use serde_json::{Value, json};

use vaultfs::format::{Node, NodeKind};
use vaultfs::vault::names::rfc3339;

/// A path as text (names that are not UTF-8 are shown lossily).
pub fn path_text(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

pub fn kind_word(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::Socket => "socket",
    }
}

/// `drwxr-xr-x`, as `ls -l` shows it (set-id and sticky bits included).
pub fn mode_string(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
    };
    let m = node.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => set.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        t,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}

/// `ls -l`'s line: mode, owner, group, size, mtime, path (and a symlink's target).
pub fn long_line(path: &[u8], node: &Node) -> String {
    let mut line = format!(
        "{} {:>5} {:>5} {:>12} {} {}",
        mode_string(node),
        node.uid,
        node.gid,
        node.size,
        rfc3339(node.mtime_ns),
        path_text(path)
    );
    if node.kind == NodeKind::Symlink {
        line.push_str(" -> ");
        line.push_str(&String::from_utf8_lossy(&node.target));
    }
    line
}

/// One entry as JSON.
pub fn entry_json(path: &[u8], node: &Node) -> Value {
    let mut v = json!({
        "path": path_text(path),
        "name": String::from_utf8_lossy(&node.name),
        "type": kind_word(node.kind),
        "mode": format!("{:04o}", node.mode),
        "uid": node.uid,
        "gid": node.gid,
        "size": node.size,
        "mtime": rfc3339(node.mtime_ns),
    });
    if node.kind == NodeKind::Symlink {
        v["target"] = json!(String::from_utf8_lossy(&node.target));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaultfs::store::BlobId;
    use vaultfs::vault::tree::root_node;

    #[test]
    fn modes_read_as_ls_shows_them() {
        let mut n = root_node(BlobId([0; 32]));
        assert_eq!(mode_string(&n), "drwxr-xr-x");
        (n.kind, n.mode) = (NodeKind::File, 0o4754);
        assert_eq!(mode_string(&n), "-rwsr-xr--");
        n.mode = 0o1644;
        assert_eq!(mode_string(&n), "-rw-r--r-T");
    }
}
