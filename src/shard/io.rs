//! Socket reads through the shard's scratch buffer, and deadlines.
//!
//! An idle keep-alive connection holds no read buffer: reads land in one
//! scratch buffer per shard and only the bytes that arrived are copied into
//! the connection's own `BytesMut`. (A per-connection buffer zero-filled on
//! every read is the cost glommio's example pays; a per-connection buffer
//! kept while idle is what makes proxies cost kilobytes per idle client.)

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::io::AsyncRead;

/// Size of the per-shard read buffer: one read never returns more.
pub const SCRATCH_BYTES: usize = 64 * 1024;

pub struct Scratch {
    buf: RefCell<Box<[u8]>>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            buf: RefCell::new(vec![0u8; SCRATCH_BYTES].into_boxed_slice()),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// Reads what is available (waiting if nothing is) and appends it to
/// `dst`. Returns 0 at end of stream.
pub async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    scratch: &Scratch,
    dst: &mut BytesMut,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        // The borrow lives within one poll: tasks on this shard run one at
        // a time and never hold it across an await.
        match scratch.buf.try_borrow_mut() {
            Ok(mut buf) => poll_into(Pin::new(&mut *stream), cx, &mut buf[..], dst),
            Err(_) => {
                let mut fallback = [0u8; 4096];
                poll_into(Pin::new(&mut *stream), cx, &mut fallback[..], dst)
            }
        }
    })
    .await
}

fn poll_into<S: AsyncRead>(
    stream: Pin<&mut S>,
    cx: &mut std::task::Context<'_>,
    buf: &mut [u8],
    dst: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    match stream.poll_read(cx, buf) {
        Poll::Ready(Ok(n)) => {
            dst.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        other => other,
    }
}

/// Deadlines for a shard's tasks, checked by the shard's housekeeping tick
/// (every `publish::POLL`, 10 ms): a deadline costs a slot in a vector, not
/// a timer in the reactor (glommio arms an io_uring timeout per timer; on
/// the proxy path that was about 2% of samples, `io_timeout` and
/// `io_timeout_cancel`, in `perf record` of `wrk -c32` through HTTP_PROXY).
/// Resolution is one tick.
#[derive(Default)]
pub struct Timers {
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    /// No slot is due before this.
    earliest: Cell<Option<Instant>>,
    /// The time of the last tick (a coarse clock for this shard).
    last_tick: Cell<Option<Instant>>,
}

struct Slot {
    at: Instant,
    waker: Option<Waker>,
    fired: bool,
}

impl Timers {
    /// Fires every slot due at `now`.
    pub fn tick(&self, now: Instant) {
        self.last_tick.set(Some(now));
        match self.earliest.get() {
            Some(e) if e <= now => {}
            _ => return,
        }
        let mut earliest: Option<Instant> = None;
        let mut wake = Vec::new();
        for slot in self.slots.borrow_mut().iter_mut().flatten() {
            if slot.fired {
                continue;
            }
            if slot.at <= now {
                slot.fired = true;
                if let Some(w) = slot.waker.take() {
                    wake.push(w);
                }
            } else {
                earliest = Some(earliest.map_or(slot.at, |e| e.min(slot.at)));
            }
        }
        self.earliest.set(earliest);
        for w in wake {
            w.wake();
        }
    }

    /// The time of the last tick (at most one tick old), or now before the
    /// first tick: for deadlines, which fire at tick resolution anyway.
    pub fn coarse_now(&self) -> Instant {
        self.last_tick.get().unwrap_or_else(Instant::now)
    }

    /// Fires every slot now (shutdown: idle waits end at once).
    pub fn fire_all(&self) {
        self.earliest.set(Some(Instant::now()));
        let mut wake = Vec::new();
        for slot in self.slots.borrow_mut().iter_mut().flatten() {
            slot.fired = true;
            if let Some(w) = slot.waker.take() {
                wake.push(w);
            }
        }
        for w in wake {
            w.wake();
        }
    }

    pub fn sleep_until(&self, at: Instant) -> Sleep<'_> {
        Sleep {
            timers: self,
            slot: None,
            at,
        }
    }

    /// Runs `fut` until `deadline`; `None` if the deadline passed first.
    pub async fn deadline<F: Future>(&self, deadline: Instant, fut: F) -> Option<F::Output> {
        futures_lite::future::or(async { Some(fut.await) }, async {
            self.sleep_until(deadline).await;
            None
        })
        .await
    }
}

/// A wait until a deadline (see [`Timers`]).
pub struct Sleep<'a> {
    timers: &'a Timers,
    slot: Option<usize>,
    at: Instant,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let timers = self.timers;
        match self.slot {
            None => {
                // Already past at the last tick: no slot needed (and no
                // clock read here; the tick is at most 10 ms old).
                if timers.last_tick.get().is_some_and(|t| self.at <= t) {
                    return Poll::Ready(());
                }
                let entry = Slot {
                    at: self.at,
                    waker: Some(cx.waker().clone()),
                    fired: false,
                };
                let mut slots = timers.slots.borrow_mut();
                let i = match timers.free.borrow_mut().pop() {
                    Some(i) => {
                        slots[i] = Some(entry);
                        i
                    }
                    None => {
                        slots.push(Some(entry));
                        slots.len() - 1
                    }
                };
                drop(slots);
                self.slot = Some(i);
                let at = self.at;
                timers
                    .earliest
                    .set(Some(timers.earliest.get().map_or(at, |e| e.min(at))));
                Poll::Pending
            }
            Some(i) => {
                let mut slots = timers.slots.borrow_mut();
                match slots.get_mut(i).and_then(Option::as_mut) {
                    Some(s) if s.fired => Poll::Ready(()),
                    Some(s) => {
                        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            s.waker = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                    None => Poll::Ready(()),
                }
            }
        }
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            if let Ok(mut slots) = self.timers.slots.try_borrow_mut() {
                if let Some(s) = slots.get_mut(i) {
                    *s = None;
                    drop(slots);
                    if let Ok(mut free) = self.timers.free.try_borrow_mut() {
                        free.push(i);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_in_order_and_free_their_slots() {
        let t = Timers::default();
        let start = Instant::now() + Duration::from_secs(60);
        let waker = futures_lite::future::block_on(std::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut a = Box::pin(t.sleep_until(start + Duration::from_millis(10)));
        let mut b = Box::pin(t.sleep_until(start + Duration::from_millis(30)));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        t.tick(start);
        assert!(a.as_mut().poll(&mut cx).is_pending());
        t.tick(start + Duration::from_millis(15));
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        drop(a);
        assert_eq!(t.free.borrow().len(), 1);
        t.fire_all();
        assert!(b.as_mut().poll(&mut cx).is_ready());
        // A deadline already past at the last tick is ready without a slot.
        t.tick(Instant::now());
        let mut c = Box::pin(t.sleep_until(Instant::now() - Duration::from_millis(1)));
        assert!(c.as_mut().poll(&mut cx).is_ready());
    }
}
