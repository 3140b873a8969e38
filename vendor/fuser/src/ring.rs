//! vaultfs: FUSE over io_uring (Linux 6.14+, `/sys/module/fuse/parameters/enable_uring`).
//!
//! The kernel keeps one queue per possible CPU and puts a request on the queue of the CPU its
//! caller runs on. Each queue is served by `threads_per_queue` threads pinned to that CPU, each
//! owning an io_uring (128-byte SQEs) with `depth` entries registered on the queue: the reply
//! is made on the CPU that asked, without waking the other one. Every entry has a 288-byte
//! header buffer and a payload buffer of the connection's max payload. A request arrives as a
//! CQE; its reply is written into the same entry and handed back with
//! FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which also re-arms the entry.
//!
//! What stays on /dev/fuse: FORGET, BATCH_FORGET and INTERRUPT (the kernel sends them there),
//! notifications (the daemon writes them there), and INIT.
//!
//! Once FUSE_OVER_IO_URING is in the INIT reply, the kernel holds every request until each
//! queue has an entry registered, so a connection whose registration fails serves nothing:
//! rings are created before INIT (so a kernel or sysctl that refuses io_uring is found while
//! /dev/fuse can still be chosen) and registered right after it, before the session runs;
//! a refused registration fails the session.
use std::cell::RefCell;
use std::cell::UnsafeCell;
use std::io;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::thread::JoinHandle;
use std::time::Duration;

use io_uring::IoUring;
use io_uring::cqueue;
use io_uring::opcode;
use io_uring::squeue::Entry128;
use io_uring::types;
use log::error;
use parking_lot::Mutex;

use crate::Filesystem;
use crate::IoUringConfig;
use crate::channel::ChannelSender;
use crate::request::ReplyTarget;
use crate::request::RequestWithSender;
use crate::session::SessionEventLoop;

const FUSE_IO_URING_CMD_REGISTER: u32 = 1;
const FUSE_IO_URING_CMD_COMMIT_AND_FETCH: u32 = 2;
const IN_HEADER: usize = 40;
const OP_IN: usize = 128;
const EVENTFD: u64 = u64::MAX;

/// `struct fuse_uring_req_header` (include/uapi/linux/fuse.h)
#[repr(C)]
struct RingHeader {
    in_out: [u8; 128],
    op_in: [u8; OP_IN],
    flags: u64,
    commit_id: u64,
    payload_sz: u32,
    padding: u32,
    reserved: u64,
}

/// Buffers shared with the kernel. Exactly one party touches an entry at a time: the kernel
/// until the CQE, then the queue thread (parse), then the replier (write), then the kernel again
/// after COMMIT_AND_FETCH.
struct Ent {
    hdr: UnsafeCell<RingHeader>,
    payload: UnsafeCell<Box<[u8]>>,
    iov: [libc::iovec; 2],
}

/// One thread's entries. Its address is what replies find it by.
pub(crate) struct Queue {
    qid: u16,
    ents: Box<[Ent]>,
    /// Entries replied to from other threads, waiting for the queue thread to commit them.
    remote: Mutex<Vec<usize>>,
    eventfd: OwnedFd,
}
// SAFETY: entries are handed between threads one owner at a time (see Ent).
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({})", self.qid)
    }
}

thread_local! {
    /// On a ring thread: its queue and the entries replied to synchronously during dispatch.
    static LOCAL: RefCell<Option<(usize, Vec<usize>)>> = const { RefCell::new(None) };
}

/// Where a reply to a ring request goes.
#[derive(Debug, Clone)]
pub(crate) struct RingReply {
    pub(crate) queue: Arc<Queue>,
    pub(crate) ent: usize,
    /// /dev/fuse, for passthrough ioctls.
    pub(crate) ch: ChannelSender,
}

impl RingReply {
    pub(crate) fn send(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let e = &self.queue.ents[self.ent];
        // SAFETY: the entry is in userspace and this reply is its only owner (see Ent).
        let (hdr, payload) = unsafe { (&mut *e.hdr.get(), &mut *e.payload.get()) };
        // The out header (16 bytes) goes to the header buffer, the rest to the payload.
        let mut n = 0;
        let mut header_done = 0;
        for b in bufs {
            let mut b: &[u8] = b;
            if header_done < 16 {
                let take = (16 - header_done).min(b.len());
                hdr.in_out[header_done..header_done + take].copy_from_slice(&b[..take]);
                header_done += take;
                b = &b[take..];
            }
            if n + b.len() > payload.len() {
                return Err(io::Error::other("reply larger than the ring payload"));
            }
            payload[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        }
        hdr.payload_sz = n as u32;
        let me = Arc::as_ptr(&self.queue) as usize;
        let local = LOCAL.with(|l| match &mut *l.borrow_mut() {
            Some((q, done)) if *q == me => {
                done.push(self.ent);
                true
            }
            _ => false,
        });
        if !local {
            self.queue.remote.lock().push(self.ent);
            nix::unistd::write(&self.queue.eventfd, &1u64.to_ne_bytes())?;
        }
        Ok(())
    }
}

fn cmd(op: u32, qid: u16, commit_id: u64, iov: *const libc::iovec, user_data: u64) -> Entry128 {
    let mut c = [0u8; 80]; // struct fuse_uring_cmd_req { flags, commit_id, qid, padding }
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    let mut e = opcode::UringCmd80::new(types::Fixed(0), op)
        .cmd(c)
        .addr(Some(iov as u64))
        .build()
        .user_data(user_data);
    // io-uring 0.7's UringCmd80 has no `len`; the kernel wants sqe->len == 2 (iovec count).
    // SAFETY: Entry128 is repr(C) over struct io_uring_sqe; `len` is the u32 at offset 24.
    unsafe { ((&raw mut e).cast::<u8>().add(24).cast::<u32>()).write_unaligned(2) };
    e
}

/// The kernel makes one queue per possible CPU (not online, not present).
pub fn queue_count() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
                .max()
        })
        .map_or(1, |m| m + 1)
}

/// The shape of the rings a session serves, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoUringInfo {
    /// Kernel queues (one per possible CPU).
    pub queues: usize,
    /// Threads, each with its own ring, per queue.
    pub threads_per_queue: usize,
    /// Entries per ring.
    pub depth: usize,
    /// Bytes of each entry's payload buffer.
    pub payload: usize,
}

/// One ring thread's io_uring, created before INIT.
pub(crate) struct Ring {
    qid: u16,
    ring: IoUring<Entry128, cqueue::Entry>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring({})", self.qid)
    }
}

/// Create every ring the session will serve. Fails where the kernel or its
/// `kernel.io_uring_disabled` sysctl refuses io_uring or 128-byte SQEs.
pub(crate) fn create(cfg: &IoUringConfig) -> io::Result<Vec<Ring>> {
    let depth = cfg.depth.max(1) as u32;
    let mut rings = Vec::new();
    for qid in 0..queue_count() {
        for _ in 0..cfg.threads_per_queue.max(1) {
            let ring = IoUring::<Entry128, cqueue::Entry>::builder()
                .setup_cqsize(2 * depth + 2)
                .build(depth + 1)?;
            rings.push(Ring {
                qid: qid as u16,
                ring,
            });
        }
    }
    Ok(rings)
}

/// A ring with its entries registered: ready to serve.
struct Served {
    // Declared (and so dropped) before the buffers the kernel may still write into.
    ring: IoUring<Entry128, cqueue::Entry>,
    queue: Arc<Queue>,
    /// CQEs (user_data, result) reaped during registration: requests already.
    pending: Vec<(u64, i32)>,
}

fn refused(qid: u16, err: io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        format!("the kernel refused FUSE io_uring queue {qid}: {err}"),
    )
}

/// A ring thread that has registered its entries and waits for the session to run.
pub(crate) struct RingThread<FS: Filesystem> {
    handle: JoinHandle<io::Result<()>>,
    go: mpsc::Sender<SessionEventLoop<FS>>,
}

impl<FS: Filesystem> std::fmt::Debug for RingThread<FS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RingThread({:?})", self.handle.thread().name())
    }
}

impl<FS: Filesystem + Send + Sync + 'static> RingThread<FS> {
    /// Start serving with `se`; the handle ends when the connection does.
    pub(crate) fn serve(self, se: SessionEventLoop<FS>) -> JoinHandle<io::Result<()>> {
        let _ = self.go.send(se);
        self.handle
    }
}

/// Start one thread per ring, each registering `depth` entries of `payload` bytes. The kernel
/// completes a ring command on the task that submitted it, so each thread registers its own
/// entries and then serves them. An error the kernel reports at once (a bad size, a queue it
/// does not have, a connection without io_uring) fails it all.
pub(crate) fn start<FS: Filesystem + Send + Sync + 'static>(
    rings: Vec<Ring>,
    fuse_fd: BorrowedFd<'_>,
    payload: usize,
    depth: usize,
    ch: &ChannelSender,
) -> io::Result<Vec<RingThread<FS>>> {
    let depth = depth.max(1);
    let mut out = Vec::with_capacity(rings.len());
    let mut replies = Vec::with_capacity(rings.len());
    for (k, Ring { qid, ring }) in rings.into_iter().enumerate() {
        let eventfd: OwnedFd =
            nix::sys::eventfd::EventFd::from_flags(nix::sys::eventfd::EfdFlags::EFD_CLOEXEC)?
                .into();
        ring.submitter()
            .register_files(&[fuse_fd.as_raw_fd(), eventfd.as_raw_fd()])
            .map_err(|e| refused(qid, e))?;
        let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<()>>(1);
        let (go, go_rx) = mpsc::channel::<SessionEventLoop<FS>>();
        let ch = ch.clone();
        let handle = thread::Builder::new()
            .name(format!("fuser-ring-{k}"))
            .spawn(move || {
                pin(qid);
                let mut served = prepare(qid, ring, eventfd, payload, depth);
                let registered = register_entries(&mut served, depth);
                let failed = registered.is_err();
                let _ = ready_tx.send(registered);
                let se = if failed { None } else { go_rx.recv().ok() };
                match se {
                    Some(se) => serve(se, served, ch),
                    None => {
                        // Entries the kernel took keep their buffers until the connection
                        // is gone.
                        std::mem::forget(served.queue.clone());
                        Ok(())
                    }
                }
            })?;
        replies.push(ready_rx);
        out.push(RingThread { handle, go });
    }
    for rx in replies {
        rx.recv()
            .map_err(|_| io::Error::other("a FUSE io_uring thread died"))??;
    }
    Ok(out)
}

fn pin(qid: u16) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(qid as usize).is_ok() {
        // A CPU outside this process's cpuset: the thread serves unpinned.
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Allocate `depth` entries for `ring`.
fn prepare(
    qid: u16,
    ring: IoUring<Entry128, cqueue::Entry>,
    eventfd: OwnedFd,
    payload: usize,
    depth: usize,
) -> Served {
    let mut ents: Box<[Ent]> = (0..depth)
        .map(|_| Ent {
            // SAFETY: RingHeader is plain bytes and integers.
            hdr: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            payload: UnsafeCell::new(vec![0u8; payload].into_boxed_slice()),
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2],
        })
        .collect();
    // The kernel keeps these addresses while the entry is registered: take them only once
    // the entries sit in their final heap allocation.
    for e in ents.iter_mut() {
        e.iov[0] = libc::iovec {
            iov_base: e.hdr.get().cast(),
            iov_len: size_of::<RingHeader>(),
        };
        let p = e.payload.get_mut();
        e.iov[1] = libc::iovec {
            iov_base: p.as_mut_ptr().cast(),
            iov_len: p.len(),
        };
    }
    Served {
        ring,
        queue: Arc::new(Queue {
            qid,
            ents,
            remote: Mutex::new(Vec::new()),
            eventfd,
        }),
        pending: Vec::new(),
    }
}

/// Submit REGISTER for every entry of `served` and collect what completes at once.
fn register_entries(served: &mut Served, depth: usize) -> io::Result<()> {
    let qid = served.queue.qid;
    let mut todo: Vec<usize> = (0..depth).collect();
    // EAGAIN: the kernel has not taken the INIT reply in yet; it will.
    for _attempt in 0..100 {
        if todo.is_empty() {
            break;
        }
        for &i in &todo {
            let e = &served.queue.ents[i];
            let sqe = cmd(FUSE_IO_URING_CMD_REGISTER, qid, 0, e.iov.as_ptr(), i as u64);
            // SAFETY: the entry's buffers live in `served.queue` as long as the ring.
            unsafe { served.ring.submission().push(&sqe) }.map_err(io::Error::other)?;
        }
        todo.clear();
        served.ring.submit().map_err(|e| refused(qid, e))?;
        // A refusal completes during the submit; an accepted entry completes only with a
        // request.
        for c in served.ring.completion() {
            let (ud, res) = (c.user_data(), c.result());
            if res == -libc::EAGAIN || res == -libc::EINTR {
                todo.push(ud as usize);
            } else if res < 0 {
                return Err(refused(qid, io::Error::from_raw_os_error(-res)));
            } else {
                served.pending.push((ud, res));
            }
        }
        if !todo.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if !todo.is_empty() {
        return Err(refused(qid, io::Error::from_raw_os_error(libc::EAGAIN)));
    }
    Ok(())
}

/// Serve one ring until the connection goes away.
fn serve<FS: Filesystem>(
    se: SessionEventLoop<FS>,
    served: Served,
    ch: ChannelSender,
) -> io::Result<()> {
    let queue = served.queue.clone();
    let mut evbuf = Box::new([0u8; 8]);
    let me = Arc::as_ptr(&queue) as usize;
    LOCAL.with(|l| *l.borrow_mut() = Some((me, Vec::new())));
    let res = serve_loop(&se, served, &ch, &mut evbuf);
    LOCAL.with(|l| *l.borrow_mut() = None);
    if res.is_err() {
        // The kernel may still hold entries of this ring: their buffers must outlive it.
        std::mem::forget(queue);
        std::mem::forget(evbuf);
    }
    res
}

fn serve_loop<FS: Filesystem>(
    se: &SessionEventLoop<FS>,
    served: Served,
    ch: &ChannelSender,
    evbuf: &mut [u8; 8],
) -> io::Result<()> {
    let Served {
        mut ring,
        queue,
        pending,
    } = served;
    let qid = queue.qid;
    let depth = queue.ents.len();
    let evptr = evbuf.as_mut_ptr();
    let arm_eventfd = || -> Entry128 {
        opcode::Read::new(types::Fixed(1), evptr, 8)
            .build()
            .user_data(EVENTFD)
            .into()
    };
    // SAFETY: evbuf is heap memory the caller keeps (or leaks) past the ring.
    unsafe { ring.submission().push(&arm_eventfd()) }.map_err(io::Error::other)?;
    // fuser's parser wants the /dev/fuse layout (in_header, op header, rest) in one buffer,
    // 8-byte aligned.
    let payload_len = queue.ents.first().map_or(0, |e| {
        // SAFETY: only the length is read.
        unsafe { (&(*e.payload.get())).len() }
    });
    let mut reqbuf = vec![0u64; (IN_HEADER + OP_IN + payload_len).div_ceil(8)];
    let mut live = depth;
    let mut cqes = pending;
    let mut commits = Vec::with_capacity(depth);
    loop {
        commits.clear();
        for (ud, res) in cqes.drain(..) {
            if ud == EVENTFD {
                commits.extend(queue.remote.lock().drain(..));
                if res >= 0 {
                    // SAFETY: as above.
                    unsafe { ring.submission().push(&arm_eventfd()) }.map_err(io::Error::other)?;
                }
                continue;
            }
            let i = ud as usize;
            let e = &queue.ents[i];
            // SAFETY: the kernel handed this entry to us with this CQE.
            let hdr = unsafe { &*e.hdr.get() };
            if res < 0 {
                if res == -libc::EAGAIN || res == -libc::EINTR {
                    let sqe = cmd(
                        FUSE_IO_URING_CMD_COMMIT_AND_FETCH,
                        qid,
                        hdr.commit_id,
                        e.iov.as_ptr(),
                        ud,
                    );
                    // SAFETY: the entry's buffers live as long as `queue`.
                    unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
                } else {
                    // ENOTCONN, ECONNABORTED: unmounted or aborted; the kernel tore it down.
                    if res != -libc::ENOTCONN && res != -libc::ECONNABORTED {
                        error!(
                            "fuse io_uring queue {qid}: {}",
                            io::Error::from_raw_os_error(-res)
                        );
                    }
                    live -= 1;
                }
                continue;
            }
            crate::stats::count_ring();
            // Rebuild the /dev/fuse layout for fuser's parser.
            let len = u32::from_ne_bytes(hdr.in_out[..4].try_into().unwrap()) as usize;
            // SAFETY: as above.
            let payload = unsafe { &*e.payload.get() };
            let psz = (hdr.payload_sz as usize).min(payload.len());
            let oplen = len.saturating_sub(IN_HEADER + psz).min(OP_IN);
            let total = IN_HEADER + oplen + psz;
            // SAFETY: a u64 buffer seen as bytes, within its length.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(reqbuf.as_mut_ptr().cast::<u8>(), reqbuf.len() * 8)
            };
            buf[..IN_HEADER].copy_from_slice(&hdr.in_out[..IN_HEADER]);
            buf[IN_HEADER..IN_HEADER + oplen].copy_from_slice(&hdr.op_in[..oplen]);
            buf[IN_HEADER + oplen..total].copy_from_slice(&payload[..psz]);
            let target = ReplyTarget::Ring(RingReply {
                queue: queue.clone(),
                ent: i,
                ch: ch.clone(),
            });
            match RequestWithSender::new_with_target(target, &buf[..total]) {
                Some(req) => req.dispatch(se),
                None => error!("fuse io_uring queue {qid}: unparsable request"),
            }
            LOCAL.with(|l| {
                if let Some((_, done)) = &mut *l.borrow_mut() {
                    commits.append(done);
                }
            });
        }
        for &i in &commits {
            let e = &queue.ents[i];
            // SAFETY: the reply is written; the entry goes back to the kernel.
            let commit_id = unsafe { (*e.hdr.get()).commit_id };
            let sqe = cmd(
                FUSE_IO_URING_CMD_COMMIT_AND_FETCH,
                qid,
                commit_id,
                e.iov.as_ptr(),
                i as u64,
            );
            // SAFETY: as above.
            unsafe { ring.submission().push(&sqe) }.map_err(io::Error::other)?;
        }
        if live == 0 {
            return Ok(());
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        cqes.extend(ring.completion().map(|c| (c.user_data(), c.result())));
    }
}
