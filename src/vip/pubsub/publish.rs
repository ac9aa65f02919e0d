//! publish (VIP.md §7.6): the delivery body rebuilt once, ZMTP-encoded once for every verbatim
//! subscriber, fanned out through the index; the count reply after the deliveries.

use super::*;
use crate::json::emit;
use crate::vip::external_pubsub;
use crate::zmtp::frame;
use crate::zmtp::traffic::encode_verbatim_into;

/// The stack buffer the publish count reply is encoded in: its 44 bytes of constant frames and
/// headers, and room for a requester identity and message id of 100 bytes together.
const COUNT_REPLY_BUF: usize = 144;

/// The delivery body of a `publish` (VIP.md §7.6):
/// `{"sender": S, "bus": B, "headers": H, "message": MSG}`, in that order, extra keys dropped.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryBody<'a> {
    /// The publisher's identity (frame bytes, latin-1).
    pub sender: &'a [u8],
    /// The publish body's `bus` value.
    pub bus: Value<'a>,
    /// The publish body's `headers` value.
    pub headers: Value<'a>,
    /// The publish body's `message` value.
    pub message: Value<'a>,
}

impl<'a> DeliveryBody<'a> {
    /// Picks `bus`, `headers` and `message` out of a parsed publish body in one pass (last
    /// duplicate wins). `None` if the body is not an object or lacks one of them — the
    /// "no delivery, count 0" case of VIP.md §7.6.
    pub fn from_publish(sender: &'a [u8], body: Value<'a>) -> Option<Self> {
        let (mut bus, mut headers, mut message) = (None, None, None);
        for (k, v) in body.members() {
            if k.eq_latin1(b"bus") {
                bus = Some(v);
            } else if k.eq_latin1(b"headers") {
                headers = Some(v);
            } else if k.eq_latin1(b"message") {
                message = Some(v);
            }
        }
        Some(Self { sender, bus: bus?, headers: headers?, message: message? })
    }

    /// [`DeliveryBody::from_publish`] of the publish body `body`, validated and picked in one
    /// pass ([`json::parse_picking`]): `None` if it is not JSON, not an object, or lacks one of
    /// the three members.
    pub fn parse(sender: &'a [u8], body: &'a [u8]) -> Option<Self> {
        match json::parse_picking(body, &[b"bus", b"headers", b"message"]) {
            Ok((v, [bus, headers, message])) if v.kind() == Kind::Object => {
                Some(Self { sender, bus: bus?, headers: headers?, message: message? })
            }
            _ => None,
        }
    }

    /// Writes the body.
    pub fn emit<S: ByteSink + ?Sized>(&self, out: &mut S) -> Result<(), SinkFull> {
        out.put(b"{\"sender\": ")?;
        emit::emit_latin1_str(out, self.sender)?;
        out.put(b", \"bus\": ")?;
        emit::emit_value(out, self.bus)?;
        out.put(b", \"headers\": ")?;
        emit::emit_value(out, self.headers)?;
        out.put(b", \"message\": ")?;
        emit::emit_value(out, self.message)?;
        out.put(b"}")
    }

    /// What [`emit`](Self::emit) writes, as pieces of the input to concatenate, when it only
    /// copies: `bus`, `headers` and `message` already in Python's form
    /// ([`Value::in_python_form`]) and a printable-ASCII `sender` (written between quotes as
    /// it is). `None` otherwise.
    pub fn verbatim_pieces(&self) -> Option<[&'a [u8]; 9]> {
        let copied = self.bus.in_python_form() && self.headers.in_python_form() && self.message.in_python_form();
        if !copied || crate::json::ascii::printable_len(self.sender) != self.sender.len() {
            return None;
        }
        Some([
            b"{\"sender\": \"",
            self.sender,
            b"\", \"bus\": ",
            self.bus.raw(),
            b", \"headers\": ",
            self.headers.raw(),
            b", \"message\": ",
            self.message.raw(),
            b"}",
        ])
    }

    /// Exact number of bytes [`emit`](Self::emit) writes (one measuring pass).
    pub fn emitted_len(&self) -> usize {
        let mut c = LenCounter::new();
        let _ = self.emit(&mut c);
        c.len()
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

impl SlowPeer {
    /// A delivery to subscriber `identity` was queued (`ok`) or dropped on its full queue.
    fn record(&mut self, ok: bool, stats: &mut Stats, identity: &[u8]) {
        if ok {
            self.dropping = false;
            return;
        }
        stats.dropped_slow_subscriber += 1;
        self.dropped += 1;
        if !self.dropping {
            self.dropping = true;
            if stats::bump_and_should_log(&mut self.stalls) {
                log::warn!(
                    "slow subscriber {}: queue full, dropping its pubsub deliveries \
                     (stall {}, {} dropped so far; publishers see them missing from their counts)",
                    identity.escape_ascii(),
                    self.stalls,
                    self.dropped
                );
            }
        }
    }
}

/// The USER_ID and MSG_ID a delivery carries: the publisher's, unmodified (VIP.md §7.6).
#[derive(Clone, Copy)]
struct Origin<'a> {
    user_id: &'a [u8],
    msg_id: &'a [u8],
}

/// A publish the router makes itself (its own counters, `[viprouter] stats-topic`), delivered
/// like an agent's: the same delivery body, the protected-topic check with `sender` as the user,
/// the same slow-subscriber rule; nobody gets a count or an error back.
#[derive(Clone, Copy, Debug)]
pub struct OwnPublish<'a> {
    /// The body's `sender`, also the deliveries' USER_ID.
    pub sender: &'a [u8],
    /// The topic.
    pub topic: &'a [u8],
    /// The headers, a JSON object.
    pub headers: Value<'a>,
    /// The message, any JSON value.
    pub message: Value<'a>,
}

/// Who published, for the replies.
struct Publisher<'a> {
    from: PeerId,
    requester: &'a [u8],
    msg_id: &'a [u8],
}

impl PubSub {
    /// VIP.md §7.6, then the remote platforms that hold a prefix of the topic
    /// ([`external_pubsub::forward_publish`]), then the RabbitMQ bridge if the topic is exported
    /// ([`crate::vip::bridge::export_publish`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        peers: &PeerTable,
        links: &mut Links,
        stats: &mut Stats,
        sink: &mut impl Sink,
        error_msg_id: ErrorMsgId,
    ) -> Outcome {
        const OP: &str = "publish";
        let requester = peers.identity(from);
        if env.arg_count() < 3 {
            malformed(stats, requester, OP, "fewer than 2 arguments (no reply)");
            return Outcome::Done;
        }
        stats.pubsub_publishes += 1;
        let (topic, body) = (env.arg(1), env.arg(2));
        let publisher = Publisher { from, requester, msg_id: env.msg_id };
        let Some(delivery) = DeliveryBody::parse(requester, body) else {
            malformed(stats, requester, OP, "body is not an object with \"bus\", \"headers\" and \"message\"");
            return Self::request_response(stats, sink, from, requester, env.msg_id, &0u32.to_le_bytes());
        };
        if let Some(authz) = self.authz.as_mut() {
            if !authz.allows(requester, topic, Access::Publish) {
                self.unauthorized(&mut stats.rejected_protected_topic, requester, Access::Publish, topic);
                // Nothing has been sent yet: pausing (and retrying the whole publish) is safe.
                if let Outcome::Blocked(p) = self.unauthorized_reply(stats, sink, from, env.msg_id, error_msg_id) {
                    return Outcome::Blocked(p);
                }
                Self::count_reply(stats, sink, from, requester, env.msg_id, 0);
                return Outcome::Done;
            }
        } else if let Some(refusal) = self.policy.check(requester, topic) {
            self.text.clear();
            refusal.write_text(topic, &mut self.text);
            return Self::refuse_protected(&self.text, &publisher, topic, stats, sink, error_msg_id);
        }
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus = delivery.bus.as_str().and_then(|s| s.to_latin1(&mut bus_buf).ok());
        let local = bus.filter(|_| !self.subs.is_empty());
        let remote = external_pubsub::wanted(links, topic);
        let exported = self.exported(topic);
        let mut count = 0;
        if local.is_some() || remote || exported {
            if !self.emit_body(&delivery, requester, topic, stats) {
                return Self::request_response(stats, sink, from, requester, env.msg_id, &0u32.to_le_bytes());
            }
            if let Some(bus) = local {
                let origin = Origin { user_id: env.user_id, msg_id: env.msg_id };
                count += self.fan_out(bus, topic, origin, peers, stats, sink);
            }
            if remote {
                let frames: [&[u8]; 8] =
                    [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"external_publish", topic, &self.body];
                count += external_pubsub::forward_publish(links, topic, &frames, stats, sink);
            }
            if exported {
                // Not counted for the publisher: the broker says nothing of its subscribers.
                crate::vip::bridge::export_publish(stats, sink, requester, env.msg_id, topic, &self.body);
            }
            self.release_scratch();
        }
        // Deliveries (if any) are out: never pause and retry from here (it would duplicate them).
        // The count is what was delivered (queued), never more: a dropped delivery is not
        // claimed (README "PubSub").
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        Self::count_reply(stats, sink, from, requester, env.msg_id, count);
        Outcome::Done
    }

    /// Publish `own` on the default bus (see [`OwnPublish`]): the number of matching
    /// subscribers, or `None` when the protected-topic check refused it (counted in
    /// `rejected_protected_topic` and logged, 1st, 10th, 100th… time).
    pub fn publish_own(
        &mut self,
        own: &OwnPublish<'_>,
        peers: &PeerTable,
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> Option<usize> {
        if self.policy.check(own.sender, own.topic).is_some() {
            if stats::bump_and_should_log(&mut stats.rejected_protected_topic) {
                log::warn!(
                    "the router's own publish to protected topic {:?} as {} refused: give that user the capability",
                    own.topic.escape_ascii().to_string(),
                    own.sender.escape_ascii()
                );
            }
            return None;
        }
        stats.pubsub_publishes += 1;
        if self.subs.is_empty() {
            return Some(0);
        }
        let Ok(bus) = json::parse(b"\"\"") else { return Some(0) };
        let delivery = DeliveryBody { sender: own.sender, bus, headers: own.headers, message: own.message };
        if !self.emit_body(&delivery, own.sender, own.topic, stats) {
            return Some(0);
        }
        let from = Origin { user_id: own.sender, msg_id: b"" };
        let n = self.fan_out(b"", own.topic, from, peers, stats, sink);
        self.release_scratch();
        Some(n)
    }

    /// A publish to a protected topic without the capability: error -32001, then count 0
    /// (VIP.md §7.9). Nothing has been sent yet: pausing (and retrying the whole publish) is safe.
    fn refuse_protected(
        text: &[u8],
        p: &Publisher<'_>,
        topic: &[u8],
        stats: &mut Stats,
        sink: &mut impl Sink,
        error_msg_id: ErrorMsgId,
    ) -> Outcome {
        if stats::bump_and_should_log(&mut stats.rejected_protected_topic) {
            log::warn!(
                "publish to protected topic {:?} by {} refused",
                topic.escape_ascii().to_string(),
                p.requester.escape_ascii()
            );
        }
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let id = error_msg_id.msg_id(p.msg_id, &mut quoted);
        let frames: [&[u8]; 9] = [b"", SIGNATURE, p.requester, id, b"error", b"-32001", text, b"", b"pubsub"];
        if let Outcome::Blocked(to) = Router::reply(stats, sink, p.from, &frames) {
            return Outcome::Blocked(to);
        }
        Self::count_reply(stats, sink, p.from, p.requester, p.msg_id, 0);
        Outcome::Done
    }

    /// Emit the delivery body into the scratch buffer, within the message-size limit; false
    /// (counted and logged) when it does not fit.
    fn emit_body(&mut self, delivery: &DeliveryBody<'_>, requester: &[u8], topic: &[u8], stats: &mut Stats) -> bool {
        let max = self.max_body_bytes;
        if let Some(pieces) = delivery.verbatim_pieces() {
            // The common case (a Python agent's publish): the pieces concatenated into room made
            // once, without a size check and a copy call per piece. The room is the last body's
            // bytes, all overwritten: only growth is zero-filled (a publish of the size of the
            // last one fills nothing).
            let len = pieces.iter().map(|p| p.len()).sum::<usize>();
            if len <= max {
                if self.body.len() < len {
                    self.body.resize(len, 0);
                } else {
                    self.body.truncate(len);
                }
                let mut at = self.body.as_mut_slice();
                for p in pieces {
                    at = frame::write_bytes(p, at);
                }
                debug_assert!(at.is_empty());
                return true;
            }
        } else {
            self.body.clear();
            if delivery.emit(&mut Capped { out: &mut self.body, max }).is_ok() {
                return true;
            }
        }
        if stats::bump_and_should_log(&mut stats.rejected_publish_too_large) {
            log::warn!(
                "publish from {} to {:?} dropped: delivery body over {max} bytes",
                requester.escape_ascii(),
                topic.escape_ascii().to_string()
            );
        }
        self.body.clear();
        false
    }

    /// Deliver the emitted body to every subscriber of `topic` on `bus`: one [`Fanout`], each
    /// drop recorded per subscriber (a full queue) or counted as the budget's. Returns the number
    /// of subscribers the delivery was queued to: the count never claims a dropped delivery.
    fn fan_out(
        &mut self,
        bus: &[u8],
        topic: &[u8],
        from: Origin<'_>,
        peers: &PeerTable,
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> usize {
        let PubSub { subs, body, slow, fanouts, .. } = self;
        let frames: [&[u8]; 8] =
            [b"", SIGNATURE, from.user_id, from.msg_id, b"pubsub", b"publish", topic, body.as_slice()];
        *fanouts += 1;
        let fanout = Fanout::new(&frames, *fanouts);
        let mut delivered = 0u64;
        subs.for_each_subscriber(bus, topic, |p| {
            let ok = sink.deliver_fanout(PeerId(p), &fanout).is_ok();
            delivered += u64::from(ok);
            if !ok && sink.refusal() == Refusal::Budget {
                // Its queue had room: not a slow subscriber.
                if stats::bump_and_should_log(&mut stats.dropped_subscriber_budget) {
                    log::warn!(
                        "pubsub delivery to {} dropped: the buffer budget cannot hold it",
                        peers.identity(PeerId(p)).escape_ascii()
                    );
                }
            } else if let Some(s) = slow.get_mut(usize::from(p)) {
                s.record(ok, stats, peers.identity(PeerId(p)));
            }
        });
        stats.pubsub_deliveries += delivered;
        // The body scratch buffer is given back by the caller (`release_scratch`): an exported
        // or linked publish still reads it.
        usize::try_from(delivered).unwrap_or(usize::MAX)
    }

    /// Give the body scratch buffer back if it grew for a huge message.
    fn release_scratch(&mut self) {
        if self.body.capacity() > SCRATCH_KEEP_BYTES {
            self.body = Vec::new();
        }
    }

    /// Deliver a remote platform's publish (`external_publish` from a link, already checked) to
    /// the local subscribers of `topic` on `bus`: `[X, '', 'VIP1', U, M, 'pubsub', 'publish',
    /// TOPIC, BODY]` with BODY re-emitted from `delivery`. Returns the number of subscribers
    /// it was queued to (0 when the body would exceed the message limit: dropped and counted).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deliver_external(
        &mut self,
        bus: &[u8],
        topic: &[u8],
        delivery: &DeliveryBody<'_>,
        env: &Envelope<'_>,
        peers: &PeerTable,
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> usize {
        if self.subs.is_empty() || !self.emit_body(delivery, b"a remote platform", topic, stats) {
            return 0;
        }
        let origin = Origin { user_id: env.user_id, msg_id: env.msg_id };
        let n = self.fan_out(bus, topic, origin, peers, stats, sink);
        self.release_scratch();
        n
    }

    /// The publish count to the publisher, dropped (and counted) if its queue is full.
    fn count_reply(stats: &mut Stats, sink: &mut impl Sink, to: PeerId, requester: &[u8], msg_id: &[u8], count: u32) {
        let c = count.to_le_bytes();
        let frames: [&[u8]; 7] = [b"", SIGNATURE, requester, msg_id, b"pubsub", b"request_response", &c];
        // Encoded here, on the stack, where five of the seven frames are constants (one reply per
        // publish: measured 15 instructions per fan-out delivery less than the generic encoding).
        // An identity and message id longer than the buffer take the generic path.
        let mut buf = [0u8; COUNT_REPLY_BUF];
        let queued = match encode_verbatim_into(&frames, &mut buf) {
            Some(encoded) => sink.deliver_encoded(to, &frames, encoded),
            None => sink.deliver(to, &frames),
        };
        if queued.is_err() && stats::bump_and_should_log(&mut stats.dropped_reply_full) {
            log::warn!("publish count to {} dropped: its queue is full", requester.escape_ascii());
        }
    }
}
