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
    let r = router.attach(&mut Stats::default(), p, identity);
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
    router.detach(&mut Stats::default(), p, &mut sink);
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
        let outcome = router.handle(&mut Stats::default(), from, msg, &mut sink, mode);
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
