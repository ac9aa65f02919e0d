//! AMQP frames (spec §2.3.5, §4.2.3) and the protocol header (§4.2.2).
//!
//! ```text
//! [type:1][channel:2][size:4][payload:size][0xCE]
//! ```
//! Types: 1 method, 2 content header, 3 content body, 8 heartbeat (channel 0, empty payload).
//! frame-max (negotiated in `connection.tune`) bounds the whole frame, header and end octet
//! included; a body frame therefore carries at most `frame_max - 8` bytes.

use super::{EncodeError, Error, wire};

/// What the client sends first: `AMQP` 0 0 9 1.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// Method frame.
pub const METHOD: u8 = 1;
/// Content header frame.
pub const HEADER: u8 = 2;
/// Content body frame.
pub const BODY: u8 = 3;
/// Heartbeat frame.
pub const HEARTBEAT: u8 = 8;

/// The frame-end octet.
pub const FRAME_END: u8 = 0xCE;

/// Bytes a frame adds around its payload (7 of header, 1 end octet).
pub const OVERHEAD: usize = 8;

/// Bytes of the frame header.
pub const HEADER_LEN: usize = 7;

/// Smallest frame-max a peer may propose (spec §4.2.3 `frame-min-size`).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// One frame, borrowed from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Frame type (one of [`METHOD`], [`HEADER`], [`BODY`], [`HEARTBEAT`]).
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// Payload (without header and end octet).
    pub payload: &'a [u8],
}

/// How a parse ended when it did not give a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// At least this many bytes (from the start of the slice given) must be buffered.
    Bytes(usize),
}

impl<'a> Frame<'a> {
    /// Parse one frame from the start of `buf`, refusing any frame over `frame_max` bytes as
    /// soon as its header is complete (nothing of it needs to be buffered first).
    ///
    /// Returns the frame and its total length, or how many bytes are needed.
    ///
    /// # Errors
    /// [`Error::ProtocolRefused`] when `buf` starts with `AMQP` (a broker's refusal of our
    /// version), [`Error::BadFrameType`], [`Error::FrameTooLarge`], [`Error::BadFrameEnd`].
    pub fn parse(buf: &'a [u8], frame_max: u32) -> Result<Result<(Frame<'a>, usize), Need>, Error> {
        if buf.starts_with(b"AMQP") {
            return Err(Error::ProtocolRefused);
        }
        let mut r = wire::Reader::new(buf);
        let (Ok(kind), Ok(channel), Ok(size)) = (r.u8(), r.u16(), r.u32()) else {
            return Ok(Err(Need::Bytes(HEADER_LEN)));
        };
        if !matches!(kind, METHOD | HEADER | BODY | HEARTBEAT) {
            return Err(Error::BadFrameType(kind));
        }
        let total = u64::from(size) + OVERHEAD as u64;
        if total > u64::from(frame_max) {
            return Err(Error::FrameTooLarge { declared: total, limit: u64::from(frame_max) });
        }
        // total <= frame_max <= u32::MAX: fits usize on every target we build.
        let total = usize::try_from(total).map_err(|_| Error::FrameTooLarge { declared: total, limit: 0 })?;
        let Some(payload) = buf.get(HEADER_LEN..total - 1) else { return Ok(Err(Need::Bytes(total))) };
        match buf.get(total - 1) {
            Some(&FRAME_END) => Ok(Ok((Frame { kind, channel, payload }, total))),
            Some(_) => Err(Error::BadFrameEnd),
            None => Ok(Err(Need::Bytes(total))),
        }
    }
}

/// Start a frame of `kind` on `channel`: returns where it starts, for [`end`].
pub fn begin(out: &mut Vec<u8>, kind: u8, channel: u16) -> usize {
    let at = out.len();
    wire::put_u8(out, kind);
    wire::put_u16(out, channel);
    wire::put_u32(out, 0);
    at
}

/// Finish the frame begun at `at`: patch its size, append the end octet.
///
/// # Errors
/// [`EncodeError`] when `at` is not a frame start or the payload is over `u32::MAX`.
pub fn end(out: &mut Vec<u8>, at: usize) -> Result<(), EncodeError> {
    wire::end_len32(out, at + 3)?;
    out.push(FRAME_END);
    Ok(())
}

/// Append a heartbeat frame.
pub fn put_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_place_and_checks_the_size_at_the_header() {
        let mut out = Vec::new();
        let at = begin(&mut out, METHOD, 1);
        out.extend_from_slice(b"xyz");
        end(&mut out, at).unwrap();
        put_heartbeat(&mut out);
        let (f, n) = Frame::parse(&out, 4096).unwrap().unwrap();
        assert_eq!((f.kind, f.channel, f.payload, n), (METHOD, 1, &b"xyz"[..], 11));
        let (h, m) = Frame::parse(&out[n..], 4096).unwrap().unwrap();
        assert_eq!((h.kind, h.payload.len(), m), (HEARTBEAT, 0, 8));
        for cut in 0..n {
            assert!(Frame::parse(&out[..cut], 4096).unwrap().is_err(), "{cut}");
        }
        // A hostile size is refused with only the 7 header bytes present.
        let huge = [METHOD, 0, 1, 0xff, 0xff, 0xff, 0xf0];
        assert_eq!(
            Frame::parse(&huge, 131_072),
            Err(Error::FrameTooLarge { declared: 0xffff_fff0 + 8, limit: 131_072 })
        );
        let mut bad = out.clone();
        bad[10] = 0;
        assert_eq!(Frame::parse(&bad, 4096), Err(Error::BadFrameEnd));
        assert_eq!(Frame::parse(&[9, 0, 0, 0, 0, 0, 0, 0xce], 4096), Err(Error::BadFrameType(9)));
        assert_eq!(Frame::parse(b"AMQP\x00\x00\x09\x01", 4096), Err(Error::ProtocolRefused));
    }
}
