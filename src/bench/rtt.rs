//! `rtt`: one thread ping-pongs a → router → b → router → a with blocking receives
//! (vipbench `run_rtt`): 500 warm-up round trips, then at most 20 000 or `--duration`;
//! min/mean/p50/p99/p99.9/max. A receive times out after 2 s; more than 5 timeouts end the run.

use std::time::Instant;

use super::client::ClientError;
use super::socket::Socket;
use super::consts::{RTT_COUNT, RTT_TIMEOUT, SETUP_TIMEOUT, SUBSYSTEM, WARMUP};
use super::report::CaseResult;
use super::vip::{VIP1, describe, fmt_id, hello_wait, is_bench, is_error};
use super::{Ctx, Progress, cpu};

/// vipbench `pct`: the ceil(p·n)-th smallest, in µs.
fn pct(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((p * v.len() as f64 + 0.999_999) as usize).saturating_sub(1).min(v.len() - 1);
    v.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

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
        ctx.clients.connect(&ctx.endpoint, id, &ctx.security, SETUP_TIMEOUT)
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
        lat: Vec::with_capacity(RTT_COUNT as usize),
        timeouts: 0,
        other: 0,
        t_start: now,
        t_end: now,
        c0: cpu::snap(ctx.router_cpu),
    };
    let mut deadline = now + ctx.duration();
    let mut progress = Progress::new(ctx.args.progress);
    let total = RTT_COUNT + WARMUP;
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
    let mut t = tally.unwrap_or(Tally {
        lat: Vec::new(),
        timeouts: 0,
        other: 0,
        t_start: now,
        t_end: now,
        c0: c_start,
    });
    t.lat.sort_unstable();
    let done = t.lat.len() as u64;
    let sum: f64 = t.lat.iter().map(|&x| x as f64).sum();
    let mean = if done > 0 { sum / done as f64 / 1000.0 } else { 0.0 };
    let (p50, p99, p999) = (pct(&t.lat, 0.50), pct(&t.lat, 0.99), pct(&t.lat, 0.999));
    let mn = t.lat.first().map_or(0.0, |&x| x as f64 / 1000.0);
    let mx = t.lat.last().map_or(0.0, |&x| x as f64 / 1000.0);
    let el = t.t_end.duration_since(t.t_start).as_secs_f64();
    let mut r = ctx.head("rtt");
    r.bool("ok", failure.is_none() && done > 0)
        .int("size", ctx.args.size)
        .int("round_trips", done)
        .int("timeouts", t.timeouts)
        .int("other", t.other)
        .float("elapsed_s", el, 3)
        .float("rtt_per_s", if el > 0.0 { done as f64 / el } else { 0.0 }, 0)
        .float("min_us", mn, 1)
        .float("mean_us", mean, 1)
        .float("p50_us", p50, 1)
        .float("p99_us", p99, 1)
        .float("p999_us", p999, 1)
        .float("max_us", mx, 1);
    let us = cpu::fields(&mut r, &t.c0, &c1, done, "rt", ctx.router_cpu);
    if let Some(f) = &failure {
        r.str("failure", f);
    }
    r.line = format!(
        "{:<14} {:<7} S={} n={}        p50 {:8.1}  p99 {:8.1}  p99.9 {:8.1}  max {:9.1} us{}{}",
        ctx.args.label,
        "rtt",
        ctx.args.size,
        done,
        p50,
        p99,
        p999,
        mx,
        cpu::note(us, "rt"),
        failure.map(|f| format!("  FAILED: {f}")).unwrap_or_default()
    );
    r
}

#[cfg(test)]
mod tests {
    use super::pct;

    #[test]
    fn percentiles_as_vipbench() {
        let v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(pct(&v, 0.5), 500.0);
        assert_eq!(pct(&v, 0.99), 990.0);
        assert_eq!(pct(&v, 0.999), 999.0);
        assert_eq!(pct(&[], 0.5), 0.0);
    }
}
