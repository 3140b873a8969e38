//! The live incoming state, driven through the view's API with no FUSE in between, against a
//! plain in-memory model: seeded random operations (create, writes at offsets, truncate,
//! rename over, hard links, unlink while open, mkdir/rmdir, symlinks, fifos, setattr, xattrs,
//! fsync, save, snapshot, and reopening the view on the same vault), with the whole tree
//! compared after every step: listings, kinds, sizes, modes, owners, link counts, xattrs,
//! symlink targets and file contents. After each snapshot the point's tree is read back
//! through the vault API and compared with the model too.
//!
//! The test plays the kernel: it looks names up (and forgets them again), holds handles, and
//! expects the errors a local filesystem gives (`ViewError` variants), including
//! `NameTooLong` for names over 255 bytes on every operation that takes a name.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::*;
use vaultfs::format::NodeKind;
use vaultfs::store::{BlobId, BlobKind};
use vaultfs::vault::Vault;
use vaultfs::view::ino::INCOMING;
use vaultfs::view::{Attr, Caller, Kind, Lookup, RenameMode, SetAttr, View, ViewError, XattrSet};

const ITEM: &str = "model";
const ME: Caller = Caller { uid: 0, gid: 0 };
/// Steps per seed; four seeds make the 20,000 operations the issue asks for.
const STEPS: usize = 5_000;
/// Every this many steps, the content of every file is read back (files touched in a step are
/// read back after it, small ones after every step).
const FULL_EVERY: usize = 50;
const SMALL: usize = 64 << 10;

#[test]
fn incoming_matches_the_model_seed_1() {
    run(0x5eed_0001, STEPS);
}

#[test]
fn incoming_matches_the_model_seed_2() {
    run(0x5eed_0002, STEPS);
}

#[test]
fn incoming_matches_the_model_seed_3() {
    run(0x5eed_0003, STEPS);
}

#[test]
fn incoming_matches_the_model_seed_4() {
    run(0x5eed_0004, STEPS);
}

/// Every operation that takes a name refuses one over 255 bytes with `NameTooLong`, on both
/// sides of the view (a door that does not look names up first, like a WebDAV server, gets
/// the same answer as the kernel's lookup).
#[test]
fn every_name_taking_operation_refuses_256_bytes() {
    let tmp = tempdir();
    let (vault_dir, src) = (tmp.path().join("vault"), tmp.path().join("src"));
    init_vault(&vault_dir);
    std::fs::create_dir_all(src.join("dir")).unwrap();
    common::mnt::backup(&vault_dir, ITEM, &src);
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let mut door = Door::open(&vault_dir, &staging);
    let inc = door.root();
    let file = door.view.create(inc, b"file", 0o644, ME).unwrap().0.ino;
    let point_dir = {
        let points = door
            .lookup(vaultfs::view::ino::ROOT, b"points")
            .unwrap()
            .unwrap();
        let item = door.lookup(points.ino, ITEM.as_bytes()).unwrap().unwrap();
        let latest_ino = door.lookup(item.ino, b"latest").unwrap().unwrap().ino;
        let latest = door.view.readlink(latest_ino);
        let point = door.lookup(item.ino, &latest.unwrap()).unwrap().unwrap();
        door.lookup(point.ino, b"dir").unwrap().unwrap().ino
    };
    let (ok_name, long) = (vec![b'n'; 255], vec![b'n'; 256]);
    for dir in [inc, point_dir, INCOMING] {
        let v = &door.view;
        let too_long = |what: &str, r: Result<(), ViewError>| {
            assert!(
                matches!(r, Err(ViewError::NameTooLong)),
                "{what} in {dir:#x}: {r:?}"
            );
        };
        too_long("lookup", v.lookup(dir, &long).map(drop));
        too_long("create", v.create(dir, &long, 0o644, ME).map(drop));
        too_long("mkdir", v.mkdir(dir, &long, 0o755, ME).map(drop));
        too_long(
            "mknod",
            v.mknod(dir, &long, libc::S_IFIFO | 0o644, 0, ME).map(drop),
        );
        too_long("symlink", v.symlink(dir, &long, b"t", ME).map(drop));
        too_long("link", v.link(file, dir, &long).map(drop));
        too_long(
            "rename (new name)",
            v.rename(inc, b"file", dir, &long, RenameMode::Replace),
        );
        too_long(
            "rename (old name)",
            v.rename(dir, &long, inc, b"other", RenameMode::Replace),
        );
        too_long("unlink", v.unlink(dir, &long));
        too_long("rmdir", v.rmdir(dir, &long));
        // 255 bytes are a name like any other.
        assert!(matches!(v.lookup(dir, &ok_name), Ok(Lookup::Absent(_))));
    }
    door.end_step();
}

// ---------------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MKind {
    File,
    Dir,
    Symlink,
    Fifo,
}

#[derive(Debug, Clone)]
struct MInode {
    kind: MKind,
    data: Vec<u8>,
    target: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Known only after a setattr set it, until the next change of content.
    mtime_ns: Option<i64>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    children: BTreeMap<Vec<u8>, usize>,
    /// Names pointing at it.
    links: u32,
}

impl MInode {
    fn new(kind: MKind, mode: u32, who: Caller) -> MInode {
        MInode {
            kind,
            data: Vec::new(),
            target: Vec::new(),
            mode: mode & 0o7777,
            uid: who.uid,
            gid: who.gid,
            mtime_ns: None,
            xattrs: BTreeMap::new(),
            children: BTreeMap::new(),
            links: 1,
        }
    }

    /// A copy without the content.
    fn clone_meta(&self) -> MInode {
        MInode {
            kind: self.kind,
            data: Vec::new(),
            target: self.target.clone(),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: self.mtime_ns,
            xattrs: self.xattrs.clone(),
            children: self.children.clone(),
            links: self.links,
        }
    }

    fn nlink(&self, model: &Model) -> u32 {
        match self.kind {
            MKind::Dir => {
                2 + self
                    .children
                    .values()
                    .filter(|c| model.nodes[c].kind == MKind::Dir)
                    .count() as u32
            }
            _ => self.links,
        }
    }
}

struct Model {
    nodes: HashMap<usize, MInode>,
    root: usize,
    next: usize,
}

type Path8 = Vec<Vec<u8>>;

impl Model {
    fn new(mode: u32) -> Model {
        let mut nodes = HashMap::new();
        nodes.insert(0, MInode::new(MKind::Dir, mode, ME));
        Model {
            nodes,
            root: 0,
            next: 1,
        }
    }

    fn add(&mut self, inode: MInode) -> usize {
        self.next += 1;
        self.nodes.insert(self.next, inode);
        self.next
    }

    fn resolve(&self, path: &[Vec<u8>]) -> Option<usize> {
        let mut cur = self.root;
        for name in path {
            cur = *self.nodes[&cur].children.get(name)?;
        }
        Some(cur)
    }

    /// Every path in the tree (the root is `[]`), in a stable order.
    fn paths(&self) -> Vec<(Path8, usize)> {
        let mut out = vec![(Vec::new(), self.root)];
        let mut i = 0;
        while i < out.len() {
            let (path, ino) = out[i].clone();
            for (name, c) in &self.nodes[&ino].children {
                let mut p = path.clone();
                p.push(name.clone());
                out.push((p, *c));
            }
            i += 1;
        }
        out
    }

    /// Name `m` `name` in directory `d` (whose mtime then moves).
    fn put(&mut self, d: usize, name: Vec<u8>, m: usize) {
        let dir = self.nodes.get_mut(&d).unwrap();
        dir.children.insert(name, m);
        dir.mtime_ns = None;
    }

    /// Remove the name `name` from directory `d` (whose mtime then moves).
    fn take(&mut self, d: usize, name: &[u8]) -> Option<usize> {
        let dir = self.nodes.get_mut(&d).unwrap();
        dir.mtime_ns = None;
        dir.children.remove(name)
    }

    /// Drop inodes no name and no handle refers to.
    fn collect(&mut self, open: &[Open]) {
        let held: HashSet<usize> = open.iter().map(|o| o.model).collect();
        self.nodes
            .retain(|k, n| *k == 0 || n.links > 0 || held.contains(k));
    }
}

// ---------------------------------------------------------------------------------------------
// The door: the test as the kernel in front of the view

struct Open {
    fh: u64,
    ino: u64,
    model: usize,
}

struct Door {
    vault: Arc<Vault>,
    view: View,
    vault_dir: PathBuf,
    staging: PathBuf,
    /// References counted by lookups during this step, forgotten at its end.
    held: Vec<u64>,
}

impl Door {
    fn open(vault_dir: &Path, staging: &Path) -> Door {
        // sled lets go of its database lock when its last background thread does, which may
        // be a moment after the previous vault was dropped: wait for that.
        let deadline = Instant::now() + Duration::from_secs(30);
        let vault = loop {
            match Vault::open(vault_dir, PASS.as_bytes()) {
                Ok(v) => break Arc::new(v),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("open the vault: {e}"),
            }
        };
        let view = View::new(vault.clone(), 16 << 20, staging).expect("a view");
        Door {
            vault,
            view,
            vault_dir: vault_dir.to_path_buf(),
            staging: staging.to_path_buf(),
            held: Vec::new(),
        }
    }

    fn lookup(&mut self, parent: u64, name: &[u8]) -> Result<Option<Attr>, ViewError> {
        match self.view.lookup(parent, name)? {
            Lookup::Found(a) => {
                self.held.push(a.ino);
                Ok(Some(a))
            }
            Lookup::Absent(s) => {
                assert_eq!(s, vaultfs::view::Stability::Live, "absence inside incoming");
                Ok(None)
            }
        }
    }

    fn root(&mut self) -> u64 {
        self.lookup(INCOMING, ITEM.as_bytes())
            .expect("look up the item")
            .expect("the item exists")
            .ino
    }

    /// The inode at `path` under the item's root.
    fn resolve(&mut self, path: &[Vec<u8>]) -> u64 {
        let mut cur = self.root();
        for name in path {
            cur = match self.lookup(cur, name) {
                Ok(Some(a)) => a.ino,
                other => panic!("lookup of {} failed: {other:?}", show(path)),
            };
        }
        cur
    }

    fn end_step(&mut self) {
        for ino in self.held.drain(..) {
            self.view.forget(ino, 1);
        }
    }

    /// Shut the view down and open the vault and a new view again (an unmount and a mount).
    fn reopen(mut self, open: &mut Vec<Open>) -> Door {
        for o in open.drain(..) {
            self.view.release(o.fh);
        }
        self.end_step();
        self.view.shutdown().expect("shut the view down");
        let Door {
            vault,
            view,
            vault_dir,
            staging,
            ..
        } = self;
        drop(view);
        // Background threads (commit workers, read-ahead, the saver) let go of the vault as
        // they notice the view is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Arc::strong_count(&vault) > 1 {
            assert!(
                Instant::now() < deadline,
                "the vault is still held after the view was dropped"
            );
            std::thread::yield_now();
        }
        drop(vault);
        Door::open(&vault_dir, &staging)
    }
}

/// `dir/name`, for messages.
fn show_in(dir: &[Vec<u8>], name: &[u8]) -> String {
    let mut p = dir.to_vec();
    p.push(name.to_vec());
    show(&p)
}

fn show(path: &[Vec<u8>]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|p| {
            if p.len() > 20 {
                format!("<{} bytes>", p.len())
            } else {
                String::from_utf8_lossy(p).into_owned()
            }
        })
        .collect();
    format!("/{}", parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// Errors as a local filesystem gives them

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Ok,
    NotFound,
    Exists,
    NotEmpty,
    IsDir,
    NotDir,
    Invalid,
    NotPermitted,
    NameTooLong,
    NoXattr,
}

fn got<T: std::fmt::Debug>(r: &Result<T, ViewError>) -> Want {
    match r {
        Ok(_) => Want::Ok,
        Err(ViewError::NotFound) => Want::NotFound,
        Err(ViewError::Exists) => Want::Exists,
        Err(ViewError::NotEmpty) => Want::NotEmpty,
        Err(ViewError::IsDir) => Want::IsDir,
        Err(ViewError::NotDir) => Want::NotDir,
        Err(ViewError::Invalid) => Want::Invalid,
        Err(ViewError::NotPermitted) => Want::NotPermitted,
        Err(ViewError::NameTooLong) => Want::NameTooLong,
        Err(ViewError::NoXattr) => Want::NoXattr,
        Err(e) => panic!("unexpected error from the view: {e:?}"),
    }
}

fn too_long(names: &[&[u8]]) -> bool {
    names.iter().any(|n| n.len() > 255)
}

// ---------------------------------------------------------------------------------------------
// The run

struct Run {
    rng: StdRng,
    model: Model,
    door: Option<Door>,
    open: Vec<Open>,
    /// Model inodes whose content changed in this step.
    touched: HashSet<usize>,
    log: Vec<String>,
    points: usize,
}

fn run(seed: u64, steps: usize) {
    let tmp = tempdir();
    let vault_dir = tmp.path().join("vault");
    init_vault(&vault_dir);
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let door = Door::open(&vault_dir, &staging);
    let root = door
        .view
        .mkdir(INCOMING, ITEM.as_bytes(), 0o750, ME)
        .expect("mkdir incoming/ITEM");
    door.view.forget(root.ino, 1);
    let mut r = Run {
        rng: StdRng::seed_from_u64(seed),
        model: Model::new(0o750),
        door: Some(door),
        open: Vec::new(),
        touched: HashSet::new(),
        log: Vec::new(),
        points: 0,
    };
    let started = Instant::now();
    for step in 0..steps {
        r.step();
        r.door().end_step();
        r.model.collect(&r.open);
        let full = step % FULL_EVERY == FULL_EVERY - 1;
        r.check(full);
        r.door().end_step();
        r.touched.clear();
    }
    r.check(true);
    eprintln!(
        "seed {seed:#x}: {steps} steps, {} points, {:.1?}",
        r.points,
        started.elapsed()
    );
}

impl Run {
    fn door(&mut self) -> &mut Door {
        self.door.as_mut().expect("a door")
    }

    fn note(&mut self, what: String) {
        self.log.push(what);
        if self.log.len() > 40 {
            self.log.remove(0);
        }
    }

    fn recent(&self) -> String {
        self.log.join("\n")
    }

    fn expect<T: std::fmt::Debug>(&self, what: &str, r: &Result<T, ViewError>, want: Want) {
        assert_eq!(
            got(r),
            want,
            "{what}: the view answered {r:?}, a local filesystem {want:?}; recent steps:\n{}",
            self.recent()
        );
    }

    fn name(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..100) {
            0 => vec![b'l'; 255],
            1 => vec![b'x'; 256],
            2..10 => format!("name-{}", self.rng.random_range(0..40)).into_bytes(),
            _ => vec![b"abcdefgh"[self.rng.random_range(0..8)]],
        }
    }

    fn pick(&mut self, filter: impl Fn(MKind) -> bool) -> Option<(Path8, usize)> {
        let all: Vec<(Path8, usize)> = self
            .model
            .paths()
            .into_iter()
            .filter(|(_, i)| filter(self.model.nodes[i].kind))
            .collect();
        if all.is_empty() {
            return None;
        }
        Some(all[self.rng.random_range(0..all.len())].clone())
    }

    fn pick_dir(&mut self) -> (Path8, usize) {
        self.pick(|k| k == MKind::Dir)
            .expect("the root is a directory")
    }

    fn step(&mut self) {
        match self.rng.random_range(0..1000) {
            0..120 => self.create(),
            120..300 => self.write(),
            300..340 => self.truncate(),
            340..400 => self.open_file(),
            400..460 => self.release(),
            460..540 => self.rename(),
            540..580 => self.link(),
            580..650 => self.unlink(),
            650..700 => self.mkdir(),
            700..740 => self.rmdir(),
            740..760 => self.symlink_or_fifo(),
            760..830 => self.setattr(),
            830..900 => self.xattr(),
            900..950 => self.lookup_missing(),
            950..975 => self.fsync(),
            975..988 => self.save(),
            988..997 => self.snapshot(),
            _ => self.reopen(),
        }
    }

    fn create(&mut self) {
        let (dir, d) = self.pick_dir();
        let name = self.name();
        let mode = [0o644, 0o600, 0o755, 0o4711][self.rng.random_range(0..4)];
        self.note(format!("create {}", show_in(&dir, &name)));
        let parent = self.door().resolve(&dir);
        let r = self.door().view.create(parent, &name, mode, ME);
        let want = self.want_new(d, &name);
        self.expect("create", &r, want);
        let Ok((attr, opened)) = r else { return };
        let m = self.made(d, name, attr.ino, MInode::new(MKind::File, mode, ME));
        self.open.push(Open {
            fh: opened.fh,
            ino: attr.ino,
            model: m,
        });
        if self.rng.random_bool(0.4) {
            self.close(self.open.len() - 1);
        }
    }

    /// What making `name` in directory `d` should answer.
    fn want_new(&self, d: usize, name: &[u8]) -> Want {
        if too_long(&[name]) {
            Want::NameTooLong
        } else if self.model.nodes[&d].children.contains_key(name) {
            Want::Exists
        } else {
            Want::Ok
        }
    }

    /// The view made `inode` as `name` in `d`, counting a reference to `ino`: so does the
    /// model. Returns its number in the model.
    fn made(&mut self, d: usize, name: Vec<u8>, ino: u64, inode: MInode) -> usize {
        self.door().held.push(ino);
        let inode = self.inherit(d, inode);
        let m = self.model.add(inode);
        self.model.put(d, name, m);
        m
    }

    /// Set-group-ID directories pass their group on (and the bit, to directories).
    fn inherit(&self, dir: usize, mut inode: MInode) -> MInode {
        let d = &self.model.nodes[&dir];
        if d.mode & 0o2000 != 0 {
            inode.gid = d.gid;
            if inode.kind == MKind::Dir {
                inode.mode |= 0o2000;
            }
        }
        inode
    }

    /// The door closes a handle (the view keeps an open inode alive by itself).
    fn close(&mut self, i: usize) {
        let o = self.open.remove(i);
        self.door().view.release(o.fh);
    }

    fn write(&mut self) {
        if self.open.is_empty() {
            return self.open_file();
        }
        let i = self.rng.random_range(0..self.open.len());
        let (ino, m) = (self.open[i].ino, self.open[i].model);
        let size = self.model.nodes[&m].data.len();
        let len = match self.rng.random_range(0..200) {
            // Past what waits in memory: the staging copy moves to a file.
            0 => self.rng.random_range(1 << 20..(5 << 20) / 4),
            1..40 => self.rng.random_range(1..128 << 10),
            _ => self.rng.random_range(1..4096),
        };
        let offset = match self.rng.random_range(0..4) {
            0 => size,
            1 => self.rng.random_range(0..=size),
            2 => size + self.rng.random_range(0..100_000),
            _ => self.rng.random_range(0..=size.min(4096)),
        };
        let data = noise(len, self.rng.random());
        self.note(format!(
            "write {len} bytes at {offset} into model inode {m}"
        ));
        let r = self.door().view.write(ino, offset as u64, &data);
        self.expect("write", &r, Want::Ok);
        assert_eq!(r.unwrap(), len as u32);
        let f = self.model.nodes.get_mut(&m).unwrap();
        if f.data.len() < offset + len {
            f.data.resize(offset + len, 0);
        }
        f.data[offset..offset + len].copy_from_slice(&data);
        f.mtime_ns = None;
        self.touched.insert(m);
    }

    fn truncate(&mut self) {
        let Some((path, m)) = self.pick(|k| k == MKind::File) else {
            return;
        };
        let size = match self.rng.random_range(0..3) {
            0 => 0,
            1 => self.rng.random_range(0..=self.model.nodes[&m].data.len()),
            _ => self.rng.random_range(0..300_000),
        };
        self.note(format!("truncate {} to {size}", show(&path)));
        let ino = self.door().resolve(&path);
        let change = SetAttr {
            size: Some(size as u64),
            ..SetAttr::default()
        };
        let r = self.door().view.setattr(ino, change);
        self.expect("truncate", &r, Want::Ok);
        let f = self.model.nodes.get_mut(&m).unwrap();
        f.data.resize(size, 0);
        f.mtime_ns = None;
        self.touched.insert(m);
    }

    fn open_file(&mut self) {
        let Some((path, m)) = self.pick(|k| k == MKind::File) else {
            return;
        };
        let truncate = self.rng.random_bool(0.15);
        self.note(format!("open {} truncate={truncate}", show(&path)));
        let ino = self.door().resolve(&path);
        let r = self.door().view.open(ino, true, truncate);
        self.expect("open", &r, Want::Ok);
        self.open.push(Open {
            fh: r.unwrap().fh,
            ino,
            model: m,
        });
        if truncate {
            let f = self.model.nodes.get_mut(&m).unwrap();
            f.data.clear();
            f.mtime_ns = None;
            self.touched.insert(m);
        }
    }

    fn release(&mut self) {
        if !self.open.is_empty() {
            let i = self.rng.random_range(0..self.open.len());
            self.note(format!("release model inode {}", self.open[i].model));
            self.close(i);
        }
    }

    fn pick_entry(&mut self) -> Option<(Path8, usize)> {
        let all: Vec<(Path8, usize)> = self
            .model
            .paths()
            .into_iter()
            .filter(|(p, _)| !p.is_empty())
            .collect();
        if all.is_empty() {
            return None;
        }
        Some(all[self.rng.random_range(0..all.len())].clone())
    }

    /// A new name in `dir`, or now and then one it already has (to rename or link over).
    fn target_name(&mut self, dir: usize) -> Vec<u8> {
        let names: Vec<Vec<u8>> = self.model.nodes[&dir].children.keys().cloned().collect();
        if !names.is_empty() && self.rng.random_bool(0.3) {
            return names[self.rng.random_range(0..names.len())].clone();
        }
        self.name()
    }

    /// True if `inner` is `outer` or below it.
    fn within(&self, inner: usize, outer: usize) -> bool {
        if inner == outer {
            return true;
        }
        self.model.nodes[&outer]
            .children
            .values()
            .any(|c| self.model.nodes[c].kind == MKind::Dir && self.within(inner, *c))
    }

    fn rename(&mut self) {
        let Some((from, s)) = self.pick_entry() else {
            return;
        };
        let (todir, d) = self.pick_dir();
        let newname = self.target_name(d);
        let noreplace = self.rng.random_bool(0.1);
        let (fdir, fname) = (
            from[..from.len() - 1].to_vec(),
            from[from.len() - 1].clone(),
        );
        let fd = self.model.resolve(&fdir).unwrap();
        self.note(format!(
            "rename {} -> {} noreplace={noreplace}",
            show(&from),
            show_in(&todir, &newname)
        ));
        let src_dir = self.model.nodes[&s].kind == MKind::Dir;
        let dst = self.model.nodes[&d].children.get(&newname).copied();
        let want = if too_long(&[&newname]) {
            Want::NameTooLong
        } else if src_dir && self.within(d, s) {
            Want::Invalid
        } else if let Some(t) = dst {
            let t_dir = self.model.nodes[&t].kind == MKind::Dir;
            if noreplace {
                Want::Exists
            } else if t == s {
                Want::Ok
            } else if src_dir && !t_dir {
                Want::NotDir
            } else if !src_dir && t_dir {
                Want::IsDir
            } else if t_dir && !self.model.nodes[&t].children.is_empty() {
                Want::NotEmpty
            } else {
                Want::Ok
            }
        } else {
            Want::Ok
        };
        let (p, np) = (self.door().resolve(&fdir), self.door().resolve(&todir));
        let mode = if noreplace {
            RenameMode::NoReplace
        } else {
            RenameMode::Replace
        };
        let r = self.door().view.rename(p, &fname, np, &newname, mode);
        self.expect("rename", &r, want);
        if want != Want::Ok || dst == Some(s) {
            return;
        }
        if let Some(t) = dst {
            self.model.nodes.get_mut(&t).unwrap().links -= 1;
        }
        self.model.take(fd, &fname);
        self.model.put(d, newname, s);
    }

    fn link(&mut self) {
        let Some((from, s)) = self.pick_entry() else {
            return;
        };
        let (todir, d) = self.pick_dir();
        let newname = self.target_name(d);
        self.note(format!(
            "link {} -> {}",
            show(&from),
            show_in(&todir, &newname)
        ));
        let want = if too_long(&[&newname]) {
            Want::NameTooLong
        } else if self.model.nodes[&s].kind == MKind::Dir {
            Want::NotPermitted
        } else if self.model.nodes[&d].children.contains_key(&newname) {
            Want::Exists
        } else {
            Want::Ok
        };
        let (ino, np) = (self.door().resolve(&from), self.door().resolve(&todir));
        let r = self.door().view.link(ino, np, &newname);
        self.expect("link", &r, want);
        if let Ok(a) = r {
            self.door().held.push(a.ino);
            self.model.nodes.get_mut(&s).unwrap().links += 1;
            self.model.put(d, newname, s);
        }
    }

    /// Unlink or rmdir an entry (of either kind, to see the errors), or a name that is not
    /// there.
    fn remove(&mut self, dir_op: bool) {
        let (dir, d, name) = match self.pick_entry() {
            Some((path, _)) if self.rng.random_bool(0.9) => {
                let dir = path[..path.len() - 1].to_vec();
                let d = self.model.resolve(&dir).unwrap();
                (dir, d, path[path.len() - 1].clone())
            }
            _ => {
                let (dir, d) = self.pick_dir();
                let name = self.name();
                (dir, d, name)
            }
        };
        self.note(format!(
            "{} {}",
            if dir_op { "rmdir" } else { "unlink" },
            show_in(&dir, &name)
        ));
        let child = self.model.nodes[&d].children.get(&name).copied();
        let want = match child {
            _ if too_long(&[&name]) => Want::NameTooLong,
            None => Want::NotFound,
            Some(c) => match (self.model.nodes[&c].kind == MKind::Dir, dir_op) {
                (true, false) => Want::IsDir,
                (false, true) => Want::NotDir,
                (true, true) if !self.model.nodes[&c].children.is_empty() => Want::NotEmpty,
                _ => Want::Ok,
            },
        };
        let parent = self.door().resolve(&dir);
        let r = if dir_op {
            self.door().view.rmdir(parent, &name)
        } else {
            self.door().view.unlink(parent, &name)
        };
        self.expect(if dir_op { "rmdir" } else { "unlink" }, &r, want);
        if want == Want::Ok {
            let c = self.model.take(d, &name);
            self.model.nodes.get_mut(&c.unwrap()).unwrap().links -= 1;
        }
    }

    fn unlink(&mut self) {
        self.remove(false);
    }

    fn rmdir(&mut self) {
        self.remove(true);
    }

    fn mkdir(&mut self) {
        let (dir, d) = self.pick_dir();
        let name = self.name();
        let mode = [0o755, 0o700, 0o2775][self.rng.random_range(0..3)];
        self.note(format!("mkdir {}", show_in(&dir, &name)));
        let want = self.want_new(d, &name);
        let parent = self.door().resolve(&dir);
        let r = self.door().view.mkdir(parent, &name, mode, ME);
        self.expect("mkdir", &r, want);
        if let Ok(a) = r {
            self.made(d, name, a.ino, MInode::new(MKind::Dir, mode, ME));
        }
    }

    fn symlink_or_fifo(&mut self) {
        let (dir, d) = self.pick_dir();
        let name = self.name();
        let fifo = self.rng.random_bool(0.3);
        self.note(format!(
            "{} {}",
            if fifo { "mkfifo" } else { "symlink" },
            show_in(&dir, &name)
        ));
        let want = self.want_new(d, &name);
        let parent = self.door().resolve(&dir);
        let target = format!("../target-{}", self.rng.random_range(0..1000)).into_bytes();
        let (r, inode) = if fifo {
            let r = self
                .door()
                .view
                .mknod(parent, &name, libc::S_IFIFO | 0o640, 0, ME);
            (r, MInode::new(MKind::Fifo, 0o640, ME))
        } else {
            let r = self.door().view.symlink(parent, &name, &target, ME);
            let mut i = MInode::new(MKind::Symlink, 0o777, ME);
            i.target = target;
            (r, i)
        };
        self.expect("symlink/mknod", &r, want);
        if let Ok(a) = r {
            self.made(d, name, a.ino, inode);
        }
    }

    fn setattr(&mut self) {
        let Some((path, m)) = self.pick(|k| k != MKind::Symlink) else {
            return;
        };
        let mut change = SetAttr::default();
        match self.rng.random_range(0..3) {
            0 => {
                change.mode =
                    Some([0o644, 0o600, 0o2755, 0o1777, 0o4755][self.rng.random_range(0..5)])
            }
            1 => {
                change.uid = Some(self.rng.random_range(0..3) * 1000);
                change.gid = Some(self.rng.random_range(0..3) * 1000);
            }
            _ => {
                change.mtime_ns = Some(
                    self.rng
                        .random_range(-1_000_000_000_000..2_000_000_000_000_000_000),
                );
                change.atime_ns = change.mtime_ns;
            }
        }
        self.note(format!("setattr {} {change:?}", show(&path)));
        let ino = self.door().resolve(&path);
        let r = self.door().view.setattr(ino, change.clone());
        self.expect("setattr", &r, Want::Ok);
        let i = self.model.nodes.get_mut(&m).unwrap();
        if let Some(mode) = change.mode {
            i.mode = mode & 0o7777;
        }
        if let (Some(u), Some(g)) = (change.uid, change.gid) {
            (i.uid, i.gid) = (u, g);
        }
        if change.mtime_ns.is_some() {
            i.mtime_ns = change.mtime_ns;
        }
    }

    fn xattr(&mut self) {
        let (path, m) = match self.pick_entry() {
            Some(x) if self.rng.random_bool(0.9) => x,
            _ => (Vec::new(), self.model.root),
        };
        let name = format!("user.{}", ["a", "b", "c"][self.rng.random_range(0..3)]).into_bytes();
        let value = noise(self.rng.random_range(0..200), self.rng.random());
        let ino = self.door().resolve(&path);
        let exists = self.model.nodes[&m].xattrs.contains_key(&name);
        let what = String::from_utf8_lossy(&name).into_owned();
        match self.rng.random_range(0..5) {
            0..3 => {
                let how = [XattrSet::Any, XattrSet::Create, XattrSet::Replace]
                    [self.rng.random_range(0..3)];
                self.note(format!("setxattr {} {what} {how:?}", show(&path)));
                let want = match how {
                    XattrSet::Create if exists => Want::Exists,
                    XattrSet::Replace if !exists => Want::NoXattr,
                    _ => Want::Ok,
                };
                let r = self.door().view.setxattr(ino, &name, &value, how);
                self.expect("setxattr", &r, want);
                if want == Want::Ok {
                    self.model
                        .nodes
                        .get_mut(&m)
                        .unwrap()
                        .xattrs
                        .insert(name, value);
                }
            }
            3 => {
                self.note(format!("removexattr {} {what}", show(&path)));
                let r = self.door().view.removexattr(ino, &name);
                self.expect(
                    "removexattr",
                    &r,
                    if exists { Want::Ok } else { Want::NoXattr },
                );
                self.model.nodes.get_mut(&m).unwrap().xattrs.remove(&name);
            }
            _ => {
                let r = self.door().view.getxattr(ino, &name);
                self.expect(
                    "getxattr",
                    &r,
                    if exists { Want::Ok } else { Want::NoXattr },
                );
                if let Ok(v) = r {
                    assert_eq!(
                        Some(&v),
                        self.model.nodes[&m].xattrs.get(&name),
                        "{what} of {}",
                        show(&path)
                    );
                }
            }
        }
    }

    /// Names that may not be there: a lookup answers absent (or too long), never anything else.
    fn lookup_missing(&mut self) {
        let (dir, d) = self.pick_dir();
        let name = self.name();
        self.note(format!("lookup {}", show_in(&dir, &name)));
        let parent = self.door().resolve(&dir);
        let r = self.door().lookup(parent, &name);
        if too_long(&[&name]) {
            self.expect("lookup", &r, Want::NameTooLong);
            return;
        }
        let found = r.expect("lookup");
        assert_eq!(
            found.is_some(),
            self.model.nodes[&d].children.contains_key(&name),
            "lookup of {}/{}",
            show(&dir),
            show(&[name])
        );
    }

    fn fsync(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.open.len());
        let ino = self.open[i].ino;
        self.note(format!("fsync model inode {}", self.open[i].model));
        let r = self.door().view.fsync(ino);
        self.expect("fsync", &r, Want::Ok);
    }

    fn save(&mut self) {
        self.note("save".into());
        let root = self.door().root();
        let r = self.door().view.fsyncdir(root);
        self.expect("save", &r, Want::Ok);
    }

    fn snapshot(&mut self) {
        self.note("snapshot".into());
        let vault = self.door().vault.clone();
        let point = vault.snapshot(ITEM).expect("snapshot");
        self.points += 1;
        let mut groups = HashMap::new();
        self.check_node(&vault, &point.root, self.model.root, &[], &mut groups);
    }

    fn reopen(&mut self) {
        self.note("reopen".into());
        let door = self.door.take().expect("a door");
        self.door = Some(door.reopen(&mut self.open));
        self.model.collect(&self.open);
    }

    // -----------------------------------------------------------------------------------------
    // Comparing

    fn check(&mut self, full: bool) {
        let root = self.door().root();
        let mut seen = HashMap::new();
        self.check_entry(&[], root, self.model.root, full, &mut seen);
        // Files open through handles (some unlinked) read back through those handles.
        for i in 0..self.open.len() {
            let (ino, fh, m) = (self.open[i].ino, self.open[i].fh, self.open[i].model);
            if full || self.touched.contains(&m) {
                let data = self.read_all(ino, Some(fh), self.model.nodes[&m].data.len());
                self.same_bytes(
                    &data,
                    &self.model.nodes[&m].data,
                    &format!("open model inode {m}"),
                );
            }
        }
    }

    fn check_entry(
        &mut self,
        path: &[Vec<u8>],
        ino: u64,
        m: usize,
        full: bool,
        seen: &mut HashMap<usize, u64>,
    ) {
        let attr = self.door().view.getattr(ino).expect("getattr");
        // Everything but the content, which is compared in place.
        let model = self.model.nodes[&m].clone_meta();
        let data_len = self.model.nodes[&m].data.len();
        let what = show(path);
        assert_eq!(
            *seen.entry(m).or_insert(ino),
            ino,
            "{what}: hard links share an inode"
        );
        let kind = match model.kind {
            MKind::File => Kind::File,
            MKind::Dir => Kind::Dir,
            MKind::Symlink => Kind::Symlink,
            MKind::Fifo => Kind::Fifo,
        };
        let size = match model.kind {
            MKind::File => data_len as u64,
            MKind::Dir => 4096,
            MKind::Symlink => model.target.len() as u64,
            MKind::Fifo => 0,
        };
        assert_eq!(
            (
                attr.kind,
                attr.size,
                attr.perm as u32,
                attr.uid,
                attr.gid,
                attr.nlink
            ),
            (
                kind,
                size,
                model.mode,
                model.uid,
                model.gid,
                model.nlink(&self.model)
            ),
            "{what}: (kind, size, mode, uid, gid, nlink); recent steps:\n{}",
            self.recent()
        );
        if let Some(t) = model.mtime_ns {
            assert_eq!(vaultfs::view::time::to_ns(attr.mtime), t, "{what}: mtime");
        }
        let listed = self.door().view.listxattr(ino).expect("listxattr");
        let names: BTreeSet<Vec<u8>> = listed
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| n.to_vec())
            .collect();
        let want: BTreeSet<Vec<u8>> = model.xattrs.keys().cloned().collect();
        assert_eq!(
            names,
            want,
            "{what}: xattr names; recent steps:\n{}",
            self.recent()
        );
        for (k, v) in &model.xattrs {
            assert_eq!(
                &self.door().view.getxattr(ino, k).expect("getxattr"),
                v,
                "{what}: xattr"
            );
        }
        match model.kind {
            MKind::Symlink => {
                assert_eq!(
                    self.door().view.readlink(ino).expect("readlink"),
                    model.target,
                    "{what}"
                );
            }
            MKind::File if full || self.touched.contains(&m) || data_len <= SMALL => {
                let fh = self.door().view.open(ino, false, false).expect("open").fh;
                let data = self.read_all(ino, Some(fh), data_len);
                self.door().view.release(fh);
                self.same_bytes(&data, &self.model.nodes[&m].data, &what);
            }
            MKind::Dir => self.check_dir(path, ino, &model, full, seen),
            _ => {}
        }
    }

    fn check_dir(
        &mut self,
        path: &[Vec<u8>],
        ino: u64,
        model: &MInode,
        full: bool,
        seen: &mut HashMap<usize, u64>,
    ) {
        // Through a handle now and then, as a door with OPENDIR would.
        let list = if self.rng.random_bool(0.2) {
            let fh = self.door().view.opendir(ino).expect("opendir").fh;
            let list = self.door().view.readdir(ino, Some(fh), 0).expect("readdir");
            self.door().view.release(fh);
            list
        } else {
            let list = self.door().view.readdir(ino, None, 0).expect("readdir");
            self.door()
                .view
                .readdir(ino, None, list.len() as u64)
                .expect("readdir to the end");
            list
        };
        let listed: BTreeMap<Vec<u8>, (u64, Kind)> = list
            .iter()
            .filter(|e| !e.is_dot())
            .map(|e| (e.name.clone(), (e.ino, e.kind)))
            .collect();
        let names: Vec<&Vec<u8>> = listed.keys().collect();
        let want: Vec<&Vec<u8>> = model.children.keys().collect();
        assert_eq!(
            names,
            want,
            "listing of {}; recent steps:\n{}",
            show(path),
            self.recent()
        );
        for (name, c) in &model.children {
            let mut p = path.to_vec();
            p.push(name.clone());
            let a = self
                .door()
                .lookup(ino, name)
                .expect("lookup")
                .expect("listed");
            assert_eq!(
                a.ino,
                listed[name].0,
                "{}: inode in listing and lookup",
                show(&p)
            );
            assert_eq!(a.kind, listed[name].1, "{}: kind in listing", show(&p));
            self.check_entry(&p, a.ino, *c, full, seen);
        }
    }

    fn read_all(&mut self, ino: u64, fh: Option<u64>, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size);
        loop {
            let piece = self
                .door()
                .view
                .read(ino, fh, out.len() as u64, 1 << 20)
                .expect("read");
            if piece.is_empty() {
                return out;
            }
            out.extend_from_slice(&piece);
        }
    }

    fn same_bytes(&self, got: &[u8], want: &[u8], what: &str) {
        if got != want {
            let at = got.iter().zip(want).position(|(a, b)| a != b);
            panic!(
                "{what}: {} bytes read, {} in the model, first difference at {at:?}; recent steps:\n{}",
                got.len(),
                want.len(),
                self.recent()
            );
        }
    }

    /// A node of a point against the model.
    fn check_node(
        &self,
        vault: &Vault,
        node: &vaultfs::format::Node,
        m: usize,
        path: &[Vec<u8>],
        groups: &mut HashMap<u64, usize>,
    ) {
        let model = &self.model.nodes[&m];
        let what = format!("point: {}", show(path));
        let kind = match model.kind {
            MKind::File => NodeKind::File,
            MKind::Dir => NodeKind::Dir,
            MKind::Symlink => NodeKind::Symlink,
            MKind::Fifo => NodeKind::Fifo,
        };
        assert_eq!(
            (node.kind, node.mode, node.uid, node.gid, node.nlink),
            (
                kind,
                model.mode,
                model.uid,
                model.gid,
                model.nlink(&self.model)
            ),
            "{what}: (kind, mode, uid, gid, nlink)"
        );
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = model.xattrs.clone().into_iter().collect();
        assert_eq!(node.xattrs, xattrs, "{what}: xattrs");
        if let Some(t) = model.mtime_ns {
            assert_eq!(node.mtime_ns, t, "{what}: mtime");
        }
        if model.links > 1 {
            assert_ne!(node.link_group, 0, "{what}: hard link without a group");
            assert_eq!(
                *groups.entry(node.link_group).or_insert(m),
                m,
                "{what}: link group"
            );
        }
        match model.kind {
            MKind::File => {
                assert_eq!(node.size, model.data.len() as u64, "{what}: size");
                let mut data = Vec::with_capacity(model.data.len());
                for c in &node.chunks {
                    data.extend_from_slice(&chunk(vault, &c.id));
                }
                self.same_bytes(&data, &model.data, &what);
            }
            MKind::Symlink => assert_eq!(node.target, model.target, "{what}: target"),
            MKind::Dir => {
                let tree = vault
                    .tree(&node.subtree.expect("a tree"))
                    .expect("load tree");
                let names: Vec<&Vec<u8>> = tree.nodes.iter().map(|n| &n.name).collect();
                let want: Vec<&Vec<u8>> = model.children.keys().collect();
                assert_eq!(names, want, "{what}: names");
                for n in &tree.nodes {
                    let mut p = path.to_vec();
                    p.push(n.name.clone());
                    self.check_node(vault, n, model.children[&n.name], &p, groups);
                }
            }
            MKind::Fifo => {}
        }
    }
}

fn chunk(vault: &Vault, id: &BlobId) -> Vec<u8> {
    vault
        .store()
        .get(BlobKind::Data, id)
        .expect("a chunk of the point")
        .to_vec()
}
