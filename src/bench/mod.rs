//! `viprouter bench`: the on-device benchmark (issue #5, deliverable 6).
//!
//! Runs vipbench's workloads (`../shared/bench/vipbench.c`) with this crate's own ZMTP client
//! ([`client`], NULL or CURVE) against a router: one started in this process on loopback
//! ([`inproc`]), or one at `--endpoint`. Message shapes, window accounting, timing and the
//! JSON field names follow vipbench, so both tools can be compared on the same router:
//!
//! * `route`: P sender/receiver pairs spread over T threads, each thread owning both ends of
//!   its pairs; at most W undelivered messages per pair; `[to, VIP1, "", m%08x, bench,
//!   B xxx…]`; delivered msgs/s, lost, misrouted, errors.
//! * `rtt`: a → router → b → router → a, blocking receives; p50/p99/p99.9/max after 500
//!   warm-up round trips (at most `--rtt-count`).
//! * `fanout`: K subscribers `subscribe` to `devices/bench`, one publisher publishes to
//!   `devices/bench/fanout` at most W ahead of the average subscriber. A router that answers
//!   `subscribe` with error 93 is reported as "unsupported by router". Each publish body
//!   carries its send time (`pubsub.rs`): publish→delivery p50/p99/p99.9/max over every
//!   delivery, i.e. latency under saturation (`latency: "saturated"`); router CPU per
//!   delivery and per publish.
//! * `fanout-lat` (not in vipbench): the same subscribers, each on a thread of its own
//!   blocked in its receive; one publish, wait until all K have it, the next: 500 warm-up
//!   publishes, then `--rtt-count`; publish→delivery p50/p99/p99.9/max (`latency: "paced"`,
//!   the idle platform's figure), and until the last subscriber (`all_p99_us` …).
//! * `--extra-subs N` (fanout, fanout-lat): before the run ⌈N/1000⌉ idle peers subscribe N
//!   prefixes that share the topic's path but never match it (`devices/bench/fanout/x{i}`,
//!   `devices/bench/f{i}`, `devices/b{i}`, `other/{i}`), each acknowledged: the publish cost
//!   with a large index (`make bench-subs`: 10 versus 10 000).
//! * `peers`: C idle DEALERs connect in batches of 50 per thread, say hello, are held and
//!   closed; with `--router-pid`, the router's VmRSS before/after and per peer.
//!
//! Router CPU per unit comes from `/proc/PID/stat` (`--router-pid`) or, for the in-process
//! router, from its thread's `/proc/self/task/TID/stat` ([`cpu`]).
//!
//! The clients: by default they have libzmq's shape ([`io`]: one I/O thread owning every
//! connection, 8 KiB batches, per-socket pipes and mailboxes, libzmq's connect path,
//! staged greeting and system calls, and a calibrated model of its per-frame CPU cost), so
//! that the router sees the traffic a libzmq agent (and vipbench) produces and, where
//! router and generator share the CPU, the figures agree with vipbench's. `--direct-io`
//! uses [`client::Client`] straight from the worker threads instead: the cheapest
//! generator, for the router's ceiling.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod cli;
pub mod client;
#[cfg(test)]
mod cmd_tests;
pub mod cpu;
mod fanout;
mod fanout_lat;
pub mod inproc;
pub mod io;
mod messages;
mod peers;
mod pubsub;
pub mod report;
mod route;
mod rtt;
pub mod socket;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand_core::OsRng;

pub use cli::BenchCmd;
use client::Security;
use cpu::RouterCpu;
pub use report::{CaseResult, Report, Val};

use viprouter::server::listener::Endpoint;
use viprouter::zmtp::mechanism::curve::{KeyPair, PublicKey};
use viprouter::zmtp::z85;

/// The workloads, in their default order.
pub const CASES: [&str; 5] = ["route", "rtt", "fanout", "fanout-lat", "peers"];

/// What to measure and how (the `viprouter bench` options).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchArgs {
    /// Router to measure; `None`: start one in this process on loopback.
    pub endpoint: Option<String>,
    /// The router's CURVE public key (Z85 or VOLTTRON base64): connect with CURVE.
    pub serverkey: Option<String>,
    /// In-process router only: serve CURVE (every client key authorised).
    pub curve: bool,
    /// Seconds per route/rtt/fanout/fanout-lat run.
    pub duration: f64,
    /// Payload bytes (route, rtt) / publish body bytes (fanout, fanout-lat).
    pub size: usize,
    /// route: sender/receiver pairs.
    pub pairs: usize,
    /// route: most undelivered messages per pair; fanout: most publishes ahead.
    pub window: usize,
    /// fanout, fanout-lat: subscribers.
    pub subscribers: usize,
    /// fanout, fanout-lat: subscriptions held by idle peers during the run (1000 per peer), none
    /// matching the bench topic (the index's size, not its matches).
    pub extra_subs: usize,
    /// rtt: measured round trips; fanout-lat: measured publishes (after 500 warm-up ones).
    pub rtt_count: u64,
    /// peers: idle peers.
    pub peers: usize,
    /// Client worker threads (vipbench `-t`).
    pub threads: usize,
    /// External router's pid: CPU per message and VmRSS.
    pub router_pid: Option<u32>,
    /// `--json` was given (the caller prints [`Report::to_json`]).
    pub json: bool,
    /// Print a progress line per second on stderr.
    pub progress: bool,
    /// Label in the output.
    pub label: String,
    /// Each worker thread does its own socket I/O instead of handing it to one libzmq-style
    /// I/O thread: the cheapest generator (the router's ceiling), not comparable with vipbench.
    pub direct_io: bool,
    /// The libzmq-shaped client's cost model in percent of libzmq's ([`io::FRAME_COST_IO`];
    /// default 100, 0: none).
    pub zmq_cost: u32,
    /// Workloads to run, in order (empty: all of [`CASES`]).
    pub cases: Vec<String>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            endpoint: None,
            serverkey: None,
            curve: false,
            duration: 3.0,
            size: 256,
            pairs: 4,
            window: 1000,
            subscribers: 8,
            extra_subs: 0,
            rtt_count: consts::RTT_COUNT,
            peers: 1000,
            threads: 2,
            router_pid: None,
            json: false,
            progress: true,
            label: "router".into(),
            direct_io: false,
            zmq_cost: 100,
            cases: Vec::new(),
        }
    }
}

/// Fixed parameters, vipbench's defaults.
pub(crate) mod consts {
    use std::time::Duration;
    /// route: most messages per sender (vipbench `-n`).
    pub const COUNT: u64 = 1_000_000;
    /// rtt: most round trips (vipbench `-M`), the default of `--rtt-count`.
    pub const RTT_COUNT: u64 = 20_000;
    /// rtt: warm-up round trips.
    pub const WARMUP: u64 = 500;
    /// Most time spent draining in-flight messages after a run.
    pub const DRAIN: Duration = Duration::from_secs(10);
    /// fanout: a full window without delivery this long is written off; route/fanout drains
    /// end after twice this without progress.
    pub const STALL: Duration = Duration::from_secs(1);
    /// Set-up (connect, hello, subscribe) timeout.
    pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
    /// rtt: receive timeout (vipbench `ZMQ_RCVTIMEO`).
    pub const RTT_TIMEOUT: Duration = Duration::from_secs(2);
    /// peers: connections started at once per thread.
    pub const BATCH: usize = 50;
    /// route/rtt subsystem.
    pub const SUBSYSTEM: &[u8] = b"bench";
    /// fanout topic and the subscribers' prefix.
    pub const TOPIC: &[u8] = b"devices/bench/fanout";
    pub const SUB_PREFIX: &str = "devices/bench";
}

/// Everything a workload needs.
pub(crate) struct Ctx {
    pub args: BenchArgs,
    pub endpoint: Endpoint,
    pub transport: &'static str,
    pub security: Security,
    /// Identity prefix, unique per workload run.
    pub prefix: String,
    /// `B` then `x`s, `size` bytes (not JSON on purpose, as vipbench).
    pub payload: Vec<u8>,
    pub router_cpu: RouterCpu,
    /// The client sockets' I/O model.
    pub clients: socket::Gen,
    /// External router pid for VmRSS (peers).
    pub rss_pid: Option<u32>,
    pub inproc: bool,
}

impl Ctx {
    /// vipbench's JSON head.
    pub fn head(&self, workload: &str) -> CaseResult {
        let mut r = CaseResult::new(workload);
        r.str("label", &self.args.label)
            .str("workload", workload)
            .bool("direct", false)
            .str("transport", self.transport)
            .bool("curve", matches!(self.security, Security::Curve { .. }))
            .int("threads", self.args.threads)
            .int("io_threads", i64::from(matches!(self.clients, socket::Gen::Io(_))))
            .str("generator", "viprouter-bench")
            .int("zmq_cost", if matches!(self.clients, socket::Gen::Io(_)) { self.args.zmq_cost } else { 0 })
            .str("router", if self.inproc { "in-process" } else { "external" });
        r
    }

    /// vipbench `-d`.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.args.duration.max(0.01))
    }

    /// peers hold and settle: 1 s as vipbench, shorter for runs shorter than that.
    pub fn hold(&self) -> Duration {
        self.duration().min(Duration::from_secs(1))
    }
}

/// The first failure among a workload's threads.
#[derive(Default)]
pub(crate) struct FirstFailure {
    set: AtomicBool,
    what: Mutex<Option<String>>,
}

impl FirstFailure {
    /// Record `what` unless a failure was recorded before.
    pub fn set(&self, what: String) {
        if let Ok(mut f) = self.what.lock()
            && f.is_none()
        {
            *f = Some(what);
            self.set.store(true, Ordering::Release);
        }
    }

    /// Has one been recorded?
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// The first failure.
    pub fn take(self) -> Option<String> {
        self.what.into_inner().ok().flatten()
    }
}

/// A progress line on stderr at most once per second.
pub(crate) struct Progress {
    enabled: bool,
    start: Instant,
    next: Instant,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress { enabled, start: now, next: now + Duration::from_secs(1) }
    }

    /// Print `line(elapsed seconds)` when a second has passed since the last line.
    pub fn tick(&mut self, line: impl FnOnce(f64) -> String) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now >= self.next {
            self.next += Duration::from_secs(1);
            if self.next < now {
                self.next = now + Duration::from_secs(1);
            }
            eprintln!("bench: {}", line(now.duration_since(self.start).as_secs_f64()));
        }
    }
}

/// A CURVE public key from 40-char Z85 or VOLTTRON's 43/44-char URL-safe base64.
///
/// # Errors
/// Any other text.
pub fn parse_key(text: &str) -> Result<PublicKey, String> {
    let t = text.trim();
    let raw = match t.len() {
        40 => z85::decode_key(t.as_bytes()).map_err(|e| format!("server key: {e:?}"))?,
        43 | 44 => b64url_key(t).ok_or_else(|| "server key: bad base64".to_string())?,
        n => return Err(format!("server key: {n} characters; expected 40 (Z85) or 43 (base64)")),
    };
    Ok(PublicKey(raw))
}

fn b64url_key(t: &str) -> Option<[u8; 32]> {
    let t = t.strip_suffix('=').unwrap_or(t);
    if t.len() != 43 {
        return None;
    }
    let mut out = [0u8; 32];
    let (mut acc, mut bits, mut k) = (0u32, 0u32, 0usize);
    for c in t.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(k)? = (acc >> bits) as u8;
            k += 1;
        }
    }
    (k == 32).then_some(out)
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

static RUN: AtomicU32 = AtomicU32::new(0);

/// Run the workloads of `args` and collect their results.
///
/// # Errors
/// Bad arguments, an unreachable router, or an in-process router that would not start.
/// A workload that runs but fails is reported in its result (`"ok":false`).
pub fn run(args: &BenchArgs) -> Result<Report, String> {
    let cases = check_args(args)?;
    raise_fd_limit();
    let mut report = Report::default();
    let inproc = match &args.endpoint {
        None => {
            if args.serverkey.is_some() {
                return Err("--serverkey needs --endpoint (the in-process router makes its own key: --curve)".into());
            }
            Some(inproc::Inproc::start(args.curve)?)
        }
        Some(_) => None,
    };
    let endpoint_text = match (&inproc, &args.endpoint) {
        (Some(r), _) => r.endpoint.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => return Err("no endpoint".into()),
    };
    let endpoint = Endpoint::parse(&endpoint_text).map_err(|e| format!("{endpoint_text}: {e}"))?;
    let server_key = match (&inproc, &args.serverkey) {
        (Some(r), _) => r.server_key,
        (None, Some(k)) => Some(parse_key(k)?),
        (None, None) => None,
    };
    let security = match server_key {
        Some(server_key) => Security::Curve { server_key, keys: KeyPair::generate(&mut OsRng) },
        None => Security::Null,
    };
    let router_cpu = match (&inproc, args.router_pid) {
        (Some(r), _) => RouterCpu::Thread(r.tid),
        (None, Some(pid)) => RouterCpu::Pid(pid),
        (None, None) => RouterCpu::None,
    };
    report.notes.push(router_note(router_cpu, &endpoint_text, server_key.is_some()));
    let transport = match endpoint {
        Endpoint::Tcp(_) => "tcp",
        _ => "ipc",
    };
    let mut payload = vec![b'x'; args.size];
    if let Some(b) = payload.first_mut() {
        *b = b'B';
    }
    for case in &cases {
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let ctx = Ctx {
            args: args.clone(),
            endpoint: endpoint.clone(),
            transport,
            security: security.clone(),
            prefix: format!("rb{}.{n}", std::process::id()),
            payload: payload.clone(),
            router_cpu,
            clients: if args.direct_io {
                socket::Gen::Direct
            } else {
                socket::Gen::Io(io::IoThread::start(args.zmq_cost)?)
            },
            rss_pid: if inproc.is_some() { None } else { args.router_pid },
            inproc: inproc.is_some(),
        };
        let r = match case.as_str() {
            "route" => route::run(&ctx),
            "rtt" => rtt::run(&ctx),
            "fanout" => fanout::run(&ctx),
            "fanout-lat" => fanout_lat::run(&ctx),
            _ => peers::run(&ctx),
        };
        if args.progress {
            eprintln!("{}", r.line);
        }
        report.results.push(r);
    }
    drop(inproc);
    Ok(report)
}

/// The workloads to run, once the arguments are checked.
fn check_args(args: &BenchArgs) -> Result<Vec<String>, String> {
    let cases: Vec<String> =
        if args.cases.is_empty() { CASES.iter().map(|s| s.to_string()).collect() } else { args.cases.clone() };
    for c in &cases {
        if !CASES.contains(&c.as_str()) {
            return Err(format!("unknown workload {c:?} (expected {})", CASES.join(", ")));
        }
    }
    if args.pairs == 0 || args.size == 0 || args.window == 0 || args.threads == 0 || args.rtt_count == 0 {
        return Err("--pairs, --size, --window, --threads and --rtt-count must be at least 1".into());
    }
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err("--duration must be a positive number of seconds".into());
    }
    Ok(cases)
}

/// The report's note on the router measured and how its CPU is read.
fn router_note(router_cpu: RouterCpu, endpoint: &str, curve: bool) -> String {
    match router_cpu {
        RouterCpu::Thread(tid) => format!(
            "router: in-process at {endpoint} ({}); router CPU = its thread's /proc/self/task/{tid}/stat; \
             gen CPU = the rest of this process; VmRSS not measured (shared with the clients)",
            if curve { "CURVE" } else { "NULL" }
        ),
        RouterCpu::Pid(pid) => format!("router: {endpoint}, pid {pid}; router CPU = /proc/{pid}/stat (all threads)"),
        RouterCpu::None => format!("router: {endpoint}; no --router-pid: router CPU and memory not measured"),
    }
}

/// `viprouter bench` end to end: run, print the table on stderr and, with `--json`, one
/// JSON line per result on stdout. Exit status 0 when every workload reported `ok`, 1 when
/// one did not, 2 when the run could not start.
pub fn main(args: &BenchArgs) -> std::process::ExitCode {
    match run(args) {
        Ok(report) => {
            report.print_table();
            if args.json {
                println!("{}", report.to_json());
            }
            let ok = report.results.iter().all(|r| r.get("ok") != Some(&Val::Bool(false)));
            std::process::ExitCode::from(if ok { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("viprouter bench: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_in_both_encodings() {
        // VIP.md §9.2 worked conversion.
        let z = parse_key("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID").unwrap();
        let b = parse_key("u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg").unwrap();
        assert_eq!(z, b);
        assert_eq!(z.0[0], 0xbb);
        assert_eq!(parse_key("u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg=").unwrap(), z);
        assert!(parse_key("short").is_err());
        assert!(parse_key("u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xR!").is_err());
    }
}
