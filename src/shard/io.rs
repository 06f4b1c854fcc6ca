//! Socket reads through the shard's scratch buffer, and deadlines.
//!
//! An idle keep-alive connection holds no read buffer: reads land in one
//! scratch buffer per shard and only the bytes that arrived are copied into
//! the connection's own `BytesMut`. (A per-connection buffer zero-filled on
//! every read is the cost glommio's example pays; a per-connection buffer
//! kept while idle is what makes proxies cost kilobytes per idle client.)

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
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
        let mut guard = scratch.buf.try_borrow_mut();
        let mut fallback = [0u8; 4096];
        let buf: &mut [u8] = match guard {
            Ok(ref mut g) => &mut g[..],
            Err(_) => &mut fallback[..],
        };
        match Pin::new(&mut *stream).poll_read(cx, buf) {
            Poll::Ready(Ok(n)) => {
                dst.extend_from_slice(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    })
    .await
}

/// Runs `fut` until `deadline`; `None` if the deadline passed first.
pub async fn with_deadline<F: Future>(deadline: Instant, fut: F) -> Option<F::Output> {
    let now = Instant::now();
    let left = deadline.saturating_duration_since(now);
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::Timer::new(left).await;
        None
    })
    .await
}
