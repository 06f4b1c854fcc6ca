//! In-flight permits shared by all shards, leased in blocks like tokens.
//!
//! The pool starts with `max` permits. A shard takes a block when it has
//! none and returns permits when it holds more than two blocks' worth, so
//! the sum of what shards hold plus what is in flight never exceeds `max`:
//! the cap holds by construction. Under-admission is bounded by the free
//! permits idle shards keep (at most two blocks each, returned when idle).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

#[derive(Debug)]
pub struct SharedPermits {
    /// May go below zero after the cap is lowered; it then only refills.
    available: CachePadded<AtomicI64>,
    max: AtomicU64,
}

impl SharedPermits {
    pub fn new(max: u64) -> SharedPermits {
        SharedPermits {
            available: CachePadded::new(AtomicI64::new(max as i64)),
            max: AtomicU64::new(max),
        }
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    /// Changes the cap (on reload): permits in flight stay valid.
    pub fn set_max(&self, max: u64) {
        let old = self.max.swap(max, Ordering::AcqRel);
        self.available
            .fetch_add(max as i64 - old as i64, Ordering::AcqRel);
    }

    pub fn available(&self) -> i64 {
        self.available.load(Ordering::Acquire)
    }

    /// Takes up to `want` permits.
    pub fn take(&self, want: u64) -> u64 {
        let mut cur = self.available.load(Ordering::Acquire);
        loop {
            if cur <= 0 {
                return 0;
            }
            let got = (cur as u64).min(want);
            match self.available.compare_exchange_weak(
                cur,
                cur - got as i64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return got,
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn give(&self, n: u64) {
        if n > 0 {
            self.available.fetch_add(n as i64, Ordering::AcqRel);
        }
    }

    /// Block size for `shards` shards: small enough that idle shards hold
    /// little of the cap.
    pub fn block_size(max: u64, shards: usize) -> u64 {
        (max / (8 * shards.max(1) as u64)).clamp(1, 64)
    }
}

/// A shard's permits: free ones in hand, and how many of its requests are
/// in flight.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalPermits {
    free: u64,
    in_flight: u64,
    used_since_idle_check: bool,
}

impl LocalPermits {
    /// Takes a permit for a request, leasing a block if needed.
    #[inline]
    pub fn acquire(&mut self, shared: &SharedPermits, block: u64) -> bool {
        if self.free == 0 {
            self.free = shared.take(block);
            if self.free == 0 {
                return false;
            }
        }
        self.free -= 1;
        self.in_flight += 1;
        self.used_since_idle_check = true;
        true
    }

    /// A request ended (any way): its permit is free again.
    #[inline]
    pub fn release(&mut self, shared: &SharedPermits, block: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.free += 1;
        // With permits this scarce (blocks of one: under 16 per shard), a
        // shard with nothing in flight holds none: another shard's request
        // must not wait for the idle return to be admitted.
        if block == 1 && self.in_flight == 0 {
            shared.give(self.free);
            self.free = 0;
        } else if self.free > 2 * block {
            let back = self.free - block;
            shared.give(back);
            self.free -= back;
        }
    }

    /// Periodically: an idle shard hands its free permits back.
    pub fn idle_return(&mut self, shared: &SharedPermits) {
        if !self.used_since_idle_check && self.free > 0 {
            shared.give(self.free);
            self.free = 0;
        }
        self.used_since_idle_check = false;
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    pub fn held(&self) -> u64 {
        self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_max_in_flight() {
        let shared = SharedPermits::new(10);
        let block = SharedPermits::block_size(10, 2);
        let mut a = LocalPermits::default();
        let mut b = LocalPermits::default();
        let mut admitted = 0;
        for i in 0..100 {
            let s = if i % 2 == 0 { &mut a } else { &mut b };
            if s.acquire(&shared, block) {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 10);
        assert_eq!(a.in_flight() + b.in_flight(), 10);
        // Releases make room again, on any shard.
        for _ in 0..5 {
            a.release(&shared, block);
        }
        a.idle_return(&shared);
        a.idle_return(&shared);
        let mut more = 0;
        while b.acquire(&shared, block) {
            more += 1;
        }
        assert_eq!(more, 5);
        assert_eq!(a.in_flight() + b.in_flight(), 10);
    }

    /// One permit, two shards, requests one after the other on alternate
    /// shards: every one is admitted (the permit was held by the shard
    /// that used it last until its idle return).
    #[test]
    fn a_scarce_permit_goes_back_when_its_shard_is_idle() {
        let shared = SharedPermits::new(1);
        let block = SharedPermits::block_size(1, 2);
        let mut shards = [LocalPermits::default(), LocalPermits::default()];
        for i in 0..10 {
            let s = &mut shards[i % 2];
            assert!(s.acquire(&shared, block), "request {i} refused");
            s.release(&shared, block);
        }
        // Still never two at once.
        assert!(shards[0].acquire(&shared, block));
        assert!(!shards[1].acquire(&shared, block));
    }
}
