//! Inode numbers and file handles the whole view agrees on: the fixed directories at the top,
//! and the bit that marks what belongs to `incoming/`. Which side answers for a number is
//! decided in `view/mod.rs` only.

pub const ROOT: u64 = 1;
pub const POINTS: u64 = 2;
pub const INCOMING: u64 = 3;
pub const DELETED: u64 = 4;
/// `versions/`: the history of every path (`points::versions`).
pub const VERSIONS: u64 = 5;

/// Top bit of every inode number and file handle of an `incoming/` tree; points use numbers
/// below it (derived, see `points::inodes`), so the two never meet.
pub const INCOMING_BIT: u64 = 1 << 63;
/// Second bit of directory handles (listings), which the view keeps for both sides.
pub const DIR_HANDLE_BIT: u64 = 1 << 62;
