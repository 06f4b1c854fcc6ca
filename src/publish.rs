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
}

impl Publisher {
    pub fn new(snapshot: Arc<Snapshot>, shards: usize) -> Arc<Publisher> {
        Arc::new(Publisher {
            current: ControlMutex::new(snapshot),
            generation: AtomicU64::new(1),
            applied: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            shutdown: AtomicBool::new(false),
        })
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

    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}
