//! The pubsub service: subsystem `pubsub` addressed to the router (VIP.md §7).
//!
//! Requests are `[S, '', 'VIP1', U, M, 'pubsub', OP, ...args]`; the operations are
//!
//! | OP | effect | reply (USER_ID = S, MSG_ID = M) |
//! |---|---|---|
//! | `subscribe {"prefix": P or [P..], "bus": B, "all_platforms": bool}` | add | `request_response` `01`; `00` if refused or malformed |
//! | `unsubscribe {"internal"/"all": {"prefix": .., "bus": B}}` or legacy `{"prefix", "bus"}` | remove (`prefix: null` = every prefix of B) | `01`; `00` if malformed |
//! | `synchronize connected {"subscriptions": {PLATFORM: {BUS: [P..]}}}` | replace S's whole set | none |
//! | `publish TOPIC {"bus", "headers", "message", ..}` | fan out (below) | 4-byte LE count, after the deliveries |
//! | `list {"prefix", "bus", "subscribed", "reverse", "all_platforms"}` | — | `list_response` `[[bus, prefix, member], ..]` |
//! | `auth_update`, `protected_update` | replace the capability / protected-topic table | none |
//! | `error`, `request_response`, unknown ops | ignored (logged) | none |
//! | `external_list`, `external_publish` | from remote platforms' links: [`super::external_pubsub`] (the router routes them there) | see there |
//!
//! Matching (§7.2) is the [`Subscriptions`] index: plain byte prefix, `''` matches all, bus
//! compared exactly, one copy per subscriber; `internal` and `all_platforms` subscriptions both
//! count (the union, §16.2 C, instead of Python's masking). Each delivery is
//! `[X, '', 'VIP1', U, M, 'pubsub', 'publish', TOPIC, BODY]` with SENDER `''`, the publisher's
//! **unmodified** USER_ID and MSG_ID, and BODY rebuilt as
//! `{"sender": S, "bus": B, "headers": H, "message": MSG}` (ASCII-only Python-style JSON, NaN and
//! Infinity kept, extra keys and extra frames dropped). The count is the number of subscribers
//! the delivery was queued to — never more: a delivery dropped for a full queue or the buffer
//! budget is not counted — plus the remote platforms the publish was queued to
//! ([`super::external_pubsub`]: after the local deliveries, to every up link whose remote holds a
//! prefix of the topic; a down or full link is not counted). VIP.md §7.6 observes VOLTTRON
//! counting *matching* subscribers, but VOLTTRON also sends the publisher error 11 for each
//! subscriber whose pipe was full; this router sends no error 11 (below), so the count is where
//! the publisher learns of a drop.
//!
//! Malformed input never crashes the service (§16.2 B): it is counted (`pubsub_malformed`), logged
//! rate-limited ([`stats::bump_and_should_log`]), and answered like the closest non-crashing path: `00` for
//! subscribe/unsubscribe, `[]` for list, count 0 for publish, silence for everything else.
//! Subscribes over a limit are answered `00`, counted (`rejected_subscription_full`,
//! `rejected_subscription_peer_limit`) and logged; a subscribe with a list of prefixes is all or
//! nothing. A `synchronize` over a limit keeps the entries that fit (best effort: the agent gets as
//! much of what it asked as the limits allow) and is counted and logged the same way.
//!
//! # Slow subscribers (a deliberate deviation from VOLTTRON)
//!
//! When a subscriber's transmit queue is full, **only that delivery is dropped**: it is counted in
//! `dropped_slow_subscriber` and per peer (visible in `query stats` as
//! `"slow_subscribers": {identity: n}`), and logged when the subscriber starts dropping (a
//! per-peer flag cleared by its next successful delivery; the 1st, 10th, 100th … stall of a peer
//! is logged). The publisher and every other subscriber are unaffected, and the publisher is
//! **not** sent VOLTTRON's error 11 for it (§7.6 `EAGAIN`): one slow listener must not make every
//! publisher's log fill with errors about a peer it never addressed. The count leaves the slow
//! subscriber out. "Full" follows the server's admission rule (`server::conn::TxBuf::admits`):
//! a message larger than `tx-queue-bytes` still reaches a subscriber whose queue is at most half
//! full. A delivery the buffer budget cannot hold ([`Refusal::Budget`]) is dropped the same way
//! and counted in `dropped_subscriber_budget` (not a slow subscriber: its queue had room).
//!
//! Replies: subscribe/unsubscribe/list replies pause a requester whose own queue is full
//! ([`Outcome::Blocked`]; they are idempotent, so the retry is harmless). A publish whose
//! deliveries have started is never retried: if the publisher's queue cannot take the count, the
//! count is dropped and counted (`dropped_reply_full`).
//!
//! # Policy tables
//!
//! `auth_update` and `protected_update` are accepted only from [`AUTH_IDENTITY`] (§16.2 C);
//! from anyone else they are logged and ignored (`rejected_policy_update`). The server can load
//! the same tables itself with [`PubSub::set_protected_topics_json`] and
//! [`PubSub::set_user_capabilities_json`] or [`PubSub::set_user_capabilities`]. See [`super::protected`].
//!
//! With modular VOLTTRON's `authz.json` loaded ([`PubSub::set_authz`], [`crate::auth::authz`])
//! those tables are not consulted; instead the **sender's identity** is checked for subscribe
//! (every prefix, before anything is stored), publish, and each prefix of a synchronize. A
//! refused subscribe or publish is answered as modular's router answers it
//! (`pubsub_service.py` `_send_pubsub_error_response`):
//! `[S, '', 'VIP1', '', M, 'error', '-32001', 'Peer: <S> not authorized to <subscribe|publish> to
//! <topic>', '', 'pubsub']`, then `request_response` `00` (subscribe) or count 0 (publish);
//! refused synchronize prefixes are left out silently (there is no reply). Counted in
//! `rejected_protected_subscribe` / `rejected_protected_topic`.
//!
//! # Cost
//!
//! `publish` allocates nothing in steady state: the delivery body is emitted once per publish
//! into a scratch `Vec` owned by the service (it grows during warm-up to the largest body seen;
//! above [`SCRATCH_KEEP_BYTES`] it is given back after use), the frames are a stack array, and
//! the fan-out walks the index without allocating. The frames go to the sink as one [`Fanout`]
//! ([`Sink::deliver_fanout`]): the server encodes them once and copies that block to every
//! subscriber whose connection sends frames verbatim (NULL/PLAIN); CURVE subscribers get them
//! sealed under their own key. The body is emitted before matching, so a
//! publish nobody listens to still pays for one emit (unless no subscription exists at all).

use super::SIGNATURE;
use super::envelope::Envelope;
use super::error::{ErrorMsgId, MAX_QUOTED_MSG_ID};
use super::links::Links;
use super::peers::{PeerId, PeerTable};
use super::protected::{PolicyError, TopicPolicy, UserCapabilities};
use super::router::{Fanout, Outcome, Refusal, Router, Sink};
use super::subscriptions::{MAX_SUPPORTED_SUBSCRIPTIONS, SubscribeError, SubscriptionLimits, Subscriptions};
use crate::auth::authz::{Access, Authz};
use crate::json::emit::emit_u64;
use crate::json::{self, ByteSink, JsonStr, Kind, LenCounter, SinkFull, SliceWriter, Value};
use crate::limits::{Limits, MAX_BUS_BYTES, MAX_PREFIX_BYTES, MAX_SUBS_PER_PEER};
use crate::stats::{self, Stats};

mod list;
mod publish;
mod subscribe;

pub use publish::{DeliveryBody, OwnPublish};

/// The delivery-body scratch buffer is kept up to this capacity between publishes; a larger one
/// (a huge message) is released after use.
pub const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// Largest `list_response` in bytes; rows past it are left out (and logged).
pub const MAX_LIST_REPLY_BYTES: usize = 8 << 20;

/// At most this many peers are listed in `query stats` `"slow_subscribers"`.
pub const MAX_SLOW_SUBSCRIBERS_SHOWN: usize = 32;

/// The only identity whose `auth_update`/`protected_update` are honoured (VIP.md §7.8).
pub const AUTH_IDENTITY: &[u8] = b"platform.auth";

/// What a subscribe did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subscribed {
    /// Stored: `01`.
    Yes,
    /// Malformed or over a limit: `00`.
    No,
    /// A prefix is protected and the sender may not subscribe to it (`authz.json`): -32001,
    /// then `00`; the text is in `PubSub::text`.
    Unauthorized,
}

/// Per-peer slow-subscriber state.
#[derive(Clone, Copy, Debug, Default)]
struct SlowPeer {
    dropped: u64,
    stalls: u64,
    dropping: bool,
}

/// The pubsub service state.
pub struct PubSub {
    subs: Subscriptions,
    policy: TopicPolicy,
    /// modular `authz.json`; when set, replaces `policy`.
    authz: Option<Authz>,
    /// Delivery body of the publish being handled.
    body: Vec<u8>,
    /// Publishes fanned out so far: the next [`Fanout`]'s id.
    fanouts: u64,
    /// `list_response` and error texts.
    text: Vec<u8>,
    slow: Box<[SlowPeer]>,
    max_body_bytes: usize,
    /// `rabbitmq-export`: topics under these prefixes (VIP character prefixes) are published to
    /// the RabbitMQ bridge after the local deliveries ([`crate::vip::bridge`]).
    export: Vec<Vec<u8>>,
}

impl core::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PubSub").field("subs", &self.subs).finish_non_exhaustive()
    }
}

/// Python truthiness of a JSON value (`all_platforms`, `subscribed`, `reverse`).
fn truthy(v: Value<'_>) -> bool {
    match v.kind() {
        Kind::Null => false,
        Kind::Bool => v.as_bool() == Some(true),
        Kind::Number => v.as_number().is_some_and(|n| n.as_f64() != 0.0),
        Kind::String => v.raw().len() > 2, // more than the two quotes
        Kind::Array => v.items().next().is_some(),
        Kind::Object => v.members().next().is_some(),
    }
}

/// The platform key of a `synchronize` body: `internal` → false, `all` → true, else ignored.
fn platform(k: JsonStr<'_>) -> Option<bool> {
    if k.eq_latin1(b"internal") {
        Some(false)
    } else if k.eq_latin1(b"all") {
        Some(true)
    } else {
        None
    }
}

/// Log a malformed request (rate-limited) and count it.
fn malformed(stats: &mut Stats, requester: &[u8], op: &str, why: &str) {
    if stats::bump_and_should_log(&mut stats.pubsub_malformed) {
        log::info!("pubsub {op} from {}: {why} (answered with the non-crashing reply)", requester.escape_ascii());
    }
}

/// Count and log a subscribe refused by a limit.
fn refused(stats: &mut Stats, requester: &[u8], op: &str, e: SubscribeError) {
    let counter = match e {
        SubscribeError::PeerLimit => &mut stats.rejected_subscription_peer_limit,
        _ => &mut stats.rejected_subscription_full,
    };
    if stats::bump_and_should_log(counter) {
        log::warn!("pubsub {op} from {} refused: {e}", requester.escape_ascii());
    }
}

impl PubSub {
    /// The subscription index's limits for `limits` (also used for the memory ceiling).
    pub fn index_limits(limits: &Limits) -> SubscriptionLimits {
        SubscriptionLimits {
            max_subscriptions: limits.max_subscriptions.min(MAX_SUPPORTED_SUBSCRIPTIONS),
            max_per_peer: limits.max_subs_per_peer,
            max_prefix_bytes: MAX_PREFIX_BYTES,
            max_bus_bytes: MAX_BUS_BYTES,
            max_peers: limits.max_connections.min(usize::from(u16::MAX) + 1),
        }
    }

    /// Bytes the service allocates at start-up for `limits`: the subscription index and the
    /// per-peer slow-subscriber counts.
    pub fn table_bytes(limits: &Limits) -> usize {
        let index = Self::index_limits(limits);
        let subs = index.memory_bytes().unwrap_or(usize::MAX / 4);
        subs.saturating_add(index.max_peers * core::mem::size_of::<SlowPeer>())
    }

    /// A service sized from `limits` (`max_subscriptions`, `max_subs_per_peer`,
    /// `max_connections` as the peer-index range, `max_msg_bytes` as the largest delivery body;
    /// prefixes up to [`MAX_PREFIX_BYTES`], buses up to [`MAX_BUS_BYTES`]). All index memory is
    /// allocated here.
    pub fn new(limits: &Limits) -> PubSub {
        let wanted = Self::index_limits(limits);
        let subs = match Subscriptions::new(wanted) {
            Ok(s) => s,
            Err(e) => {
                log::error!("subscription index not built ({e}); pubsub has no capacity");
                let none = SubscriptionLimits { max_subscriptions: 0, max_per_peer: 0, max_peers: 0, ..wanted };
                // Infallible: every check passes for zero sizes.
                #[allow(clippy::expect_used)]
                Subscriptions::new(none).expect("an empty subscription index")
            }
        };
        PubSub {
            subs,
            policy: TopicPolicy::default(),
            authz: None,
            body: Vec::new(),
            fanouts: 0,
            text: Vec::new(),
            slow: vec![SlowPeer::default(); wanted.max_peers].into_boxed_slice(),
            max_body_bytes: usize::try_from(limits.max_msg_bytes).unwrap_or(usize::MAX),
            export: Vec::new(),
        }
    }

    /// The subscription index (read-only).
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subs
    }

    /// The protected-topic and capability tables.
    pub fn policy(&self) -> &TopicPolicy {
        &self.policy
    }

    /// Replace the protected-topic table from the content of `$VOLTTRON_HOME/protected_topics.json`
    /// (same format as a `protected_update` body, VIP.md §7.8). An empty file should be passed
    /// as `{}`. On error the old table stays and the error is logged.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn set_protected_topics_json(&mut self, content: &[u8]) -> Result<(), PolicyError> {
        self.policy.set_protected_topics_json(content)
    }

    /// Replace the user-capability table from a body shaped like `auth_update`'s:
    /// `{"capabilities": {USER: {CAP: ARG_OR_NULL, ...}, ...}}` (a list of names is accepted in
    /// place of the object). USER is compared with the publisher's identity. On error the old
    /// table stays and the error is logged.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn set_user_capabilities_json(&mut self, body: &[u8]) -> Result<(), PolicyError> {
        self.policy.set_user_capabilities_json(body)
    }

    /// Publish topics under these prefixes to the RabbitMQ bridge (`rabbitmq-export`).
    pub fn set_export(&mut self, export: Vec<Vec<u8>>) {
        self.export = export;
    }

    /// The `rabbitmq-export` prefixes.
    pub fn export(&self) -> &[Vec<u8>] {
        &self.export
    }

    /// Is `topic` exported to the RabbitMQ bridge?
    #[inline]
    fn exported(&self, topic: &[u8]) -> bool {
        !self.export.is_empty() && self.export.iter().any(|p| topic.starts_with(p))
    }

    /// May an external publish with USER_ID `user` go to `topic`? Stricter than a local publish
    /// ([`TopicPolicy::check_external`]).
    pub fn external_allowed(&mut self, user: &[u8], topic: &[u8]) -> bool {
        self.policy.check_external(user, topic)
    }

    /// Replace the user-capability table with one the caller built (the router's own
    /// `auth.json` entries, [`super::protected::UserCapabilities::from_entries`]).
    pub fn set_user_capabilities(&mut self, users: UserCapabilities) {
        self.policy.set_user_capabilities(users);
    }

    /// Check topics against modular VOLTTRON's `authz.json` (module doc) instead of the 9.x
    /// tables; `None` goes back to the 9.x tables.
    pub fn set_authz(&mut self, authz: Option<Authz>) {
        self.authz = authz;
    }

    /// The modular policy in force, if any.
    pub fn authz(&self) -> Option<&Authz> {
        self.authz.as_ref()
    }

    /// Writes modular's refusal text `Peer: <who> not authorized to <access> to <topic>` into
    /// `self.text`, counts it (`counter`) and logs it (rate-limited).
    fn unauthorized(&mut self, counter: &mut u64, who: &[u8], access: Access, topic: &[u8]) {
        self.text.clear();
        self.text.extend_from_slice(b"Peer: ");
        self.text.extend_from_slice(who);
        self.text.extend_from_slice(b" not authorized to ");
        self.text.extend_from_slice(access.word().as_bytes());
        self.text.extend_from_slice(b" to ");
        self.text.extend_from_slice(topic);
        if stats::bump_and_should_log(counter) {
            log::warn!("pubsub: {} (authz.json)", self.text.escape_ascii());
        }
    }

    /// The -32001 error of a refused subscribe or publish (module doc), `self.text` as message.
    fn unauthorized_reply(
        &self,
        stats: &mut Stats,
        sink: &mut impl Sink,
        to: PeerId,
        msg_id: &[u8],
        error_msg_id: ErrorMsgId,
    ) -> Outcome {
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let id = error_msg_id.msg_id(msg_id, &mut quoted);
        let frames: [&[u8]; 9] = [b"", SIGNATURE, b"", id, b"error", b"-32001", &self.text, b"", b"pubsub"];
        Router::reply(stats, sink, to, &frames)
    }

    /// Deliveries dropped for `peer` because its queue was full (since it connected).
    pub fn slow_drops(&self, peer: PeerId) -> u64 {
        self.slow.get(peer.index()).map_or(0, |s| s.dropped)
    }

    /// `peer` left the peer set (agentstop, or before a detach): its subscriptions go (§7.12).
    pub fn remove_peer(&mut self, peer: PeerId) {
        let n = self.subs.remove_peer(peer.0);
        if n > 0 {
            log::debug!("removed {n} subscriptions of peer {}", peer.0);
        }
    }

    /// `peer`'s connection closed: its subscriptions and slow-subscriber counts go.
    pub fn peer_detached(&mut self, peer: PeerId) {
        self.remove_peer(peer);
        if let Some(s) = self.slow.get_mut(peer.index()) {
            *s = SlowPeer::default();
        }
    }

    /// Handle one `pubsub` request from `from` (VIP.md §7); a -32001 refusal writes MSG_ID as
    /// `error_msg_id` says (`super::error`).
    #[allow(clippy::too_many_arguments)]
    pub fn handle(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        peers: &PeerTable,
        links: &mut Links,
        stats: &mut Stats,
        sink: &mut impl Sink,
        error_msg_id: ErrorMsgId,
    ) -> Outcome {
        if !peers.is_attached(from) {
            return Outcome::Done;
        }
        let requester = peers.identity(from);
        let Some(op) = env.get_arg(0) else {
            malformed(stats, requester, "request", "no operation frame");
            return Outcome::Done;
        };
        match op {
            b"subscribe" => match self.subscribe(from, env, requester, stats) {
                Subscribed::Unauthorized => {
                    // Nothing was stored: pausing (and retrying the whole subscribe) is safe.
                    if let Outcome::Blocked(p) = self.unauthorized_reply(stats, sink, from, env.msg_id, error_msg_id) {
                        return Outcome::Blocked(p);
                    }
                    let frames: [&[u8]; 7] =
                        [b"", SIGNATURE, requester, env.msg_id, b"pubsub", b"request_response", &[0]];
                    if sink.deliver(from, &frames).is_err() && stats::bump_and_should_log(&mut stats.dropped_reply_full)
                    {
                        log::warn!("subscribe reply to {} dropped: its queue is full", requester.escape_ascii());
                    }
                    Outcome::Done
                }
                s => {
                    Self::request_response(stats, sink, from, requester, env.msg_id, &[u8::from(s == Subscribed::Yes)])
                }
            },
            b"unsubscribe" => {
                let ok = self.unsubscribe(from, env, requester, stats);
                Self::request_response(stats, sink, from, requester, env.msg_id, if ok { &[1] } else { &[0] })
            }
            b"synchronize" => {
                self.synchronize(from, env, requester, stats);
                Outcome::Done
            }
            b"publish" => self.publish(from, env, peers, links, stats, sink, error_msg_id),
            b"list" => self.list(from, env, requester, stats, sink),
            b"auth_update" | b"protected_update" => {
                self.policy_update(op, env, requester, stats);
                Outcome::Done
            }
            b"error" | b"request_response" => Outcome::Done,
            _ => {
                if stats::bump_and_should_log(&mut stats.pubsub_unknown_op) {
                    log::info!(
                        "unknown pubsub operation {:?} from {} ignored",
                        op.escape_ascii().to_string(),
                        requester.escape_ascii()
                    );
                }
                Outcome::Done
            }
        }
    }

    /// `[S, '', 'VIP1', S, M, 'pubsub', 'request_response', RESULT]`, pausing S if its queue is
    /// full.
    fn request_response(
        stats: &mut Stats,
        sink: &mut impl Sink,
        to: PeerId,
        requester: &[u8],
        msg_id: &[u8],
        result: &[u8],
    ) -> Outcome {
        let frames: [&[u8]; 7] = [b"", SIGNATURE, requester, msg_id, b"pubsub", b"request_response", result];
        Router::reply(stats, sink, to, &frames)
    }

    /// VIP.md §7.8, honoured only from [`AUTH_IDENTITY`].
    fn policy_update(&mut self, op: &[u8], env: &Envelope<'_>, requester: &[u8], stats: &mut Stats) {
        let name = if op == b"auth_update" { "auth_update" } else { "protected_update" };
        if requester != AUTH_IDENTITY {
            if stats::bump_and_should_log(&mut stats.rejected_policy_update) {
                log::warn!("pubsub {name} from {} ignored: accepted only from platform.auth", requester.escape_ascii());
            }
            return;
        }
        let Some(body) = env.get_arg(1) else {
            malformed(stats, requester, name, "no JSON frame");
            return;
        };
        let r = if op == b"auth_update" {
            self.policy.set_user_capabilities_json(body)
        } else {
            self.policy.set_protected_topics_json(body)
        };
        if r.is_err() {
            stats.rejected_policy_update += 1;
        }
    }

    /// Write `, "subscriptions": N, "slow_subscribers": {"<identity>": n, ...}` — the pubsub
    /// members of the `query stats` object ([`Router::write_stats_json`]) — leaving `reserve`
    /// bytes free for what the caller writes after them. Only peers with drops are listed, at
    /// most [`MAX_SLOW_SUBSCRIBERS_SHOWN`] and only as many as fit;
    /// `"slow_subscribers_omitted": k` counts the rest.
    ///
    /// # Errors
    /// [`SinkFull`] when even the fixed part does not fit (the caller drops what was written).
    pub fn write_stats_fields(
        &self,
        peers: &PeerTable,
        w: &mut SliceWriter<'_>,
        reserve: usize,
    ) -> Result<(), SinkFull> {
        const TAIL_RESERVE: usize = 64; // `}, "slow_subscribers_omitted": <u64>`
        let room = w.remaining().saturating_sub(reserve);
        let start = w.len();
        w.put(b", \"subscriptions\": ")?;
        emit_u64(w, self.subs.len() as u64)?;
        w.put(b", \"slow_subscribers\": {")?;
        let (mut shown, mut omitted) = (0usize, 0u64);
        for (i, s) in self.slow.iter().enumerate() {
            let peer = PeerId(u16::try_from(i).unwrap_or(u16::MAX));
            if s.dropped == 0 || !peers.is_attached(peer) {
                continue;
            }
            let id = peers.identity(peer);
            let mut need = LenCounter::new();
            let _ = json::emit::emit_latin1_str(&mut need, id);
            let need = need.len() + 26;
            if shown >= MAX_SLOW_SUBSCRIBERS_SHOWN || w.len() - start + need + TAIL_RESERVE > room {
                omitted += 1;
                continue;
            }
            if shown > 0 {
                w.put(b", ")?;
            }
            json::emit::emit_latin1_str(w, id)?;
            w.put(b": ")?;
            emit_u64(w, s.dropped)?;
            shown += 1;
        }
        w.put(b"}")?;
        if omitted > 0 {
            w.put(b", \"slow_subscribers_omitted\": ")?;
            emit_u64(w, omitted)?;
        }
        if w.len() - start > room {
            return Err(SinkFull);
        }
        Ok(())
    }
}
