//! How far a connection's handshake has come, as the server's handshake eviction needs it
//! (README "Limits", `max-handshakes`; ZMTP.md §5 for when the NULL READY goes out).

use super::{Session, State};

/// How far a server session's handshake has come ([`Session::handshake_progress`]), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HandshakeProgress {
    /// The peer's greeting is not complete yet.
    Greeting,
    /// Greeting done; the mechanism's handshake is under way (CURVE HELLO/INITIATE, PLAIN
    /// HELLO/INITIATE, NULL READY awaiting verification): nothing the peer sent can have been
    /// a message yet.
    Mechanism,
    /// Our side is done: our last handshake command went out (NULL READY right after the
    /// greeting, ZMTP.md §5), so a libzmq peer that read it considers the connection up and may
    /// already have sent its READY and its first messages. Only the peer's READY may be missing.
    OurSideDone,
}

impl Session {
    /// How far the handshake has come, for choosing which unfinished handshake to evict.
    pub fn handshake_progress(&self) -> HandshakeProgress {
        match self.state {
            State::Greeting => HandshakeProgress::Greeting,
            State::NullHandshake if !self.null_verify => HandshakeProgress::OurSideDone,
            State::Traffic => HandshakeProgress::OurSideDone,
            State::NullHandshake
            | State::PlainHello
            | State::PlainInitiate
            | State::CurveHandshake
            | State::Verify
            | State::Failed => HandshakeProgress::Mechanism,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::zmtp::greeting;
    use crate::zmtp::mechanism::Mechanism;
    use crate::zmtp::session::SessionConfig;

    fn after_greeting(verify: bool) -> HandshakeProgress {
        let mut out = Vec::new();
        let mut s = Session::new(Mechanism::Null, &mut out);
        if verify {
            s.verify_null();
        }
        assert_eq!(s.handshake_progress(), HandshakeProgress::Greeting);
        let cfg = SessionConfig { identity: b"rid", limits: &Limits::COMPILED, curve: None };
        let mut buf = greeting::emit(Mechanism::Null, false).to_vec();
        let _ = s.handle_input(&cfg, &mut buf, &mut out, &mut rand_core::OsRng).unwrap();
        s.handshake_progress()
    }

    #[test]
    fn a_null_session_has_done_its_side_once_its_ready_went_out() {
        assert_eq!(after_greeting(false), HandshakeProgress::OurSideDone, "READY goes out after the greeting");
        assert_eq!(after_greeting(true), HandshakeProgress::Mechanism, "READY waits for the verification");
    }
}
