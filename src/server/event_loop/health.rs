//! The router's health on the bus (`[viprouter] stats-topic`, `stats-interval`, `stats-sender`):
//! every interval, at the loop's time ([`Server::turn`]'s `now`), the `query stats` object is
//! published on the topic as a normal VOLTTRON pubsub message, delivered to the local
//! subscribers like any publish ([`crate::vip::pubsub::OwnPublish`]: protected topics and the
//! slow-subscriber rule apply).
//!
//! The delivery is what an agent's `vip.pubsub.publish('pubsub', topic, headers, message)`
//! produces (VOLTTRON's `subsystems/pubsub.py` `publish`, and the platform driver's headers):
//! bus `""`, headers `{"Date": T, "TimeStamp": T, "min_compatible_version": "3.0",
//! "max_compatible_version": ""}` with T the wall-clock time in `utils.format_timestamp`'s form
//! (`2026-12-01T12:00:00.000000+00:00`), message the `query stats` object. A historian parses it
//! as any other publish: the time from `TimeStamp`/`Date`, each member a point.
//!
//! Cost: nothing is allocated (the object and the headers are written into stack buffers, the
//! delivery body into the pubsub service's warm scratch; `tests/no_alloc_stats.rs`).

use super::sink::conn_sink;
use super::*;
use crate::time::{UTC_TEXT_LEN, format_utc};
use crate::vip::pubsub::OwnPublish;
use crate::vip::router::STATS_JSON_BYTES;

/// What the router publishes about itself, and when.
#[derive(Clone, Debug)]
pub struct StatsPublish {
    /// The topic (`[viprouter] stats-topic`).
    pub topic: Vec<u8>,
    /// The body's `sender` and the deliveries' USER_ID (`stats-sender`, else the router's
    /// identity).
    pub sender: Vec<u8>,
    /// Milliseconds between two publishes (`stats-interval` × 1000).
    pub interval_ms: u64,
}

/// [`StatsPublish`] and the time of the last publish.
#[derive(Debug)]
pub(super) struct Health {
    publish: StatsPublish,
    last: Instant,
}

/// `{"Date": "`, the time, `", "TimeStamp": "`, the time, then the version headers.
const HEADERS_BYTES: usize = 160;

impl Server {
    /// Publish the counters as `publish` says, from the next interval on.
    pub fn set_stats_publish(&mut self, publish: StatsPublish) {
        self.health = Some(Health { last: self.now, publish });
    }

    /// Publish the counters if an interval has passed since the last publish.
    pub(super) fn publish_stats_if_due(&mut self, now: Instant) {
        let due = self.health.as_ref().is_some_and(|h| now.since(h.last) >= h.publish.interval_ms.max(1));
        if due {
            if let Some(h) = self.health.as_mut() {
                h.last = now;
            }
            let wall_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            self.publish_stats(wall_us);
        }
    }

    /// Publish the `query stats` object now, stamped with `wall_us` (µs since the Unix epoch).
    fn publish_stats(&mut self, wall_us: u64) {
        self.sync_stats();
        let bus = self.bus_status();
        let Some(health) = self.health.as_ref() else { return };
        self.stats.router_publishes += 1; // before the object is written: it counts itself
        let mut message = [0u8; STATS_JSON_BYTES];
        let mut w = SliceWriter::new(&mut message);
        if self.router.write_stats_json(&self.stats, bus, Some(&self.traffic), &mut w).is_err() {
            return;
        }
        let message_len = w.len();
        let mut headers = [0u8; HEADERS_BYTES];
        let headers_len = write_headers(&format_utc(wall_us), &mut headers);
        let (Ok(headers), Ok(message)) = (
            crate::json::parse(headers.get(..headers_len).unwrap_or(&[])),
            crate::json::parse(message.get(..message_len).unwrap_or(&[])),
        ) else {
            log::error!("stats publish: the headers or the counters are not valid JSON (a bug)");
            return;
        };
        let own = OwnPublish { sender: &health.publish.sender, topic: &health.publish.topic, headers, message };
        let mut sink = conn_sink!(self, None);
        let _ = self.router.publish_own(&mut self.stats, &own, &mut sink);
        let totals = sink.totals();
        self.account(totals);
        self.fanout.trim();
    }
}

/// Write the headers object for the time `date` into `out`; its length.
fn write_headers(date: &[u8; UTC_TEXT_LEN], out: &mut [u8; HEADERS_BYTES]) -> usize {
    let parts: [&[u8]; 5] = [
        b"{\"Date\": \"",
        date,
        b"\", \"TimeStamp\": \"",
        date,
        b"\", \"min_compatible_version\": \"3.0\", \"max_compatible_version\": \"\"}",
    ];
    let mut w = SliceWriter::new(out);
    for p in parts {
        if crate::json::ByteSink::put(&mut w, p).is_err() {
            return 0;
        }
    }
    w.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_volttrons() {
        let mut out = [0u8; HEADERS_BYTES];
        let n = write_headers(&format_utc(1_700_000_000_123_456), &mut out);
        assert_eq!(
            std::str::from_utf8(&out[..n]).unwrap(),
            "{\"Date\": \"2023-11-14T22:13:20.123456+00:00\", \"TimeStamp\": \"2023-11-14T22:13:20.123456+00:00\", \
             \"min_compatible_version\": \"3.0\", \"max_compatible_version\": \"\"}"
        );
    }
}
