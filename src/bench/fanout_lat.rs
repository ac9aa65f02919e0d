//! `fanout-lat`: publish→delivery latency on an otherwise idle platform, the figure a
//! building controller lives with (`fanout` gives it under saturation).
//!
//! One publisher, K subscribers (`--subscribers`), each on a thread of its own blocked in a
//! receive, as K agents are. The subscribers subscribe to `devices/bench` as in `fanout`;
//! the publisher publishes one message to `devices/bench/fanout`, stamped with its send time
//! ([`pubsub`](super::pubsub)), and waits until all K have it (at most 2 s; more than 5 such
//! timeouts end the run) before the next: 500 warm-up publishes, then at most `--rtt-count`
//! (20 000) or `--duration`. Each subscriber records its receive time minus the stamp:
//! p50/p99/p99.9/max over every delivery (`p50_us` …, `latency: "paced"`) and, per publish,
//! until the last of the K had it (`all_p50_us` …). Router CPU per publish and per delivery
//! over the measured publishes. `--extra-subs` as for `fanout`.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::client::ClientError;
use super::consts::{RTT_TIMEOUT, SETUP_TIMEOUT, TOPIC, WARMUP};
use super::messages::{describe, fmt_id, hello_wait, is_error, queue_vip};
use super::pubsub::{
    Extra, PublishBody, bench_subscribe_body, connect_publisher, is_93, is_publish, is_request_response, now_ns,
    parse_id, parse_stamp,
};
use super::report::{CaseResult, Latency};
use super::socket::Socket;
use super::{Ctx, FirstFailure, Progress, cpu};

/// How long a subscriber's receive blocks before it looks at the stop flag.
const RECV_SLICE: Duration = Duration::from_millis(50);
/// Longest wait for a `subscribe` answer (a router that never answers).
const ACK_WAIT: Duration = Duration::from_secs(5);

struct Shared<'a> {
    ctx: &'a Ctx,
    k: u64,
    /// The publish under way (high 32 bits) and how many subscribers have it (low 32 bits).
    round: AtomicU64,
    /// 1 + the last publish every subscriber has.
    done: AtomicU64,
    /// When the last subscriber got it ([`now_ns`]), written before `done`.
    all_at: AtomicU64,
    publisher: Thread,
    barrier: Barrier,
    stop: AtomicBool,
    subscribed: AtomicU64,
    unsupported: AtomicBool,
    failure: FirstFailure,
}

impl Shared<'_> {
    /// Subscriber: publish `n` arrived at `t`; the last of the K wakes the publisher.
    fn arrived(&self, n: u32, t: u64) {
        let n = u64::from(n);
        let mut v = self.round.load(Ordering::Acquire);
        while v >> 32 == n {
            match self.round.compare_exchange_weak(v, v + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if (v & 0xffff_ffff) + 1 == self.k {
                        self.all_at.store(t, Ordering::Relaxed);
                        self.done.store(n + 1, Ordering::Release);
                        self.publisher.unpark();
                    }
                    return;
                }
                Err(now) => v = now,
            }
        }
        // a publish timed out earlier: late, counted in the latencies only
    }
}

#[derive(Default)]
struct SubOut {
    lat: Vec<u64>,
    errors: u64,
    other: u64,
    unstamped: u64,
}

enum Answer {
    Acked,
    Refused,
    Unsupported,
    None,
}

/// Connect, say hello, subscribe to `devices/bench` and wait for the answer.
fn subscribe(ctx: &Ctx, id: &[u8], deadline: Instant) -> Result<(Socket, Answer), ClientError> {
    let mut c = ctx.clients.connect(&ctx.endpoint, id, &ctx.security, SETUP_TIMEOUT)?;
    if !hello_wait(&mut c, deadline)? {
        return Err(ClientError::Timeout);
    }
    let body = bench_subscribe_body();
    queue_vip(&mut c, b"", &fmt_id(b's', 0), b"pubsub", &[b"subscribe", body.as_bytes()])?;
    c.flush_until(deadline)?;
    let end = deadline.min(Instant::now() + ACK_WAIT);
    while c.recv_until(end)? {
        let m = c.message();
        if m.frame(3).first() != Some(&b's') {
            continue;
        }
        if is_request_response(&m) {
            let a = if m.frame(6) == [1] { Answer::Acked } else { Answer::Refused };
            return Ok((c, a));
        }
        if is_93(&m) {
            return Ok((c, Answer::Unsupported));
        }
    }
    Ok((c, Answer::None))
}

fn subscriber(sh: &Shared<'_>, idx: usize) -> SubOut {
    let ctx = sh.ctx;
    let mut out =
        SubOut { lat: Vec::with_capacity(usize::try_from(ctx.args.rtt_count).unwrap_or(0)), ..SubOut::default() };
    let id = format!("{}-l{idx}", ctx.prefix);
    let sock = match subscribe(ctx, id.as_bytes(), Instant::now() + SETUP_TIMEOUT) {
        Ok((c, a)) => {
            match a {
                Answer::Acked => {
                    sh.subscribed.fetch_add(1, Ordering::Relaxed);
                }
                Answer::Unsupported => sh.unsupported.store(true, Ordering::Relaxed),
                Answer::Refused => sh.failure.set(format!("subscriber {id}: subscribe refused")),
                Answer::None => sh.failure.set(format!("subscriber {id}: no answer to subscribe")),
            }
            Some(c)
        }
        Err(e) => {
            sh.failure.set(format!("subscriber {id}: {e}"));
            None
        }
    };
    sh.barrier.wait(); // subscribed
    let Some(mut c) = sock else { return out };
    while !sh.stop.load(Ordering::Relaxed) {
        match c.recv_until(Instant::now() + RECV_SLICE) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                sh.failure.set(format!("subscriber {id}: {e}"));
                break;
            }
        }
        let t = now_ns();
        let m = c.message();
        if is_publish(&m) {
            let (Some(sent), Some(n)) = (parse_stamp(m.frame(7)), parse_id(m.frame(3), b'p')) else {
                out.unstamped += 1;
                continue;
            };
            if u64::from(n) >= WARMUP {
                out.lat.push(t.saturating_sub(sent));
            }
            sh.arrived(n, t);
        } else if is_error(&m) {
            out.errors += 1;
        } else {
            out.other += 1;
        }
    }
    out
}

struct PubOut {
    /// Every publish, warm-up included.
    total: u64,
    /// Measured publishes.
    sent: u64,
    /// Per measured publish that reached all K: until the last had it, ns.
    all: Vec<u64>,
    timeouts: u64,
    acks: u64,
    errors: u64,
    other: u64,
    t_start: Instant,
    t_end: Instant,
    c0: cpu::Snap,
}

impl PubOut {
    fn new(capacity: u64, c0: cpu::Snap) -> PubOut {
        let now = Instant::now();
        PubOut {
            total: 0,
            sent: 0,
            all: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
            timeouts: 0,
            acks: 0,
            errors: 0,
            other: 0,
            t_start: now,
            t_end: now,
            c0,
        }
    }
}

/// The publisher (this thread): one publish, wait for all K, the next.
fn publish(sh: &Shared<'_>, publ: &mut Socket) -> Result<PubOut, ClientError> {
    let ctx = sh.ctx;
    let count = ctx.args.rtt_count;
    let mut body = PublishBody::new(ctx.args.size);
    let mut o = PubOut::new(count, cpu::snap(ctx.router_cpu));
    let mut deadline = o.t_start + ctx.duration();
    let mut progress = Progress::new(ctx.args.progress);
    let drain = |publ: &mut Socket, o: &mut PubOut| -> Result<(), ClientError> {
        while publ.poll_message()? {
            let m = publ.message();
            if is_request_response(&m) {
                o.acks += 1;
            } else if is_error(&m) {
                if o.errors == 0 {
                    eprintln!("bench: warning: publisher got VIP error {}", describe(&m));
                }
                o.errors += 1;
            } else {
                o.other += 1;
            }
        }
        Ok(())
    };
    for i in 0..WARMUP + count {
        if i == WARMUP {
            o.c0 = cpu::snap(ctx.router_cpu);
            o.t_start = Instant::now();
            deadline = o.t_start + ctx.duration();
            progress = Progress::new(ctx.args.progress);
        }
        if (i > WARMUP && Instant::now() > deadline) || sh.failure.is_set() {
            break;
        }
        let n = u32::try_from(i).map_err(|_| ClientError::Protocol("too many publishes"))?;
        sh.round.store(u64::from(n) << 32, Ordering::Release);
        let sent = now_ns();
        queue_vip(publ, b"", &fmt_id(b'p', n), b"pubsub", &[b"publish", TOPIC, body.stamp(sent)])?;
        publ.flush_until(Instant::now() + RTT_TIMEOUT)?;
        o.total += 1;
        if i >= WARMUP {
            o.sent += 1;
        }
        let wait_end = Instant::now() + RTT_TIMEOUT;
        loop {
            if sh.done.load(Ordering::Acquire) == i + 1 {
                if i >= WARMUP {
                    o.all.push(sh.all_at.load(Ordering::Relaxed).saturating_sub(sent));
                }
                break;
            }
            drain(publ, &mut o)?;
            let left = wait_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                o.timeouts += 1;
                break;
            }
            std::thread::park_timeout(left.min(RECV_SLICE));
        }
        if o.timeouts > 5 {
            break;
        }
        let sent = o.sent;
        progress.tick(|el| format!("fanout-lat {el:5.1} s  publishes {sent:>8}"));
    }
    o.t_end = Instant::now();
    // the last answers
    let end = Instant::now() + Duration::from_millis(100);
    while o.acks < o.total && Instant::now() < end {
        drain(publ, &mut o)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(o)
}

/// Run `fanout-lat`.
pub(crate) fn run(ctx: &Ctx) -> CaseResult {
    let k = ctx.args.subscribers.max(1);
    let sh = Shared {
        ctx,
        k: k as u64,
        round: AtomicU64::new(u64::MAX),
        done: AtomicU64::new(0),
        all_at: AtomicU64::new(0),
        publisher: std::thread::current(),
        barrier: Barrier::new(k + 1),
        stop: AtomicBool::new(false),
        subscribed: AtomicU64::new(0),
        unsupported: AtomicBool::new(false),
        failure: FirstFailure::default(),
    };
    let extra = Extra::subscribe_or_fail(ctx, &sh.failure);
    let (subs, pub_out, c1) = run_threads(&sh, k, &extra);
    let run = Run {
        unsupported: extra.unsupported || sh.unsupported.load(Ordering::Relaxed),
        subscribed: sh.subscribed.load(Ordering::Relaxed),
        publisher: pub_out.unwrap_or_else(|| PubOut::new(0, c1)),
        subs,
        c1,
    };
    report(ctx, k, sh.failure.take(), &extra, run)
}

/// What one run produced.
struct Run {
    unsupported: bool,
    subscribed: u64,
    publisher: PubOut,
    subs: Vec<SubOut>,
    c1: cpu::Snap,
}

/// The subscriber threads and the publisher (this thread): the subscribers' counts, the
/// publisher's, and the router's CPU at the end.
fn run_threads(sh: &Shared<'_>, k: usize, extra: &Extra) -> (Vec<SubOut>, Option<PubOut>, cpu::Snap) {
    let ctx = sh.ctx;
    let mut pub_out = None;
    let mut c1 = cpu::snap(ctx.router_cpu);
    let mut subs = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..k).map(|i| s.spawn(move || subscriber(sh, i))).collect();
        let publ = connect_publisher(ctx);
        sh.barrier.wait(); // every subscriber answered or failed
        match publ {
            Ok(mut p) if !sh.failure.is_set() && !extra.unsupported && !sh.unsupported.load(Ordering::Relaxed) => {
                match publish(sh, &mut p) {
                    Ok(o) => pub_out = Some(o),
                    Err(e) => sh.failure.set(format!("publisher: {e}")),
                }
            }
            Ok(_) => {}
            Err(e) => sh.failure.set(format!("publisher: {e}")),
        }
        c1 = cpu::snap(ctx.router_cpu);
        sh.stop.store(true, Ordering::Relaxed);
        subs = handles.into_iter().map(|h| h.join().unwrap_or_default()).collect();
    });
    (subs, pub_out, c1)
}

/// The result fields and line of one run.
fn report(ctx: &Ctx, k: usize, failure: Option<String>, extra: &Extra, run: Run) -> CaseResult {
    let Run { unsupported, subscribed, publisher: mut p, mut subs, c1 } = run;
    let mut r = ctx.head("fanout-lat");
    let (mut errors, mut other, mut unstamped) = (p.errors, p.other, 0);
    let mut lat: Vec<u64> = Vec::new();
    for s in &mut subs {
        errors += s.errors;
        other += s.other;
        unstamped += s.unstamped;
        lat.append(&mut s.lat);
    }
    let lat = Latency::of(&mut lat);
    let all = Latency::of(&mut p.all);
    let expected = p.sent * k as u64;
    let el = p.t_end.duration_since(p.t_start).as_secs_f64();
    r.bool("ok", failure.is_none() && !unsupported && lat.n > 0)
        .bool("unsupported", unsupported)
        .int("subscribers", k)
        .int("subscribed_acked", subscribed);
    extra.fields(&mut r);
    r.int("size", ctx.args.size)
        .int("published", p.sent)
        .int("expected", expected)
        .int("delivered", lat.n)
        .int("lost", expected.saturating_sub(lat.n))
        .int("timeouts", p.timeouts)
        .int("pub_acks", p.acks)
        .int("errors", errors)
        .int("other", other)
        .int("unstamped", unstamped)
        .float("elapsed_s", el, 3)
        .float("published_per_s", if el > 0.0 { p.sent as f64 / el } else { 0.0 }, 0)
        .str("latency", "paced");
    lat.fields(&mut r, "");
    all.fields(&mut r, "all_");
    cpu::fields(&mut r, &p.c0, &c1, lat.n, "msg", ctx.router_cpu);
    let us_pub = cpu::fields(&mut r, &p.c0, &c1, p.sent, "pub", ctx.router_cpu);
    r.failure(failure.as_deref());
    r.line = if unsupported {
        format!("{:<14} {:<7} unsupported by router (error 93 to pubsub subscribe)", ctx.args.label, "fanout-lat")
    } else {
        format!(
            "{:<14} {:<7} K={} S={} n={}  {}{}{}\n{:<14} {:<7} until all {}:    {}",
            ctx.args.label,
            "fanout-lat",
            k,
            ctx.args.size,
            p.sent,
            lat.line(),
            cpu::note(us_pub, "pub"),
            failure.map(|f| format!("  FAILED: {f}")).unwrap_or_default(),
            "",
            "",
            k,
            all.line(),
        )
    };
    r
}
