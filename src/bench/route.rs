//! `route`: P sender/receiver pairs over T threads (vipbench `run_route`/`route_worker`).
//!
//! Each thread owns both ends of its pairs, so the in-flight window is counted exactly:
//! a sender may have at most W messages that its receiver has not yet seen. Per pass over
//! its pairs a thread queues a burst of at most 256 messages per sender, writes them,
//! drains at most 1024 messages per receiver, drains the sender (errors, peerlist notices),
//! and polls for 5 ms only when nothing moved. After `--duration` the senders stop and the
//! in-flight messages are drained (at most 10 s; ends after 2 s without progress). Rate =
//! delivered / (last delivery − start).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use super::client::ClientError;
use super::consts::{COUNT, DRAIN, SETUP_TIMEOUT, STALL, SUBSYSTEM};
use super::messages::{VIP1, describe, fmt_id, hello_wait, is_bench, is_error};
use super::report::CaseResult;
use super::socket::{Socket, zmq_poll};
use super::{Ctx, Progress, cpu};

struct Pair {
    snd: Socket,
    rcv: Socket,
    sid: Vec<u8>,
    rid: Vec<u8>,
    sent: u64,
    recvd: u64,
    blocked: bool,
}

#[derive(Default)]
struct Out {
    sent: u64,
    recvd: u64,
    errors: u64,
    other: u64,
    bad: u64,
    t_start: Option<Instant>,
    t_last: Option<Instant>,
    failure: Option<String>,
}

struct Shared<'a> {
    ctx: &'a Ctx,
    threads: usize,
    barrier: Barrier,
    failed: AtomicBool,
    first_failure: Mutex<Option<String>>,
    delivered: AtomicU64,
}

impl Shared<'_> {
    fn fail(&self, what: String) {
        self.failed.store(true, Ordering::Relaxed);
        if let Ok(mut f) = self.first_failure.lock()
            && f.is_none()
        {
            *f = Some(what);
        }
    }
}

fn setup_pair(sh: &Shared<'_>, gi: usize) -> Result<Pair, String> {
    let ctx = sh.ctx;
    let sid = format!("{}-s{gi}", ctx.prefix).into_bytes();
    let rid = format!("{}-r{gi}", ctx.prefix).into_bytes();
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let connect = |id: &[u8]| {
        ctx.clients
            .connect(&ctx.endpoint, id, &ctx.security, SETUP_TIMEOUT)
            .map_err(|e| format!("connect {}: {e}", String::from_utf8_lossy(id)))
    };
    let mut rcv = connect(&rid)?;
    let mut snd = connect(&sid)?;
    for c in [&mut rcv, &mut snd] {
        match hello_wait(c, deadline) {
            Ok(true) => {}
            Ok(false) => return Err("no welcome to hello".into()),
            Err(e) => return Err(format!("hello: {e}")),
        }
    }
    Ok(Pair { snd, rcv, sid, rid, sent: 0, recvd: 0, blocked: false })
}

fn worker(sh: &Shared<'_>, idx: usize, np: usize) -> Out {
    let mut pairs = Vec::with_capacity(np);
    for i in 0..np {
        if sh.failed.load(Ordering::Relaxed) {
            break; // no router: do not wait out every hello
        }
        match setup_pair(sh, idx + i * sh.threads) {
            Ok(p) => pairs.push(p),
            Err(e) => sh.fail(e),
        }
    }
    sh.barrier.wait(); // set up
    sh.barrier.wait(); // clock starts
    if sh.failed.load(Ordering::Relaxed) {
        return Out::default();
    }
    let mut out = Out::default();
    if let Err(e) = pump(sh, &mut pairs, &mut out) {
        out.failure = Some(e.to_string());
    }
    for p in &pairs {
        out.sent += p.sent;
        out.recvd += p.recvd;
    }
    out
}

fn pump(sh: &Shared<'_>, pairs: &mut [Pair], out: &mut Out) -> Result<(), ClientError> {
    let ctx = sh.ctx;
    let mut seq: u32 = 0;
    let t_start = Instant::now();
    out.t_start = Some(t_start);
    out.t_last = Some(t_start);
    let deadline = t_start + ctx.duration();
    let hard_end = deadline + DRAIN;
    let mut last_prog = t_start;
    let mut warned = false;
    loop {
        let mut progress = false;
        let mut done = true;
        let t = Instant::now();
        let sending = t < deadline;
        let mut got = 0u64;
        for p in pairs.iter_mut() {
            if sending {
                progress |= send_burst(ctx, p, &mut seq)?;
            }
            p.blocked = !p.snd.flush()?;
            let before = p.recvd;
            progress |= receive(p, out, &mut warned)?;
            got += p.recvd - before;
            if p.recvd < p.sent || (sending && p.sent < COUNT) {
                done = false;
            }
        }
        if got > 0 {
            sh.delivered.fetch_add(got, Ordering::Relaxed);
        }
        if done {
            break;
        }
        if progress {
            last_prog = t;
        }
        if !sending && (t > hard_end || t.duration_since(last_prog) > STALL * 2) {
            break;
        }
        if !progress {
            let items: Vec<&Socket> = pairs.iter().flat_map(|p| [&p.rcv, &p.snd]).collect();
            zmq_poll(&items, Duration::from_millis(5))?;
        }
    }
    Ok(())
}

/// Queue up to 256 messages from the pair's sender, within its window; true if any.
fn send_burst(ctx: &Ctx, p: &mut Pair, seq: &mut u32) -> Result<bool, ClientError> {
    let w = ctx.args.window as u64;
    let mut burst = 0;
    while p.sent < COUNT && p.sent - p.recvd < w && burst < 256 {
        let mid = fmt_id(b'm', *seq);
        p.snd.queue(&[&p.rid, VIP1, b"", &mid, SUBSYSTEM, ctx.payload.as_slice()])?;
        *seq = seq.wrapping_add(1);
        p.sent += 1;
        burst += 1;
    }
    Ok(burst > 0)
}

/// Take what the pair's receiver (up to 1024 messages) and sender (errors, peerlist notices)
/// got; true if anything arrived.
fn receive(p: &mut Pair, out: &mut Out, warned: &mut bool) -> Result<bool, ClientError> {
    let mut progress = false;
    for _ in 0..1024 {
        if !p.rcv.poll_message()? {
            break;
        }
        progress = true;
        let m = p.rcv.message();
        if is_bench(&m) {
            if m.frame(0) != p.sid.as_slice() {
                out.bad += 1;
            }
            p.recvd += 1;
            out.t_last = Some(Instant::now()); // per message, as vipbench
        } else {
            out.count_other(&m, "receiver", warned);
        }
    }
    if p.rcv.pending_tx() {
        p.rcv.flush()?; // PONGs
    }
    while p.snd.poll_message()? {
        progress = true;
        out.count_other(&p.snd.message(), "sender", warned);
    }
    Ok(progress)
}

impl Out {
    /// A message that is not a bench delivery: a VIP error (reported once) or anything else.
    fn count_other(&mut self, m: &viprouter::zmtp::Message<'_>, who: &str, warned: &mut bool) {
        if is_error(m) {
            self.errors += 1;
            if !*warned {
                *warned = true;
                eprintln!("bench: warning: route {who} got VIP error {}", describe(m));
            }
        } else {
            self.other += 1;
        }
    }
}

/// Run `route`.
pub(crate) fn run(ctx: &Ctx) -> CaseResult {
    let pairs = ctx.args.pairs;
    let threads = ctx.args.threads.min(pairs).max(1);
    let sh = Shared {
        ctx,
        threads,
        barrier: Barrier::new(threads + 1),
        failed: AtomicBool::new(false),
        first_failure: Mutex::new(None),
        delivered: AtomicU64::new(0),
    };
    let mut outs: Vec<Out> = Vec::new();
    let (mut c0, mut c1) = (cpu::snap(ctx.router_cpu), cpu::snap(ctx.router_cpu));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let np = (t..pairs).step_by(threads).count();
                let sh = &sh;
                s.spawn(move || worker(sh, t, np))
            })
            .collect();
        sh.barrier.wait();
        if sh.failed.load(Ordering::Relaxed) {
            eprintln!("bench: warning: route: set-up failed");
        }
        c0 = cpu::snap(ctx.router_cpu);
        sh.barrier.wait();
        let mut progress = Progress::new(ctx.args.progress);
        let mut last = 0u64;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            progress.tick(|el| {
                let d = sh.delivered.load(Ordering::Relaxed);
                let line = format!("route  {el:5.1} s  delivered {d:>10}  ({:.0} msg/s)", (d - last) as f64);
                last = d;
                line
            });
        }
        outs = handles.into_iter().map(|h| h.join().unwrap_or_default()).collect();
        c1 = cpu::snap(ctx.router_cpu);
    });
    let failure = sh.first_failure.into_inner().ok().flatten();
    report(ctx, failure, outs, &c0, &c1)
}

/// The workers' counts added up: the result fields and line.
fn report(ctx: &Ctx, mut failure: Option<String>, outs: Vec<Out>, c0: &cpu::Snap, c1: &cpu::Snap) -> CaseResult {
    let mut tot = Out::default();
    let (mut t0, mut t1): (Option<Instant>, Option<Instant>) = (None, None);
    for o in outs {
        tot.sent += o.sent;
        tot.recvd += o.recvd;
        tot.errors += o.errors;
        tot.other += o.other;
        tot.bad += o.bad;
        if let Some(s) = o.t_start {
            t0 = Some(t0.map_or(s, |t| t.min(s)));
        }
        t1 = t1.max(o.t_last);
        if failure.is_none() {
            failure = o.failure;
        }
    }
    let el = match (t0, t1) {
        (Some(a), Some(b)) if b > a => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if el > 0.0 { tot.recvd as f64 / el } else { 0.0 };
    let mbs = rate * ctx.args.size as f64 / 1e6;
    let lost = tot.sent.saturating_sub(tot.recvd);
    let mut r = ctx.head("route");
    r.bool("ok", failure.is_none())
        .int("pairs", ctx.args.pairs)
        .int("size", ctx.args.size)
        .int("window", ctx.args.window)
        .str("payload", "raw")
        .int("sent", tot.sent)
        .int("delivered", tot.recvd)
        .int("lost", lost)
        .int("errors", tot.errors)
        .int("other", tot.other)
        .int("misrouted", tot.bad)
        .float("elapsed_s", el, 3)
        .float("msgs_per_s", rate, 0)
        .float("mb_per_s", mbs, 2);
    let us = cpu::fields(&mut r, c0, c1, tot.recvd, "msg", ctx.router_cpu);
    r.failure(failure.as_deref());
    r.line = format!(
        "{:<14} {:<7} P={} S={} W={}   {:10.0} msg/s {:9.2} MB/s  lost {}/{}{}{}",
        ctx.args.label,
        "route",
        ctx.args.pairs,
        ctx.args.size,
        ctx.args.window,
        rate,
        mbs,
        lost,
        tot.sent,
        cpu::note(us, "msg"),
        failure.map(|f| format!("  FAILED: {f}")).unwrap_or_default()
    );
    r
}
