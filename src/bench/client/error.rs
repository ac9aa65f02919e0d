//! [`ClientError`]: why a bench connection failed — the socket, the router closing or
//! refusing it (its ERROR reason), a timeout, or ZMTP/CURVE the client could not accept.
//!
//! Contract: every failure of the client surfaces as one of these values (no panic); the
//! `Display` text is what `viprouter bench` reports.

use std::io;

use viprouter::zmtp::SessionError;
use viprouter::zmtp::mechanism::curve::CurveError;

/// Why a connection failed.
#[derive(Debug)]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// The router closed the connection.
    Closed,
    /// Nothing arrived in time.
    Timeout,
    /// Malformed ZMTP from the router.
    Decode(SessionError),
    /// The CURVE handshake or a MESSAGE failed.
    Curve(CurveError),
    /// The router sent ERROR (its reason).
    Refused(String),
    /// The router broke the protocol in another way.
    Protocol(&'static str),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Closed => write!(f, "connection closed by the router"),
            ClientError::Timeout => write!(f, "timed out"),
            ClientError::Decode(e) => write!(f, "ZMTP: {e}"),
            ClientError::Curve(e) => write!(f, "{e}"),
            ClientError::Refused(r) => write!(f, "router sent ERROR {r:?}"),
            ClientError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<SessionError> for ClientError {
    fn from(e: SessionError) -> Self {
        ClientError::Decode(e)
    }
}

impl From<CurveError> for ClientError {
    fn from(e: CurveError) -> Self {
        ClientError::Curve(e)
    }
}
