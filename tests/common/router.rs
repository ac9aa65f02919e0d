//! The VIP router core without sockets: a recording sink, messages from frame lists, and a
//! router with its own counters.

use std::ops::{Deref, DerefMut};

use viprouter::limits::Limits;
use viprouter::stats::Stats;
use viprouter::time::Instant;
use viprouter::vip::bridge::BridgeDown;
use viprouter::vip::discovery::Discovery;
use viprouter::vip::links::{DownReason, LinkAction, LinkConfig, LinkId};
use viprouter::vip::peers::{AttachError, PeerId};
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{Full, OnFull, Outcome, Refusal, Router, Sink};
use viprouter::zmtp::{Message, Part, Parts};

/// Messages written by the router: (destination peer, frames).
pub type Out = Vec<(u16, Vec<Vec<u8>>)>;

/// Records deliveries; peers listed in `full` refuse (queue full), peers in `no_budget` refuse
/// as a sink whose buffer budget is exhausted does, peers in `stalled` say they are stalled.
#[derive(Default)]
pub struct Recorder {
    pub out: Out,
    pub full: Vec<u16>,
    pub no_budget: Vec<u16>,
    pub stalled: Vec<u16>,
    pub refusal: Option<Refusal>,
}

impl Sink for Recorder {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        if self.full.contains(&to.0) {
            self.refusal = Some(Refusal::QueueFull);
            return Err(Full);
        }
        if self.no_budget.contains(&to.0) {
            self.refusal = Some(Refusal::Budget);
            return Err(Full);
        }
        self.out.push((to.0, frames.iter().map(|f| f.to_vec()).collect()));
        Ok(())
    }

    fn is_stalled(&self, to: PeerId) -> bool {
        self.stalled.contains(&to.0)
    }

    fn refusal(&self) -> Refusal {
        self.refusal.expect("refusal() asked only after a refusal")
    }
}

impl Recorder {
    /// Everything recorded so far, cleared.
    pub fn take(&mut self) -> Out {
        std::mem::take(&mut self.out)
    }

    /// The frames sent to `peer`, `peerlist` notices left out.
    pub fn to(&self, peer: u16) -> Vec<&Vec<Vec<u8>>> {
        self.out.iter().filter(|(p, f)| *p == peer && f[4] != b"peerlist").map(|(_, f)| f).collect()
    }
}

/// The buffer and frame ranges of a message made of `frames`.
pub fn msg(frames: &[&[u8]]) -> (Vec<u8>, Parts) {
    let mut buf = Vec::new();
    let mut parts = Parts::new();
    for f in frames {
        parts.push(Part { start: buf.len() as u32, len: f.len() as u32 }).unwrap();
        buf.extend_from_slice(f);
    }
    (buf, parts)
}

/// Owned copies of `v`.
pub fn frames(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|f| f.to_vec()).collect()
}

/// A router with its own counters: `r.stats` reads them, `r.handle`/`attach`/`detach` lend
/// them, everything else is the router's ([`Deref`]).
pub struct TestRouter {
    router: Router,
    pub stats: Stats,
}

impl TestRouter {
    pub fn new(limits: &Limits, info: PlatformInfo, seed: u32) -> Self {
        TestRouter { router: Router::new(limits, info, seed), stats: Stats::default() }
    }

    pub fn handle(&mut self, from: PeerId, msg: Message<'_>, sink: &mut impl Sink, on_full: OnFull) -> Outcome {
        self.router.handle(&mut self.stats, from, msg, sink, on_full)
    }

    pub fn attach(&mut self, peer: PeerId, identity: &[u8]) -> Result<(), AttachError> {
        self.router.attach(&mut self.stats, peer, identity)
    }

    pub fn detach(&mut self, peer: PeerId, sink: &mut impl Sink) {
        self.router.detach(&mut self.stats, peer, sink)
    }

    pub fn set_file_links(&mut self, discovery: &Discovery) {
        self.router.set_file_links(&mut self.stats, discovery)
    }

    pub fn configure_link(&mut self, config: LinkConfig) {
        self.router.configure_link(&mut self.stats, config)
    }

    pub fn poll_link(&mut self, now: Instant, sink: &mut impl Sink) -> Option<LinkAction> {
        self.router.poll_link(&mut self.stats, now, sink)
    }

    pub fn link_up(&mut self, link: LinkId, sink: &mut impl Sink) {
        self.router.link_up(&mut self.stats, link, sink)
    }

    pub fn link_down(&mut self, link: LinkId, now: Instant, reason: DownReason) {
        self.router.link_down(&mut self.stats, link, now, reason)
    }

    pub fn link_input(&mut self, link: LinkId, msg: Message<'_>) {
        self.router.link_input(&mut self.stats, link, msg)
    }

    pub fn bridge_dialled(&mut self, sink: &mut impl Sink) {
        self.router.bridge_dialled(&mut self.stats, sink)
    }

    pub fn bridge_up(&mut self) {
        self.router.bridge_up(&mut self.stats)
    }

    pub fn bridge_down(&mut self, now: Instant, reason: BridgeDown) {
        self.router.bridge_down(&mut self.stats, now, reason)
    }

    pub fn bridge_input(&mut self, msg: Message<'_>, sink: &mut impl Sink) {
        self.router.bridge_input(&mut self.stats, msg, sink)
    }
}

impl Deref for TestRouter {
    type Target = Router;
    fn deref(&self) -> &Router {
        &self.router
    }
}

impl DerefMut for TestRouter {
    fn deref_mut(&mut self) -> &mut Router {
        &mut self.router
    }
}
