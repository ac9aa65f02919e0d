//! How far a connection's handshake has come, as the server's handshake eviction needs it
//! (README "Limits", `max-handshakes`; ZMTP.md §5 for when the NULL READY goes out).

use super::{Session, State};

/// How far a connection's handshake has come ([`Session::progress`]), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
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
    pub fn progress(&self) -> Progress {
        match self.state {
            State::Greeting => Progress::Greeting,
            State::NullHandshake if !self.null_verify => Progress::OurSideDone,
            State::Traffic => Progress::OurSideDone,
            _ => Progress::Mechanism,
        }
    }
}
