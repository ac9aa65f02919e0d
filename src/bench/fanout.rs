//! `fanout`: one publisher, K subscribers through the router's pubsub service (VIP.md §7.3,
//! §7.6; vipbench `run_fanout`/`fanout_sub`).
//!
//! Subscribers say hello, send `subscribe` with `{"prefix":"devices/bench","bus":"",
//! "all_platforms":false}` and wait (at most 5 s) for `request_response`. The publisher sends
//! `["publish", "devices/bench/fanout", {"bus":"","headers":{},"message":"<stamp>xxx…"}]`
//! (body padded to `--size`, stamped with its send time: [`pubsub`](super::pubsub)), at most
//! W publishes ahead of the average subscriber; a full window with no delivery for 1 s is
//! written off as lost. A router that answers `subscribe` with error 93 (no pubsub
//! subsystem) is reported as unsupported, not as a failure.
//!
//! With `--extra-subs N`, ⌈N/1000⌉ idle peers first hold N more subscriptions that do not
//! match the topic ([`Extra`]): the publish cost with a large index.
//!
//! Each subscriber thread records every delivery's publish→delivery latency (its receive
//! time minus the stamp) in a vector of its own; p50/p99/p99.9/max over all deliveries are
//! reported as `latency: "saturated"`: latency under a flood W publishes deep, mostly
//! queueing. `fanout-lat` measures it paced.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::client::ClientError;
use super::consts::{COUNT, DRAIN, SETUP_TIMEOUT, STALL, TOPIC};
use super::messages::{describe, fmt_id, hello_wait, is_error, queue_vip};
use super::pubsub::{
    Extra, PublishBody, bench_subscribe_body, connect_publisher, is_93, is_publish, is_request_response, now_ns,
    parse_stamp,
};
use super::report::{CaseResult, Latency};
use super::socket::{Socket, zmq_poll};
use super::{Ctx, FirstFailure, Progress, cpu};

/// Latency samples preallocated per second of `--duration` (all subscribers together, more
/// than this machine delivers), so that the vectors do not grow during a run; capacity never
/// touched costs address space, not memory.
const LAT_PER_S: f64 = 2_000_000.0;

struct Shared<'a> {
    ctx: &'a Ctx,
    threads: usize,
    barrier: Barrier,
    stop: AtomicBool,
    delivered: AtomicU64,
    subscribed: AtomicU64,
    unsupported: AtomicU64,
    failure: FirstFailure,
}

#[derive(Default)]
struct SubOut {
    got: Vec<u64>,
    /// Publish→delivery latency of every delivery, ns.
    lat: Vec<u64>,
    /// Deliveries without a readable stamp.
    unstamped: u64,
    subscribed: u64,
    unsupported: u64,
    errors: u64,
    other: u64,
    t_last: Option<Instant>,
}

fn subscriber(sh: &Shared<'_>, idx: usize, ns: usize) -> SubOut {
    let ctx = sh.ctx;
    let samples = (ctx.duration().as_secs_f64() * LAT_PER_S / sh.threads as f64) as u64;
    let samples = samples.min(COUNT.saturating_mul(ns as u64));
    let mut out = SubOut {
        got: vec![0; ns],
        lat: Vec::with_capacity(usize::try_from(samples).unwrap_or(0)),
        ..SubOut::default()
    };
    let mut socks = connect_subscribers(sh, idx, ns);
    collect_acks(sh, &mut socks, &mut out);
    sh.subscribed.fetch_add(out.subscribed, Ordering::Relaxed);
    sh.unsupported.fetch_add(out.unsupported, Ordering::Relaxed);
    sh.barrier.wait(); // subscribed
    sh.barrier.wait(); // publishing starts
    receive(sh, &mut socks, &mut out);
    out
}

/// Connect this thread's `ns` subscribers, say hello and send each `subscribe`.
fn connect_subscribers(sh: &Shared<'_>, idx: usize, ns: usize) -> Vec<Socket> {
    let ctx = sh.ctx;
    let body = bench_subscribe_body();
    let mut socks: Vec<Socket> = Vec::with_capacity(ns);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    for i in 0..ns {
        let id = format!("{}-f{}", ctx.prefix, idx + i * sh.threads);
        let r = ctx.clients.connect(&ctx.endpoint, id.as_bytes(), &ctx.security, SETUP_TIMEOUT).and_then(|mut c| {
            if !hello_wait(&mut c, deadline)? {
                return Err(ClientError::Timeout);
            }
            queue_vip(&mut c, b"", &fmt_id(b's', i as u32), b"pubsub", &[b"subscribe", body.as_bytes()])?;
            c.flush_until(deadline)?;
            Ok(c)
        });
        match r {
            Ok(c) => socks.push(c),
            Err(e) => {
                sh.failure.set(format!("subscriber {id}: {e}"));
                break;
            }
        }
    }
    socks
}

/// Collect the subscribe acks (a router that does not ack costs at most 5 s here).
fn collect_acks(sh: &Shared<'_>, socks: &mut [Socket], out: &mut SubOut) {
    let mut acked = vec![false; socks.len()];
    let end = Instant::now() + Duration::from_secs(5);
    let mut answered = 0usize;
    while answered < socks.len() && Instant::now() < end {
        let mut progress = false;
        for (i, c) in socks.iter_mut().enumerate() {
            loop {
                match c.poll_message() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        sh.failure.set(format!("subscriber: {e}"));
                        break;
                    }
                }
                progress = true;
                let m = c.message();
                let first = acked.get(i).is_some_and(|a| !a);
                if is_request_response(&m) {
                    out.subscribed += u64::from(first);
                } else if is_93(&m) && m.frame(3).first() == Some(&b's') {
                    out.unsupported += u64::from(first);
                } else {
                    if is_error(&m) {
                        eprintln!("bench: warning: subscribe got VIP error {}", describe(&m));
                    }
                    continue;
                }
                if let Some(a) = acked.get_mut(i)
                    && !*a
                {
                    *a = true;
                    answered += 1;
                }
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Take deliveries until told to stop: count them per subscriber, record their latency.
fn receive(sh: &Shared<'_>, socks: &mut [Socket], out: &mut SubOut) {
    while !sh.stop.load(Ordering::Relaxed) {
        let mut batch = 0u64;
        for (i, c) in socks.iter_mut().enumerate() {
            for _ in 0..1024 {
                match c.poll_message() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        sh.failure.set(format!("subscriber: {e}"));
                        sh.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                let m = c.message();
                if is_publish(&m) {
                    let t = now_ns();
                    match parse_stamp(m.frame(7)) {
                        Some(sent) => out.lat.push(t.saturating_sub(sent)),
                        None => out.unstamped += 1,
                    }
                    if let Some(g) = out.got.get_mut(i) {
                        *g += 1;
                    }
                    batch += 1;
                } else if is_error(&m) {
                    out.errors += 1;
                } else {
                    out.other += 1;
                }
            }
            if c.pending_tx() {
                let _ = c.flush();
            }
        }
        if batch > 0 {
            out.t_last = Some(Instant::now());
            sh.delivered.fetch_add(batch, Ordering::Relaxed);
        } else {
            let items: Vec<&Socket> = socks.iter().collect();
            let _ = zmq_poll(&items, Duration::from_millis(5));
        }
    }
}

struct PubOut {
    sent: u64,
    acks: u64,
    errors: u64,
    stalls: u64,
    other: u64,
    unsupported: bool,
    t_start: Instant,
    /// A VIP error to the publisher was reported once.
    warned: bool,
}

impl PubOut {
    fn new(t_start: Instant) -> PubOut {
        PubOut { sent: 0, acks: 0, errors: 0, stalls: 0, other: 0, unsupported: false, t_start, warned: false }
    }

    /// Count a message the publisher received.
    fn classify(&mut self, m: &viprouter::zmtp::Message<'_>) {
        if is_request_response(m) {
            self.acks += 1;
        } else if is_error(m) {
            self.errors += 1;
            if is_93(m) {
                self.unsupported = true;
            }
            if !self.warned {
                self.warned = true;
                eprintln!("bench: warning: publisher got VIP error {}", describe(m));
            }
        } else {
            self.other += 1;
        }
    }
}

/// The publisher (this thread), vipbench's loop: credit-based window over the average
/// subscriber, then a drain.
fn publish(sh: &Shared<'_>, publ: &mut Socket, k: u64, progress: &mut Progress) -> Result<PubOut, ClientError> {
    let ctx = sh.ctx;
    let mut body = PublishBody::new(ctx.args.size);
    let w = ctx.args.window as f64;
    let t_start = Instant::now();
    let deadline = t_start + ctx.duration();
    let mut o = PubOut::new(t_start);
    let mut credit = 0.0f64;
    let mut last_deliv = 0u64;
    let mut last_change = t_start;
    loop {
        let t = Instant::now();
        if o.sent >= COUNT || t >= deadline || o.unsupported || sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let deliv = sh.delivered.load(Ordering::Relaxed);
        if deliv != last_deliv {
            last_deliv = deliv;
            last_change = t;
        }
        let acked = deliv as f64 / k as f64 + credit;
        let mut progressed = false;
        if (o.sent as f64) - acked < w {
            let mut burst = 0;
            while o.sent < COUNT && burst < 64 && (o.sent as f64) - acked < w {
                let mid = fmt_id(b'p', o.sent as u32);
                queue_vip(publ, b"", &mid, b"pubsub", &[b"publish", TOPIC, body.stamp(now_ns())])?;
                o.sent += 1;
                burst += 1;
            }
            progressed = burst > 0;
        } else if t.duration_since(last_change) > STALL {
            // nothing delivered for a stall with a full window: write it off and go on
            credit += o.sent as f64 - acked;
            o.stalls += 1;
            last_change = t;
        }
        publ.flush()?;
        while publ.poll_message()? {
            progressed = true;
            o.classify(&publ.message());
        }
        progress.tick(|el| format!("fanout {el:5.1} s  published {:>9}  delivered {deliv:>10}", o.sent));
        if !progressed {
            zmq_poll(&[&*publ], Duration::from_millis(1))?;
        }
    }
    drain(sh, publ, k, &mut o)?;
    Ok(o)
}

/// After publishing: until all is delivered, or nothing changed for 2 stalls, or `DRAIN`.
fn drain(sh: &Shared<'_>, publ: &mut Socket, k: u64, o: &mut PubOut) -> Result<(), ClientError> {
    let dend = Instant::now() + DRAIN;
    let mut last_change = Instant::now();
    let mut last_deliv = u64::MAX;
    while !o.unsupported {
        let deliv = sh.delivered.load(Ordering::Relaxed);
        let t = Instant::now();
        if deliv >= o.sent * k || t > dend || sh.stop.load(Ordering::Relaxed) {
            break;
        }
        if deliv != last_deliv {
            last_deliv = deliv;
            last_change = t;
        } else if t.duration_since(last_change) > STALL * 2 {
            break;
        }
        publ.flush()?;
        while publ.poll_message()? {
            o.classify(&publ.message());
        }
        zmq_poll(&[&*publ], Duration::from_millis(5))?;
    }
    Ok(())
}

/// What the threads of one run produced.
struct Outcome {
    subs: Vec<SubOut>,
    publisher: Option<PubOut>,
    subscribed: u64,
    unsupported: bool,
    c0: cpu::Snap,
    c1: cpu::Snap,
}

/// Run `fanout`.
pub(crate) fn run(ctx: &Ctx) -> CaseResult {
    let k = ctx.args.subscribers.max(1);
    let threads = ctx.args.threads.min(k).max(1);
    let sh = Shared {
        ctx,
        threads,
        barrier: Barrier::new(threads + 1),
        stop: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        subscribed: AtomicU64::new(0),
        unsupported: AtomicU64::new(0),
        failure: FirstFailure::default(),
    };
    let extra = Extra::subscribe_or_fail(ctx, &sh.failure);
    let mut out = run_threads(&sh, k);
    if out.publisher.as_ref().is_some_and(|p| p.unsupported) || extra.unsupported {
        out.unsupported = true;
    }
    let delivered = sh.delivered.load(Ordering::Relaxed);
    report(ctx, sh.failure.take(), delivered, &extra, k, out)
}

/// The subscriber threads and the publisher (this thread), from set-up to the drain.
fn run_threads(sh: &Shared<'_>, k: usize) -> Outcome {
    let ctx = sh.ctx;
    let mut out = Outcome {
        subs: Vec::new(),
        publisher: None,
        subscribed: 0,
        unsupported: false,
        c0: cpu::snap(ctx.router_cpu),
        c1: cpu::snap(ctx.router_cpu),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..sh.threads)
            .map(|t| {
                let ns = (t..k).step_by(sh.threads).count();
                s.spawn(move || subscriber(sh, t, ns))
            })
            .collect();
        let mut publ = connect_publisher(ctx);
        if let Err(e) = &publ {
            sh.failure.set(format!("publisher: {e}"));
        }
        sh.barrier.wait();
        out.subscribed = sh.subscribed.load(Ordering::Relaxed);
        out.unsupported = sh.unsupported.load(Ordering::Relaxed) > 0;
        let failed_setup = sh.failure.is_set();
        if !out.unsupported && !failed_setup && out.subscribed < k as u64 {
            eprintln!("bench: warning: fanout: only {}/{k} subscriptions acknowledged; waiting 0.5 s", out.subscribed);
            std::thread::sleep(Duration::from_millis(500));
        }
        out.c0 = cpu::snap(ctx.router_cpu);
        // Let the subscribers go; publish unless set-up failed or pubsub is missing.
        sh.barrier.wait();
        let mut progress = Progress::new(ctx.args.progress);
        if !failed_setup
            && !out.unsupported
            && let Ok(p) = publ.as_mut()
        {
            match publish(sh, p, k as u64, &mut progress) {
                Ok(o) => out.publisher = Some(o),
                Err(e) => sh.failure.set(format!("publisher: {e}")),
            }
        }
        sh.stop.store(true, Ordering::Relaxed);
        out.subs = handles.into_iter().map(|h| h.join().unwrap_or_default()).collect();
        out.c1 = cpu::snap(ctx.router_cpu);
    });
    out
}

/// The subscribers' counts added up.
#[derive(Default)]
struct Totals {
    t_last: Option<Instant>,
    errors: u64,
    other: u64,
    unstamped: u64,
    min_per_sub: Option<u64>,
    max_per_sub: u64,
    lat: Vec<u64>,
}

fn totals(subs: &mut [SubOut]) -> Totals {
    let mut t = Totals::default();
    for s in subs {
        t.t_last = t.t_last.max(s.t_last);
        t.errors += s.errors;
        t.other += s.other;
        t.unstamped += s.unstamped;
        t.lat.append(&mut s.lat);
        for &g in &s.got {
            t.min_per_sub = Some(t.min_per_sub.map_or(g, |m| m.min(g)));
            t.max_per_sub = t.max_per_sub.max(g);
        }
    }
    t
}

/// The result fields and line of one run.
fn report(ctx: &Ctx, failure: Option<String>, deliv: u64, extra: &Extra, k: usize, mut out: Outcome) -> CaseResult {
    let p = out.publisher.take().unwrap_or_else(|| PubOut::new(Instant::now()));
    let mut t = totals(&mut out.subs);
    let t_last = t.t_last.map_or(p.t_start, |l| l.max(p.t_start));
    let el = t_last.duration_since(p.t_start).as_secs_f64();
    let expected = p.sent * k as u64;
    let rate = if el > 0.0 { deliv as f64 / el } else { 0.0 };
    let pub_rate = if el > 0.0 { p.sent as f64 / el } else { 0.0 };
    let loss = if expected > 0 { expected.saturating_sub(deliv) as f64 / expected as f64 } else { 0.0 };
    let mut r = ctx.head("fanout");
    r.bool("ok", failure.is_none() && !out.unsupported)
        .bool("unsupported", out.unsupported)
        .int("subscribers", k)
        .int("subscribed_acked", out.subscribed);
    extra.fields(&mut r);
    r.int("size", ctx.args.size)
        .int("window", ctx.args.window)
        .int("published", p.sent)
        .int("expected", expected)
        .int("delivered", deliv)
        .int("lost", expected.saturating_sub(deliv))
        .float("loss_frac", loss, 6)
        .int("min_per_sub", t.min_per_sub.unwrap_or(0))
        .int("max_per_sub", t.max_per_sub)
        .int("pub_acks", p.acks)
        .int("errors", p.errors + t.errors)
        .int("stalls", p.stalls)
        .int("other", p.other + t.other)
        .float("elapsed_s", el, 3)
        .float("delivered_per_s", rate, 0)
        .float("published_per_s", pub_rate, 0)
        .str("latency", "saturated")
        .int("lat_samples", t.lat.len())
        .int("unstamped", t.unstamped);
    let lat = Latency::of(&mut t.lat);
    lat.fields(&mut r, "");
    let us = cpu::fields(&mut r, &out.c0, &out.c1, deliv, "msg", ctx.router_cpu);
    let us_pub = cpu::fields(&mut r, &out.c0, &out.c1, p.sent, "pub", ctx.router_cpu);
    r.failure(failure.as_deref());
    let (label, size, window) = (&ctx.args.label, ctx.args.size, ctx.args.window);
    r.line = if out.unsupported {
        format!("{label:<14} {:<7} unsupported by router (error 93 to pubsub subscribe)", "fanout")
    } else {
        format!(
            "{label:<14} {:<7} K={k} S={size} W={window}   {rate:10.0} dlv/s  ({pub_rate:.0} pub/s) loss {:.4}%{}{}\n{:<14} {:<7} latency under saturation: {}{}",
            "fanout",
            loss * 100.0,
            cpu::note(us, "msg"),
            failure.map(|f| format!("  FAILED: {f}")).unwrap_or_default(),
            "",
            "",
            lat.line(),
            cpu::note(us_pub, "pub"),
        )
    };
    r
}
