//! Two gateway processes sharing one account limit through a real
//! `redis-server`; Redis killed mid-test (each host falls back to its local
//! share, or refuses with `fail_closed`) and brought back (sharing
//! resumes without a restart).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::gateway::{mock_method, swagger};
use support::{Gateway, RawClient};

struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(port: Option<u16>) -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            return None;
        }
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis { port, child });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(redis_port: u16, prefix: &str, policy: &str) -> Gateway {
    let paths = format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "ok"));
    Gateway::builder()
        .api("c", &swagger(&paths))
        .stage("c", "p", &[])
        .default_api("c")
        .shards(2)
        .extra(&format!(
            "[limits]\nrate = 100\nburst = 20\nmax_concurrent = 1000\n[limits.cluster]\nredis = \"redis://127.0.0.1:{redis_port}\"\nkey_prefix = \"{prefix}\"\npolicy = \"{policy}\"\nhosts = 2\n"
        ))
        .start()
}

/// Waits until the gateway admits a request: its cluster agent has reached
/// Redis and leased tokens and permits (until then, everything is a 429).
fn wait_for_tokens(gw: &Gateway) {
    support::wait_until(
        "the cluster agent to lease its first tokens from Redis",
        Duration::from_secs(30),
        || support::client::get(gw.addr, "/p/m").status == 200,
    );
}

/// Waits until the gateway's cluster agent has noticed that Redis is gone.
fn wait_for_redis_unreachable(gw: &Gateway) {
    assert!(
        gw.wait_log("Redis unreachable", 1, Duration::from_secs(30)),
        "Redis loss not noticed in 30 s: {:?}",
        gw.log()
    );
}

/// Hammers a gateway from 3 keep-alive clients; counts 200s and 429s.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    limited: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(gw: &Gateway) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let limited = Arc::new(AtomicUsize::new(0));
        let threads = (0..3)
            .map(|_| {
                let (stop, ok, limited, addr) =
                    (stop.clone(), ok.clone(), limited.clone(), gw.addr);
                std::thread::spawn(move || {
                    let mut c = RawClient::connect(addr);
                    while !stop.load(Ordering::Relaxed) {
                        match c.request(b"GET /p/m HTTP/1.1\r\nHost: x\r\n\r\n").status {
                            200 => ok.fetch_add(1, Ordering::Relaxed),
                            429 => limited.fetch_add(1, Ordering::Relaxed),
                            s => panic!("unexpected status {s}"),
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            limited,
            threads,
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.ok.load(Ordering::Relaxed),
            self.limited.load(Ordering::Relaxed),
        )
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

#[test]
fn two_hosts_share_one_limit_and_survive_redis_going_away() {
    let Some(redis) = Redis::start(None) else {
        eprintln!("redis-server not installed; skipping");
        return;
    };
    let a = gateway(redis.port, "share1", "fail_open_local_share");
    let b = gateway(redis.port, "share1", "fail_open_local_share");
    // Both agents have registered and filled their reservoirs.
    wait_for_tokens(&a);
    wait_for_tokens(&b);
    let la = Load::start(&a);
    let lb = Load::start(&b);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (oa, ra) = la.counts();
    let (ob, rb) = lb.counts();
    let secs = start.elapsed().as_secs_f64();
    let total = oa + ob;
    eprintln!(
        "shared: a={oa} b={ob} total={total} in {secs:.2}s (limit {:.0})",
        20.0 + 100.0 * secs
    );
    // One bucket of 100/s, burst 20, for both hosts together.
    let most = 20.0 + 100.0 * secs;
    assert!(
        (total as f64) <= most * 1.02 + 5.0,
        "admitted {total} in {secs:.2}s (limit {most:.0}); a={oa} b={ob}"
    );
    assert!(
        (total as f64) >= 100.0 * secs * 0.9,
        "admitted only {total} in {secs:.2}s"
    );
    assert!(oa > 50 && ob > 50, "both hosts get a share: a={oa} b={ob}");
    assert!(ra > 0 && rb > 0, "overload is refused on both hosts");

    // Redis goes away: each host falls back to its share (100 / 2 hosts).
    let port = redis.port;
    drop(redis);
    // Once both hosts have noticed (counted, not timed).
    wait_for_redis_unreachable(&a);
    wait_for_redis_unreachable(&b);
    let (oa1, _) = la.counts();
    let (ob1, _) = lb.counts();
    std::thread::sleep(Duration::from_secs(2));
    let (oa2, _) = la.counts();
    let (ob2, _) = lb.counts();
    let during = (oa2 - oa1) + (ob2 - ob1);
    eprintln!("redis down: {during} admitted in 2 s by both hosts");
    assert!(
        during > 100,
        "fail-open: hosts keep serving their share ({during} in 2 s)"
    );
    assert!(
        during < 2 * 100 + 2 * 20 + 60,
        "fail-open stays near the limit ({during} in 2 s)"
    );

    // Redis comes back on the same address: sharing resumes.
    let redis = Redis::start(Some(port)).expect("restart redis");
    assert!(
        a.wait_log("Redis is back", 1, Duration::from_secs(30)),
        "{:?}",
        a.log()
    );
    assert!(
        b.wait_log("Redis is back", 1, Duration::from_secs(30)),
        "{:?}",
        b.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (oa3, _) = la.counts();
    let (ob3, _) = lb.counts();
    let t3 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let (oa4, _) = la.counts();
    let (ob4, _) = lb.counts();
    let secs = t3.elapsed().as_secs_f64();
    let after = (oa4 - oa3) + (ob4 - ob3);
    eprintln!("redis back: {after} admitted in {secs:.2}s");
    assert!(
        (after as f64) <= 20.0 + 100.0 * secs + 10.0,
        "shared again: {after} in {secs:.2}s"
    );
    la.stop();
    lb.stop();
    drop(redis);
}

#[test]
fn fail_closed_refuses_while_redis_is_away() {
    let Some(redis) = Redis::start(None) else {
        eprintln!("redis-server not installed; skipping");
        return;
    };
    let a = gateway(redis.port, "closed1", "fail_closed");
    wait_for_tokens(&a);
    let l = Load::start(&a);
    support::wait_until(
        "the load to be admitted while Redis is up",
        Duration::from_secs(30),
        || l.counts().0 > 0,
    );
    drop(redis);
    wait_for_redis_unreachable(&a);
    // Then the tokens leased before are spent and the answers in flight
    // counted: 30 refusals in a row, none admitted.
    let mut mark = l.counts();
    support::wait_until(
        "only refusals once Redis is gone",
        Duration::from_secs(30),
        || {
            let now = l.counts();
            if now.0 != mark.0 {
                mark = now;
            }
            now.1 >= mark.1 + 30
        },
    );
    let (o1, _) = l.counts();
    std::thread::sleep(Duration::from_secs(1));
    let (o2, r2) = l.counts();
    assert!(
        o2 - o1 <= 5,
        "fail_closed admitted {} without Redis",
        o2 - o1
    );
    assert!(r2 > 0);
    l.stop();
}

/// Two hosts sharing `max_concurrent` with a slow backend.
fn slow_gateway(redis_port: u16, prefix: &str, backend: &support::Backend, max: u64) -> Gateway {
    let paths = format!(
        r#"{{"/m": {{"get": {}}}, "/slow": {{"get": {}}}}}"#,
        mock_method(200, "ok"),
        support::gateway::proxy_method(&format!("http://{}/s", backend.addr), "")
    );
    Gateway::builder()
        .api("c", &swagger(&paths))
        .stage("c", "p", &[])
        .default_api("c")
        .shards(2)
        .extra(&format!(
            "[limits]\nrate = 1000\nburst = 500\nmax_concurrent = {max}\n[limits.cluster]\nredis = \"redis://127.0.0.1:{redis_port}\"\nkey_prefix = \"{prefix}\"\nhosts = 2\n"
        ))
        .start()
}

/// 20 slow requests at once, spread over the hosts; how many were admitted
/// (the others are refused at once with 429).
fn admitted_at_once(hosts: &[&Gateway]) -> usize {
    let addrs: Vec<_> = hosts.iter().map(|g| g.addr).collect();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            std::thread::spawn(move || {
                RawClient::connect(addr)
                    .request(b"GET /p/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

fn flushall(port: u16) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"*1\r\n$8\r\nFLUSHALL\r\n").unwrap();
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

/// The in-flight cap holds across Redis going away and coming back, and a
/// FLUSHALL: each host tells Redis what it holds (it leaked permits: 10 in
/// flight became 21, then 31, after outages), and a reload changes it.
#[test]
fn the_shared_in_flight_cap_survives_redis_restarts_flushes_and_reloads() {
    let Some(redis) = Redis::start(None) else {
        eprintln!("redis-server not installed; skipping");
        return;
    };
    let backend = support::Backend::start(support::Mode::Slow(Duration::from_millis(1500)));
    let a = slow_gateway(redis.port, "cap1", &backend, 6);
    let b = slow_gateway(redis.port, "cap1", &backend, 6);
    wait_for_tokens(&a);
    wait_for_tokens(&b);
    let first = admitted_at_once(&[&a, &b]);
    assert!((2..=6).contains(&first), "admitted {first} of a cap of 6");

    // Redis restarted (empty): what the hosts hold is counted again.
    let port = redis.port;
    drop(redis);
    wait_for_redis_unreachable(&a);
    wait_for_redis_unreachable(&b);
    let during = admitted_at_once(&[&a, &b]);
    assert!(during <= 6, "admitted {during} while Redis was away");
    let redis = Redis::start(Some(port)).expect("restart redis");
    assert!(a.wait_log("Redis is back", 1, Duration::from_secs(30)));
    assert!(b.wait_log("Redis is back", 1, Duration::from_secs(30)));
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(1200));
        let n = admitted_at_once(&[&a, &b]);
        assert!(
            n <= 6,
            "round {round} after Redis came back: {n} admitted, cap 6"
        );
    }
    // FLUSHALL forgets every count: the hosts tell Redis again.
    flushall(port);
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        let n = admitted_at_once(&[&a, &b]);
        assert!(n <= 6, "round {round} after FLUSHALL: {n} admitted, cap 6");
    }
    // A reload lowers the cap (and changes the rate) on both hosts: they
    // keep serving, within the new cap.
    for gw in [&a, &b] {
        let config = gw.config_path();
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("max_concurrent = 6", "max_concurrent = 2")
                .replace("rate = 1000", "rate = 900"),
        )
        .unwrap();
        gw.signal("HUP");
        assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(30)));
    }
    support::wait_until(
        "both hosts to serve after the reload",
        Duration::from_secs(30),
        || {
            support::client::get(a.addr, "/p/m").status == 200
                && support::client::get(b.addr, "/p/m").status == 200
        },
    );
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(1600));
        let n = admitted_at_once(&[&a, &b]);
        assert!(
            n <= 2,
            "round {round} after the reload: {n} admitted, cap 2"
        );
    }
    drop(redis);
}
