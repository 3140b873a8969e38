//! The view's vocabulary: what a door (the FUSE mount, a WebDAV server, a test) asks with and
//! gets back. Nothing here knows about FUSE.

use std::time::SystemTime;

use crate::format::NodeKind;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl From<NodeKind> for Kind {
    fn from(k: NodeKind) -> Kind {
        match k {
            NodeKind::File => Kind::File,
            NodeKind::Dir => Kind::Dir,
            NodeKind::Symlink => Kind::Symlink,
            NodeKind::Fifo => Kind::Fifo,
            NodeKind::CharDevice => Kind::CharDevice,
            NodeKind::BlockDevice => Kind::BlockDevice,
            NodeKind::Socket => Kind::Socket,
        }
    }
}

/// How long what the view says about an entry stays true, so that a door can cache it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stability {
    /// Inside a point: never changes.
    Immutable,
    /// The listings above the points (root, `points/`, `.deleted/`, `incoming/`, item and point
    /// directories, `latest`): they change with the catalog, through any command.
    Catalog,
    /// Inside `incoming/ITEM/`: changes only through the view itself.
    Live,
    /// Depends on who asks (an item directory, or a listing of items, when roles are
    /// enforced): a door may not keep it, so every caller's path goes through the view.
    Caller,
}

/// Attributes of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    /// Permission bits (`mode & 0o7777`).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub stability: Stability,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: Vec<u8>,
}

impl DirEntry {
    /// The "." and ".." entries every listing starts with.
    pub fn dots(ino: u64, parent: u64) -> Vec<DirEntry> {
        [(ino, &b"."[..]), (parent, &b".."[..])]
            .into_iter()
            .map(|(ino, name)| DirEntry {
                ino,
                kind: Kind::Dir,
                name: name.to_vec(),
            })
            .collect()
    }

    pub fn is_dot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The entry, with one reference counted (see `View::forget`).
    Found(Attr),
    /// No such name; it stays absent as long as the directory's listing does.
    Absent(Stability),
}

/// An open file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// Whether the content may be kept by the door across opens.
    pub stability: Stability,
}

/// Who makes an entry (its owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// Attribute changes of a `setattr`. Times are ns since the epoch.
#[derive(Debug, Default, Clone)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub ctime_ns: Option<i64>,
}

/// What a rename may do to an entry already at the new name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace it (plain `rename(2)`).
    Replace,
    /// Fail if there is one (`RENAME_NOREPLACE`).
    NoReplace,
    /// Anything else (`RENAME_EXCHANGE`, `RENAME_WHITEOUT`): not supported.
    Other,
}

/// What a `setxattr` requires of the attribute's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrSet {
    /// Create or replace.
    Any,
    /// It must not exist yet (`XATTR_CREATE`).
    Create,
    /// It must exist (`XATTR_REPLACE`).
    Replace,
}

/// Space of the vault's filesystem as the view reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Blocks in all: the vault's packs plus what is free.
    pub blocks: u64,
    pub free: u64,
    pub block_size: u32,
}

/// The longest name component, in bytes.
pub const NAME_MAX: usize = 255;
