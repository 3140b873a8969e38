//! A vault in a local directory: `packs/XX/<id>.pack`, `config`, `lock`, `tmp/`.
//!
//! An object is written under `tmp/`, fsynced, renamed to its name and the directory fsynced:
//! a file at an object's name is always complete. The lock is a POSIX record lock on `lock`
//! (`fcntl F_SETLK`): `F_GETLK` names the holder, the file's content never changes (so a
//! refused open leaves the vault byte-identical) and the kernel drops it with its holder, also
//! on kill -9. Open pack files are kept (LRU) so a read is one `pread`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{
    Backend, Change, DAMAGED_PREFIX, Durable, Holder, Key, Kind, LockGuard, ObjectInfo,
    ObjectWriter, Observer, PACKS_PREFIX,
};
use crate::keys::random_bytes;
use crate::store::{Damaged, Result, StoreError};

pub const TMP_DIR: &str = "tmp";
pub const LOCK_FILE: &str = "lock";
const OPEN_FILES_MAX: usize = 64;
/// Appends are buffered: one write(2) per this many bytes of a pack.
const WRITE_BUFFER_BYTES: usize = 256 << 10;

pub struct LocalBackend {
    root: PathBuf,
    files: Mutex<lru::LruCache<Key, Arc<File>>>,
    observer: Option<Arc<dyn Observer>>,
}

impl LocalBackend {
    pub fn new(root: &Path) -> LocalBackend {
        LocalBackend {
            root: root.to_path_buf(),
            files: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(OPEN_FILES_MAX).expect("non-zero"),
            )),
            observer: None,
        }
    }

    /// Report every change and durability call to `observer` first (fault injection).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> LocalBackend {
        self.observer = Some(observer);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: Key) -> PathBuf {
        self.root.join(key.name())
    }

    fn open(&self, key: Key) -> Result<Arc<File>> {
        if let Some(f) = self.files.lock().expect("files lock").get(&key) {
            return Ok(f.clone());
        }
        let path = self.path(key);
        let file = Arc::new(File::open(&path).map_err(|e| not_found_or(key, "open", &path, e))?);
        self.files
            .lock()
            .expect("files lock")
            .put(key, file.clone());
        Ok(file)
    }

    fn change(&self, change: Change<'_>, path: &Path) -> Result<()> {
        observe(&self.observer, change).map_err(|e| StoreError::io("change", path, e))
    }
}

/// Ask the observer (if any), make the durability call, tell the observer.
pub(crate) fn durable(
    observer: &Option<Arc<dyn Observer>>,
    what: Durable<'_>,
    call: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if let Some(o) = observer {
        o.before_durable(what)
            .map_err(|e| StoreError::io("fsync", what.path(), e))?;
    }
    call()?;
    if let Some(o) = observer {
        o.durable(what);
    }
    Ok(())
}

/// fsync a directory, so creates, renames and removals in it are durable.
pub(crate) fn sync_dir(observer: &Option<Arc<dyn Observer>>, dir: &Path) -> Result<()> {
    durable(observer, Durable::Entries(dir), || {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("fsync", dir, e))
    })
}

/// Tell the observer (if any) of a change about to be made; its error refuses the change.
pub(crate) fn observe(
    observer: &Option<Arc<dyn Observer>>,
    change: Change<'_>,
) -> std::io::Result<()> {
    match observer {
        Some(o) => o.change(change),
        None => Ok(()),
    }
}

fn not_found_or(key: Key, op: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::Missing(key)
    } else {
        StoreError::io(op, path, e)
    }
}

impl Backend for LocalBackend {
    fn init(&self) -> Result<()> {
        // All 256 pack directories exist from the start, so committing a pack never has to make
        // a directory entry durable in `packs/` (and two threads never race to create one).
        let packs = self.root.join(PACKS_PREFIX);
        for n in 0..=255u8 {
            let d = packs.join(format!("{n:02x}"));
            self.change(Change::MakeDir(&d), &d)?;
            fs::create_dir_all(&d).map_err(|e| StoreError::io("create", &d, e))?;
        }
        sync_dir(&self.observer, &packs)?;
        let tmp = self.root.join(TMP_DIR);
        self.change(Change::MakeDir(&tmp), &tmp)?;
        fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        let lock = self.root.join(LOCK_FILE);
        self.change(Change::Create(&lock), &lock)?;
        File::create(&lock).map_err(|e| StoreError::io("create", &lock, e))?;
        Ok(())
    }

    fn lock(&self) -> Result<LockGuard> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        let mut fl = whole_file_write_lock();
        // SAFETY: fcntl with F_SETLK on a valid fd and a fully initialised flock struct.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
            return Ok(LockGuard(Box::new(file)));
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EAGAIN)) {
            return Err(StoreError::io("lock", &path, err));
        }
        // SAFETY: as above; F_GETLK fills `fl` with the conflicting lock.
        let holder = if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) } == 0 {
            Holder::Pid(fl.l_pid as i64)
        } else {
            Holder::Unknown
        };
        Err(StoreError::InUse(holder))
    }

    fn clean_leftovers(&self) -> Result<()> {
        let tmp = self.root.join(TMP_DIR);
        if !tmp.is_dir() {
            // Removed by hand: every object is written there first.
            self.change(Change::MakeDir(&tmp), &tmp)?;
            fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
            sync_dir(&self.observer, &self.root)?;
        }
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let path = e.path();
                self.change(Change::Remove(&path), &path)?;
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }

    fn create(&self, key: Key) -> Result<Box<dyn ObjectWriter>> {
        let mut suffix = [0u8; 8];
        random_bytes(&mut suffix)?;
        let flat = key.name().replace('/', "_");
        let tmp_path = self
            .root
            .join(TMP_DIR)
            .join(format!("{flat}.{}", hex::encode(suffix)));
        self.change(Change::Create(&tmp_path), &tmp_path)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| StoreError::io("create", &tmp_path, e))?;
        Ok(Box::new(LocalWriter {
            dest: self.path(key),
            tmp_path,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
            len: 0,
            observer: self.observer.clone(),
        }))
    }

    fn get(&self, key: Key) -> Result<Vec<u8>> {
        let path = self.path(key);
        fs::read(&path).map_err(|e| not_found_or(key, "read", &path, e))
    }

    fn get_range(&self, key: Key, offset: u64, len: u64) -> Result<Vec<u8>> {
        let file = self.open(key)?;
        let mut buf = vec![0u8; len as usize];
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(StoreError::corrupt(
                Damaged::Object(key),
                format!("is truncated (bytes {offset}+{len} lie past the end)"),
            )),
            Err(e) => Err(StoreError::io("read", self.path(key), e)),
        }
    }

    fn size(&self, key: Key) -> Result<u64> {
        let file = self.open(key)?;
        let md = file
            .metadata()
            .map_err(|e| StoreError::io("stat", self.path(key), e))?;
        Ok(md.len())
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let dir = self.root.join(match kind {
            Kind::Pack => PACKS_PREFIX,
        });
        let mut out = Vec::new();
        let rd = fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
        for sub in rd {
            let sub = sub.map_err(|e| StoreError::io("list", &dir, e))?;
            if !sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let sub = sub.path();
            let files = fs::read_dir(&sub).map_err(|e| StoreError::io("list", &sub, e))?;
            for f in files {
                let f = f.map_err(|e| StoreError::io("list", &sub, e))?;
                let Some(key) = f.file_name().to_str().and_then(|n| Key::parse(kind, n)) else {
                    continue;
                };
                // A file removed since the listing is simply not listed.
                if let Ok(md) = f.metadata() {
                    out.push(ObjectInfo {
                        key,
                        size: md.len(),
                    });
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, key: Key) -> Result<bool> {
        self.files.lock().expect("files lock").pop(&key);
        let path = self.path(key);
        self.change(Change::Remove(&path), &path)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", &path, e)),
        }
    }

    fn set_aside(&self, key: Key) -> Result<bool> {
        self.files.lock().expect("files lock").pop(&key);
        let from = self.path(key);
        if !from.exists() {
            return Ok(false);
        }
        let dir = self.root.join(DAMAGED_PREFIX);
        if !dir.exists() {
            self.change(Change::MakeDir(&dir), &dir)?;
            fs::create_dir(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
            sync_dir(&self.observer, &self.root)?;
        }
        let name = from.file_name().expect("an object has a file name");
        let mut to = dir.join(name);
        let mut n = 0;
        while let Ok(there) = fs::symlink_metadata(&to) {
            let here = fs::symlink_metadata(&from).map_err(|e| StoreError::io("stat", &from, e))?;
            if (there.dev(), there.ino()) == (here.dev(), here.ino()) {
                // Set aside before, and its old name came back (a crash between the two
                // directory fsyncs): only that name is left to remove.
                self.change(Change::Remove(&from), &from)?;
                fs::remove_file(&from).map_err(|e| StoreError::io("remove", &from, e))?;
                sync_dir(&self.observer, from.parent().expect("a parent"))?;
                return Ok(true);
            }
            n += 1;
            to = dir.join(format!("{}.{n}", name.to_string_lossy()));
        }
        self.change(
            Change::Rename {
                from: &from,
                to: &to,
            },
            &to,
        )?;
        fs::rename(&from, &to).map_err(|e| StoreError::io("rename", &from, e))?;
        // The new name first: a crash between the two leaves both names, never none.
        sync_dir(&self.observer, &dir)?;
        sync_dir(
            &self.observer,
            from.parent().expect("an object's path has a parent"),
        )?;
        Ok(true)
    }

    fn will_need(&self, key: Key, offset: u64, len: u64) {
        let Ok(file) = self.open(key) else { return };
        // SAFETY: posix_fadvise on an fd we hold open; it is only a hint.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                offset as i64,
                len as i64,
                libc::POSIX_FADV_WILLNEED,
            );
        }
    }
}

/// An object being written under `tmp/`. Dropped without a commit (an error, a full disk), it
/// removes its file: a failed command leaves no partial file behind.
struct LocalWriter {
    dest: PathBuf,
    tmp_path: PathBuf,
    /// `None` once committed or aborted.
    file: Option<BufWriter<File>>,
    len: u64,
    observer: Option<Arc<dyn Observer>>,
}

impl LocalWriter {
    fn finish(&self, file: BufWriter<File>) -> Result<()> {
        let io = |op, e| StoreError::io(op, &self.tmp_path, e);
        let file = file.into_inner().map_err(|e| io("write", e.into_error()))?;
        durable(&self.observer, Durable::Data(&self.tmp_path), || {
            file.sync_all().map_err(|e| io("fsync", e))
        })?;
        drop(file);
        let dir = self.dest.parent().expect("an object's path has a parent");
        if !dir.exists() {
            // Only in vaults made before `init` made every pack directory.
            observe(&self.observer, Change::MakeDir(dir))
                .and_then(|()| fs::create_dir_all(dir))
                .map_err(|e| StoreError::io("create", dir, e))?;
            sync_dir(
                &self.observer,
                dir.parent().expect("a pack directory has a parent"),
            )?;
        }
        observe(
            &self.observer,
            Change::Rename {
                from: &self.tmp_path,
                to: &self.dest,
            },
        )
        .and_then(|()| fs::rename(&self.tmp_path, &self.dest))
        .map_err(|e| StoreError::io("rename", &self.dest, e))?;
        sync_dir(&self.observer, dir)
    }

    /// Remove the file under `tmp/` (unless the power is off, in a simulated cut).
    fn remove_tmp(&self) {
        if observe(&self.observer, Change::Remove(&self.tmp_path)).is_ok() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

impl ObjectWriter for LocalWriter {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("an open writer");
        observe(&self.observer, Change::Write(&self.tmp_path))
            .and_then(|()| file.write_all(bytes))
            .map_err(|e| StoreError::io("write", &self.tmp_path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let file = self.file.take().expect("an open writer");
        let result = self.finish(file);
        if result.is_err() && self.tmp_path.exists() {
            self.remove_tmp();
        }
        result
    }

    fn abort(mut self: Box<Self>) {
        self.file.take();
        self.remove_tmp();
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Not flushed: its bytes are thrown away with the file.
            let _ = file.into_parts();
            self.remove_tmp();
        }
    }
}

/// The pid holding the lock of the vault at `root`, if any (without taking it).
pub fn holder(root: &Path) -> Option<i64> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join(LOCK_FILE))
        .ok()?;
    let mut fl = whole_file_write_lock();
    // SAFETY: F_GETLK fills `fl` with a conflicting lock, or sets l_type to F_UNLCK.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return None;
    }
    (i32::from(fl.l_type) != libc::F_UNLCK).then_some(fl.l_pid as i64)
}

fn whole_file_write_lock() -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = 0;
    fl.l_len = 0;
    fl
}
