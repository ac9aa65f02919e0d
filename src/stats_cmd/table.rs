//! The `viprouter stats` table: one answer ([`Sample`]) and its rates ([`Rates`]) as text an
//! operator reads on an 80-column terminal.
//!
//! Sections: the header (instance, address, uptime); the state against the limits (peers,
//! connections, subscriptions, buffer bytes, with high-water marks); messages and bytes, in
//! total and per second; every non-zero drop, refusal and pause by cause (the counter's name,
//! as `query stats` and the man page call it), most first; the top talkers; the slowest
//! subscribers (deliveries dropped). Rates are over the interval since the last answer with
//! `--watch`, else averages since the router started; the table says which.

use std::fmt::Write;

use super::sample::{Rates, Sample};

/// What the table shows above the numbers.
#[derive(Clone, Debug)]
pub struct Header {
    /// The router's address.
    pub address: String,
    /// Its `instance-name`.
    pub instance: String,
}

/// The longest identity shown; longer ones are cut with `…`.
const NAME: usize = 28;

/// Counters that are neither a drop nor a refusal but say a peer had to wait.
const PAUSES: [&str; 2] = ["paused_sender", "paused_budget"];
/// Drops and refusals whose names do not say so by their prefix.
const OTHER_DROPS: [&str; 4] = ["external_rpc_dropped", "pubsub_malformed", "pubsub_unknown_op", "accept_errors"];

/// Is the counter `name` a drop, a refusal or a pause (the "drops by cause" section)?
fn is_drop(name: &str) -> bool {
    ["rejected_", "dropped_", "unroutable_", "errors_"].iter().any(|p| name.starts_with(p))
        || OTHER_DROPS.contains(&name)
        || PAUSES.contains(&name)
}

/// `3d 04:05:06`, or `04:05:06` under a day.
pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 { format!("{d}d {h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}") }
}

/// Bytes in binary units with one decimal (`512 B`, `1.5 KiB`, `128.0 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.1}"))
}

fn percent(n: u64, of: Option<u64>) -> String {
    match of {
        Some(of) if of > 0 => format!("{:.1}%", n as f64 * 100.0 / of as f64),
        _ => String::new(),
    }
}

/// `name` cut to the width of the first column (indented by 2).
fn short(name: &str) -> String {
    let max = NAME - 2;
    if name.chars().count() <= max { name.to_string() } else { name.chars().take(max - 1).chain(['…']).collect() }
}

/// The whole table for `current`, with rates over the interval since `previous` (if from the
/// same run); `watch`: the refresh period, for the footer.
pub fn render(header: &Header, current: &Sample, previous: Option<&Sample>, watch: Option<u64>) -> String {
    let rates = Rates::new(current, previous);
    let get = |name: &str| current.get(name).unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(t, "viprouter {} at {}, up {}", header.instance, header.address, uptime(get("uptime_ms")));
    state(&mut t, current);
    messages(&mut t, current, &rates);
    drops(&mut t, current, &rates);
    talkers(&mut t, current, &rates);
    slowest(&mut t, current);
    let over = if rates.over_interval() {
        format!("rates over the last {:.1} s", rates.seconds())
    } else {
        "rates: averages since the router started".to_string()
    };
    let _ = match watch {
        Some(n) => writeln!(t, "\n{over}; every {n} s, Ctrl-C to stop"),
        None => writeln!(t, "\n{over}"),
    };
    t
}

/// Peers, connections, subscriptions and buffers, against their limits.
fn state(t: &mut String, s: &Sample) {
    let get = |name: &str| s.get(name).unwrap_or(0);
    let _ = writeln!(t, "\n{:<NAME$} {:>12} {:>12} {:>7} {:>12}", "", "now", "limit", "use", "high-water");
    let _ = writeln!(t, "{:<NAME$} {:>12}", "peers", get("peers"));
    let (n, max) = (get("connections"), s.limit("max-connections"));
    let hwm = get("connections_hwm");
    let _ = writeln!(
        t,
        "{:<NAME$} {:>12} {:>12} {:>7} {:>12}",
        "connections",
        n,
        max.map_or(String::new(), |m| m.to_string()),
        percent(n, max),
        hwm
    );
    let (n, max) = (get("subscriptions"), s.limit("max-subscriptions"));
    let _ = writeln!(
        t,
        "{:<NAME$} {:>12} {:>12} {:>7}",
        "subscriptions",
        n,
        max.map_or(String::new(), |m| m.to_string()),
        percent(n, max)
    );
    let (n, max) = (get("buffer_bytes"), s.limit("buffer-budget-bytes"));
    let _ = writeln!(
        t,
        "{:<NAME$} {:>12} {:>12} {:>7} {:>12}",
        "buffers",
        bytes(n),
        max.map_or(String::new(), bytes),
        percent(n, max),
        bytes(get("buffer_bytes_hwm"))
    );
}

/// Messages and bytes, in total and per second.
fn messages(t: &mut String, s: &Sample, r: &Rates<'_>) {
    let _ = writeln!(t, "\n{:<NAME$} {:>12} {:>12}", "messages", "total", "per s");
    for (label, name) in [
        ("in (from peers)", "msgs_in"),
        ("out (to peers)", "msgs_out"),
        ("routed peer to peer", "routed"),
        ("pubsub publishes", "pubsub_publishes"),
        ("pubsub deliveries", "pubsub_deliveries"),
    ] {
        let _ = writeln!(t, "  {label:<w$} {:>12} {:>12}", s.get(name).unwrap_or(0), rate(r.of(name)), w = NAME - 2);
    }
    for (label, name) in [("bytes in", "bytes_in"), ("bytes out", "bytes_out")] {
        let per_s = r.of(name).map_or_else(|| "-".to_string(), |v| format!("{}/s", bytes(v as u64)));
        let _ = writeln!(t, "  {label:<w$} {:>12} {:>12}", bytes(s.get(name).unwrap_or(0)), per_s, w = NAME - 2);
    }
}

/// Every non-zero drop, refusal and pause, most first.
fn drops(t: &mut String, s: &Sample, r: &Rates<'_>) {
    let mut rows: Vec<&(String, u64)> = s.counters.iter().filter(|(k, v)| *v > 0 && is_drop(k)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(t, "\n{:<NAME$} {:>12} {:>12}", "drops, refusals, pauses", "total", "per s");
    if rows.is_empty() {
        let _ = writeln!(t, "  none");
    }
    for (name, n) in rows {
        let _ = writeln!(t, "  {name:<w$} {n:>12} {:>12}", rate(r.of(name)), w = NAME - 2);
    }
}

/// The busiest peers.
fn talkers(t: &mut String, s: &Sample, r: &Rates<'_>) {
    if s.top.is_empty() {
        return;
    }
    let _ =
        writeln!(t, "\n{:<NAME$} {:>12} {:>8} {:>12} {:>8}", "top talkers", "msgs in", "per s", "msgs out", "per s");
    for p in &s.top {
        let (i, o) = r.of_talker(p).map_or((None, None), |(i, o)| (Some(i), Some(o)));
        let _ = writeln!(
            t,
            "  {:<w$} {:>12} {:>8} {:>12} {:>8}",
            short(&p.identity),
            p.msgs_in,
            rate(i),
            p.msgs_out,
            rate(o),
            w = NAME - 2
        );
    }
}

/// The subscribers whose deliveries were dropped.
fn slowest(t: &mut String, s: &Sample) {
    if s.slow.is_empty() {
        return;
    }
    let _ = writeln!(t, "\n{:<NAME$} {:>12}", "slowest subscribers", "dropped");
    for (identity, n) in &s.slow {
        let _ = writeln!(t, "  {:<w$} {n:>12}", short(identity), w = NAME - 2);
    }
    if s.slow_omitted > 0 {
        let _ = writeln!(t, "  ({} more not listed)", s.slow_omitted);
    }
}
