//! The catalog in the index database: items and points, sealed so its files reveal no names.
//!
//! Keys: `items`: keyed-hash(item)[..16]; `points`: keyed-hash(item)[..16] ‖ point name (a UTC
//! timestamp, so a range scan lists an item's points in time order). Values: postcard records
//! sealed with the data key, the database key bound into the AAD so a value cannot be moved to
//! another key. Every record also lives in the packs as a meta blob; this is a cache that
//! `repair` can rebuild.

use crate::format::{
    self, DamageRecord, IncomingRecord, ItemRecord, MetaRecord, PointRecord, PolicyRecord,
};
use crate::store::codec::Codec;
use crate::store::index::{Db, Tree};
use crate::store::{BlobKind, Damaged};

use super::{Result, VaultError};

const ITEM_AAD: &[u8] = b"vaultfs catalog item";
const POINT_AAD: &[u8] = b"vaultfs catalog point";
const INCOMING_AAD: &[u8] = b"vaultfs catalog incoming";
const POLICY_AAD: &[u8] = b"vaultfs catalog policy";
const CONFIG_GENERATION_AAD: &[u8] = b"vaultfs catalog config generation";
const CONFIG_GENERATION_KEY: &[u8] = b"config generation";
const DAMAGE_AAD: &[u8] = b"vaultfs catalog damage";
const AUDIT_HEAD_AAD: &[u8] = b"vaultfs catalog audit head";
const AUDIT_HEAD_KEY: &[u8] = b"audit head";
const APPROVAL_AAD: &[u8] = b"vaultfs catalog used approval";
/// The database tree of damage marks: made by `repair` only, so a read-only open writes nothing.
const DAMAGE_TREE: &str = "damaged";

pub struct Catalog {
    items: Tree,
    points: Tree,
    /// Key: keyed-hash(item)[..16]; value: the item's newest [`IncomingRecord`] (format v2).
    incoming: Tree,
    /// Key: keyed-hash(item)[..16]; value: the item's [`PolicyRecord`] (format v2).
    policies: Tree,
    /// Vault-wide state (format v3): the newest config generation this database has seen, so
    /// an older config copied back is found at open.
    state: Tree,
    /// Told the item whenever its item or point records change (see [`Catalog::on_change`]).
    listener: std::sync::OnceLock<Listener>,
    db: Db,
}

/// Every catalog record that opens, and each value that does not.
#[derive(Debug, Default)]
pub struct Scan {
    pub records: Vec<MetaRecord>,
    pub damaged: Vec<DamagedValue>,
}

/// A catalog value that does not open: which record it held, as far as its key tells.
#[derive(Debug)]
pub struct DamagedValue {
    pub key: ValueKey,
    /// What is wrong, in words.
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKey {
    /// An item record under this item key.
    Item(Vec<u8>),
    /// A point record under this point key.
    Point(Vec<u8>),
    /// An incoming or policy record of this item.
    OfItem(String),
    /// A key that does not even read.
    Unknown,
}

impl ValueKey {
    /// Whether `rec` is the record this key holds.
    pub fn holds(&self, codec: &Codec, rec: &MetaRecord) -> bool {
        match (self, rec) {
            (ValueKey::Item(k), MetaRecord::Item(r)) => Catalog::item_key(codec, &r.name) == k[..],
            (ValueKey::Point(k), MetaRecord::Point(p)) => {
                Catalog::point_key(codec, &p.item, &p.name) == *k
            }
            (ValueKey::OfItem(item), MetaRecord::Incoming(i)) => i.item == *item,
            (ValueKey::OfItem(item), MetaRecord::Policy(p)) => p.item == *item,
            _ => false,
        }
    }
}

type Listener = Box<dyn Fn(&str) + Send + Sync>;

fn aad(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut a = prefix.to_vec();
    a.extend_from_slice(key);
    a
}

/// A catalog value that does not open or decode as the `what` its tree holds.
fn bad(what: &'static str, e: impl std::fmt::Display) -> VaultError {
    VaultError::corrupt(Damaged::Record(what), format!("is damaged: {e}"))
}

/// Open and decode a sealed catalog value.
fn open_value<T: serde::de::DeserializeOwned>(
    codec: &Codec,
    prefix: &[u8],
    key: &[u8],
    v: &[u8],
    what: &'static str,
) -> Result<T> {
    let plain = codec
        .open_raw(v, &aad(prefix, key))
        .map_err(|e| bad(what, e))?;
    format::decode(&plain, what).map_err(|e| bad(what, e))
}

impl Catalog {
    pub fn open(db: &Db) -> Result<Catalog> {
        Ok(Catalog {
            items: db.tree("items")?,
            points: db.tree("points")?,
            incoming: db.tree("incoming")?,
            policies: db.tree("policies")?,
            state: db.tree("state")?,
            listener: std::sync::OnceLock::new(),
            db: db.clone(),
        })
    }

    /// Call `f` with the item's name after every change to an item or point record (the mount
    /// daemon's listings of items and points depend on them). Set once per process.
    pub fn on_change(&self, f: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.listener.set(Box::new(f));
    }

    fn changed(&self, item: &str) {
        if let Some(f) = self.listener.get() {
            f(item);
        }
    }

    /// The database key of an item's records: a keyed hash, so keys reveal no names.
    pub fn item_key(codec: &Codec, item: &str) -> [u8; 16] {
        let id = codec.blob_id(
            BlobKind::Meta,
            format!("catalog item key\0{item}").as_bytes(),
        );
        id.0[..16].try_into().expect("16 bytes")
    }

    /// The database key of a point: its item's key, then its name (a time, so a prefix scan
    /// lists an item's points in order).
    pub fn point_key(codec: &Codec, item: &str, point: &str) -> Vec<u8> {
        let mut k = Self::item_key(codec, item).to_vec();
        k.extend_from_slice(point.as_bytes());
        k
    }

    fn open_item(codec: &Codec, key: &[u8], v: &[u8]) -> Result<ItemRecord> {
        let rec: ItemRecord = open_value(codec, ITEM_AAD, key, v, "item record")?;
        if Self::item_key(codec, &rec.name).as_slice() != key {
            return Err(bad("item record", "stored under another item's key"));
        }
        Ok(rec)
    }

    fn open_point(codec: &Codec, key: &[u8], v: &[u8]) -> Result<PointRecord> {
        let what = "point record";
        let plain = codec
            .open_raw(v, &aad(POINT_AAD, key))
            .map_err(|e| bad(what, e))?;
        let rec = format::decode_point(&plain).map_err(|e| bad(what, e))?;
        if Self::point_key(codec, &rec.item, &rec.name) != key {
            return Err(bad("point record", "stored under another point's key"));
        }
        Ok(rec)
    }

    pub fn put_item(&self, codec: &Codec, rec: &ItemRecord) -> Result<()> {
        let key = Self::item_key(codec, &rec.name);
        let v = codec.seal_raw(&format::encode(rec), &aad(ITEM_AAD, &key))?;
        self.items.insert(key, v)?;
        self.changed(&rec.name);
        Ok(())
    }

    pub fn item(&self, codec: &Codec, name: &str) -> Result<Option<ItemRecord>> {
        let key = Self::item_key(codec, name);
        match self.items.get(key)? {
            Some(v) => Ok(Some(Self::open_item(codec, &key, &v)?)),
            None => Ok(None),
        }
    }

    /// All items, sorted by name.
    pub fn items(&self, codec: &Codec) -> Result<Vec<ItemRecord>> {
        let mut out = Vec::new();
        for kv in self.items.iter() {
            let (k, v) = kv?;
            out.push(Self::open_item(codec, &k, &v)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn put_point(&self, codec: &Codec, rec: &PointRecord) -> Result<()> {
        let key = Self::point_key(codec, &rec.item, &rec.name);
        let v = codec.seal_raw(&format::encode(rec), &aad(POINT_AAD, &key))?;
        self.points.insert(key, v)?;
        self.changed(&rec.item);
        Ok(())
    }

    pub fn point(&self, codec: &Codec, item: &str, name: &str) -> Result<Option<PointRecord>> {
        let key = Self::point_key(codec, item, name);
        match self.points.get(&key)? {
            Some(v) => Ok(Some(Self::open_point(codec, &key, &v)?)),
            None => Ok(None),
        }
    }

    /// Points of one item in creation order.
    pub fn points_of(&self, codec: &Codec, item: &str) -> Result<Vec<PointRecord>> {
        let mut out = Vec::new();
        for kv in self.points.scan_prefix(Self::item_key(codec, item)) {
            let (k, v) = kv?;
            out.push(Self::open_point(codec, &k, &v)?);
        }
        out.sort_by(|a, b| {
            (a.created_ns, a.name.len(), &a.name).cmp(&(b.created_ns, b.name.len(), &b.name))
        });
        Ok(out)
    }

    /// Seal `rec` under `item`'s key in a per-item tree (incoming records, policies).
    fn put_per_item<T: serde::Serialize>(
        tree: &Tree,
        prefix: &[u8],
        codec: &Codec,
        item: &str,
        rec: &T,
    ) -> Result<()> {
        let key = Self::item_key(codec, item);
        let v = codec.seal_raw(&format::encode(rec), &aad(prefix, &key))?;
        tree.insert(key, v)?;
        Ok(())
    }

    /// Open `item`'s record in a per-item tree; `item_of` names the item the record says.
    fn get_per_item<T: serde::de::DeserializeOwned>(
        tree: &Tree,
        prefix: &[u8],
        codec: &Codec,
        item: &str,
        what: &'static str,
        item_of: fn(&T) -> &str,
    ) -> Result<Option<T>> {
        let key = Self::item_key(codec, item);
        let Some(v) = tree.get(key)? else {
            return Ok(None);
        };
        let rec: T = open_value(codec, prefix, &key, &v, what)?;
        if item_of(&rec) != item {
            return Err(bad(what, "stored under another item's key"));
        }
        Ok(Some(rec))
    }

    pub fn put_incoming(&self, codec: &Codec, rec: &IncomingRecord) -> Result<()> {
        Self::put_per_item(&self.incoming, INCOMING_AAD, codec, &rec.item, rec)
    }

    pub fn incoming(&self, codec: &Codec, item: &str) -> Result<Option<IncomingRecord>> {
        Self::get_per_item(
            &self.incoming,
            INCOMING_AAD,
            codec,
            item,
            "incoming record",
            |r: &IncomingRecord| &r.item,
        )
    }

    pub fn put_policy(&self, codec: &Codec, rec: &PolicyRecord) -> Result<()> {
        Self::put_per_item(&self.policies, POLICY_AAD, codec, &rec.item, rec)
    }

    pub fn policy(&self, codec: &Codec, item: &str) -> Result<Option<PolicyRecord>> {
        Self::get_per_item(
            &self.policies,
            POLICY_AAD,
            codec,
            item,
            "policy record",
            |r: &PolicyRecord| &r.item,
        )
    }

    /// The newest config generation recorded, if any.
    pub fn config_generation(&self, codec: &Codec) -> Result<Option<u64>> {
        match self.state.get(CONFIG_GENERATION_KEY)? {
            Some(v) => {
                let g: u64 = open_value(
                    codec,
                    CONFIG_GENERATION_AAD,
                    CONFIG_GENERATION_KEY,
                    &v,
                    "config generation",
                )?;
                Ok(Some(g))
            }
            None => Ok(None),
        }
    }

    pub fn set_config_generation(&self, codec: &Codec, generation: u64) -> Result<()> {
        let aad = aad(CONFIG_GENERATION_AAD, CONFIG_GENERATION_KEY);
        let v = codec.seal_raw(&format::encode(&generation), &aad)?;
        self.state.insert(CONFIG_GENERATION_KEY, v)?;
        Ok(())
    }

    /// The audit log's head: the newest record's sequence number and the blake3 of its sealed
    /// bytes (DESIGN §13), kept beside the config generation.
    pub fn audit_head(&self, codec: &Codec) -> Result<Option<(u64, [u8; 32])>> {
        match self.state.get(AUDIT_HEAD_KEY)? {
            Some(v) => Ok(Some(open_value(
                codec,
                AUDIT_HEAD_AAD,
                AUDIT_HEAD_KEY,
                &v,
                "audit head",
            )?)),
            None => Ok(None),
        }
    }

    pub fn set_audit_head(&self, codec: &Codec, head: (u64, [u8; 32])) -> Result<()> {
        let aad = aad(AUDIT_HEAD_AAD, AUDIT_HEAD_KEY);
        let v = codec.seal_raw(&format::encode(&head), &aad)?;
        self.state.insert(AUDIT_HEAD_KEY, v)?;
        Ok(())
    }

    /// Whether the guard approval `id` was used (DESIGN §13: single use).
    pub fn approval_used(&self, id: &str) -> Result<bool> {
        Ok(self.state.get(format!("approval {id}"))?.is_some())
    }

    /// Remember that approval `id` (valid until `expires_ns`) was used.
    pub fn mark_approval_used(&self, codec: &Codec, id: &str, expires_ns: i64) -> Result<()> {
        let key = format!("approval {id}");
        let v = codec.seal_raw(
            &format::encode(&expires_ns),
            &aad(APPROVAL_AAD, key.as_bytes()),
        )?;
        self.state.insert(key, v)?;
        Ok(())
    }

    /// Forget a point (gc purge), and its damage mark.
    pub fn remove_point(&self, codec: &Codec, item: &str, name: &str) -> Result<()> {
        let key = Self::point_key(codec, item, name);
        self.points.remove(&key)?;
        if let Some(marks) = self.db.tree_if_exists(DAMAGE_TREE)? {
            marks.remove(&key)?;
        }
        self.changed(item);
        Ok(())
    }

    /// Mark a point as having lost the data of `rec.paths` (`repair`).
    pub fn put_damage(&self, codec: &Codec, rec: &DamageRecord) -> Result<()> {
        let key = Self::point_key(codec, &rec.item, &rec.point);
        let v = codec.seal_raw(&format::encode(rec), &aad(DAMAGE_AAD, &key))?;
        Ok(self.db.tree(DAMAGE_TREE)?.insert(&key, v)?)
    }

    /// The damage mark of a point, if it has one.
    pub fn damage(&self, codec: &Codec, item: &str, point: &str) -> Result<Option<DamageRecord>> {
        let Some(marks) = self.db.tree_if_exists(DAMAGE_TREE)? else {
            return Ok(None);
        };
        let key = Self::point_key(codec, item, point);
        let Some(v) = marks.get(&key)? else {
            return Ok(None);
        };
        let rec: DamageRecord = open_value(codec, DAMAGE_AAD, &key, &v, "damage mark")?;
        if Self::point_key(codec, &rec.item, &rec.point) != key {
            return Err(bad("damage mark", "stored under another point's key"));
        }
        Ok(Some(rec))
    }

    /// Every record that opens, one by one, so one damaged value hides nothing else; the
    /// others are described (`check`, `repair`).
    pub fn scan(&self, codec: &Codec) -> Scan {
        let mut out = Scan::default();
        let mut damaged = |key: ValueKey, line: String| {
            out.damaged.push(DamagedValue {
                key,
                line: format!("catalog: {line}"),
            })
        };
        let mut records = Vec::new();
        let mut item_names: Vec<String> = Vec::new();
        for kv in self.items.iter() {
            match kv {
                Ok((k, v)) => match Self::open_item(codec, &k, &v) {
                    Ok(rec) => {
                        item_names.push(rec.name.clone());
                        records.push(MetaRecord::Item(rec));
                    }
                    Err(e) => damaged(ValueKey::Item(k.to_vec()), format!("an item record: {e}")),
                },
                Err(e) => damaged(ValueKey::Unknown, e.to_string()),
            }
        }
        // Names for keys, so a damaged point record can be named.
        let item_of = |key: &[u8]| -> String {
            item_names
                .iter()
                .find(|n| key.starts_with(&Self::item_key(codec, n)))
                .cloned()
                .unwrap_or_else(|| "an unknown item".into())
        };
        for kv in self.points.iter() {
            match kv {
                Ok((k, v)) => match Self::open_point(codec, &k, &v) {
                    Ok(rec) => records.push(MetaRecord::Point(Box::new(rec))),
                    Err(e) => {
                        let name = String::from_utf8_lossy(k.get(16..).unwrap_or(&[]));
                        let line = format!("the record of point {}/{name}: {e}", item_of(&k));
                        damaged(ValueKey::Point(k.to_vec()), line);
                    }
                },
                Err(e) => damaged(ValueKey::Unknown, e.to_string()),
            }
        }
        for name in &item_names {
            let key = || ValueKey::OfItem(name.clone());
            match self.incoming(codec, name) {
                Ok(Some(r)) => records.push(MetaRecord::Incoming(Box::new(r))),
                Ok(None) => {}
                Err(e) => damaged(key(), format!("the incoming record of {name}: {e}")),
            }
            match self.policy(codec, name) {
                Ok(Some(r)) => records.push(MetaRecord::Policy(r)),
                Ok(None) => {}
                Err(e) => damaged(key(), format!("the policy record of {name}: {e}")),
            }
        }
        out.records = records;
        out
    }

    /// Every saved incoming record.
    pub fn incoming_all(&self, codec: &Codec) -> Result<Vec<IncomingRecord>> {
        let mut out = Vec::new();
        for it in self.items(codec)? {
            if let Some(r) = self.incoming(codec, &it.name)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Forget an item that has no points (and its incoming record).
    pub fn remove_item(&self, codec: &Codec, item: &str) -> Result<()> {
        let key = Self::item_key(codec, item);
        self.incoming.remove(key)?;
        self.policies.remove(key)?;
        self.items.remove(key)?;
        self.changed(item);
        Ok(())
    }

    /// Remove everything (used by `repair` before refilling).
    pub fn clear(&self) -> Result<()> {
        self.items.clear()?;
        self.points.clear()?;
        self.incoming.clear()?;
        self.policies.clear()?;
        self.state.clear()?;
        Ok(())
    }
}
