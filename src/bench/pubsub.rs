//! Pubsub pieces shared by `fanout` and `fanout-lat` (VIP.md §7.3, §7.6): the subscribe
//! request and its answer, and the publish body stamped with its send time.
//!
//! The stamp: nanoseconds since a process-wide instant ([`now_ns`]) as 16 lower-case hex
//! digits at the start of the `"message"` string, the body still padded to `--size`:
//! `{"bus":"","headers":{},"message":"00000000075bcd15xxx…"}`. The router re-encodes the
//! body for delivery (`{"sender": …, "bus": "", "headers": {}, "message": "…"}`, VIP.md
//! §7.6), so a subscriber finds the stamp after the `"message"` key ([`parse_stamp`]);
//! publisher and subscribers share the process, hence the clock.

use std::sync::OnceLock;
use std::time::Instant;

use super::consts::SUB_PREFIX;
use super::vip::{is_error, is_vip};
use crate::zmtp::Message;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn clock_runs_forward() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(now_ns() >= a + 1_000_000);
    }
}
