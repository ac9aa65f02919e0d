//! publish (VIP.md §7.6): the delivery body rebuilt once, ZMTP-encoded once for every verbatim
//! subscriber, fanned out through the index; the count reply after the deliveries.

use super::*;

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
    pub(super) fn publish(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        peers: &PeerTable,
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
        if let Some(authz) = self.authz.as_mut() {
            if !authz.allows(who, topic, Access::Publish) {
                self.unauthorized(&mut stats.rejected_protected_topic, who, Access::Publish, topic);
                // Nothing has been sent yet: pausing (and retrying the whole publish) is safe.
                if let Outcome::Blocked(p) = self.unauthorized_reply(stats, sink, from, env.msg_id, error_msg_id) {
                    return Outcome::Blocked(p);
                }
                Self::count_reply(stats, sink, from, who, env.msg_id, 0);
                return Outcome::Done;
            }
        } else if let Some(refusal) = self.policy.check(who, topic) {
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
                return Outcome::Blocked(p);
            }
            Self::count_reply(stats, sink, from, who, env.msg_id, 0);
            return Outcome::Done;
        }
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus = delivery.bus.as_str().and_then(|s| s.to_latin1(&mut bus_buf).ok());
        let count = match bus {
            Some(bus) if !self.subs.is_empty() => {
                let PubSub { subs, body, wire, slow, max_body_bytes, .. } = self;
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
                let frames: [&[u8]; 8] =
                    [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"publish", topic, body.as_slice()];
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
    fn count_reply(stats: &mut Stats, sink: &mut impl Sink, to: PeerId, who: &[u8], msg_id: &[u8], count: u32) {
        let c = count.to_le_bytes();
        let frames: [&[u8]; 7] = [b"", SIGNATURE, who, msg_id, b"pubsub", b"request_response", &c];
        if sink.deliver(to, &frames).is_err() && stats::bump(&mut stats.dropped_reply_full) {
            log::warn!("publish count to {} dropped: its queue is full", who.escape_ascii());
        }
    }
}
