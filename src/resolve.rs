//! Backend name resolution, off the data path.
//!
//! A control-plane thread resolves every backend host the snapshot names,
//! at start and then every `dns_refresh`; shards copy the table when its
//! generation changes (checked by a once-a-second shard task, never per
//! request).

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Table = HashMap<String, Vec<SocketAddr>>;

// Control plane only: shards read it once per generation change.
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

pub struct Resolver {
    names: ControlMutex<Vec<String>>,
    table: ControlMutex<Arc<Table>>,
    generation: AtomicU64,
}

impl Resolver {
    /// Starts resolving `names` (`host:port`) in the background, waiting up
    /// to `first_wait` for the first round so that early requests find
    /// addresses.
    pub fn start(names: Vec<String>, refresh: Duration, first_wait: Duration) -> Arc<Resolver> {
        let r = Arc::new(Resolver {
            names: ControlMutex::new(names),
            table: ControlMutex::new(Arc::new(Table::new())),
            generation: AtomicU64::new(0),
        });
        let bg = r.clone();
        let spawned = std::thread::Builder::new()
            .name("tollgate-dns".into())
            .spawn(move || loop {
                bg.refresh_once();
                std::thread::sleep(refresh);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the DNS thread; resolving once inline");
            r.refresh_once();
            return r;
        }
        let until = Instant::now() + first_wait;
        while r.generation() == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        r
    }

    /// Replaces the names to resolve (after a reload).
    pub fn set_names(&self, names: Vec<String>) {
        if let Ok(mut n) = self.names.lock() {
            *n = names;
        }
        self.refresh_once();
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn table(&self) -> Arc<Table> {
        match self.table.lock() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn refresh_once(&self) {
        let names = match self.names.lock() {
            Ok(n) => n.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let old = self.table();
        let mut table = Table::new();
        for name in names {
            match name.to_socket_addrs() {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        tracing::warn!(host = %name, "backend host has no address");
                    }
                    table.insert(name, addrs);
                }
                Err(e) => {
                    // Keep the last good answer rather than failing requests
                    // on a transient DNS error.
                    if let Some(prev) = old.get(&name) {
                        tracing::warn!(host = %name, error = %e, "DNS lookup failed; keeping previous addresses");
                        table.insert(name, prev.clone());
                    } else {
                        tracing::warn!(host = %name, error = %e, "DNS lookup failed");
                    }
                }
            }
        }
        let changed = *old != table || self.generation() == 0;
        if changed {
            match self.table.lock() {
                Ok(mut t) => *t = Arc::new(table),
                Err(p) => *p.into_inner() = Arc::new(table),
            }
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_literals_and_localhost() {
        let r = Resolver::start(
            vec!["127.0.0.1:9".into(), "localhost:10".into()],
            Duration::from_secs(3600),
            Duration::from_secs(5),
        );
        assert!(r.generation() >= 1);
        let t = r.table();
        assert_eq!(
            t["127.0.0.1:9"],
            vec!["127.0.0.1:9".parse::<SocketAddr>().unwrap()]
        );
        assert!(!t["localhost:10"].is_empty());
    }
}
