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
use crate::limit::registry::ClusterLimits;
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

/// Permits: `KEYS[1]` hash host → permits held, `KEYS[2]` zset of live
/// hosts (score = last heartbeat, s); `ARGV` = host, permits this host
/// holds, permits wanted, max, now s, liveness s. Records what the host
/// holds (the host's count is the truth: it survives a Redis restart or
/// FLUSHALL), reclaims the share of dead hosts, then grants up to `wanted`
/// within `max`. A negative answer: the hosts hold that many more than
/// `max` (after an outage), and this host should give back what it can.
const SYNC_PERMITS: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local held = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #held, 2 do
  local host = held[i]
  local score = redis.call('ZSCORE', KEYS[2], host)
  if host ~= ARGV[1] and (not score or tonumber(score) < tonumber(ARGV[5]) - tonumber(ARGV[6])) then
    redis.call('HDEL', KEYS[1], host)
  else
    total = total + tonumber(held[i + 1])
  end
end
local avail = tonumber(ARGV[4]) - total
if avail < 0 then return avail end
local got = math.min(avail, tonumber(ARGV[3]))
if got > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], got) end
return got
"#;

const HOST_TTL_SECS: u64 = 5;

pub struct Agent {
    settings: ClusterSettings,
    /// The limits in force (a reload changes them).
    limits: Arc<ClusterLimits>,
    bucket: Arc<SharedBucket>,
    permits: Arc<SharedPermits>,
    host: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    Down,
}

/// Sizes that follow the limits in force.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sizes {
    rate: Rate,
    max_concurrent: u64,
    period_us: u64,
    /// About 5 ms of tokens kept at hand.
    token_target: i64,
    /// Permits the host pool keeps at hand (a few blocks).
    permit_block: i64,
}

impl Sizes {
    fn new((rate, max_concurrent): (Rate, u64)) -> Sizes {
        Sizes {
            rate,
            max_concurrent,
            period_us: (1_000_000.0 / rate.per_second).max(1.0) as u64,
            token_target: ((rate.per_second / 200.0) as i64).max(1),
            permit_block: (max_concurrent / 50).clamp(1, 256) as i64,
        }
    }
}

impl Agent {
    pub fn new(
        settings: ClusterSettings,
        limits: Arc<ClusterLimits>,
        bucket: Arc<SharedBucket>,
        permits: Arc<SharedPermits>,
    ) -> Agent {
        let id = crate::ids::new_request_id();
        Agent {
            settings,
            limits,
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

    /// A connection that answers: connecting is not enough (a paused or
    /// overloaded Redis accepts connections and answers nothing), so a
    /// PING must come back before the agent counts on Redis again.
    fn connect(&self, client: &redis::Client) -> Option<redis::Connection> {
        let timeout = Some(Duration::from_millis(300));
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(300))
            .ok()?;
        c.set_read_timeout(timeout).ok()?;
        c.set_write_timeout(timeout).ok()?;
        let pong: String = redis::cmd("PING").query(&mut c).ok()?;
        (pong == "PONG").then_some(c)
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
        let sync_permits = redis::Script::new(SYNC_PERMITS);
        let mut sizes = Sizes::new(self.limits.get());
        let mut hosts: u64 = self.settings.hosts.unwrap_or(1).max(1);
        let mut con: Option<redis::Connection> = None;
        let mut health = Health::Up;
        let mut last_attempt = Instant::now() - Duration::from_secs(10);
        let mut last_beat = Instant::now() - Duration::from_secs(10);
        // Permits this host holds, however it got them (from Redis or its
        // local share): in its pool, leased to shards or in flight. Redis
        // is told this count (never a delta), so it stays right across
        // Redis restarts, FLUSHALL and outages.
        let mut owned: i64 = 0;
        // Redis must hear what this host holds (after a (re)connection), or
        // the hosts together hold more than the cap and this host should
        // give back what comes free.
        let mut resync = true;
        let mut local = LocalShare::new(sizes.rate, sizes.max_concurrent, hosts);
        loop {
            let now_sizes = Sizes::new(self.limits.get());
            if now_sizes != sizes {
                sizes = now_sizes;
                local = LocalShare::new(sizes.rate, sizes.max_concurrent, hosts);
                resync = true;
            }
            if con.is_none() && last_attempt.elapsed() >= Duration::from_millis(500) {
                last_attempt = Instant::now();
                con = self.connect(&client);
                if con.is_some() {
                    resync = true;
                    if health == Health::Down {
                        tracing::info!("cluster: Redis is back; sharing the account limits again");
                        health = Health::Up;
                    }
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
                        // Once a second Redis hears what this host holds
                        // even when nothing else needs it (a FLUSHALL
                        // forgets it); an idle host keeps one block.
                        let free = self.permits.available();
                        if free == owned && free > sizes.permit_block {
                            owned -= self.permits.take((free - sizes.permit_block) as u64) as i64;
                        }
                        resync = true;
                    }
                    // Tokens.
                    let token_target = sizes.token_target;
                    let level = self.bucket.reservoir();
                    if level < token_target {
                        let want = token_target * 2 - level;
                        // Every host may hold up to 2 × target tokens it
                        // leased but has not spent; Redis's bucket keeps
                        // that much less burst, so all hosts together never
                        // admit more than rate + burst in a second.
                        let held_max = hosts.saturating_mul(2 * token_target as u64);
                        let tol_us =
                            sizes.period_us * sizes.rate.burst.saturating_sub(held_max).max(1);
                        let got: i64 = lease_tokens
                            .key(self.key("tokens"))
                            .arg(sizes.period_us)
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
                            .arg(sizes.period_us)
                            .arg(back)
                            .invoke(c)?;
                    }
                    // Permits.
                    let block = sizes.permit_block;
                    let free = self.permits.available();
                    if free > block * 4 {
                        owned -= self.permits.take((free - block * 2) as u64) as i64;
                        resync = true;
                    }
                    if free < block || resync {
                        let wanted = (block * 2 - free.max(0)).max(0);
                        let got: i64 = sync_permits
                            .key(self.key("permits"))
                            .key(self.key("hosts"))
                            .arg(&self.host)
                            .arg(owned.max(0))
                            .arg(if free < block { wanted } else { 0 })
                            .arg(sizes.max_concurrent)
                            .arg(unix_secs())
                            .arg(HOST_TTL_SECS)
                            .invoke(c)?;
                        resync = false;
                        if got > 0 {
                            self.permits.give(got as u64);
                            owned += got;
                        } else if got < 0 {
                            // Over the cap (after an outage, or a lower
                            // max_concurrent): give back what is free, and
                            // tell Redis again next time.
                            let back = self.permits.take(got.unsigned_abs()) as i64;
                            owned -= back;
                            resync = true;
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
                    local = LocalShare::new(sizes.rate, sizes.max_concurrent, hosts);
                }
                con = None;
            }
            if health == Health::Down && !self.settings.fail_closed {
                owned += local.top_up(&self.bucket, &self.permits, sizes.token_target, owned);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn run_local_forever(self) {
        let (rate, max) = self.limits.get();
        let mut local = LocalShare::new(rate, max, self.settings.hosts.unwrap_or(1));
        let target = ((rate.per_second / 200.0) as i64).max(1);
        let mut owned = 0;
        loop {
            if !self.settings.fail_closed {
                owned += local.top_up(&self.bucket, &self.permits, target, owned);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// This host's share of the limits while Redis is away.
struct LocalShare {
    bucket: SharedBucket,
    permits: u64,
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
        }
    }

    /// Tops the reservoirs up from the local share and brings the permits
    /// this host holds to its share: up at once, down as its permits come
    /// free (a host that held more than its share from Redis gives the
    /// rest up, so the hosts together stay within `max_concurrent`).
    /// Returns the change in the permits held.
    fn top_up(
        &mut self,
        bucket: &SharedBucket,
        permits: &SharedPermits,
        target: i64,
        owned: i64,
    ) -> i64 {
        let level = bucket.reservoir();
        if level < target {
            let got = self.bucket.lease(clock_ns(), (target * 2 - level) as u64);
            bucket.deposit(got as i64);
        }
        let share = self.permits as i64;
        if owned < share {
            permits.give((share - owned) as u64);
            share - owned
        } else if owned > share {
            -(permits.take((owned - share) as u64) as i64)
        } else {
            0
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
