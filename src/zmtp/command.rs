//! ZMTP commands (ZMTP.md §4; RFC 23 "Commands", RFC 37 PING/PONG).
//!
//! ```text
//! command-body = name-length:1 name:name-length data:*
//! ready        = %d5 "READY" metadata
//! error        = %d5 "ERROR" reason-len:1 reason
//! ping         = %d4 "PING" ttl:2 context:0..16
//! pong         = %d4 "PONG" context
//! ```
//! Views over borrowed bytes; emitters append complete frames (header included).

use super::frame::{FLAG_COMMAND, FrameHeader};
use super::{SessionError, metadata};
use crate::limits::MAX_PING_CONTEXT_BYTES;

/// Command names as the RFCs spell them.
pub const READY: &[u8] = b"READY";
/// ERROR command.
pub const ERROR: &[u8] = b"ERROR";
/// PING command (ZMTP 3.1).
pub const PING: &[u8] = b"PING";
/// PONG command (ZMTP 3.1).
pub const PONG: &[u8] = b"PONG";
/// SUBSCRIBE command (ZMTP 3.1; never sent to a ROUTER).
pub const SUBSCRIBE: &[u8] = b"SUBSCRIBE";
/// CANCEL command (ZMTP 3.1; never sent to a ROUTER).
pub const CANCEL: &[u8] = b"CANCEL";

/// A command body split into name and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// Command name (1..255 bytes).
    pub name: &'a [u8],
    /// Everything after the name.
    pub data: &'a [u8],
}

impl<'a> Command<'a> {
    /// Split a command frame body.
    ///
    /// # Errors
    /// [`SessionError::MalformedCommand`] for an empty body, a zero name length, or a name
    /// that runs past the body.
    pub fn parse(body: &'a [u8]) -> Result<Command<'a>, SessionError> {
        let (&len, rest) = body.split_first().ok_or(SessionError::MalformedCommand)?;
        if len == 0 {
            return Err(SessionError::MalformedCommand);
        }
        let (name, data) = rest.split_at_checked(usize::from(len)).ok_or(SessionError::MalformedCommand)?;
        Ok(Command { name, data })
    }

    /// Is this command `name`?
    pub fn is(&self, name: &[u8]) -> bool {
        self.name == name
    }
}

/// A PING's TTL (deciseconds) and context.
///
/// # Errors
/// [`SessionError::MalformedPing`] when the 2-byte TTL is missing (a classic out-of-bounds
/// panic in other implementations, ZMTP.md §14.2).
pub fn parse_ping(data: &[u8]) -> Result<(u16, &[u8]), SessionError> {
    let (ttl, ctx) = data.split_at_checked(2).ok_or(SessionError::MalformedPing)?;
    let ttl = u16::from_be_bytes([ttl.first().copied().unwrap_or(0), ttl.get(1).copied().unwrap_or(0)]);
    Ok((ttl, ctx))
}

/// The name-length byte of a command name. Names are ours (this module's and CURVE's
/// constants, at most 8 bytes), so the saturation never happens.
fn name_len(name: &[u8]) -> u8 {
    u8::try_from(name.len()).unwrap_or(u8::MAX)
}

/// Append the frame header and the name of a command whose data (after the name) is
/// `data_len` bytes; the caller appends the data. CURVE's handshake commands are written so.
pub fn emit_header(name: &[u8], data_len: usize, out: &mut Vec<u8>) {
    let body = 1 + name.len() + data_len;
    FrameHeader::emit(FLAG_COMMAND, body, out);
    emit_name(name, out);
}

/// Append `name` as a command body starts: its length byte, then the name.
pub fn emit_name(name: &[u8], out: &mut Vec<u8>) {
    out.push(name_len(name));
    out.extend_from_slice(name);
}

/// Longest PONG command body: name length, `PONG`, the context.
pub const MAX_PONG_BODY: usize = 1 + 4 + MAX_PING_CONTEXT_BYTES;

/// The body of a PONG echoing at most 16 context bytes (longer contexts are truncated, as
/// libzmq does), for a frame of its own ([`emit_pong`]) or a CURVE MESSAGE.
pub fn pong_body(context: &[u8]) -> heapless::Vec<u8, MAX_PONG_BODY> {
    let ctx = context.get(..MAX_PING_CONTEXT_BYTES).unwrap_or(context);
    let mut body = heapless::Vec::new();
    // Cannot fail: 1 + 4 + at most MAX_PING_CONTEXT_BYTES is the capacity.
    let _ = body.push(name_len(PONG));
    let _ = body.extend_from_slice(PONG);
    let _ = body.extend_from_slice(ctx);
    body
}

/// Append a PONG frame echoing at most 16 context bytes (see [`pong_body`]).
pub fn emit_pong(context: &[u8], out: &mut Vec<u8>) {
    FrameHeader::emit_frame(FLAG_COMMAND, &pong_body(context), out);
}

/// Append a PING frame with `ttl` deciseconds and no context.
pub fn emit_ping(ttl: u16, out: &mut Vec<u8>) {
    emit_header(PING, 2, out);
    out.extend_from_slice(&ttl.to_be_bytes());
}

/// Append an ERROR frame (reason ≤ 255 bytes; longer is cut).
pub fn emit_error(reason: &[u8], out: &mut Vec<u8>) {
    let reason = reason.get(..255).unwrap_or(reason);
    emit_header(ERROR, 1 + reason.len(), out);
    out.push(u8::try_from(reason.len()).unwrap_or(u8::MAX)); // at most 255: cut above
    out.extend_from_slice(reason);
}

/// The reason an ERROR command's data carries (`reason-len:1 reason`), or `None` when it runs
/// past the data.
pub fn error_reason(data: &[u8]) -> Option<&[u8]> {
    let (&len, reason) = data.split_first()?;
    reason.get(..usize::from(len))
}

/// The reason of a whole ERROR command body (`%d5 "ERROR" len reason`), or `None` if `body` is
/// not a well-formed ERROR.
pub fn error_body_reason(body: &[u8]) -> Option<&[u8]> {
    let cmd = Command::parse(body).ok()?;
    if cmd.is(ERROR) { error_reason(cmd.data) } else { None }
}

/// Metadata bytes of a READY/INITIATE: `Socket-Type` then `Identity`, libzmq's order.
pub fn socket_metadata(socket_type: &[u8], identity: &[u8], out: &mut Vec<u8>) {
    metadata::emit(b"Socket-Type", socket_type, out);
    metadata::emit(b"Identity", identity, out);
}

/// Append a READY frame carrying `Socket-Type` and `Identity` (NULL mechanism; ZMTP.md §5).
pub fn emit_ready(socket_type: &[u8], identity: &[u8], out: &mut Vec<u8>) {
    let data_len = metadata::encoded_len(b"Socket-Type", socket_type) + metadata::encoded_len(b"Identity", identity);
    emit_header(READY, data_len, out);
    socket_metadata(socket_type, identity, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn router_ready_matches_libzmq_bytes() {
        // ZMTP.md §5: libzmq ROUTER READY without a routing id, 43 bytes.
        let expect = hex(
            "04 29 05 52 45 41 44 59 0b 53 6f 63 6b 65 74 2d 54 79 70 65 00 00 00 06 52 4f 55 54 45 52 08 49 64 65 6e 74 69 74 79 00 00 00 00",
        );
        let mut out = Vec::new();
        emit_ready(b"ROUTER", b"", &mut out);
        assert_eq!(out, expect);
    }

    #[test]
    fn error_pong_ping_bytes() {
        let mut out = Vec::new();
        emit_error(b"400", &mut out);
        assert_eq!(out, hex("04 0a 05 45 52 52 4f 52 03 34 30 30"));
        out.clear();
        emit_pong(b"hello", &mut out);
        assert_eq!(out, hex("04 0a 04 50 4f 4e 47 68 65 6c 6c 6f"));
        out.clear();
        emit_pong(b"", &mut out);
        assert_eq!(out, hex("04 05 04 50 4f 4e 47"));
        out.clear();
        emit_pong(&[7u8; 40], &mut out);
        assert_eq!(out.len(), 2 + 5 + 16, "context truncated to 16 bytes");
        out.clear();
        emit_ping(650, &mut out);
        assert_eq!(out, hex("04 07 04 50 49 4e 47 02 8a"));
    }

    /// ZMTP.md §12.4: ERROR "400" (these assertions were `curve::wire`'s, whose copy of the
    /// ERROR codec is gone).
    #[test]
    fn error_frame_bytes() {
        let mut v = Vec::new();
        emit_error(b"400", &mut v);
        assert_eq!(v, hex("04 0a 05 45 52 52 4f 52 03 34 30 30"));
        assert_eq!(error_body_reason(&v[2..]), Some(&b"400"[..]));
        assert_eq!(error_body_reason(b"\x05ERROR\x05ab"), None);
        let mut long = Vec::new();
        emit_error(&[b'x'; 300], &mut long);
        assert_eq!(long.len(), 9 + 7 + 255);
        assert_eq!(error_body_reason(&long[9..]).map(<[u8]>::len), Some(255));
    }

    #[test]
    fn parse_commands_and_malformed_ones() {
        let body = hex("04 50 49 4e 47 02 8a");
        let c = Command::parse(&body).unwrap();
        assert!(c.is(PING));
        assert_eq!(parse_ping(c.data), Ok((650, &[][..])));
        assert_eq!(parse_ping(&[1]), Err(SessionError::MalformedPing));
        assert_eq!(Command::parse(&[]), Err(SessionError::MalformedCommand));
        assert_eq!(Command::parse(&[0]), Err(SessionError::MalformedCommand));
        assert_eq!(Command::parse(b"\x05REA"), Err(SessionError::MalformedCommand));
    }
}
