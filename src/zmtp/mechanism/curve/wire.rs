//! Byte layouts of the CURVE commands (ZMTP.md §7.4–§7.9, RFC 26 grammar).
//!
//! All offsets are within the command *body* (which starts with the name-length byte). Every
//! accessor is bounds-checked and returns [`CurveError`] instead of panicking. The frame
//! header, the command name and ERROR are ZMTP's own codec ([`crate::zmtp::frame`],
//! [`crate::zmtp::command`]); this file adds only what CURVE lays out inside a body.

use super::CurveError;
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::FrameHeader;

/// `HELLO` (§7.4).
pub const HELLO: &[u8] = b"HELLO";
/// `WELCOME` (§7.5).
pub const WELCOME: &[u8] = b"WELCOME";
/// `INITIATE` (§7.6).
pub const INITIATE: &[u8] = b"INITIATE";
/// `READY` (§7.7).
pub const READY: &[u8] = command::READY;
/// `MESSAGE` (§7.9): the body of a *data* frame, not a command frame.
pub const MESSAGE: &[u8] = b"MESSAGE";

/// HELLO body length, exact (§7.4).
pub const HELLO_LEN: usize = 200;
/// HELLO version offset (major, minor = 1, 0).
pub const HELLO_VERSION_AT: usize = 6;
/// HELLO anti-amplification padding: 72 zero bytes at offset 8.
pub const HELLO_PADDING_AT: usize = 8;
/// Length of the HELLO padding.
pub const HELLO_PADDING_LEN: usize = 72;
/// HELLO `C'` offset.
pub const HELLO_CLIENT_KEY_AT: usize = 80;
/// HELLO short nonce offset.
pub const HELLO_NONCE_AT: usize = 112;
/// HELLO box (tag ‖ 64 encrypted zero bytes) offset.
pub const HELLO_BOX_AT: usize = 120;
/// Plaintext length of the HELLO box ("signature" of zeros).
pub const HELLO_SIGNATURE_LEN: usize = 64;

/// WELCOME body length, exact (§7.5). Smaller than [`HELLO_LEN`].
pub const WELCOME_LEN: usize = 168;
/// WELCOME long nonce `Wn` offset.
pub const WELCOME_NONCE_AT: usize = 8;
/// WELCOME box offset (tag ‖ `S'` ‖ cookie).
pub const WELCOME_BOX_AT: usize = 24;

/// Cookie length: `Kn` (16) ‖ tag (16) ‖ encrypted `C' ‖ s'` (64).
pub const COOKIE_LEN: usize = 96;

/// Minimum INITIATE body length (no metadata, §7.6).
pub const INITIATE_MIN_LEN: usize = 257;
/// INITIATE cookie offset.
pub const INITIATE_COOKIE_AT: usize = 9;
/// INITIATE short nonce offset.
pub const INITIATE_NONCE_AT: usize = 105;
/// INITIATE box offset (tag ‖ `C` ‖ `Vn` ‖ vouch ‖ metadata).
pub const INITIATE_BOX_AT: usize = 113;
/// Offset of the metadata inside the INITIATE body once decrypted.
pub const INITIATE_METADATA_AT: usize = 257;
/// Vouch box length: tag ‖ `C'` ‖ `S`.
pub const VOUCH_LEN: usize = 80;

/// Minimum READY body length (empty metadata, §7.7).
pub const READY_MIN_LEN: usize = 30;
/// READY short nonce offset.
pub const READY_NONCE_AT: usize = 6;
/// READY box offset.
pub const READY_BOX_AT: usize = 14;
/// Offset of the metadata inside the READY body once decrypted.
pub const READY_METADATA_AT: usize = 30;

/// Minimum MESSAGE body length: name 8 + nonce 8 + tag 16 + flags 1 (§7.9).
pub const MESSAGE_MIN_LEN: usize = 33;
/// MESSAGE short nonce offset.
pub const MESSAGE_NONCE_AT: usize = 8;
/// MESSAGE box offset.
pub const MESSAGE_BOX_AT: usize = 16;
/// Offset of the inner flags byte once decrypted.
pub const MESSAGE_FLAGS_AT: usize = 32;
/// Offset of the payload once decrypted.
pub const MESSAGE_PAYLOAD_AT: usize = 33;

/// Checks that `body` is the command `name` (e.g. [`HELLO`]).
///
/// # Errors
/// [`CurveError::BadCommand`] if the body is empty, the name is empty, or the name length
/// exceeds the body; [`CurveError::UnexpectedCommand`] if it is another command.
pub fn expect_command(body: &[u8], name: &[u8]) -> Result<(), CurveError> {
    let cmd = Command::parse(body).map_err(|_| CurveError::BadCommand)?;
    if cmd.is(name) { Ok(()) } else { Err(CurveError::UnexpectedCommand) }
}

/// Appends the header of a command frame whose whole body (name included) is `body_len`
/// bytes, and the name; the caller appends the rest of the body.
pub fn emit_command_start(name: &[u8], body_len: usize, out: &mut Vec<u8>) {
    command::emit_header(name, body_len.saturating_sub(1 + name.len()), out);
}

/// Appends the header of the data frame that carries a MESSAGE body of `body_len` bytes, and
/// the name `MESSAGE` (§7.9: never MORE, never COMMAND outside).
pub fn emit_message_start(body_len: usize, out: &mut Vec<u8>) {
    FrameHeader::emit(0, body_len, out);
    command::emit_name(MESSAGE, out);
}

/// Copies `N` bytes at `at` out of `body`.
///
/// # Errors
/// [`CurveError::WrongSize`] if `body` is too short.
pub fn array_at<const N: usize>(body: &[u8], at: usize) -> Result<[u8; N], CurveError> {
    body.get(at..at.saturating_add(N)).and_then(|s| s.try_into().ok()).ok_or(CurveError::WrongSize)
}

/// Reads the big-endian u64 at `at`.
///
/// # Errors
/// [`CurveError::WrongSize`] if `body` is too short.
pub fn u64_at(body: &[u8], at: usize) -> Result<u64, CurveError> {
    array_at::<8>(body, at).map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_name_bounds() {
        assert_eq!(expect_command(b"", READY), Err(CurveError::BadCommand));
        assert_eq!(expect_command(b"\x00", READY), Err(CurveError::BadCommand));
        assert_eq!(expect_command(b"\x05REA", READY), Err(CurveError::BadCommand));
        assert_eq!(expect_command(b"\x05READYxx", READY), Ok(()));
        assert_eq!(expect_command(b"\x05HELLO", READY), Err(CurveError::UnexpectedCommand));
        assert_eq!(u64_at(&[0; 7], 0), Err(CurveError::WrongSize));
        assert_eq!(array_at::<4>(&[1, 2, 3, 4, 5], usize::MAX), Err(CurveError::WrongSize));
    }

    /// Anti-amplification: the server's answer to HELLO is smaller than HELLO.
    #[test]
    fn welcome_not_larger_than_hello() {
        const { assert!(WELCOME_LEN <= HELLO_LEN) };
        assert!(FrameHeader::frame_len(WELCOME_LEN) <= FrameHeader::frame_len(HELLO_LEN));
        assert_eq!(HELLO_BOX_AT + 16 + HELLO_SIGNATURE_LEN, HELLO_LEN);
        assert_eq!(WELCOME_BOX_AT + 16 + 32 + COOKIE_LEN, WELCOME_LEN);
        assert_eq!(INITIATE_BOX_AT + 16 + 32 + 16 + VOUCH_LEN, INITIATE_MIN_LEN);
        assert_eq!(INITIATE_METADATA_AT, INITIATE_MIN_LEN);
        assert_eq!(READY_BOX_AT + 16, READY_MIN_LEN);
    }
}
