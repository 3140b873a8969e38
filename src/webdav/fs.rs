//! dav-server's filesystem traits over [`Tree`]: each call is one `spawn_blocking` into the
//! synchronous view, so tokio's workers never wait on a tree load or a chunk read. Only
//! reading is implemented; dav-server answers every write method with 405 before it gets here
//! (the handler allows GET, HEAD, OPTIONS and PROPFIND), and the trait's defaults refuse the
//! rest.

use std::io::SeekFrom;
use std::time::SystemTime;

use bytes::Bytes;
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, FsError, FsFuture, FsResult, FsStream, GuardedFileSystem,
    OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, stream};

use super::tree::{Held, Tree, TreeError, TreeResult};
use crate::view::{Attr, Caller, Kind};

/// Run `f` on a blocking thread; a panic there is a failed request, not a dead server.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> TreeResult<T> + Send + 'static,
) -> FsResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(status),
        Err(e) => {
            tracing::error!("a WebDAV request failed: {e}");
            Err(FsError::GeneralFailure)
        }
    }
}

/// The only place a view failure becomes a WebDAV answer: absent or hidden → 404, a role that
/// does not allow it → 403, damaged data and anything else → 500 (logged, never served).
fn status(e: TreeError) -> FsError {
    match e {
        TreeError::NotFound => FsError::NotFound,
        TreeError::Denied => FsError::Forbidden,
        TreeError::View(e) => {
            e.log("WebDAV request");
            FsError::GeneralFailure
        }
    }
}

/// Attributes as dav-server reads them (size, mtime, kind; content type by extension is
/// dav-server's, from the name).
#[derive(Debug, Clone)]
struct Meta(Attr);

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        if self.0.kind == Kind::Dir {
            0
        } else {
            self.0.size
        }
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.0.mtime)
    }
    fn is_dir(&self) -> bool {
        self.0.kind == Kind::Dir
    }
    fn executable(&self) -> FsResult<bool> {
        Ok(self.0.perm & 0o100 != 0)
    }
    fn status_changed(&self) -> FsResult<SystemTime> {
        Ok(self.0.ctime)
    }
}

struct Entry {
    name: Vec<u8>,
    meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.clone()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        Box::pin(async move { Ok(m) })
    }
}

/// An open file of a point: the view's handle and the references that keep its inode known,
/// both given back when dav-server drops it.
#[derive(Debug)]
struct File {
    tree: TreeRef,
    attr: Attr,
    fh: u64,
    pos: u64,
    _held: Held,
}

/// [`Tree`] with a `Debug` (dav-server's files must have one).
#[derive(Clone)]
struct TreeRef(Tree);

impl std::fmt::Debug for TreeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tree")
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.tree.0.release(self.fh);
    }
}

impl DavFile for File {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(Meta(self.attr.clone()));
        Box::pin(async move { Ok(m) })
    }
    fn write_buf(&mut self, _: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }
    fn write_bytes(&mut self, _: Bytes) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }
    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        let (tree, ino, fh, pos) = (self.tree.0.clone(), self.attr.ino, self.fh, self.pos);
        let size = count.min(u32::MAX as usize) as u32;
        async move {
            let data = blocking(move || tree.read(ino, fh, pos, size)).await?;
            self.pos += data.len() as u64;
            Ok(Bytes::from(data))
        }
        .boxed()
    }
    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let to = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.attr.size.checked_add_signed(d),
        };
        let r = match to {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(FsError::GeneralFailure),
        };
        Box::pin(async move { r })
    }
    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The filesystem dav-server serves: the view, as the authenticated user (a [`Caller`]) sees
/// it.
#[derive(Clone)]
pub(super) struct Fs {
    tree: Tree,
}

impl Fs {
    pub(super) fn new(tree: Tree) -> Fs {
        Fs { tree }
    }
}

impl GuardedFileSystem<Caller> for Fs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        who: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        let (tree, path, who) = (self.tree.clone(), path.as_bytes().to_vec(), *who);
        async move {
            if options.write || options.append || options.truncate || options.create {
                return Err(FsError::Forbidden);
            }
            let file = blocking(move || {
                let (attr, held) = tree.resolve(who, &path)?;
                if attr.kind != Kind::File {
                    return Err(TreeError::NotFound);
                }
                let fh = tree.open(attr.ino)?;
                Ok(File {
                    tree: TreeRef(tree),
                    attr,
                    fh,
                    pos: 0,
                    _held: held,
                })
            })
            .await?;
            Ok(Box::new(file) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        who: &'a Caller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        let (tree, path, who) = (self.tree.clone(), path.as_bytes().to_vec(), *who);
        async move {
            let listed = blocking(move || {
                let (dir, mut held) = tree.resolve(who, &path)?;
                if dir.kind != Kind::Dir {
                    return Err(TreeError::NotFound);
                }
                let list = tree.list(who, &dir, &mut held)?;
                drop(held);
                Ok(list)
            })
            .await?;
            let entries = listed.into_iter().map(|l| {
                Ok(Box::new(Entry {
                    name: l.name,
                    meta: Meta(l.attr),
                }) as Box<dyn DavDirEntry>)
            });
            Ok(Box::pin(stream::iter(entries)) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        who: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        let (tree, path, who) = (self.tree.clone(), path.as_bytes().to_vec(), *who);
        async move {
            let attr = blocking(move || tree.resolve(who, &path).map(|(a, _held)| a)).await?;
            Ok(Box::new(Meta(attr)) as Box<dyn DavMetaData>)
        }
        .boxed()
    }
}
