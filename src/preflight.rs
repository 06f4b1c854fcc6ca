//! Start-up checks for what glommio needs from the kernel: io_uring, and
//! enough locked memory. Each failure says what to change.

use std::fmt;

#[derive(Debug)]
pub enum PreflightError {
    IoUringMissing(String),
    IoUringDisabled(String),
    MemlockTooLow { limit: u64, needed: u64 },
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreflightError::IoUringMissing(e) => write!(
                f,
                "io_uring is not available ({e}). Tollgate needs Linux 5.8 or newer with io_uring; \
                 in a container, allow the io_uring_setup, io_uring_enter and io_uring_register syscalls \
                 (e.g. docker --security-opt seccomp=unconfined)"
            ),
            PreflightError::IoUringDisabled(e) => write!(
                f,
                "io_uring is disabled ({e}). Set `sysctl kernel.io_uring_disabled=0` \
                 (or run as a member of the group in kernel.io_uring_group when it is 1)"
            ),
            PreflightError::MemlockTooLow { limit, needed } => write!(
                f,
                "the locked-memory limit (RLIMIT_MEMLOCK) is {} KiB; io_uring needs at least {} KiB. \
                 Raise it with `ulimit -l {}` (or LimitMEMLOCK= in the systemd unit, or memlock in \
                 /etc/security/limits.conf)",
                limit / 1024,
                needed / 1024,
                needed / 1024
            ),
        }
    }
}

impl std::error::Error for PreflightError {}

/// glommio refuses to start below this soft limit.
const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;

/// Checks io_uring and the memlock limit. `io_memory` bytes per shard are
/// registered with the kernel when the limit allows; below that glommio
/// runs without registered buffers (a warning, not an error).
pub fn check(shards: usize, io_memory: usize) -> Result<(), PreflightError> {
    let limit = memlock_limit();
    if let Some(limit) = limit {
        if limit < GLOMMIO_MIN_MEMLOCK {
            return Err(PreflightError::MemlockTooLow {
                limit,
                needed: GLOMMIO_MIN_MEMLOCK,
            });
        }
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            return Err(PreflightError::IoUringDisabled(
                "kernel.io_uring_disabled = 2".to_owned(),
            ));
        }
    }
    match io_uring::IoUring::new(8) {
        Ok(_) => {}
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENOSYS) => PreflightError::IoUringMissing(e.to_string()),
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    PreflightError::IoUringDisabled(e.to_string())
                }
                Some(libc::ENOMEM) => PreflightError::MemlockTooLow {
                    limit: limit.unwrap_or(0),
                    needed: (shards as u64) * (io_memory as u64 + 1024 * 1024),
                },
                _ => PreflightError::IoUringMissing(e.to_string()),
            })
        }
    }
    if let Some(limit) = limit {
        let wanted = (shards as u64) * (io_memory as u64);
        if wanted > limit && !is_root() {
            tracing::warn!(
                limit_kib = limit / 1024,
                wanted_kib = wanted / 1024,
                "RLIMIT_MEMLOCK is below shards × io_memory_kib: io_uring buffers will not be registered (raise `ulimit -l`)"
            );
        }
    }
    Ok(())
}

/// The soft RLIMIT_MEMLOCK in bytes; `None` when unlimited.
pub fn memlock_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Memlock).current
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_change() {
        let m = PreflightError::MemlockTooLow {
            limit: 64 * 1024,
            needed: 512 * 1024,
        }
        .to_string();
        assert!(m.contains("ulimit -l 512"), "{m}");
        assert!(PreflightError::IoUringDisabled("x".into())
            .to_string()
            .contains("kernel.io_uring_disabled=0"));
    }
}
