//! `fuzz_links`: multi-platform routing (VIP.md §11; `vip::links`, `vip::external_pubsub`,
//! `vip::external_rpc`, `vip::routing_table`) driven through the server contract.

use std::cell::RefCell;
use std::collections::HashMap;

use super::*;
use crate::time::Instant;
use crate::vip::discovery::parse_discovery;
use crate::vip::links::{DownReason, LinkAction, LinkId, LinkState};

/// Peers of the `links` router: two agents, p2's and p3's links to us, `keydiscovery`.
const LINK_PEERS: [&[u8]; 5] =
    [b"agent.a", b"agent.b", b"instance.p1.0.1111111111111111", b"keydiscovery", b"instance.p1.0.2222222222222222"];

const KEY: &str = "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ";

/// Frame-length bytes `0xC0..` are these tokens (a raw frame is at most 191 bytes).
pub(super) const LINK_TOKENS: [&[u8]; 40] = [
    // 0xC0
    b"pubsub",
    b"external_list",
    b"external_publish",
    b"external_rpc",
    b"send_platform",
    b"send_peer",
    b"routing_table",
    b"hello",
    // 0xC8
    b"welcome",
    b"normalmode_platform_connection",
    b"update",
    b"subscribe",
    b"publish",
    b"synchronize",
    b"connected",
    b"unsubscribe",
    // 0xD0
    b"query",
    b"stats",
    b"agentstop",
    b"VIP1",
    b"p1",
    b"p2",
    b"p3",
    b"devices/hvac/1",
    // 0xD8: bodies
    br#"{"prefix": "devices", "bus": "", "all_platforms": true}"#,
    br#"{"prefix": ["", "x/"], "bus": "", "all_platforms": true}"#,
    br#"{"subscriptions": {"all": {"": ["devices", "alerts/"]}, "internal": {"": ["devices/hvac"]}}}"#,
    br#"{"all": {"prefix": null, "bus": ""}}"#,
    br#"{"bus": "", "headers": {"min_compatible_version": "3.0"}, "message": {"v": 42}}"#,
    br#"{"sender": "pub2", "bus": "", "headers": {}, "message": [1, "\u00e9"]}"#,
    br#"{"p2": ["devices/", "", "x"], "p1": ["own"], "p3": ["devices/hvac"]}"#,
    br#"{"p2": "devices"}"#,
    // 0xE0
    br#"{"to_platform": "p2", "to_peer": "callee2", "from_platform": "", "from_peer": "forged", "args": ["{\"id\": 1}"]}"#,
    br#"{"to_platform": "p3", "to_peer": "x", "args": []}"#,
    br#"{"to_platform": "p1", "to_peer": "agent.b", "from_platform": "p2", "from_peer": "caller2", "args": []}"#,
    br#"{"to_platform": "p1", "to_peer": "ghost", "from_platform": "p3", "from_peer": "c3", "args": []}"#,
    br#"{"instance-name": "p3", "vip-address": "tcp://127.0.0.1:24001", "serverkey": "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"}"#,
    br#"{"instance-name": "p4", "vip-address": "tcp://127.0.0.1:24002", "serverkey": "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"}"#,
    br#"{"to_platform": 5}"#,
    b"{}",
];

/// What the harness knows about each link id it has seen.
#[derive(Default)]
struct LinkModel {
    state: HashMap<(u16, u16), LinkState>,
}

/// Records link and peer deliveries and checks what goes on links.
struct LinkSink<'m> {
    model: &'m LinkModel,
    /// Bit p: peer p full; bits 6, 7: link slot 0, 1 full.
    full: u8,
    /// The sender of the message being handled.
    sender: Vec<u8>,
    peer_msgs: Vec<(u16, Vec<Vec<u8>>)>,
    link_msgs: Vec<(LinkId, Vec<Vec<u8>>, bool)>,
}

impl Sink for LinkSink<'_> {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        assert!(usize::from(to.0) < LINK_PEERS.len(), "delivery to {to:?}");
        assert_eq!(frames.get(1).copied(), Some(SIGNATURE));
        if frames.first().is_some_and(|f| f.is_empty()) {
            check_router_message(frames);
        }
        let ok = self.full & (1 << to.0) == 0;
        self.peer_msgs.push((to.0, frames.iter().map(|f| f.to_vec()).collect()));
        if ok { Ok(()) } else { Err(Full) }
    }

    fn deliver_link(&mut self, link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        let state = self.model.state.get(&(link.index, link.generation)).copied();
        assert_eq!(state, Some(LinkState::Up), "a message on link {link:?}, which is not up");
        check_link_message(frames, &self.sender);
        let ok = self.full & (1 << (6 + (link.index & 1))) == 0;
        self.link_msgs.push((link, frames.iter().map(|f| f.to_vec()).collect(), ok));
        if ok { Ok(()) } else { Err(Full) }
    }
}

/// What may go on a link: router-originated VIP with an empty RECIPIENT, or an error addressed to
/// a remote caller.
fn check_link_message(frames: &[&[u8]], sender: &[u8]) {
    let at = |i: usize| frames.get(i).copied().unwrap_or_default();
    assert!(frames.len() >= 6 && at(1) == SIGNATURE, "link message {frames:?}");
    match (at(4), at(5)) {
        (b"routing_table", b"hello") => assert_eq!(frames.len(), 8),
        (b"pubsub", b"external_list") => {
            let v = json::parse(at(6));
            assert!(v.is_ok_and(|v| v.kind() == Kind::Object), "external_list body");
            let ok = v.iter().flat_map(|v| v.members()).all(|(k, l)| {
                k.eq_latin1(b"p1") && l.kind() == Kind::Array && l.items().all(|i| i.kind() == Kind::String)
            });
            assert!(ok, "external_list body {:?}", at(6));
        }
        (b"pubsub", b"external_publish") => {
            assert_eq!(frames.len(), 8);
            check_delivery_body(at(7));
        }
        (b"external_rpc", b"send_peer") => {
            let v = json::parse(at(6));
            assert!(v.is_ok_and(|v| v.kind() == Kind::Object), "send_peer body");
            if let Ok(v) = v {
                let plat = v.get(b"from_platform").and_then(|p| p.as_str());
                let peer = v.get(b"from_peer").and_then(|p| p.as_str());
                assert!(plat.is_some_and(|p| p.eq_latin1(b"p1")), "from_platform set by the router");
                assert!(peer.is_some_and(|p| p.eq_latin1(sender)), "from_peer = the caller");
            }
        }
        (b"error", _) => assert!(!at(0).is_empty() && frames.len() == 9 && at(8) == b"external_rpc"),
        other => panic!("unexpected link message {other:?}"),
    }
    if at(4) != b"error" {
        assert!(at(0).is_empty(), "RECIPIENT of a router message on a link is empty");
    }
}

fn link_discovery(variant: u8) -> Vec<u8> {
    let e = |n: &str, port: u16| {
        format!(r#""{n}": {{"instance-name": "{n}", "vip-address": "tcp://127.0.0.1:{port}", "serverkey": "{KEY}"}}"#)
    };
    match variant % 5 {
        0 => format!("{{{}, {}}}", e("p2", 23917), e("p3", 24001)),
        1 => format!("{{{}}}", e("p2", 23917)),
        2 => format!("{{{}, {}}}", e("p2", 23999), e("p3", 24001)),
        3 => format!("{{{}, {}, {}}}", e("p1", 1), e("p3", 24001), e("p5", 24005)),
        _ => "{\"p2\": [".to_string(),
    }
    .into_bytes()
}

/// The harness's per-input state.
struct LinkRun {
    router: Router,
    stats: Stats,
    model: RefCell<LinkModel>,
    now: u64,
}

impl LinkRun {
    fn sink<'m>(model: &'m LinkModel, full: u8, sender: &[u8]) -> LinkSink<'m> {
        LinkSink { model, full, sender: sender.to_vec(), peer_msgs: Vec::new(), link_msgs: Vec::new() }
    }

    fn check(&self) {
        let model = self.model.borrow();
        let up = self.router.links.iter().filter(|l| l.state() == LinkState::Up).count();
        assert_eq!(up, self.router.links.up_count());
        for l in self.router.links.iter() {
            let id = l.id();
            let seen = model.state.get(&(id.index, id.generation)).copied().unwrap_or(LinkState::Down);
            assert_eq!(seen, l.state(), "link {id:?} state");
        }
    }

    fn poll(&mut self) {
        loop {
            let model = self.model.borrow();
            let mut sink = Self::sink(&model, 0, b"");
            let action = self.router.poll_link(&mut self.stats, Instant(self.now), &mut sink);
            drop(sink);
            drop(model);
            match action {
                Some(LinkAction::Dial(id)) => {
                    self.model.borrow_mut().state.insert((id.index, id.generation), LinkState::Connecting);
                }
                Some(LinkAction::Close(id)) => {
                    self.model.borrow_mut().state.remove(&(id.index, id.generation));
                }
                None => break,
            }
        }
    }

    /// The current id of link slot `i` (configured links in slot order).
    fn link(&self, i: u8) -> Option<LinkId> {
        self.router.links.iter().nth(usize::from(i & 1)).map(|l| l.id())
    }

    fn link_event(&mut self, op: u8, c: &mut Cursor<'_>) {
        let Some(id) = self.link(op) else { return };
        let key = (id.index, id.generation);
        match op & 0xF0 {
            0xB0 => {
                let connecting = self.model.borrow().state.get(&key) == Some(&LinkState::Connecting);
                if connecting {
                    self.model.borrow_mut().state.insert(key, LinkState::Up);
                    let model = self.model.borrow();
                    let mut sink = Self::sink(&model, c.byte(), b"");
                    self.router.link_up(&mut self.stats, id, &mut sink);
                    let hello = sink.link_msgs.first().map(|m| m.1.get(5).cloned());
                    assert_eq!(hello, Some(Some(b"hello".to_vec())), "hello first on a new link");
                }
            }
            _ => {
                let reason =
                    [DownReason::ConnectFailed, DownReason::Refused, DownReason::HandshakeFailed, DownReason::Closed];
                let live = matches!(self.model.borrow().state.get(&key), Some(LinkState::Up | LinkState::Connecting));
                if live {
                    self.model.borrow_mut().state.insert(key, LinkState::Down);
                    self.router.link_down(&mut self.stats, id, Instant(self.now), reason[usize::from(op >> 1 & 3)]);
                }
            }
        }
    }

    fn message(&mut self, from: u16, full: u8, buf: &[u8], parts: &Parts) {
        let msg = Message::new(buf, parts);
        let me = LINK_PEERS.get(usize::from(from)).copied().unwrap_or_default();
        let model = self.model.borrow();
        let mut sink = Self::sink(&model, full, me);
        let outcome = self.router.handle(&mut self.stats, PeerId(from), msg, &mut sink, OnFull::Again);
        let env = Envelope::parse(msg).ok();
        let is_publish =
            env.is_some_and(|e| e.recipient.is_empty() && e.subsystem == b"pubsub" && e.arg(0) == b"publish");
        if is_publish && outcome == Outcome::Done && env.is_some_and(|e| e.arg_count() >= 3) {
            let local = sink.peer_msgs.iter().filter(|(_, f)| f.get(5).is_some_and(|o| o == b"publish")).count();
            let remote = sink
                .link_msgs
                .iter()
                .filter(|(_, f, ok)| *ok && f.get(5).is_some_and(|o| o == b"external_publish"))
                .count();
            let reply = sink
                .peer_msgs
                .iter()
                .rev()
                .find(|(p, f)| *p == from && f.get(5).is_some_and(|o| o == b"request_response"));
            if let Some((_, f)) = reply
                && let Some(Ok(count)) = f.get(6).map(|c| <[u8; 4]>::try_from(c.as_slice()))
                && !sink.peer_msgs.iter().any(|(_, f)| f.get(4).is_some_and(|s| s == b"error"))
            {
                assert_eq!(u32::from_le_bytes(count) as usize, local + remote, "publish count = local + queued links");
            }
        }
    }
}

/// A `Router` for platform `p1` with links to `p2` and `p3` (from a discovery file) and five
/// peers (two agents, p2's and p3's links to us, `keydiscovery`), driven by the input through
/// the server contract: `poll_link` (dials, closes), `link_up`, `link_down`, `link_input`,
/// messages from the peers, detach/re-attach, and discovery reloads (one of them unparsable).
///
/// Layout: byte 0 = router seed and which discovery file; then operations: `0x00..=0x9F` a
/// message from peer `op % 5` (full mask byte: bit p = peer p full, bits 6/7 = link 0/1 full;
/// frame count `% 16`; frames as in `vip_route`, length bytes `≥ 0xC0` are `LINK_TOKENS`);
/// `0xA0..` poll; `0xB0..` link `op & 1` up (if connecting; a full-mask byte follows);
/// `0xC0..` link down (reason `op >> 1 & 3`); `0xD0..` a message arriving on link `op & 1`;
/// `0xE0..` detach and re-attach peer `op % 5`; `0xF0..` a discovery reload (variant = next
/// byte). Time advances by `op` milliseconds × 16 per operation.
///
/// Checks: every message on a link goes to a link the server was told is up, starts with an
/// empty RECIPIENT (an error to a remote caller excepted) and is well formed (`hello`, an
/// `external_list` of `{"p1": [strings]}`, an `external_publish` with a valid delivery body, a
/// `send_peer` whose `from_platform` is `p1` and `from_peer` the real caller); a publish's count
/// is its local deliveries plus the links it was queued to; the link states the router reports
/// are the ones the harness drove; nothing panics.
pub fn fuzz_links(data: &[u8]) {
    let mut c = Cursor { data };
    let b0 = c.byte();
    let mut info = PlatformInfo::with_router_id(b"fuzz-links");
    info.instance_name = b"p1".to_vec();
    info.addresses_json = br#"["tcp://127.0.0.1:22916"]"#.to_vec();
    let limits =
        Limits { max_connections: 8, max_links: 2, max_subscriptions: 32, max_subs_per_peer: 8, ..Limits::COMPILED };
    let mut run = LinkRun {
        router: Router::new(&limits, info, u32::from(b0)),
        stats: Stats::default(),
        model: RefCell::new(LinkModel::default()),
        now: 0,
    };
    let hello: [&[u8]; 6] = [b"", SIGNATURE, b"", b"h", b"hello", b"hello"];
    let (mut hbuf, mut hparts) = (Vec::new(), Parts::new());
    for f in hello {
        assert!(hparts.push(Part { start: hbuf.len() as u32, len: f.len() as u32 }).is_ok());
        hbuf.extend_from_slice(f);
    }
    for (i, id) in LINK_PEERS.iter().enumerate() {
        assert!(run.router.attach(&mut run.stats, PeerId(i as u16), id).is_ok());
        run.message(i as u16, 0, &hbuf, &hparts);
    }
    if let Ok(d) = parse_discovery(&link_discovery(b0 >> 4)) {
        run.router.set_file_links(&mut run.stats, &d);
    }
    let mut buf = Vec::new();
    let mut ops = 0;
    while !c.is_empty() && ops < 256 {
        ops += 1;
        let op = c.byte();
        run.now += u64::from(op) * 16;
        match op {
            0x00..=0x9F => {
                let full = c.byte();
                let n = usize::from(c.byte()) % 16;
                buf.clear();
                let mut parts = Parts::new();
                for _ in 0..n {
                    let l = c.byte();
                    let start = buf.len();
                    match LINK_TOKENS.get(usize::from(l.wrapping_sub(TOKEN_BASE))).filter(|_| l >= TOKEN_BASE) {
                        Some(t) => buf.extend_from_slice(t),
                        None => buf.extend_from_slice(c.take(usize::from(l))),
                    }
                    assert!(parts.push(Part { start: start as u32, len: (buf.len() - start) as u32 }).is_ok());
                }
                run.message(u16::from(op % 5), full, &buf, &parts);
            }
            0xA0..=0xAF => run.poll(),
            0xB0..=0xCF => run.link_event(op, &mut c),
            0xD0..=0xDF => {
                if let Some(id) = run.link(op) {
                    run.router.link_input(&mut run.stats, id, Message::new(&hbuf, &hparts));
                }
            }
            0xE0..=0xEF => {
                let p = u16::from(op % 5);
                let model = run.model.borrow();
                let mut sink = LinkRun::sink(&model, 0, b"");
                run.router.detach(&mut run.stats, PeerId(p), &mut sink);
                drop(sink);
                drop(model);
                let id = LINK_PEERS.get(usize::from(p)).copied().unwrap_or_default();
                assert!(run.router.attach(&mut run.stats, PeerId(p), id).is_ok());
                run.message(p, 0, &hbuf, &hparts);
            }
            _ => {
                if let Ok(d) = parse_discovery(&link_discovery(c.byte())) {
                    run.router.set_file_links(&mut run.stats, &d);
                }
            }
        }
        run.check();
    }
}
