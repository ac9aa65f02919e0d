//! Zero allocation on the error paths the router answers itself (VIP.md §6): 113 (no such
//! peer), 11 (stalled recipient), 93 (unknown router subsystem) and -32001 (protected topic),
//! with a MSG_ID the router rewrites for VOLTTRON's agent library (a JSON number, quoted into a
//! stack buffer, `vip::error`) and one it echoes. The router core is driven directly with a sink
//! that counts frames into fixed storage, so every counted allocation would be the router's.

use viprouter::limits::Limits;
use viprouter::vip::peers::PeerId;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::{Full, OnFull, Outcome, Sink};
use viprouter::zmtp::{Message, Parts};

mod common;
use common::router::TestRouter as Router;

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first};

/// Remembers the MSG_ID frame of the last message to peer 1 (fixed storage); peer 2 is full.
struct FixedSink {
    deliveries: u64,
    last_id: [u8; 64],
    last_len: usize,
}

impl Sink for FixedSink {
    fn deliver(&mut self, to: PeerId, frames: &[&[u8]]) -> Result<(), Full> {
        if to == PeerId(2) {
            return Err(Full);
        }
        self.deliveries += 1;
        if let Some(id) = frames.get(3)
            && let Some(dst) = self.last_id.get_mut(..id.len())
        {
            dst.copy_from_slice(id);
            self.last_len = id.len();
        }
        Ok(())
    }

    fn is_stalled(&self, to: PeerId) -> bool {
        to == PeerId(2)
    }
}

struct Msg {
    buf: Vec<u8>,
    parts: Parts,
}

fn msg(frames: &[&[u8]]) -> Msg {
    let (buf, parts) = common::router::msg(frames);
    Msg { buf, parts }
}

#[test]
fn router_generated_errors_allocate_nothing() {
    let limits = Limits { max_connections: 16, ..Limits::COMPILED };
    let mut r = Router::new(&limits, PlatformInfo::with_router_id(b"rid"), 1);
    r.attach(PeerId(1), b"agent.a").unwrap();
    r.attach(PeerId(2), b"agent.b").unwrap();
    r.pubsub
        .set_protected_topics_json(br#"{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}]}"#)
        .unwrap();
    r.pubsub.set_user_capabilities_json(br#"{"capabilities": {"agent.a": {"raw": null}}}"#).unwrap();
    let rpc_id: &[u8] = b"1795550813.8764837066011";
    let body: &[u8] = br#"{"bus": "", "headers": {}, "message": 1}"#;
    let messages = [
        msg(&[b"nobody", b"VIP1", b"", rpc_id, b"RPC", b"{}"]),
        msg(&[b"nobody", b"VIP1", b"", b"n1", b"RPC", b"{}"]),
        msg(&[b"agent.b", b"VIP1", b"", rpc_id, b"RPC", b"{}"]),
        msg(&[b"", b"VIP1", b"", rpc_id, b"no-such-subsystem"]),
        msg(&[b"", b"VIP1", b"", rpc_id, b"pubsub", b"publish", b"secret/x", body]),
    ];
    let mut sink = FixedSink { deliveries: 0, last_id: [0; 64], last_len: 0 };
    let mut round = |sink: &mut FixedSink| {
        for m in &messages {
            let out = r.handle(PeerId(1), Message::new(&m.buf, &m.parts), sink, OnFull::Pause);
            assert_eq!(out, Outcome::Done);
        }
    };
    // Warm-up: registration (peerlist add), the pubsub text buffer's first growth.
    round(&mut sink);
    let before = allocations();
    count_here(true);
    for _ in 0..10_000 {
        round(&mut sink);
    }
    count_here(false);
    assert_eq!(allocations() - before, 0, "first counted allocation (old size, new size): {:?}", first());
    // 113, 113, 11, 93, -32001 + count per round.
    assert_eq!(sink.deliveries, 6 * 10_001);
    assert_eq!(r.stats.errors_unreachable, 2 * 10_001);
    assert_eq!(r.stats.errors_again, 10_001);
    assert_eq!(r.stats.rejected_protected_topic, 10_001);
    // The last message to agent.a was the publish count (byte-exact MSG_ID).
    assert_eq!(&sink.last_id[..sink.last_len], rpc_id);
}
