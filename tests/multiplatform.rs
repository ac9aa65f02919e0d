//! Multi-platform routing at the VIP level, without sockets (phase 1 of issue #14): the link
//! table driven through the server contract (`poll_link`, `link_up`, `link_down`,
//! `link_input`, `Sink::deliver_link`) by a test double, and the wire of
//! `../shared/research/multiplatform.md` §3 byte for byte.

use viprouter::limits::Limits;
use viprouter::time::Instant;
use viprouter::vip::discovery::parse_discovery;
use viprouter::vip::links::{DownReason, LinkAction, LinkId, LinkState};
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{Full, OnFull, Outcome, Sink};
use viprouter::zmtp::{Message, Part, Parts};

mod common;
use common::router::TestRouter as Router;

const KEY: &str = "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ";
const A: u16 = 1; // agent.a
const B: u16 = 2; // agent.b
const X: u16 = 3; // p2's link to us
const KD: u16 = 4; // keydiscovery

type Frames = Vec<Vec<u8>>;

/// Records deliveries to peers and to links; peers and links listed as full refuse.
#[derive(Default)]
struct TestSink {
    peers: Vec<(u16, Frames)>,
    links: Vec<(LinkId, Frames)>,
    full_links: Vec<LinkId>,
}

impl Sink for TestSink {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.peers.push((to.0, frames.iter().map(|f| f.to_vec()).collect()));
        Ok(())
    }

    fn deliver_link(&mut self, link: LinkId, frames: &[&[u8]]) -> Result<(), Full> {
        if self.full_links.contains(&link) {
            return Err(Full);
        }
        self.links.push((link, frames.iter().map(|f| f.to_vec()).collect()));
        Ok(())
    }
}

impl TestSink {
    fn take_links(&mut self) -> Vec<Frames> {
        self.links.drain(..).map(|(_, f)| f).collect()
    }

    fn take_peers(&mut self) -> Vec<(u16, Frames)> {
        std::mem::take(&mut self.peers)
    }
}

fn frames(v: &[&[u8]]) -> Frames {
    v.iter().map(|f| f.to_vec()).collect()
}

/// Route one message from `from`; every multi-platform path finishes (never pauses the sender).
fn send(r: &mut Router, s: &mut TestSink, from: u16, f: &[&[u8]]) {
    let mut buf = Vec::new();
    let mut parts = Parts::new();
    for x in f {
        parts.push(Part { start: buf.len() as u32, len: x.len() as u32 }).unwrap();
        buf.extend_from_slice(x);
    }
    assert_eq!(r.handle(PeerId(from), Message::new(&buf, &parts), s, OnFull::Pause), Outcome::Done);
}

fn pubsub(r: &mut Router, s: &mut TestSink, from: u16, args: &[&[u8]]) {
    let mut f: Vec<&[u8]> = vec![b"", b"VIP1", b"", b"m1", b"pubsub"];
    f.extend_from_slice(args);
    send(r, s, from, &f)
}

fn discovery(names: &[(&str, u16)]) -> Vec<u8> {
    let entries: Vec<String> = names
        .iter()
        .map(|(n, port)| {
            format!(
                r#""{n}": {{"vip-address": "tcp://127.0.0.1:{port}", "instance-name": "{n}", "serverkey": "{KEY}"}}"#
            )
        })
        .collect();
    format!("{{{}}}", entries.join(", ")).into_bytes()
}

/// p1 with agents a, b, p2's inbound link X and keydiscovery registered, a discovery file
/// naming p2 applied, and the link to p2 dialled (not up yet).
fn platform() -> (Router, TestSink, LinkId) {
    let mut info = PlatformInfo::with_router_id(b"rid");
    info.instance_name = b"p1".to_vec();
    info.addresses_json = br#"["tcp://127.0.0.1:22916"]"#.to_vec();
    let limits = Limits { max_connections: 16, max_links: 4, ..Limits::COMPILED };
    let mut r = Router::new(&limits, info, 7);
    let mut s = TestSink::default();
    for (p, id) in
        [(A, &b"agent.a"[..]), (B, b"agent.b"), (X, b"instance.p1.0.1234567890123456"), (KD, b"keydiscovery")]
    {
        r.attach(PeerId(p), id).unwrap();
        send(&mut r, &mut s, p, &[b"", b"VIP1", b"", b"h", b"hello", b"hello"]);
    }
    r.set_file_links(&parse_discovery(&discovery(&[("p2", 23917)])).unwrap());
    let Some(LinkAction::Dial(id)) = r.poll_link(Instant(0), &mut s) else { panic!("no dial") };
    assert_eq!(r.links.get(id).unwrap().state(), LinkState::Connecting);
    s.take_peers();
    (r, s, id)
}

fn up(r: &mut Router, s: &mut TestSink, id: LinkId) {
    r.link_up(id, s);
    let out = s.take_links();
    assert_eq!(out[0], frames(&[b"", b"VIP1", b"", b"", b"routing_table", b"hello", b"hello", b"p1"]));
    assert_eq!(out.last().unwrap()[5], b"external_list");
}

const DEVICES_BODY: &[u8] = br#"{"bus": "", "headers": {"h": 1}, "message": {"v": 42}}"#;
const DELIVERY: &[u8] = br#"{"sender": "agent.a", "bus": "", "headers": {"h": 1}, "message": {"v": 42}}"#;

fn count(out: &[(u16, Frames)]) -> u32 {
    let last = &out.last().unwrap().1;
    assert_eq!(last[5], b"request_response");
    u32::from_le_bytes(last[6].as_slice().try_into().unwrap())
}

#[test]
fn link_up_sends_hello_then_the_list_and_the_list_follows_all_platforms_changes() {
    let (mut r, mut s, id) = platform();
    r.link_up(id, &mut s);
    assert_eq!(
        s.take_links(),
        vec![
            frames(&[b"", b"VIP1", b"", b"", b"routing_table", b"hello", b"hello", b"p1"]),
            frames(&[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p1": []}"#]),
        ]
    );
    let sub = |p: &str, all: bool| format!(r#"{{"prefix": "{p}", "bus": "", "all_platforms": {all}}}"#);
    pubsub(&mut r, &mut s, A, &[b"subscribe", sub("devices", true).as_bytes()]);
    assert_eq!(
        s.take_links(),
        vec![frames(&[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p1": ["devices"]}"#])]
    );
    // internal subscriptions and a second subscriber to the same prefix change nothing
    pubsub(&mut r, &mut s, A, &[b"subscribe", sub("local", false).as_bytes()]);
    pubsub(&mut r, &mut s, B, &[b"subscribe", sub("devices", true).as_bytes()]);
    assert!(s.take_links().is_empty(), "no external_list storm");
    // synchronize (decorator subscriptions) adds an all prefix
    send(
        &mut r,
        &mut s,
        B,
        &[
            b"",
            b"VIP1",
            b"",
            b"m",
            b"pubsub",
            b"synchronize",
            b"connected",
            br#"{"subscriptions": {"all": {"": ["devices", "alerts/"]}}}"#,
        ],
    );
    assert_eq!(
        s.take_links(),
        vec![frames(&[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p1": ["devices", "alerts/"]}"#])]
    );
    // agent.b leaves: only agent.a's devices stays
    send(&mut r, &mut s, B, &[b"", b"VIP1", b"", b"m", b"agentstop", b"agent.b"]);
    assert_eq!(
        s.take_links(),
        vec![frames(&[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p1": ["devices"]}"#])]
    );
    assert_eq!(r.links.get(id).unwrap().counters.lists_out, 4);
}

#[test]
fn remote_subscriptions_drive_forwarding_and_true_publisher_counts() {
    let (mut r, mut s, id) = platform();
    up(&mut r, &mut s, id);
    pubsub(&mut r, &mut s, B, &[b"subscribe", br#"{"prefix": "devices", "bus": ""}"#]);
    // p2's link tells us what p2 wants: reply 01 to X, as VOLTTRON does
    send(
        &mut r,
        &mut s,
        X,
        &[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p2": ["devices/", "x"], "p1": ["ignored"]}"#],
    );
    let out = s.take_peers();
    assert_eq!(
        out.last().unwrap(),
        &(X, frames(&[b"", b"VIP1", b"instance.p1.0.1234567890123456", b"", b"pubsub", b"request_response", b"\x01"]))
    );
    assert_eq!(r.links.ext_subs(id).unwrap().len(), 2, "our own name's entry is skipped");
    // publish devices/x/y from agent.a: agent.b locally, then the link
    pubsub(&mut r, &mut s, A, &[b"publish", b"devices/x/y", DEVICES_BODY]);
    let out = s.take_peers();
    assert_eq!(out[0], (B, frames(&[b"", b"VIP1", b"", b"m1", b"pubsub", b"publish", b"devices/x/y", DELIVERY])));
    assert_eq!(count(&out), 2, "1 local + 1 remote (02000000)");
    assert_eq!(
        s.take_links(),
        vec![frames(&[b"", b"VIP1", b"", b"m1", b"pubsub", b"external_publish", b"devices/x/y", DELIVERY])]
    );
    // a topic only p2 wants: count 1, no local delivery
    pubsub(&mut r, &mut s, A, &[b"publish", b"x/1", DEVICES_BODY]);
    assert_eq!(count(&s.take_peers()), 1);
    assert_eq!(s.take_links().len(), 1);
    // the link's queue is full: dropped, not counted
    s.full_links.push(id);
    pubsub(&mut r, &mut s, A, &[b"publish", b"x/2", DEVICES_BODY]);
    assert_eq!(count(&s.take_peers()), 0);
    s.full_links.clear();
    assert_eq!(r.stats.external_publish_dropped_full, 1);
    // the link goes down: nothing queued, nothing counted, nothing replayed when it is back
    r.link_down(id, Instant(10), DownReason::Closed);
    pubsub(&mut r, &mut s, A, &[b"publish", b"devices/x/z", DEVICES_BODY]);
    assert_eq!(count(&s.take_peers()), 1, "agent.b only");
    assert!(s.take_links().is_empty());
    assert_eq!((r.stats.external_publish_dropped_down, r.links.get(id).unwrap().counters.dropped_down), (1, 1));
    assert_eq!(r.poll_link(Instant(11), &mut s), None, "backoff");
    let Some(LinkAction::Dial(again)) = r.poll_link(Instant(1000), &mut s) else { panic!("redial") };
    r.link_up(again, &mut s);
    let replay = s.take_links();
    assert_eq!(replay.len(), 2, "hello and the list, no stale publish: {replay:?}");
    // p2's link to us goes (its router restarted): its subscriptions go with it
    r.detach(PeerId(X), &mut s);
    assert!(r.links.ext_subs(id).unwrap().is_empty());
    pubsub(&mut r, &mut s, A, &[b"publish", b"devices/x/y", DEVICES_BODY]);
    assert_eq!(count(&s.take_peers()), 1);
    assert!(s.take_links().is_empty());
    assert_eq!(r.stats.external_publish_out, 2);
}

#[test]
fn external_lists_are_validated_and_only_links_may_send_them() {
    let (mut r, mut s, id) = platform();
    for bad in [&b"[]"[..], b"{\"p2\": \"devices\"}", b"{\"p2\": [1]}", b"nope"] {
        send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", bad]);
        assert_eq!(s.take_peers().last().unwrap().1[6], b"\x00");
    }
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"", b"pubsub", b"external_list"]);
    assert_eq!(s.take_peers().last().unwrap().1[6], b"\x00");
    assert_eq!(r.stats.external_malformed, 5);
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p2": [""]}"#]);
    assert!(s.take_peers().is_empty(), "a local agent gets nothing");
    assert_eq!(r.stats.rejected_external_not_link, 1);
    assert!(r.links.ext_subs(id).unwrap().is_empty());
    // a platform we have no link to (name mismatch): counted
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", br#"{"p2x": [""]}"#]);
    assert_eq!(r.stats.external_list_unknown_platform, 1);
    // over the per-link capacity: what fits is kept, answered 00
    let many: Vec<String> = (0..2000).map(|i| format!("\"topic/{i}\"")).collect();
    let body = format!(r#"{{"p2": [{}]}}"#, many.join(", "));
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"", b"pubsub", b"external_list", body.as_bytes()]);
    assert_eq!(s.take_peers().last().unwrap().1[6], b"\x00");
    assert_eq!(r.links.ext_subs(id).unwrap().len(), viprouter::limits::MAX_EXT_PREFIXES_PER_LINK);
    assert_eq!(r.stats.rejected_external_prefixes, 2000 - viprouter::limits::MAX_EXT_PREFIXES_PER_LINK as u64);
}

#[test]
fn external_publishes_reach_local_subscribers_and_protected_topics_hold() {
    let (mut r, mut s, _) = platform();
    pubsub(&mut r, &mut s, B, &[b"subscribe", br#"{"prefix": "", "bus": "", "all_platforms": true}"#]);
    s.take_peers();
    let body = br#"{"sender": "pub2", "bus": "", "headers": {}, "message": 1}"#;
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"M2", b"pubsub", b"external_publish", b"devices/a", body]);
    assert_eq!(
        s.take_peers(),
        vec![(B, frames(&[b"", b"VIP1", b"", b"M2", b"pubsub", b"publish", b"devices/a", body]))]
    );
    assert!(s.take_links().is_empty(), "never forwarded again");
    // from a local agent: ignored (no forged senders)
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"M3", b"pubsub", b"external_publish", b"devices/a", body]);
    assert!(s.take_peers().is_empty());
    // malformed: no topic/body, a body without a bus string
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"M4", b"pubsub", b"external_publish"]);
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"M4", b"pubsub", b"external_publish", b"t", b"{\"bus\": 1}"]);
    assert!(s.take_peers().is_empty());
    assert_eq!(r.stats.external_malformed, 2);
    // protected topic: refused unless USER_ID names a user with the capability
    r.pubsub
        .set_protected_topics_json(br#"{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}]}"#)
        .unwrap();
    r.pubsub.set_user_capabilities_json(br#"{"capabilities": {"p2.pub2": {"can_publish": null}}}"#).unwrap();
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"M5", b"pubsub", b"external_publish", b"secret/x", body]);
    assert!(s.take_peers().is_empty());
    assert_eq!(r.stats.rejected_external_protected, 1);
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"p2.pub2", b"M6", b"pubsub", b"external_publish", b"secret/x", body]);
    assert_eq!(s.take_peers().len(), 1);
    assert_eq!(r.stats.external_publish_in, 3);
}

#[test]
fn send_platform_is_rewritten_onto_the_link_or_answered_113_or_11() {
    let (mut r, mut s, id) = platform();
    let call = br#"{"to_platform": "p2", "to_peer": "callee2", "from_platform": "", "from_peer": "admin", "args": ["{\"jsonrpc\": \"2.0\", \"id\": 1}"]}"#;
    let rewritten = br#"{"to_platform": "p2", "to_peer": "callee2", "from_platform": "p1", "from_peer": "agent.a", "args": ["{\"jsonrpc\": \"2.0\", \"id\": 1}"]}"#;
    let msg_id = b"17.8766231";
    let rpc = |r: &mut Router, s: &mut TestSink, body: &[u8]| {
        send(r, s, A, &[b"", b"VIP1", b"", msg_id, b"external_rpc", b"send_platform", body]);
    };
    // link not up yet → 113 naming the platform, MSG_ID byte-exact, subsystem external_rpc
    rpc(&mut r, &mut s, call);
    // RPC's MSG_ID is a JSON number: the error carries it as a JSON string, which VOLTTRON's
    // agent library parses back into its own key (`error-msg-id = agent-readable`, vip::error);
    // forwarded on the link it stays byte-exact.
    let quoted = b"\"17.8766231\"";
    let e113 =
        frames(&[b"", b"VIP1", b"agent.a", quoted, b"error", b"113", b"No route to host", b"p2", b"external_rpc"]);
    assert_eq!(s.take_peers(), vec![(A, e113.clone())]);
    up(&mut r, &mut s, id);
    rpc(&mut r, &mut s, call);
    assert!(s.take_peers().is_empty(), "no reply to the caller");
    assert_eq!(s.take_links(), vec![frames(&[b"", b"VIP1", b"", msg_id, b"external_rpc", b"send_peer", rewritten])]);
    // unknown platform → 113 naming it
    rpc(&mut r, &mut s, br#"{"to_platform": "p9", "to_peer": "x", "args": []}"#);
    assert_eq!(s.take_peers()[0].1[7], b"p9");
    // a full link → 11
    s.full_links.push(id);
    rpc(&mut r, &mut s, call);
    assert_eq!(s.take_peers()[0].1[5..8], frames(&[b"11", b"Resource temporarily unavailable", b"p2"])[..]);
    s.full_links.clear();
    // down again → 113
    r.link_down(id, Instant(5), DownReason::Closed);
    rpc(&mut r, &mut s, call);
    assert_eq!(s.take_peers(), vec![(A, e113)]);
    assert_eq!((r.stats.external_rpc_out, r.stats.external_rpc_unreachable), (1, 3));
}

#[test]
fn send_peer_from_a_link_reaches_the_callee_with_a_remote_user_or_errors_back() {
    let (mut r, mut s, id) = platform();
    up(&mut r, &mut s, id);
    let body =
        br#"{"to_platform": "p1", "to_peer": "agent.b", "from_platform": "p2", "from_peer": "caller2", "args": []}"#;
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"M7", b"external_rpc", b"send_peer", body]);
    assert_eq!(
        s.take_peers(),
        vec![(B, frames(&[b"", b"VIP1", b"p2.caller2", b"M7", b"external_rpc", b"send_peer", body]))]
    );
    // the callee is not here: the caller hears 113 through its platform's router, the number
    // written `+113` so that a VOLTTRON router on the way cannot re-pack it (vip::external_rpc)
    let body =
        br#"{"to_platform": "p1", "to_peer": "ghost", "from_platform": "p2", "from_peer": "caller2", "args": []}"#;
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"M8", b"external_rpc", b"send_peer", body]);
    assert!(s.take_peers().is_empty());
    assert_eq!(
        s.take_links(),
        vec![frames(&[
            b"caller2",
            b"VIP1",
            b"",
            b"M8",
            b"error",
            b"+113",
            b"No route to host",
            b"ghost",
            b"external_rpc"
        ])]
    );
    // a JSON-number MSG_ID is quoted in that error too (vip::error, agent-readable)
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"5.25", b"external_rpc", b"send_peer", body]);
    assert_eq!(s.take_links()[0][3], b"\"5.25\"");
    // a local agent cannot pretend to be a remote caller
    let forged =
        br#"{"to_platform": "p1", "to_peer": "agent.b", "from_platform": "p2", "from_peer": "admin", "args": []}"#;
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"M9", b"external_rpc", b"send_peer", forged]);
    assert!(s.take_peers().is_empty());
    assert_eq!((r.stats.external_rpc_in, r.stats.rejected_external_not_link), (1, 1));
}

#[test]
fn routing_table_hello_welcome_keydiscovery_and_hostile_input() {
    let (mut r, mut s, id) = platform();
    // p2 says hello before our link is up: the welcome is owed, sent right after our hello
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"", b"", b"routing_table", b"hello", b"hello", b"p2"]);
    assert!(s.take_peers().is_empty() && s.take_links().is_empty(), "no reply on X's connection");
    r.link_up(id, &mut s);
    let out = s.take_links();
    assert_eq!(out[1], frames(&[b"", b"VIP1", b"", b"", b"routing_table", b"hello", b"welcome", b"p1"]));
    assert_eq!(out[2][5], b"external_list");
    // hello while the link is up: welcome at once, with U and M of the hello
    send(&mut r, &mut s, X, &[b"", b"VIP1", b"u", b"m", b"routing_table", b"hello", b"hello", b"p2"]);
    assert_eq!(
        s.take_links(),
        vec![frames(&[b"", b"VIP1", b"u", b"m", b"routing_table", b"hello", b"welcome", b"p1"])]
    );
    // keydiscovery configures a link; anyone else is ignored
    let entry = br#"{"instance-name": "p3", "vip-address": "tcp://127.0.0.1:24000", "serverkey": "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"}"#;
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"", b"routing_table", b"normalmode_platform_connection", entry]);
    assert!(r.links.by_name(b"p3").is_none());
    send(&mut r, &mut s, KD, &[b"", b"VIP1", b"", b"", b"routing_table", b"normalmode_platform_connection", entry]);
    assert!(r.links.by_name(b"p3").is_some());
    assert!(matches!(r.poll_link(Instant(0), &mut s), Some(LinkAction::Dial(_))));
    // what kills VOLTTRON's router: answered by silence, counted
    let hostile: [&[&[u8]]; 9] = [
        &[b"update", b"{}"],
        &[b"update"],
        &[b"normalmode_platform_connection"],
        &[b"setupmode_platform_connection", b"{\"web-address\": \"http://x\"}"],
        &[b"web-addresses", b"[1]"],
        &[b"hello"],
        &[b"hello", b"hello"],
        &[],
        &[b"frobnicate"],
    ];
    for args in hostile {
        let mut f: Vec<&[u8]> = vec![b"", b"VIP1", b"", b"", b"routing_table"];
        f.extend_from_slice(args);
        send(&mut r, &mut s, A, &f);
        send(&mut r, &mut s, X, &f);
    }
    for bad in [&b"[]"[..], b"x", br#"{"instance-name": "p4"}"#] {
        send(&mut r, &mut s, KD, &[b"", b"VIP1", b"", b"", b"routing_table", b"normalmode_platform_connection", bad]);
    }
    send(&mut r, &mut s, KD, &[b"", b"VIP1", b"", b"", b"routing_table", b"normalmode_platform_connection"]);
    assert!(s.take_peers().is_empty() && s.take_links().is_empty(), "no replies at all");
    assert_eq!(r.stats.routing_table_ignored, 19);
    assert_eq!(r.stats.external_malformed, 4);
    assert_eq!(r.links.len(), 2);
}

#[test]
fn link_input_is_counted_and_stats_show_the_links() {
    let (mut r, mut s, id) = platform();
    up(&mut r, &mut s, id);
    let mut buf = Vec::new();
    let mut parts = Parts::new();
    for f in [&b""[..], b"VIP1", b"x", b"", b"pubsub", b"request_response", b"\x01"] {
        parts.push(Part { start: buf.len() as u32, len: f.len() as u32 }).unwrap();
        buf.extend_from_slice(f);
    }
    r.link_input(id, Message::new(&buf, &parts));
    assert_eq!(r.stats.link_msgs_in, 1);
    send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"q", b"query", b"stats"]);
    let out = s.take_peers();
    let json = std::str::from_utf8(&out[0].1[6]).unwrap();
    assert!(json.contains(r#""links": {"p2": {"state": "up", "address": "tcp://127.0.0.1:23917", "ups": 1"#), "{json}");
    assert!(json.contains(r#""msgs_in": 1"#) && json.contains(r#""link_ups": 1"#), "{json}");
}

#[test]
fn a_reload_with_a_broken_file_is_not_applied_and_entries_naming_us_are_skipped() {
    let (mut r, mut s, id) = platform();
    assert!(parse_discovery(b"{\"p2\": {").is_err(), "the caller keeps the previous links");
    assert!(r.links.get(id).is_some());
    let d = parse_discovery(&discovery(&[("p1", 1), ("p2", 23917), ("p5", 22916)])).unwrap();
    r.set_file_links(&d);
    assert_eq!(r.links.len(), 1, "p1 is us by name, p5's address is ours; p2 unchanged");
    assert_eq!(r.links.by_name(b"p2").unwrap().id(), id);
    assert_eq!(r.poll_link(Instant(0), &mut s), None);
}
