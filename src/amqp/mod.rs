//! Sans-IO AMQP 0-9-1, the client side the RabbitMQ bridge needs (issue #15; research memo
//! `multiplatform.md` §6.3 lists the subset).
//!
//! Layer contract (DESIGN.md §2.2), the same as [`crate::zmtp`]'s: bytes in, events and bytes
//! out. Nothing here touches a socket or a clock; the caller passes `now`
//! ([`crate::time::Instant`]) and owns the receive buffer. [`client::Client::handle_input`]
//! takes the unconsumed bytes and answers how many it consumed and, at most, one [`client::Event`]
//! whose payload (a delivery's routing key, properties and body, a return, a close reason) is a
//! view borrowed from that same buffer: frames are parsed in place, nothing is copied. What the
//! client sends (protocol header, handshake, topology, publishes, acks, heartbeats, close) is
//! appended to the client's own transmit buffer, which the caller drains to the socket
//! ([`client::Client::transmit`], [`client::Client::written`]).
//!
//! Views follow smoltcp's contract: `parse` checks once, accessors cannot panic afterwards.
//! "Need more bytes" is never an error (`Ok(None)` or `consumed == 0`); [`Error`] is reserved for
//! malformed or hostile input and protocol violations, and each maps to the AMQP reply code the
//! client then sends in `connection.close` ([`Error::reply_code`]). Every declared length (frame
//! size, body size, table size, string length) is compared with its limit ([`crate::limits`])
//! in `u64` when its header is read, before anything is buffered.
//!
//! Spec: AMQP 0-9-1 (amqp0-9-1.pdf, 2008-11-13) §2.3.5 (frames), §4.2.3 (frame format),
//! §4.2.5 (data types), §4.2.6 (content framing), §4.2.7 (heartbeats), §4.3 (errata of the
//! field-table types as RabbitMQ sends them: `rabbitmq.com/amqp-0-9-1-errata.html`), and the
//! class/method reference in amqp0-9-1.xml. RabbitMQ extensions used: publisher confirms
//! (`confirm.select`, `basic.ack`/`basic.nack` from the broker), `connection.blocked`/`unblocked`,
//! `basic.nack`, the `authentication_failure_close` capability, the EXTERNAL mechanism
//! (rabbitmq_auth_mechanism_ssl).
//!
//! Files, one per protocol noun: [`wire`] (the data types of §4.2.5), [`frame`], [`table`]
//! (field tables and arrays), [`method`] (classes and methods both ways), [`properties`] (the
//! content header), [`content`] (header + body frames in place), [`confirm`] (the publisher-confirm window), [`bindings`] (the topology kept
//! across reconnects), [`client`] (the connection state machine), [`mapping`] (VIP ↔ AMQP, pure
//! functions), `tls` (rustls, sans-IO; feature `rabbitmq-tls`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod bindings;
pub mod client;
pub mod confirm;
pub mod content;
pub mod frame;
pub mod mapping;
pub mod method;
pub mod properties;
pub mod table;
#[cfg(feature = "rabbitmq-tls")]
pub mod tls;
pub mod wire;

use core::fmt;

/// AMQP reply codes (spec §1.9 "constants") the client sends or interprets.
pub mod reply {
    /// Normal close.
    pub const SUCCESS: u16 = 200;
    /// `basic.return`: a mandatory publish matched no queue.
    pub const NO_ROUTE: u16 = 312;
    /// Authentication refused (or, on a channel, permissions).
    pub const ACCESS_REFUSED: u16 = 403;
    /// Declared entity does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// Redeclare with other arguments.
    pub const PRECONDITION_FAILED: u16 = 406;
    /// Frame malformed (bad end octet, size over frame-max).
    pub const FRAME_ERROR: u16 = 501;
    /// A field value is malformed.
    pub const SYNTAX_ERROR: u16 = 502;
    /// A method that is invalid here.
    pub const COMMAND_INVALID: u16 = 503;
    /// A frame on a channel that is not open.
    pub const CHANNEL_ERROR: u16 = 504;
    /// A frame that is not expected now (e.g. a body frame without a header).
    pub const UNEXPECTED_FRAME: u16 = 505;
    /// The peer asks for something the client does not support.
    pub const NOT_IMPLEMENTED: u16 = 540;
    /// Internal error (used for our own limits).
    pub const INTERNAL_ERROR: u16 = 541;
}

/// Malformed or hostile AMQP input, or a protocol violation by the broker. Each variant is one
/// cause, so tests can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The broker answered the protocol header with its own (it does not speak 0-9-1).
    ProtocolRefused,
    /// A field ran past the end of its frame or table.
    Truncated,
    /// Bytes left over after a method's or a content header's last field.
    TrailingBytes,
    /// The frame-end octet is not 0xCE.
    BadFrameEnd,
    /// A frame type other than method, header, body, heartbeat.
    BadFrameType(u8),
    /// A frame's declared size is over the frame-max in force.
    FrameTooLarge {
        /// Declared frame size, header and end octet included.
        declared: u64,
        /// frame-max in force.
        limit: u64,
    },
    /// A field table (or array) is over [`crate::limits::AMQP_MAX_TABLE_BYTES`].
    TableTooLarge,
    /// Field tables or arrays nested deeper than [`crate::limits::AMQP_MAX_TABLE_DEPTH`].
    TableTooDeep,
    /// A field-value type octet RabbitMQ does not define.
    BadFieldType(u8),
    /// A content header's property flags use a bit no property has, or a continuation word.
    BadPropertyFlags(u16),
    /// A content header whose class is not `basic`, or whose weight is not 0.
    BadContentHeader,
    /// A frame on a channel other than 0 (connection) and 1 (ours), or a channel-1 frame on 0.
    BadChannel(u16),
    /// A method or frame that is not valid in the current state (e.g. a body frame with no
    /// delivery in progress, or a reply to nothing the client asked).
    Unexpected,
    /// A method the client does not know (class, method).
    UnknownMethod(u16, u16),
    /// `connection.start` offers no mechanism the client is configured for, or a version other
    /// than 0-9.
    Negotiation,
    /// `connection.tune` proposes a frame-max below the spec's minimum (4096).
    FrameMaxTooSmall,
    /// The handshake or the close did not finish in time.
    Timeout,
    /// Nothing was received for two heartbeat intervals.
    HeartbeatTimeout,
}

impl Error {
    /// The reply code the client puts in its `connection.close` for this error (spec §1.9).
    pub fn reply_code(self) -> u16 {
        match self {
            Error::ProtocolRefused | Error::Negotiation => reply::NOT_IMPLEMENTED,
            Error::BadFrameEnd | Error::BadFrameType(_) | Error::FrameTooLarge { .. } | Error::FrameMaxTooSmall => {
                reply::FRAME_ERROR
            }
            Error::Truncated
            | Error::TrailingBytes
            | Error::TableTooDeep
            | Error::TableTooLarge
            | Error::BadFieldType(_)
            | Error::BadPropertyFlags(_)
            | Error::BadContentHeader => reply::SYNTAX_ERROR,
            Error::BadChannel(_) => reply::CHANNEL_ERROR,
            Error::Unexpected => reply::UNEXPECTED_FRAME,
            Error::UnknownMethod(..) => reply::COMMAND_INVALID,
            Error::Timeout | Error::HeartbeatTimeout => reply::INTERNAL_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ProtocolRefused => write!(f, "the broker refused AMQP 0-9-1"),
            Error::Truncated => write!(f, "a field runs past the end of its frame"),
            Error::TrailingBytes => write!(f, "bytes after the last field"),
            Error::BadFrameEnd => write!(f, "frame-end octet is not 0xCE"),
            Error::BadFrameType(t) => write!(f, "unknown frame type {t}"),
            Error::FrameTooLarge { declared, limit } => write!(f, "frame of {declared} bytes over frame-max {limit}"),
            Error::TableTooLarge => write!(f, "field table over the size limit"),
            Error::TableTooDeep => write!(f, "field tables nested too deep"),
            Error::BadFieldType(t) => write!(f, "unknown field-value type {:?}", char::from(*t)),
            Error::BadPropertyFlags(p) => write!(f, "unknown content property flags {p:#06x}"),
            Error::BadContentHeader => write!(f, "content header of another class or with a weight"),
            Error::BadChannel(c) => write!(f, "frame on channel {c}"),
            Error::Unexpected => write!(f, "frame or method not valid in this state"),
            Error::UnknownMethod(c, m) => write!(f, "unknown method {c}.{m}"),
            Error::Negotiation => write!(f, "no common version or mechanism in connection.start"),
            Error::FrameMaxTooSmall => write!(f, "frame-max below 4096"),
            Error::Timeout => write!(f, "handshake or close timed out"),
            Error::HeartbeatTimeout => write!(f, "no heartbeat from the broker"),
        }
    }
}

impl std::error::Error for Error {}

/// A value the client was asked to encode does not fit its AMQP type (a short string over 255
/// bytes, a table over its limit). Local misuse, not broker input: nothing was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError;

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value does not fit its AMQP type")
    }
}

impl std::error::Error for EncodeError {}
