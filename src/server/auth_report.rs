//! Admission reports to `platform.auth`, and setup mode: the part of VOLTTRON's in-process ZAP
//! handler that a router in its own process must hand back to the platform (VIP.md §9.6).
//!
//! VOLTTRON 9.0.4's ZAP loop (`auth/auth_protocols/auth_zmq.py:260-293`) records every refused
//! peer as a *pending authorization* (`_update_auth_pending`: what `vctl auth remote
//! list/approve/deny` work on) and, when the platform runs with `--setup-mode`, admits it
//! instead and writes an auth.json entry for it (`_update_auth_entry`). viprouter makes the
//! decision itself, so that state never reaches `platform.auth`. With `--auth-reports` the
//! router tells the `platform.auth` peer about each such handshake; with `--setup-mode` it
//! admits the peers auth.json refuses (any mechanism, as VOLTTRON does). The message, from the
//! router (empty sender, as `peerlist` notifications):
//!
//! ```text
//! ["", "VIP1", "", "", "viprouter.auth", "refused" | "admitted",
//!  {"domain": D, "address": A, "mechanism": M, "credentials": C, "identity": I}]
//! ```
//!
//! `credentials` is the CURVE key in VOLTTRON's 43-character form, the PLAIN user name, or
//! `null` for NULL — `credentials[0]` of the ZAP request, as VOLTTRON records it. The receiving
//! side is `viprouter-volttron`'s AuthService (python/): it hands `refused` to VOLTTRON's own
//! `_update_auth_pending` and `admitted` to its `_update_auth_entry`; approving a pending entry
//! writes auth.json, which the router reloads, so the peer's next connection is admitted
//! without a restart.
//!
//! Bounds (not on the message path, so a queue of strings is fine; `limits.rs`): at most
//! [`MAX_QUEUED`] reports wait for `platform.auth` to connect or drain, at most
//! [`MAX_PER_SECOND`] are accepted per second (a client cycling keys cannot flood the
//! platform's pending list); the rest are counted (`dropped_auth_report`) and logged once.
//! Delivered reports are counted as `auth_reports_sent`, setup-mode admissions as
//! `admitted_setup_mode`.

use std::collections::VecDeque;

use super::event_loop::AuthQuery;
use crate::auth::KeyText;
use crate::json::emit::push_str;
use crate::stats::{self, Stats};
use crate::vip::SIGNATURE;
use crate::vip::peers::PeerTable;
use crate::vip::router::Sink;
use crate::zmtp::mechanism::Credentials;

/// The VIP subsystem of a report.
pub const SUBSYSTEM: &[u8] = b"viprouter.auth";
/// The peer reports go to.
pub const RECIPIENT: &[u8] = b"platform.auth";
/// Reports that may wait for delivery.
pub const MAX_QUEUED: usize = crate::limits::MAX_AUTH_REPORTS_QUEUED;
/// Reports accepted per second.
pub const MAX_PER_SECOND: u32 = crate::limits::MAX_AUTH_REPORTS_PER_SECOND;

/// What the router did with the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused: auth.json has no entry for it (a VOLTTRON pending authorization).
    Refused,
    /// Admitted by setup mode although auth.json has no entry for it.
    Admitted,
}

impl Verdict {
    fn word(self) -> &'static [u8] {
        match self {
            Verdict::Refused => b"refused",
            Verdict::Admitted => b"admitted",
        }
    }
}

/// Reports waiting for `platform.auth`, filled by the policy ([`Admission`]) and delivered by
/// the event loop once per tick ([`AuthReports::deliver`], through `Policy::reports`), and the
/// counters the policy cannot reach.
#[derive(Debug, Default)]
pub struct AuthReports {
    /// Queue reports for `platform.auth` (`--auth-reports`); else only count.
    forward: bool,
    queue: VecDeque<(Verdict, String)>,
    rate: RateLimit,
    dropped: u64,
    admitted: u64,
}

impl AuthReports {
    /// Reports that are queued for `platform.auth` when `forward`, else only counted.
    pub fn new(forward: bool) -> Self {
        AuthReports { forward, ..AuthReports::default() }
    }

    /// Count, and with `forward` queue, a report about the handshake `q` in second `now_secs`
    /// (of the server's clock), within the bounds of the module doc. Returns whether it was
    /// queued.
    pub fn note(&mut self, verdict: Verdict, q: &AuthQuery<'_>, now_secs: u64) -> bool {
        if verdict == Verdict::Admitted {
            self.admitted += 1;
        }
        if !self.forward {
            return false;
        }
        if !self.rate.allow(now_secs) || self.queue.len() >= MAX_QUEUED {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back((verdict, report_json(q)));
        true
    }

    /// Reports waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// No report waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Move the counters into `stats` and queue the waiting reports to `platform.auth` if it is
    /// in the peer set (`peers`); what does not fit its queue waits for the next call. Returns
    /// the number delivered.
    pub fn deliver(&mut self, peers: &PeerTable, stats: &mut Stats, sink: &mut impl Sink) -> u64 {
        stats.admitted_setup_mode += std::mem::take(&mut self.admitted);
        for _ in 0..std::mem::take(&mut self.dropped) {
            if stats::bump_and_should_log(&mut stats.dropped_auth_report) {
                log::warn!(
                    "admission report to platform.auth dropped (more than {MAX_PER_SECOND} per second or \
                     {MAX_QUEUED} waiting)"
                );
            }
        }
        if self.queue.is_empty() {
            return 0;
        }
        let Some(to) = peers.lookup(RECIPIENT).filter(|&p| peers.is_registered(p)) else {
            return 0;
        };
        let mut sent = 0;
        while let Some((verdict, json)) = self.queue.front() {
            let frames: [&[u8]; 7] = [b"", SIGNATURE, b"", b"", SUBSYSTEM, verdict.word(), json.as_bytes()];
            if sink.deliver(to, &frames).is_err() {
                break;
            }
            self.queue.pop_front();
            sent += 1;
        }
        stats.auth_reports_sent += sent;
        sent
    }
}

/// What the platform's policy does with a peer that auth.json refuses: report it (with
/// `--auth-reports`) and, with `--setup-mode`, admit it.
#[derive(Debug, Default)]
pub struct Admission {
    /// Reports and counters (None: neither `--auth-reports` nor `--setup-mode`).
    reports: Option<AuthReports>,
    /// `--setup-mode`: admit what auth.json refuses.
    setup_mode: bool,
    logged: RateLimit,
}

impl Admission {
    /// `auth_reports`: queue reports for `platform.auth`; `setup_mode`: admit refused peers.
    pub fn new(auth_reports: bool, setup_mode: bool) -> Self {
        let reports = (auth_reports || setup_mode).then(|| AuthReports::new(auth_reports));
        Admission { reports, setup_mode, logged: RateLimit::default() }
    }

    /// auth.json refused the peer of `q`: report it and say whether it is admitted all the same
    /// (setup mode; logged, at most [`MAX_PER_SECOND`] lines a second).
    pub fn refused(&mut self, q: &AuthQuery<'_>) -> bool {
        let now_s = q.now.0 / 1000;
        let verdict = if self.setup_mode { Verdict::Admitted } else { Verdict::Refused };
        if let Some(r) = &mut self.reports {
            let _ = r.note(verdict, q, now_s);
        }
        if self.setup_mode && self.logged.allow(now_s) {
            log::warn!("setup mode: admitted {} although auth.json has no entry for it", report_json(q));
        }
        self.setup_mode
    }

    /// The reports (and counters) for the event loop to deliver.
    pub fn reports(&mut self) -> Option<&mut AuthReports> {
        self.reports.as_mut()
    }
}

/// At most [`MAX_PER_SECOND`] events per second.
#[derive(Debug, Default)]
struct RateLimit {
    second: u64,
    count: u32,
}

impl RateLimit {
    fn allow(&mut self, now_secs: u64) -> bool {
        if now_secs != self.second {
            self.second = now_secs;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_PER_SECOND
    }
}

/// The report's JSON object (see the module doc), ASCII as Python's `json.dumps` writes it.
fn report_json(q: &AuthQuery<'_>) -> String {
    let r = &q.request;
    let mut s = String::from("{\"domain\": ");
    push_str(&mut s, &String::from_utf8_lossy(r.domain));
    s.push_str(", \"address\": ");
    push_str(&mut s, r.address);
    s.push_str(", \"mechanism\": ");
    push_str(&mut s, r.mechanism.name());
    s.push_str(", \"credentials\": ");
    match r.credentials {
        Credentials::Curve(k) => push_str(&mut s, KeyText::new(k).as_str()),
        Credentials::Plain { user, .. } => push_str(&mut s, &String::from_utf8_lossy(user)),
        Credentials::Null => s.push_str("null"),
    }
    s.push_str(", \"identity\": ");
    push_str(&mut s, &String::from_utf8_lossy(q.identity));
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthRequest;
    use crate::time::Instant;
    use crate::zmtp::mechanism::Mechanism;

    fn query<'a>(domain: &'a [u8], credentials: Credentials<'a>, identity: &'a [u8]) -> AuthQuery<'a> {
        let mechanism = match credentials {
            Credentials::Curve(_) => Mechanism::Curve,
            Credentials::Plain { .. } => Mechanism::Plain,
            Credentials::Null => Mechanism::Null,
        };
        AuthQuery {
            request: AuthRequest { domain, address: "127.0.0.1", mechanism, credentials },
            identity,
            now: Instant(7_000),
        }
    }

    #[test]
    fn report_is_volttrons_pending_entry_shape() {
        let key = [0u8; 32];
        let j = report_json(&query(b"vip", Credentials::Curve(&key), b"agent\"1\xff"));
        assert_eq!(
            j,
            format!(
                "{{\"domain\": \"vip\", \"address\": \"127.0.0.1\", \"mechanism\": \"CURVE\", \"credentials\": \
                 \"{}\", \"identity\": \"agent\\\"1\\ufffd\"}}",
                KeyText::new(&key).as_str()
            )
        );
        let j = report_json(&query(b"vip", Credentials::Null, b"x"));
        assert!(j.contains("\"mechanism\": \"NULL\", \"credentials\": null"), "{j}");
        let j = report_json(&query(b"d", Credentials::Plain { user: b"admin", password: b"pw" }, b"x"));
        assert!(j.contains("\"domain\": \"d\"") && j.contains("\"credentials\": \"admin\""), "{j}");
        assert!(!j.contains("pw"), "the password is never reported: {j}");
    }

    #[test]
    fn bounded_per_second_and_in_total() {
        let mut r = AuthReports::new(true);
        let key = [1u8; 32];
        let q = query(b"vip", Credentials::Curve(&key), b"a");
        let queued = (0..100).filter(|_| r.note(Verdict::Refused, &q, 7)).count();
        assert_eq!(queued, MAX_PER_SECOND as usize);
        assert_eq!(r.dropped, 100 - u64::from(MAX_PER_SECOND));
        for second in 8..20 {
            for _ in 0..MAX_PER_SECOND {
                let _ = r.note(Verdict::Admitted, &q, second);
            }
        }
        assert_eq!(r.len(), MAX_QUEUED);
        assert_eq!(r.admitted, 12 * u64::from(MAX_PER_SECOND));
        // Without --auth-reports: counted, never queued.
        let mut quiet = AuthReports::new(false);
        assert!(!quiet.note(Verdict::Admitted, &q, 1));
        assert!(quiet.is_empty());
        assert_eq!((quiet.admitted, quiet.dropped), (1, 0));
    }

    #[test]
    fn setup_mode_admits_and_counts() {
        let key = [2u8; 32];
        let q = query(b"vip", Credentials::Curve(&key), b"a");
        let mut off = Admission::new(true, false);
        assert!(!off.refused(&q));
        assert_eq!(off.reports().map(|r| r.len()), Some(1));
        let mut on = Admission::new(false, true);
        assert!(on.refused(&q));
        let r = on.reports().expect("setup mode counts its admissions");
        assert!(r.is_empty() && r.admitted == 1, "counted, not queued without --auth-reports");
        assert!(Admission::new(false, false).reports().is_none());
    }
}
