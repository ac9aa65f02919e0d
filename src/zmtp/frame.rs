//! ZMTP frame header (ZMTP.md §3.1; RFC 23 "Framing").
//!
//! ```text
//! short frame:  [flags:1][size:1][body]        size 0..255
//! long frame:   [flags:1][size:8 BE][body]     size 0..2^63-1
//! ```
//! Flags: bit 0 MORE, bit 1 LONG, bit 2 COMMAND; bits 3..7 are reserved and, like libzmq,
//! ignored on receive and never set on send. The encoder uses the short form iff the body is
//! at most 255 bytes (RFC "SHOULD"); the decoder accepts the long form for any size.

use super::DecodeError;

/// Another frame of the same message follows.
pub const FLAG_MORE: u8 = 0x01;
/// The size field is 8 bytes.
pub const FLAG_LONG: u8 = 0x02;
/// The frame is a command.
pub const FLAG_COMMAND: u8 = 0x04;

/// Largest size a long frame may declare (RFC 23: the top bit is reserved).
pub const MAX_WIRE_SIZE: u64 = i64::MAX as u64;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The flags byte as received (reserved bits included).
    pub flags: u8,
    /// Declared body size.
    pub size: u64,
    /// Header bytes (2 or 9).
    pub header_len: usize,
}

impl FrameHeader {
    /// Parse a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` is too short to hold the header (need more bytes).
    ///
    /// # Errors
    /// [`DecodeError::FrameTooLarge`] when a long size has its top bit set (RFC 23 caps sizes
    /// at 2^63-1). Limits are the caller's to check, in u64, against `size`.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, DecodeError> {
        let Some(&flags) = buf.first() else { return Ok(None) };
        if flags & FLAG_LONG != 0 {
            let Some(raw) = buf.get(1..9) else { return Ok(None) };
            let mut be = [0u8; 8];
            be.copy_from_slice(raw);
            let size = u64::from_be_bytes(be);
            if size > MAX_WIRE_SIZE {
                return Err(DecodeError::FrameTooLarge { declared: size, limit: MAX_WIRE_SIZE });
            }
            Ok(Some(FrameHeader { flags, size, header_len: 9 }))
        } else {
            let Some(&size) = buf.get(1) else { return Ok(None) };
            Ok(Some(FrameHeader { flags, size: u64::from(size), header_len: 2 }))
        }
    }

    /// MORE flag.
    pub fn more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }

    /// COMMAND flag.
    pub fn command(&self) -> bool {
        self.flags & FLAG_COMMAND != 0
    }

    /// Header bytes needed to encode a body of `size` bytes.
    pub fn encoded_len(size: usize) -> usize {
        if size <= 255 { 2 } else { 9 }
    }

    /// Append the header for a body of `size` bytes with `flags` (MORE and/or COMMAND; the
    /// LONG bit is derived from `size`, reserved bits are cleared).
    pub fn emit(flags: u8, size: usize, out: &mut Vec<u8>) {
        let flags = flags & (FLAG_MORE | FLAG_COMMAND);
        if size <= 255 {
            out.extend_from_slice(&[flags, size as u8]);
        } else {
            out.push(flags | FLAG_LONG);
            out.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }

    /// Append a whole frame: header and body.
    pub fn emit_frame(flags: u8, body: &[u8], out: &mut Vec<u8>) {
        FrameHeader::emit(flags, body.len(), out);
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_short_and_long() {
        // ZMTP.md §3.1 examples.
        assert_eq!(
            FrameHeader::parse(&[0x00, 0x01, b'x']),
            Ok(Some(FrameHeader { flags: 0, size: 1, header_len: 2 }))
        );
        let long = [0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x2c];
        assert_eq!(
            FrameHeader::parse(&long),
            Ok(Some(FrameHeader { flags: 2, size: 300, header_len: 9 }))
        );
        // every prefix is "need more"
        for n in 0..long.len() {
            assert_eq!(FrameHeader::parse(&long[..n]), Ok(None));
        }
        assert_eq!(FrameHeader::parse(&[0x01]), Ok(None));
    }

    #[test]
    fn top_bit_is_refused() {
        let h = [0x02, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(FrameHeader::parse(&h), Err(DecodeError::FrameTooLarge { .. })));
        let h = [0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(FrameHeader::parse(&h).unwrap().unwrap().size, i64::MAX as u64);
    }

    #[test]
    fn emit_boundary_255_256() {
        let mut out = Vec::new();
        FrameHeader::emit(FLAG_MORE, 255, &mut out);
        assert_eq!(out, [0x01, 0xff]);
        out.clear();
        FrameHeader::emit(0, 256, &mut out);
        assert_eq!(out, [0x02, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(FrameHeader::encoded_len(255), 2);
        assert_eq!(FrameHeader::encoded_len(256), 9);
        out.clear();
        FrameHeader::emit(0xF8 | FLAG_COMMAND, 0, &mut out);
        assert_eq!(out, [0x04, 0x00], "reserved bits are never sent");
    }
}
