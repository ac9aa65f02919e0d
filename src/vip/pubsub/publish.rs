//! publish (VIP.md §7.6): the delivery body rebuilt once, ZMTP-encoded once for every verbatim
//! subscriber, fanned out through the index; the count reply after the deliveries.

use super::*;
use crate::vip::external_pubsub;

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

impl PubSub {
    /// VIP.md §7.6.
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
            malformed(stats, who, OP, "body is not an object with \"bus\", \"headers\" and \"message\"");
            return Self::request_response(stats, sink, from, who, env.msg_id, &0u32.to_le_bytes());
        };
        if let Some(outcome) = self.refuse_protected(from, who, env, topic, stats, sink, error_msg_id) {
            return outcome;
        }
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus = delivery.bus.as_str().and_then(|s| s.to_latin1(&mut bus_buf).ok());
        let local = bus.is_some() && !self.subs.is_empty();
        let remote = external_pubsub::wanted(links, topic);
        let count = if local || remote {
            let PubSub { body, max_body_bytes, .. } = self;
            body.clear();
            if delivery.emit(&mut Capped { out: body, max: *max_body_bytes }).is_err() {
                if stats::bump(&mut stats.rejected_publish_too_large) {
                    log::warn!(
                        "publish from {} to {:?} dropped: delivery body over {max_body_bytes} bytes",
                        who.escape_ascii(),
                        topic.escape_ascii().to_string()
                    );
                }
                body.clear();
                return Self::request_response(stats, sink, from, who, env.msg_id, &0u32.to_le_bytes());
            }
            let body = core::mem::take(&mut self.body);
            let mut count = 0;
            if let Some(bus) = bus.filter(|_| local) {
                let frames: [&[u8]; 8] =
                    [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"publish", topic, body.as_slice()];
                count += self.fan_out(bus, topic, &frames, peers, stats, sink);
            }
            if remote {
                let frames: [&[u8]; 8] =
                    [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"external_publish", topic, body.as_slice()];
                count += external_pubsub::forward_publish(links, topic, &frames, stats, sink);
            }
            self.body = body;
            self.release_scratch();
            count
        } else {
            0
        };
        // Deliveries (if any) are out: never pause and retry from here (it would duplicate them).
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        Self::count_reply(stats, sink, from, who, env.msg_id, count);
        Outcome::Done
    }

    /// The protected-topic check of VIP.md §7.9: on refusal the -32001 error and a count of 0
    /// (`Some` outcome); `None` when the publish may go on.
    #[allow(clippy::too_many_arguments)]
    fn refuse_protected(
        &mut self,
        from: PeerId,
        who: &[u8],
        env: &Envelope<'_>,
        topic: &[u8],
        stats: &mut Stats,
        sink: &mut impl Sink,
        error_msg_id: ErrorMsgId,
    ) -> Option<Outcome> {
        let refusal = self.policy.check(who, topic)?;
        if stats::bump(&mut stats.rejected_protected_topic) {
            log::warn!(
                "publish to protected topic {:?} by {} refused",
                topic.escape_ascii().to_string(),
                who.escape_ascii()
            );
        }
        self.text.clear();
        refusal.write_text(topic, &mut self.text);
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let id = error_msg_id.msg_id(env.msg_id, &mut quoted);
        let frames: [&[u8]; 9] = [b"", SIGNATURE, who, id, b"error", b"-32001", &self.text, b"", b"pubsub"];
        // Nothing has been sent yet: pausing (and retrying the whole publish) is safe.
        if let Outcome::Blocked(p) = Router::reply(stats, sink, from, &frames) {
            return Some(Outcome::Blocked(p));
        }
        Self::count_reply(stats, sink, from, who, env.msg_id, 0);
        Some(Outcome::Done)
    }

    /// Give scratch buffers that grew for a huge message back.
    fn release_scratch(&mut self) {
        if self.body.capacity() > SCRATCH_KEEP_BYTES {
            self.body = Vec::new();
        }
        if self.wire.capacity() > SCRATCH_KEEP_BYTES {
            self.wire = Vec::new();
        }
    }

    /// Queue `frames` (a `publish` delivery) to every subscriber of `topic` on `bus`, dropping
    /// (and counting) it for a subscriber whose queue is full. Returns the number of matching
    /// subscribers (VIP.md §7.6).
    fn fan_out(
        &mut self,
        bus: &[u8],
        topic: &[u8],
        frames: &[&[u8]],
        peers: &PeerTable,
        stats: &mut Stats,
        sink: &mut impl Sink,
    ) -> usize {
        let PubSub { subs, wire, slow, .. } = self;
        let mut shared = Shared::new(frames, wire);
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
        count
    }

    /// Deliver a remote platform's publish (`external_publish` from a link, already checked) to
    /// the local subscribers of `topic` on `bus`: `[X, '', 'VIP1', U, M, 'pubsub', 'publish',
    /// TOPIC, BODY]` with BODY re-emitted from `delivery`. Returns the number of matching
    /// subscribers (0 when the body would exceed the message limit: dropped and counted).
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
        if self.subs.is_empty() {
            return 0;
        }
        let mut body = core::mem::take(&mut self.body);
        body.clear();
        if delivery.emit(&mut Capped { out: &mut body, max: self.max_body_bytes }).is_err() {
            if stats::bump(&mut stats.rejected_publish_too_large) {
                log::warn!(
                    "external publish to {:?} dropped: delivery body too large",
                    topic.escape_ascii().to_string()
                );
            }
            self.body = body;
            self.release_scratch();
            return 0;
        }
        let frames: [&[u8]; 8] = [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"publish", topic, &body];
        let n = self.fan_out(bus, topic, &frames, peers, stats, sink);
        self.body = body;
        self.release_scratch();
        n
    }

    /// The publish count to the publisher, dropped (and counted) if its queue is full.
    fn count_reply(stats: &mut Stats, sink: &mut impl Sink, to: PeerId, who: &[u8], msg_id: &[u8], count: u32) {
        let c = count.to_le_bytes();
        let frames: [&[u8]; 7] = [b"", SIGNATURE, who, msg_id, b"pubsub", b"request_response", &c];
        if sink.deliver(to, &frames).is_err() && stats::bump(&mut stats.dropped_reply_full) {
            log::warn!("publish count to {} dropped: its queue is full", who.escape_ascii());
        }
    }
}
