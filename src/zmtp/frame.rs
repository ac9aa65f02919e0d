//! ZMTP frame header (ZMTP.md §3.1; RFC 23 "Framing").
//!
//! ```text
//! short frame:  [flags:1][size:1][body]        size 0..255
//! long frame:   [flags:1][size:8 BE][body]     size 0..2^63-1
//! ```
//! Flags: bit 0 MORE, bit 1 LONG, bit 2 COMMAND; bits 3..7 are reserved and, like libzmq,
//! ignored on receive and never set on send. The encoder uses the short form iff the body is
//! at most 255 bytes (RFC "SHOULD"); the decoder accepts the long form for any size.

use super::SessionError;

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
    /// [`SessionError::FrameTooLarge`] when a long size has its top bit set (RFC 23 caps sizes
    /// at 2^63-1). Limits are the caller's to check, in u64, against `size`.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, SessionError> {
        let Some(&flags) = buf.first() else { return Ok(None) };
        if flags & FLAG_LONG != 0 {
            let Some(raw) = buf.get(1..9) else { return Ok(None) };
            let mut be = [0u8; 8];
            be.copy_from_slice(raw);
            let size = u64::from_be_bytes(be);
            if size > MAX_WIRE_SIZE {
                return Err(SessionError::FrameTooLarge { declared: size, limit: MAX_WIRE_SIZE });
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
    pub const fn encoded_len(size: usize) -> usize {
        if size <= 255 { 2 } else { 9 }
    }

    /// Bytes of a whole frame (header and body) with a body of `size` bytes, saturating.
    pub const fn frame_len(size: usize) -> usize {
        size.saturating_add(Self::encoded_len(size))
    }

    /// Append the header for a body of `size` bytes with `flags` (MORE and/or COMMAND; the
    /// LONG bit is derived from `size`, reserved bits are cleared).
    pub fn emit(flags: u8, size: usize, out: &mut Vec<u8>) {
        let flags = flags & (FLAG_MORE | FLAG_COMMAND);
        match u8::try_from(size) {
            Ok(short) => out.extend_from_slice(&[flags, short]),
            Err(_) => {
                out.push(flags | FLAG_LONG);
                // usize is at most 64 bits on every target: widening, never truncating.
                out.extend_from_slice(&(size as u64).to_be_bytes());
            }
        }
    }

    /// Append a whole frame: header and body.
    pub fn emit_frame(flags: u8, body: &[u8], out: &mut Vec<u8>) {
        FrameHeader::emit(flags, body.len(), out);
        append(out, body);
    }

    /// Write a whole frame at the start of `out`, which holds at least
    /// [`frame_len`](Self::frame_len)`(body.len())` bytes, and return the bytes after it (none
    /// if `out` is too short, which the caller's sizing rules out). The same bytes as
    /// [`emit_frame`](Self::emit_frame), into room already made: no capacity check per frame.
    ///
    /// It repeats [`emit`](Self::emit)'s short/long rule on purpose: one `header` function
    /// returning the bytes and their count for both was measured (`tests/bench/instr.sh`) at
    /// +8% instructions per fan-out delivery and +13% per routed message, because the header
    /// copy then has a variable length.
    #[inline]
    pub fn write_frame<'o>(flags: u8, body: &[u8], out: &'o mut [u8]) -> &'o mut [u8] {
        let flags = flags & (FLAG_MORE | FLAG_COMMAND);
        let n = body.len();
        let rest = match u8::try_from(n) {
            Ok(short) => match out.split_at_mut_checked(2) {
                Some((head, rest)) => {
                    head.copy_from_slice(&[flags, short]);
                    rest
                }
                None => return &mut [],
            },
            Err(_) => match out.split_at_mut_checked(9) {
                Some((head, rest)) => {
                    let (flag, size) = head.split_at_mut(1);
                    flag.copy_from_slice(&[flags | FLAG_LONG]);
                    // usize is at most 64 bits on every target: widening, never truncating.
                    size.copy_from_slice(&(n as u64).to_be_bytes());
                    rest
                }
                None => return &mut [],
            },
        };
        write_bytes(body, rest)
    }
}

/// Copy `src` to the start of `out` and return the bytes after it (none if `out` is shorter than
/// `src`, which the caller's sizing rules out). Up to [`APPEND_SLACK`] bytes are copied with
/// [`copy_small`]'s inlined moves, not a `memcpy` call (see [`append`]).
#[inline]
pub fn write_bytes<'o>(src: &[u8], out: &'o mut [u8]) -> &'o mut [u8] {
    let Some((dst, rest)) = out.split_at_mut_checked(src.len()) else { return &mut [] };
    if src.len() <= APPEND_SLACK {
        copy_small(dst, src);
    } else {
        dst.copy_from_slice(src);
    }
    rest
}

/// Slack [`append`] wants beyond the bytes it appends to take its fast path.
pub const APPEND_SLACK: usize = 32;

/// Append `src` to `out`, never growing `out` past what a plain `extend_from_slice` would.
///
/// Most frames of a VIP message are 0–32 bytes (`VIP1`, ids, subsystem names). For those a
/// `memcpy` call costs far more than the copy: musl's x86_64 `memcpy` (the static build we
/// ship) pays a `rep movsq` start-up plus byte loops for the unaligned head and tail, 20–40 ns
/// whatever the size, which was a fifth of the router's CPU in the fan-out benchmark. Slices of
/// up to 32 bytes are copied here with fixed-size (overlapping) moves the compiler inlines,
/// when `out` already has the room; anything else goes to `extend_from_slice`.
#[inline]
pub fn append(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > APPEND_SLACK || out.capacity() - out.len() < APPEND_SLACK {
        out.extend_from_slice(src);
        return;
    }
    let start = out.len();
    out.extend_from_slice(&[0u8; APPEND_SLACK]); // within capacity: no allocation
    if let Some(dst) = out.get_mut(start..start + APPEND_SLACK) {
        copy_small(dst, src);
    }
    out.truncate(start + n);
}

/// Copy `src` (at most 32 bytes) to the start of `dst` (32 bytes) with fixed-size moves.
#[inline]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    // Two overlapping fixed-width copies cover any length in [w, 2w].
    macro_rules! two {
        ($w:literal) => {{
            if let (Some(d0), Some(s0)) = (dst.get_mut(..$w), src.get(..$w)) {
                d0.copy_from_slice(s0);
            }
            if let (Some(d1), Some(s1)) = (dst.get_mut(n - $w..n), src.get(n - $w..)) {
                d1.copy_from_slice(s1);
            }
        }};
    }
    match n {
        16..=32 => two!(16),
        8..=15 => two!(8),
        4..=7 => two!(4),
        2..=3 => two!(2),
        1 => {
            if let (Some(d), Some(s)) = (dst.first_mut(), src.first()) {
                *d = *s;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_frame_writes_what_emit_frame_appends() {
        let src: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
        for n in (0..=300).chain([511, 700]) {
            for flags in [0, FLAG_MORE, FLAG_COMMAND, 0xff] {
                let mut want = Vec::new();
                FrameHeader::emit_frame(flags, &src[..n], &mut want);
                let mut room = vec![0xAA; want.len() + 3];
                let rest = FrameHeader::write_frame(flags, &src[..n], &mut room).len();
                assert_eq!(rest, 3, "n {n}");
                assert_eq!(&room[..want.len()], &want[..], "n {n} flags {flags}");
                assert_eq!(&room[want.len()..], &[0xAA; 3]);
                // Too little room: nothing after it, and no panic.
                let mut short = vec![0; want.len() - 1];
                assert!(FrameHeader::write_frame(flags, &src[..n], &mut short).is_empty());
            }
        }
    }

    #[test]
    fn encode_verbatim_writes_every_frame_as_emit_frame_does() {
        let src: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
        for sizes in [&[][..], &[0], &[5, 0, 4, 17, 300], &[33, 255, 256, 32, 1], &[599]] {
            let frames: Vec<&[u8]> = sizes.iter().map(|&n| &src[..n]).collect();
            let mut want = vec![9u8; 3];
            for (i, f) in frames.iter().enumerate() {
                FrameHeader::emit_frame(if i + 1 < frames.len() { FLAG_MORE } else { 0 }, f, &mut want);
            }
            let mut got = vec![9u8; 3];
            crate::zmtp::traffic::encode_verbatim(&frames, &mut got);
            assert_eq!(got, want, "{sizes:?}");
            assert_eq!(got.len() - 3, crate::zmtp::traffic::verbatim_len(&frames));
        }
    }

    #[test]
    fn encode_verbatim_into_writes_what_encode_verbatim_appends() {
        let src: Vec<u8> = (0..600u32).map(|i| (i * 5) as u8).collect();
        for (a, b) in [(0, 0), (3, 36), (60, 40), (255, 0), (256, 300)] {
            let frames: [&[u8]; 7] =
                [b"", b"VIP1", &src[..a], &src[a..a + b], b"pubsub", b"request_response", &[1, 0, 0, 0]];
            let mut want = Vec::new();
            crate::zmtp::traffic::encode_verbatim(&frames, &mut want);
            let mut buf = [0xEEu8; 1024];
            assert_eq!(crate::zmtp::traffic::encode_verbatim_into(&frames, &mut buf), Some(&want[..]), "{a} {b}");
            // One byte short: none, and no panic.
            let mut short = vec![0u8; want.len() - 1];
            assert_eq!(crate::zmtp::traffic::encode_verbatim_into(&frames, &mut short), None);
        }
    }

    #[test]
    fn append_copies_every_length_and_never_grows_more_than_extend() {
        let src: Vec<u8> = (0u8..100).collect();
        for cap in [0usize, 5, 40, 200] {
            for prefix in 0..3usize {
                for n in 0..=src.len() {
                    let mut out = Vec::with_capacity(cap);
                    out.extend(std::iter::repeat_n(0xAA, prefix.min(cap)));
                    let mut want = out.clone();
                    want.extend_from_slice(&src[..n]);
                    let (before, room) = (out.capacity(), out.capacity() - out.len());
                    append(&mut out, &src[..n]);
                    assert_eq!(out, want, "cap {cap} prefix {prefix} n {n}");
                    if n <= room {
                        assert_eq!(out.capacity(), before, "grew for cap {cap} prefix {prefix} n {n}");
                    }
                }
            }
        }
    }

    #[test]
    fn parse_short_and_long() {
        // ZMTP.md §3.1 examples.
        assert_eq!(FrameHeader::parse(&[0x00, 0x01, b'x']), Ok(Some(FrameHeader { flags: 0, size: 1, header_len: 2 })));
        let long = [0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x2c];
        assert_eq!(FrameHeader::parse(&long), Ok(Some(FrameHeader { flags: 2, size: 300, header_len: 9 })));
        // every prefix is "need more"
        for n in 0..long.len() {
            assert_eq!(FrameHeader::parse(&long[..n]), Ok(None));
        }
        assert_eq!(FrameHeader::parse(&[0x01]), Ok(None));
    }

    #[test]
    fn top_bit_is_refused() {
        let h = [0x02, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(FrameHeader::parse(&h), Err(SessionError::FrameTooLarge { .. })));
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

    /// The command and long-frame cases CURVE's handshake commands and MESSAGEs use (these
    /// assertions were `curve::wire`'s, whose copy of the header encoder is gone).
    #[test]
    fn frame_header_short_long_boundary() {
        let mut v = Vec::new();
        FrameHeader::emit(FLAG_COMMAND, 255, &mut v);
        assert_eq!(v, [0x04, 0xff]);
        v.clear();
        FrameHeader::emit(FLAG_COMMAND, 256, &mut v);
        assert_eq!(v, [0x06, 0, 0, 0, 0, 0, 0, 1, 0]);
        v.clear();
        FrameHeader::emit(0, 33, &mut v);
        assert_eq!(v, [0x00, 33]);
        v.clear();
        FrameHeader::emit(0, 333, &mut v);
        assert_eq!(v, [0x02, 0, 0, 0, 0, 0, 0, 1, 0x4d]);
        assert_eq!(FrameHeader::frame_len(255), 257);
        assert_eq!(FrameHeader::frame_len(256), 265);
        assert_eq!(FrameHeader::frame_len(usize::MAX), usize::MAX);
    }
}
