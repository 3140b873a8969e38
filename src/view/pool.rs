//! A fixed set of threads running queued jobs (read-ahead), asleep on a channel while idle.
//!
//! Not rayon: an idle rayon pool spins on `sched_yield` between jobs, and read-ahead jobs come
//! one at a time; during a cold `find` that spinning was a third of the daemon's CPU.
//!
//! A job that panics (a bug) ends, not its thread: the pool keeps its size.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    tx: Sender<Job>,
}

impl Pool {
    /// Start `threads` threads named `name-N`; they end when the pool is dropped.
    pub fn new(threads: usize, name: &str) -> std::io::Result<Pool> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Pool { tx })
    }

    /// Queue a job; it runs on the next idle thread.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        // Fails only when every thread is gone, which happens only after the pool is dropped.
        let _ = self.tx.send(Box::new(job));
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = rx.lock().recv();
        match job {
            // The panic hook has logged it.
            Ok(job) => drop(catch_unwind(AssertUnwindSafe(job))),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_job_on_its_threads() {
        let pool = Pool::new(3, "t").unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        for _ in 0..50 {
            let (done, tx) = (done.clone(), tx.clone());
            pool.spawn(move || {
                assert!(std::thread::current().name().unwrap().starts_with("t-"));
                done.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            });
        }
        for _ in 0..50 {
            rx.recv().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 50);
    }

    #[test]
    fn a_panicking_job_leaves_its_thread_serving() {
        let pool = Pool::new(1, "p").unwrap();
        let (tx, rx) = channel();
        pool.spawn(|| panic!("a bug in one job"));
        pool.spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv().unwrap(), 7);
    }
}
