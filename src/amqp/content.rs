//! Content: the header frame and body frames that follow `basic.deliver`, `basic.return` and
//! `basic.publish` (spec §4.2.6). On receive the whole message is located in place in the
//! receive buffer ([`scan`]) and handed out as a [`Body`] view over its body frames; on send a
//! body is split into frames of at most `frame_max - 8` bytes ([`put_body`]).
//!
//! The whole message must be in the receive buffer before it is handed out: the method frame,
//! the header and the body plus 8 bytes per body frame. RabbitMQ splits bodies only at
//! frame-max (so the overhead is 8 bytes per 128 KiB); a hostile broker splitting into tiny
//! frames could ask for up to 9× the body, which the caller's receive-buffer cap refuses (`need`
//! over the cap: close and count, as for any message over the limit).
//!
//! RabbitMQ writes a message's frames back to back (its writer sends method, header and body
//! as one unit), so any other frame between them — a heartbeat included — is refused as
//! [`Error::Unexpected`].

use super::frame::{self, Frame, Need};
use super::properties::ContentHeader;
use super::{EncodeError, Error};

/// A message body in place: the body frames as received (validated by [`scan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body<'a> {
    frames: &'a [u8],
    len: u64,
}

impl<'a> Body<'a> {
    /// Total body bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// No body bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body's bytes frame by frame, in order.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks { rest: self.frames }
    }

    /// The body as one slice when it came in at most one frame (the usual case: RabbitMQ
    /// splits only bodies over frame-max).
    pub fn contiguous(&self) -> Option<&'a [u8]> {
        let mut c = self.chunks();
        let first = c.next().unwrap_or(&[]);
        if c.next().is_some() { None } else { Some(first) }
    }

    /// Append the whole body to `out` (one copy; no allocation within `out`'s capacity).
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        for c in self.chunks() {
            out.extend_from_slice(c);
        }
    }
}

/// Iterator over a [`Body`]'s frames.
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // Frames were validated by `scan`; a size that does not fit ends the iteration.
        let (f, n) = Frame::parse(self.rest, u32::MAX).ok()?.ok()?;
        self.rest = self.rest.get(n..)?;
        Some(f.payload)
    }
}

/// What [`scan`] found after a content-carrying method frame.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // a stack value per step, never stored
pub enum Scan<'a> {
    /// The message is not complete: at least this many bytes (from the start of the slice
    /// given) must be buffered.
    Need(usize),
    /// The whole message: header, body, and the bytes it took.
    Complete {
        /// The content header.
        header: ContentHeader<'a>,
        /// The body in place.
        body: Body<'a>,
        /// Bytes of header and body frames.
        len: usize,
    },
    /// The header announces more than `max_body` bytes: consume the header (`len` bytes) and
    /// skip the body frames as they come, without buffering them.
    TooLarge {
        /// Announced body size.
        body_size: u64,
        /// Bytes of the header frame.
        len: usize,
    },
}

/// Locate the content header and body frames on `channel` at the start of `buf`.
///
/// # Errors
/// A frame's errors ([`Frame::parse`]), [`Error::Unexpected`] for any other frame in between or
/// body frames that overrun the announced size, and the header's ([`ContentHeader::parse`]).
pub fn scan(buf: &[u8], frame_max: u32, channel: u16, max_body: u64) -> Result<Scan<'_>, Error> {
    let (hf, hlen) = match Frame::parse(buf, frame_max)? {
        Ok(x) => x,
        Err(Need::Bytes(n)) => return Ok(Scan::Need(n)),
    };
    if hf.kind != frame::HEADER || hf.channel != channel {
        return Err(Error::Unexpected);
    }
    let header = ContentHeader::parse(hf.payload)?;
    if header.body_size > max_body {
        return Ok(Scan::TooLarge { body_size: header.body_size, len: hlen });
    }
    let mut at = hlen;
    let mut got = 0u64;
    while got < header.body_size {
        let rest = buf.get(at..).unwrap_or(&[]);
        let (bf, blen) = match Frame::parse(rest, frame_max)? {
            Ok(x) => x,
            Err(Need::Bytes(n)) => return Ok(Scan::Need(at + n)),
        };
        if bf.kind != frame::BODY || bf.channel != channel {
            return Err(Error::Unexpected);
        }
        got += bf.payload.len() as u64;
        at += blen;
    }
    if got != header.body_size {
        return Err(Error::Unexpected);
    }
    let frames = buf.get(hlen..at).ok_or(Error::Truncated)?;
    Ok(Scan::Complete { header, body: Body { frames, len: got }, len: at })
}

/// Bytes [`put_body`] appends for a body of `len` bytes at `frame_max` (saturating: also the
/// bound for any `Limits` value, `client::message_frames_bytes`).
pub fn body_frames_len(len: usize, frame_max: u32) -> usize {
    let per = (frame_max as usize).saturating_sub(frame::OVERHEAD).max(1);
    len.saturating_add(len.div_ceil(per).saturating_mul(frame::OVERHEAD))
}

/// Append `body` as body frames on `channel`, each at most `frame_max` bytes in all.
///
/// # Errors
/// [`EncodeError`] only for a frame-max below 9 (no room for a byte).
pub fn put_body(out: &mut Vec<u8>, channel: u16, body: &[u8], frame_max: u32) -> Result<(), EncodeError> {
    let per = (frame_max as usize).checked_sub(frame::OVERHEAD).filter(|&p| p > 0).ok_or(EncodeError)?;
    for chunk in body.chunks(per) {
        let at = frame::begin(out, frame::BODY, channel);
        out.extend_from_slice(chunk);
        frame::end(out, at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::properties::{Properties, put_content_header};

    #[test]
    fn split_and_reassembled_in_place() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        put_content_header(&mut out, 1, body.len() as u64, &Properties::default()).unwrap();
        let hlen = out.len();
        put_body(&mut out, 1, &body, 4096).unwrap();
        assert_eq!(out.len() - hlen, body_frames_len(body.len(), 4096));
        let Scan::Complete { body: b, len, .. } = scan(&out, 4096, 1, 1 << 20).unwrap() else { panic!() };
        assert_eq!(len, out.len());
        assert_eq!(b.chunks().count(), 3);
        assert_eq!(b.contiguous(), None);
        let mut copy = Vec::new();
        b.copy_to(&mut copy);
        assert_eq!(copy, body);
        for cut in 0..out.len() {
            let Scan::Need(n) = scan(&out[..cut], 4096, 1, 1 << 20).unwrap() else { panic!("{cut}") };
            assert!(n > cut && n <= out.len(), "{cut} {n}");
        }
        assert!(matches!(scan(&out, 4096, 1, 100), Ok(Scan::TooLarge { body_size: 10_000, .. })));
        assert_eq!(scan(&out, 4096, 2, 1 << 20), Err(Error::Unexpected));
    }

    #[test]
    fn empty_body_has_no_frames() {
        let mut out = Vec::new();
        put_content_header(&mut out, 1, 0, &Properties::default()).unwrap();
        put_body(&mut out, 1, b"", 4096).unwrap();
        let Scan::Complete { body, len, .. } = scan(&out, 4096, 1, 10).unwrap() else { panic!() };
        assert_eq!((body.len(), body.contiguous(), len), (0, Some(&b""[..]), out.len()));
    }
}
