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
//! | `error`, `request_response`, unknown ops, `external_*` | ignored (logged) | none |
//!
//! Matching (§7.2) is the [`Subscriptions`] index: plain byte prefix, `''` matches all, bus
//! compared exactly, one copy per subscriber; `internal` and `all_platforms` subscriptions both
//! count (the union, §16.2 C, instead of Python's masking). Each delivery is
//! `[X, '', 'VIP1', U, M, 'pubsub', 'publish', TOPIC, BODY]` with SENDER `''`, the publisher's
//! **unmodified** USER_ID and MSG_ID, and BODY rebuilt as
//! `{"sender": S, "bus": B, "headers": H, "message": MSG}` (ASCII-only Python-style JSON, NaN and
//! Infinity kept, extra keys and extra frames dropped). The count is the number of *matching*
//! subscribers, not of successful sends (§7.6).
//!
//! Malformed input never crashes the service (§16.2 B): it is counted (`pubsub_malformed`), logged
//! rate-limited ([`stats::bump`]), and answered like the closest non-crashing path: `00` for
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
//! publisher's log fill with errors about a peer it never addressed. The count still includes the
//! slow subscriber, as in VOLTTRON.
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
//! [`PubSub::set_user_capabilities_json`]. See [`super::protected`].
//!
//! # Cost
//!
//! `publish` allocates nothing in steady state: the delivery body is emitted once per publish
//! into a scratch `Vec` owned by the service (it grows during warm-up to the largest body seen;
//! above [`SCRATCH_KEEP_BYTES`] it is given back after use), the frames are a stack array, and
//! the fan-out walks the index without allocating. The whole delivery is ZMTP-encoded once, into
//! a second scratch `Vec` kept the same way, and copied as one block to every subscriber whose
//! connection sends frames verbatim (NULL/PLAIN; [`Sink::deliver_shared`]); CURVE subscribers
//! get it sealed under their own key. The body is emitted before matching, so a
//! publish nobody listens to still pays for one emit (unless no subscription exists at all).

use super::SIGNATURE;
use super::envelope::Envelope;
use super::peers::{PeerId, PeerTable};
use super::protected::{PolicyError, TopicPolicy};
use super::router::{Full, Outcome, Router, Shared, Sink};
use super::subscriptions::{
    MAX_SUPPORTED_SUBSCRIPTIONS, SubscribeError, SubscriptionLimits, Subscriptions,
};
use crate::json::{
    self, ByteSink, DeliveryBody, JsonStr, Kind, LenCounter, SinkFull, SliceWriter, Value,
};
use crate::limits::{Limits, MAX_BUS_BYTES, MAX_PREFIX_BYTES, MAX_SUBS_PER_PEER};
use crate::stats::{self, Stats};


/// The delivery-body scratch buffer is kept up to this capacity between publishes; a larger one
/// (a huge message) is released after use.
pub const SCRATCH_KEEP_BYTES: usize = 1 << 20;

/// Largest `list_response` in bytes; rows past it are left out (and logged).
pub const MAX_LIST_REPLY_BYTES: usize = 8 << 20;

/// At most this many peers are listed in `query stats` `"slow_subscribers"`.
pub const MAX_SLOW_SUBSCRIBERS_SHOWN: usize = 32;

/// The only identity whose `auth_update`/`protected_update` are honoured (VIP.md §7.8).
pub const AUTH_IDENTITY: &[u8] = b"platform.auth";

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
    /// Delivery body of the publish being handled.
    body: Vec<u8>,
    /// Wire encoding of the delivery, shared by the subscribers that take it verbatim.
    wire: Vec<u8>,
    /// `list_response` and error texts.
    text: Vec<u8>,
    slow: Box<[SlowPeer]>,
    max_body_bytes: usize,
}

impl core::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PubSub")
            .field("subs", &self.subs)
            .finish_non_exhaustive()
    }
}

/// A [`ByteSink`] appending to a `Vec` up to a size limit.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    max: usize,
}

impl ByteSink for Capped<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        if self.out.len().saturating_add(bytes.len()) > self.max {
            return Err(SinkFull);
        }
        self.out.extend_from_slice(bytes);
        Ok(())
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

/// `prefix` as given to subscribe/unsubscribe: one string or a list of strings.
fn prefix_list(v: Value<'_>) -> Option<impl Iterator<Item = JsonStr<'_>> + Clone> {
    let one = (v.kind() == Kind::String).then(|| v.as_str()).flatten();
    let many = v.kind() == Kind::Array;
    if !(one.is_some() || many && v.items().all(|i| i.kind() == Kind::String)) {
        return None;
    }
    Some(one.into_iter().chain(v.items().filter_map(|i| i.as_str())))
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

/// Calls `add(bus, prefix, all_platforms)` for every item of a validated `synchronize`
/// `{PLATFORM: {BUS: [prefix, ...]}}` and returns the first error. Strings with a character above
/// U+00FF are skipped (they can never match a frame); over-long ones are refused.
fn sync_items(
    platforms: Value<'_>,
    mut add: impl FnMut(&[u8], &[u8], bool) -> Result<(), SubscribeError>,
) -> Option<SubscribeError> {
    let mut first_error = None;
    for (k, buses) in platforms.members() {
        let Some(all) = platform(k) else { continue };
        for (bus, prefixes) in buses.members() {
            let mut bus_buf = [0u8; MAX_BUS_BYTES];
            let bus = match bus.to_latin1(&mut bus_buf) {
                Ok(b) => b,
                Err(json::Latin1Error::NotLatin1) => continue,
                Err(json::Latin1Error::TooLong) => {
                    first_error.get_or_insert(SubscribeError::BusTooLong);
                    continue;
                }
            };
            for p in prefixes.items().filter_map(|p| p.as_str()) {
                let mut buf = [0u8; MAX_PREFIX_BYTES];
                let r = match p.to_latin1(&mut buf) {
                    Ok(p) => add(bus, p, all),
                    Err(json::Latin1Error::NotLatin1) => Ok(()),
                    Err(json::Latin1Error::TooLong) => Err(SubscribeError::PrefixTooLong),
                };
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    first_error
}

/// Does `bytes` (latin-1) start with the decoded string `p`?
fn bytes_start_with(bytes: &[u8], p: JsonStr<'_>) -> bool {
    let mut it = bytes.iter();
    p.chars()
        .all(|c| it.next().is_some_and(|&b| u32::from(b) == c))
}

/// Does the decoded string `p` start with `bytes` (latin-1)?
fn str_starts_with(p: JsonStr<'_>, bytes: &[u8]) -> bool {
    let mut chars = p.chars();
    bytes.iter().all(|&b| chars.next() == Some(u32::from(b)))
}

/// Byte equality without handing memcmp an empty (possibly dangling) slice.
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

fn put_u64(out: &mut impl ByteSink, mut n: u64) -> Result<(), SinkFull> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.put(digits.get(i..).unwrap_or_default())
}

/// Log a malformed request (rate-limited) and count it.
fn malformed(stats: &mut Stats, who: &[u8], op: &str, why: &str) {
    if stats::bump(&mut stats.pubsub_malformed) {
        log::info!(
            "pubsub {op} from {}: {why} (answered with the non-crashing reply)",
            who.escape_ascii()
        );
    }
}

/// Count and log a subscribe refused by a limit.
fn refused(stats: &mut Stats, who: &[u8], op: &str, e: SubscribeError) {
    let counter = match e {
        SubscribeError::PeerLimit => &mut stats.rejected_subscription_peer_limit,
        _ => &mut stats.rejected_subscription_full,
    };
    if stats::bump(counter) {
        log::warn!("pubsub {op} from {} refused: {e}", who.escape_ascii());
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
                let none = SubscriptionLimits {
                    max_subscriptions: 0,
                    max_per_peer: 0,
                    max_peers: 0,
                    ..wanted
                };
                // Infallible: every check passes for zero sizes.
                #[allow(clippy::expect_used)]
                Subscriptions::new(none).expect("an empty subscription index")
            }
        };
        PubSub {
            subs,
            policy: TopicPolicy::default(),
            body: Vec::new(),
            wire: Vec::new(),
            text: Vec::new(),
            slow: vec![SlowPeer::default(); wanted.max_peers].into_boxed_slice(),
            max_body_bytes: usize::try_from(limits.max_msg_bytes).unwrap_or(usize::MAX),
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

    /// Handle one `pubsub` request from `from` (VIP.md §7).
    pub fn handle(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        peers: &PeerTable,
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> Outcome {
        if !peers.is_attached(from) {
            return Outcome::Done;
        }
        let who = peers.identity(from);
        let Some(op) = env.get_arg(0) else {
            malformed(stats, who, "request", "no operation frame");
            return Outcome::Done;
        };
        match op {
            b"subscribe" => {
                let ok = self.subscribe(from, env, who, stats);
                Self::request_response(
                    stats,
                    sink,
                    from,
                    who,
                    env.msg_id,
                    if ok { &[1] } else { &[0] },
                )
            }
            b"unsubscribe" => {
                let ok = self.unsubscribe(from, env, who, stats);
                Self::request_response(
                    stats,
                    sink,
                    from,
                    who,
                    env.msg_id,
                    if ok { &[1] } else { &[0] },
                )
            }
            b"synchronize" => {
                self.synchronize(from, env, who, stats);
                Outcome::Done
            }
            b"publish" => self.publish(from, env, peers, stats, sink),
            b"list" => self.list(from, env, who, stats, sink),
            b"auth_update" | b"protected_update" => {
                self.policy_update(op, env, who, stats);
                Outcome::Done
            }
            b"error" | b"request_response" => Outcome::Done,
            b"external_list" | b"external_publish" => {
                if stats::bump(&mut stats.pubsub_unknown_op) {
                    log::info!(
                        "pubsub {} from {} ignored: multi-platform pubsub is not implemented",
                        op.escape_ascii(),
                        who.escape_ascii()
                    );
                }
                Outcome::Done
            }
            _ => {
                if stats::bump(&mut stats.pubsub_unknown_op) {
                    log::info!(
                        "unknown pubsub operation {:?} from {} ignored",
                        op.escape_ascii().to_string(),
                        who.escape_ascii()
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
        who: &[u8],
        msg_id: &[u8],
        result: &[u8],
    ) -> Outcome {
        let frames: [&[u8]; 7] = [
            b"",
            SIGNATURE,
            who,
            msg_id,
            b"pubsub",
            b"request_response",
            result,
        ];
        Router::reply(stats, sink, to, &frames)
    }

    /// VIP.md §7.3. True = `01`.
    fn subscribe(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        who: &[u8],
        stats: &mut Stats,
    ) -> bool {
        const OP: &str = "subscribe";
        let Some(body) = env.get_arg(1) else {
            malformed(stats, who, OP, "no JSON frame");
            return false;
        };
        let v = match json::parse(body) {
            Ok(v) if v.kind() == Kind::Object => v,
            Ok(_) => {
                malformed(stats, who, OP, "body is not a JSON object");
                return false;
            }
            Err(_) => {
                malformed(stats, who, OP, "body is not JSON");
                return false;
            }
        };
        let (Some(prefix), Some(bus)) = (v.get(b"prefix"), v.get(b"bus")) else {
            malformed(stats, who, OP, "missing \"prefix\" or \"bus\"");
            return false;
        };
        let all = v.get(b"all_platforms").is_some_and(truthy);
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus = match bus.as_str().map(|s| s.to_latin1(&mut bus_buf)) {
            Some(Ok(b)) => b,
            Some(Err(json::Latin1Error::TooLong)) => {
                refused(stats, who, OP, SubscribeError::BusTooLong);
                return false;
            }
            _ => {
                malformed(stats, who, OP, "\"bus\" is not a latin-1 string");
                return false;
            }
        };
        let Some(prefixes) = prefix_list(prefix) else {
            malformed(
                stats,
                who,
                OP,
                "\"prefix\" is not a string or a list of strings",
            );
            return false;
        };
        if prefixes.clone().count() > MAX_SUBS_PER_PEER {
            refused(stats, who, OP, SubscribeError::PeerLimit);
            return false;
        }
        // All or nothing: remember which entries are new, to take them back on a refusal.
        let mut added = [0u64; MAX_SUBS_PER_PEER.div_ceil(64)];
        let mut failure = None;
        for (i, p) in prefixes.clone().enumerate() {
            let mut buf = [0u8; MAX_PREFIX_BYTES];
            let r = match p.to_latin1(&mut buf) {
                Ok(p) => self.subs.subscribe(from.0, bus, p, all),
                // A character above U+00FF can never prefix a frame: nothing to store (§3.8).
                Err(json::Latin1Error::NotLatin1) => Ok(false),
                Err(json::Latin1Error::TooLong) => Err(SubscribeError::PrefixTooLong),
            };
            match r {
                Ok(true) => {
                    if let Some(w) = added.get_mut(i / 64) {
                        *w |= 1 << (i % 64);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        let Some((failed_at, e)) = failure else {
            return true;
        };
        for (i, p) in prefixes.enumerate().take(failed_at) {
            if added.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0) {
                let mut buf = [0u8; MAX_PREFIX_BYTES];
                if let Ok(p) = p.to_latin1(&mut buf) {
                    self.subs.unsubscribe(from.0, bus, p, all);
                }
            }
        }
        refused(stats, who, OP, e);
        false
    }

    /// VIP.md §7.4. True = `01`. Everything is checked before anything is removed.
    fn unsubscribe(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        who: &[u8],
        stats: &mut Stats,
    ) -> bool {
        const OP: &str = "unsubscribe";
        let Some(body) = env.get_arg(1) else {
            malformed(stats, who, OP, "no JSON frame");
            return false;
        };
        let v = match json::parse(body) {
            Ok(v) if v.kind() == Kind::Object => v,
            _ => {
                malformed(stats, who, OP, "body is not a JSON object");
                return false;
            }
        };
        let (internal, all) = (v.get(b"internal"), v.get(b"all"));
        let entries: [Option<(Value<'_>, bool)>; 2] = if internal.is_some() || all.is_some() {
            [internal.map(|e| (e, false)), all.map(|e| (e, true))]
        } else {
            [Some((v, false)), None] // legacy {"prefix": P, "bus": B}
        };
        let valid = |e: Value<'_>| -> bool {
            let (Some(prefix), Some(bus)) = (e.get(b"prefix"), e.get(b"bus")) else {
                return false;
            };
            bus.as_str().is_some_and(|b| b.latin1_len().is_some())
                && (prefix.is_null() || prefix_list(prefix).is_some())
        };
        if !entries
            .iter()
            .flatten()
            .all(|&(e, _)| e.kind() == Kind::Object && valid(e))
        {
            malformed(
                stats,
                who,
                OP,
                "an entry lacks \"prefix\"/\"bus\" or has unusable types",
            );
            return false;
        }
        for &(e, all) in entries.iter().flatten() {
            let mut bus_buf = [0u8; MAX_BUS_BYTES];
            let (Some(prefix), Some(Ok(bus))) = (
                e.get(b"prefix"),
                e.get(b"bus")
                    .and_then(|b| b.as_str())
                    .map(|b| b.to_latin1(&mut bus_buf)),
            ) else {
                continue; // a bus too long to be stored holds nothing
            };
            if prefix.is_null() {
                self.subs.unsubscribe_bus(from.0, bus, all);
                continue;
            }
            for p in prefix_list(prefix).into_iter().flatten() {
                let mut buf = [0u8; MAX_PREFIX_BYTES];
                if let Ok(p) = p.to_latin1(&mut buf) {
                    self.subs.unsubscribe(from.0, bus, p, all);
                }
            }
        }
        true
    }

    /// VIP.md §7.5: replace the peer's whole set; no reply.
    fn synchronize(&mut self, from: PeerId, env: &Envelope<'_>, who: &[u8], stats: &mut Stats) {
        const OP: &str = "synchronize";
        if env.arg(1) != b"connected" {
            return;
        }
        let Some(body) = env.get_arg(2) else {
            malformed(stats, who, OP, "no JSON frame");
            return;
        };
        let Ok(v) = json::parse(body) else {
            malformed(stats, who, OP, "body is not JSON");
            return;
        };
        let Some(platforms) = v.get(b"subscriptions") else {
            malformed(stats, who, OP, "no \"subscriptions\" key");
            return;
        };
        let valid = platforms.kind() == Kind::Object
            && platforms
                .members()
                .filter(|&(k, _)| platform(k).is_some())
                .all(|(_, buses)| {
                    buses.kind() == Kind::Object
                        && buses.members().all(|(_, p)| {
                            p.kind() == Kind::Array && p.items().all(|i| i.kind() == Kind::String)
                        })
                });
        if !valid {
            malformed(
                stats,
                who,
                OP,
                "\"subscriptions\" is not {PLATFORM: {BUS: [prefix, ...]}}",
            );
            return;
        }
        let mut txn = match self.subs.begin_replace(from.0) {
            Ok(t) => t,
            Err(e) => {
                refused(stats, who, OP, e);
                return;
            }
        };
        let mut first_error = sync_items(platforms, |bus, p, all| txn.add(bus, p, all).map(|_| ()));
        txn.commit();
        if first_error.is_some() {
            // The replaced entries held slots until the commit; what did not fit then may fit now
            // (subscribe is idempotent for the entries already in).
            first_error = sync_items(platforms, |bus, p, all| {
                self.subs.subscribe(from.0, bus, p, all).map(|_| ())
            });
        }
        if let Some(e) = first_error {
            refused(stats, who, OP, e);
        }
    }

    /// VIP.md §7.6.
    fn publish(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        peers: &PeerTable,
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> Outcome {
        const OP: &str = "publish";
        let who = peers.identity(from);
        if env.arg_count() < 3 {
            malformed(stats, who, OP, "fewer than 2 arguments (no reply)");
            return Outcome::Done;
        }
        stats.pubsub_publishes += 1;
        let (topic, body) = (env.arg(1), env.arg(2));
        let delivery = match json::parse(body) {
            Ok(v) if v.kind() == Kind::Object => DeliveryBody::from_publish(who, v),
            _ => None,
        };
        let Some(delivery) = delivery else {
            malformed(
                stats,
                who,
                OP,
                "body is not an object with \"bus\", \"headers\" and \"message\"",
            );
            return Self::request_response(stats, sink, from, who, env.msg_id, &0u32.to_le_bytes());
        };
        if let Some(refusal) = self.policy.check(who, topic) {
            if stats::bump(&mut stats.rejected_protected_topic) {
                log::warn!(
                    "publish to protected topic {:?} by {} refused",
                    topic.escape_ascii().to_string(),
                    who.escape_ascii()
                );
            }
            self.text.clear();
            refusal.write_text(topic, &mut self.text);
            let frames: [&[u8]; 9] = [
                b"", SIGNATURE, who, env.msg_id, b"error", b"-32001", &self.text, b"", b"pubsub",
            ];
            // Nothing has been sent yet: pausing (and retrying the whole publish) is safe.
            if let Outcome::Blocked(p) = Router::reply(stats, sink, from, &frames) {
                return Outcome::Blocked(p);
            }
            Self::count_reply(stats, sink, from, who, env.msg_id, 0);
            return Outcome::Done;
        }
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus = delivery
            .bus
            .as_str()
            .and_then(|s| s.to_latin1(&mut bus_buf).ok());
        let count = match bus {
            Some(bus) if !self.subs.is_empty() => {
                let PubSub {
                    subs,
                    body,
                    wire,
                    slow,
                    max_body_bytes,
                    ..
                } = self;
                body.clear();
                if delivery
                    .emit(&mut Capped {
                        out: body,
                        max: *max_body_bytes,
                    })
                    .is_err()
                {
                    if stats::bump(&mut stats.rejected_publish_too_large) {
                        log::warn!(
                            "publish from {} to {:?} dropped: delivery body over {max_body_bytes} bytes",
                            who.escape_ascii(),
                            topic.escape_ascii().to_string()
                        );
                    }
                    body.clear();
                    return Self::request_response(
                        stats,
                        sink,
                        from,
                        who,
                        env.msg_id,
                        &0u32.to_le_bytes(),
                    );
                }
                let frames: [&[u8]; 8] = [
                    b"",
                    SIGNATURE,
                    env.user_id,
                    env.msg_id,
                    b"pubsub",
                    b"publish",
                    topic,
                    body.as_slice(),
                ];
                let mut shared = Shared::new(&frames, wire);
                let mut delivered = 0u64;
                let count = subs.for_each_subscriber(bus, topic, |p| {
                    let state = slow.get_mut(usize::from(p));
                    match sink.deliver_shared(PeerId(p), &mut shared) {
                        Ok(()) => {
                            delivered += 1;
                            if let Some(s) = state {
                                s.dropping = false;
                            }
                        }
                        Err(Full) => {
                            stats.dropped_slow_subscriber += 1;
                            if let Some(s) = state {
                                s.dropped += 1;
                                if !s.dropping {
                                    s.dropping = true;
                                    if stats::bump(&mut s.stalls) {
                                        log::warn!(
                                            "slow subscriber {}: queue full, dropping its pubsub deliveries \
                                             (stall {}, {} dropped so far; publishers unaffected)",
                                            peers.identity(PeerId(p)).escape_ascii(),
                                            s.stalls,
                                            s.dropped
                                        );
                                    }
                                }
                            }
                        }
                    }
                });
                stats.pubsub_deliveries += delivered;
                if body.capacity() > SCRATCH_KEEP_BYTES {
                    *body = Vec::new();
                }
                if wire.capacity() > SCRATCH_KEEP_BYTES {
                    *wire = Vec::new();
                }
                count
            }
            _ => 0,
        };
        // Deliveries (if any) are out: never pause and retry from here (it would duplicate them).
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        Self::count_reply(stats, sink, from, who, env.msg_id, count);
        Outcome::Done
    }

    /// The publish count to the publisher, dropped (and counted) if its queue is full.
    fn count_reply(
        stats: &mut Stats,
        sink: &mut impl Sink,
        to: PeerId,
        who: &[u8],
        msg_id: &[u8],
        count: u32,
    ) {
        let c = count.to_le_bytes();
        let frames: [&[u8]; 7] = [
            b"",
            SIGNATURE,
            who,
            msg_id,
            b"pubsub",
            b"request_response",
            &c,
        ];
        if sink.deliver(to, &frames).is_err() && stats::bump(&mut stats.dropped_reply_full) {
            log::warn!(
                "publish count to {} dropped: its queue is full",
                who.escape_ascii()
            );
        }
    }

    /// VIP.md §7.7.
    fn list(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        who: &[u8],
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> Outcome {
        self.text.clear();
        self.text.push(b'[');
        self.list_rows(from, env, who, stats);
        self.text.push(b']');
        let frames: [&[u8]; 7] = [
            b"",
            SIGNATURE,
            who,
            env.msg_id,
            b"pubsub",
            b"list_response",
            &self.text,
        ];
        let outcome = Router::reply(stats, sink, from, &frames);
        if self.text.capacity() > SCRATCH_KEEP_BYTES {
            self.text = Vec::new();
        }
        outcome
    }

    fn list_rows(&mut self, from: PeerId, env: &Envelope<'_>, who: &[u8], stats: &mut Stats) {
        const OP: &str = "list";
        let Some(body) = env.get_arg(1) else { return };
        let v = match json::parse(body) {
            Ok(v) if v.kind() == Kind::Object => v,
            _ => {
                malformed(stats, who, OP, "body is not a JSON object");
                return;
            }
        };
        let (Some(prefix), Some(bus), Some(subscribed), Some(reverse)) = (
            v.get(b"prefix"),
            v.get(b"bus"),
            v.get(b"subscribed"),
            v.get(b"reverse"),
        ) else {
            malformed(
                stats,
                who,
                OP,
                "missing \"prefix\", \"bus\", \"subscribed\" or \"reverse\"",
            );
            return;
        };
        let Some(prefix) = prefix.as_str() else {
            malformed(stats, who, OP, "\"prefix\" is not a string");
            return;
        };
        let all = v.get(b"all_platforms").is_some_and(truthy);
        let (subscribed, reverse) = (truthy(subscribed), truthy(reverse));
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus: Option<&[u8]> = match bus.kind() {
            Kind::Null => None,
            Kind::String => match bus.as_str().map(|b| b.to_latin1(&mut bus_buf)) {
                Some(Ok(b)) => Some(b),
                _ => return, // no stored bus can equal it
            },
            _ => return, // Python looks up a bus that cannot exist: no rows
        };
        let PubSub { subs, text, .. } = self;
        let mut first = true;
        let mut truncated = false;
        subs.for_each_prefix(all, Some(from.0), |b, p, member| {
            if bus.is_some_and(|want| !bytes_eq(want, b)) || (subscribed && !member) {
                return;
            }
            let hit = if reverse {
                str_starts_with(prefix, p)
            } else {
                bytes_start_with(p, prefix)
            };
            if !hit {
                return;
            }
            if text.len() > MAX_LIST_REPLY_BYTES {
                truncated = true;
                return;
            }
            if !first {
                text.extend_from_slice(b", ");
            }
            first = false;
            text.push(b'[');
            let _ = json::emit::emit_latin1_str(text, b);
            text.extend_from_slice(b", ");
            let _ = json::emit::emit_latin1_str(text, p);
            text.extend_from_slice(if member { b", true]" } else { b", false]" });
        });
        if truncated {
            log::warn!(
                "pubsub list for {}: reply truncated at {MAX_LIST_REPLY_BYTES} bytes",
                who.escape_ascii()
            );
        }
    }

    /// VIP.md §7.8, honoured only from [`AUTH_IDENTITY`].
    fn policy_update(&mut self, op: &[u8], env: &Envelope<'_>, who: &[u8], stats: &mut Stats) {
        let name = if op == b"auth_update" {
            "auth_update"
        } else {
            "protected_update"
        };
        if who != AUTH_IDENTITY {
            if stats::bump(&mut stats.rejected_policy_update) {
                log::warn!(
                    "pubsub {name} from {} ignored: accepted only from platform.auth",
                    who.escape_ascii()
                );
            }
            return;
        }
        let Some(body) = env.get_arg(1) else {
            malformed(stats, who, name, "no JSON frame");
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

    /// Insert `, "subscriptions": N, "slow_subscribers": {"<identity>": n, ...}` before the final
    /// `}` of the JSON object in `buf[..len]` (the `query stats` reply) and return the new length.
    /// Only peers with drops are listed, at most [`MAX_SLOW_SUBSCRIBERS_SHOWN`] and only as many
    /// as fit; `"slow_subscribers_omitted": k` counts the rest. On any problem `len` is returned
    /// unchanged.
    pub fn append_stats_json(&self, peers: &PeerTable, buf: &mut [u8], len: usize) -> usize {
        const CLOSE_RESERVE: usize = 64; // `}, "slow_subscribers_omitted": <u64>}`
        if len == 0 || buf.get(len - 1) != Some(&b'}') {
            return len;
        }
        let Some(tail) = buf.get_mut(len - 1..) else {
            return len;
        };
        let room = tail.len();
        let mut w = SliceWriter::new(tail);
        let written = (|| -> Result<(), SinkFull> {
            w.put(b", \"subscriptions\": ")?;
            put_u64(&mut w, self.subs.len() as u64)?;
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
                if shown >= MAX_SLOW_SUBSCRIBERS_SHOWN || w.len() + need + CLOSE_RESERVE > room {
                    omitted += 1;
                    continue;
                }
                if shown > 0 {
                    w.put(b", ")?;
                }
                json::emit::emit_latin1_str(&mut w, id)?;
                w.put(b": ")?;
                put_u64(&mut w, s.dropped)?;
                shown += 1;
            }
            w.put(b"}")?;
            if omitted > 0 {
                w.put(b", \"slow_subscribers_omitted\": ")?;
                put_u64(&mut w, omitted)?;
            }
            w.put(b"}")
        })();
        match written {
            Ok(()) => len - 1 + w.len(),
            Err(SinkFull) => {
                // Restore the closing brace the writer may have overwritten.
                if let Some(b) = buf.get_mut(len - 1) {
                    *b = b'}';
                }
                len
            }
        }
    }
}
