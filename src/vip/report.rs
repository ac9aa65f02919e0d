//! The `query stats` object (VIP.md §12 Compat), written in one place for its three readers:
//! the `query stats` reply, the SIGUSR1 log line and the router's own periodic publish
//! (`[viprouter] stats-topic`, [`super::pubsub::OwnPublish`]).
//!
//! ```text
//! {"accepted": n, ... every counter and gauge of Stats ...,
//!  "rabbitmq": {"state": ..., ...} (with a bridge configured),
//!  "limits": {"max-connections": n, ... every limit in force, config-file names ...},
//!  "links": {"<platform>": {"state": "up", ...}, ...},
//!  "subscriptions": n, "slow_subscribers": {"<identity>": dropped, ...},
//!  "links": {...} (remote platforms),
//!  "top_talkers": [{"identity": "<identity>", "msgs_in": n, "msgs_out": n}, ...]}
//! ```
//!
//! Contract: at most [`STATS_JSON_BYTES`], written into the caller's fixed buffer without
//! allocating (the publish path is allocation-free, `tests/no_alloc_stats.rs`). The counters come
//! whole or not at all; each later part is left out whole when it does not fit, and the two
//! lists are cut to what fits: the slow subscribers (saying how many were left out) leave
//! `TOP_TALKERS_ROOM` bytes to the top talkers. The top talkers are the
//! [`MAX_TOP_TALKERS`] peers of the peer set with the most messages in and out together, busiest
//! first, from the server's per-peer table ([`PeerTraffic`]); without a table the member is absent.

use super::bridge::BusStatus;
use super::peers::PeerId;
use super::router::Router;
use crate::json::emit::{emit_latin1_str, emit_str, emit_u64};
use crate::json::{ByteSink, LenCounter, SinkFull, SliceWriter};
use crate::stats::{PeerTraffic, Stats, Traffic};

/// Bytes of the `query stats` object, at most: every counter, the limits, then the pubsub fields
/// and the top talkers as far as they fit.
pub const STATS_JSON_BYTES: usize = 8192;

/// Room the slow subscribers leave for the top talkers (10 entries of identities up to about 60
/// characters; longer ones make the list shorter).
const TOP_TALKERS_ROOM: usize = 1536;

/// Room the links leave for the pubsub fields after them (`"subscriptions"` and a few slow
/// subscribers).
const PUBSUB_ROOM: usize = 256;

/// At most this many peers are listed in `"top_talkers"`.
pub const MAX_TOP_TALKERS: usize = 10;

/// Room one top-talker entry needs besides its identity: `, {"identity": , "msgs_in": <u64>,
/// "msgs_out": <u64>}`.
const TALKER_FIXED_BYTES: usize = 80;

impl Router {
    /// Write the `query stats` object (see the module doc). `bus`: the status of the RabbitMQ
    /// bridge's connection, if one exists (`"rabbitmq"`, [`super::bridge::Bridge`]); `traffic`:
    /// the per-peer counts, for `"top_talkers"`.
    ///
    /// # Errors
    /// [`SinkFull`] when not even the counters fit.
    pub fn write_stats_json(
        &self,
        stats: &Stats,
        bus: Option<BusStatus>,
        traffic: Option<&PeerTraffic>,
        w: &mut SliceWriter<'_>,
    ) -> Result<(), SinkFull> {
        w.put(b"{")?;
        stats.write_fields(w).map_err(|_| SinkFull)?;
        optional(w, |w| self.bridge.write_stats_fields(bus, w));
        optional(w, |w| self.write_limits(w));
        let room = if traffic.is_some() { TOP_TALKERS_ROOM } else { 0 };
        optional(w, |w| self.links.write_stats_fields(w, room + PUBSUB_ROOM + 1));
        optional(w, |w| self.pubsub.write_stats_fields(&self.peers, w, room + 1));
        optional(w, |w| self.links.write_stats_fields(w, room + 1));
        if let Some(t) = traffic {
            optional(w, |w| self.write_top_talkers(t, w));
        }
        w.put(b"}")
    }

    /// `, "limits": {"max-connections": n, ...}`.
    fn write_limits(&self, w: &mut SliceWriter<'_>) -> Result<(), SinkFull> {
        w.put(b", \"limits\": {")?;
        for (i, row) in self.limits.rows().iter().enumerate() {
            if i > 0 {
                w.put(b", ")?;
            }
            emit_str(w, row.name)?;
            w.put(b": ")?;
            emit_u64(w, row.value)?;
        }
        w.put(b"}")
    }

    /// The busiest peers of the peer set, busiest first (ties: the earlier joiner first).
    pub fn top_talkers(&self, traffic: &PeerTraffic) -> heapless::Vec<(PeerId, Traffic), MAX_TOP_TALKERS> {
        let mut top: heapless::Vec<(PeerId, Traffic), MAX_TOP_TALKERS> = heapless::Vec::new();
        let total = |t: &Traffic| t.msgs_in.saturating_add(t.msgs_out);
        for p in self.peers.registered() {
            let t = traffic.get(p.0);
            if total(&t) == 0 {
                continue;
            }
            let at = top.iter().position(|(_, o)| total(&t) > total(o)).unwrap_or(top.len());
            if at >= MAX_TOP_TALKERS {
                continue;
            }
            if top.is_full() {
                top.pop();
            }
            let _ = top.insert(at, (p, t)); // room was made just above
        }
        top
    }

    /// `, "top_talkers": [...]`: as many of [`Router::top_talkers`] as fit, leaving 1 byte
    /// for the closing brace.
    fn write_top_talkers(&self, traffic: &PeerTraffic, w: &mut SliceWriter<'_>) -> Result<(), SinkFull> {
        w.put(b", \"top_talkers\": [")?;
        for (i, (peer, t)) in self.top_talkers(traffic).iter().enumerate() {
            let identity = self.peers.identity(*peer);
            let mut need = LenCounter::new();
            let _ = emit_latin1_str(&mut need, identity);
            if need.len() + TALKER_FIXED_BYTES + 2 > w.remaining() {
                break;
            }
            if i > 0 {
                w.put(b", ")?;
            }
            w.put(b"{\"identity\": ")?;
            emit_latin1_str(w, identity)?;
            w.put(b", \"msgs_in\": ")?;
            emit_u64(w, t.msgs_in)?;
            w.put(b", \"msgs_out\": ")?;
            emit_u64(w, t.msgs_out)?;
            w.put(b"}")?;
        }
        w.put(b"]")
    }
}

/// Run `part`; if it fails, or leaves no byte for the closing brace, take back what it wrote.
fn optional(w: &mut SliceWriter<'_>, part: impl FnOnce(&mut SliceWriter<'_>) -> Result<(), SinkFull>) {
    let mark = w.len();
    if part(w).is_err() || w.remaining() < 1 {
        w.truncate(mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{self, Kind};
    use crate::limits::Limits;
    use crate::vip::platform::PlatformInfo;
    use crate::vip::router::{Full, Sink};

    struct Nowhere;
    impl Sink for Nowhere {
        fn deliver(&mut self, _: PeerId, _: &[&[u8]]) -> Result<(), Full> {
            Ok(())
        }
    }

    /// The buffer and frame ranges of a message made of `frames`.
    fn message(frames: &[&[u8]]) -> (Vec<u8>, Vec<crate::zmtp::Part>) {
        let mut buf = Vec::new();
        let mut parts = Vec::new();
        for f in frames {
            parts.push(crate::zmtp::Part { start: buf.len() as u32, len: f.len() as u32 });
            buf.extend_from_slice(f);
        }
        (buf, parts)
    }

    /// A router whose peer set holds `names`, slot i = names[i].
    fn router_with(names: &[&[u8]]) -> (Router, Stats) {
        let mut r = Router::new(&Limits::COMPILED, PlatformInfo::with_router_id(b"rid"), 1);
        let mut stats = Stats::default();
        for (i, n) in names.iter().enumerate() {
            let p = PeerId(u16::try_from(i).unwrap());
            r.attach(&mut stats, p, n).unwrap();
            // A probe (one empty frame) joins the peer set (VIP.md §2.4 item 4).
            let part = [crate::zmtp::Part { start: 0, len: 0 }];
            let probe = crate::zmtp::Message::new(&[], &part);
            let _ = r.handle(&mut stats, p, probe, &mut Nowhere, crate::vip::router::OnFull::Pause);
        }
        (r, stats)
    }

    #[test]
    fn top_talkers_are_the_busiest_peers_busiest_first() {
        let names: Vec<Vec<u8>> = (0..14).map(|i| format!("agent{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let (r, _) = router_with(&refs);
        let mut t = PeerTraffic::new(16);
        for i in 0..14u16 {
            for _ in 0..(i * 3) {
                t.count_in(i);
            }
            t.count_out(i);
        }
        t.count_in(15); // a slot outside the peer set is never listed
        for _ in 0..100 {
            t.count_in(15);
        }
        let top = r.top_talkers(&t);
        assert_eq!(top.len(), MAX_TOP_TALKERS);
        let order: Vec<u16> = top.iter().map(|(p, _)| p.0).collect();
        assert_eq!(order, vec![13, 12, 11, 10, 9, 8, 7, 6, 5, 4]);
        assert_eq!(top[0].1, Traffic { msgs_in: 39, msgs_out: 1 });
    }

    #[test]
    fn the_object_has_counters_limits_pubsub_and_top_talkers() {
        let (r, mut stats) = router_with(&[b"a\"quote", b"b"]);
        stats.uptime_ms = 1234;
        let mut t = PeerTraffic::new(4);
        t.count_in(0);
        t.count_out(1);
        t.count_out(1);
        let mut buf = [0u8; STATS_JSON_BYTES];
        let mut w = SliceWriter::new(&mut buf);
        r.write_stats_json(&stats, None, Some(&t), &mut w).unwrap();
        let v = json::parse(w.written()).unwrap();
        assert_eq!(v.kind(), Kind::Object);
        assert_eq!(v.get(b"peers").and_then(|n| n.as_number()).and_then(|n| n.as_u64()), Some(2));
        assert_eq!(v.get(b"uptime_ms").and_then(|n| n.as_number()).and_then(|n| n.as_u64()), Some(1234));
        let limits = v.get(b"limits").unwrap();
        assert_eq!(limits.members().count(), Limits::NAMES.len());
        let max = limits.get(b"max-connections").and_then(|n| n.as_number()).and_then(|n| n.as_u64());
        assert_eq!(max, Some(Limits::COMPILED.max_connections as u64));
        assert!(v.get(b"subscriptions").is_some() && v.get(b"slow_subscribers").is_some());
        let top: Vec<_> = v.get(b"top_talkers").unwrap().items().collect();
        assert_eq!(top.len(), 2);
        assert!(top[0].get(b"identity").unwrap().as_str().unwrap().eq_latin1(b"b"));
        assert!(top[1].get(b"identity").unwrap().as_str().unwrap().eq_latin1(b"a\"quote"));
        assert_eq!(top[0].get(b"msgs_out").and_then(|n| n.as_number()).and_then(|n| n.as_u64()), Some(2));
        // Without a table there is no top_talkers member.
        let mut w = SliceWriter::new(&mut buf);
        r.write_stats_json(&stats, None, None, &mut w).unwrap();
        assert!(json::parse(w.written()).unwrap().get(b"top_talkers").is_none());
    }

    /// Many slow subscribers with long identities still leave the top talkers their room, and
    /// the object stays within [`STATS_JSON_BYTES`].
    #[test]
    fn slow_subscribers_leave_room_for_the_top_talkers() {
        let names: Vec<Vec<u8>> = (0..100).map(|i| format!("slow-{i}-{}", "x".repeat(200)).into_bytes()).collect();
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let (mut r, mut stats) = router_with(&refs);
        let sub = br#"{"prefix": "", "bus": ""}"#;
        let frames: [&[u8]; 7] = [b"", b"VIP1", b"", b"s", b"pubsub", b"subscribe", sub];
        let mut t = PeerTraffic::new(128);
        for i in 0..100u16 {
            let (buf, parts) = message(&frames);
            let _ = r.handle(
                &mut stats,
                PeerId(i),
                crate::zmtp::Message::new(&buf, &parts),
                &mut Nowhere,
                crate::vip::router::OnFull::Pause,
            );
            t.count_in(i);
        }
        struct Refuses;
        impl Sink for Refuses {
            fn deliver(&mut self, _: PeerId, _: &[&[u8]]) -> Result<(), Full> {
                Err(Full)
            }
        }
        let publish: [&[u8]; 8] =
            [b"", b"VIP1", b"", b"m", b"pubsub", b"publish", b"t", br#"{"bus": "", "headers": {}, "message": 1}"#];
        let (buf, parts) = message(&publish);
        let _ = r.handle(
            &mut stats,
            PeerId(0),
            crate::zmtp::Message::new(&buf, &parts),
            &mut Refuses,
            crate::vip::router::OnFull::Pause,
        );
        assert!(stats.dropped_slow_subscriber >= 99);
        let mut buf = [0u8; STATS_JSON_BYTES];
        let mut w = SliceWriter::new(&mut buf);
        r.write_stats_json(&stats, None, Some(&t), &mut w).unwrap();
        let v = json::parse(w.written()).unwrap();
        assert!(v.get(b"slow_subscribers").unwrap().members().count() > 0);
        assert!(v.get(b"slow_subscribers_omitted").is_some());
        assert!(v.get(b"top_talkers").unwrap().items().count() >= 4, "{}", String::from_utf8_lossy(w.written()));
    }

    /// A buffer too small for the later parts keeps the counters and stays valid JSON.
    #[test]
    fn parts_that_do_not_fit_are_left_out_whole() {
        let (r, stats) = router_with(&[b"a", b"b"]);
        let mut t = PeerTraffic::new(4);
        t.count_in(0);
        let mut full = [0u8; STATS_JSON_BYTES];
        let mut w = SliceWriter::new(&mut full);
        r.write_stats_json(&stats, None, Some(&t), &mut w).unwrap();
        let whole = w.len();
        let mut counters_only = [0u8; STATS_JSON_BYTES];
        let mut w = SliceWriter::new(&mut counters_only);
        w.put(b"{").unwrap();
        stats.write_fields(&mut w).unwrap();
        let counters = w.len() + 1;
        for size in counters..whole {
            let mut buf = vec![0u8; size];
            let mut w = SliceWriter::new(&mut buf);
            r.write_stats_json(&stats, None, Some(&t), &mut w).unwrap();
            let v = json::parse(w.written()).unwrap_or_else(|e| panic!("size {size}: {e:?}"));
            assert!(v.get(b"uptime_ms").is_some(), "size {size}");
        }
        let mut small = vec![0u8; counters - 1];
        assert!(r.write_stats_json(&stats, None, Some(&t), &mut SliceWriter::new(&mut small)).is_err());
    }
}
