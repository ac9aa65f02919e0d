//! The `viprouter bench` subcommand's arguments (argh), for `main.rs` to embed.

use argh::FromArgs;

use super::BenchArgs;

/// measure a router: route, rtt, fanout, fanout-lat, peers (vipbench's workloads and a
/// paced publish latency) against a router started in-process on loopback, or the one at
/// --endpoint
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "bench")]
pub struct BenchCmd {
    /// router to measure, tcp://HOST:PORT or ipc://PATH (default: start one in this process)
    #[argh(option)]
    pub endpoint: Option<String>,
    /// the router's CURVE public key (40-char Z85 or 43-char base64): connect with CURVE
    #[argh(option)]
    pub serverkey: Option<String>,
    /// in-process router: serve CURVE (every client key authorised)
    #[argh(switch)]
    pub curve: bool,
    /// seconds per route/rtt/fanout/fanout-lat run (default 3)
    #[argh(option, default = "3.0")]
    pub duration: f64,
    /// payload bytes of route/rtt, publish body bytes of fanout/fanout-lat (default 256)
    #[argh(option, default = "256")]
    pub size: usize,
    /// route: sender/receiver pairs (default 4)
    #[argh(option, default = "4")]
    pub pairs: usize,
    /// route: most undelivered messages per pair; fanout: most publishes ahead (default 1000)
    #[argh(option, default = "1000")]
    pub window: usize,
    /// fanout, fanout-lat: subscribers (default 8)
    #[argh(option, default = "8")]
    pub subscribers: usize,
    /// fanout, fanout-lat: this many more subscriptions, held by idle peers (1000 each) to prefixes
    /// that do not match the bench topic (default 0)
    #[argh(option, default = "0")]
    pub extra_subs: usize,
    /// rtt: round trips, fanout-lat: publishes, after 500 warm-up ones (default 20000)
    #[argh(option, default = "20000")]
    pub rtt_count: u64,
    /// peers: idle peers (default 1000)
    #[argh(option, default = "1000")]
    pub peers: usize,
    /// client worker threads (default 2)
    #[argh(option, default = "2")]
    pub threads: usize,
    /// pid of the router at --endpoint: its CPU per message and VmRSS
    #[argh(option)]
    pub router_pid: Option<u32>,
    /// label in the output (default router)
    #[argh(option, default = "String::from(\"router\")")]
    pub label: String,
    /// also print one JSON line per result on stdout (vipbench's field names)
    #[argh(switch)]
    pub json: bool,
    /// worker threads do their own socket I/O (no libzmq-style I/O thread): the cheapest
    /// generator, i.e. the router's ceiling; figures not comparable with vipbench's
    #[argh(switch)]
    pub direct_io: bool,
    /// cost of the libzmq-shaped client in percent of libzmq's per-frame and per-message
    /// overhead (default 100: figures comparable with vipbench's; 0: none)
    #[argh(option, default = "100")]
    pub zmq_cost: u32,
    /// no progress lines
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// workloads, in order: route rtt fanout fanout-lat peers (default: all five)
    #[argh(positional)]
    pub cases: Vec<String>,
}

impl From<BenchCmd> for BenchArgs {
    fn from(c: BenchCmd) -> BenchArgs {
        BenchArgs {
            endpoint: c.endpoint,
            serverkey: c.serverkey,
            curve: c.curve,
            duration: c.duration,
            size: c.size,
            pairs: c.pairs,
            window: c.window,
            subscribers: c.subscribers,
            extra_subs: c.extra_subs,
            rtt_count: c.rtt_count,
            peers: c.peers,
            threads: c.threads,
            router_pid: c.router_pid,
            json: c.json,
            progress: !c.quiet,
            label: c.label,
            direct_io: c.direct_io,
            zmq_cost: c.zmq_cost,
            cases: c.cases,
        }
    }
}
