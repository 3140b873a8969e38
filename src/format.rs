//! Every structure vaultfs persists, in one place, so a format change is one diff.
//!
//! Byte layouts are described in DESIGN.md ("On-disk format"). Encodings never depend on the
//! platform's word size: postcard uses varints, fixed fields are little-endian.

use serde::{Deserialize, Serialize};

use crate::store::BlobId;

/// The vault format this build reads and writes. Bump on any incompatible change.
pub const FORMAT_VERSION: u32 = 5;
/// Oldest version this build opens. An older vault is upgraded in place when opened: v2 only
/// added the incoming and policy records; v3 changes the config (key slots, copies, DESIGN.md §3)
/// and frames blobs in packs written from then on (older packs still read), so nothing stored is
/// rewritten. v4 adds the config's authenticated `immutability` (DESIGN.md §13): a v3 build must
/// refuse a vault it would let delete protected points. v5 adds a point's origin (host, source
/// paths, tags) at the end of `PointRecord`; older point records still read ([`decode_point`]),
/// but a v4 build would drop the origin silently, so it must refuse a v5 vault.
pub const FORMAT_VERSION_OLDEST: u32 = 1;
/// Value of the `format` field in the config file; tells a vault from any other JSON file.
pub const FORMAT_NAME: &str = "vaultfs";

/// `VAULT/config` (and its copy `VAULT/config.copy`): the only plaintext files with content.
/// JSON so that a human (or an older or newer vaultfs) can read the version without
/// understanding anything else. From v3 the file ends in a checksum of its bytes (written
/// and checked by `vault::config`, not a field here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigFile {
    pub format: String,
    pub version: u32,
    /// 16 random bytes, hex. Bound into every sealed header so files cannot move between vaults.
    pub vault_id: String,
    /// v3: counts every write of the config; the newer of two copies wins, and a copy older
    /// than the index database or the packs know is a rollback.
    #[serde(default)]
    pub generation: u64,
    pub key_slots: Vec<KeySlot>,
    /// v3: the data keys of key epochs after 0, oldest first; the last one seals new data.
    #[serde(default)]
    pub data_keys: Vec<DataKeyEntry>,
    /// v3: keys removed from slots (slot removed or rotated), so an error can name the slot a
    /// revoked key belonged to. Passphrases leave no trace here.
    #[serde(default)]
    pub revoked: Vec<RevokedKey>,
    /// v4: whether points inside their retention may be deleted (DESIGN.md §13). Absent means
    /// disabled; from v4 the params' associated data binds it, so it cannot be edited.
    #[serde(default, skip_serializing_if = "Immutability::is_disabled")]
    pub immutability: Immutability,
    /// v4: the guard's ed25519 public key, hex, when one is registered (DESIGN.md §13); bound
    /// into the params' associated data like `immutability`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_key: Option<String>,
    /// v4: roles the owner granted (DESIGN.md §13), bound into the params' associated data
    /// when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleGrant>,
    /// [`VaultParams`], postcard-encoded and sealed with the config key, hex. From v3 its
    /// associated data binds the generation, the key slots and the data keys.
    pub params: String,
}

/// A built-in role, weakest first (DESIGN.md §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Operator,
    Contributor,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Contributor => "contributor",
        }
    }
}

/// A role granted to a user or a group, on every item or one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// A group's gid when true, else a user's uid.
    pub group: bool,
    pub id: u32,
    /// The name when granted (for listing; the id decides).
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// An immutable vault (v4): `Enabled` refuses deleting a point its retention still keeps and
/// lowering retention or soft delete; `Locked` is `Enabled` for ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Immutability {
    #[default]
    Disabled,
    Enabled,
    Locked,
}

impl Immutability {
    pub fn is_disabled(&self) -> bool {
        *self == Immutability::Disabled
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Immutability::Disabled => "disabled",
            Immutability::Enabled => "enabled",
            Immutability::Locked => "locked",
        }
    }
}

/// A key slot: the master key wrapped (AES-256-GCM) under a key-encryption key. Fields not
/// used by a slot's kind are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlot {
    pub id: u32,
    /// `passphrase` (Argon2id), `keyfile` (v3), `rsa` (v3: RSA-OAEP-SHA256).
    pub kind: String,
    /// v3: a name for people (`ops laptop`, `kms prod`).
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_m_kib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_t: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2_p: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Keyfile slots: `keys::slot::keyfile_fingerprint` of the key, so the file can be told
    /// apart (and recognised once revoked) without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyfile_fingerprint: Option<String>,
    /// RSA slots: the customer's public key, SubjectPublicKeyInfo DER, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_public_key: Option<String>,
    /// RSA slots: the slot's KEK, RSA-OAEP-SHA256 encrypted to that key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_wrapped_kek: Option<String>,
    pub nonce: String,
    pub wrapped_key: String,
}

/// v3: a key that no longer opens the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedKey {
    pub slot: u32,
    pub kind: String,
    pub label: String,
    /// RSA: the first 8 bytes of SHA-256 of the public key; keyfile: of a keyed blake3 of the
    /// key (`keys::slot::keyfile_fingerprint`); hex.
    pub fingerprint: String,
    pub removed_ns: i64,
}

/// v3: the data key of one key epoch, sealed with the config key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKeyEntry {
    pub epoch: u32,
    pub created_ns: i64,
    /// seal(key, aad = "vaultfs v3 data key " ‖ vault id hex ‖ epoch u32 LE), hex.
    pub sealed: String,
}

/// v3: a copy of the config file sealed into the packs, so `repair` can bring back a lost or
/// rolled-back config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub generation: u64,
    /// The config file's bytes.
    pub config: Vec<u8>,
}

/// One entry of the audit log (DESIGN §13): who did what, when (vault time), and how it ended.
/// Stored as its own sealed object `audit/<seq>`, chained to the one before by `prev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, ...: its place in the log (also bound into the seal).
    pub seq: u64,
    /// blake3 of the sealed bytes of record `seq - 1` (zeros for the first).
    pub prev: [u8; 32],
    pub time_ns: i64,
    pub uid: u32,
    pub user: String,
    /// The operation: a command (`delete`, `key add`), or what the mount or scheduler did.
    pub op: String,
    pub item: Option<String>,
    /// The operation's parameters as given (the command's arguments).
    pub params: String,
    pub outcome: AuditOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditOutcome {
    Ok,
    /// The operation ran and failed: the error line.
    Failed(String),
    /// Refused by a role, immutability or the guard: the reason.
    Denied(String),
}

/// Vault-wide parameters, fixed at `init` except the soft-delete settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultParams {
    pub created_ns: i64,
    pub chunk_min_bytes: u32,
    pub chunk_avg_bytes: u32,
    pub chunk_max_bytes: u32,
    pub zstd_level: i32,
    pub pack_target_bytes: u64,
    pub soft_delete_days: u32,
    pub soft_delete_always_on: bool,
}

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// One entry of a directory. Names and link targets are raw bytes: Unix names need not be UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission and set-id bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub size: u64,
    /// Data chunks of a regular file, in order, with their plaintext lengths (so a read at any
    /// offset finds its chunk without decompressing the ones before it).
    pub chunks: Vec<ChunkRef>,
    /// Tree of a directory.
    pub subtree: Option<BlobId>,
    /// Target of a symlink.
    pub target: Vec<u8>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Non-zero for files that had other hard links in the source: equal values within one point
    /// mean one inode. `nlink` is the link count seen in the source.
    pub link_group: u64,
    pub nlink: u32,
    /// Device number for character and block devices.
    pub rdev: u64,
    /// Source inode and ctime, to skip re-reading unchanged files on the next backup.
    pub src_ino: u64,
    pub ctime_ns: i64,
}

/// One chunk of a file: its blob id and plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: BlobId,
    pub len: u32,
}

/// One directory listing, entries sorted by name bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// An item: a protected source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub name: String,
    pub created_ns: i64,
    /// Higher revision wins when `repair` finds several versions in the packs.
    pub revision: u64,
}

/// A recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointRecord {
    pub item: String,
    pub name: String,
    pub created_ns: i64,
    /// The source directory itself (mode, owner, mtime, xattrs); `root.subtree` is its tree.
    pub root: Node,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Set when soft-deleted; the point is purged `soft_delete_days` after this.
    pub deleted_at_ns: Option<i64>,
    pub revision: u64,
    /// v5: where the point came from. `None` for points recorded before v5, and then not
    /// encoded at all: such a record keeps its v4 bytes (so gc, which finds live meta blobs
    /// by encoding records again, still finds it) and is read by [`decode_point`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<PointOrigin>,
}

/// v5: the machine, sources and tags of a point (DESIGN.md §14).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointOrigin {
    /// The host name of the machine that made it (empty if it could not be read).
    pub host: String,
    /// The sources, as absolute paths (raw bytes: Unix paths need not be UTF-8); a snapshot of
    /// incoming records `incoming/ITEM`.
    pub paths: Vec<Vec<u8>>,
    /// Tags given with `--tag`, sorted, without repeats.
    pub tags: Vec<String>,
}

/// A point record of formats 1 to 4: no origin. Kept to read them (DESIGN.md §3.8).
#[derive(Deserialize)]
struct PointRecordV4 {
    item: String,
    name: String,
    created_ns: i64,
    root: Node,
    files: u64,
    dirs: u64,
    bytes: u64,
    deleted_at_ns: Option<i64>,
    revision: u64,
}

impl From<PointRecordV4> for PointRecord {
    fn from(p: PointRecordV4) -> Self {
        PointRecord {
            item: p.item,
            name: p.name,
            created_ns: p.created_ns,
            root: p.root,
            files: p.files,
            dirs: p.dirs,
            bytes: p.bytes,
            deleted_at_ns: p.deleted_at_ns,
            revision: p.revision,
            origin: None,
        }
    }
}

impl PointRecord {
    /// Id of the point's root tree.
    pub fn root_tree(&self) -> Option<BlobId> {
        self.root.subtree
    }
}

/// The saved state of an item's writable `incoming/ITEM/` tree (format v2). The mount daemon
/// writes a new revision on fsync, on snapshot and every few seconds while it changes; after a
/// crash, the mount shows incoming as of the newest revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingRecord {
    pub item: String,
    /// The item directory itself; `root.subtree` is its tree.
    pub root: Node,
    pub saved_ns: i64,
    pub revision: u64,
}

/// When the mount daemon snapshots an item's incoming tree (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    /// Every `hours` hours, at multiples of it since the epoch (`hourly` = 1).
    EveryHours(u32),
    /// Every day at `minute` minutes after midnight.
    Daily(u32),
    /// Every week on `weekday` (0 = Monday) at `minute` minutes after midnight.
    Weekly { weekday: u8, minute: u32 },
}

/// How many points to keep (0: rule unused; all zero: keep everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

/// An item's backup policy (format v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub item: String,
    pub schedule: Option<Schedule>,
    pub retention: Retention,
    pub set_ns: i64,
    pub revision: u64,
}

/// A meta blob: how item, point, incoming and policy records live in the packs, so `repair`
/// can rebuild the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaRecord {
    Item(ItemRecord),
    Point(Box<PointRecord>),
    Incoming(Box<IncomingRecord>),
    Policy(PolicyRecord),
    /// v3.
    Config(ConfigRecord),
}

/// A meta record of formats 1 to 4, whose points have no origin.
#[derive(Deserialize)]
enum MetaRecordV4 {
    Item(ItemRecord),
    Point(Box<PointRecordV4>),
    Incoming(Box<IncomingRecord>),
    Policy(PolicyRecord),
    Config(ConfigRecord),
}

impl From<MetaRecordV4> for MetaRecord {
    fn from(m: MetaRecordV4) -> Self {
        match m {
            MetaRecordV4::Item(r) => MetaRecord::Item(r),
            MetaRecordV4::Point(p) => MetaRecord::Point(Box::new((*p).into())),
            MetaRecordV4::Incoming(r) => MetaRecord::Incoming(r),
            MetaRecordV4::Policy(r) => MetaRecord::Policy(r),
            MetaRecordV4::Config(r) => MetaRecord::Config(r),
        }
    }
}

/// The paths of a point whose data `repair` found lost (format v3; only in the index database,
/// which `repair` rebuilds: it is recomputed there from what the packs hold, never read from
/// packs). Paths are as in the point, from its root, `/` first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageRecord {
    pub item: String,
    pub point: String,
    pub paths: Vec<Vec<u8>>,
    pub found_ns: i64,
}

/// Encode with postcard. Encoding in-memory structures cannot fail except on allocation.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encoding of an in-memory value")
}

/// Bytes that authenticated but do not decode as the structure they should hold.
#[derive(Debug, thiserror::Error)]
#[error("does not decode as {what}: {source}")]
pub struct DecodeError {
    pub what: &'static str,
    pub source: postcard::Error,
}

/// Decode with postcard; `what` names the structure in the error.
pub fn decode<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    postcard::from_bytes(bytes).map_err(|source| DecodeError { what, source })
}

/// Decode a point record of any version. Records carry no version, and a vault upgraded in
/// place holds both shapes; they cannot be mistaken for each other: an older record ends where
/// the origin would start, so it fails to decode as the newer shape, and the newer shape is
/// tried first.
pub fn decode_point(bytes: &[u8]) -> Result<PointRecord, DecodeError> {
    decode::<PointRecord>(bytes, "point record").or_else(|e| {
        decode::<PointRecordV4>(bytes, "point record")
            .map(Into::into)
            .map_err(|_| e)
    })
}

/// Decode a meta record of any version (see [`decode_point`]).
pub fn decode_meta(bytes: &[u8]) -> Result<MetaRecord, DecodeError> {
    decode::<MetaRecord>(bytes, "meta record").or_else(|e| {
        decode::<MetaRecordV4>(bytes, "meta record")
            .map(Into::into)
            .map_err(|_| e)
    })
}

/// What a job did (issue 15). Not a meta record: jobs live only in the index database's
/// `jobs` tree (operational history, not backup data), so `repair` does not rebuild them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Snapshot,
    Restore,
    Check,
    Gc,
    Replicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    InProgress,
    Completed,
    CompletedWithWarnings,
    Failed,
    Cancelled,
}

/// A job's figures; which apply depends on the kind (DESIGN §15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFigures {
    pub files: u64,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

/// One job: key in the `jobs` tree is `id` as u64 big-endian (so keys sort by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub kind: JobKind,
    pub item: Option<String>,
    /// `uid N` or `scheduler`.
    pub started_by: String,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    pub status: JobStatus,
    pub figures: JobFigures,
    pub warnings: u64,
    pub error: Option<String>,
    /// The command's own summary line.
    pub summary: Option<String>,
}

/// What raised an alert (issue 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    JobFailed,
    MissedSchedule,
    Corruption,
    LowSpace,
    ProtectionWeakened,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Active,
    Acknowledged,
    Cleared,
}

/// One run of the alert command for an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDelivery {
    pub at_ns: i64,
    pub attempt: u32,
    pub ok: bool,
    /// The exit status, or why it could not run.
    pub detail: String,
}

/// One alert: key in the `alerts` tree is `id` as u64 big-endian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: u64,
    pub kind: AlertKind,
    /// The cause: one alert per cause is raised while it is not cleared (`job_failed/backup/web`).
    pub cause: String,
    pub item: Option<String>,
    pub message: String,
    pub raised_ns: i64,
    pub state: AlertState,
    pub changed_ns: i64,
    /// The job that raised it.
    pub job: Option<u64>,
    pub deliveries: Vec<AlertDelivery>,
}
