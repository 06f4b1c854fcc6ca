//! Waiting for something the gateway, a backend or the OS does in its own
//! time: poll for the observable result with a generous deadline instead
//! of sleeping a fixed time (a loaded CI machine can take far longer).

use std::time::{Duration, Instant};

/// Polls `done` every 20 ms until it returns true; panics, naming `what`,
/// if `timeout` passes first.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
