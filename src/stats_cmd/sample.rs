//! One `query stats` answer, read ([`Sample`]), and the rates per second between two answers
//! ([`Rates`]).
//!
//! Contract: [`Sample::parse`] takes the object `vip::report` writes (the counters and gauges as
//! top-level integers, `"limits"`, `"slow_subscribers"`, `"top_talkers"`); members it does not
//! know are kept if they are integers and ignored otherwise, missing ones read as absent, so an
//! older or newer router still shows what both know. Rates are over the interval between two
//! answers of the same router run (measured on its `uptime_ms`), else averages since it started.

use viprouter::json::{self, JsonStr, Kind, Value};

/// A peer's messages, as `"top_talkers"` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Talker {
    /// Its identity.
    pub identity: String,
    /// Messages the router read from it.
    pub msgs_in: u64,
    /// Messages the router queued to it.
    pub msgs_out: u64,
}

/// One answer to `query stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Every top-level integer member (counters and gauges), in the router's order.
    pub counters: Vec<(String, u64)>,
    /// `"limits"`: each limit in force.
    pub limits: Vec<(String, u64)>,
    /// `"slow_subscribers"`: deliveries dropped per subscriber, most first.
    pub slow: Vec<(String, u64)>,
    /// `"slow_subscribers_omitted"`.
    pub slow_omitted: u64,
    /// `"top_talkers"`, busiest first.
    pub top: Vec<Talker>,
}

fn text(s: JsonStr<'_>) -> String {
    s.chars().map(|c| char::from_u32(c).unwrap_or('\u{FFFD}')).collect()
}

fn int(v: Value<'_>) -> Option<u64> {
    v.as_number().and_then(|n| n.as_u64())
}

/// The integer members of the object `v`.
fn integers(v: Value<'_>) -> Vec<(String, u64)> {
    v.members().filter_map(|(k, v)| Some((text(k), int(v)?))).collect()
}

impl Sample {
    /// Read an answer.
    ///
    /// # Errors
    /// The text is not a JSON object.
    pub fn parse(raw: &[u8]) -> Result<Sample, String> {
        let v = json::parse(raw).map_err(|e| format!("not JSON ({e:?})"))?;
        if v.kind() != Kind::Object {
            return Err("not a JSON object".into());
        }
        let mut s = Sample { counters: integers(v), ..Sample::default() };
        if let Some(l) = v.get(b"limits") {
            s.limits = integers(l);
        }
        if let Some(slow) = v.get(b"slow_subscribers") {
            s.slow = integers(slow);
            s.slow.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        s.slow_omitted = v.get(b"slow_subscribers_omitted").and_then(int).unwrap_or(0);
        if let Some(top) = v.get(b"top_talkers") {
            s.top = top
                .items()
                .filter_map(|t| {
                    Some(Talker {
                        identity: text(t.get(b"identity")?.as_str()?),
                        msgs_in: t.get(b"msgs_in").and_then(int)?,
                        msgs_out: t.get(b"msgs_out").and_then(int)?,
                    })
                })
                .collect();
        }
        Ok(s)
    }

    /// The counter or gauge `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }

    /// The limit `name` (config-file spelling).
    pub fn limit(&self, name: &str) -> Option<u64> {
        self.limits.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }
}

/// Rates per second for one answer: over the interval since `previous` when both come from the
/// same router run, else averages since the router started.
#[derive(Clone, Copy, Debug)]
pub struct Rates<'a> {
    current: &'a Sample,
    /// The earlier answer the rates are over, if they are over an interval.
    previous: Option<&'a Sample>,
    seconds: f64,
}

impl<'a> Rates<'a> {
    /// The rates of `current` (see the type doc).
    pub fn new(current: &'a Sample, previous: Option<&'a Sample>) -> Rates<'a> {
        let up = |s: &Sample| s.get("uptime_ms").unwrap_or(0);
        match previous {
            // A later answer of the same run: the router's own clock says how far apart.
            Some(p) if up(current) > up(p) && current.get("accepted") >= p.get("accepted") => {
                Rates { current, previous: Some(p), seconds: (up(current) - up(p)) as f64 / 1000.0 }
            }
            _ => Rates { current, previous: None, seconds: up(current) as f64 / 1000.0 },
        }
    }

    /// True when the rates are over an interval (not since the start).
    pub fn over_interval(&self) -> bool {
        self.previous.is_some()
    }

    /// The seconds the rates are over.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    fn per_second(&self, now: u64, before: u64) -> Option<f64> {
        (self.seconds > 0.0).then(|| now.saturating_sub(before) as f64 / self.seconds)
    }

    /// The rate of the counter `name`; `None` without time elapsed or without the counter.
    pub fn of(&self, name: &str) -> Option<f64> {
        let now = self.current.get(name)?;
        let before = match self.previous {
            Some(p) => p.get(name)?,
            None => 0,
        };
        self.per_second(now, before)
    }

    /// Messages in and out per second of `t`; over an interval only if the earlier answer
    /// listed it too.
    pub fn of_talker(&self, t: &Talker) -> Option<(f64, f64)> {
        let (before_in, before_out) = match self.previous {
            Some(p) => p.top.iter().find(|o| o.identity == t.identity).map(|o| (o.msgs_in, o.msgs_out))?,
            None => (0, 0),
        };
        Some((self.per_second(t.msgs_in, before_in)?, self.per_second(t.msgs_out, before_out)?))
    }
}
