//! The catalog in sled: items and points, sealed so sled's files reveal no names.
//!
//! Keys: `items`: keyed-hash(item)[..16]; `points`: keyed-hash(item)[..16] ‖ point name (a UTC
//! timestamp, so a range scan lists an item's points in time order). Values: postcard records
//! sealed with the data key. Every record also lives in the packs as a meta blob; this is a
//! cache that `repair` can rebuild.

use crate::format::{self, ItemRecord, PointRecord};
use crate::store::StoreError;
use crate::store::codec::Codec;
use crate::store::index::Db;

use super::{Result, VaultError};

const ITEM_AAD: &[u8] = b"vaultfs catalog item";
const POINT_AAD: &[u8] = b"vaultfs catalog point";

pub struct Catalog {
    items: sled::Tree,
    points: sled::Tree,
}

fn sled_err(e: sled::Error) -> VaultError {
    VaultError::Store(StoreError::Index(e.to_string()))
}

impl Catalog {
    pub fn open(db: &Db) -> Result<Catalog> {
        Ok(Catalog {
            items: db.tree("items")?,
            points: db.tree("points")?,
        })
    }

    fn item_key(codec: &Codec, item: &str) -> [u8; 16] {
        let id = codec.blob_id(format!("catalog item key\0{item}").as_bytes());
        id.0[..16].try_into().expect("16 bytes")
    }

    fn point_key(codec: &Codec, item: &str, point: &str) -> Vec<u8> {
        let mut k = Self::item_key(codec, item).to_vec();
        k.extend_from_slice(point.as_bytes());
        k
    }

    fn open_value<T: for<'a> serde::Deserialize<'a>>(
        codec: &Codec,
        v: &[u8],
        aad: &[u8],
        what: &str,
    ) -> Result<T> {
        let plain = codec
            .open_raw(v, aad)
            .map_err(|e| VaultError::BadCatalog(format!("{what}: {e}")))?;
        format::decode(&plain, what).map_err(VaultError::BadCatalog)
    }

    pub fn put_item(&self, codec: &Codec, rec: &ItemRecord) -> Result<()> {
        let v = codec.seal_raw(&format::encode(rec), ITEM_AAD)?;
        self.items
            .insert(Self::item_key(codec, &rec.name), v)
            .map_err(sled_err)?;
        Ok(())
    }

    pub fn item(&self, codec: &Codec, name: &str) -> Result<Option<ItemRecord>> {
        match self
            .items
            .get(Self::item_key(codec, name))
            .map_err(sled_err)?
        {
            Some(v) => Ok(Some(Self::open_value(codec, &v, ITEM_AAD, "item record")?)),
            None => Ok(None),
        }
    }

    /// All items, sorted by name.
    pub fn items(&self, codec: &Codec) -> Result<Vec<ItemRecord>> {
        let mut out = Vec::new();
        for kv in self.items.iter() {
            let (_, v) = kv.map_err(sled_err)?;
            out.push(Self::open_value::<ItemRecord>(
                codec,
                &v,
                ITEM_AAD,
                "item record",
            )?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn put_point(&self, codec: &Codec, rec: &PointRecord) -> Result<()> {
        let v = codec.seal_raw(&format::encode(rec), POINT_AAD)?;
        self.points
            .insert(Self::point_key(codec, &rec.item, &rec.name), v)
            .map_err(sled_err)?;
        Ok(())
    }

    pub fn point(&self, codec: &Codec, item: &str, name: &str) -> Result<Option<PointRecord>> {
        match self
            .points
            .get(Self::point_key(codec, item, name))
            .map_err(sled_err)?
        {
            Some(v) => Ok(Some(Self::open_value(
                codec,
                &v,
                POINT_AAD,
                "point record",
            )?)),
            None => Ok(None),
        }
    }

    /// Points of one item in name (= time) order.
    pub fn points_of(&self, codec: &Codec, item: &str) -> Result<Vec<PointRecord>> {
        let mut out = Vec::new();
        for kv in self.points.scan_prefix(Self::item_key(codec, item)) {
            let (_, v) = kv.map_err(sled_err)?;
            out.push(Self::open_value::<PointRecord>(
                codec,
                &v,
                POINT_AAD,
                "point record",
            )?);
        }
        out.sort_by(|a, b| {
            (a.created_ns, a.name.len(), &a.name).cmp(&(b.created_ns, b.name.len(), &b.name))
        });
        Ok(out)
    }

    /// Remove everything (used by `repair` before refilling).
    pub fn clear(&self) -> Result<()> {
        self.items.clear().map_err(sled_err)?;
        self.points.clear().map_err(sled_err)?;
        Ok(())
    }
}
