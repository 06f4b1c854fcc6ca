//! Handing new snapshots (and the shutdown order) from the control plane
//! to the shards.
//!
//! The control plane stores the new `Arc<Snapshot>` and bumps a
//! generation; each shard's housekeeping task looks at the generation every
//! [`POLL`] (never per request), swaps its own `Rc<Arc<Snapshot>>` between
//! requests and acknowledges. `publish` can then wait until every shard
//! serves the new snapshot, so an admin call or a reload returns only when
//! its change is live everywhere. Requests in flight keep the snapshot they
//! started with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::snapshot::Snapshot;

/// How often a shard looks for a new snapshot or a shutdown order.
pub const POLL: Duration = Duration::from_millis(10);

// Control plane only: shards touch these once per POLL, not per request.
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

pub struct Publisher {
    current: ControlMutex<Arc<Snapshot>>,
    generation: AtomicU64,
    applied: Vec<AtomicU64>,
    shutdown: AtomicBool,
    /// Messages for shards (cache invalidations and flushes), read by each
    /// shard's housekeeping task.
    mailboxes: Vec<ControlMutex<Vec<Mail>>>,
    has_mail: Vec<AtomicBool>,
    mail_seq: AtomicU64,
    mail_done: Vec<AtomicU64>,
}

/// A message with its sequence number.
pub type Mail = (u64, Arc<ShardMsg>);

/// Work one shard asks of the others.
#[derive(Debug)]
pub enum ShardMsg {
    /// Store this fresh entry, or a tombstone when the fresh response is
    /// not cached (an authorized `Cache-Control: max-age=0`).
    CacheReplace {
        uid: String,
        key: String,
        entry: Arc<crate::cache::Entry>,
    },
    /// Empty a stage's cache.
    CacheFlush { uid: String },
    /// Report the shard's counters.
    Metrics {
        reply: Arc<crate::metrics::ReportSlot>,
    },
    /// An `@connections` operation on a connection the shard owns.
    Connection {
        id: String,
        /// The API and stage the call names: a connection of another is
        /// gone for it.
        api: String,
        stage: String,
        op: crate::ws::ConnOp,
        reply: Arc<crate::ws::ReplySlot>,
    },
}

impl Publisher {
    pub fn new(snapshot: Arc<Snapshot>, shards: usize) -> Arc<Publisher> {
        Arc::new(Publisher {
            current: ControlMutex::new(snapshot),
            generation: AtomicU64::new(1),
            applied: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            shutdown: AtomicBool::new(false),
            mailboxes: (0..shards).map(|_| ControlMutex::new(Vec::new())).collect(),
            has_mail: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            mail_seq: AtomicU64::new(0),
            mail_done: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Posts `msg` to every shard but `skip`; returns its sequence number.
    pub fn post(&self, msg: ShardMsg, skip: Option<usize>) -> u64 {
        let msg = Arc::new(msg);
        let seq = self.mail_seq.fetch_add(1, Ordering::AcqRel) + 1;
        for (i, mailbox) in self.mailboxes.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            let mut m = match mailbox.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            m.push((seq, msg.clone()));
            self.has_mail[i].store(true, Ordering::Release);
        }
        seq
    }

    /// Posts to one shard only.
    pub fn post_to(&self, shard: usize, msg: ShardMsg) -> bool {
        let Some(mailbox) = self.mailboxes.get(shard) else {
            return false;
        };
        let seq = self.mail_seq.fetch_add(1, Ordering::AcqRel) + 1;
        let mut m = match mailbox.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.push((seq, Arc::new(msg)));
        self.has_mail[shard].store(true, Ordering::Release);
        true
    }

    /// Has every shard but `skip` handled message `seq`?
    pub fn delivered(&self, seq: u64, skip: Option<usize>) -> bool {
        self.mail_done
            .iter()
            .enumerate()
            .all(|(i, d)| Some(i) == skip || d.load(Ordering::Acquire) >= seq)
    }

    /// A shard's housekeeping: takes its messages (cheap when there are none).
    pub fn take_mail(&self, shard: usize) -> Vec<Mail> {
        let Some(flag) = self.has_mail.get(shard) else {
            return Vec::new();
        };
        if !flag.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        match self.mailboxes[shard].lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    /// A shard handled every message up to `seq`.
    pub fn mail_done(&self, shard: usize, seq: u64) {
        if let Some(d) = self.mail_done.get(shard) {
            d.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// Posts to every shard and waits (blocking; control plane only) until
    /// all have handled it.
    pub fn broadcast_and_wait(&self, msg: ShardMsg, timeout: Duration) -> bool {
        let seq = self.post(msg, None);
        let until = Instant::now() + timeout;
        while !self.delivered(seq, None) {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Makes `snapshot` the one to serve; returns its generation.
    pub fn publish(&self, snapshot: Arc<Snapshot>) -> u64 {
        let mut cur = match self.current.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        *cur = snapshot;
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waits until every shard serves `generation` (or newer).
    pub fn wait_applied(&self, generation: u64, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self
                .applied
                .iter()
                .all(|a| a.load(Ordering::Acquire) >= generation)
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Has every shard taken a snapshot (and no shutdown been ordered)?
    pub fn ready(&self) -> bool {
        !self.shutting_down() && self.applied.iter().all(|a| a.load(Ordering::Acquire) >= 1)
    }

    /// Asks every shard for its counters and waits (blocking; control
    /// plane only) up to `timeout`. Returns the reports that came and how
    /// many shards did not answer.
    pub fn collect_metrics(&self, timeout: Duration) -> (Vec<crate::metrics::ShardReport>, usize) {
        let slots: Vec<_> = (0..self.shards())
            .map(|i| {
                let slot = Arc::new(crate::metrics::ReportSlot::default());
                self.post_to(
                    i,
                    ShardMsg::Metrics {
                        reply: slot.clone(),
                    },
                );
                slot
            })
            .collect();
        let until = Instant::now() + timeout;
        while Instant::now() < until && slots.iter().any(|s| s.0.get().is_none()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let reports: Vec<_> = slots.iter().filter_map(|s| s.0.get().cloned()).collect();
        let missing = slots.len() - reports.len();
        (reports, missing)
    }

    pub fn current(&self) -> Arc<Snapshot> {
        match self.current.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A shard reports the generation it now serves.
    pub fn ack(&self, shard: usize, generation: u64) {
        if let Some(a) = self.applied.get(shard) {
            a.store(generation, Ordering::Release);
        }
    }

    pub fn shards(&self) -> usize {
        self.applied.len()
    }

    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}
