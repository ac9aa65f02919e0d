//! The pubsub service through the router core, without sockets: frames in, frames out, compared
//! with VIP.md §7, the worked examples of §15 (E3, E4.5, E5) and the quirk catalogue of §16.2.

use viprouter::json;
use viprouter::limits::Limits;
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{OnFull, Outcome};
use viprouter::zmtp::Message;

mod common;
use common::router::{Out, Recorder, TestRouter as Router, frames, msg};

/// One malformed-input case: the args after `pubsub`, and the expected last reply frame (or
/// `None` for silence).
type Case<'a> = (Vec<&'a [u8]>, Option<&'a [u8]>);

fn send(r: &mut Router, sink: &mut Recorder, from: u16, frames: &[&[u8]]) -> Outcome {
    let (buf, parts) = msg(frames);
    r.handle(PeerId(from), Message::new(&buf, &parts), sink, OnFull::Pause)
}

const A: u16 = 1;
const B: u16 = 2;
const C: u16 = 3;
const D: u16 = 4;
const AUTH: u16 = 9;

fn router_with(limits: Limits) -> Router {
    let mut r = Router::new(&limits, PlatformInfo::with_router_id(b"rid"), 0);
    for (p, id) in [(A, "agent.a"), (B, "agent.b"), (C, "agent.c"), (D, "agent.d"), (AUTH, "platform.auth")] {
        r.attach(PeerId(p), id.as_bytes()).unwrap();
    }
    r
}

fn router() -> Router {
    router_with(Limits { max_connections: 256, ..Limits::COMPILED })
}

/// Send a pubsub request and return everything the router wrote.
fn pubsub(r: &mut Router, from: u16, msg_id: &[u8], args: &[&[u8]]) -> Out {
    let mut s = Recorder::default();
    let mut f: Vec<&[u8]> = vec![b"", b"VIP1", b"", msg_id, b"pubsub"];
    f.extend_from_slice(args);
    assert_eq!(send(r, &mut s, from, &f), Outcome::Done);
    s.out.retain(|(_, f)| f.get(4).map(Vec::as_slice) != Some(b"peerlist"));
    s.out
}

fn subscribe(r: &mut Router, from: u16, prefix: &str) -> Vec<u8> {
    let body = format!("{{\"prefix\": {}, \"bus\": \"\", \"all_platforms\": false}}", json_str(prefix));
    let out = pubsub(r, from, b"s", &[b"subscribe", body.as_bytes()]);
    assert_eq!(out.len(), 1, "one reply");
    out[0].1[6].clone()
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Publish and return (deliveries by peer, the count reply value).
fn publish(r: &mut Router, from: u16, topic: &[u8], body: &[u8]) -> (Out, u32) {
    let mut out = pubsub(r, from, b"p", &[b"publish", topic, body]);
    let last = out.pop().expect("a count reply");
    assert_eq!(last.0, from);
    assert_eq!(&last.1[4..6], &frames(&[b"pubsub", b"request_response"])[..], "{last:?}");
    let c = &last.1[6];
    assert_eq!(c.len(), 4);
    (out, u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

const BODY: &[u8] = b"{\"bus\": \"\", \"headers\": {}, \"message\": 1}";

fn query_stats(r: &mut Router) -> String {
    let mut s = Recorder::default();
    let _ = send(r, &mut s, A, &[b"", b"VIP1", b"", b"q", b"query", b"stats"]);
    let reply = s.out.pop().unwrap().1;
    let text = String::from_utf8(reply[6].clone()).unwrap();
    json::parse(text.as_bytes()).expect("stats reply is valid JSON");
    text
}

// ---------------------------------------------------------------------------------------------
// VIP.md §15 E3 and the counts

#[test]
fn e3_subscribe_publish_delivery_byte_exact() {
    let mut r = router();
    let sub_id = b"1795550810.000000.8727080168650.000000";
    let body = br#"{"prefix": "devices/campus", "bus": "", "all_platforms": false}"#;
    assert_eq!(body.len(), 63);
    let out = pubsub(&mut r, B, sub_id, &[b"subscribe", body]);
    assert_eq!(
        out,
        vec![(B, frames(&[b"", b"VIP1", b"agent.b", sub_id, b"pubsub", b"request_response", &[1]]))],
        "E3.2"
    );

    let pub_id = b"1795550811.000000.8727080168749.000000";
    let body = br#"{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": [1, 2.5, "\u00e9"]}}"#;
    assert_eq!(body.len(), 133);
    let out = pubsub(&mut r, A, pub_id, &[b"publish", b"devices/campus/b1/all", body]);
    let delivery = br#"{"sender": "agent.a", "bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": [1, 2.5, "\u00e9"]}}"#;
    assert_eq!(delivery.len(), 154);
    assert_eq!(
        out,
        vec![
            (B, frames(&[b"", b"VIP1", b"", pub_id, b"pubsub", b"publish", b"devices/campus/b1/all", delivery])),
            (A, frames(&[b"", b"VIP1", b"agent.a", pub_id, b"pubsub", b"request_response", &[1, 0, 0, 0]])),
        ],
        "E3.4 then E3.5 (count after the delivery)"
    );
    assert_eq!(r.stats.pubsub_publishes, 1);
    assert_eq!(r.stats.pubsub_deliveries, 1);
}

#[test]
fn counts_0_1_2_and_200() {
    let mut r = router();
    assert_eq!(publish(&mut r, A, b"t", BODY).1, 0);
    assert_eq!(subscribe(&mut r, B, "t"), [1]);
    assert_eq!(publish(&mut r, A, b"t", BODY).1, 1);
    assert_eq!(subscribe(&mut r, C, ""), [1]);
    let (d, n) = publish(&mut r, A, b"t/x", BODY);
    assert_eq!((d.len(), n), (2, 2));

    let mut r = router();
    for i in 0..200u16 {
        r.attach(PeerId(20 + i), format!("s{i}").as_bytes()).unwrap();
        assert_eq!(subscribe(&mut r, 20 + i, if i % 2 == 0 { "" } else { "dev" }), [1]);
    }
    let mut out = pubsub(&mut r, A, b"p200", &[b"publish", b"devices/x", BODY]);
    let count = out.pop().unwrap();
    assert_eq!(count.1[6], [0xc8, 0, 0, 0], "200 = c8 00 00 00");
    assert_eq!(out.len(), 200);
    let mut who: Vec<u16> = out.iter().map(|(p, _)| *p).collect();
    who.sort();
    who.dedup();
    assert_eq!(who.len(), 200, "one copy per subscriber");
}

#[test]
fn one_copy_per_subscriber_and_publisher_gets_its_own() {
    let mut r = router();
    for p in ["", "a", "a/b", "a/b/c"] {
        assert_eq!(subscribe(&mut r, A, p), [1]);
    }
    let (d, n) = publish(&mut r, A, b"a/b/c/d", BODY);
    assert_eq!(n, 1);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, A, "the publisher receives its own message");
    // plain prefix: no '/' boundary; bus compared exactly
    assert_eq!(subscribe(&mut r, B, "devices"), [1]);
    assert_eq!(publish(&mut r, C, b"devicesX/y", BODY).1, 2);
    let other_bus = br#"{"bus": "other", "headers": {}, "message": 1}"#;
    assert_eq!(publish(&mut r, C, b"devices", other_bus).1, 0);
}

#[test]
fn all_platforms_subscriptions_are_a_union_with_internal() {
    let mut r = router();
    let _ = pubsub(&mut r, A, b"s", &[b"subscribe", br#"{"prefix": "q/", "bus": ""}"#]);
    let _ = pubsub(&mut r, B, b"s", &[b"subscribe", br#"{"prefix": "q/", "bus": "", "all_platforms": true}"#]);
    let (d, n) = publish(&mut r, C, b"q/1", BODY);
    assert_eq!((d.len(), n), (2, 2), "VIP.md §16.2 C: union, not Python's masking");
}

// ---------------------------------------------------------------------------------------------
// subscribe / unsubscribe / synchronize

#[test]
fn subscribe_without_prefix_or_json_is_00() {
    let mut r = router();
    let out = pubsub(&mut r, A, b"s1", &[b"subscribe", br#"{"bus": ""}"#]);
    assert_eq!(out, vec![(A, frames(&[b"", b"VIP1", b"agent.a", b"s1", b"pubsub", b"request_response", &[0]]))]);
    let out = pubsub(&mut r, A, b"s2", &[b"subscribe"]);
    assert_eq!(out[0].1[6], [0]);
    let out = pubsub(&mut r, A, b"s3", &[b"subscribe", br#"{"prefix": "x"}"#]);
    assert_eq!(out[0].1[6], [0]);
    // extra frames after the JSON are ignored
    let out = pubsub(&mut r, A, b"s4", &[b"subscribe", br#"{"prefix": "x", "bus": ""}"#, b"extra"]);
    assert_eq!(out[0].1[6], [1]);
    assert_eq!(r.pubsub.subscriptions().len(), 1);
}

#[test]
fn subscribe_prefix_list_and_escaped_prefix() {
    let mut r = router();
    let out = pubsub(&mut r, B, b"s", &[b"subscribe", br#"{"prefix": ["a/", "caf\u00e9/"], "bus": ""}"#]);
    assert_eq!(out[0].1[6], [1]);
    assert_eq!(publish(&mut r, A, b"a/1", BODY).1, 1);
    assert_eq!(publish(&mut r, A, b"caf\xe9/x", BODY).1, 1, "JSON \\u00e9 is the latin-1 byte e9");
    assert_eq!(publish(&mut r, A, b"caf\xc3\xa9/x", BODY).1, 0);
}

#[test]
fn unsubscribe_current_and_legacy_formats() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, A, "test/topic"), [1]);
    assert_eq!(subscribe(&mut r, A, "other"), [1]);
    let out = pubsub(&mut r, A, b"us", &[b"unsubscribe", br#"{"internal": {"prefix": ["test/topic"], "bus": ""}}"#]);
    assert_eq!(out, vec![(A, frames(&[b"", b"VIP1", b"agent.a", b"us", b"pubsub", b"request_response", &[1]]))], "E5");
    assert_eq!(publish(&mut r, B, b"test/topic/1", BODY).1, 0);
    assert_eq!(publish(&mut r, B, b"other", BODY).1, 1);
    let out = pubsub(&mut r, A, b"ul", &[b"unsubscribe", br#"{"prefix": "other", "bus": ""}"#]);
    assert_eq!(out[0].1[6], [1], "legacy format");
    assert_eq!(publish(&mut r, B, b"other", BODY).1, 0);
    assert!(r.pubsub.subscriptions().is_empty());
    // `all` platform entries are removed by an `all` unsubscribe only
    let _ = pubsub(&mut r, A, b"s", &[b"subscribe", br#"{"prefix": "x", "bus": "", "all_platforms": true}"#]);
    let out = pubsub(&mut r, A, b"u", &[b"unsubscribe", br#"{"internal": {"prefix": "x", "bus": ""}}"#]);
    assert_eq!(out[0].1[6], [1]);
    assert_eq!(r.pubsub.subscriptions().len(), 1);
    let out = pubsub(&mut r, A, b"u", &[b"unsubscribe", br#"{"all": {"prefix": ["x"], "bus": ""}}"#]);
    assert_eq!(out[0].1[6], [1]);
    assert!(r.pubsub.subscriptions().is_empty());
    // no JSON frame → 00
    assert_eq!(pubsub(&mut r, A, b"u", &[b"unsubscribe"])[0].1[6], [0]);
}

#[test]
fn unsubscribe_prefix_null_removes_every_prefix_of_the_bus() {
    let mut r = router();
    for p in ["a", "b", "c"] {
        assert_eq!(subscribe(&mut r, A, p), [1]);
    }
    let _ = pubsub(&mut r, A, b"s", &[b"subscribe", br#"{"prefix": "a", "bus": "other"}"#]);
    assert_eq!(subscribe(&mut r, B, "a"), [1]);
    let out = pubsub(&mut r, A, b"u", &[b"unsubscribe", br#"{"internal": {"prefix": null, "bus": ""}}"#]);
    assert_eq!(out[0].1[6], [1]);
    assert_eq!(r.pubsub.subscriptions().peer_len(A), 1, "the other bus stays");
    assert_eq!(r.pubsub.subscriptions().peer_len(B), 1, "other peers stay");
    let out = pubsub(&mut r, A, b"u", &[b"unsubscribe", br#"{"internal": {"prefix": [], "bus": "other"}}"#]);
    assert_eq!(out[0].1[6], [1]);
    assert_eq!(r.pubsub.subscriptions().peer_len(A), 1, "[] removes nothing");
}

#[test]
fn synchronize_replaces_twice_is_once_and_empty_clears() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, A, "old"), [1]);
    let body =
        br#"{"subscriptions": {"internal": {"": ["devices", "heartbeat"], "other": ["x"]}, "all": {"": ["r/"]}}}"#;
    for _ in 0..2 {
        let out = pubsub(&mut r, A, b"sync", &[b"synchronize", b"connected", body]);
        assert!(out.is_empty(), "synchronize is never answered");
    }
    let s = r.pubsub.subscriptions();
    assert_eq!(s.peer_len(A), 4);
    assert!(s.contains(A, b"", b"devices", false));
    assert!(s.contains(A, b"other", b"x", false));
    assert!(s.contains(A, b"", b"r/", true));
    assert!(!s.contains(A, b"", b"old", false), "replaced");
    assert_eq!(publish(&mut r, B, b"devices/1", BODY).1, 1);
    // not "connected": ignored
    let out = pubsub(&mut r, A, b"sync", &[b"synchronize", b"other", br#"{"subscriptions": {}}"#]);
    assert!(out.is_empty());
    assert_eq!(r.pubsub.subscriptions().peer_len(A), 4);
    // missing "subscriptions": logged and ignored
    let _ = pubsub(&mut r, A, b"sync", &[b"synchronize", b"connected", b"{}"]);
    assert_eq!(r.pubsub.subscriptions().peer_len(A), 4);
    let _ = pubsub(&mut r, A, b"sync", &[b"synchronize", b"connected", br#"{"subscriptions": {}}"#]);
    assert!(r.pubsub.subscriptions().is_empty(), "synchronize {{}} clears");
}

// ---------------------------------------------------------------------------------------------
// publish bodies

#[test]
fn publish_nan_infinity_and_non_ascii_are_delivered_escaped() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, ""), [1]);
    let (d, n) = publish(&mut r, A, b"t", br#"{"bus": "", "headers": {}, "message": NaN}"#);
    assert_eq!(n, 1);
    assert_eq!(d[0].1[7], br#"{"sender": "agent.a", "bus": "", "headers": {}, "message": NaN}"#);
    let (d, _) =
        publish(&mut r, A, b"t", br#"{"message": [Infinity, -Infinity, 1e400], "bus": "", "headers": {}, "x": 1}"#);
    assert_eq!(
        d[0].1[7], br#"{"sender": "agent.a", "bus": "", "headers": {}, "message": [Infinity, -Infinity, Infinity]}"#,
        "key order rebuilt, extra keys dropped"
    );
    // raw UTF-8 bytes are latin-1 characters (VIP.md §3.8), escaped on output
    let (d, _) = publish(
        &mut r,
        A,
        b"t",
        "{\"bus\": \"\", \"headers\": {}, \"message\": \"caf\u{e9} \\u2603 \\ud83d\\ude00\"}".as_bytes(),
    );
    let body = &d[0].1[7];
    assert!(body.iter().all(|b| b.is_ascii()), "ASCII only: {}", String::from_utf8_lossy(body));
    assert_eq!(
        body.as_slice(),
        br#"{"sender": "agent.a", "bus": "", "headers": {}, "message": "caf\u00c3\u00a9 \u2603 \ud83d\ude00"}"#
    );
    // big integers are kept exactly, numbers re-formatted like Python
    let (d, _) = publish(
        &mut r,
        A,
        b"t",
        br#"{"bus": "", "headers": {}, "message": [123456789012345678901234567890, -1, 1E3, 0.10]}"#,
    );
    assert_eq!(d[0].1[7], br#"{"sender": "agent.a", "bus": "", "headers": {}, "message": [123456789012345678901234567890, -1, 1000.0, 0.1]}"#);
    // a non-ASCII sender identity is escaped too
    r.attach(PeerId(30), b"caf\xe9").unwrap();
    let (d, _) = publish(&mut r, 30, b"t", BODY);
    assert!(d[0].1[7].starts_with(br#"{"sender": "caf\u00e9", "#));
}

#[test]
fn forged_user_id_passes_through_but_sender_is_true_identity() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, "t"), [1]);
    let mut s = Recorder::default();
    let _ = send(&mut r, &mut s, A, &[b"", b"VIP1", b"agent.c", b"m1", b"pubsub", b"publish", b"t", BODY]);
    let to_b = s.to(B);
    assert_eq!(to_b.len(), 1);
    assert_eq!(to_b[0][2], b"agent.c", "USER_ID is the publisher's original frame (VIP.md §3.5)");
    assert!(to_b[0][7].starts_with(br#"{"sender": "agent.a""#), "the body's sender cannot be forged");
    let to_a = s.to(A);
    assert_eq!(to_a[0][2], b"agent.a", "the count reply carries the requester's identity");
}

#[test]
fn publish_with_too_few_args_gets_no_reply_missing_keys_count_0() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, ""), [1]);
    assert!(pubsub(&mut r, A, b"p", &[b"publish", b"t"]).is_empty(), "fewer than 2 args: nothing");
    assert!(pubsub(&mut r, A, b"p", &[b"publish"]).is_empty());
    for body in
        [&br#"{"bus": "", "headers": {}}"#[..], br#"{"headers": {}, "message": 1}"#, br#"{"bus": "", "message": 1}"#]
    {
        let (d, n) = publish(&mut r, A, b"t", body);
        assert_eq!((d.len(), n), (0, 0), "{}", String::from_utf8_lossy(body));
    }
}

// ---------------------------------------------------------------------------------------------
// protected topics

fn protect(r: &mut Router) {
    let out = pubsub(r, AUTH, b"", &[b"protected_update", br#"{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}, {"topic": "/regex.*z/", "capabilities": "can_publish"}]}"#]);
    assert!(out.is_empty(), "never replied to");
    let out = pubsub(
        r,
        AUTH,
        b"",
        &[
            b"auth_update",
            br#"{"capabilities": {"agent.a": {"raw_cap": null}, "agent.b": {"can_publish": null, "other": {"x": 1}}}}"#,
        ],
    );
    assert!(out.is_empty());
}

#[test]
fn e4_5_protected_topic_refused_with_exact_error_then_count_0() {
    let mut r = router();
    protect(&mut r);
    assert_eq!(subscribe(&mut r, C, ""), [1]);
    let out = pubsub(&mut r, A, b"pp1", &[b"publish", b"secret/x", BODY]);
    let text = br#"to publish to topic "secret/x" requires capabilities ['can_publish'], but capability list {'raw_cap': None} was provided"#;
    assert_eq!(text.len(), 120);
    assert_eq!(
        out,
        vec![
            (A, frames(&[b"", b"VIP1", b"agent.a", b"pp1", b"error", b"-32001", text, b"", b"pubsub"])),
            (A, frames(&[b"", b"VIP1", b"agent.a", b"pp1", b"pubsub", b"request_response", &[0, 0, 0, 0]])),
        ],
        "E4.5: error, then count 0, nothing delivered"
    );
    assert_eq!(r.stats.rejected_protected_topic, 1);
}

/// `vip::error`: the -32001 error writes a JSON MSG_ID as a JSON string (the count reply that
/// follows, not an error, keeps it byte-exact); `verbatim` echoes it.
#[test]
fn protected_topic_error_quotes_a_json_msg_id() {
    for (style, want) in [
        (viprouter::vip::error::ErrorMsgId::AgentReadable, &b"\"17.5\""[..]),
        (viprouter::vip::error::ErrorMsgId::Verbatim, b"17.5"),
    ] {
        let mut r = router();
        r.error_msg_id = style;
        protect(&mut r);
        let out = pubsub(&mut r, A, b"17.5", &[b"publish", b"secret/x", BODY]);
        assert_eq!(out[0].1[4..6], frames(&[b"error", b"-32001"])[..]);
        assert_eq!(out[0].1[3], want);
        assert_eq!(out[1].1[3], b"17.5");
    }
}

#[test]
fn protected_prefix_regex_and_users_without_entry() {
    let mut r = router();
    protect(&mut r);
    assert_eq!(subscribe(&mut r, C, ""), [1]);
    // `secret` protects `secretive` (plain prefix)
    let out = pubsub(&mut r, A, b"m", &[b"publish", b"secretive", BODY]);
    assert_eq!(out[0].1[4], b"error");
    assert_eq!(out.len(), 2);
    // agent.b has the capability
    let (d, n) = publish(&mut r, B, b"secretive", BODY);
    assert_eq!((d.len(), n), (1, 1));
    // agent.d has no entry in the capability table: allowed (VIP.md §7.9)
    let (d, n) = publish(&mut r, D, b"secret", BODY);
    assert_eq!((d.len(), n), (1, 1));
    // regex, anchored
    let out = pubsub(&mut r, A, b"m", &[b"publish", b"regexABCz", BODY]);
    assert_eq!(out[0].1[4], b"error");
    assert_eq!(publish(&mut r, A, b"regexABCzz-not", BODY).1, 1);
    assert_eq!(publish(&mut r, A, b"public", BODY).1, 1);
    // the user table is replaced whole: agent.a now allowed
    let _ = pubsub(&mut r, AUTH, b"", &[b"auth_update", br#"{"capabilities": {"agent.a": {"can_publish": null}}}"#]);
    assert_eq!(publish(&mut r, A, b"secret", BODY).1, 1);
}

#[test]
fn policy_updates_only_from_platform_auth_and_bad_input_keeps_the_old_table() {
    let mut r = router();
    protect(&mut r);
    // anyone else cannot lift the protection (VIP.md §16.2 C)
    assert!(pubsub(&mut r, A, b"", &[b"protected_update", b"{}"]).is_empty());
    assert!(pubsub(&mut r, A, b"", &[b"auth_update", br#"{"capabilities": {}}"#]).is_empty());
    assert_eq!(r.stats.rejected_policy_update, 2);
    assert_eq!(pubsub(&mut r, A, b"m", &[b"publish", b"secret", BODY])[0].1[4], b"error");
    // bad content from platform.auth: old table kept
    for bad in [
        &b"not json"[..],
        b"[]",
        br#"{"write-protect": [{"topic": "x"}]}"#,
        br#"{"write-protect": [{"capabilities": "c"}]}"#,
    ] {
        let _ = pubsub(&mut r, AUTH, b"", &[b"protected_update", bad]);
    }
    let _ = pubsub(&mut r, AUTH, b"", &[b"auth_update", b"{}"]);
    assert_eq!(r.stats.rejected_policy_update, 7);
    assert_eq!(pubsub(&mut r, A, b"m", &[b"publish", b"secret", BODY])[0].1[4], b"error");
    // `{}` (empty protected_topics.json) from platform.auth clears the table
    let _ = pubsub(&mut r, AUTH, b"", &[b"protected_update", b"{}"]);
    assert_eq!(publish(&mut r, A, b"secret", BODY).1, 0);
    // the server-side API takes the same shapes
    assert!(r.pubsub.set_protected_topics_json(br#"{"write-protect": [{"topic": "s", "capabilities": "c"}]}"#).is_ok());
    assert!(r.pubsub.set_protected_topics_json(b"{").is_err());
    assert!(r.pubsub.set_user_capabilities_json(br#"{"capabilities": {"agent.a": ["x"]}}"#).is_ok());
    let out = pubsub(&mut r, A, b"m", &[b"publish", b"s", BODY]);
    assert_eq!(
        out[0].1[6],
        br#"to publish to topic "s" requires capabilities ['c'], but capability list ['x'] was provided"#
    );
}

// ---------------------------------------------------------------------------------------------
// list

fn rows(reply: &[u8]) -> Vec<(String, String, bool)> {
    let v = json::parse(reply).unwrap();
    let mut rows: Vec<_> = v
        .items()
        .map(|row| {
            let mut it = row.items();
            let s = |v: json::Value<'_>| {
                v.as_str().unwrap().chars().map(|c| char::from_u32(c).unwrap()).collect::<String>()
            };
            (s(it.next().unwrap()), s(it.next().unwrap()), it.next().unwrap().as_bool().unwrap())
        })
        .collect();
    rows.sort();
    rows
}

fn list(r: &mut Router, from: u16, body: &[u8]) -> Vec<u8> {
    let out = pubsub(r, from, b"pl", &[b"list", body]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0].1[..6],
        &frames(&[b"", b"VIP1", r.peers.identity(PeerId(from)), b"pl", b"pubsub", b"list_response"])[..]
    );
    out[0].1[6].clone()
}

#[test]
fn list_e5_and_filters() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, "heartbeat"), [1]);
    assert_eq!(subscribe(&mut r, A, "x/"), [1]);
    assert_eq!(subscribe(&mut r, A, "y/"), [1]);
    let _ = pubsub(&mut r, B, b"s", &[b"subscribe", br#"{"prefix": "x/", "bus": "other"}"#]);
    let reply = list(&mut r, A, br#"{"prefix": "", "bus": null, "subscribed": false, "reverse": false}"#);
    let t = |b: &str, p: &str, m: bool| (b.to_string(), p.to_string(), m);
    assert_eq!(
        rows(&reply),
        vec![t("", "heartbeat", false), t("", "x/", true), t("", "y/", true), t("other", "x/", false)]
    );
    let reply =
        list(&mut r, A, br#"{"prefix": "", "all_platforms": false, "subscribed": true, "reverse": false, "bus": ""}"#);
    assert_eq!(rows(&reply), vec![t("", "x/", true), t("", "y/", true)]);
    let reply = list(&mut r, A, br#"{"prefix": "x/1/2", "bus": null, "subscribed": false, "reverse": true}"#);
    assert_eq!(rows(&reply), vec![t("", "x/", true), t("other", "x/", false)]);
    let reply = list(&mut r, A, br#"{"prefix": "he", "bus": "", "subscribed": false, "reverse": false}"#);
    assert_eq!(reply, br#"[["", "heartbeat", false]]"#);
    let reply = list(
        &mut r,
        A,
        br#"{"prefix": "", "bus": null, "subscribed": false, "reverse": false, "all_platforms": true}"#,
    );
    assert_eq!(reply, b"[]", "no `all` subscriptions");
    // missing keys / no frame / bad types → []
    assert_eq!(list(&mut r, A, br#"{"prefix": ""}"#), b"[]");
    let out = pubsub(&mut r, A, b"pl", &[b"list"]);
    assert_eq!(out[0].1[6], b"[]");
    assert_eq!(list(&mut r, A, br#"{"prefix": 5, "bus": null, "subscribed": false, "reverse": false}"#), b"[]");
}

// ---------------------------------------------------------------------------------------------
// §16.2 B: malformed input never crashes and gets the closest non-crashing answer

#[test]
fn malformed_inputs_get_the_non_crashing_answer() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, ""), [1]);
    let before = r.pubsub.subscriptions().len();
    let zero: &[u8] = &[0];
    let count0: &[u8] = &[0, 0, 0, 0];
    let deep = "[".repeat(100);
    let cases: Vec<Case<'_>> = vec![
        (vec![b"subscribe", b"hello"], Some(zero)),
        (vec![b"subscribe", b"[1]"], Some(zero)),
        (vec![b"subscribe", b"42"], Some(zero)),
        (vec![b"subscribe", br#"{"prefix": 5, "bus": ""}"#], Some(zero)),
        (vec![b"subscribe", br#"{"prefix": ["a", 5], "bus": ""}"#], Some(zero)),
        (vec![b"subscribe", br#"{"prefix": null, "bus": ""}"#], Some(zero)),
        (vec![b"subscribe", br#"{"prefix": "a", "bus": 5}"#], Some(zero)),
        (vec![b"subscribe", br#"{"prefix": "a", "bus": "\u0100"}"#], Some(zero)),
        (vec![b"subscribe", deep.as_bytes()], Some(zero)),
        (vec![b"unsubscribe", b"x"], Some(zero)),
        (vec![b"unsubscribe", b"[]"], Some(zero)),
        (vec![b"unsubscribe", br#"{"internal": {"bus": ""}}"#], Some(zero)),
        (vec![b"unsubscribe", br#"{"internal": {"prefix": "a"}}"#], Some(zero)),
        (vec![b"unsubscribe", br#"{"internal": 5}"#], Some(zero)),
        (vec![b"unsubscribe", br#"{"internal": {"prefix": "a", "bus": ""}, "all": []}"#], Some(zero)),
        (vec![b"unsubscribe", br#"{"prefix": 7, "bus": ""}"#], Some(zero)),
        (vec![b"synchronize", b"connected", b"x"], None),
        (vec![b"synchronize", b"connected", b"[]"], None),
        (vec![b"synchronize", b"connected", br#"{"subscriptions": []}"#], None),
        (vec![b"synchronize", b"connected", br#"{"subscriptions": {"internal": {"": "abc"}}}"#], None),
        (vec![b"synchronize", b"connected", br#"{"subscriptions": {"internal": {"": [1]}}}"#], None),
        (vec![b"synchronize", b"connected"], None),
        (vec![b"synchronize"], None),
        (vec![b"publish", b"t", b"x"], Some(count0)),
        (vec![b"publish", b"t", b"[]"], Some(count0)),
        (vec![b"publish", b"t", b"4294967296"], Some(count0)),
        (vec![b"publish", b"t", deep.as_bytes()], Some(count0)),
        (vec![b"publish", b"t", br#"{"bus": 5, "headers": {}, "message": 1}"#], Some(count0)),
        (vec![b"publish", b"t", br#"{"bus": "\u0100", "headers": {}, "message": 1}"#], Some(count0)),
        (vec![b"list", b"x"], Some(b"[]")),
        (vec![b"list", b"1e400"], Some(b"[]")),
        (vec![b"list", br#"{"prefix": "", "bus": 5, "subscribed": false, "reverse": false}"#], Some(b"[]")),
        (vec![b"frobnicate", b"{}"], None),
        (vec![b"external_list", b"{}"], None),
        (vec![b"external_publish", b"t", b"{}"], None),
        (vec![b"error", b"x"], None),
        (vec![b"request_response", b"x"], None),
        (vec![], None),
        (vec![b"auth_update"], None),
        (vec![b"protected_update", b"\xff"], None),
    ];
    for (args, want) in &cases {
        let out = pubsub(&mut r, A, b"bad", args);
        match want {
            None => assert!(out.is_empty(), "{args:?}: expected silence, got {out:?}"),
            Some(w) => {
                let last = out.last().unwrap_or_else(|| panic!("{args:?}: no reply"));
                assert_eq!(last.0, A);
                assert_eq!(last.1[6], *w, "{args:?}");
                assert!(out.iter().all(|(p, _)| *p == A), "{args:?}: nothing delivered");
            }
        }
    }
    assert_eq!(r.pubsub.subscriptions().len(), before, "nothing half-applied");
    assert!(r.stats.pubsub_malformed >= 25, "{}", r.stats.pubsub_malformed);
    assert_eq!(r.stats.pubsub_unknown_op, 1);
    // external_list / external_publish from a peer that is not a platform link: ignored
    assert_eq!(r.stats.rejected_external_not_link, 2);
    // the service still works
    assert_eq!(publish(&mut r, A, b"t", BODY).1, 1);
    // a number out of any range inside a good body is just passed through
    let (d, n) = publish(&mut r, A, b"t", br#"{"bus": "", "headers": {}, "message": -99999999999999999999}"#);
    assert_eq!(n, 1);
    assert!(d[0].1[7].ends_with(b"-99999999999999999999}"));
}

// ---------------------------------------------------------------------------------------------
// limits

#[test]
fn limits_n_accepted_n_plus_1_refused_with_00() {
    let mut r =
        router_with(Limits { max_connections: 64, max_subscriptions: 5, max_subs_per_peer: 3, ..Limits::COMPILED });
    for p in ["a", "b", "c"] {
        assert_eq!(subscribe(&mut r, A, p), [1]);
    }
    assert_eq!(subscribe(&mut r, A, "d"), [0], "per-peer N+1");
    assert_eq!(r.stats.rejected_subscription_peer_limit, 1);
    assert_eq!(subscribe(&mut r, A, "a"), [1], "re-subscribing at the limit is fine");
    // a list is all or nothing
    let out = pubsub(&mut r, B, b"s", &[b"subscribe", br#"{"prefix": ["x", "y", "z", "w"], "bus": ""}"#]);
    assert_eq!(out[0].1[6], [0]);
    assert_eq!(r.pubsub.subscriptions().peer_len(B), 0, "rolled back");
    let out = pubsub(&mut r, B, b"s", &[b"subscribe", br#"{"prefix": ["x", "y"], "bus": ""}"#]);
    assert_eq!(out[0].1[6], [1]);
    assert_eq!(r.pubsub.subscriptions().len(), 5, "table at N");
    assert_eq!(r.stats.rejected_subscription_full, 1, "the 4-prefix list hit the table limit");
    assert_eq!(subscribe(&mut r, C, "z"), [0], "table N+1");
    assert_eq!(r.stats.rejected_subscription_full, 2);
    // prefix over MAX_PREFIX_BYTES
    assert_eq!(subscribe(&mut r, C, &"p".repeat(viprouter::limits::MAX_PREFIX_BYTES + 1)), [0]);
    // synchronize over the limit keeps what fits, counted
    let _ = pubsub(
        &mut r,
        A,
        b"y",
        &[b"synchronize", b"connected", br#"{"subscriptions": {"internal": {"": ["1", "2", "3", "4"]}}}"#],
    );
    assert_eq!(r.pubsub.subscriptions().peer_len(A), 3);
    assert_eq!(r.stats.rejected_subscription_peer_limit, 2);
    // everything still routes
    assert_eq!(publish(&mut r, D, b"x", BODY).1, 1);
}

// ---------------------------------------------------------------------------------------------
// cleanup (VIP.md §7.12, §8.2)

#[test]
fn subscriptions_removed_on_agentstop_and_detach() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, ""), [1]);
    assert_eq!(subscribe(&mut r, C, ""), [1]);
    assert_eq!(publish(&mut r, A, b"t", BODY).1, 2);
    let mut s = Recorder::default();
    let _ = send(&mut r, &mut s, B, &[b"", b"VIP1", b"", b"", b"agentstop", b"agent.b"]);
    assert_eq!(r.pubsub.subscriptions().peer_len(B), 0);
    assert_eq!(publish(&mut r, A, b"t", BODY).1, 1);
    let mut s = Recorder::default();
    r.detach(PeerId(C), &mut s);
    assert_eq!(r.pubsub.subscriptions().peer_len(C), 0);
    assert_eq!(publish(&mut r, A, b"t", BODY).1, 0);
    assert!(r.pubsub.subscriptions().is_empty());
}

// ---------------------------------------------------------------------------------------------
// slow subscribers and full publishers

#[test]
fn slow_subscriber_is_isolated_and_visible_in_stats() {
    let mut r = router();
    for p in [B, C, D] {
        assert_eq!(subscribe(&mut r, p, "devices"), [1]);
    }
    let mut s = Recorder { full: vec![C], ..Default::default() };
    for i in 0..100 {
        let id = format!("m{i}");
        assert_eq!(
            send(&mut r, &mut s, A, &[b"", b"VIP1", b"", id.as_bytes(), b"pubsub", b"publish", b"devices/x", BODY]),
            Outcome::Done
        );
    }
    assert_eq!(s.to(B).len(), 100);
    assert_eq!(s.to(D).len(), 100);
    assert_eq!(s.to(C).len(), 0);
    let counts = s.to(A);
    assert_eq!(counts.len(), 100, "the publisher gets every count");
    // The count never claims a delivery that did not happen: 2 queued, the slow one dropped.
    assert!(counts.iter().all(|f| f[5] == b"request_response" && f[6] == [2, 0, 0, 0]), "count = delivered");
    assert!(s.out.iter().all(|(_, f)| f[4] != b"error"), "no error 11 to the publisher");
    assert_eq!(r.stats.dropped_slow_subscriber, 100);
    assert_eq!(r.pubsub.slow_drops(PeerId(C)), 100);
    assert_eq!(r.pubsub.slow_drops(PeerId(B)), 0);
    let stats = query_stats(&mut r);
    assert!(stats.contains(r#""slow_subscribers": {"agent.c": 100}"#), "{stats}");
    assert!(stats.contains(r#""dropped_slow_subscriber": 100"#));
    // it recovers
    s.full.clear();
    s.take();
    let _ = send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"m", b"pubsub", b"publish", b"devices/x", BODY]);
    assert_eq!(s.to(C).len(), 1);
    assert_eq!(s.to(A).last().unwrap()[6], [3, 0, 0, 0], "all three delivered, all three counted");
    // its counts go when it leaves
    r.detach(PeerId(C), &mut s);
    assert!(query_stats(&mut r).contains(r#""slow_subscribers": {}"#));
}

#[test]
fn a_delivery_the_budget_refuses_is_not_counted_and_not_a_slow_subscriber() {
    let mut r = router();
    for p in [B, C] {
        assert_eq!(subscribe(&mut r, p, "devices"), [1]);
    }
    let mut s = Recorder { no_budget: vec![C], ..Default::default() };
    let _ = send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"m", b"pubsub", b"publish", b"devices/x", BODY]);
    assert_eq!(s.to(B).len(), 1);
    assert_eq!(s.to(C).len(), 0);
    assert_eq!(s.to(A).last().unwrap()[6], [1, 0, 0, 0], "count = delivered");
    assert_eq!(r.stats.dropped_subscriber_budget, 1);
    assert_eq!(r.stats.dropped_slow_subscriber, 0);
    assert_eq!(r.pubsub.slow_drops(PeerId(C)), 0);
    assert!(query_stats(&mut r).contains(r#""dropped_subscriber_budget": 1"#));
}

#[test]
fn full_publisher_count_is_dropped_not_retried() {
    let mut r = router();
    assert_eq!(subscribe(&mut r, B, ""), [1]);
    let mut s = Recorder { full: vec![A], ..Default::default() };
    let out = send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"m", b"pubsub", b"publish", b"t", BODY]);
    assert_eq!(out, Outcome::Done, "never Blocked once deliveries happened");
    assert_eq!(s.to(B).len(), 1);
    assert_eq!(r.stats.dropped_reply_full, 1);
    // subscribe replies pause the requester instead (idempotent retry)
    let sub: &[&[u8]] = &[b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", br#"{"prefix": "q", "bus": ""}"#];
    assert_eq!(send(&mut r, &mut s, A, sub), Outcome::Blocked(PeerId(A)));
    s.full.clear();
    assert_eq!(send(&mut r, &mut s, A, sub), Outcome::Done);
    assert_eq!(s.to(A).last().unwrap()[6], [1]);
    assert_eq!(r.pubsub.subscriptions().peer_len(A), 1);
}

#[test]
fn stats_json_stays_valid_and_bounded_with_many_slow_peers() {
    let mut r = router();
    let mut s = Recorder::default();
    for i in 0..100u16 {
        let id = format!("slow-{i}-{}", "x".repeat(200));
        r.attach(PeerId(100 + i), id.as_bytes()).unwrap();
        assert_eq!(subscribe(&mut r, 100 + i, ""), [1]);
        s.full.push(100 + i);
    }
    let _ = send(&mut r, &mut s, A, &[b"", b"VIP1", b"", b"m", b"pubsub", b"publish", b"t", BODY]);
    let stats = query_stats(&mut r);
    assert!(stats.len() <= 8192);
    assert!(stats.contains(r#""slow_subscribers_omitted": "#), "{stats}");
    assert!(stats.contains(r#""subscriptions": 100"#));
}
