//! `peers`: C idle DEALERs connect, say hello, are held and closed (vipbench `run_peers`).
//!
//! Each of T threads opens its peers in batches of 50: every connection of the batch starts
//! its handshake at once, says hello as soon as the handshake completes, and the batch is
//! polled until every peer was welcomed; older peers are drained every 20 ms (peerlist
//! notices). Once all threads are connected the run waits `settle` (1 s), reads the
//! router's VmRSS/VmHWM, holds the peers another second and closes them. CPU per peer covers
//! the connect phase.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::client::ClientError;
use super::consts::{BATCH, SETUP_TIMEOUT};
use super::messages::{fmt_id, is_welcome, queue_vip};
use super::report::CaseResult;
use super::socket::{Socket, zmq_poll};
use super::{Ctx, Progress, cpu};

struct Shared<'a> {
    ctx: &'a Ctx,
    threads: usize,
    connected_workers: AtomicUsize,
    welcomes: AtomicU64,
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl Shared<'_> {
    fn fail(&self, what: String) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(what);
        }
    }
}

struct Peer {
    c: Socket,
    ready: bool,
    hello: bool,
    welcomed: bool,
}

/// Drain one peer: handshake, hello, welcome, notices. Returns messages that were not the
/// welcome.
fn service(p: &mut Peer, i: u32, welcomes: &mut u64) -> Result<u64, ClientError> {
    // libzmq queues the hello right after zmq_connect; the direct client once it can seal it
    if !p.hello && (p.ready || p.c.queues_early()) {
        queue_vip(&mut p.c, b"", &fmt_id(b'h', i), b"hello", &[])?;
        p.hello = true;
    }
    if !p.ready {
        if !p.c.advance()? {
            return Ok(0);
        }
        p.ready = true;
        if !p.hello {
            queue_vip(&mut p.c, b"", &fmt_id(b'h', i), b"hello", &[])?;
            p.hello = true;
        }
    }
    let mut other = 0;
    while p.c.poll_message()? {
        if !p.welcomed && is_welcome(&p.c.message()) {
            p.welcomed = true;
            *welcomes += 1;
        } else {
            other += 1;
        }
    }
    p.c.flush()?;
    Ok(other)
}

fn worker(sh: &Shared<'_>, idx: usize, np: usize) -> u64 {
    let ctx = sh.ctx;
    let mut peers: Vec<Peer> = Vec::with_capacity(np);
    let end = Instant::now() + SETUP_TIMEOUT;
    let mut last_full = Instant::now();
    let (mut other, mut welcomes) = (0u64, 0u64);
    'batches: while peers.len() < np {
        let from = peers.len();
        let upto = (from + BATCH).min(np);
        for i in from..upto {
            let id = format!("{}-c{}", ctx.prefix, idx + i * sh.threads);
            match ctx.clients.connect_async(&ctx.endpoint, id.as_bytes(), &ctx.security) {
                Ok(c) => peers.push(Peer { c, ready: false, hello: false, welcomed: false }),
                Err(e) => {
                    sh.fail(format!("connect {id}: {e}"));
                    break 'batches;
                }
            }
        }
        loop {
            let before = welcomes;
            for (i, p) in peers.iter_mut().enumerate().skip(from) {
                match service(p, i as u32, &mut welcomes) {
                    Ok(n) => other += n,
                    Err(e) => {
                        sh.fail(format!("peer {i}: {e}"));
                        break 'batches;
                    }
                }
            }
            if welcomes > before {
                sh.welcomes.fetch_add(welcomes - before, Ordering::Relaxed);
            }
            let t = Instant::now();
            if t.duration_since(last_full) > Duration::from_millis(20) {
                for (i, p) in peers.iter_mut().enumerate().take(from) {
                    match service(p, i as u32, &mut welcomes) {
                        Ok(n) => other += n,
                        Err(e) => {
                            sh.fail(format!("peer {i}: {e}"));
                            break 'batches;
                        }
                    }
                }
                last_full = t;
            }
            if peers.iter().skip(from).all(|p| p.welcomed) {
                break;
            }
            if t > end {
                sh.fail("peers: not every peer welcomed before the set-up timeout".into());
                break 'batches;
            }
            let items: Vec<&Socket> = peers.iter().skip(from).map(|p| &p.c).collect();
            if let Err(e) = zmq_poll(&items, Duration::from_millis(10)) {
                sh.fail(format!("poll: {e}"));
                break 'batches;
            }
        }
    }
    sh.connected_workers.fetch_add(1, Ordering::Relaxed);
    // hold: keep draining (peerlist notices) until told to close
    let mut dummy = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        for (i, p) in peers.iter_mut().enumerate() {
            if let Ok(n) = service(p, i as u32, &mut dummy) {
                other += n;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(peers); // close
    other
}

/// What one run measured.
struct Measured {
    c0: cpu::Snap,
    c1: cpu::Snap,
    t_conn: f64,
    welcomes: u64,
    other: u64,
    /// VmRSS and VmHWM before, once connected, and after closing (kB; -1 not measured).
    rss: [i64; 3],
    hwm: [i64; 2],
}

/// Run `peers`.
pub(crate) fn run(ctx: &Ctx) -> CaseResult {
    let c = ctx.args.peers.max(1);
    let threads = ctx.args.threads.min(c).max(1);
    let sh = Shared {
        ctx,
        threads,
        connected_workers: AtomicUsize::new(0),
        welcomes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
    };
    let m = measure(&sh, c);
    let failure = sh.failure.into_inner().ok().flatten();
    report(ctx, c, &m, failure)
}

/// Connect, hold and close the peers; the router's memory and CPU around it.
fn measure(sh: &Shared<'_>, c: usize) -> Measured {
    let ctx = sh.ctx;
    let kb = |what| ctx.rss_pid.map_or(-1, |pid| cpu::status_kb(pid, what));
    let c0 = cpu::snap(ctx.router_cpu);
    let mut m =
        Measured { c0, c1: c0, t_conn: 0.0, welcomes: 0, other: 0, rss: [kb("VmRSS"), -1, -1], hwm: [kb("VmHWM"), -1] };
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..sh.threads)
            .map(|t| {
                let np = (t..c).step_by(sh.threads).count();
                s.spawn(move || worker(sh, t, np))
            })
            .collect();
        let mut progress = Progress::new(ctx.args.progress);
        while sh.connected_workers.load(Ordering::Relaxed) < sh.threads {
            std::thread::sleep(Duration::from_millis(2));
            progress.tick(|el| format!("peers  {el:5.1} s  welcomed {:>6}/{c}", sh.welcomes.load(Ordering::Relaxed)));
        }
        m.c1 = cpu::snap(ctx.router_cpu);
        m.t_conn = t0.elapsed().as_secs_f64();
        m.welcomes = sh.welcomes.load(Ordering::Relaxed);
        std::thread::sleep(ctx.hold()); // settle
        m.rss[1] = kb("VmRSS");
        m.hwm[1] = kb("VmHWM");
        std::thread::sleep(ctx.hold());
        sh.stop.store(true, Ordering::Relaxed);
        m.other = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        std::thread::sleep(Duration::from_millis(500));
        m.rss[2] = kb("VmRSS");
    });
    m
}

/// The result fields and line.
fn report(ctx: &Ctx, c: usize, m: &Measured, failure: Option<String>) -> CaseResult {
    let ([rss0, rss1, rss2], [hwm0, hwm1], welcomes, t_conn) = (m.rss, m.hwm, m.welcomes, m.t_conn);
    let per_peer =
        if rss0 >= 0 && rss1 >= 0 && welcomes > 0 { (rss1 - rss0) as f64 * 1024.0 / welcomes as f64 } else { -1.0 };
    let mut r = ctx.head("peers");
    r.bool("ok", failure.is_none() && welcomes == c as u64)
        .int("peers", c)
        .int("welcomed", welcomes)
        .float("connect_s", t_conn, 3)
        .float("hellos_per_s", if t_conn > 0.0 { welcomes as f64 / t_conn } else { 0.0 }, 0)
        .int("other_msgs", m.other)
        .int("pid", ctx.rss_pid.unwrap_or(0))
        .int("rss_before_kb", rss0)
        .int("hwm_before_kb", hwm0)
        .int("rss_connected_kb", rss1)
        .int("hwm_connected_kb", hwm1)
        .int("rss_after_close_kb", rss2)
        .float("bytes_per_peer", per_peer, 0)
        .float("rss_per_1000_peers_kb", if per_peer >= 0.0 { per_peer * 1000.0 / 1024.0 } else { -1.0 }, 0);
    let us = cpu::fields(&mut r, &m.c0, &m.c1, welcomes, "peer", ctx.router_cpu);
    r.failure(failure.as_deref());
    let mem = if rss0 >= 0 {
        format!("RSS {rss0} -> {rss1} kB (HWM {hwm1})  {per_peer:.0} B/peer")
    } else {
        "RSS not measured".to_string()
    };
    r.line = format!(
        "{:<14} {:<7} C={} up in {:.2}s     {}{}{}",
        ctx.args.label,
        "peers",
        c,
        t_conn,
        mem,
        cpu::note(us, "peer"),
        match failure {
            Some(f) => format!("  FAILED: {f}"),
            None if welcomes < c as u64 => "  NOT ALL WELCOMED".to_string(),
            None => String::new(),
        }
    );
    r
}
