//! `fuzz_modular_home`: modular VOLTTRON's `authz.json` and a credential file
//! (`crate::auth::{authz, credentials}`), and the pubsub checks they drive.

use super::*;
use crate::auth::authz::{Access, Authz};
use crate::auth::credentials::parse_credential;

/// Identities and topics every parsed policy is asked about.
const IDENTITIES: [&[u8]; 4] = [b"agent.pub", b"platform.control", b"", b"caf\xe9"];
const TOPICS: [&[u8]; 5] = [b"secret", b"secret/x", b"", b"devices/a", b"\xff\xfe/x"];

/// The input is `authz.json` text, then optionally a NUL and a credential file's text.
/// Never panics; a credential parses to a key whose canonical text decodes to it again; a
/// policy answers every question, deterministically, the same as a fresh parse; a topic open
/// to an identity without an entry is open to every identity (unprotected); the closed policy
/// refuses everything; and a router with the policy routes a subscribe and a publish from
/// each identity, answering each with exactly one `request_response` (after an error -32001
/// when refused).
pub fn fuzz_modular_home(data: &[u8]) {
    let (authz_text, cred_text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (data.get(..i).unwrap_or_default(), data.get(i + 1..)),
        None => (data, None),
    };
    if let Some(text) = cred_text
        && let Ok(c) = parse_credential(text)
    {
        let text = KeyText::new(&c.public.0);
        assert_eq!(decode_key(text.as_str()).ok(), Some(c.public.0));
    }
    let Ok(mut authz) = Authz::parse(authz_text) else { return };
    let mut again = Authz::parse(authz_text).ok();
    for topic in TOPICS {
        let open = authz.allows(b"\x01nobody", topic, Access::Publish);
        for id in IDENTITIES {
            for access in [Access::Publish, Access::Subscribe] {
                let a = authz.allows(id, topic, access);
                assert_eq!(again.as_mut().map(|p| p.allows(id, topic, access)), Some(a), "deterministic");
                assert!(a || !open, "an unprotected topic is open to everyone");
            }
        }
    }
    assert!(!Authz::closed().allows(b"platform.control", b"x", Access::Publish));
    let mut r = Router::new(&Limits { max_connections: 16, ..Limits::COMPILED }, PlatformInfo::with_router_id(b"r"), 0);
    let mut stats = Stats::default();
    for (i, id) in IDENTITIES.iter().enumerate() {
        let peer = PeerId(u16::try_from(i + 1).unwrap_or(1));
        if r.attach(&mut stats, peer, id).is_err() {
            continue; // "" gets a generated identity; duplicates are impossible here
        }
    }
    r.pubsub.set_authz(Some(authz));
    for i in 1..=IDENTITIES.len() {
        let peer = PeerId(u16::try_from(i).unwrap_or(1));
        for topic in TOPICS {
            let body = [&b"{\"prefix\": \""[..], topic, b"\", \"bus\": \"\"}"].concat();
            let sub: [&[u8]; 7] = [b"", SIGNATURE, b"", b"m", b"pubsub", b"subscribe", &body];
            let publish: [&[u8]; 8] = [
                b"",
                SIGNATURE,
                b"",
                b"m",
                b"pubsub",
                b"publish",
                topic,
                b"{\"bus\": \"\", \"headers\": {}, \"message\": 1}",
            ];
            for frames in [&sub[..], &publish[..]] {
                let mut sink = Collect::default();
                route(&mut r, &mut stats, peer, frames, &mut sink);
                let replies: Vec<&Vec<Vec<u8>>> = sink.0.iter().filter(|(to, _)| *to == peer).map(|(_, f)| f).collect();
                let last = replies.last().map(|f| f.get(5).map(Vec::as_slice));
                assert_eq!(last, Some(Some(&b"request_response"[..])), "one answer, last");
                if replies.len() > 1 && replies.first().and_then(|f| f.get(4)).map(Vec::as_slice) == Some(b"error") {
                    assert_eq!(replies.first().and_then(|f| f.get(5)).map(Vec::as_slice), Some(&b"-32001"[..]));
                }
            }
        }
    }
}

/// Every message the router writes, by destination.
#[derive(Default)]
struct Collect(Vec<(PeerId, Vec<Vec<u8>>)>);

impl Sink for Collect {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        if frames.get(4).copied() != Some(&b"peerlist"[..]) {
            self.0.push((to, frames.iter().map(|f| f.to_vec()).collect()));
        }
        Ok(())
    }
}

fn route(r: &mut Router, stats: &mut Stats, from: PeerId, frames: &[&[u8]], sink: &mut Collect) {
    let (mut buf, mut parts) = (Vec::new(), Parts::new());
    for f in frames {
        let (Ok(start), Ok(len)) = (u32::try_from(buf.len()), u32::try_from(f.len())) else { return };
        if parts.push(Part { start, len }).is_err() {
            return;
        }
        buf.extend_from_slice(f);
    }
    let _ = r.handle(stats, from, Message::new(&buf, &parts), sink, OnFull::Pause);
}
