//! The frozen on-disk contract (DESIGN.md §3.8): golden vectors of every persisted form,
//! committed in `tests/golden/format-vN.json`, one file per format version.
//!
//! - The vectors of the current version must come out of today's code byte for byte: a change
//!   to any of them is a format change, which needs a version bump and a new file.
//! - Every committed file, of any version this build still opens, must still read: sealed blobs
//!   open, packs list their blobs, configs unlock, records decode to the values they were made
//!   from.
//!
//! The bytes are reproducible because keys, salts, nonces and pack ids are fixed through
//! test-only constructors (`test-hooks`). The zstd frame inside a compressed blob is not part of
//! the format (any valid frame is), so that vector is only read, never compared.
//! To add the file of a new version: bump `FORMAT_VERSION`, run this test with
//! `VAULTFS_GOLDEN_WRITE=1` (it never overwrites a file) and commit the new file.
#![cfg(feature = "test-hooks")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use vaultfs::format::{
    self, ChunkRef, ConfigFile, ConfigRecord, FORMAT_NAME, FORMAT_VERSION, FORMAT_VERSION_OLDEST,
    IncomingRecord, ItemRecord, MetaRecord, Node, NodeKind, PointOrigin, PointRecord, PolicyRecord,
    Retention, RevokedKey, Schedule, Tree, VaultParams,
};
use vaultfs::keys::{Credential, DataKey, KdfParams, MasterKey, rsa};
use vaultfs::store::backend::local::LocalBackend;
use vaultfs::store::backend::{Backend, Key};
use vaultfs::store::chunker::{Chunker, ChunkerParams};
use vaultfs::store::codec::Codec;
use vaultfs::store::index::{self, Db, Location};
use vaultfs::store::pack::{self, PackEntry, PackWriter};
use vaultfs::store::{BlobId, BlobKind, PackId};
use vaultfs::vault::Vault;
use vaultfs::vault::catalog::Catalog;
use zeroize::Zeroizing;

const MASTER: [u8; 32] = *b"vaultfs golden master key 32 b.!";
const NONCE: [u8; 12] = *b"golden nonce";
const SALT: [u8; 16] = *b"golden slot salt";
const PASSPHRASE: &[u8] = b"golden passphrase";
const KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};
const PACK: PackId = PackId(*b"golden pack id16");
const VAULT_ID: [u8; 16] = *b"golden vault id!";
const ZSTD_LEVEL: i32 = 5;
const KEYFILE: [u8; 32] = *b"golden key file, 32 random bytes";
const DATA_KEY_1: [u8; 32] = *b"golden data key of key epoch 1.!";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn file_of(version: u32) -> PathBuf {
    golden_dir().join(format!("format-v{version}.json"))
}

fn codec() -> Codec {
    Codec::with_fixed_nonce(&MasterKey::from_bytes(MASTER), ZSTD_LEVEL, NONCE)
}

fn data_key_1() -> DataKey {
    DataKey::from_secret(1, Zeroizing::new(DATA_KEY_1))
}

/// A codec of key epoch 1 (v3): seals with [`DATA_KEY_1`], opens epochs 0 and 1.
fn codec_epoch1() -> Codec {
    let keys = MasterKey::from_bytes(MASTER).derive_with(&[data_key_1()]);
    Codec::with_fixed_nonce_keys(keys, ZSTD_LEVEL, NONCE)
}

fn passphrase() -> Credential {
    Credential::Passphrase(Zeroizing::new(PASSPHRASE.to_vec()))
}

/// Deterministic bytes (xorshift64), independent of any crate.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn lorem() -> Vec<u8> {
    b"lorem ipsum dolor sit amet, consectetur adipiscing elit\n".repeat(200)
}

fn file_node() -> Node {
    Node {
        name: b"report \xff.txt".to_vec(),
        kind: NodeKind::File,
        mode: 0o4640,
        uid: 1000,
        gid: 100,
        mtime_ns: 1_700_000_000_123_456_789,
        size: 5000,
        chunks: vec![
            ChunkRef {
                id: BlobId([0xaa; 32]),
                len: 3000,
            },
            ChunkRef {
                id: BlobId([0xbb; 32]),
                len: 2000,
            },
        ],
        subtree: None,
        target: Vec::new(),
        xattrs: vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.color".to_vec(), b"blue\0".to_vec()),
        ],
        link_group: 0x9234_5678_9abc_def1,
        nlink: 2,
        rdev: 0,
        src_ino: 424_242,
        ctime_ns: -5,
    }
}

fn dir_node(name: &[u8], subtree: u8) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_ns: 1_600_000_000_000_000_000,
        size: 0,
        chunks: Vec::new(),
        subtree: Some(BlobId([subtree; 32])),
        target: Vec::new(),
        xattrs: Vec::new(),
        link_group: 0,
        nlink: 3,
        rdev: 0,
        src_ino: 7,
        ctime_ns: 1_600_000_000_000_000_001,
    }
}

fn tree() -> Tree {
    let mut link = dir_node(b"link", 0);
    (link.kind, link.subtree, link.target, link.nlink) =
        (NodeKind::Symlink, None, b"../target path".to_vec(), 1);
    let mut dev = dir_node(b"null", 0);
    (dev.kind, dev.subtree, dev.rdev, dev.nlink) = (NodeKind::CharDevice, None, 0x0103, 1);
    let mut fifo = dev.clone();
    (fifo.name, fifo.kind, fifo.rdev) = (b"pipe".to_vec(), NodeKind::Fifo, 0);
    let mut sock = fifo.clone();
    (sock.name, sock.kind) = (b"sock".to_vec(), NodeKind::Socket);
    let mut blk = dev.clone();
    (blk.name, blk.kind) = (b"sda".to_vec(), NodeKind::BlockDevice);
    Tree {
        nodes: vec![
            dir_node(b"etc", 0x11),
            link,
            dev,
            fifo,
            file_node(),
            blk,
            sock,
        ],
    }
}

fn params() -> VaultParams {
    VaultParams {
        created_ns: 1_764_000_000_000_000_000,
        chunk_min_bytes: 256 << 10,
        chunk_avg_bytes: 1 << 20,
        chunk_max_bytes: 4 << 20,
        zstd_level: ZSTD_LEVEL,
        pack_target_bytes: 32 << 20,
        soft_delete_days: 14,
        soft_delete_always_on: true,
    }
}

fn item() -> ItemRecord {
    ItemRecord {
        name: "web01".into(),
        created_ns: 1_764_000_000_000_000_000,
        revision: 3,
    }
}

fn point() -> PointRecord {
    PointRecord {
        item: "web01".into(),
        name: "2026-11-23T23-10-05Z-1".into(),
        created_ns: 1_795_475_405_000_000_000,
        root: dir_node(b"", 0x22),
        files: 12,
        dirs: 3,
        bytes: 1 << 33,
        deleted_at_ns: Some(1_795_500_000_000_000_000),
        revision: 2,
        origin: Some(PointOrigin {
            host: "web01.example.org".into(),
            paths: vec![b"/srv/www".to_vec(), b"/etc/nginx\xff".to_vec()],
            tags: vec!["daily".into(), "env=prod".into()],
        }),
    }
}

/// The point record as the vectors of `version` hold it: before v5 without an origin.
fn point_of(version: u32) -> PointRecord {
    let mut p = point();
    if version < 5 {
        p.origin = None;
    }
    p
}

fn incoming() -> IncomingRecord {
    IncomingRecord {
        item: "web01".into(),
        root: dir_node(b"", 0x33),
        saved_ns: 1_795_475_406_000_000_000,
        revision: 9,
    }
}

fn policy() -> PolicyRecord {
    PolicyRecord {
        item: "web01".into(),
        schedule: Some(Schedule::Weekly {
            weekday: 6,
            minute: 150,
        }),
        retention: Retention {
            last: 1,
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
        },
        set_ns: 1_795_475_407_000_000_000,
        revision: 1,
    }
}

/// The sealed blobs of the vectors: (name, kind, plaintext).
fn blobs() -> Vec<(&'static str, BlobKind, Vec<u8>)> {
    vec![
        ("sealed_blob.data_raw", BlobKind::Data, noise(300, 1)),
        ("sealed_blob.tree_raw", BlobKind::Tree, noise(120, 2)),
        ("sealed_blob.zstd", BlobKind::Data, lorem()),
    ]
}

fn location() -> Location {
    Location {
        pack: PACK,
        offset: 0x0102_0304,
        len: 0x0a0b_0c0d,
        kind: BlobKind::Tree,
    }
}

/// A config: a passphrase and a keyfile slot, a data key of epoch 1, a revoked key; from v4 a
/// locked immutability.
fn config_file() -> ConfigFile {
    let master = MasterKey::from_bytes(MASTER);
    let mut slot = master.wrap_with(1, PASSPHRASE, KDF, SALT, NONCE).unwrap();
    slot.label = "golden passphrase".into();
    let mut keyfile = master.wrap_keyfile_with(3, &KEYFILE, NONCE);
    keyfile.label = "golden keyfile".into();
    let mut config = ConfigFile {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        vault_id: hex::encode(VAULT_ID),
        generation: 7,
        key_slots: vec![slot, keyfile],
        data_keys: Vec::new(),
        revoked: vec![RevokedKey {
            slot: 2,
            kind: "rsa".into(),
            label: "old kms key".into(),
            fingerprint: "0011223344556677".into(),
            removed_ns: 1_795_475_408_000_000_000,
        }],
        immutability: vaultfs::format::Immutability::Locked,
        guard_key: None,
        roles: Vec::new(),
        params: String::new(),
    };
    let entry = vaultfs::vault::config::seal_data_key(
        &codec(),
        &config,
        &data_key_1(),
        1_795_475_409_000_000_000,
    )
    .unwrap();
    config.data_keys.push(entry);
    config
}

fn config_record() -> ConfigRecord {
    ConfigRecord {
        generation: 7,
        config: b"{ a config file }".to_vec(),
    }
}

/// Chunk lengths of a seeded input through the real chunker.
fn cut_points(params: ChunkerParams, input: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    Chunker::new(params)
        .split::<_, std::io::Error>(input, |c| {
            out.push(c.len() as u64);
            Ok(())
        })
        .unwrap();
    out
}

fn chunker_inputs(seed: u64) -> [(&'static str, ChunkerParams, Vec<u8>); 2] {
    [
        (
            "chunks.vault_default",
            ChunkerParams {
                min_bytes: 256 << 10,
                avg_bytes: 1 << 20,
                max_bytes: 4 << 20,
                seed,
            },
            noise(12 << 20, 42),
        ),
        (
            "chunks.small",
            ChunkerParams {
                min_bytes: 4096,
                avg_bytes: 16384,
                max_bytes: 65536,
                seed: 7,
            },
            noise(1 << 20, 43),
        ),
    ]
}

/// A pack of two raw blobs, as the real writer makes it in a real directory.
fn pack_bytes(codec: &Codec) -> (Vec<u8>, Vec<PackEntry>) {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    backend.init().unwrap();
    let mut w = PackWriter::create_with_id(&backend, PACK).unwrap();
    for (_, kind, plain) in &blobs()[..2] {
        let id = codec.blob_id(*kind, plain);
        w.append(codec, *kind, id, &codec.seal(*kind, &id, plain).unwrap())
            .unwrap();
    }
    let (id, entries) = w.finish(codec).unwrap();
    assert_eq!(id, PACK);
    (backend.get(Key::Pack(PACK)).unwrap(), entries)
}

/// Sealed catalog values as the real catalog stores them in a real database.
fn catalog_values(codec: &Codec) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(&dir.path().join("index"), &VAULT_ID).unwrap();
    let cat = Catalog::open(&db).unwrap();
    cat.put_item(codec, &item()).unwrap();
    cat.put_point(codec, &point()).unwrap();
    cat.put_incoming(codec, &incoming()).unwrap();
    cat.put_policy(codec, &policy()).unwrap();
    let item_key = Catalog::item_key(codec, "web01");
    let point_key = Catalog::point_key(codec, "web01", &point().name);
    let get =
        |tree: &str, key: &[u8]| hex::encode(db.tree(tree).unwrap().get(key).unwrap().unwrap());
    BTreeMap::from([
        ("catalog.key.item".into(), json!(hex::encode(item_key))),
        ("catalog.key.point".into(), json!(hex::encode(&point_key))),
        ("catalog.value.item".into(), json!(get("items", &item_key))),
        (
            "catalog.value.point".into(),
            json!(get("points", &point_key)),
        ),
        (
            "catalog.value.incoming".into(),
            json!(get("incoming", &item_key)),
        ),
        (
            "catalog.value.policy".into(),
            json!(get("policies", &item_key)),
        ),
    ])
}

fn records() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("record.vault_params", format::encode(&params())),
        ("record.node.file", format::encode(&file_node())),
        ("record.tree", format::encode(&tree())),
        ("record.item", format::encode(&item())),
        ("record.point", format::encode(&point())),
        ("record.incoming", format::encode(&incoming())),
        ("record.policy", format::encode(&policy())),
        (
            "record.meta.item",
            format::encode(&MetaRecord::Item(item())),
        ),
        (
            "record.meta.point",
            format::encode(&MetaRecord::Point(Box::new(point()))),
        ),
        (
            "record.meta.incoming",
            format::encode(&MetaRecord::Incoming(Box::new(incoming()))),
        ),
        ("record.config_record", format::encode(&config_record())),
        (
            "record.meta.config",
            format::encode(&MetaRecord::Config(config_record())),
        ),
        (
            "record.meta.policy",
            format::encode(&MetaRecord::Policy(policy())),
        ),
    ]
}

/// A private key (PEM) and a config whose one slot is for it.
fn rsa_config(codec: &Codec) -> (String, String) {
    use aws_lc_rs::encoding::AsDer;
    let key =
        aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = key.as_der().unwrap();
    let pem = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, der.as_ref())
        .unwrap();
    let private = rsa::PrivateKey::from_pem(pem.as_bytes()).unwrap();
    let public = rsa::PublicKey::from_spki(private.spki()).unwrap();
    let mut config = config_file();
    let mut slot = MasterKey::from_bytes(MASTER).wrap_rsa(4, &public).unwrap();
    slot.label = "golden rsa".into();
    config.key_slots = vec![slot];
    let bytes = vaultfs::vault::config::config_bytes(codec, config, &params()).unwrap();
    (pem, String::from_utf8(bytes).unwrap())
}

/// Every vector, from today's code: (exact, read-only).
fn today() -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let codec = codec();
    let mut read_only = BTreeMap::new();
    let mut exact = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        exact.insert(k.to_string(), v);
    };
    put(
        "subkeys.chunker_seed",
        json!(hex::encode(codec.chunker_seed().to_le_bytes())),
    );
    put(
        "blob_id.data",
        json!(codec.blob_id(BlobKind::Data, b"hello vault").to_hex()),
    );
    put(
        "blob_id.tree_empty",
        json!(
            codec
                .blob_id(BlobKind::Tree, &format::encode(&Tree::default()))
                .to_hex()
        ),
    );
    put(
        "blob_id.meta_empty",
        json!(codec.blob_id(BlobKind::Meta, b"").to_hex()),
    );
    for (name, kind, plain) in blobs() {
        let id = codec.blob_id(kind, &plain);
        let sealed = hex::encode(codec.seal(kind, &id, &plain).unwrap());
        if name.ends_with("zstd") {
            read_only.insert(name.to_string(), json!(sealed));
        } else {
            put(name, json!(sealed));
        }
    }
    let (pack, entries) = pack_bytes(&codec);
    put("pack.file", json!(hex::encode(pack)));
    put(
        "pack.header_plaintext",
        json!(hex::encode(pack::encode_header(&entries))),
    );
    put(
        "index.value",
        json!(hex::encode(index::encode(&location()))),
    );
    for (name, bytes) in records() {
        put(name, json!(hex::encode(bytes)));
    }
    let config = vaultfs::vault::config::config_bytes(&codec, config_file(), &params()).unwrap();
    put("config", json!(String::from_utf8(config).unwrap()));
    let plain = noise(200, 3);
    let id = codec.blob_id(BlobKind::Data, &plain);
    put(
        "sealed_blob.data_epoch1",
        json!(hex::encode(
            codec_epoch1().seal(BlobKind::Data, &id, &plain).unwrap()
        )),
    );
    // RSA-OAEP encryption is randomised: a config with an RSA slot, and the private key that
    // opens it, are only read back.
    let (pem, rsa_config) = rsa_config(&codec);
    read_only.insert("rsa.private_key".into(), json!(pem));
    read_only.insert("config.rsa_slot".into(), json!(rsa_config));
    for (k, v) in catalog_values(&codec) {
        put(&k, v);
    }
    for (name, params, input) in chunker_inputs(codec.chunker_seed()) {
        put(name, json!(cut_points(params, &input)));
    }
    (exact, read_only)
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read golden vectors {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bytes(v: &Value, name: &str) -> Vec<u8> {
    let s = v[name]
        .as_str()
        .unwrap_or_else(|| panic!("golden vector {name} is missing"));
    hex::decode(s).unwrap_or_else(|e| panic!("golden vector {name}: {e}"))
}

#[test]
fn current_format_vectors_are_frozen() {
    let (exact, read_only) = today();
    let path = file_of(FORMAT_VERSION);
    if !path.exists() && std::env::var_os("VAULTFS_GOLDEN_WRITE").is_some() {
        let doc = json!({
            "format_version": FORMAT_VERSION,
            "about": "vaultfs golden vectors: see tests/golden.rs; never edit, add a file per format version",
            "vectors": exact,
            "read_only": read_only,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        panic!(
            "wrote {}: check it in and run the test again",
            path.display()
        );
    }
    assert!(
        path.exists(),
        "format version {FORMAT_VERSION} has no golden vectors ({}): a format version bump needs \
         its vectors; run this test with VAULTFS_GOLDEN_WRITE=1 and commit the file",
        path.display()
    );
    let doc = load(&path);
    assert_eq!(
        doc["format_version"],
        json!(FORMAT_VERSION),
        "{}",
        path.display()
    );
    let golden = doc["vectors"].as_object().expect("vectors");
    let mut changed = Vec::new();
    for (name, value) in &exact {
        match golden.get(name) {
            Some(g) if g == value => {}
            Some(_) => changed.push(name.clone()),
            None => changed.push(format!("{name} (not in the golden file)")),
        }
    }
    for name in golden.keys().filter(|k| !exact.contains_key(*k)) {
        changed.push(format!("{name} (no longer produced)"));
    }
    assert!(
        changed.is_empty(),
        "persisted bytes changed without a format version bump: {changed:?}. If the change is \
         meant, bump FORMAT_VERSION in src/format.rs, say in DESIGN.md §3 how older vaults are \
         read, and add tests/golden/format-v{}.json (VAULTFS_GOLDEN_WRITE=1); never edit {}",
        FORMAT_VERSION + 1,
        path.display()
    );
}

/// What every committed version's vectors must still read as with this build.
fn check_reads(version: u32, doc: &Value) {
    let what = |name: &str| format!("format v{version} vector {name}");
    let v = &doc["vectors"];
    let codec = codec();
    // Sealed blobs open to their plaintext, and only as what they were sealed as.
    for (name, kind, plain) in blobs() {
        let section = if name.ends_with("zstd") {
            &doc["read_only"]
        } else {
            v
        };
        let sealed = bytes(section, name);
        let id = codec.blob_id(kind, &plain);
        assert_eq!(
            codec.open(kind, &id, &sealed).unwrap(),
            plain,
            "{}",
            what(name)
        );
        let other = if kind == BlobKind::Data {
            BlobKind::Tree
        } else {
            BlobKind::Data
        };
        assert!(codec.open(other, &id, &sealed).is_err(), "{}", what(name));
    }
    // The pack lists its blobs, which open.
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    backend.init().unwrap();
    backend
        .put(Key::Pack(PACK), &bytes(v, "pack.file"))
        .unwrap();
    let entries = pack::read_header(&codec, &backend, &PACK).unwrap();
    assert_eq!(
        pack::decode_header(&bytes(v, "pack.header_plaintext")).unwrap(),
        entries,
        "{}",
        what("pack.header_plaintext")
    );
    for ((_, kind, plain), e) in blobs().iter().zip(&entries) {
        assert_eq!((e.kind, e.id), (*kind, codec.blob_id(*kind, plain)));
        let sealed = pack::read_sealed(&backend, &PACK, e.offset, e.len).unwrap();
        assert_eq!(&codec.open(e.kind, &e.id, &sealed).unwrap(), plain);
    }
    assert_eq!(
        index::decode(&bytes(v, "index.value")),
        Some(location()),
        "{}",
        what("index.value")
    );
    // Records decode to the values they were made from.
    decodes_to(v, "record.vault_params", params());
    decodes_to(v, "record.node.file", file_node());
    decodes_to(v, "record.tree", tree());
    decodes_to(v, "record.item", item());
    // Point records of every version read through `decode_point`; an older one keeps its
    // bytes when encoded again (gc finds live meta blobs by encoding records).
    let old = point_of(version);
    for (name, bytes_of) in [
        ("record.point", format::encode(&old)),
        (
            "record.meta.point",
            format::encode(&MetaRecord::Point(Box::new(old.clone()))),
        ),
    ] {
        assert_eq!(bytes(v, name), bytes_of, "{}", what(name));
    }
    assert_eq!(
        format::decode_point(&bytes(v, "record.point")).unwrap(),
        old
    );
    assert_eq!(
        format::decode_meta(&bytes(v, "record.meta.point")).unwrap(),
        MetaRecord::Point(Box::new(old.clone()))
    );
    decodes_to(v, "record.incoming", incoming());
    decodes_to(v, "record.policy", policy());
    decodes_to(v, "record.meta.item", MetaRecord::Item(item()));
    decodes_to(
        v,
        "record.meta.incoming",
        MetaRecord::Incoming(Box::new(incoming())),
    );
    decodes_to(v, "record.meta.policy", MetaRecord::Policy(policy()));
    // The config opens with its passphrase, gives the same master key and parameters.
    let vault = dir.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::write(vault.join("config"), v["config"].as_str().expect("config")).unwrap();
    let config = Vault::read_config(&vault).unwrap();
    assert_eq!(config.vault_id, hex::encode(VAULT_ID), "{}", what("config"));
    let master = Vault::unwrap_key(&vault, &passphrase()).unwrap();
    assert_eq!(
        Codec::new(master.derive(), 3).blob_id(BlobKind::Data, b"hello vault"),
        codec.blob_id(BlobKind::Data, b"hello vault"),
        "{}",
        what("config")
    );
    if version >= 3 {
        check_reads_v3(v, &doc["read_only"], &vault, &master);
    }
    // Catalog values read back through the real catalog.
    let db = Db::create(&dir.path().join("index"), &VAULT_ID).unwrap();
    let item_key = bytes(v, "catalog.key.item");
    let point_key = bytes(v, "catalog.key.point");
    for (tree, key, name) in [
        ("items", &item_key, "catalog.value.item"),
        ("points", &point_key, "catalog.value.point"),
        ("incoming", &item_key, "catalog.value.incoming"),
        ("policies", &item_key, "catalog.value.policy"),
    ] {
        db.tree(tree).unwrap().insert(key, bytes(v, name)).unwrap();
    }
    let cat = Catalog::open(&db).unwrap();
    assert_eq!(cat.item(&codec, "web01").unwrap(), Some(item()));
    assert_eq!(
        cat.point(&codec, "web01", &point().name).unwrap(),
        Some(old)
    );
    assert_eq!(cat.incoming(&codec, "web01").unwrap(), Some(incoming()));
    assert_eq!(cat.policy(&codec, "web01").unwrap(), Some(policy()));
}

/// What format v3 added: keyfile and RSA slots, data keys of later epochs, config records.
fn check_reads_v3(v: &Value, read_only: &Value, vault: &Path, master: &MasterKey) {
    let key_file = Credential::KeyFile(Zeroizing::new(KEYFILE));
    let by_file = Vault::unwrap_key(vault, &key_file).unwrap();
    assert_eq!(
        Codec::new(by_file.derive(), 3).blob_id(BlobKind::Data, b"x"),
        Codec::new(master.derive(), 3).blob_id(BlobKind::Data, b"x"),
        "the keyfile slot gives the master key"
    );
    let config = Vault::read_config(vault).unwrap();
    assert_eq!(config.generation, 7);
    assert_eq!(config.revoked.len(), 1);
    let epochs = vaultfs::vault::config::open_data_keys(&config, master).unwrap();
    assert_eq!((epochs.len(), epochs[0].epoch), (1, 1));
    assert_eq!(epochs[0].bytes(), &DATA_KEY_1, "the data key of epoch 1");
    // A blob of epoch 1 opens with its epoch's key only.
    let plain = noise(200, 3);
    let sealed = bytes(v, "sealed_blob.data_epoch1");
    let id = codec().blob_id(BlobKind::Data, &plain);
    let with_epochs = Codec::new(master.derive_with(&epochs), 3);
    assert_eq!(
        with_epochs.open(BlobKind::Data, &id, &sealed).unwrap(),
        plain
    );
    assert!(codec().open(BlobKind::Data, &id, &sealed).is_err());
    decodes_to(v, "record.config_record", config_record());
    decodes_to(v, "record.meta.config", MetaRecord::Config(config_record()));
    // The RSA slot opens with its private key.
    let pem = read_only["rsa.private_key"].as_str().expect("rsa key");
    let private = rsa::PrivateKey::from_pem(pem.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rsa_vault = dir.path();
    std::fs::write(
        rsa_vault.join("config"),
        read_only["config.rsa_slot"].as_str().expect("rsa config"),
    )
    .unwrap();
    let by_rsa = Vault::unwrap_key(rsa_vault, &Credential::Rsa(Box::new(private))).unwrap();
    assert_eq!(
        Codec::new(by_rsa.derive(), 3).blob_id(BlobKind::Data, b"x"),
        Codec::new(master.derive(), 3).blob_id(BlobKind::Data, b"x"),
        "the RSA slot gives the master key"
    );
}

/// The record vector `name` decodes to `want`.
fn decodes_to<T>(v: &Value, name: &str, want: T)
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let got: T = format::decode(&bytes(v, name), "record")
        .unwrap_or_else(|e| panic!("golden vector {name}: {e}"));
    assert_eq!(got, want, "golden vector {name} decodes differently");
}

#[test]
fn every_committed_version_still_reads() {
    let mut seen = Vec::new();
    for e in std::fs::read_dir(golden_dir()).unwrap() {
        let path = e.unwrap().path();
        let doc = load(&path);
        let version = doc["format_version"].as_u64().expect("format_version") as u32;
        assert_eq!(
            path,
            file_of(version),
            "golden file name and version differ"
        );
        assert!(
            version <= FORMAT_VERSION,
            "{}: vectors of a newer format than this build's {FORMAT_VERSION}",
            path.display()
        );
        if version >= FORMAT_VERSION_OLDEST {
            check_reads(version, &doc);
            seen.push(version);
        }
    }
    assert!(
        seen.contains(&FORMAT_VERSION),
        "no golden vectors of the current format: {seen:?}"
    );
}
