//! The VIP router core without sockets: envelope in, frames out, compared with the worked
//! examples of VIP.md §15 and the rules of §4–§8.

use viprouter::limits::Limits;
use viprouter::vip::error::ErrorMsgId;
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{OnFull, Outcome};
use viprouter::zmtp::Message;

mod common;
use common::router::{Recorder, TestRouter as Router, frames, msg};

const RID: &[u8] = b"4325ac0e-4cd2-40d4-a447-67257c3dbe98";

fn send(r: &mut Router, sink: &mut Recorder, from: u16, frames: &[&[u8]]) -> Outcome {
    let (buf, parts) = msg(frames);
    r.handle(PeerId(from), Message::new(&buf, &parts), sink, OnFull::Pause)
}

fn router() -> Router {
    let mut info = PlatformInfo::with_router_id(RID);
    info.instance_name = b"volttron1".to_vec();
    info.addresses_json = b"[\"tcp://127.0.0.1:22916\"]".to_vec();
    let limits = Limits { max_connections: 16, ..Limits::COMPILED };
    let mut r = Router::new(&limits, info, 0);
    r.attach(PeerId(1), b"agent.a").unwrap();
    r.attach(PeerId(2), b"agent.b").unwrap();
    r
}

#[test]
fn e1_hello_peerlist_add_goes_out_before_welcome() {
    let mut r = router();
    let mut s = Recorder::default();
    assert_eq!(send(&mut r, &mut s, 2, &[b"", b"VIP1", b"", b"h0", b"hello", b"hello"]), Outcome::Done);
    s.out.clear();
    assert_eq!(send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"connect.hello.0", b"hello", b"hello"]), Outcome::Done);
    assert_eq!(s.out.len(), 2);
    // E1.3 to agent.b first, then E1.4/E1.5 to agent.a.
    assert_eq!(s.out[0], (2, frames(&[b"", b"VIP1", b"", b"", b"peerlist", b"add", b"agent.a"])));
    assert_eq!(
        s.out[1],
        (1, frames(&[b"", b"VIP1", b"agent.a", b"connect.hello.0", b"hello", b"welcome", b"1.0", RID, b"agent.a"]))
    );
}

#[test]
fn forwarding_stamps_user_id_and_keeps_msg_id_byte_exact() {
    let mut r = router();
    let mut s = Recorder::default();
    let id = b"1795550813.8764837066011";
    let _ = send(&mut r, &mut s, 1, &[b"agent.b", b"VIP1", b"forged", id, b"RPC", b"{\"x\": 1}", b"\xff\x00"]);
    let last = s.out.last().unwrap();
    assert_eq!(*last, (2, frames(&[b"agent.a", b"VIP1", b"agent.a", id, b"RPC", b"{\"x\": 1}", b"\xff\x00"])));
    // to oneself
    let _ = send(&mut r, &mut s, 1, &[b"agent.a", b"VIP1", b"", b"s", b"RPC"]);
    assert_eq!(*s.out.last().unwrap(), (1, frames(&[b"agent.a", b"VIP1", b"agent.a", b"s", b"RPC"])));
    assert_eq!(r.stats.routed, 2);
}

#[test]
fn e4_errors_113_and_93_and_router_id_is_not_an_alias() {
    let mut r = router();
    let mut s = Recorder::default();
    let _ = send(&mut r, &mut s, 1, &[b"nobody", b"VIP1", b"", b"n1", b"RPC", b"{}"]);
    assert_eq!(
        *s.out.last().unwrap(),
        (1, frames(&[b"", b"VIP1", b"agent.a", b"n1", b"error", b"113", b"No route to host", b"nobody", b"RPC"]))
    );
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"u1", b"foo", b"bar"]);
    assert_eq!(
        *s.out.last().unwrap(),
        (1, frames(&[b"", b"VIP1", b"", b"u1", b"error", b"93", b"Protocol not supported", b"", b"foo"]))
    );
    let _ = send(&mut r, &mut s, 1, &[RID, b"VIP1", b"", b"r1", b"ping"]);
    assert_eq!(s.out.last().unwrap().1[5], b"113");
    // quit from a non-control peer → 93; an empty subsystem → 93
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"u3", b"quit"]);
    assert_eq!(
        *s.out.last().unwrap(),
        (1, frames(&[b"", b"VIP1", b"", b"u3", b"error", b"93", b"Protocol not supported", b"", b"quit"]))
    );
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"u4", b""]);
    assert_eq!(s.out.last().unwrap().1[5], b"93");
}

#[test]
fn external_rpc_without_a_link_is_113_93_or_dropped() {
    // VIP.md §5.9 / §11.6 with multiplatform.md §3: send_platform to a platform without a link
    // is answered 113 naming it (VOLTTRON: the caller times out); send_peer from a peer that is
    // not a platform link (instance.*) is dropped; a body missing the key the op needs gets 93 as
    // in VOLTTRON; a body that is not an object (crashes VOLTTRON, §16.2 B) is dropped; other ops
    // get 93.
    let mut r = router();
    let mut s = Recorder::default();
    let _ = send(
        &mut r,
        &mut s,
        1,
        &[b"", b"VIP1", b"", b"x1", b"external_rpc", b"send_platform", br#"{"to_platform": "p2", "to_peer": "a"}"#],
    );
    assert_eq!(
        *s.out.last().unwrap(),
        (1, frames(&[b"", b"VIP1", b"agent.a", b"x1", b"error", b"113", b"No route to host", b"p2", b"external_rpc"]))
    );
    assert_eq!(r.stats.external_rpc_unreachable, 1);
    let n = s.out.len();
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"x2", b"external_rpc", b"send_peer", br#"{"to_peer": "a"}"#]);
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"x3", b"external_rpc", b"send_platform", b"[1]"]);
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"x4", b"external_rpc", b"send_peer", b"not json"]);
    assert_eq!(s.out.len(), n, "no reply: {:?}", &s.out[n..]);
    assert_eq!(r.stats.external_rpc_dropped, 2);
    assert_eq!(r.stats.rejected_external_not_link, 1);
    for (id, op, body) in
        [(&b"x5"[..], &b"send_platform"[..], &br#"{"to_peer": "a"}"#[..]), (b"x6", b"send_peer", b"{}")]
    {
        let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", id, b"external_rpc", op, body]);
        assert_eq!(
            *s.out.last().unwrap(),
            (1, frames(&[b"", b"VIP1", b"", id, b"error", b"93", b"Protocol not supported", b"", b"external_rpc"]))
        );
    }
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"x7", b"external_rpc", b"other_op", b"{}"]);
    assert_eq!(s.out.last().unwrap().1[5], b"93");
    assert_eq!(r.stats.external_rpc_dropped, 2);
}

#[test]
fn e5_ping_peerlist_query() {
    let mut r = router();
    let mut s = Recorder::default();
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"p2", b"ping", b"ping", b"x", b"y"]);
    assert_eq!(*s.out.last().unwrap(), (1, frames(&[b"", b"VIP1", b"agent.a", b"p2", b"ping", b"pong", b"x", b"y"])));
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"p3", b"ping"]);
    assert_eq!(*s.out.last().unwrap(), (1, frames(&[b"", b"VIP1", b"agent.a", b"p3", b"ping", b"pong"])));
    let _ = send(&mut r, &mut s, 2, &[b"", b"VIP1", b"", b"h", b"hello"]);
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"L1", b"peerlist", b"list"]);
    let (to, f) = s.out.last().unwrap();
    assert_eq!(*to, 1);
    assert_eq!(f[..6], frames(&[b"", b"VIP1", b"", b"L1", b"peerlist", b"listing"])[..]);
    let mut listed: Vec<&[u8]> = f[6..].iter().map(|v| v.as_slice()).collect();
    listed.sort();
    assert_eq!(listed, vec![&b"agent.a"[..], &b"agent.b"[..]]);
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"l1", b"peerlist"]);
    assert_eq!(
        *s.out.last().unwrap(),
        (1, frames(&[b"", b"VIP1", b"", b"l1", b"peerlist", b"error", b"missing operation"]))
    );
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"l2", b"peerlist", b"add", b"zzz"]);
    assert_eq!(
        *s.out.last().unwrap(),
        (1, frames(&[b"", b"VIP1", b"", b"l2", b"peerlist", b"error", b"unknown operation"]))
    );
    for (key, value) in [
        (&b"instance-name"[..], &b"volttron1"[..]),
        (b"addresses", b"[\"tcp://127.0.0.1:22916\"]"),
        (b"platform-version", b"9.0.4"),
        (b"message-bus", b"zmq"),
        (b"agent-monitor-frequency", b"\x58\x02\x00\x00"),
        (b"nonexistent", b""),
    ] {
        let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"q", b"query", key]);
        assert_eq!(*s.out.last().unwrap(), (1, frames(&[b"", b"VIP1", b"", b"q", b"query", b"", value])), "{key:?}");
    }
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"q", b"query", b"stats"]);
    let stats = &s.out.last().unwrap().1[6];
    assert!(stats.starts_with(b"{\"accepted\": ") && stats.ends_with(b"}"));
}

#[test]
fn malformed_input_is_silent_and_unregistered() {
    let mut r = router();
    let mut s = Recorder::default();
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP2", b"", b"x", b"hello"]);
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"x"]);
    assert_eq!(r.peers.registered_len(), 0, "a bad signature does not register the sender");
    assert_eq!((r.stats.unroutable_bad_signature, r.stats.unroutable_too_few_frames), (1, 1));
    // `error` to the router: valid (registers the sender) but never answered (§5.5)
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"x", b"error", b"1"]);
    assert!(s.out.is_empty());
    assert!(r.peers.is_registered(PeerId(1)));
    r.detach(PeerId(1), &mut s);
    r.attach(PeerId(1), b"agent.a").unwrap();
    // a router probe registers the sender (VIP.md §2.4 item 4)
    let _ = send(&mut r, &mut s, 1, &[b""]);
    assert!(r.peers.is_registered(PeerId(1)));
}

#[test]
fn agentstop_and_disconnect_drop_with_the_same_notification() {
    let mut r = router();
    r.attach(PeerId(3), b"control").unwrap();
    let mut s = Recorder::default();
    for p in [1, 2, 3] {
        let _ = send(&mut r, &mut s, p, &[b"", b"VIP1", b"", b"h", b"hello"]);
    }
    s.out.clear();
    // agent.b may not stop agent.a
    let _ = send(&mut r, &mut s, 2, &[b"", b"VIP1", b"", b"", b"agentstop", b"agent.a"]);
    assert!(s.out.is_empty() && r.peers.is_registered(PeerId(1)));
    // agent.a stops itself: the others get the drop, no reply
    let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"", b"agentstop", b"agent.a"]);
    let drop_a = frames(&[b"", b"VIP1", b"", b"", b"peerlist", b"drop", b"agent.a"]);
    let mut to: Vec<u16> = s.out.iter().map(|(p, _)| *p).collect();
    to.sort();
    assert_eq!(to, vec![2, 3]);
    assert!(s.out.iter().all(|(_, f)| *f == drop_a));
    // control stops agent.b; then agent.a's connection closes (not registered any more: silent)
    s.out.clear();
    let _ = send(&mut r, &mut s, 3, &[b"", b"VIP1", b"", b"", b"agentstop", b"agent.b"]);
    assert_eq!(s.out, vec![(3, frames(&[b"", b"VIP1", b"", b"", b"peerlist", b"drop", b"agent.b"]))]);
    s.out.clear();
    r.detach(PeerId(1), &mut s);
    assert!(s.out.is_empty());
    // agent.b speaks again (re-registered: add to control), then disconnects: drop to control
    let _ = send(&mut r, &mut s, 2, &[b"", b"VIP1", b"", b"p", b"ping"]);
    s.out.clear();
    r.detach(PeerId(2), &mut s);
    assert_eq!(s.out, vec![(3, frames(&[b"", b"VIP1", b"", b"", b"peerlist", b"drop", b"agent.b"]))]);
    assert_eq!(r.peers.lookup(b"agent.b"), None);
}

#[test]
fn quit_from_control() {
    let mut r = router();
    r.attach(PeerId(3), b"control").unwrap();
    let mut s = Recorder::default();
    assert_eq!(send(&mut r, &mut s, 3, &[b"", b"VIP1", b"", b"", b"quit"]), Outcome::Quit);
}

#[test]
fn full_recipient_blocks_then_answers_error_11() {
    let mut r = router();
    let mut s = Recorder { full: vec![2], ..Default::default() };
    let m: [&[u8]; 6] = [b"agent.b", b"VIP1", b"", b"f1", b"RPC", b"x"];
    assert_eq!(send(&mut r, &mut s, 1, &m), Outcome::Blocked(PeerId(2)));
    let registered_joins = s.out.len();
    // retry after the stall: error 11 to the sender (E4.6 shape, USER_ID = sender for forwards)
    let (buf, parts) = msg(&m);
    assert_eq!(r.handle(PeerId(1), Message::new(&buf, &parts), &mut s, OnFull::Again), Outcome::Done);
    assert_eq!(s.out.len(), registered_joins + 1);
    assert_eq!(
        *s.out.last().unwrap(),
        (
            1,
            frames(&[
                b"",
                b"VIP1",
                b"agent.a",
                b"f1",
                b"error",
                b"11",
                b"Resource temporarily unavailable",
                b"agent.b",
                b"RPC"
            ])
        )
    );
    // once the recipient is stalled, the next message gets error 11 at once, without a pause
    let mut s = Recorder { full: vec![2], stalled: vec![2], ..Default::default() };
    assert_eq!(send(&mut r, &mut s, 1, &m), Outcome::Done);
    assert_eq!(s.out.last().unwrap().1[5], b"11");
    // a requester whose own queue is full is paused (its reply waits), never dropped
    let mut s = Recorder { full: vec![1], ..Default::default() };
    assert_eq!(send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", b"p", b"ping"]), Outcome::Blocked(PeerId(1)));
}

#[test]
fn duplicate_identity_first_wins_and_generated_ids() {
    let mut r = router();
    assert!(r.attach(PeerId(5), b"agent.a").is_err());
    assert_eq!(r.peers.lookup(b"agent.a"), Some(PeerId(1)));
    assert_eq!(r.stats.rejected_duplicate_identity, 1);
    r.attach(PeerId(6), b"").unwrap();
    let id = r.peers.identity(PeerId(6)).to_vec();
    assert_eq!((id.len(), id[0]), (5, 0));
}

/// README "Choices", `vip::error`: in the errors the router generates (113, 11, 93), a MSG_ID
/// that VOLTTRON's agent library would JSON-parse (RPC's `counter.hash`) is written as a JSON
/// string of its text; forwarded frames and other replies keep it byte-exact; `verbatim` turns
/// this off.
#[test]
fn errors_quote_a_json_msg_id_for_the_agent_library() {
    let id: &[u8] = b"1795550813.8764837066011";
    let quoted: &[u8] = b"\"1795550813.8764837066011\"";
    for (style, want) in [(ErrorMsgId::AgentReadable, quoted), (ErrorMsgId::Verbatim, id)] {
        let mut r = router();
        r.error_msg_id = style;
        let mut s = Recorder::default();
        let _ = send(&mut r, &mut s, 1, &[b"nobody", b"VIP1", b"", id, b"RPC", b"{}"]);
        assert_eq!(
            *s.out.last().unwrap(),
            (1, frames(&[b"", b"VIP1", b"agent.a", want, b"error", b"113", b"No route to host", b"nobody", b"RPC"]))
        );
        let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", id, b"foo"]);
        assert_eq!(s.out.last().unwrap().1[3], want, "93");
        let mut full = Recorder { full: vec![2], stalled: vec![2], ..Default::default() };
        let _ = send(&mut r, &mut full, 1, &[b"agent.b", b"VIP1", b"", id, b"RPC", b"x"]);
        assert_eq!(full.out.last().unwrap().1[5], b"11");
        assert_eq!(full.out.last().unwrap().1[3], want, "11");
        // Not JSON (the agent library's other ids): byte-exact in errors too.
        let _ = send(&mut r, &mut s, 1, &[b"nobody", b"VIP1", b"", b"1795550810.000000.87.000000", b"RPC"]);
        assert_eq!(s.out.last().unwrap().1[3], b"1795550810.000000.87.000000");
        // Forwarded messages and router replies other than errors: byte-exact.
        let _ = send(&mut r, &mut s, 1, &[b"agent.b", b"VIP1", b"", id, b"RPC", b"{}"]);
        assert_eq!(*s.out.last().unwrap(), (2, frames(&[b"agent.a", b"VIP1", b"agent.a", id, b"RPC", b"{}"])));
        let _ = send(&mut r, &mut s, 1, &[b"", b"VIP1", b"", id, b"ping"]);
        assert_eq!(*s.out.last().unwrap(), (1, frames(&[b"", b"VIP1", b"agent.a", id, b"ping", b"pong"])));
    }
}
