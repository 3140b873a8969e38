//! Writes racing the saver never get lost (issue 17). Files written through the FUSE door are
//! not open (zero-message open), so the saver's settle may drop the staging file of a stored
//! file at any moment; a write that staged the file just before that used to land in the
//! dropped copy, and the point then held the file empty (seen once in five bench runs). Here
//! one thread stores and rewrites files through the view, as the door does, while another
//! saves in a loop; every file must read back, and snapshot, with every byte written.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use vaultfs::format::NodeKind;
use vaultfs::store::BlobKind;
use vaultfs::vault::Vault;
use vaultfs::view::ino::INCOMING;
use vaultfs::view::{Caller, Lookup, View};

const ITEM: &str = "race";
const ME: Caller = Caller { uid: 0, gid: 0 };
const FILES: usize = 120;
const ROUNDS: usize = 3;
const PIECE: usize = 512;

fn piece(file: usize, round: usize) -> Vec<u8> {
    noise(PIECE, (file * 100 + round) as u64)
}

#[test]
fn writes_racing_the_savers_settle_are_never_lost() {
    let tmp = tempdir();
    let (vault_dir, src, staging) = (
        tmp.path().join("vault"),
        tmp.path().join("src"),
        tmp.path().join("staging"),
    );
    init_vault(&vault_dir);
    std::fs::create_dir_all(&src).unwrap();
    common::mnt::backup(&vault_dir, ITEM, &src);
    std::fs::create_dir(&staging).unwrap();
    let vault = Arc::new(Vault::open(&vault_dir, PASS.as_bytes()).expect("open the vault"));
    let view = Arc::new(View::new(vault.clone(), 16 << 20, &staging).expect("a view"));
    let root = match view.lookup(INCOMING, ITEM.as_bytes()).unwrap() {
        Lookup::Found(a) => a.ino,
        other => panic!("no incoming root: {other:?}"),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let saver = {
        let (view, stop) = (view.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut saves = 0u64;
            while !stop.load(Ordering::Relaxed) {
                view.fsyncdir(root).expect("save");
                saves += 1;
            }
            saves
        })
    };
    let mut inos = Vec::new();
    for f in 0..FILES {
        let (attr, opened) = view
            .create(root, format!("f{f:04}").as_bytes(), 0o644, ME)
            .unwrap();
        view.release(opened.fh);
        inos.push(attr.ino);
    }
    // Each round: store every file (fsync), then append to it: the append stages a stored
    // file, which is what settle may drop under it.
    for round in 0..ROUNDS {
        for (f, &ino) in inos.iter().enumerate() {
            view.fsync(ino).unwrap();
            let n = view
                .write(ino, (round * PIECE) as u64, &piece(f, round))
                .unwrap();
            assert_eq!(n as usize, PIECE);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let saves = saver.join().unwrap();
    assert!(saves > 10, "the saver ran only {saves} times");

    let want = |f: usize| -> Vec<u8> { (0..ROUNDS).flat_map(|r| piece(f, r)).collect() };
    let mut lost = Vec::new();
    for (f, &ino) in inos.iter().enumerate() {
        let got = view
            .read(ino, None, 0, (ROUNDS * PIECE) as u32 + 1)
            .unwrap();
        if got != want(f) {
            lost.push(format!("f{f:04} read {} bytes", got.len()));
        }
    }
    assert!(lost.is_empty(), "writes lost in incoming: {lost:?}");

    let point = vault.snapshot(ITEM).expect("snapshot");
    let tree = vault
        .tree(point.root.subtree.as_ref().expect("a root dir"))
        .expect("the point's tree");
    assert_eq!(tree.nodes.len(), FILES);
    for node in &tree.nodes {
        let f: usize = std::str::from_utf8(&node.name[1..])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(node.kind, NodeKind::File);
        let mut bytes = Vec::new();
        for c in &node.chunks {
            let data = vault.store().get(BlobKind::Data, &c.id).expect("a chunk");
            bytes.extend_from_slice(&data);
        }
        assert!(
            bytes == want(f),
            "the point holds f{f:04} with {} bytes",
            bytes.len()
        );
    }
    view.shutdown().unwrap();
}
