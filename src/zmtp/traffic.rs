//! The traffic phase, both roles (ZMTP.md §3.2, §4.6, §7.9): frames are deframed in place,
//! opened under CURVE, commands answered, message frames assembled; outgoing messages are
//! encoded verbatim or sealed. Written once for the server session and the client session.
//!
//! Rules (ZMTP.md §3.2, §15): commands may sit between the frames of a multipart message and
//! neither end nor join it; PING is answered with PONG at once (even mid-message, and inside a
//! MESSAGE under CURVE); unknown or malformed commands are ignored, as libzmq does, and so are
//! command frames outside MESSAGE under CURVE (libzmq never sends them).

use core::ops::Range;

use super::SessionError;
use super::command::{self, Command};
use super::deframer::{Deframer, FrameLimits};
use super::frame::{FLAG_MORE, FrameHeader};
use super::mechanism::curve::{Channel, INNER_COMMAND, INNER_MORE, message};

/// What the other side may do with an ERROR after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Ignore it, as a libzmq ROUTER does.
    Ignore,
    /// Report it ([`Progress::PeerError`]): a client is told why the server refused it.
    Report,
}

/// How far one traffic step got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The bytes at hand are used up ([`Deframer::need_more`] says what to keep).
    NeedMore,
    /// A message is complete and held by the deframer.
    Message,
    /// The peer sent ERROR; its reason is at this range of `buf`.
    PeerError(Range<usize>),
}

/// Take traffic frames from `buf` until a message is complete or the bytes run out. `channel`
/// is the CURVE channel (every frame a MESSAGE) or `None` (NULL, PLAIN: frames as sent).
/// PONGs are appended to `out`.
///
/// # Errors
/// Any size limit, and CURVE errors (a MESSAGE that does not open): close the connection.
#[inline]
pub fn step(
    deframer: &mut Deframer,
    mut channel: Option<&mut Channel>,
    limits: &FrameLimits,
    on_error: OnError,
    buf: &mut [u8],
    out: &mut Vec<u8>,
) -> Result<Progress, SessionError> {
    while let Some(frame) = deframer.next_traffic_frame(buf, limits)? {
        let (command, more, payload) = match channel.as_deref_mut() {
            // CURVE: libzmq never sends commands outside MESSAGE; ignore them too.
            Some(_) if frame.header.command() => (None, false, frame.body.clone()),
            Some(ch) => {
                let body = buf.get_mut(frame.body.clone()).unwrap_or(&mut []);
                let (flags, inner) = ch.open_message(body).map_err(SessionError::Curve)?;
                let payload = frame.body.start + inner.start..frame.body.start + inner.end;
                let command = (flags & INNER_COMMAND != 0).then(|| payload.clone());
                (command, flags & INNER_MORE != 0, payload)
            }
            None if frame.header.command() => (Some(frame.body.clone()), false, frame.body.clone()),
            None => (None, frame.header.more(), frame.body.clone()),
        };
        if frame.header.command() || command.is_some() {
            if let Some(body) = command {
                let reason = on_command(buf, body, channel.as_deref_mut(), on_error, out)?;
                if let Some(reason) = reason {
                    return Ok(Progress::PeerError(reason));
                }
            }
            deframer.traffic_command_done(&frame);
            continue;
        }
        if deframer.push(payload, more, limits)? {
            return Ok(Progress::Message);
        }
    }
    Ok(Progress::NeedMore)
}

/// A command after the handshake: PING is answered (sealed under CURVE), ERROR reported if the
/// caller wants it (the range of its reason), everything else ignored (SUBSCRIBE/CANCEL, PONG,
/// unknown or malformed commands — libzmq ignores them too).
fn on_command(
    buf: &[u8],
    body: Range<usize>,
    channel: Option<&mut Channel>,
    on_error: OnError,
    out: &mut Vec<u8>,
) -> Result<Option<Range<usize>>, SessionError> {
    let Some(Ok(cmd)) = buf.get(body.clone()).map(Command::parse) else { return Ok(None) };
    if cmd.is(command::PING) {
        if let Ok((_ttl, ctx)) = command::parse_ping(cmd.data) {
            pong(ctx, channel, out)?;
        }
    } else if cmd.is(command::ERROR) && on_error == OnError::Report {
        // `name-length name reason-length reason` (ZMTP.md §4.5): the reason starts after the
        // name and its length byte.
        let len = command::error_reason(cmd.data).map_or(0, <[u8]>::len);
        let at = body.start + 1 + cmd.name.len() + 1;
        return Ok(Some(at..at + len));
    }
    Ok(None)
}

/// Answer a PING with `context` (ZMTP.md §4.6): a PONG frame, or a sealed MESSAGE under CURVE.
fn pong(context: &[u8], channel: Option<&mut Channel>, out: &mut Vec<u8>) -> Result<(), SessionError> {
    match channel {
        None => {
            command::emit_pong(context, out);
            Ok(())
        }
        Some(ch) => {
            let body = command::pong_body(context);
            out.reserve(message::sealed_frame_len(body.len()));
            ch.seal_frame(INNER_COMMAND, &body, out).map_err(SessionError::Curve)
        }
    }
}

/// How messages to one peer are encoded: sealed under CURVE or not, with the REQ delimiter
/// in front or not. Borrows the session's sending state; see [`Encoder::encode`].
#[derive(Debug)]
pub struct Encoder<'a> {
    channel: Option<&'a mut Channel>,
    delimiter: bool,
}

impl<'a> Encoder<'a> {
    /// Encode through `channel` (CURVE) or verbatim, with an empty delimiter frame in front of
    /// every message when `delimiter` (a REQ peer, ZMTP.md §4.3).
    #[inline]
    pub fn new(channel: Option<&'a mut Channel>, delimiter: bool) -> Self {
        Encoder { channel, delimiter }
    }

    /// Frames go out verbatim (no CURVE boxes, no REQ delimiter): one encoding of a message
    /// ([`encode_verbatim`]) serves every such peer.
    #[inline]
    pub fn verbatim(&self) -> bool {
        self.channel.is_none() && !self.delimiter
    }

    /// Bytes [`Encoder::encode`] appends for `frames`.
    #[inline]
    pub fn encoded_len(&self, frames: &[&[u8]]) -> usize {
        let sealed = self.channel.is_some();
        let one =
            |len: usize| if sealed { message::sealed_frame_len(len) } else { FrameHeader::encoded_len(len) + len };
        let delimiter = if self.delimiter { one(0) } else { 0 };
        delimiter + frames.iter().map(|f| one(f.len())).sum::<usize>()
    }

    /// Append `frames` as one multipart message (MORE on all but the last); under CURVE each
    /// frame is sealed into a MESSAGE. The caller reserved [`Encoder::encoded_len`] bytes, so
    /// nothing allocates.
    ///
    /// # Errors
    /// A CURVE sealing error (nonce exhausted): close the connection.
    #[inline]
    pub fn encode(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) -> Result<(), SessionError> {
        if self.verbatim() {
            encode_verbatim(frames, out);
            return Ok(());
        }
        self.encode_framed(frames, out)
    }

    /// [`Encoder::encode`] for a caller that has `len` = [`Encoder::encoded_len`]`(frames)`
    /// already (the sink: it sized the queue with it).
    ///
    /// # Errors
    /// As [`Encoder::encode`].
    #[inline]
    pub fn encode_sized(&mut self, frames: &[&[u8]], len: usize, out: &mut Vec<u8>) -> Result<(), SessionError> {
        if self.verbatim() {
            encode_verbatim_sized(frames, len, out);
            return Ok(());
        }
        self.encode_framed(frames, out)
    }

    /// Frame by frame: a delimiter first if wanted, each frame sealed under CURVE.
    fn encode_framed(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) -> Result<(), SessionError> {
        let delimiter: &[&[u8]] = if self.delimiter { &[&[]] } else { &[] };
        let total = delimiter.len() + frames.len();
        for (i, f) in delimiter.iter().chain(frames.iter()).enumerate() {
            let more = i + 1 < total;
            match self.channel.as_deref_mut() {
                Some(ch) => ch.seal_frame(if more { INNER_MORE } else { 0 }, f, out).map_err(SessionError::Curve)?,
                None => FrameHeader::emit_frame(if more { FLAG_MORE } else { 0 }, f, out),
            }
        }
        Ok(())
    }
}

/// The bytes [`encode_verbatim`] appends for `frames`.
#[inline]
pub fn verbatim_len(frames: &[&[u8]]) -> usize {
    frames.iter().map(|f| FrameHeader::encoded_len(f.len()) + f.len()).sum()
}

/// [`encode_verbatim`] into `out`, a caller's buffer (on its stack): the encoded bytes, or
/// `None` when `out` is too short. For a short reply that the caller then queues as one copy
/// (the publish count, VIP.md §7.6, through `Sink::deliver_encoded`), instead of the generic
/// path's length sum for admission, zero fill and per-frame writes into the queue. Always
/// inlined, the frame count a constant.
#[inline(always)]
pub fn encode_verbatim_into<'o, const N: usize>(frames: &[&[u8]; N], out: &'o mut [u8]) -> Option<&'o [u8]> {
    let len = verbatim_len(frames);
    write_verbatim(frames, out.get_mut(..len)?);
    out.get(..len)
}

/// Write `frames` as one multipart message, verbatim, into `out`, whose length is their
/// [`verbatim_len`]: every frame into its place, no capacity check and no length update per
/// frame.
#[inline(always)]
pub fn write_verbatim(frames: &[&[u8]], out: &mut [u8]) {
    debug_assert_eq!(out.len(), verbatim_len(frames));
    let mut at = out;
    let last = frames.len().saturating_sub(1);
    for (i, f) in frames.iter().enumerate() {
        at = FrameHeader::write_frame(if i != last { FLAG_MORE } else { 0 }, f, at);
    }
}

/// Append `frames` as one multipart message, verbatim (what [`Encoder::encode`] writes for a
/// peer whose [`Encoder::verbatim`] holds).
#[inline]
pub fn encode_verbatim(frames: &[&[u8]], out: &mut Vec<u8>) {
    encode_verbatim_sized(frames, verbatim_len(frames), out);
}

/// [`encode_verbatim`] for a caller that has `len` = [`verbatim_len`]`(frames)` already.
#[inline]
pub fn encode_verbatim_sized(frames: &[&[u8]], len: usize, out: &mut Vec<u8>) {
    debug_assert_eq!(len, verbatim_len(frames));
    // One resize (within the capacity the caller reserved: a fill, no allocation), then the
    // frames written over it.
    let start = out.len();
    out.resize(start + len, 0);
    write_verbatim(frames, out.get_mut(start..).unwrap_or_default());
}
