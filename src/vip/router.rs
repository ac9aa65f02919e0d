//! The VIP routing algorithm and the subsystems the router answers itself
//! (VIP.md §4, §5, §8; DESIGN.md §2.2 rule 4).
//!
//! [`Router::handle`] takes one complete message from an attached peer and either forwards
//! it, answers it, or drops it silently, writing every outgoing message through a [`Sink`]
//! (the server's connection table). The router owns no message buffers: frames are borrowed
//! from the sender's receive buffer and copied once, into the destination's transmit queue.
//!
//! Back-pressure (the choice documented in README "Backpressure"): when the destination's
//! queue is full, [`Router::handle`] returns [`Outcome::Blocked`] *before any side effect other
//! than the idempotent peer registration*, so the server can pause the sender and call again
//! with the same message later. After `send-stall-ms` the server calls again with
//! [`OnFull::Again`] and the router answers VOLTTRON's error 11 instead (VIP.md §4 step 7).
//! Router notifications (`peerlist add/drop`) go to the registered peers through
//! [`Sink::broadcast`]: the server writes them as each peer's queue has room, before anything
//! else queued to that peer; one a peer never gets is counted (`dropped_notify_full`).

use super::SIGNATURE;
use super::bridge::{Bridge, Bus};
use super::envelope::{Envelope, EnvelopeError};
use super::error::{ErrorMsgId, MAX_QUOTED_MSG_ID, VipErrno, error_frames};
use super::external_pubsub::OwnList;
use super::links::{LinkId, Links};
use super::peers::{AttachError, PeerId, PeerTable};
use super::platform::PlatformInfo;
use super::pubsub::{OwnPublish, PubSub};
pub use super::report::STATS_JSON_BYTES;
use crate::json::SliceWriter;
use crate::limits::{Limits, MAX_MSG_PARTS};
use crate::stats::{self, PeerTraffic, Stats};
use crate::zmtp::Message;

/// The destination's transmit queue cannot take the message now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Why a [`Sink`] refused a delivery ([`Sink::refusal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The destination's transmit queue is full (`tx-queue-bytes`), or the peer is gone.
    QueueFull,
    /// The queue had room, but the process-wide buffer budget could not hold the message.
    Budget,
}

/// Where the router's output goes: one queue per peer.
pub trait Sink {
    /// Queue `frames` as one multipart message to `to`, all or nothing.
    ///
    /// # Errors
    /// [`Full`] when the queue has no room (nothing was queued).
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full>;

    /// Queue the same message to one of many recipients (pubsub fan-out). A sink may encode
    /// the frames once per [`Fanout`] (its [`Fanout::id`] tells one fan-out from the next) and
    /// copy that block to each recipient that takes the same encoding; the default delivers
    /// frame by frame.
    ///
    /// # Errors
    /// [`Full`] as for [`Sink::deliver`].
    fn deliver_fanout(&mut self, to: PeerId, fanout: &Fanout<'_>) -> Result<(), Full> {
        self.deliver(to, fanout.frames)
    }

    /// [`Sink::deliver`] of `frames` whose verbatim encoding the caller made already
    /// (`encoded`, what [`crate::zmtp::traffic::encode_verbatim`] writes for them). A sink may
    /// copy `encoded` to a recipient that takes frames verbatim instead of encoding them again;
    /// the default delivers the frames.
    ///
    /// # Errors
    /// [`Full`] as for [`Sink::deliver`].
    fn deliver_encoded(&mut self, to: PeerId, frames: &[&[u8]], encoded: &[u8]) -> Result<(), Full> {
        let _ = encoded;
        self.deliver(to, frames)
    }

    /// Has `to` been full for longer than the stall time? Messages to a stalled peer are
    /// answered with error 11 at once instead of pausing their sender again.
    fn is_stalled(&self, to: PeerId) -> bool {
        let _ = to;
        false
    }

    /// Queue `frames` as one multipart message on the connection of link `link` (a DEALER
    /// towards a remote platform's router: the frames go on the wire as they are, starting with
    /// the empty RECIPIENT), all or nothing. Only called for a link the server reported up
    /// ([`Router::link_up`]) and not down since. The queue is bounded like a peer's
    /// (`tx-queue-bytes`); a full one answers [`Full`] and the router drops and counts (it never
    /// pauses local senders behind a remote). The default (no link support) refuses everything.
    ///
    /// # Errors
    /// [`Full`] when nothing was queued.
    fn deliver_link(&mut self, link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        let _ = (link, frames);
        Err(Full)
    }

    /// The RabbitMQ bridge's connection ([`super::bridge::Bus`]), while one exists (dialled,
    /// connecting or up). The default (no bridge) has none.
    fn bus(&mut self) -> Option<&mut dyn Bus> {
        None
    }

    /// Why the last [`Full`] was returned.
    fn refusal(&self) -> Refusal {
        Refusal::QueueFull
    }

    /// Queue `frames` to every peer in `members` — the registered peers, of whose changes the
    /// sink is told ([`Sink::joined`], [`Sink::leaving`]) — as VOLTTRON's `peerlist add/drop`
    /// (VIP.md §4 step 4, §8). A sink may write them later, but each member must get them
    /// before anything queued to it afterwards. Returns for how many members the message was
    /// dropped (queue full). The default writes it to each member now.
    fn broadcast(&mut self, frames: &[&[u8]], members: &mut dyn Iterator<Item = PeerId>) -> u64 {
        let mut dropped = 0;
        for p in members {
            if self.deliver(p, frames).is_err() {
                dropped += 1;
            }
        }
        dropped
    }

    /// `peer` joined the registered set: broadcasts from now on reach it.
    fn joined(&mut self, peer: PeerId) {
        let _ = peer;
    }

    /// `peer` leaves the registered set: broadcasts made while it was a member reach it first;
    /// later ones do not.
    fn leaving(&mut self, peer: PeerId) {
        let _ = peer;
    }

    /// The messages counted per peer so far (the server's table), for the top talkers of
    /// `query stats`; `None` when the sink keeps none.
    fn traffic(&self) -> Option<&PeerTraffic> {
        None
    }
}

/// Count (and log, rate-limited) `peerlist` notifications the sink dropped (`op`: add/drop).
fn count_dropped_notifications(stats: &mut Stats, dropped: u64, op: &str) {
    for _ in 0..dropped {
        if stats::bump_and_should_log(&mut stats.dropped_notify_full) {
            log::warn!("peerlist {op} dropped: the queue of a peer is full");
        }
    }
}

/// One message for many recipients (see [`Sink::deliver_fanout`]).
#[derive(Clone, Copy, Debug)]
pub struct Fanout<'a> {
    /// The frames, as for [`Sink::deliver`].
    pub frames: &'a [&'a [u8]],
    id: u64,
}

impl<'a> Fanout<'a> {
    /// `frames` for the fan-out numbered `id`: a number the sender never reuses for other frames.
    pub fn new(frames: &'a [&'a [u8]], id: u64) -> Self {
        Fanout { frames, id }
    }

    /// Which fan-out this is: the same id, the same frames.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// What to do when a forwarded message's destination is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Report [`Outcome::Blocked`]; the caller retries later.
    Pause,
    /// Answer the sender with error 11 (EAGAIN), as VOLTTRON does.
    Again,
}

/// Result of handling one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Done; the message may be consumed.
    Done,
    /// Nothing was sent: `PeerId`'s queue is full. Keep the message and retry.
    Blocked(PeerId),
    /// `quit` from the control identity: stop the router (VIP.md §5.7).
    Quit,
}

/// The identity allowed to stop the router and to `agentstop` others (VIP.md §5.6, §5.7) by
/// default; modular VOLTTRON's is `platform.control` ([`Router::set_control_identity`]).
pub const CONTROL: &[u8] = crate::auth::layout::CONTROL_V9;

/// The VIP router core. Its counters are the caller's ([`Stats`], owned by the server and lent
/// to every call that can count something).
pub struct Router {
    /// Identities and the peer set.
    pub peers: PeerTable,
    /// Facts for `hello` and `query`.
    pub info: PlatformInfo,
    /// The pubsub service (VIP.md §7).
    pub pubsub: PubSub,
    /// Who may `quit` the router and `agentstop` others ([`CONTROL`] unless set).
    control: &'static [u8],
    /// Links to remote platforms (VIP.md §11; [`super::links`]).
    pub links: Links,
    /// Our `external_list` body.
    pub(super) own_list: OwnList,
    /// Scratch for rewritten `external_rpc` bodies.
    pub(super) rpc_body: Vec<u8>,
    /// The RabbitMQ bridge (issue #15; [`super::bridge`]): off unless configured.
    pub bridge: Bridge,
    /// How MSG_ID is written in the errors the router generates (`[viprouter] error-msg-id`;
    /// see [`super::error`]).
    pub error_msg_id: ErrorMsgId,
    /// The limits in force, reported in `query stats` (`"limits"`).
    pub(super) limits: Limits,
}

impl Router {
    /// A router for `limits.max_connections` peers, with the pubsub index sized from `limits`.
    pub fn new(limits: &Limits, info: PlatformInfo, seed: u32) -> Router {
        Router {
            peers: PeerTable::new(limits.max_connections, seed),
            info,
            pubsub: PubSub::new(limits),
            control: CONTROL,
            links: Links::new(limits.max_links, seed),
            own_list: OwnList::default(),
            rpc_body: Vec::new(),
            bridge: Bridge::new(seed),
            error_msg_id: ErrorMsgId::default(),
            limits: limits.clone(),
        }
    }

    /// The identity that may `quit` the router and `agentstop` others: `control` for VOLTTRON 9,
    /// `platform.control` for modular VOLTTRON (`crate::auth::layout`).
    pub fn set_control_identity(&mut self, identity: &'static [u8]) {
        self.control = identity;
    }

    /// The identity that may `quit` the router and `agentstop` others.
    pub fn control_identity(&self) -> &'static [u8] {
        self.control
    }

    /// Attach a connection that completed its handshake with `identity` (empty → a generated
    /// id, ZMTP.md §9.1).
    ///
    /// # Errors
    /// [`AttachError::Duplicate`] when a live connection holds the identity: the newcomer is
    /// ignored, first wins (VIP.md §2.4 item 3); counted and logged.
    pub fn attach(&mut self, stats: &mut Stats, peer: PeerId, identity: &[u8]) -> Result<(), AttachError> {
        let r = if identity.is_empty() {
            let id = self.peers.generate_identity();
            self.peers.attach(peer, &id)
        } else {
            self.peers.attach(peer, identity)
        };
        if let Err(AttachError::Duplicate(holder)) = r
            && stats::bump_and_should_log(&mut stats.rejected_duplicate_identity)
        {
            log::warn!(
                "duplicate identity {:?}: a live connection (peer {}) holds it; the newcomer is ignored (first wins)",
                String::from_utf8_lossy(identity),
                holder.0
            );
        }
        r
    }

    /// The connection of `peer` closed: leave the peer set with the same `peerlist drop` as
    /// `agentstop` (VIP.md §8.3 Compat), then free the identity.
    pub fn detach(&mut self, stats: &mut Stats, peer: PeerId, sink: &mut impl Sink) {
        if self.peers.is_registered(peer) {
            self.unregister(stats, peer, sink);
        }
        self.pubsub.peer_detached(peer);
        let lists = self.links.peer_gone(peer);
        if lists > 0 {
            log::info!("{} left: the remote subscriptions it sent are dropped", self.name(peer));
        }
        self.peers.detach(peer);
        self.sync_external_list(stats, sink);
        self.sync_bridge_prefixes(stats, sink);
    }

    /// Route one message from `from` (VIP.md §4).
    pub fn handle(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        msg: Message<'_>,
        sink: &mut impl Sink,
        on_full: OnFull,
    ) -> Outcome {
        stats.msgs_in += 1;
        let env = match Envelope::parse(msg) {
            Ok(env) => env,
            Err(EnvelopeError::Probe) => {
                stats.unroutable_probe += 1;
                self.register(stats, from, sink);
                return Outcome::Done;
            }
            Err(EnvelopeError::TooFewFrames) => {
                if stats::bump_and_should_log(&mut stats.unroutable_too_few_frames) {
                    log::info!("dropped a message with too few frames from {}", self.name(from));
                }
                return Outcome::Done;
            }
            Err(EnvelopeError::BadSignature) => {
                if stats::bump_and_should_log(&mut stats.unroutable_bad_signature) {
                    log::info!("dropped a message with a bad VIP signature from {}", self.name(from));
                }
                return Outcome::Done;
            }
        };
        self.register(stats, from, sink);
        if !env.recipient.is_empty() {
            return self.forward(stats, from, &env, sink, on_full);
        }
        match env.subsystem {
            b"hello" => self.hello(stats, from, &env, sink),
            b"ping" => self.ping(stats, from, &env, sink),
            b"peerlist" => self.peerlist(stats, from, &env, sink),
            b"query" => self.query(stats, from, &env, sink),
            b"pubsub" => match env.arg(0) {
                b"external_list" => self.external_list_in(stats, from, &env, sink),
                b"external_publish" => self.external_publish_in(stats, from, &env, sink),
                _ => {
                    let Router { peers, pubsub, links, error_msg_id, .. } = self;
                    let outcome = pubsub.handle(from, &env, peers, links, stats, sink, *error_msg_id);
                    self.sync_external_list(stats, sink);
                    self.sync_bridge_prefixes(stats, sink);
                    outcome
                }
            },
            b"agentstop" => {
                self.agentstop(stats, from, &env, sink);
                Outcome::Done
            }
            b"quit" if self.peers.identity(from) == self.control => Outcome::Quit,
            // VIP.md §5.5: errors addressed to the router are discarded.
            b"error" => Outcome::Done,
            b"routing_table" => self.routing_table(stats, from, &env, sink),
            b"external_rpc" if env.arg_count() == 2 && matches!(env.arg(0), b"send_platform" | b"send_peer") => {
                self.external_rpc(stats, from, &env, sink)
            }
            _ => self.unsupported(stats, from, &env, sink),
        }
    }

    /// A printable name for logs.
    pub(super) fn name(&self, peer: PeerId) -> String {
        String::from_utf8_lossy(self.peers.identity(peer)).into_owned()
    }

    /// VIP.md §4 step 4: first valid message → `peerlist add` to the others, then join.
    fn register(&mut self, stats: &mut Stats, from: PeerId, sink: &mut impl Sink) {
        if self.peers.is_registered(from) || !self.peers.is_attached(from) {
            return;
        }
        let me = self.peers.identity(from);
        let frames: [&[u8]; 7] = [b"", SIGNATURE, b"", b"", b"peerlist", b"add", me];
        let dropped = sink.broadcast(&frames, &mut self.peers.registered());
        count_dropped_notifications(stats, dropped, "add");
        self.peers.register(from);
        sink.joined(from);
        stats.peers_added += 1;
        stats.peers = self.peers.registered_len() as u64;
        self.bridge_peer(stats, from, true, sink);
    }

    /// Leave the peer set and tell the remaining peers (VIP.md §8.2).
    fn unregister(&mut self, stats: &mut Stats, peer: PeerId, sink: &mut impl Sink) {
        if !self.peers.unregister(peer) {
            return;
        }
        sink.leaving(peer);
        stats.peers_dropped += 1;
        stats.peers = self.peers.registered_len() as u64;
        self.pubsub.remove_peer(peer); // VIP.md §7.12
        self.sync_external_list(stats, sink);
        self.bridge_peer(stats, peer, false, sink);
        self.sync_bridge_prefixes(stats, sink);
        let me = self.peers.identity(peer);
        let frames: [&[u8]; 7] = [b"", SIGNATURE, b"", b"", b"peerlist", b"drop", me];
        let dropped = sink.broadcast(&frames, &mut self.peers.registered());
        count_dropped_notifications(stats, dropped, "drop");
    }

    /// Queue a router reply to the requester; a full queue pauses the requester.
    pub(super) fn reply(stats: &mut Stats, sink: &mut impl Sink, to: PeerId, frames: &[&[u8]]) -> Outcome {
        match sink.deliver(to, frames) {
            Ok(()) => Outcome::Done,
            Err(Full) => {
                stats.paused_sender += 1;
                Outcome::Blocked(to)
            }
        }
    }

    /// VIP.md §4 step 5 and 7.
    fn forward(
        &self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
        on_full: OnFull,
    ) -> Outcome {
        let me = self.peers.identity(from);
        let Some(to) = self.peers.lookup(env.recipient) else {
            stats.errors_unreachable += 1;
            let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
            let id = self.error_msg_id.msg_id(env.msg_id, &mut quoted);
            let f = error_frames(me, id, VipErrno::HostUnreachable, env.recipient, env.subsystem);
            return Self::error_reply(stats, sink, from, &f, on_full);
        };
        let mut frames: heapless::Vec<&[u8], { MAX_MSG_PARTS + 1 }> = heapless::Vec::new();
        // [SENDER, 'VIP1', USER_ID := SENDER, MSG_ID, SUBSYSTEM, ARGS...] (§4 step 5, §3.5).
        let head: [&[u8]; 5] = [me, SIGNATURE, me, env.msg_id, env.subsystem];
        for f in head.into_iter().chain(env.frames_from(5)) {
            // Cannot overflow: the message had at most MAX_MSG_PARTS frames.
            let _ = frames.push(f);
        }
        match sink.deliver(to, &frames) {
            Ok(()) => {
                stats.routed += 1;
                Outcome::Done
            }
            Err(Full) if on_full == OnFull::Pause && (to == from || !sink.is_stalled(to)) => {
                stats.paused_sender += 1;
                Outcome::Blocked(to)
            }
            Err(Full) => {
                if stats::bump_and_should_log(&mut stats.errors_again) {
                    log::warn!(
                        "queue of {:?} stays full: answering error 11 to {:?}",
                        String::from_utf8_lossy(env.recipient),
                        String::from_utf8_lossy(me)
                    );
                }
                let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
                let id = self.error_msg_id.msg_id(env.msg_id, &mut quoted);
                let f = error_frames(me, id, VipErrno::Again, env.recipient, env.subsystem);
                Self::error_reply(stats, sink, from, &f, OnFull::Again)
            }
        }
    }

    /// Send an error to the sender; when its own queue is full, pause it (`Pause`) or drop the
    /// error and count it (`Again`: the sender has waited long enough already).
    fn error_reply(stats: &mut Stats, sink: &mut impl Sink, to: PeerId, frames: &[&[u8]], on_full: OnFull) -> Outcome {
        match (sink.deliver(to, frames), on_full) {
            (Ok(()), _) => Outcome::Done,
            (Err(Full), OnFull::Pause) => Outcome::Blocked(to),
            (Err(Full), OnFull::Again) => {
                let _ = stats::bump_and_should_log(&mut stats.dropped_reply_full);
                Outcome::Done
            }
        }
    }

    /// VIP.md §5.1.
    fn hello(&self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>, sink: &mut impl Sink) -> Outcome {
        let me = self.peers.identity(from);
        let id = &self.info.router_id;
        let frames: [&[u8]; 9] = [b"", SIGNATURE, me, env.msg_id, b"hello", b"welcome", b"1.0", id, me];
        Self::reply(stats, sink, from, &frames)
    }

    /// VIP.md §5.2: first arg replaced by `pong`, the rest copied.
    fn ping(&self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>, sink: &mut impl Sink) -> Outcome {
        let me = self.peers.identity(from);
        let mut frames: heapless::Vec<&[u8], { MAX_MSG_PARTS + 1 }> = heapless::Vec::new();
        let head: [&[u8]; 6] = [b"", SIGNATURE, me, env.msg_id, b"ping", b"pong"];
        for f in head.into_iter().chain(env.frames_from(6)) {
            let _ = frames.push(f);
        }
        Self::reply(stats, sink, from, &frames)
    }

    /// VIP.md §5.3.
    fn peerlist(&self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>, sink: &mut impl Sink) -> Outcome {
        let peers = &self.peers;
        let head: [&[u8]; 5] = [b"", SIGNATURE, b"", env.msg_id, b"peerlist"];
        match env.arg(0) {
            b"list" => {
                // Not a steady-state path: one allocation per listing is acceptable.
                let mut frames: Vec<&[u8]> = Vec::with_capacity(peers.registered_len() + 6);
                frames.extend(head.iter().copied().chain([&b"listing"[..]]));
                frames.extend(peers.registered().map(|p| peers.identity(p)));
                Self::reply(stats, sink, from, &frames)
            }
            b"" => {
                let f = [head[0], head[1], head[2], head[3], head[4], b"error", b"missing operation"];
                Self::reply(stats, sink, from, &f)
            }
            _ => {
                let f = [head[0], head[1], head[2], head[3], head[4], b"error", b"unknown operation"];
                Self::reply(stats, sink, from, &f)
            }
        }
    }

    /// VIP.md §5.4, plus `stats` (§12 Compat: a JSON object of the router's counters).
    fn query(&self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>, sink: &mut impl Sink) -> Outcome {
        let mut json = [0u8; STATS_JSON_BYTES];
        let value: &[u8] = match env.arg(0) {
            b"stats" => {
                let mut w = SliceWriter::new(&mut json);
                let bus = sink.bus().map(|b| b.status());
                if self.write_stats_json(stats, bus, sink.traffic(), &mut w).is_err() {
                    log::error!("query stats: counters do not fit the reply buffer");
                }
                let n = w.len();
                json.get(..n).unwrap_or(&[])
            }
            key => self.info.query(key).unwrap_or(&[]),
        };
        let frames: [&[u8]; 7] = [b"", SIGNATURE, b"", env.msg_id, b"query", b"", value];
        Self::reply(stats, sink, from, &frames)
    }

    /// Publish as the router itself (its own counters on `[viprouter] stats-topic`): delivered
    /// like an agent's publish ([`PubSub::publish_own`]); the number of matching subscribers,
    /// `None` if the topic is protected against `own.sender`.
    pub fn publish_own(&mut self, stats: &mut Stats, own: &OwnPublish<'_>, sink: &mut impl Sink) -> Option<usize> {
        self.pubsub.publish_own(own, &self.peers, stats, sink)
    }

    /// VIP.md §5.6 with the §16.2 C recommendation: honoured from the identity itself and from
    /// `control`; ignored (and logged) from anyone else.
    fn agentstop(&mut self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>, sink: &mut impl Sink) {
        let target = env.arg(0);
        let me = self.peers.identity(from);
        if target != me && me != self.control {
            log::info!(
                "agentstop for {:?} from {:?} ignored (only the agent itself or {} may stop it)",
                String::from_utf8_lossy(target),
                String::from_utf8_lossy(me),
                String::from_utf8_lossy(self.control)
            );
            return;
        }
        if let Some(peer) = self.peers.lookup(target) {
            self.unregister(stats, peer, sink);
        }
    }

    /// VIP.md §5.10: error 93.
    pub(super) fn unsupported(
        &self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
    ) -> Outcome {
        stats.errors_unsupported += 1;
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let id = self.error_msg_id.msg_id(env.msg_id, &mut quoted);
        let f = error_frames(b"", id, VipErrno::ProtoNotSupported, b"", env.subsystem);
        Self::reply(stats, sink, from, &f)
    }
}
