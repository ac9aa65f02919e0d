//! The pubsub checks of `fuzz_vip_route` (VIP.md §7): what the router sends itself, and what
//! one `pubsub` request may produce.

use super::*;

/// Checks on every message the router itself sends (frame 0 empty), whoever it goes to.
pub(super) fn check_router_message(frames: &[&[u8]]) {
    let at = |i: usize| frames.get(i).copied().unwrap_or(&[]);
    match (at(4), at(5)) {
        (b"pubsub", b"publish") => {
            assert_eq!(frames.len(), 8, "a pubsub delivery has 8 frames");
            check_delivery_body(at(7));
        }
        (b"pubsub", b"request_response") => {
            assert_eq!(frames.len(), 7);
            assert!(matches!(at(6).len(), 1 | 4), "request_response result {:?}", at(6));
        }
        (b"pubsub", b"list_response") => {
            assert_eq!(frames.len(), 7);
            let body = at(6);
            assert!(body.iter().all(|b| (0x20..0x7f).contains(b)), "list_response is not printable ASCII");
            let v = json::parse(body);
            assert!(v.is_ok_and(|v| v.kind() == Kind::Array), "list_response is not a JSON array: {body:?}");
            for row in v.iter().flat_map(|v| v.items()) {
                let cells: Vec<Kind> = row.items().map(|c| c.kind()).collect();
                assert_eq!(cells, [Kind::String, Kind::String, Kind::Bool], "list row {:?}", row.raw());
            }
        }
        _ => {}
    }
}

/// A publish delivery body (VIP.md §7.6): printable ASCII JSON, exactly the four keys in order.
pub(super) fn check_delivery_body(body: &[u8]) {
    assert!(body.iter().all(|b| (0x20..0x7f).contains(b)), "delivery body is not printable ASCII: {body:?}");
    let v = json::parse(body);
    assert!(v.is_ok_and(|v| v.kind() == Kind::Object), "delivery body does not parse back: {v:?}");
    let keys: Vec<&[u8]> = v.iter().flat_map(|v| v.members()).map(|(k, _)| k.raw()).collect();
    assert_eq!(keys, [&b"sender"[..], b"bus", b"headers", b"message"], "delivery body keys");
}

/// The delivery body a publish of `body` by `me` must produce, if any (VIP.md §7.6).
pub(super) fn expected_delivery(me: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let v = json::parse(body).ok().filter(|v| v.kind() == Kind::Object)?;
    let d = DeliveryBody::from_publish(me, v)?;
    let mut out = Vec::with_capacity(d.emitted_len());
    assert!(d.emit(&mut out).is_ok());
    assert_eq!(out.len(), d.emitted_len(), "DeliveryBody::emitted_len is exact");
    // Independently: the sender is `me`, the rest are the publish body's values (last
    // duplicate wins) as they were.
    let back = json::parse(&out);
    assert!(back.is_ok());
    if let Ok(back) = back {
        assert!(back.get(b"sender").and_then(|s| s.as_str()).is_some_and(|s| s.eq_latin1(me)), "sender");
        for key in [&b"bus"[..], b"headers", b"message"] {
            let (a, b) = (v.get(key), back.get(key));
            assert!(a.zip(b).is_some_and(|(a, b)| same_json(a, b)), "{} differs", key.escape_ascii());
        }
    }
    Some(out)
}

/// The latin-1 bytes of a JSON string value, if it is one and every character fits.
pub(super) fn latin1_of(v: Value<'_>) -> Option<Vec<u8>> {
    v.as_str()?.chars().map(|c| u8::try_from(c).ok()).collect()
}

/// The peers subscribed to a prefix of `topic` on `bus` (VIP.md §7.2), from the index's entries.
pub(super) fn subscribers_of(router: &Router, bus: &[u8], topic: &[u8]) -> Vec<PeerId> {
    let mut peers = Vec::new();
    router.pubsub.subscriptions().for_each_entry(|p, b, prefix, _all| {
        if b == bus && topic.starts_with(prefix) && !peers.contains(&PeerId(p)) {
            peers.push(PeerId(p));
        }
    });
    peers.sort_by_key(|p| p.0);
    peers
}

/// VIP.md §7 for one `pubsub` request to the router: who is answered, with what, in which
/// order, and who gets a publish.
pub(super) fn check_pubsub(
    router: &Router,
    from: PeerId,
    me: &[u8],
    env: &Envelope<'_>,
    sink: &RecordingSink,
    outcome: Outcome,
) {
    let rest: Vec<&Attempt> = sink.attempts.iter().filter(|a| !is_notification(a, b"add")).collect();
    let f = frame_of;
    let reply_head = |a: &Attempt, kind: &[u8]| is_reply(a, from, me, env, kind);
    if let Outcome::Blocked(p) = outcome {
        assert_eq!(p, from, "pubsub pauses only on the requester's own queue");
        assert!(rest.iter().all(|a| a.to == from), "pubsub blocked after a delivery");
    }
    match env.get_arg(0) {
        Some(b"subscribe" | b"unsubscribe") => {
            assert_eq!(rest.len(), 1, "one request_response");
            let a = rest.first().copied();
            assert!(a.is_some_and(|a| reply_head(a, b"request_response") && matches!(&f(a, 6)[..], [0] | [1])));
        }
        Some(b"list") => {
            assert_eq!(rest.len(), 1, "one list_response");
            assert!(rest.first().is_some_and(|a| reply_head(a, b"list_response")));
        }
        Some(b"publish") if env.arg_count() >= 3 => check_publish(router, from, me, env, &rest, outcome),
        // synchronize, auth_update, protected_update, publish with too few frames, error,
        // request_response, unknown operations and no operation at all: no reply.
        _ => assert!(rest.is_empty(), "pubsub {:?} answered", env.get_arg(0)),
    }
}

/// Frame `i` of an attempted delivery (empty past the end).
fn frame_of(a: &Attempt, i: usize) -> Vec<u8> {
    a.frames.get(i).cloned().unwrap_or_default()
}

/// Is `a` a pubsub reply of `kind` to the requester `from` (`me`) of `env`?
fn is_reply(a: &Attempt, from: PeerId, me: &[u8], env: &Envelope<'_>, kind: &[u8]) -> bool {
    let f = |i| frame_of(a, i);
    a.to == from && f(0).is_empty() && f(2) == me && f(3) == env.msg_id && f(4) == b"pubsub" && f(5) == kind
}

/// VIP.md §7.6 for one `publish`: the -32001 error or the deliveries, then the count.
fn check_publish(router: &Router, from: PeerId, me: &[u8], env: &Envelope<'_>, rest: &[&Attempt], outcome: Outcome) {
    let f = frame_of;
    let reply_head = |a: &Attempt, kind: &[u8]| is_reply(a, from, me, env, kind);
    let topic = env.arg(1);
    let refused = rest.iter().any(|a| f(a, 4) == b"error");
    let expected = expected_delivery(me, env.arg(2));
    if let Outcome::Blocked(_) = outcome {
        // Only before anything went out: the -32001 error, or the count 0 of a body
        // that cannot be delivered.
        let zero = rest.first().is_some_and(|a| reply_head(a, b"request_response") && f(a, 6) == [0; 4]);
        assert!(rest.len() == 1 && (refused || (zero && expected.is_none())), "publish blocked late");
        return;
    }
    let deliveries: Vec<&Attempt> =
        rest.iter().copied().filter(|a| f(a, 4) == b"pubsub" && f(a, 5) == b"publish").collect();
    let last = rest.last().copied();
    assert!(last.is_some_and(|a| reply_head(a, b"request_response")), "the count comes last");
    let count = last.map(|a| f(a, 6)).unwrap_or_default();
    assert_eq!(count.len(), 4, "a publish count is 4 bytes");
    let count = u32::from_le_bytes(count.try_into().unwrap_or([0xFF; 4]));
    let made = deliveries.iter().filter(|a| a.ok).count();
    assert_eq!(count as usize, made, "count = deliveries made, never one the sink refused");
    assert_eq!(rest.len(), deliveries.len() + 1 + usize::from(refused));
    if refused {
        let e = rest.first().copied();
        assert!(e.is_some_and(|e| e.to == from
            && e.frames.len() == 9
            && f(e, 2) == me
            && f(e, 3) == env.msg_id
            && f(e, 5) == b"-32001"
            && f(e, 8) == b"pubsub"));
        assert!(deliveries.is_empty() && expected.is_some());
        return;
    }
    let mut to: Vec<PeerId> = deliveries.iter().map(|a| a.to).collect();
    to.sort_by_key(|p| p.0);
    let want = match &expected {
        Some(_) => {
            let body = json::parse(env.arg(2)).ok();
            let bus = body.and_then(|b| b.get(b"bus")).and_then(latin1_of);
            bus.map(|bus| subscribers_of(router, &bus, topic)).unwrap_or_default()
        }
        None => Vec::new(),
    };
    assert_eq!(to, want, "publish recipients");
    for d in deliveries {
        assert!(router.peers.is_registered(d.to), "a delivery to an unregistered peer");
        let head: [&[u8]; 7] = [b"", SIGNATURE, env.user_id, env.msg_id, b"pubsub", b"publish", topic];
        assert!(d.frames.iter().zip(head).all(|(a, b)| a == b), "delivery frames {:?}", d.frames);
        assert_eq!(d.frames.get(7), expected.as_ref(), "delivery body");
    }
}
