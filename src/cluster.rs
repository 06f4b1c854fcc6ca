//! Sharing the account limits between hosts through Redis.
//!
//! One agent thread per process (control plane, never on a shard) keeps
//! two reservoirs topped up: the account bucket's tokens and the in-flight
//! permits. Tokens come from a GCRA bucket kept in Redis and updated by a
//! Lua script (atomic, timed by Redis's own clock, so hosts need no clock
//! agreement); permits come from a per-host count in a Redis hash, and the
//! share of a host that stops heart-beating is reclaimed. Shards lease
//! from the reservoirs exactly as in single-host mode.
//!
//! Redis unreachable: `fail_open_local_share` refills the reservoirs from a
//! local bucket with this host's share (limit ÷ hosts last seen alive);
//! `fail_closed` stops refilling (429s). Either way the agent keeps trying
//! to reconnect and resumes by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ClusterSettings;
use crate::limit::concurrency::SharedPermits;
use crate::limit::{clock_ns, Rate, SharedBucket};

/// Leases tokens: `KEYS[1]` the bucket's TAT (µs), `ARGV` = period µs,
/// tolerance µs, tokens wanted. Returns tokens granted.
const LEASE_TOKENS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(tat, now)
local avail = math.floor((now + tol - base) / period)
if avail < 0 then avail = 0 end
local got = math.min(avail, want)
if got > 0 then
  redis.call('SET', KEYS[1], tostring(base + got * period), 'PX', math.ceil(tol / 1000) + 60000)
end
return got
"#;

/// Returns unspent tokens: `KEYS[1]` the TAT, `ARGV` = period µs, tokens.
const RETURN_TOKENS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local next = math.max(tat - tonumber(ARGV[1]) * tonumber(ARGV[2]), now)
if next < tat then redis.call('SET', KEYS[1], tostring(next), 'KEEPTTL') end
return 1
"#;

/// Leases permits: `KEYS[1]` hash host → held, `KEYS[2]` zset of live
/// hosts (score = last heartbeat, s); `ARGV` = host, wanted, max, now s,
/// liveness s. Reclaims the share of dead hosts first.
const LEASE_PERMITS: &str = r#"
local held = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #held, 2 do
  local host = held[i]
  local score = redis.call('ZSCORE', KEYS[2], host)
  if host ~= ARGV[1] and (not score or tonumber(score) < tonumber(ARGV[4]) - tonumber(ARGV[5])) then
    redis.call('HDEL', KEYS[1], host)
  else
    total = total + tonumber(held[i + 1])
  end
end
local avail = tonumber(ARGV[3]) - total
if avail < 0 then avail = 0 end
local got = math.min(avail, tonumber(ARGV[2]))
if got > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], got) end
return got
"#;

/// Returns permits: `KEYS[1]` hash; `ARGV` = host, count.
const RETURN_PERMITS: &str = r#"
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') - tonumber(ARGV[2])
if v < 0 then v = 0 end
redis.call('HSET', KEYS[1], ARGV[1], v)
return v
"#;

const HOST_TTL_SECS: u64 = 5;

pub struct Agent {
    settings: ClusterSettings,
    rate: Rate,
    max_concurrent: u64,
    bucket: Arc<SharedBucket>,
    permits: Arc<SharedPermits>,
    host: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    Down,
}

impl Agent {
    pub fn new(
        settings: ClusterSettings,
        rate: Rate,
        max_concurrent: u64,
        bucket: Arc<SharedBucket>,
        permits: Arc<SharedPermits>,
    ) -> Agent {
        let id = crate::ids::new_request_id();
        Agent {
            settings,
            rate,
            max_concurrent,
            bucket,
            permits,
            host: String::from_utf8_lossy(&id[..13]).into_owned(),
        }
    }

    /// Runs the agent on its own thread.
    pub fn start(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("tollgate-cluster".into())
            .spawn(move || self.run())
            .map(|_| ())
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.settings.key_prefix)
    }

    fn run(self) {
        let client = match redis::Client::open(self.settings.redis.as_str()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cluster: bad Redis URL; using this host's local share");
                self.run_local_forever();
                return;
            }
        };
        let lease_tokens = redis::Script::new(LEASE_TOKENS);
        let return_tokens = redis::Script::new(RETURN_TOKENS);
        let lease_permits = redis::Script::new(LEASE_PERMITS);
        let return_permits = redis::Script::new(RETURN_PERMITS);
        let period_us = (1_000_000.0 / self.rate.per_second).max(1.0) as u64;
        // Keep about 5 ms of tokens at hand, and a few permit blocks.
        let token_target = ((self.rate.per_second / 200.0) as i64).max(1);
        let permit_block = (self.max_concurrent / 50).clamp(1, 256) as i64;
        let mut hosts: u64 = self.settings.hosts.unwrap_or(1).max(1);
        let mut con: Option<redis::Connection> = None;
        let mut health = Health::Up;
        let mut last_attempt = Instant::now() - Duration::from_secs(10);
        let mut last_beat = Instant::now() - Duration::from_secs(10);
        let mut held_permits: i64 = 0;
        let mut local = LocalShare::new(self.rate, self.max_concurrent, hosts);
        loop {
            if con.is_none() && last_attempt.elapsed() >= Duration::from_millis(500) {
                last_attempt = Instant::now();
                con = client
                    .get_connection_with_timeout(Duration::from_millis(300))
                    .ok()
                    .and_then(|c| {
                        c.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
                        c.set_write_timeout(Some(Duration::from_millis(300))).ok()?;
                        Some(c)
                    });
                if con.is_some() && health == Health::Down {
                    tracing::info!("cluster: Redis is back; sharing the account limits again");
                    health = Health::Up;
                    // What the local share handed out is spent or in flight;
                    // from now on Redis accounts for everything again.
                    held_permits = 0;
                    local.reset();
                }
            }
            let result: redis::RedisResult<()> = match con.as_mut() {
                None => Err(redis::RedisError::from((
                    redis::ErrorKind::IoError,
                    "not connected",
                ))),
                Some(c) => (|| {
                    if last_beat.elapsed() >= Duration::from_secs(1) {
                        last_beat = Instant::now();
                        let now_s = unix_secs();
                        let hosts_key = self.key("hosts");
                        let _: () = redis::pipe()
                            .zadd(&hosts_key, &self.host, now_s)
                            .ignore()
                            .zrembyscore(&hosts_key, 0, now_s.saturating_sub(HOST_TTL_SECS))
                            .ignore()
                            .query(c)?;
                        let n: u64 = redis::cmd("ZCARD").arg(&hosts_key).query(c)?;
                        if self.settings.hosts.is_none() {
                            hosts = n.max(1);
                        }
                    }
                    // Tokens.
                    let level = self.bucket.reservoir();
                    if level < token_target {
                        let want = token_target * 2 - level;
                        // Every host may hold up to 2 × target tokens it
                        // leased but has not spent; Redis's bucket keeps
                        // that much less burst, so all hosts together never
                        // admit more than rate + burst in a second.
                        let held_max = hosts.saturating_mul(2 * token_target as u64);
                        let tol_us = period_us * self.rate.burst.saturating_sub(held_max).max(1);
                        let got: i64 = lease_tokens
                            .key(self.key("tokens"))
                            .arg(period_us)
                            .arg(tol_us)
                            .arg(want)
                            .invoke(c)?;
                        self.bucket.deposit(got);
                    } else if level > token_target * 2 {
                        // Idle: give most back so other hosts can use them.
                        let back = level - token_target;
                        self.bucket.deposit(-back);
                        let _: i64 = return_tokens
                            .key(self.key("tokens"))
                            .arg(period_us)
                            .arg(back)
                            .invoke(c)?;
                    }
                    // Permits.
                    let free = self.permits.available();
                    if free < permit_block {
                        let got: i64 = lease_permits
                            .key(self.key("permits"))
                            .key(self.key("hosts"))
                            .arg(&self.host)
                            .arg(permit_block * 2 - free.max(0))
                            .arg(self.max_concurrent)
                            .arg(unix_secs())
                            .arg(HOST_TTL_SECS)
                            .invoke(c)?;
                        if got > 0 {
                            self.permits.give(got as u64);
                            held_permits += got;
                        }
                    } else if free > permit_block * 4 {
                        let back = self.permits.take((free - permit_block * 2) as u64) as i64;
                        if back > 0 {
                            held_permits -= back;
                            let _: i64 = return_permits
                                .key(self.key("permits"))
                                .arg(&self.host)
                                .arg(back)
                                .invoke(c)?;
                        }
                    }
                    Ok(())
                })(),
            };
            if let Err(e) = result {
                if health == Health::Up {
                    tracing::warn!(
                        error = %e,
                        policy = if self.settings.fail_closed { "fail_closed" } else { "fail_open_local_share" },
                        hosts,
                        "cluster: Redis unreachable"
                    );
                    health = Health::Down;
                    local = LocalShare::new(self.rate, self.max_concurrent, hosts);
                }
                con = None;
            }
            if health == Health::Down && !self.settings.fail_closed {
                local.top_up(&self.bucket, &self.permits, token_target, held_permits);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn run_local_forever(self) {
        let mut local = LocalShare::new(
            self.rate,
            self.max_concurrent,
            self.settings.hosts.unwrap_or(1),
        );
        let target = ((self.rate.per_second / 200.0) as i64).max(1);
        loop {
            if !self.settings.fail_closed {
                local.top_up(&self.bucket, &self.permits, target, 0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// This host's share of the limits while Redis is away.
struct LocalShare {
    bucket: SharedBucket,
    permits: u64,
    granted_permits: bool,
}

impl LocalShare {
    fn new(rate: Rate, max_concurrent: u64, hosts: u64) -> LocalShare {
        let hosts = hosts.max(1);
        LocalShare {
            bucket: SharedBucket::new(Rate {
                per_second: rate.per_second / hosts as f64,
                burst: (rate.burst / hosts).max(1),
            }),
            permits: (max_concurrent / hosts).max(1),
            granted_permits: false,
        }
    }

    fn reset(&mut self) {
        self.granted_permits = false;
    }

    fn top_up(&mut self, bucket: &SharedBucket, permits: &SharedPermits, target: i64, held: i64) {
        let level = bucket.reservoir();
        if level < target {
            let got = self.bucket.lease(clock_ns(), (target * 2 - level) as u64);
            bucket.deposit(got as i64);
        }
        if !self.granted_permits {
            // The host keeps what it held from Redis and may go up to its share.
            let extra = self.permits as i64 - held;
            if extra > 0 {
                permits.give(extra as u64);
            }
            self.granted_permits = true;
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
