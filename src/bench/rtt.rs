//! `rtt`: one thread ping-pongs a → router → b → router → a with blocking receives
//! (vipbench `run_rtt`): 500 warm-up round trips, then at most `--rtt-count` (20 000) or
//! `--duration`;
//! min/mean/p50/p99/p99.9/max. A receive times out after 2 s; more than 5 timeouts end the run.

use std::time::Instant;

use super::client::ClientError;
use super::consts::{RTT_TIMEOUT, SETUP_TIMEOUT, SUBSYSTEM, WARMUP};
use super::messages::{VIP1, describe, fmt_id, hello_wait, is_bench, is_error};
use super::report::{CaseResult, Latency};
use super::socket::Socket;
use super::{Ctx, Progress, cpu};

/// Receive until the bench message `mid` arrives. `Ok(false)`: timed out.
fn recv_bench(c: &mut Socket, mid: &[u8], other: &mut u64) -> Result<bool, ClientError> {
    let deadline = Instant::now() + RTT_TIMEOUT;
    while c.recv_until(deadline)? {
        let m = c.message();
        if is_bench(&m) && m.frame(3) == mid {
            return Ok(true);
        }
        if is_error(&m) {
            eprintln!("bench: warning: rtt got VIP error {}", describe(&m));
        }
        *other += 1;
    }
    Ok(false)
}

fn setup(ctx: &Ctx, aid: &[u8], bid: &[u8]) -> Result<(Socket, Socket), String> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let connect = |id: &[u8]| {
        ctx.clients
            .connect(&ctx.endpoint, id, &ctx.security, SETUP_TIMEOUT)
            .map_err(|e| format!("connect {}: {e}", String::from_utf8_lossy(id)))
    };
    let mut a = connect(aid)?;
    let mut b = connect(bid)?;
    for c in [&mut a, &mut b] {
        match hello_wait(c, deadline) {
            Ok(true) => {}
            Ok(false) => return Err("no welcome to hello".into()),
            Err(e) => return Err(format!("hello: {e}")),
        }
    }
    Ok((a, b))
}

struct Tally {
    lat: Vec<u64>,
    timeouts: u64,
    other: u64,
    t_start: Instant,
    t_end: Instant,
    c0: cpu::Snap,
}

fn pingpong(ctx: &Ctx, a: &mut Socket, b: &mut Socket, aid: &[u8], bid: &[u8]) -> Result<Tally, ClientError> {
    let payload = ctx.payload.as_slice();
    let now = Instant::now();
    let mut t = Tally {
        lat: Vec::with_capacity(usize::try_from(ctx.args.rtt_count).unwrap_or(0)),
        timeouts: 0,
        other: 0,
        t_start: now,
        t_end: now,
        c0: cpu::snap(ctx.router_cpu),
    };
    let mut deadline = now + ctx.duration();
    let mut progress = Progress::new(ctx.args.progress);
    let total = ctx.args.rtt_count + WARMUP;
    for i in 0..total {
        if i == WARMUP {
            t.c0 = cpu::snap(ctx.router_cpu);
            t.t_start = Instant::now();
            deadline = t.t_start + ctx.duration();
            progress = Progress::new(ctx.args.progress);
        }
        if i > WARMUP && Instant::now() > deadline {
            break;
        }
        let mid = fmt_id(b'q', i as u32);
        let t0 = Instant::now();
        a.queue(&[bid, VIP1, b"", &mid, SUBSYSTEM, payload])?;
        a.flush_until(t0 + RTT_TIMEOUT)?;
        if !recv_bench(b, &mid, &mut t.other)? {
            t.timeouts += 1;
            if t.timeouts > 5 {
                break;
            }
            continue;
        }
        b.queue(&[aid, VIP1, b"", &mid, SUBSYSTEM, payload])?;
        b.flush_until(Instant::now() + RTT_TIMEOUT)?;
        if !recv_bench(a, &mid, &mut t.other)? {
            t.timeouts += 1;
            if t.timeouts > 5 {
                break;
            }
            continue;
        }
        let dt = t0.elapsed().as_nanos() as u64;
        if i >= WARMUP {
            t.lat.push(dt);
            let n = t.lat.len();
            progress.tick(|el| format!("rtt    {el:5.1} s  round trips {n:>8}  (last {:.1} us)", dt as f64 / 1000.0));
        }
    }
    t.t_end = Instant::now();
    Ok(t)
}

/// Run `rtt`.
pub(crate) fn run(ctx: &Ctx) -> CaseResult {
    let aid = format!("{}-pa", ctx.prefix).into_bytes();
    let bid = format!("{}-pb", ctx.prefix).into_bytes();
    let mut failure = None;
    let c_start = cpu::snap(ctx.router_cpu);
    let mut tally = None;
    match setup(ctx, &aid, &bid) {
        Ok((mut a, mut b)) => match pingpong(ctx, &mut a, &mut b, &aid, &bid) {
            Ok(t) => tally = Some(t),
            Err(e) => failure = Some(e.to_string()),
        },
        Err(e) => failure = Some(e),
    }
    let c1 = cpu::snap(ctx.router_cpu);
    let now = Instant::now();
    let mut t =
        tally.unwrap_or(Tally { lat: Vec::new(), timeouts: 0, other: 0, t_start: now, t_end: now, c0: c_start });
    let lat = Latency::of(&mut t.lat);
    let done = lat.n;
    let el = t.t_end.duration_since(t.t_start).as_secs_f64();
    let mut r = ctx.head("rtt");
    r.bool("ok", failure.is_none() && done > 0)
        .int("size", ctx.args.size)
        .int("round_trips", done)
        .int("timeouts", t.timeouts)
        .int("other", t.other)
        .float("elapsed_s", el, 3)
        .float("rtt_per_s", if el > 0.0 { done as f64 / el } else { 0.0 }, 0);
    lat.fields(&mut r, "");
    let us = cpu::fields(&mut r, &t.c0, &c1, done, "rt", ctx.router_cpu);
    r.failure(failure.as_deref());
    r.line = format!(
        "{:<14} {:<7} S={} n={}        {}{}{}",
        ctx.args.label,
        "rtt",
        ctx.args.size,
        done,
        lat.line(),
        cpu::note(us, "rt"),
        failure.map(|f| format!("  FAILED: {f}")).unwrap_or_default()
    );
    r
}
