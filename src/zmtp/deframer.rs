//! The deframer: ZMTP frames parsed in place in the caller's receive buffer, a multipart
//! message assembled as byte ranges of it (ZMTP.md §3; RFC 23 "Framing"). Shared by the
//! server session ([`super::session::Session`]) and the client session
//! ([`super::session::client::ClientSession`]).
//!
//! Contract:
//! * The caller keeps the received bytes in one buffer and passes the **unconsumed** part as
//!   `buf` on every call. The deframer remembers how far it has scanned, so every frame header
//!   is parsed once; bytes are dropped only when the deframer says so ([`Deframer::need_more`],
//!   [`Deframer::consume_scanned`], [`Deframer::release`]).
//! * A complete message is **held** ([`Deframer::is_complete`], [`Deframer::parts`]) until the
//!   caller releases it: its frames stay where they were parsed, nothing is copied, and a caller
//!   that cannot deliver it now simply asks again later.
//! * Every declared size is checked against its limit in u64 at the header, before anything is
//!   buffered (32-bit ARM is a target); commands between the frames of a message stay in the
//!   buffer until the message completes and count against the message-size limit.

use core::ops::Range;

use super::frame::FrameHeader;
use super::{Part, Parts, SessionError};
use crate::limits::{Limits, MAX_COMMAND_BYTES, MAX_HANDSHAKE_FRAME_BYTES};

/// Bytes a CURVE MESSAGE wrapper adds to each frame (name, nonce, tag, inner flags; ZMTP.md §7.9).
pub const CURVE_OVERHEAD: u64 = 33;

/// The sizes a traffic frame is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest payload of one data frame.
    pub max_frame_bytes: u64,
    /// Largest message: the sum of its payloads (and of the commands held between its frames).
    pub max_msg_bytes: u64,
    /// Most frames in one message (at most [`crate::limits::MAX_MSG_PARTS`]).
    pub max_msg_parts: usize,
    /// Bytes each frame carries on the wire beyond its payload: [`CURVE_OVERHEAD`] under
    /// CURVE, else 0. The payload limits are checked again on the decrypted size.
    pub overhead: u64,
}

impl FrameLimits {
    /// The limits in force, for a session with (`sealed`) or without CURVE.
    #[inline]
    pub fn new(limits: &Limits, sealed: bool) -> Self {
        FrameLimits {
            max_frame_bytes: limits.max_frame_bytes,
            max_msg_bytes: limits.max_msg_bytes,
            max_msg_parts: limits.max_msg_parts.min(crate::limits::MAX_MSG_PARTS),
            overhead: if sealed { CURVE_OVERHEAD } else { 0 },
        }
    }
}

/// One whole frame in the buffer: its header and the range of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The parsed header.
    pub header: FrameHeader,
    /// The body, relative to the `buf` passed in.
    pub body: Range<usize>,
}

impl Frame {
    /// Header and body bytes.
    pub fn wire_len(&self) -> u64 {
        (self.header.header_len + self.body.len()) as u64
    }
}

/// Frame scanning and message assembly over the caller's buffer (see the module doc).
#[derive(Debug, Default)]
pub struct Deframer {
    /// Frames of the message being assembled or held (offsets relative to the caller's `buf`).
    parts: Parts,
    /// Body bytes of the message being assembled, plus the whole frames of any commands that
    /// arrived between its frames (they stay in the caller's buffer until the message is
    /// complete, so they count against `max_msg_bytes`).
    msg_bytes: u64,
    /// Bytes before this offset are fully processed and not part of an unfinished message.
    msg_start: usize,
    /// Offset of the next unparsed frame header.
    scan: usize,
    /// `parts` is a complete message, held until [`Deframer::release`].
    complete: bool,
}

impl Deframer {
    /// A deframer at the start of the buffer.
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// The first `n` bytes (the greeting) are done: frames start after them.
    pub fn skip(&mut self, n: usize) {
        self.scan = self.scan.saturating_add(n);
        self.msg_start = self.scan;
    }

    /// The frame at the scan position if all of it is buffered, checked against `limit` (the
    /// handshake phase: every frame is a command). Moves the scan position past it.
    ///
    /// # Errors
    /// [`SessionError::FrameTooLarge`].
    pub fn next_frame(&mut self, buf: &[u8], limit: u64) -> Result<Option<Frame>, SessionError> {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let Some(header) = FrameHeader::parse(rest)? else { return Ok(None) };
        if header.size > limit {
            return Err(SessionError::FrameTooLarge { declared: header.size, limit });
        }
        Ok(self.take(header, rest.len()))
    }

    /// The body of the next handshake command (ZMTP.md §3.2: before the handshake completed,
    /// every frame is a command of at most `MAX_HANDSHAKE_FRAME_BYTES`), if all of it is buffered.
    ///
    /// # Errors
    /// [`SessionError::FrameTooLarge`]; [`SessionError::UnexpectedCommand`] for a data frame.
    pub fn next_handshake_command(&mut self, buf: &[u8]) -> Result<Option<Range<usize>>, SessionError> {
        let Some(frame) = self.next_frame(buf, MAX_HANDSHAKE_FRAME_BYTES)? else { return Ok(None) };
        if !frame.header.command() {
            return Err(SessionError::UnexpectedCommand);
        }
        Ok(Some(frame.body))
    }

    /// Like [`Deframer::next_frame`], with the traffic-phase checks at the header, before the
    /// body is waited for: command size, frame size, message size and frame count.
    ///
    /// # Errors
    /// [`SessionError::FrameTooLarge`], [`SessionError::MessageTooLarge`],
    /// [`SessionError::TooManyParts`].
    #[inline]
    pub fn next_traffic_frame(&mut self, buf: &[u8], limits: &FrameLimits) -> Result<Option<Frame>, SessionError> {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let Some(header) = FrameHeader::parse(rest)? else { return Ok(None) };
        if header.command() {
            if header.size > MAX_COMMAND_BYTES {
                return Err(SessionError::FrameTooLarge { declared: header.size, limit: MAX_COMMAND_BYTES });
            }
            // A command between the frames of a message cannot be dropped from the buffer
            // before the message completes: without this, a peer that sends one MORE frame and
            // then commands forever makes `need` (and the receive buffer) grow without bound.
            // (Found by the `frame_stream` fuzz target.)
            if !self.parts.is_empty() && self.msg_bytes + header.header_len as u64 + header.size > limits.max_msg_bytes
            {
                return Err(SessionError::MessageTooLarge);
            }
        } else {
            let limit = limits.max_frame_bytes + limits.overhead;
            if header.size > limit {
                return Err(SessionError::FrameTooLarge { declared: header.size, limit });
            }
            if self.msg_bytes + header.size > limits.max_msg_bytes + limits.overhead {
                return Err(SessionError::MessageTooLarge);
            }
            if self.parts.len() >= limits.max_msg_parts {
                return Err(SessionError::TooManyParts);
            }
        }
        Ok(self.take(header, rest.len()))
    }

    /// The body range of a frame whose header was checked, if all of it is buffered.
    #[inline]
    fn take(&mut self, header: FrameHeader, available: usize) -> Option<Frame> {
        // size ≤ a limit ≤ u32::MAX (limits.rs), so the conversion cannot fail on 32-bit targets.
        let size = usize::try_from(header.size).ok()?;
        let total = header.header_len.checked_add(size)?;
        if available < total {
            return None;
        }
        let start = self.scan + header.header_len;
        self.scan += total;
        Some(Frame { header, body: start..start + size })
    }

    /// A handshake command was acted on: its bytes are done.
    pub fn command_done(&mut self) {
        self.msg_start = self.scan;
    }

    /// A command in the traffic phase was acted on: between messages its bytes are done; between
    /// the frames of a message they stay in the buffer until the message completes (and count
    /// against its size).
    #[inline]
    pub fn traffic_command_done(&mut self, frame: &Frame) {
        if self.parts.is_empty() {
            self.msg_start = self.scan;
        } else {
            self.msg_bytes += frame.wire_len();
        }
    }

    /// Everything scanned so far is done (a handshake step the caller is told about): the
    /// bytes the caller must drop now.
    pub fn consume_scanned(&mut self) -> usize {
        let consumed = self.scan;
        self.msg_start = self.scan;
        self.rebase(consumed);
        consumed
    }

    /// One frame of the message, its payload at `payload`; `more` when another follows.
    /// Returns true when the message is complete: it is then held until [`Deframer::release`].
    ///
    /// # Errors
    /// [`SessionError::TooManyParts`], [`SessionError::MessageTooLarge`] (checked again on the
    /// decrypted size under CURVE).
    #[inline]
    pub fn push(&mut self, payload: Range<usize>, more: bool, limits: &FrameLimits) -> Result<bool, SessionError> {
        let len = payload.len();
        if self.parts.len() >= limits.max_msg_parts {
            return Err(SessionError::TooManyParts);
        }
        if self.msg_bytes + len as u64 > limits.max_msg_bytes {
            return Err(SessionError::MessageTooLarge);
        }
        // Offsets and lengths are within a receive buffer of at most RX_BUF_MAX_BYTES < 4 GiB.
        let (Ok(start), Ok(plen)) = (u32::try_from(payload.start), u32::try_from(len)) else {
            return Err(SessionError::MessageTooLarge);
        };
        self.parts.push(Part { start, len: plen }).map_err(|_| SessionError::TooManyParts)?;
        self.msg_bytes += len as u64;
        self.complete = !more;
        Ok(self.complete)
    }

    /// Nothing more can be done with the bytes at hand: `(consumed, need)`, the bytes the
    /// caller must drop now and how many the (remaining) buffer must hold for the next step.
    #[inline]
    pub fn need_more(&mut self, buf: &[u8]) -> (usize, usize) {
        let rest = buf.get(self.scan..).unwrap_or(&[]);
        let wanted = match FrameHeader::parse(rest) {
            Ok(Some(h)) => h.header_len as u64 + h.size,
            _ => 9,
        };
        let consumed = self.msg_start;
        self.rebase(consumed);
        let need = (self.scan as u64).saturating_add(wanted);
        (consumed, usize::try_from(need).unwrap_or(usize::MAX))
    }

    /// The caller drops `consumed` leading bytes: shift every remembered offset.
    #[inline]
    fn rebase(&mut self, consumed: usize) {
        self.scan -= consumed;
        self.msg_start -= consumed;
        // Every part starts at or after `msg_start` ≥ `consumed`, and offsets fit u32 (above).
        let shift = u32::try_from(consumed).unwrap_or(u32::MAX);
        for p in self.parts.iter_mut() {
            p.start = p.start.saturating_sub(shift);
        }
    }

    /// A complete message is held.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The frames of the held message (empty while none is complete), relative to `buf`.
    #[inline]
    pub fn parts(&self) -> &[Part] {
        if self.complete { &self.parts } else { &[] }
    }

    /// Drop the held message: returns the bytes the caller must consume (the message and
    /// everything before it). 0 when no message is held.
    #[inline]
    pub fn release(&mut self) -> usize {
        if !self.complete {
            return 0;
        }
        self.parts.clear();
        self.msg_bytes = 0;
        self.complete = false;
        let consumed = self.scan;
        self.scan = 0;
        self.msg_start = 0;
        consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::frame::FLAG_MORE;

    fn frames(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            FrameHeader::emit_frame(if i + 1 < parts.len() { FLAG_MORE } else { 0 }, p, &mut out);
        }
        out
    }

    /// Assemble every message of `buf`, releasing each: the frames as seen by the caller.
    fn assemble(buf: &[u8], limits: &FrameLimits) -> Result<Vec<Vec<Vec<u8>>>, SessionError> {
        let mut d = Deframer::new();
        let mut rx = buf.to_vec();
        let mut out = Vec::new();
        while let Some(f) = d.next_traffic_frame(&rx, limits)? {
            if d.push(f.body, f.header.more(), limits)? {
                out.push(d.parts().iter().map(|p| rx[p.start as usize..][..p.len as usize].to_vec()).collect());
                let consumed = d.release();
                rx.drain(..consumed);
            }
        }
        Ok(out)
    }

    #[test]
    fn a_complete_message_is_held_until_released() {
        let limits = FrameLimits::new(&Limits::COMPILED, false);
        let mut buf = frames(&[b"a", b"bc"]);
        buf.extend_from_slice(&frames(&[b"d"]));
        let mut d = Deframer::new();
        let f = d.next_traffic_frame(&buf, &limits).unwrap().unwrap();
        assert!(!d.push(f.body, f.header.more(), &limits).unwrap());
        assert!(d.parts().is_empty(), "an unfinished message is not shown");
        let f = d.next_traffic_frame(&buf, &limits).unwrap().unwrap();
        assert!(d.push(f.body, f.header.more(), &limits).unwrap());
        assert_eq!(d.parts(), &[Part { start: 2, len: 1 }, Part { start: 5, len: 2 }]);
        assert_eq!(d.parts(), &[Part { start: 2, len: 1 }, Part { start: 5, len: 2 }], "held, not moved");
        assert_eq!(d.release(), 7);
        assert_eq!(d.release(), 0, "released once");
        assert_eq!(assemble(&buf, &limits).unwrap(), vec![vec![b"a".to_vec(), b"bc".to_vec()], vec![b"d".to_vec()]]);
    }

    #[test]
    fn need_more_drops_only_finished_bytes_and_rebases() {
        let limits = FrameLimits::new(&Limits::COMPILED, false);
        let mut buf = frames(&[b"x"]);
        let cut = buf.len();
        buf.extend_from_slice(&frames(&[b"first", b"second"]));
        let mut d = Deframer::new();
        let f = d.next_traffic_frame(&buf, &limits).unwrap().unwrap();
        assert!(d.push(f.body, false, &limits).unwrap());
        assert_eq!(d.release(), cut);
        let mut rx = buf[cut..cut + 8].to_vec(); // "first" and one byte of the next header
        let f = d.next_traffic_frame(&rx, &limits).unwrap().unwrap();
        assert!(!d.push(f.body, true, &limits).unwrap());
        assert_eq!(d.next_traffic_frame(&rx, &limits), Ok(None));
        let (consumed, need) = d.need_more(&rx);
        assert_eq!(consumed, 0, "the unfinished message stays");
        assert_eq!(need, 7 + 9);
        rx = buf[cut..].to_vec();
        let f = d.next_traffic_frame(&rx, &limits).unwrap().unwrap();
        assert!(d.push(f.body, false, &limits).unwrap());
        assert_eq!(d.parts().len(), 2);
    }

    #[test]
    fn limits_are_checked_at_the_header() {
        let mut l = Limits::COMPILED;
        assert_eq!(l.lower("max-msg-parts", 8), Ok(()));
        let limits = FrameLimits::new(&l, false);
        let nine: Vec<&[u8]> = vec![b"p"; 9];
        assert_eq!(assemble(&frames(&nine), &limits), Err(SessionError::TooManyParts));
        let big = [0x02, 0, 0, 0, 0, 0x01, 0, 0, 1];
        assert!(matches!(assemble(&big, &limits), Err(SessionError::FrameTooLarge { .. })));
        let command = [0x06, 0, 0, 0, 0, 0, 0, 0x20, 0];
        assert!(matches!(assemble(&command, &limits), Err(SessionError::FrameTooLarge { .. })));
    }
}
