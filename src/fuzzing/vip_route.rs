//! `fuzz_vip_route`: the VIP router and pubsub service against a model (VIP.md §4–§8).

use super::*;

/// Peer slots of the `vip_route` router (PeerId 4 is outside the table on purpose).
pub(super) const ROUTE_CAPACITY: usize = 4;
/// Small pubsub tables, so that the limits are reached.
pub(super) const ROUTE_MAX_SUBSCRIPTIONS: usize = 64;
pub(super) const ROUTE_MAX_SUBS_PER_PEER: usize = 16;

/// Frame-length bytes at or above this are tokens (a name or body the router acts on), so the
/// fuzzer reaches the subsystems and the pubsub operations without guessing them. A raw frame
/// is therefore at most `TOKEN_BASE - 1` bytes long.
pub(super) const TOKEN_BASE: u8 = 0xC0;
/// `TOKEN_BASE + i` is `TOKENS[i]`; `0xFC..=0xFF` is the identity attached to slot `& 3`. The
/// last twelve (`0xF0..=0xFB`) are the tokens of the first corpus, at their old bytes.
pub(super) const TOKENS: [&[u8]; 60] = [
    // 0xC0: pubsub names (VIP.md §7).
    b"pubsub",
    b"subscribe",
    b"unsubscribe",
    b"synchronize",
    b"publish",
    b"auth_update",
    b"protected_update",
    b"connected",
    // 0xC8
    b"platform.auth",
    b"request_response",
    b"external_publish",
    b"agent.a",
    // 0xCC: subscribe bodies (§7.3, E3.1).
    br#"{"prefix": "devices/campus", "bus": "", "all_platforms": false}"#,
    br#"{"prefix": ["devices", "secret", ""], "bus": "", "all_platforms": true}"#,
    br#"{"prefix": "se", "bus": "b\u00e9"}"#,
    br#"{"prefix": ["a", 1], "bus": ""}"#,
    // 0xD0: unsubscribe bodies (§7.4).
    br#"{"internal": {"prefix": ["devices/campus"], "bus": ""}}"#,
    br#"{"all": {"prefix": null, "bus": ""}, "internal": {"prefix": [], "bus": ""}}"#,
    br#"{"prefix": "devices/campus", "bus": ""}"#,
    br#"{"internal": {"prefix": "x"}}"#,
    // 0xD4: synchronize bodies (§7.5).
    br#"{"subscriptions": {"internal": {"": [""]}}}"#,
    br#"{"subscriptions": {"internal": {"": ["devices", "secret/"], "b\u00e9": ["x"]}, "all": {"": ["regex"]}}}"#,
    br#"{"subscriptions": {}}"#,
    br#"{"subscriptions": {"internal": {"": "devices"}}}"#,
    // 0xD8: publish topics and bodies (§7.6, E3.3).
    b"devices/campus/b1/all",
    b"secret/x",
    b"regexaz",
    br#"{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": [1, 2.5, "\u00e9"]}}"#,
    // 0xDC
    br#"{"bus": "", "headers": {}, "message": ["\ud83d\ude00", "\u00e9\u0000\ud800", NaN, -Infinity, -0, 1e400, 1.5e-7, 12345678901234567890123], "extra": 1}"#,
    br#"{"bus": "b\u00e9", "headers": null, "message": {"a": {"b": [true, false, null]}, "a": 2}, "bus": "b\u00e9"}"#,
    br#"{"bus": "", "headers": {}}"#,
    b"b\xe9",
    // 0xE0: list bodies (§7.7).
    br#"{"prefix": "", "all_platforms": false, "subscribed": true, "reverse": false, "bus": ""}"#,
    br#"{"prefix": "devices/campus/b1", "bus": null, "subscribed": false, "reverse": true, "all_platforms": true}"#,
    br#"{"prefix": "", "bus": "b\u00e9", "subscribed": 0, "reverse": [], "all_platforms": "yes"}"#,
    b"{}",
    // 0xE4: auth_update and protected_update bodies (§7.8, §7.9).
    br#"{"capabilities": {"agent.a": {"can_publish": null}, "agent.b": ["edit_config_store"], "platform.auth": {}}}"#,
    br#"{"capabilities": {"agent.a": {}, "agent.b": {"can_publish": {"x": 1}}}}"#,
    br#"{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}, {"topic": "/regex.*z/", "capabilities": "can_publish"}]}"#,
    br#"{"write-protect": [{"topic": "devices", "capabilities": ["edit_config_store", "can_publish"]}, {"topic": "/(/"}]}"#,
    // 0xE8: more names.
    b"agent.b",
    b"devices",
    br#"{"prefix": "", "bus": "b\u00e9", "all_platforms": true}"#,
    b"routing_table",
    // 0xEC
    b"external_list",
    b"all",
    b"internal",
    b"secret",
    // 0xF0: the tokens of the first corpus.
    b"VIP1",
    b"hello",
    b"ping",
    b"peerlist",
    b"list",
    b"query",
    b"stats",
    b"agentstop",
    b"quit",
    b"error",
    b"external_rpc",
    CONTROL,
];

/// An identity length byte at or above this names one of these identities (low 2 bits).
pub(super) const NAMED_IDENTITY: u8 = 0xC0;
pub(super) const NAMED_IDENTITIES: [&[u8]; 4] = [AUTH_IDENTITY, b"agent.a", b"agent.b", CONTROL];

/// An identity from the input: a length byte (`& 0x3f`, 0 = generated) and the bytes, or a
/// byte `≥ NAMED_IDENTITY` for one of [`NAMED_IDENTITIES`].
pub(super) fn route_identity<'a>(c: &mut Cursor<'a>) -> &'a [u8] {
    let l = c.byte();
    if l >= NAMED_IDENTITY {
        NAMED_IDENTITIES.get(usize::from(l & 3)).copied().unwrap_or_default()
    } else {
        c.take(usize::from(l & 0x3f))
    }
}

/// A cursor over the fuzz input: reads past the end give zeros / empty slices.
pub(super) struct Cursor<'a> {
    pub(super) data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn byte(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    pub(super) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One delivery attempt seen by the sink.
pub(super) struct Attempt {
    pub(super) to: PeerId,
    pub(super) frames: Vec<Vec<u8>>,
    pub(super) ok: bool,
}

/// A [`Sink`] that records every attempt and refuses deliveries to the peers in `full`.
pub(super) struct RecordingSink {
    /// Bit `p` set: peer `p`'s queue is full.
    pub(super) full: u8,
    /// Which peers are attached (deliveries to others are a router bug).
    pub(super) attached: [bool; ROUTE_CAPACITY],
    pub(super) attempts: Vec<Attempt>,
}

impl Sink for RecordingSink {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        assert!(self.attached.get(to.index()).copied().unwrap_or(false), "delivery to {to:?}, which is not attached");
        assert!(frames.len() >= 5, "a VIP message has at least five frames: {frames:?}");
        assert_eq!(frames.get(1).copied(), Some(SIGNATURE), "frame 1 of every VIP message is VIP1");
        if frames.first().is_some_and(|f| f.is_empty()) {
            check_router_message(frames);
        }
        let ok = self.full & (1 << to.0) == 0;
        self.attempts.push(Attempt { to, frames: frames.iter().map(|f| f.to_vec()).collect(), ok });
        if ok { Ok(()) } else { Err(Full) }
    }
}

/// The harness's view of the peer table: the identity attached to each slot.
pub(super) type Model = [Option<Vec<u8>>; ROUTE_CAPACITY];

pub(super) fn check_table(router: &Router, model: &Model) {
    let t = &router.peers;
    assert_eq!(t.attached_len(), model.iter().filter(|m| m.is_some()).count());
    for (i, m) in model.iter().enumerate() {
        let p = PeerId(i as u16);
        match m {
            Some(id) => {
                assert!(t.is_attached(p));
                assert_eq!(t.identity(p), &id[..]);
                assert_eq!(t.lookup(id), Some(p), "lookup(identity(p)) == p");
            }
            None => {
                assert!(!t.is_attached(p));
                assert!(!t.is_registered(p));
            }
        }
    }
    let reg: Vec<PeerId> = t.registered().collect();
    assert_eq!(reg.len(), t.registered_len());
    for (i, p) in reg.iter().enumerate() {
        assert!(t.is_attached(*p) && t.is_registered(*p), "registered ⊆ attached");
        assert!(!reg.get(..i).unwrap_or(&[]).contains(p), "registered twice: {p:?}");
    }
    // Subscribers are registered peers, within the index limits.
    let subs = router.pubsub.subscriptions();
    let mut per_peer = [0usize; ROUTE_CAPACITY];
    let mut n = 0;
    subs.for_each_entry(|p, bus, prefix, _all| {
        n += 1;
        assert!(t.is_registered(PeerId(p)), "peer {p} holds subscriptions but is not registered");
        assert!(bus.len() <= MAX_BUS_BYTES && prefix.len() <= MAX_PREFIX_BYTES);
        if let Some(c) = per_peer.get_mut(usize::from(p)) {
            *c += 1;
        }
    });
    assert_eq!(n, subs.len());
    assert!(n <= ROUTE_MAX_SUBSCRIPTIONS && per_peer.iter().all(|&c| c <= ROUTE_MAX_SUBS_PER_PEER), "{per_peer:?}");
}

pub(super) fn attached_mask(model: &Model) -> [bool; ROUTE_CAPACITY] {
    let mut a = [false; ROUTE_CAPACITY];
    for (d, m) in a.iter_mut().zip(model) {
        *d = m.is_some();
    }
    a
}

pub(super) fn is_notification(a: &Attempt, op: &[u8]) -> bool {
    a.frames.len() == 7
        && a.frames.first().is_some_and(|f| f.is_empty())
        && a.frames.get(4).is_some_and(|f| f == b"peerlist")
        && a.frames.get(5).is_some_and(|f| f == op)
}

/// Attach `identity` to `peer` and check the result against the model.
pub(super) fn route_attach(router: &mut Router, model: &mut Model, peer: u8, identity: &[u8]) {
    let p = PeerId(u16::from(peer));
    let r = router.attach(p, identity);
    let slot = model.get(p.index());
    let holder = if identity.is_empty() { None } else { model.iter().position(|m| m.as_deref() == Some(identity)) };
    match (slot, holder) {
        (None | Some(Some(_)), _) => assert_eq!(r, Err(AttachError::Invalid), "peer {p:?}"),
        (Some(None), Some(h)) => assert_eq!(r, Err(AttachError::Duplicate(PeerId(h as u16)))),
        (Some(None), None) => {
            assert_eq!(r, Ok(()));
            let got = router.peers.identity(p).to_vec();
            if identity.is_empty() {
                assert!(got.len() == 5 && got.first() == Some(&0), "generated identity {got:?}");
            } else {
                assert_eq!(got, identity);
            }
            if let Some(m) = model.get_mut(p.index()) {
                *m = Some(got);
            }
        }
    }
    check_table(router, model);
}

pub(super) fn route_detach(router: &mut Router, model: &mut Model, peer: u8, full: u8) {
    let p = PeerId(u16::from(peer));
    let me = router.peers.identity(p).to_vec();
    let mut sink = RecordingSink { full, attached: attached_mask(model), attempts: Vec::new() };
    if let Some(a) = sink.attached.get_mut(p.index()) {
        *a = false; // nothing may be sent to the peer that is leaving
    }
    router.detach(p, &mut sink);
    for a in &sink.attempts {
        assert!(is_notification(a, b"drop") && a.frames.get(6) == Some(&me), "detach sent {:?}", a.frames);
    }
    if let Some(m) = model.get_mut(p.index()) {
        *m = None;
    }
    check_table(router, model);
}

/// Route one message from `from` with the given full masks: Pause, retried while blocked,
/// then Again (the server's stall timeout).
pub(super) fn route_message(
    router: &mut Router,
    model: &Model,
    from: PeerId,
    msg: Message<'_>,
    masks: [u8; 3],
    again_first: bool,
) {
    let me = router.peers.identity(from).to_vec();
    let env = Envelope::parse(msg).ok();
    let modes = if again_first { [OnFull::Again; 3] } else { [OnFull::Pause, OnFull::Pause, OnFull::Again] };
    for (mode, full) in modes.into_iter().zip(masks) {
        let mut sink = RecordingSink { full, attached: attached_mask(model), attempts: Vec::new() };
        let outcome = router.handle(from, msg, &mut sink, mode);
        // Forwarded messages carry the sender as frame 0 and USER_ID; router messages start
        // with an empty frame.
        for a in &sink.attempts {
            let f0 = a.frames.first().map(Vec::as_slice).unwrap_or(&[]);
            if !f0.is_empty() {
                assert_eq!(f0, &me[..], "frame 0 of a forwarded message is the sender");
                assert_eq!(a.frames.get(2), Some(&me), "USER_ID of a forwarded message is the sender");
            }
        }
        match outcome {
            Outcome::Blocked(p) => {
                assert!(sink.attempts.iter().any(|a| a.to == p && !a.ok), "Blocked({p:?}) without a full queue");
                for a in sink.attempts.iter().filter(|a| a.ok) {
                    assert!(is_notification(a, b"add"), "Blocked after a side effect: {:?}", a.frames);
                }
            }
            Outcome::Quit => {
                assert_eq!(me, CONTROL, "quit honoured from {me:?}");
                assert!(sink.attempts.iter().all(|a| is_notification(a, b"add")));
            }
            Outcome::Done => {}
        }
        if let Some(env) = &env {
            check_forward(router, &me, env, &sink, outcome, mode);
            if env.recipient.is_empty() && env.subsystem == b"pubsub" {
                check_pubsub(router, from, &me, env, &sink, outcome);
            }
            if env.recipient.is_empty() && env.subsystem == b"query" && env.arg(0) == b"stats" {
                for a in sink.attempts.iter().filter(|a| a.frames.get(4).is_some_and(|f| f == b"query")) {
                    let v = a.frames.get(6).map(|b| json::parse(b));
                    assert!(matches!(v, Some(Ok(v)) if v.kind() == Kind::Object), "query stats is not a JSON object");
                }
            }
            if !(env.recipient.is_empty() && env.subsystem == b"agentstop") {
                assert!(router.peers.is_registered(from), "a valid message registers its sender");
            }
        }
        check_table(router, model);
        if !matches!(outcome, Outcome::Blocked(_)) {
            break;
        }
    }
}

/// VIP.md §4 step 5/7 for a message addressed to another peer.
pub(super) fn check_forward(
    router: &Router,
    me: &[u8],
    env: &Envelope<'_>,
    sink: &RecordingSink,
    outcome: Outcome,
    mode: OnFull,
) {
    if env.recipient.is_empty() {
        return;
    }
    // Skip the `peerlist add` notifications of the sender's registration.
    let rest: Vec<&Attempt> = sink.attempts.iter().filter(|a| !is_notification(a, b"add")).collect();
    match router.peers.lookup(env.recipient) {
        Some(to) => {
            let mut expect: Vec<Vec<u8>> =
                vec![me.to_vec(), SIGNATURE.to_vec(), me.to_vec(), env.msg_id.to_vec(), env.subsystem.to_vec()];
            expect.extend(env.frames_from(5).map(<[u8]>::to_vec));
            let first = rest.first();
            assert!(first.is_some_and(|a| a.to == to && a.frames == expect), "forward to {to:?} not attempted first");
            let delivered = first.is_some_and(|a| a.ok);
            match (delivered, mode) {
                (true, _) => assert_eq!(outcome, Outcome::Done),
                (false, OnFull::Pause) => assert_eq!(outcome, Outcome::Blocked(to)),
                (false, OnFull::Again) => {
                    assert_eq!(outcome, Outcome::Done);
                    let e = rest.get(1);
                    assert!(
                        e.is_some_and(|a| a.frames.get(4).is_some_and(|f| f == b"error")
                            && a.frames.get(5).is_some_and(|f| f == b"11")),
                        "no error 11 after a full destination"
                    );
                }
            }
        }
        None => {
            let first = rest.first();
            assert!(
                first.is_some_and(
                    |a| a.frames.get(5).is_some_and(|f| f == b"113") && a.frames.get(2).is_some_and(|f| f == me)
                ),
                "no error 113 for an unknown recipient"
            );
        }
    }
}

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
    let f = |a: &Attempt, i: usize| a.frames.get(i).cloned().unwrap_or_default();
    let reply_head = |a: &Attempt, kind: &[u8]| {
        a.to == from
            && f(a, 0).is_empty()
            && f(a, 2) == me
            && f(a, 3) == env.msg_id
            && f(a, 4) == b"pubsub"
            && f(a, 5) == kind
    };
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
        Some(b"publish") if env.arg_count() >= 3 => {
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
        // synchronize, auth_update, protected_update, publish with too few frames, error,
        // request_response, unknown operations and no operation at all: no reply.
        _ => assert!(rest.is_empty(), "pubsub {:?} answered", env.get_arg(0)),
    }
}

/// Arbitrary messages from 2–4 peers into a 4-peer [`Router`] whose sink is sometimes full,
/// with the pubsub service behind it (VIP.md §7).
///
/// Layout: byte 0 = peer count and router seed; per peer a slot byte (`% 5`, slot 4 is outside
/// the table) and an identity (length byte `& 0x3f`, 0 = generated; a byte `≥ 0xC0` is
/// `platform.auth`, `agent.a`, `agent.b` or `control` by its low 2 bits); then operations
/// until the input runs out. An operation byte `≥ 0xF0` detaches slot `& 3`, `0xE0..=0xEF`
/// attaches it again with a new identity, anything else is a message from the attached peer
/// chosen by its low 2 bits (bit 2: start with `OnFull::Again`), followed by three full-queue
/// masks, a frame count (`% 65`) and the frames (length byte + bytes; a length byte
/// `0xC0..=0xFB` is one of the `TOKENS` — names, pubsub operations and JSON bodies —,
/// `0xFC..=0xFF` the identity attached to slot `& 3`).
///
/// Besides the routing checks: every message the router sends itself is checked by
/// `check_router_message` (a publish delivery body is printable-ASCII JSON with the four keys
/// of VIP.md §7.6, a `request_response` result is 1 or 4 bytes, a `list_response` is an array
/// of `[bus, prefix, member]`), every `pubsub` request by `check_pubsub` (replies, the publish
/// count of 4 bytes equal to the deliveries, which go to exactly the subscribers of a prefix of
/// the topic on the bus, each with the body rebuilt from the request), `query stats` is a JSON
/// object, and subscribers are always registered peers within the index limits.
pub fn fuzz_vip_route(data: &[u8]) {
    let mut c = Cursor { data };
    let b0 = c.byte();
    let n_peers = 2 + usize::from(b0 % 3);
    // Small pubsub tables: a router is built per input.
    let limits = Limits {
        max_connections: ROUTE_CAPACITY,
        max_subscriptions: ROUTE_MAX_SUBSCRIPTIONS,
        max_subs_per_peer: ROUTE_MAX_SUBS_PER_PEER,
        ..Limits::COMPILED
    };
    let mut router = Router::new(&limits, PlatformInfo::with_router_id(b"fuzz-router"), u32::from(b0) << 24);
    let mut model: Model = Default::default();
    for _ in 0..n_peers {
        let slot = c.byte() % 5;
        let id = route_identity(&mut c);
        route_attach(&mut router, &mut model, slot, id);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut ops = 0;
    while !c.is_empty() && ops < 256 {
        ops += 1;
        let op = c.byte();
        if op >= 0xF0 {
            route_detach(&mut router, &mut model, op & 3, c.byte());
            continue;
        }
        if op >= 0xE0 {
            let id = route_identity(&mut c);
            route_attach(&mut router, &mut model, op & 3, id);
            continue;
        }
        let masks = [c.byte(), c.byte(), c.byte()];
        let n_frames = usize::from(c.byte()) % 65;
        buf.clear();
        let mut parts = Parts::new();
        for _ in 0..n_frames {
            let l = c.byte();
            let start = buf.len();
            if l >= TOKEN_BASE {
                let t = usize::from(l - TOKEN_BASE);
                match TOKENS.get(t) {
                    Some(tok) => buf.extend_from_slice(tok),
                    None => buf.extend_from_slice(router.peers.identity(PeerId(u16::from(l & 3)))),
                }
            } else {
                buf.extend_from_slice(c.take(usize::from(l)));
            }
            let part = Part { start: start as u32, len: (buf.len() - start) as u32 };
            assert!(parts.push(part).is_ok());
        }
        let attached: Vec<PeerId> =
            (0..ROUTE_CAPACITY as u16).map(PeerId).filter(|p| router.peers.is_attached(*p)).collect();
        let Some(&from) = attached.get(usize::from(op & 3) % attached.len().max(1)) else { continue };
        route_message(&mut router, &model, from, Message::new(&buf, &parts), masks, op & 4 != 0);
    }
    for p in 0..ROUTE_CAPACITY as u8 {
        route_detach(&mut router, &mut model, p, data.last().copied().unwrap_or(0));
    }
    assert_eq!(router.peers.attached_len(), 0);
    assert_eq!(router.peers.registered_len(), 0);
}
