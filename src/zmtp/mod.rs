//! Sans-IO ZMTP 3.x: the server (ROUTER) side a VOLTTRON router needs, and the client (DEALER)
//! side for the connections it opens itself.
//!
//! Layer contract (DESIGN.md §2.2): bytes in, events and bytes out. Nothing here touches a
//! socket, a clock or the global allocator on the traffic path. The caller (`server/`) owns
//! the receive buffer and hands [`session::Session::handle_input`] (or
//! [`session::client::ClientSession::handle_input`]) the unconsumed bytes; the session answers
//! how many bytes it consumed and, when a multipart message is complete, holds it: the byte
//! ranges of its frames inside that same buffer ([`Part`]), a borrowed view, nothing copied,
//! until the caller releases it. Output (greeting, READY, PONG, encoded messages) is appended to
//! the connection's transmit buffer, within capacity the caller reserved.
//!
//! One codec for both roles and every mechanism: [`frame`] and [`command`] encode and parse
//! every frame (CURVE's commands included, [`mechanism::curve::wire`] lays out only their
//! bodies), [`deframer`] assembles messages, [`traffic`] runs the traffic phase.
//!
//! Views follow smoltcp's contract: `parse` checks once, accessors cannot panic afterwards.
//! "Need more bytes" is never an error (`Ok(None)`); `Err` is reserved for malformed or
//! hostile input. Every declared length is compared with its limit in `u64` at the header,
//! before anything is buffered (32-bit ARM is a target).
//!
//! Spec: ../shared/spec/ZMTP.md (§2 greeting, §3 framing, §4 commands, §5 NULL, §15 checklist).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::cast_possible_truncation))]

pub mod command;
pub mod deframer;
pub mod frame;
pub mod greeting;
pub mod mechanism;
pub mod metadata;
pub mod session;
pub mod traffic;
pub mod z85;

use core::fmt;

/// Malformed or hostile ZMTP input. Each variant is one cause, so tests can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// Greeting byte 0 is not 0xFF or byte 9 has bit 0 clear: a ZMTP 1.0 peer or garbage.
    BadSignature,
    /// Greeting major version below 3 (ZMTP 1.0 with revision, ZMTP 2.0).
    UnsupportedVersion {
        /// The announced major version.
        major: u8,
    },
    /// The peer's greeting names another security mechanism than ours.
    MechanismMismatch,
    /// A frame's declared size is over the limit in force.
    FrameTooLarge {
        /// Declared size.
        declared: u64,
        /// Limit in force.
        limit: u64,
    },
    /// The message being assembled would exceed the message-size limit.
    MessageTooLarge,
    /// The message being assembled has too many frames.
    TooManyParts,
    /// A command body is empty or its name runs past the body.
    MalformedCommand,
    /// A metadata property is truncated or has trailing bytes.
    TruncatedProperty,
    /// A command that is not valid in the current state (e.g. not READY during a NULL
    /// handshake), or a data frame before the handshake completed.
    UnexpectedCommand,
    /// The peer's Socket-Type is not one a ROUTER accepts (REQ, DEALER, ROUTER).
    IncompatibleSocketType,
    /// The peer's Identity property is longer than 255 bytes.
    IdentityTooLong,
    /// The peer sent an ERROR command during the handshake.
    PeerError,
    /// A PING shorter than its 2-byte TTL.
    MalformedPing,
    /// The CURVE mechanism refused a command or message (ZMTP.md §7.12).
    Curve(mechanism::curve::CurveError),
    /// The authorisation decision refused the peer (an ERROR "400" was queued).
    AuthDenied,
    /// The endpoint's mechanism has no keys configured (a configuration bug).
    NotConfigured,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::BadSignature => write!(f, "not a ZMTP 3.x greeting (bad signature)"),
            SessionError::UnsupportedVersion { major } => {
                write!(f, "unsupported ZMTP version {major} (3.x required)")
            }
            SessionError::MechanismMismatch => write!(f, "security mechanism mismatch"),
            SessionError::FrameTooLarge { declared, limit } => {
                write!(f, "frame of {declared} bytes exceeds the limit of {limit}")
            }
            SessionError::MessageTooLarge => write!(f, "message exceeds the size limit"),
            SessionError::TooManyParts => write!(f, "message has too many frames"),
            SessionError::MalformedCommand => write!(f, "malformed command"),
            SessionError::TruncatedProperty => write!(f, "malformed metadata"),
            SessionError::UnexpectedCommand => write!(f, "unexpected command or frame"),
            SessionError::IncompatibleSocketType => write!(f, "incompatible socket type"),
            SessionError::IdentityTooLong => write!(f, "identity longer than 255 bytes"),
            SessionError::PeerError => write!(f, "peer sent ERROR"),
            SessionError::MalformedPing => write!(f, "malformed PING"),
            SessionError::Curve(e) => write!(f, "{e}"),
            SessionError::AuthDenied => write!(f, "authentication refused"),
            SessionError::NotConfigured => write!(f, "mechanism not configured on this endpoint"),
        }
    }
}

/// One frame of a received message: a byte range of the receive buffer slice the session was
/// given (offsets are relative to that slice's start). u32 suffices: messages are capped far
/// below 4 GiB by `limits::MAX_MSG_BYTES`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Part {
    /// Offset of the first body byte.
    pub start: u32,
    /// Body length.
    pub len: u32,
}

/// The frames of one received multipart message, by range.
pub type Parts = heapless::Vec<Part, { crate::limits::MAX_MSG_PARTS }>;

/// A borrowed view of a complete multipart message: the receive bytes and its frame ranges.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    parts: &'a [Part],
}

impl<'a> Message<'a> {
    /// A view over `parts` of `buf`. Ranges outside `buf` read as empty frames (never panic).
    pub fn new(buf: &'a [u8], parts: &'a [Part]) -> Self {
        Message { buf, parts }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// True when the message has no frames.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Frame `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let p = self.parts.get(i)?;
        let start = p.start as usize;
        let end = start.checked_add(p.len as usize)?;
        self.buf.get(start..end)
    }

    /// Frame `i`, or an empty slice past the end.
    pub fn frame(&self, i: usize) -> &'a [u8] {
        self.get(i).unwrap_or(&[])
    }

    /// The frames' ranges in the buffer.
    pub fn parts(&self) -> &'a [Part] {
        self.parts
    }

    /// Total body bytes.
    pub fn body_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.len as usize).sum()
    }
}
