//! The platform's [`Policy`]: the in-process ZAP handler (the decision of VIP.md §9.6 over
//! `auth.json`, with refusals logged rate-limited, reported to `platform.auth` and in setup mode
//! admitted: `auth_report.rs`) and the reload of the rules on SIGHUP or a file change
//! (`reload.rs`), with systemd told around it. One owner holds the [`Authenticator`]: the event
//! loop, through this policy.

use super::auth_report::{Admission, AuthReports};
use super::event_loop::{AuthQuery, Policy};
use super::notify::Notifier;
use super::reload::RuleFiles;
use crate::auth::keys::KeyText;
use crate::auth::{Authenticator, Decision, DenyReason};
use crate::stats::{self, Stats};
use crate::vip::router::Router;
use crate::zmtp::mechanism::Credentials;

/// The platform's rules: who may connect (with auth on), and their reload.
pub struct PlatformPolicy {
    /// `None` with `allow-auth = False`: everyone is admitted, nothing is asked.
    auth: Option<Authenticator>,
    files: RuleFiles,
    /// Tells systemd RELOADING=1 … READY=1 around every reload (sd_notify(3)).
    notifier: Option<Notifier>,
    refused: u64,
    log: RefusalLog,
    /// What happens to refused peers besides the log: reports, setup mode.
    admission: Admission,
}

impl PlatformPolicy {
    /// The rules of `files`, enforced by `auth` (if auth is on).
    pub fn new(auth: Option<Authenticator>, files: RuleFiles, notifier: Option<Notifier>) -> Self {
        PlatformPolicy {
            auth,
            files,
            notifier,
            refused: 0,
            log: RefusalLog::default(),
            admission: Admission::default(),
        }
    }

    /// Report refused peers to `platform.auth` and/or admit them (`--auth-reports`,
    /// `--setup-mode`, `auth_report.rs`).
    #[must_use]
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// The authenticator, if auth is on (for the first load of the pubsub tables).
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.auth.as_ref()
    }

    /// Log a refusal (rate-limited: [`RefusalLog`]).
    fn refused(&mut self, q: &AuthQuery<'_>, reason: &dyn core::fmt::Display) {
        let _ = stats::bump_and_should_log(&mut self.refused);
        let r = &q.request;
        let who = match r.credentials {
            Credentials::Curve(k) => format!("key {}", KeyText::new(k).as_str()),
            Credentials::Plain { user, .. } => format!("user {:?}", String::from_utf8_lossy(user)),
            Credentials::Null => "NULL".to_string(),
        };
        if self.log.first_time(&who, r.address, q.now.0 / 1000) {
            let fix = if self.files.is_modular() {
                "a modular home admits the keys of credentials_store: vctl auth add"
            } else {
                "add an allow entry to auth.json"
            };
            log::warn!(
                "refused {} {} from {} (identity {:?}): {reason} [refusal #{}; {fix}]",
                r.mechanism.name(),
                who,
                r.address,
                String::from_utf8_lossy(q.identity),
                self.refused
            );
        }
    }
}

impl Policy for PlatformPolicy {
    fn decides_null(&self) -> bool {
        self.auth.is_some()
    }

    fn authorize(&mut self, q: &AuthQuery<'_>) -> bool {
        let Some(a) = &self.auth else { return false };
        match a.decide(&q.request) {
            Decision::Allow { entry, user_id } => {
                if let Some(e) = entry
                    && !a.check_identity(e, q.identity)
                {
                    let why = if self.files.is_modular() {
                        "not the identity of its credentials_store file (identity binding is on)"
                    } else {
                        "identity not bound to its key (identity binding is on)"
                    };
                    log::warn!("refused {:?} from {}: {why}", String::from_utf8_lossy(q.identity), q.request.address);
                    return false;
                }
                log::debug!(
                    "admitted {:?} from {} as {user_id}",
                    String::from_utf8_lossy(q.identity),
                    q.request.address
                );
                true
            }
            Decision::Deny(reason) => {
                if self.admission.refused(q) {
                    return true;
                }
                let reason = match reason {
                    DenyReason::UnknownKey if self.files.is_modular() => {
                        "CURVE key not in credentials_store".to_string()
                    }
                    r => r.to_string(),
                };
                self.refused(q, &reason);
                false
            }
        }
    }

    fn reports(&mut self) -> Option<&mut AuthReports> {
        self.admission.reports()
    }

    fn reload(&mut self, router: &mut Router, stats: &mut Stats) {
        if let Some(n) = &self.notifier {
            let _ = n.reloading();
        }
        self.files.reload(self.auth.as_mut(), router, stats);
        if let Some(n) = &self.notifier {
            let _ = n.ready();
        }
    }
}

/// Refusals are logged once per (credentials, address) among the last 64 distinct ones, so an
/// operator finds every new agent's key in the log while a client retrying in a loop (or an
/// attacker cycling keys) cannot flood it: at most 10 such lines per second (of the server's
/// clock).
struct RefusalLog {
    recent: [u32; 64],
    next: usize,
    second: u64,
    lines: u32,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog { recent: [0; 64], next: 0, second: u64::MAX, lines: 0 }
    }
}

impl RefusalLog {
    /// Should the refusal of `who` from `address`, in second `now_s`, be logged?
    fn first_time(&mut self, who: &str, address: &str, now_s: u64) -> bool {
        let mut h = crc32fast::Hasher::new();
        h.update(who.as_bytes());
        h.update(address.as_bytes());
        let key = h.finalize() | 1;
        if self.recent.contains(&key) {
            return false;
        }
        if now_s != self.second {
            self.second = now_s;
            self.lines = 0;
        }
        if self.lines >= 10 {
            return false;
        }
        self.lines += 1;
        if let Some(slot) = self.recent.get_mut(self.next % 64) {
            *slot = key;
        }
        self.next = self.next.wrapping_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_key_and_address() {
        let now = 5;
        let mut l = RefusalLog::default();
        assert!(l.first_time("key A", "1.2.3.4", now));
        assert!(!l.first_time("key A", "1.2.3.4", now));
        assert!(l.first_time("key B", "1.2.3.4", now));
        assert!(l.first_time("key A", "5.6.7.8", now));
        let fresh = (0..100).filter(|i| l.first_time(&format!("k{i}"), "x", now)).count();
        assert!(fresh <= 10, "at most 10 lines per second, got {fresh}");
        assert!(l.first_time("k100", "x", now + 1), "the next second logs again");
    }
}
