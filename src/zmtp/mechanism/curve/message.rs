//! The MESSAGE command: the traffic phase of CURVE (ZMTP.md §7.9, §3.3;
//! RFC 26 "MESSAGE").
//!
//! ```text
//! body = %d7 "MESSAGE" short-nonce:8 Box[flags:1 ‖ payload](k)
//! ```
//! Every ZMTP frame after the handshake, data or command (PING…), travels as
//! one MESSAGE body inside a **non-command** outer frame (flags `0x00` short,
//! `0x02` long; never MORE, never COMMAND outside). The inner flags byte
//! carries MORE (`0x01`) and COMMAND (`0x02`); other bits are masked off on
//! receive, as libzmq does.
//!
//! [`Channel`] holds the precomputed transient key `k = beforenm(C', s') =
//! beforenm(S', c')`, one [`PrefixedBox`] per direction (the XSalsa20 subkey of the fixed
//! `CurveZMQMESSAGE?` nonce prefix, derived once) and both short-nonce counters. [`Channel::seal_frame`]
//! appends into the caller's `Vec` (no allocation if the caller reserved
//! [`sealed_frame_len`] bytes) and encrypts in place;
//! [`Channel::open_message`] decrypts in place in the caller's buffer.

use core::ops::Range;

use super::CurveError;
use super::keys::{PrecomputedBox, PrefixedBox, TAG_LEN};
use super::nonce::{RecvCounter, SendCounter};
use super::wire::{
    self, MESSAGE, MESSAGE_BOX_AT, MESSAGE_FLAGS_AT, MESSAGE_MIN_LEN, MESSAGE_NONCE_AT, MESSAGE_PAYLOAD_AT,
};
use crate::zmtp::frame::FrameHeader;

/// Inner flag: another frame of the same message follows (§7.9; the MORE of ZMTP framing).
pub const INNER_MORE: u8 = 0x01;
/// Inner flag: the payload is a command body (PING, PONG, …), not a message frame.
pub const INNER_COMMAND: u8 = 0x02;
/// The inner flag bits libzmq honours; the others are masked off on receive and never sent.
pub const INNER_FLAGS_MASK: u8 = INNER_MORE | INNER_COMMAND;

/// Body length of a MESSAGE carrying `payload_len` bytes (saturating).
#[must_use]
pub const fn sealed_body_len(payload_len: usize) -> usize {
    payload_len.saturating_add(MESSAGE_MIN_LEN)
}

/// Length of the complete ZMTP frame that carries a MESSAGE with
/// `payload_len` payload bytes (saturating).
#[must_use]
pub const fn sealed_frame_len(payload_len: usize) -> usize {
    FrameHeader::frame_len(sealed_body_len(payload_len))
}

/// The traffic phase of a CURVE endpoint, client or server: once its handshake reached
/// traffic, MESSAGEs go through its [`Channel`]. Written once for both roles.
pub trait Traffic {
    /// The traffic channel.
    ///
    /// # Errors
    /// [`CurveError::WrongState`] before the handshake reached traffic.
    fn channel(&mut self) -> Result<&mut Channel, CurveError>;

    /// Decrypts one MESSAGE body (from a non-command frame) in place; returns (inner flags,
    /// payload range within `body`).
    ///
    /// # Errors
    /// [`CurveError::WrongState`] before traffic; otherwise as [`Channel::open_message`].
    /// Close the connection on any error (never send ERROR).
    fn open_message(&mut self, body: &mut [u8]) -> Result<(u8, Range<usize>), CurveError> {
        self.channel()?.open_message(body)
    }

    /// Size of the complete frame [`Traffic::seal_frame`] appends for a payload of `len` bytes.
    #[must_use]
    fn sealed_frame_len(len: usize) -> usize
    where
        Self: Sized,
    {
        sealed_frame_len(len)
    }

    /// Appends one complete outer frame carrying `inner_flags` ([`INNER_MORE`],
    /// [`INNER_COMMAND`]) and `payload`, encrypted; no allocation if `out` has
    /// [`sealed_frame_len`] spare capacity.
    ///
    /// # Errors
    /// [`CurveError::WrongState`] before traffic; otherwise as [`Channel::seal_frame`].
    fn seal_frame(&mut self, inner_flags: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), CurveError> {
        self.channel()?.seal_frame(inner_flags, payload, out)
    }
}

/// One direction pair of the traffic phase: the session key, our send
/// counter and the peer's receive counter, with per-direction prefixes.
#[derive(Debug)]
pub struct Channel {
    key: PrecomputedBox,
    /// `key` for MESSAGE nonces we send (`send_prefix ‖ counter`), subkey derived once.
    send_box: PrefixedBox,
    /// `key` for MESSAGE nonces the peer sends.
    recv_box: PrefixedBox,
    send: SendCounter,
    recv: RecvCounter,
}

impl Channel {
    /// A channel over `key` whose counters continue from the handshake.
    pub(crate) fn new(
        key: PrecomputedBox,
        send: SendCounter,
        recv: RecvCounter,
        send_prefix: &'static [u8; 16],
        recv_prefix: &'static [u8; 16],
    ) -> Self {
        Channel { send_box: key.with_prefix(send_prefix), recv_box: key.with_prefix(recv_prefix), key, send, recv }
    }

    /// The session key (for READY, which uses the same `k`).
    pub(crate) fn key(&self) -> &PrecomputedBox {
        &self.key
    }

    /// Our next short nonce (READY uses it too).
    pub(crate) fn take_send_nonce(&mut self) -> Result<u64, CurveError> {
        self.send.take()
    }

    /// The peer's counter (READY updates it on the client).
    pub(crate) fn recv_counter(&mut self) -> &mut RecvCounter {
        &mut self.recv
    }

    #[cfg(test)]
    pub(crate) fn send_counter(&mut self) -> &mut SendCounter {
        &mut self.send
    }

    /// Decrypts one MESSAGE `body` in place and returns `(inner flags
    /// masked to MORE|COMMAND, payload range within body)`.
    ///
    /// Order (libzmq `curve_encoding_t::decode`): name, size, nonce strictly
    /// greater than the last accepted, MAC. The counter advances only after
    /// the MAC verified.
    ///
    /// # Errors
    /// [`CurveError::BadCommand`]/[`CurveError::UnexpectedCommand`] (not a
    /// MESSAGE), [`CurveError::WrongSize`] (< 33 bytes),
    /// [`CurveError::NonceNotIncreasing`], [`CurveError::BadBox`].
    pub fn open_message(&mut self, body: &mut [u8]) -> Result<(u8, Range<usize>), CurveError> {
        wire::expect_command(body, MESSAGE)?;
        if body.len() < MESSAGE_MIN_LEN {
            return Err(CurveError::WrongSize);
        }
        let n = wire::u64_at(body, MESSAGE_NONCE_AT)?;
        self.recv.check(n)?;
        let boxed = body.get_mut(MESSAGE_BOX_AT..).ok_or(CurveError::WrongSize)?;
        self.recv_box.open_box_in_place(n, boxed)?;
        self.recv.accept(n);
        let flags = *body.get(MESSAGE_FLAGS_AT).ok_or(CurveError::WrongSize)?;
        Ok((flags & INNER_FLAGS_MASK, MESSAGE_PAYLOAD_AT..body.len()))
    }

    /// Appends one complete outer frame (flags `0x00`/`0x02`) carrying
    /// `inner_flags & INNER_FLAGS_MASK` and `payload`, encrypted under the next nonce.
    /// Allocates only if `out` has less spare capacity than
    /// [`sealed_frame_len`]`(payload.len())`. On error `out` is unchanged.
    ///
    /// # Errors
    /// [`CurveError::NonceExhausted`] after 2^64 − 1 frames (close the
    /// connection); [`CurveError::BadBox`] if the cipher refuses.
    pub fn seal_frame(&mut self, inner_flags: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), CurveError> {
        let n = self.send.take()?;
        let start = out.len();
        let body_len = sealed_body_len(payload.len());
        wire::emit_message_start(body_len, out);
        out.extend_from_slice(&n.to_be_bytes());
        let box_at = out.len();
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.push(inner_flags & INNER_FLAGS_MASK);
        crate::zmtp::frame::append(out, payload);
        let sealed = match out.get_mut(box_at..) {
            Some(boxed) => self.send_box.seal_box_in_place(n, boxed),
            None => Err(CurveError::WrongSize),
        };
        if sealed.is_err() {
            out.truncate(start);
        }
        sealed
    }
}
