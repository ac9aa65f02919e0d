//! External pubsub: `external_list` and `external_publish` between platforms (VIP.md §11.5,
//! corrected by `../shared/research/multiplatform.md` §2.4, §3, §4).
//!
//! # Wire (both directions, byte-compatible with VOLTTRON 9.0.4 and modular VOLTTRON)
//!
//! * Our subscription list, on a link (DEALER view):
//!   `['', 'VIP1', '', '', 'pubsub', 'external_list', '{"<our name>": ["p1", "p2", …]}']` —
//!   every prefix of every bus held with `all_platforms` (the bus is not carried, as in
//!   VOLTTRON), Python's JSON formatting. Sent on every link-up and whenever the set of
//!   `all_platforms` prefixes changes (only when it changed: VOLTTRON also sends it on every
//!   agent start/stop, multiplatform.md §2.7 item 6).
//! * A remote's list arrives on our socket from the remote's link X:
//!   `[X, '', 'VIP1', U, M, 'pubsub', 'external_list', BODY]`. BODY must be a JSON object whose
//!   every value is an array of strings (VOLTTRON's router dies on anything else); each key
//!   other than our own instance name names a platform whose prefixes replace what we held for
//!   it. Reply, as VOLTTRON's (the remote drops it): `request_response` `01` (`00` for a
//!   malformed or truncated list).
//! * A local publish whose topic starts with a prefix of a remote's list goes on the link to
//!   that remote: `['', 'VIP1', U, M, 'pubsub', 'external_publish', TOPIC, DELIVERY_BODY]`
//!   (U and M as the publisher sent them, byte-exact; DELIVERY_BODY the local delivery body).
//! * A remote's publish arrives as `[X, '', 'VIP1', U, M, 'pubsub', 'external_publish', TOPIC,
//!   BODY]` and is delivered to the local subscribers of TOPIC on BODY's bus exactly as a local
//!   publish (`[sub, '', 'VIP1', U, M, 'pubsub', 'publish', TOPIC, BODY']`). BODY must be an
//!   object with `sender` and `bus` strings, `headers` and `message` (what every router sends);
//!   BODY' is it re-emitted in the local delivery form (`{"sender", "bus", "headers",
//!   "message"}`, Python's ASCII JSON — the same bytes when the remote is VOLTTRON), so agents
//!   get exactly what a local publish gives them whatever the remote sent. It is not forwarded
//!   to other platforms (no multi-hop, as VOLTTRON). No reply.
//!
//! # Where viprouter differs from VOLTTRON 9.0.4 (all measured defects, multiplatform.md §2.7)
//!
//! * **Publisher counts are true.** The count a publisher gets is its local subscribers plus
//!   the links the message was actually queued to. A matching remote whose link is down gets
//!   nothing — the publish is neither queued nor counted (`external_publish_dropped_down`); a
//!   link whose queue is full drops it (`external_publish_dropped_full`). VOLTTRON counts the
//!   remote and queues the message in the dead link, to replay it when the remote comes back.
//! * **Remote subscriptions do not outlive the remote's link to us.** A remote's list is held
//!   while the peer that sent it (the remote's link connection to us) is attached; when it
//!   goes, the list goes (its router restarted or the link dropped, and it sends a fresh list
//!   on its next link-up). Publishes are forwarded only while *our* link to that remote is up.
//!   VOLTTRON keeps the lists forever (its VIP.md §7.12 claim is wrong, §4 of the memo).
//! * **Only links may speak for remote platforms.** `external_list` and `external_publish` are
//!   accepted only from peers whose routing id starts with `instance.` (every VOLTTRON and
//!   modular link's does); from anyone else they are ignored and counted
//!   (`rejected_external_not_link`) — in VOLTTRON any local agent could inject publishes with a
//!   forged `sender`.
//! * **Protected topics are enforced on external publishes.** An external publish to a
//!   protected topic is delivered only if its USER_ID names a user holding the required
//!   capabilities (`auth.json`); otherwise it is dropped and counted
//!   (`rejected_external_protected`). VOLTTRON checks the same USER_ID but lets a user without
//!   capability entry through — and platforms send `''` — so protection never applied.
//! * A list naming a platform we have no link to (an `instance-name` mismatch between the two
//!   discovery files, multiplatform.md §1.1) is counted (`external_list_unknown_platform`) and
//!   logged; VOLTTRON loses such traffic silently.
//!
//! # Capacity and cost
//!
//! A remote's prefixes live in its link slot's fixed arena
//! ([`crate::limits::EXT_PREFIX_BYTES_PER_LINK`], [`crate::limits::MAX_EXT_PREFIXES_PER_LINK`]);
//! a longer list keeps what fits (`rejected_external_prefixes`, reply `00`). Matching a publish
//! walks each remote's prefixes once (O(total prefix bytes)); nothing allocates.

use super::SIGNATURE;
use super::envelope::Envelope;
use super::links::{LinkState, Links};
use super::peers::PeerId;
use super::pubsub::DeliveryBody;
use super::router::{Full, Outcome, Router, Sink};
use super::subscriptions::Subscriptions;
use crate::json::emit::emit_latin1_str;
use crate::json::{self, Kind, Latin1Error, Value};
use crate::limits::{MAX_BUS_BYTES, MAX_IDENTITY_BYTES, MAX_PREFIX_BYTES};
use crate::stats::{self, Stats};

/// The routing-id prefix of every platform link (VOLTTRON's `instance.<name>.<random>`).
pub const LINK_IDENTITY_PREFIX: &[u8] = b"instance.";

/// Is `identity` the routing id of a remote platform's link?
pub fn is_link_identity(identity: &[u8]) -> bool {
    identity.starts_with(LINK_IDENTITY_PREFIX)
}

/// Our own `external_list` body, rebuilt when the `all_platforms` prefixes change.
#[derive(Debug, Default)]
pub struct OwnList {
    /// [`Subscriptions::all_generation`] the body was built at (`None`: never built).
    generation: Option<u64>,
    /// The body last built (what every up link has, or is owed).
    body: Vec<u8>,
    /// Scratch for the next build.
    next: Vec<u8>,
}

impl OwnList {
    /// The body last built (`{"<own name>": [...]}`), empty before the first link came up.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// One remote platform's subscription prefixes, in a fixed arena: two vectors whose capacity is
/// reserved once and never exceeded (so nothing reallocates, and pages are touched only as
/// prefixes are stored: an idle router pays no resident memory for them).
#[derive(Debug)]
pub struct ExtSubs {
    bytes: Vec<u8>,
    /// End offset of each prefix in `bytes`.
    ends: Vec<u32>,
    max_bytes: usize,
    max_prefixes: usize,
    from: Option<PeerId>,
}

impl ExtSubs {
    /// An empty list with room for `max_prefixes` prefixes of `max_bytes` in all.
    pub fn new(max_bytes: usize, max_prefixes: usize) -> ExtSubs {
        ExtSubs {
            bytes: Vec::with_capacity(max_bytes),
            ends: Vec::with_capacity(max_prefixes),
            max_bytes,
            max_prefixes,
            from: None,
        }
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The byte capacity reserved (0 before a link was configured in the slot).
    pub fn capacity_bytes(&self) -> usize {
        self.max_bytes
    }

    /// No prefixes held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Forget every prefix (and who sent them).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.from = None;
    }

    /// The peer that sent the list.
    pub fn from(&self) -> Option<PeerId> {
        self.from
    }

    pub(super) fn set_from(&mut self, from: Option<PeerId>) {
        self.from = from;
    }

    /// The prefixes, in list order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = core::iter::once(0u32).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| self.bytes.get(s as usize..e as usize).unwrap_or_default())
    }

    /// Does `topic` start with one of the prefixes (plain byte prefix, as VOLTTRON's
    /// `startswith`)?
    pub fn matches(&self, topic: &[u8]) -> bool {
        self.iter().any(|p| topic.starts_with(p))
    }

    /// Append one prefix; false when it does not fit (nothing grows past the reserved capacity).
    fn push(&mut self, p: &[u8]) -> bool {
        let end = self.bytes.len() + p.len();
        let Ok(end32) = u32::try_from(end) else { return false };
        if end > self.max_bytes || self.ends.len() >= self.max_prefixes {
            return false;
        }
        self.bytes.extend_from_slice(p);
        self.ends.push(end32);
        true
    }

    /// Replace the list by the strings of `items` (a validated array of strings) and return how
    /// many were left out for lack of room. Strings with a character above U+00FF can never
    /// start a topic frame and are skipped; longer than [`MAX_PREFIX_BYTES`] count as left out.
    pub fn replace_from(&mut self, items: Value<'_>) -> usize {
        self.bytes.clear();
        self.ends.clear();
        let mut left_out = 0;
        for s in items.items().filter_map(|i| i.as_str()) {
            let mut buf = [0u8; MAX_PREFIX_BYTES];
            match s.to_latin1(&mut buf) {
                Ok(p) if self.push(p) => {}
                Ok(_) | Err(Latin1Error::TooLong) => left_out += 1,
                Err(Latin1Error::NotLatin1) => {}
            }
        }
        left_out
    }
}

/// `BODY` of an `external_list` if it is a JSON object of arrays of strings.
pub fn parse_list_body(body: &[u8]) -> Option<Value<'_>> {
    let v = json::parse(body).ok().filter(|v| v.kind() == Kind::Object)?;
    let ok = v.members().all(|(_, list)| list.kind() == Kind::Array && list.items().all(|i| i.kind() == Kind::String));
    ok.then_some(v)
}

/// Write our `external_list` body `{"<own>": [prefixes…]}`: every `all_platforms` prefix of
/// every bus, each once per bus (Python's JSON formatting, ASCII).
pub fn write_list_body(out: &mut Vec<u8>, own: &[u8], subs: &Subscriptions) {
    out.clear();
    out.push(b'{');
    let _ = emit_latin1_str(out, own);
    out.extend_from_slice(b": [");
    let mut first = true;
    subs.for_each_prefix(true, None, |_bus, prefix, _| {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        let _ = emit_latin1_str(out, prefix);
    });
    out.extend_from_slice(b"]}");
}

/// Does some remote (on any link, up or down) hold a prefix of `topic`?
pub fn wanted(links: &Links, topic: &[u8]) -> bool {
    links.any_remote_subs() && links.iter().any(|l| links.ext_subs(l.id()).is_some_and(|e| e.matches(topic)))
}

/// Queue `frames` (an `external_publish`) on every up link whose remote holds a prefix of
/// `topic`; count the others as dropped. Returns the number of links it was queued to (the
/// remote part of the publisher's count).
pub fn forward_publish(
    links: &mut Links,
    topic: &[u8],
    frames: &[&[u8]],
    stats: &mut Stats,
    sink: &mut impl Sink,
) -> usize {
    let mut queued = 0;
    for (link, ext) in links.with_ext_mut() {
        if !ext.matches(topic) {
            continue;
        }
        if link.state() != LinkState::Up {
            link.counters.dropped_down += 1;
            if stats::bump_and_should_log(&mut stats.external_publish_dropped_down) {
                log::info!(
                    "external publish to {} dropped: the link is {}",
                    link.name().escape_ascii(),
                    link.state().name()
                );
            }
            continue;
        }
        match sink.deliver_link(link.id(), frames) {
            Ok(()) => {
                link.counters.publishes_out += 1;
                stats.external_publish_out += 1;
                queued += 1;
            }
            Err(Full) => {
                link.counters.dropped_full += 1;
                if stats::bump_and_should_log(&mut stats.external_publish_dropped_full) {
                    log::warn!("external publish to {} dropped: the link's queue is full", link.name().escape_ascii());
                }
            }
        }
    }
    queued
}

impl Router {
    /// Is `from` a remote platform's link? If not, count and log the refused operation.
    pub(super) fn sent_by_link(&self, stats: &mut Stats, from: PeerId, what: &str) -> bool {
        let id = self.peers.identity(from);
        if is_link_identity(id) {
            return true;
        }
        if stats::bump_and_should_log(&mut stats.rejected_external_not_link) {
            log::warn!("{what} from {} ignored: only platform links (instance.*) may send it", id.escape_ascii());
        }
        false
    }

    /// Inbound `pubsub external_list BODY` from a remote's link.
    pub(super) fn external_list_in(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
    ) -> Outcome {
        if !self.sent_by_link(stats, from, "pubsub external_list") {
            return Outcome::Done;
        }
        let Some(v) = parse_list_body(env.arg(1)) else {
            if stats::bump_and_should_log(&mut stats.external_malformed) {
                log::warn!(
                    "external_list from {}: not a JSON object of arrays of strings; ignored",
                    self.peers.identity(from).escape_ascii()
                );
            }
            return self.list_reply(stats, from, env, sink, false);
        };
        let mut complete = true;
        for (name, prefixes) in v.members() {
            let mut buf = [0u8; crate::limits::MAX_INSTANCE_NAME_BYTES];
            let Ok(name) = name.to_latin1(&mut buf) else { continue };
            if name == self.info.instance_name.as_slice() {
                continue;
            }
            match self.links.set_ext_subs(name, from, |ext| ext.replace_from(prefixes)) {
                Some(0) => {
                    log::debug!("external_list from {}: {} prefixes", name.escape_ascii(), prefixes.items().count())
                }
                Some(left_out) => {
                    complete = false;
                    stats.rejected_external_prefixes += left_out as u64 - 1;
                    if stats::bump_and_should_log(&mut stats.rejected_external_prefixes) {
                        log::warn!(
                            "external_list from {}: {left_out} prefixes left out (over the per-link capacity)",
                            name.escape_ascii()
                        );
                    }
                }
                None => {
                    if stats::bump_and_should_log(&mut stats.external_list_unknown_platform) {
                        log::warn!(
                            "external_list for platform {} ignored: no link is configured to it \
                             (does its instance-name match our discovery entry?)",
                            name.escape_ascii()
                        );
                    }
                }
            }
        }
        self.list_reply(stats, from, env, sink, complete)
    }

    /// `[X, '', 'VIP1', X, M, 'pubsub', 'request_response', 01|00]`, as VOLTTRON answers.
    fn list_reply(
        &self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
        ok: bool,
    ) -> Outcome {
        let me = self.peers.identity(from);
        let result: &[u8] = if ok { &[1] } else { &[0] };
        let frames: [&[u8]; 7] = [b"", SIGNATURE, me, env.msg_id, b"pubsub", b"request_response", result];
        Router::reply(stats, sink, from, &frames)
    }

    /// Inbound `pubsub external_publish TOPIC BODY` from a remote's link: protected-topic check,
    /// then local delivery. No reply.
    pub(super) fn external_publish_in(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
    ) -> Outcome {
        if self.sent_by_link(stats, from, "pubsub external_publish") {
            self.remote_publish(stats, Some(from), env, sink);
        }
        Outcome::Done
    }

    /// A remote platform's publish (`external_publish` frames) from the link peer `from`, or
    /// from the RabbitMQ bridge (`None`): protected-topic check, then local delivery.
    pub(crate) fn remote_publish(
        &mut self,
        stats: &mut Stats,
        from: Option<PeerId>,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
    ) {
        let (topic, body) = (env.arg(1), env.arg(2));
        let (mut sender_buf, mut bus_buf) = ([0u8; MAX_IDENTITY_BYTES], [0u8; MAX_BUS_BYTES]);
        let parsed = json::parse(body).ok().filter(|v| v.kind() == Kind::Object);
        let sender = parsed.and_then(|v| v.get(b"sender")).and_then(|s| s.as_str());
        let sender = sender.and_then(|s| s.to_latin1(&mut sender_buf).ok()).filter(|s| s.len() <= MAX_IDENTITY_BYTES);
        let bus = parsed.and_then(|v| v.get(b"bus")).and_then(|b| b.as_str());
        let bus = bus.and_then(|b| b.to_latin1(&mut bus_buf).ok()).filter(|b| b.len() <= MAX_BUS_BYTES);
        let delivery = parsed.zip(sender).and_then(|(v, s)| DeliveryBody::from_publish(s, v));
        let (Some(bus), Some(delivery), Some(_)) = (bus, delivery, env.get_arg(2)) else {
            if stats::bump_and_should_log(&mut stats.external_malformed) {
                log::warn!(
                    "external_publish from {}: no topic, or body not an object with \"sender\" and \"bus\" strings, \
                     \"headers\" and \"message\"; dropped",
                    self.remote_name(from).escape_ascii()
                );
            }
            return;
        };
        stats.external_publish_in += 1;
        if !self.pubsub.external_allowed(env.user_id, topic) {
            if stats::bump_and_should_log(&mut stats.rejected_external_protected) {
                log::warn!(
                    "external publish to protected topic {:?} (user {:?}) from {} refused",
                    topic.escape_ascii().to_string(),
                    env.user_id.escape_ascii().to_string(),
                    self.remote_name(from).escape_ascii()
                );
            }
            return;
        }
        let Router { peers, pubsub, .. } = self;
        let n = pubsub.deliver_external(bus, topic, &delivery, env, peers, stats, sink);
        log::debug!(
            "external_publish from {}: topic {:?} to {n} local subscribers",
            from.map_or(&b"the RabbitMQ bridge"[..], |p| peers.identity(p)).escape_ascii(),
            topic.escape_ascii().to_string()
        );
    }

    /// Who sent a remote message, for logs: the link peer, or the RabbitMQ bridge.
    pub(crate) fn remote_name(&self, from: Option<PeerId>) -> &[u8] {
        from.map_or(b"the RabbitMQ bridge", |p| self.peers.identity(p))
    }

    /// Push our `external_list` where it is owed: to every up link when the set of
    /// `all_platforms` prefixes changed since it was last built, and to links marked owed
    /// (link-up, or a previous send that found the queue full).
    pub(super) fn sync_external_list(&mut self, stats: &mut Stats, sink: &mut impl Sink) {
        if self.links.up_count() == 0 {
            return;
        }
        let generation = self.pubsub.subscriptions().all_generation();
        let own = &mut self.own_list;
        if own.generation != Some(generation) {
            own.generation = Some(generation);
            write_list_body(&mut own.next, &self.info.instance_name, self.pubsub.subscriptions());
            if own.next != own.body || own.body.is_empty() {
                core::mem::swap(&mut own.next, &mut own.body);
                for (l, _) in self.links.with_ext_mut() {
                    l.list_owed |= l.state() == LinkState::Up;
                }
            }
        }
        let Router { links, own_list, .. } = self;
        let frames: [&[u8]; 7] = [b"", SIGNATURE, b"", b"", b"pubsub", b"external_list", &own_list.body];
        for (l, _) in links.with_ext_mut() {
            if !l.list_owed || l.state() != LinkState::Up {
                continue;
            }
            match sink.deliver_link(l.id(), &frames) {
                Ok(()) => {
                    l.list_owed = false;
                    l.counters.lists_out += 1;
                }
                Err(Full) => {
                    if stats::bump_and_should_log(&mut stats.dropped_notify_full) {
                        log::warn!(
                            "external_list to {}: the link's queue is full; retried later",
                            l.name().escape_ascii()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_subs_fill_match_and_truncate() {
        let mut e = ExtSubs::new(8, 3);
        let v = json::parse(br#"["dev", "", "analysis/x", "\u0100"]"#).unwrap();
        assert_eq!(e.replace_from(v), 1, "analysis/x does not fit the 8 bytes");
        assert_eq!(e.iter().collect::<Vec<_>>(), vec![&b"dev"[..], b""]);
        assert!(e.matches(b"anything"), "'' matches every topic");
        let v = json::parse(br#"["dev", "devices/", "a", "b"]"#).unwrap();
        assert_eq!(e.replace_from(v), 1, "three prefixes at most");
        assert!(e.matches(b"devices/x") && e.matches(b"devX") && !e.matches(b"de") && e.matches(b"b"));
        e.clear();
        assert!(e.is_empty() && !e.matches(b"dev"));
    }

    #[test]
    fn list_bodies_are_validated() {
        assert!(parse_list_body(br#"{"p2": ["devices"], "p3": []}"#).is_some());
        assert!(parse_list_body(b"{}").is_some());
        for bad in [&b"[]"[..], b"x", br#"{"p2": "devices"}"#, br#"{"p2": [1]}"#, br#"{"p2": null}"#, b""] {
            assert!(parse_list_body(bad).is_none(), "{}", bad.escape_ascii());
        }
    }
}
