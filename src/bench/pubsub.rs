//! Pubsub pieces shared by `fanout` and `fanout-lat` (VIP.md §7.3, §7.6): the subscribe
//! request and its answer, the publish body stamped with its send time, and the idle
//! subscriptions of `--extra-subs`.
//!
//! The stamp: nanoseconds since a process-wide instant ([`now_ns`]) as 16 lower-case hex
//! digits at the start of the `"message"` string, the body still padded to `--size`:
//! `{"bus":"","headers":{},"message":"00000000075bcd15xxx…"}`. The router re-encodes the
//! body for delivery (`{"sender": …, "bus": "", "headers": {}, "message": "…"}`, VIP.md
//! §7.6), so a subscriber finds the stamp after the `"message"` key ([`parse_stamp`]);
//! publisher and subscribers share the process, hence the clock.

use std::sync::OnceLock;
use std::time::Instant;

use super::Ctx;
use super::client::ClientError;
use super::consts::{SETUP_TIMEOUT, SUB_PREFIX};
use super::messages::{fmt_id, hello_wait, is_error, is_vip, queue_vip};
use super::report::CaseResult;
use super::socket::Socket;
use viprouter::zmtp::Message;

/// Hex digits of a stamp.
pub const STAMP_LEN: usize = 16;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A publish body `{"bus":"","headers":{},"message":"<stamp>xxx…"}` of `size` bytes (at
/// least the stamp), restamped in place before each send.
pub struct PublishBody {
    buf: Vec<u8>,
}

const PRE: &[u8] = b"{\"bus\":\"\",\"headers\":{},\"message\":\"";
const POST: &[u8] = b"\"}";

impl PublishBody {
    /// A body of `size` bytes, or of the smallest size that holds a stamp.
    pub fn new(size: usize) -> PublishBody {
        let fill = size.saturating_sub(PRE.len() + POST.len()).max(STAMP_LEN);
        let mut buf = Vec::with_capacity(PRE.len() + fill + POST.len());
        buf.extend_from_slice(PRE);
        buf.resize(PRE.len() + fill, b'x');
        buf.extend_from_slice(POST);
        let mut b = PublishBody { buf };
        b.stamp(0);
        b
    }

    /// Write `ns` as the stamp and return the body.
    pub fn stamp(&mut self, ns: u64) -> &[u8] {
        const HX: &[u8; 16] = b"0123456789abcdef";
        if let Some(digits) = self.buf.get_mut(PRE.len()..PRE.len() + STAMP_LEN) {
            for (i, d) in digits.iter_mut().enumerate() {
                *d = HX.get(((ns >> (60 - 4 * i)) & 15) as usize).copied().unwrap_or(b'0');
            }
        }
        &self.buf
    }
}

/// The stamp of a publish or delivery body: the 16 hex digits that open the string value
/// of its `"message"` key (either JSON spacing; a `"message"` string that is not followed
/// by `:` is a value, not the key).
pub fn parse_stamp(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"message\"";
    let mut from = 0;
    loop {
        let at = from + body.get(from..)?.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
        if let Some(value) = body.get(at..)?.trim_ascii_start().strip_prefix(b":") {
            let digits = value.trim_ascii_start().strip_prefix(b"\"")?.get(..STAMP_LEN)?;
            return hex(digits);
        }
        from = at;
    }
}

/// The value of lower- or upper-case hex digits (at most 16).
fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &c| Some((acc << 4) | u64::from(char::from(c).to_digit(16)?)))
}

/// The number in a [`fmt_id`] message id with tag `tag`.
pub fn parse_id(mid: &[u8], tag: u8) -> Option<u32> {
    match mid {
        [t, digits @ ..] if *t == tag && digits.len() == 8 => hex(digits).and_then(|v| u32::try_from(v).ok()),
        _ => None,
    }
}

/// The publisher of `fanout` and `fanout-lat`, connected and welcomed (`hello`).
pub fn connect_publisher(ctx: &Ctx) -> Result<Socket, ClientError> {
    let pid = format!("{}-pub", ctx.prefix);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut c = ctx.clients.connect(&ctx.endpoint, pid.as_bytes(), &ctx.security, SETUP_TIMEOUT)?;
    if hello_wait(&mut c, deadline)? { Ok(c) } else { Err(ClientError::Timeout) }
}

/// The body of the `subscribe` agents send (VIP.md §7.3).
pub fn subscribe_body(prefix: &str) -> String {
    format!("{{\"prefix\":\"{prefix}\",\"bus\":\"\",\"all_platforms\":false}}")
}

/// The bench subscribers' body: the prefix `devices/bench`.
pub fn bench_subscribe_body() -> String {
    subscribe_body(SUB_PREFIX)
}

/// `pubsub request_response` (the answer to subscribe and to publish).
pub fn is_request_response(m: &Message<'_>) -> bool {
    is_vip(m) && m.len() >= 6 && m.frame(4) == b"pubsub" && m.frame(5) == b"request_response"
}

/// Error 93: the router has no such subsystem.
pub fn is_93(m: &Message<'_>) -> bool {
    is_error(m) && m.frame(5) == b"93"
}

/// A delivered publish (`pubsub publish TOPIC BODY`).
pub fn is_publish(m: &Message<'_>) -> bool {
    is_vip(m) && m.len() >= 7 && m.frame(4) == b"pubsub" && m.frame(5) == b"publish"
}

/// Most `--extra-subs` subscriptions per idle peer (the router takes 1024: `limits.rs`).
pub const EXTRA_PER_PEER: usize = 1000;

/// The `i`-th `--extra-subs` prefix. All are distinct and none is a prefix of the bench
/// topic `devices/bench/fanout`, but most share its path, so that a publish probes the
/// index at the lengths it walks and finds near misses there: four shapes in turn,
/// `devices/bench/fanout/x{i}` (longer than the topic), `devices/bench/f{i}`,
/// `devices/b{i}` and `other/{i}`.
pub fn extra_prefix(i: usize) -> String {
    match i % 4 {
        0 => format!("devices/bench/fanout/x{i}"),
        1 => format!("devices/bench/f{i}"),
        2 => format!("devices/b{i}"),
        _ => format!("other/{i}"),
    }
}

/// The idle peers holding the `--extra-subs` subscriptions; the subscriptions last while
/// they are connected (VIP.md §7.12), i.e. until this is dropped.
#[derive(Default)]
pub struct Extra {
    /// Subscriptions asked for.
    pub wanted: usize,
    /// The peers.
    pub socks: Vec<Socket>,
    /// Answered `01`.
    pub acked: u64,
    /// Answered otherwise (`00`: a limit of the router).
    pub refused: u64,
    /// Answered with error 93 (no pubsub subsystem).
    pub unsupported: bool,
}

impl Extra {
    /// [`Extra::subscribe`], with a failure or a shortfall recorded in `failure`.
    pub fn subscribe_or_fail(ctx: &Ctx, failure: &super::FirstFailure) -> Extra {
        let extra = Extra::subscribe(ctx, ctx.args.extra_subs).unwrap_or_else(|e| {
            failure.set(e);
            Extra::default()
        });
        if let Some(e) = extra.shortfall() {
            failure.set(e);
        }
        extra
    }

    /// Connect ⌈n/1000⌉ idle peers and subscribe `n` [`extra_prefix`]es, at most 1000 per
    /// peer, each peer's sent at once; wait for every `request_response`.
    ///
    /// # Errors
    /// A peer that fails to connect, or answers missing after [`SETUP_TIMEOUT`].
    pub fn subscribe(ctx: &Ctx, n: usize) -> Result<Extra, String> {
        let mut extra = Extra { wanted: n, ..Extra::default() };
        let deadline = Instant::now() + SETUP_TIMEOUT;
        for (j, first) in (0..n).step_by(EXTRA_PER_PEER).enumerate() {
            let id = format!("{}-x{j}", ctx.prefix);
            let ids = first..n.min(first + EXTRA_PER_PEER);
            let sock =
                extra.subscribe_peer(ctx, id.as_bytes(), ids, deadline).map_err(|e| format!("extra peer {id}: {e}"))?;
            extra.socks.push(sock);
        }
        Ok(extra)
    }

    fn subscribe_peer(
        &mut self,
        ctx: &Ctx,
        id: &[u8],
        ids: std::ops::Range<usize>,
        deadline: Instant,
    ) -> Result<Socket, ClientError> {
        let mut c = ctx.clients.connect(&ctx.endpoint, id, &ctx.security, SETUP_TIMEOUT)?;
        if !hello_wait(&mut c, deadline)? {
            return Err(ClientError::Timeout);
        }
        let mut left = ids.len();
        for i in ids {
            let body = subscribe_body(&extra_prefix(i));
            queue_vip(&mut c, b"", &fmt_id(b'e', i as u32), b"pubsub", &[b"subscribe", body.as_bytes()])?;
        }
        c.flush_until(deadline)?;
        while left > 0 {
            if !c.recv_until(deadline)? {
                return Err(ClientError::Timeout);
            }
            let m = c.message();
            if m.frame(3).first() != Some(&b'e') {
                continue; // peerlist notices and the like
            }
            if is_request_response(&m) {
                if m.frame(6) == [1] {
                    self.acked += 1;
                } else {
                    self.refused += 1;
                }
            } else if is_93(&m) {
                self.unsupported = true;
            } else {
                continue;
            }
            left -= 1;
        }
        Ok(c)
    }

    /// Not every subscription acknowledged (a router without pubsub aside): why.
    pub fn shortfall(&self) -> Option<String> {
        (!self.unsupported && self.acked < self.wanted as u64).then(|| {
            format!("only {}/{} extra subscriptions acknowledged ({} refused)", self.acked, self.wanted, self.refused)
        })
    }

    /// `extra_subs`, `extra_peers`, `extra_subs_acked`.
    pub fn fields(&self, r: &mut CaseResult) {
        r.int("extra_subs", self.wanted).int("extra_peers", self.socks.len()).int("extra_subs_acked", self.acked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::messages::fmt_id;

    #[test]
    fn stamps_round_trip_through_either_spacing() {
        let mut b = PublishBody::new(256);
        assert_eq!(b.stamp(0x0123_4567_89ab_cdef).len(), 256);
        let body = b.stamp(123_456_789).to_vec();
        assert!(body.starts_with(b"{\"bus\":\"\",\"headers\":{},\"message\":\"00000000075bcd15xxx"), "{body:?}");
        assert!(body.ends_with(b"x\"}"));
        assert_eq!(parse_stamp(&body), Some(123_456_789));
        // the router's delivery body (Python spacing), the publisher's headers in front
        let delivered = b"{\"sender\": \"p\", \"bus\": \"\", \"headers\": {}, \"message\": \"ffffffffffffffffxx\"}";
        assert_eq!(parse_stamp(delivered), Some(u64::MAX));
        // a "message" string in the headers is a value, not the key
        let delivered =
            b"{\"sender\": \"p\", \"bus\": \"\", \"headers\": {\"k\": \"message\"}, \"message\": \"00000000000000ffxx\"}";
        assert_eq!(parse_stamp(delivered), Some(255));
        // too small a size still holds the stamp
        let mut small = PublishBody::new(1);
        assert_eq!(parse_stamp(small.stamp(7)), Some(7));
        // not stamped
        assert_eq!(parse_stamp(b"{\"message\": \"0123456789abcdeg\"}"), None);
        assert_eq!(parse_stamp(b"{\"message\": \"0123\"}"), None);
        assert_eq!(parse_stamp(b"{\"message\": 5}"), None);
        assert_eq!(parse_stamp(b""), None);
    }

    #[test]
    fn extra_prefixes_are_distinct_near_misses() {
        let topic = std::str::from_utf8(crate::bench::consts::TOPIC).unwrap();
        let all: Vec<String> = (0..10_000).map(extra_prefix).collect();
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        for p in &all {
            assert!(!topic.starts_with(p.as_str()), "{p} matches {topic}");
            assert!(!p.contains('"') && !p.contains('\\'), "{p} needs JSON escaping");
        }
        // the four shapes in turn
        assert_eq!(&all[..4], ["devices/bench/fanout/x0", "devices/bench/f1", "devices/b2", "other/3"]);
    }

    #[test]
    fn ids_parse_back() {
        assert_eq!(parse_id(&fmt_id(b'p', 0xdead_beef), b'p'), Some(0xdead_beef));
        assert_eq!(parse_id(&fmt_id(b'p', 500), b'p'), Some(500));
        assert_eq!(parse_id(&fmt_id(b'p', 500), b'q'), None);
        assert_eq!(parse_id(b"p123", b'p'), None);
        assert_eq!(parse_id(b"p1234567z", b'p'), None);
    }

    #[test]
    fn clock_runs_forward() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(now_ns() >= a + 1_000_000);
    }
}
