//! The router core with a modular VOLTTRON home's rules, without sockets: protected topics from
//! `authz.json` checked against the sender's identity and answered as modular's router answers
//! (`pubsub_service.py` `_send_pubsub_error_response`, measured frames in the research memo
//! §1.5), and `platform.control` as the control identity (`quit`, third-party `agentstop`).

use viprouter::auth::authz::Authz;
use viprouter::auth::layout::Layout;
use viprouter::limits::Limits;
use viprouter::stats::Stats;
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{Full, OnFull, Outcome, Router, Sink};
use viprouter::zmtp::{Message, Part, Parts};

/// Messages the router wrote: (destination peer, frames).
type Out = Vec<(u16, Vec<Vec<u8>>)>;

#[derive(Default)]
struct Recorder(Out);

impl Sink for Recorder {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        self.0.push((to.0, frames.iter().map(|f| f.to_vec()).collect()));
        Ok(())
    }
}

const PUB: u16 = 1;
const SUB: u16 = 2;
const STRANGER: u16 = 3;
const CONTROL: u16 = 4;
const OLD_CONTROL: u16 = 5;

const AUTHZ: &str = r#"{"protected_topics": ["secret"],
  "agents": {"agent.pub": {"pubsub_capabilities": {"secret": "publish"}},
             "agent.sub": {"pubsub_capabilities": {"secret": "subscribe"}},
             "platform.control": {"agent_roles": ["admin"]}},
  "roles": {"admin": {"pubsub_capabilities": {"/.*/": "pubsub"}}}}"#;

/// The router and the counters it is lent (the server owns them).
struct Rig {
    r: Router,
    stats: Stats,
}

fn router() -> Rig {
    let mut r = Router::new(&Limits { max_connections: 64, ..Limits::COMPILED }, PlatformInfo::with_router_id(b"r"), 0);
    let mut stats = Stats::default();
    for (p, id) in [
        (PUB, "agent.pub"),
        (SUB, "agent.sub"),
        (STRANGER, "stranger"),
        (CONTROL, "platform.control"),
        (OLD_CONTROL, "control"),
    ] {
        r.attach(&mut stats, PeerId(p), id.as_bytes()).unwrap();
    }
    r.pubsub.set_authz(Some(Authz::parse(AUTHZ.as_bytes()).unwrap()));
    r.set_control_identity(Layout::Modular.control_identity());
    Rig { r, stats }
}

/// Send `[sender, '', 'VIP1', user_id, msg_id, subsystem, args...]`; what the router wrote,
/// without peerlist notifications.
fn send(rig: &mut Rig, from: u16, user_id: &[u8], subsystem: &[u8], args: &[&[u8]]) -> (Outcome, Out) {
    let mut all: Vec<&[u8]> = vec![b"", b"VIP1", user_id, b"m1", subsystem];
    all.extend_from_slice(args);
    let (mut buf, mut parts) = (Vec::new(), Parts::new());
    for f in &all {
        parts.push(Part { start: buf.len() as u32, len: f.len() as u32 }).unwrap();
        buf.extend_from_slice(f);
    }
    let mut s = Recorder::default();
    let o = rig.r.handle(&mut rig.stats, PeerId(from), Message::new(&buf, &parts), &mut s, OnFull::Pause);
    s.0.retain(|(_, f)| f.get(4).map(Vec::as_slice) != Some(b"peerlist"));
    (o, s.0)
}

fn v(frames: &[&[u8]]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.to_vec()).collect()
}

fn subscribe(r: &mut Rig, from: u16, prefixes: &str) -> Out {
    let body = format!("{{\"prefix\": {prefixes}, \"bus\": \"\", \"all_platforms\": false}}");
    send(r, from, b"", b"pubsub", &[b"subscribe", body.as_bytes()]).1
}

const BODY: &[u8] = br#"{"bus": "", "headers": {}, "message": 1}"#;

/// modular's refusal as the router must write it: USER_ID empty, then the -32001 text.
fn refusal(to: u16, text: &[u8]) -> (u16, Vec<Vec<u8>>) {
    (to, v(&[b"", b"VIP1", b"", b"m1", b"error", b"-32001", text, b"", b"pubsub"]))
}

#[test]
fn protected_subscribe_refused_as_modular_answers_and_nothing_stored() {
    let mut r = router();
    let out = subscribe(&mut r, STRANGER, r#"["open/", "secret/"]"#);
    assert_eq!(
        out,
        vec![
            refusal(STRANGER, b"Peer: stranger not authorized to subscribe to secret/"),
            (STRANGER, v(&[b"", b"VIP1", b"stranger", b"m1", b"pubsub", b"request_response", &[0]])),
        ]
    );
    assert_eq!(r.r.pubsub.subscriptions().len(), 0, "all or nothing: open/ was not stored either");
    assert_eq!(r.stats.rejected_protected_subscribe, 1);
    // A publish-only capability does not allow subscribing (modular checks subscribes as
    // "publish": viprouter checks the real access).
    assert_eq!(subscribe(&mut r, PUB, r#""secret""#)[0].1[4], b"error");
    assert_eq!(
        subscribe(&mut r, SUB, r#""secret""#),
        vec![(SUB, v(&[b"", b"VIP1", b"agent.sub", b"m1", b"pubsub", b"request_response", &[1]]))]
    );
    assert_eq!(subscribe(&mut r, STRANGER, r#""open/""#)[0].1[6], [1]);
}

#[test]
fn protected_publish_refused_checked_against_the_sender_not_user_id() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, SUB, r#""secret""#)[0].1[6], [1]);
    // USER_ID claims the admin identity: the sender's identity is what counts.
    let (o, out) = send(&mut r, STRANGER, b"platform.control", b"pubsub", &[b"publish", b"secret/x", BODY]);
    assert_eq!(o, Outcome::Done);
    assert_eq!(
        out,
        vec![
            refusal(STRANGER, b"Peer: stranger not authorized to publish to secret/x"),
            (STRANGER, v(&[b"", b"VIP1", b"stranger", b"m1", b"pubsub", b"request_response", &[0, 0, 0, 0]])),
        ],
        "error, then count 0, nothing delivered"
    );
    assert_eq!(r.stats.rejected_protected_topic, 1);
    // The capability holder publishes, with an empty USER_ID as modular agents send.
    let (_, out) = send(&mut r, PUB, b"", b"pubsub", &[b"publish", b"secret/x", BODY]);
    assert_eq!(out.len(), 2, "one delivery and the count: {out:?}");
    assert_eq!(out[0].0, SUB);
    assert_eq!(out[1].1[6], [1, 0, 0, 0]);
    // A subscribe-only capability does not allow publishing.
    let (_, out) = send(&mut r, SUB, b"", b"pubsub", &[b"publish", b"secret/x", BODY]);
    assert_eq!(out[0].1[4], b"error");
    // The 9.x tables are not consulted: an auth_update from platform.auth changes nothing here.
    let (_, out) = send(&mut r, STRANGER, b"", b"pubsub", &[b"publish", b"open", BODY]);
    assert_eq!(out.last().unwrap().1[5], b"request_response");
}

#[test]
fn synchronize_leaves_out_protected_prefixes() {
    let mut r = router();
    let body = br#"{"subscriptions": {"internal": {"": ["open", "secret/a"]}}}"#;
    let (_, out) = send(&mut r, STRANGER, b"", b"pubsub", &[b"synchronize", b"connected", body]);
    assert!(out.is_empty(), "synchronize has no reply");
    assert_eq!(r.r.pubsub.subscriptions().len(), 1, "only `open` was stored");
    assert_eq!(r.stats.rejected_protected_subscribe, 1);
    let (_, out) = send(&mut r, SUB, b"", b"pubsub", &[b"synchronize", b"connected", body]);
    assert!(out.is_empty());
    assert_eq!(r.r.pubsub.subscriptions().len(), 3);
}

#[test]
fn platform_control_quits_and_stops_others_control_does_not() {
    let mut r = router();
    let _ = send(&mut r, PUB, b"", b"ping", &[]); // joins the peer set
    assert_eq!(send(&mut r, OLD_CONTROL, b"", b"quit", &[]).1[0].1[5], b"93", "9.x's control is just a peer here");
    let (_, out) = send(&mut r, OLD_CONTROL, b"", b"agentstop", &[b"agent.pub"]);
    assert!(out.is_empty());
    assert!(r.r.peers.lookup(b"agent.pub").is_some());
    let mut s = Recorder::default();
    let (mut buf, mut parts) = (Vec::new(), Parts::new());
    for f in [&b""[..], b"VIP1", b"", b"m", b"agentstop", b"agent.pub"] {
        parts.push(Part { start: buf.len() as u32, len: f.len() as u32 }).unwrap();
        buf.extend_from_slice(f);
    }
    let _ = r.r.handle(&mut r.stats, PeerId(CONTROL), Message::new(&buf, &parts), &mut s, OnFull::Pause);
    assert!(s.0.iter().any(|(_, f)| f[4] == b"peerlist" && f[5] == b"drop" && f[6] == b"agent.pub"), "{:?}", s.0);
    assert_eq!(send(&mut r, CONTROL, b"", b"quit", &[]).0, Outcome::Quit);
}
