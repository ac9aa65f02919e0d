//! Why a connection is closed: one enum, counted and logged in one place
//! ([`CloseReason::count`], called by the event loop's `close`).
//!
//! Every close counts in `closed`; the peer's own doing (end of stream, a socket error) also
//! in `closed_by_peer`; refusals and protocol errors in their `rejected_*` counter, logged at
//! `warn` on the 1st, 10th, 100th … occurrence ([`stats::bump_and_should_log`]) and at `debug`
//! otherwise.

use core::fmt;

use crate::stats::{self, Stats};
use crate::zmtp::SessionError;

/// Why a connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (end of stream).
    PeerClosed,
    /// Reading the socket failed.
    ReadError,
    /// Writing the socket failed.
    WriteError,
    /// A connection we dialled could not be established.
    ConnectFailed,
    /// The peer broke the protocol or was refused (ZMTP; the session's error).
    Protocol(SessionError),
    /// A protocol other than ZMTP failed (a dialled connection's own error).
    Foreign(&'static str),
    /// The handshake did not complete within `handshake-timeout-ms`.
    HandshakeTimeout {
        /// The timeout in force.
        ms: u64,
    },
    /// Closed to make room: the handshake limit was reached and this half-open connection had
    /// the least progress (the oldest among equals).
    HandshakeEvicted {
        /// Half-open handshakes at the time.
        unfinished: usize,
    },
    /// Its transmit side failed while the router wrote to it (CURVE nonce exhausted).
    TransmitFailure,
    /// mio refused to register or reregister it.
    RegisterFailed,
    /// The connection of a link the router removed or re-configured (VIP.md §11.3).
    Unlinked,
}

impl CloseReason {
    /// Send what is already queued for it before closing (best effort): replies to its last
    /// requests after a half-close, our greeting and ERROR before a protocol error.
    pub fn flush_first(self) -> bool {
        matches!(self, CloseReason::PeerClosed | CloseReason::Protocol(_) | CloseReason::Foreign(_))
    }

    /// Count the close in `stats`; true when it should be logged at `warn` (the first, 10th,
    /// 100th … of its kind; ordinary closes by the peer never are).
    pub fn count(self, stats: &mut Stats) -> bool {
        stats.closed += 1;
        let counter = match self {
            CloseReason::PeerClosed | CloseReason::ReadError | CloseReason::WriteError => {
                stats.closed_by_peer += 1;
                return false;
            }
            CloseReason::ConnectFailed
            | CloseReason::TransmitFailure
            | CloseReason::RegisterFailed
            | CloseReason::Unlinked => return false,
            CloseReason::Protocol(e) => protocol_counter(stats, e),
            CloseReason::Foreign(_) => &mut stats.rejected_protocol,
            CloseReason::HandshakeTimeout { .. } => &mut stats.rejected_handshake_timeout,
            CloseReason::HandshakeEvicted { .. } => &mut stats.rejected_handshake_evicted,
        };
        stats::bump_and_should_log(counter)
    }
}

/// The counter a session error is counted in.
fn protocol_counter(s: &mut Stats, e: SessionError) -> &mut u64 {
    match e {
        SessionError::BadSignature | SessionError::UnsupportedVersion { .. } => &mut s.rejected_greeting,
        SessionError::MechanismMismatch => &mut s.rejected_mechanism,
        SessionError::FrameTooLarge { .. } => &mut s.rejected_frame_too_large,
        SessionError::MessageTooLarge => &mut s.rejected_msg_too_large,
        SessionError::TooManyParts => &mut s.rejected_too_many_parts,
        SessionError::AuthDenied => &mut s.rejected_auth,
        SessionError::Curve(_) | SessionError::NotConfigured => &mut s.rejected_handshake,
        SessionError::UnexpectedCommand
        | SessionError::IncompatibleSocketType
        | SessionError::IdentityTooLong
        | SessionError::TruncatedProperty
        | SessionError::MalformedCommand
        | SessionError::PeerError
        | SessionError::MalformedPing => &mut s.rejected_handshake,
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::ReadError => f.write_str("read error"),
            CloseReason::WriteError => f.write_str("write error"),
            CloseReason::ConnectFailed => f.write_str("connect failed"),
            CloseReason::Protocol(e) => write!(f, "{e}"),
            CloseReason::Foreign(why) => f.write_str(why),
            CloseReason::HandshakeTimeout { ms } => write!(f, "handshake not completed within {ms} ms"),
            CloseReason::HandshakeEvicted { unfinished } => {
                write!(f, "{unfinished} half-open handshakes: the one with the least progress is closed to make room")
            }
            CloseReason::TransmitFailure => f.write_str("transmit failure"),
            CloseReason::RegisterFailed => f.write_str("register failed"),
            CloseReason::Unlinked => f.write_str("link removed or re-configured"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_counts_and_refusals_are_sampled() {
        let mut s = Stats::default();
        assert!(!CloseReason::PeerClosed.count(&mut s));
        assert!(CloseReason::Protocol(SessionError::MechanismMismatch).count(&mut s));
        assert!(!CloseReason::Protocol(SessionError::MechanismMismatch).count(&mut s), "the 2nd is not logged");
        assert!(CloseReason::HandshakeTimeout { ms: 5 }.count(&mut s));
        assert_eq!((s.closed, s.closed_by_peer, s.rejected_mechanism, s.rejected_handshake_timeout), (4, 1, 2, 1));
    }
}
