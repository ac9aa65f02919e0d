#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
//! Byte layouts of the CURVE commands (ZMTP.md §7.4–§7.9, RFC 26 grammar),
//! the ZMTP frame header they travel in (ZMTP.md §3.1) and ERROR (ZMTP.md
//! §4.5, §7.8).
//!
//! All offsets are within the command *body* (which starts with the
//! name-length byte). Every accessor is bounds-checked and returns
//! [`CurveError`] instead of panicking.

use super::CurveError;

/// `%d5 "HELLO"`.
pub const HELLO_NAME: &[u8] = b"\x05HELLO";
/// `%d7 "WELCOME"`.
pub const WELCOME_NAME: &[u8] = b"\x07WELCOME";
/// `%d8 "INITIATE"`.
pub const INITIATE_NAME: &[u8] = b"\x08INITIATE";
/// `%d5 "READY"`.
pub const READY_NAME: &[u8] = b"\x05READY";
/// `%d7 "MESSAGE"`.
pub const MESSAGE_NAME: &[u8] = b"\x07MESSAGE";
/// `%d5 "ERROR"`.
pub const ERROR_NAME: &[u8] = b"\x05ERROR";

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

/// ZMTP frame flag: another frame follows (§3.1).
pub const FLAG_MORE: u8 = 0x01;
/// ZMTP frame flag: 8-byte size.
pub const FLAG_LONG: u8 = 0x02;
/// ZMTP frame flag: command frame.
pub const FLAG_COMMAND: u8 = 0x04;
/// Inner MESSAGE flag bits libzmq honours (MORE | COMMAND, §7.9).
pub const INNER_FLAGS_MASK: u8 = 0x03;

/// Length of the ZMTP frame header for a body of `body_len` bytes: 2 (short,
/// ≤ 255) or 9 (long).
#[must_use]
pub const fn frame_header_len(body_len: usize) -> usize {
    if body_len <= 255 { 2 } else { 9 }
}

/// Length of a complete ZMTP frame (header + body), saturating.
#[must_use]
pub const fn frame_len(body_len: usize) -> usize {
    body_len.saturating_add(frame_header_len(body_len))
}

/// Appends a ZMTP frame header: flags (`COMMAND` if `command`, `LONG` if the
/// body exceeds 255 bytes, never `MORE`) and the size.
pub fn push_frame_header(out: &mut Vec<u8>, command: bool, body_len: usize) {
    let cmd = if command { FLAG_COMMAND } else { 0 };
    match u8::try_from(body_len) {
        Ok(short) => {
            out.push(cmd);
            out.push(short);
        }
        Err(_) => {
            out.push(cmd | FLAG_LONG);
            out.extend_from_slice(&(body_len as u64).to_be_bytes());
        }
    }
}

/// The name (with its length byte) of a command body: `body[..1 + body[0]]`.
///
/// # Errors
/// [`CurveError::BadCommand`] if the body is empty, the name is empty, or
/// the name length exceeds the body.
pub fn command_name(body: &[u8]) -> Result<&[u8], CurveError> {
    let len = usize::from(*body.first().ok_or(CurveError::BadCommand)?);
    if len == 0 {
        return Err(CurveError::BadCommand);
    }
    body.get(..len.saturating_add(1)).ok_or(CurveError::BadCommand)
}

/// Checks that `body` is the command `name` (e.g. [`HELLO_NAME`]).
///
/// # Errors
/// [`CurveError::BadCommand`] as [`command_name`];
/// [`CurveError::UnexpectedCommand`] if it is another command.
pub fn expect_command(body: &[u8], name: &[u8]) -> Result<(), CurveError> {
    if command_name(body)? == name { Ok(()) } else { Err(CurveError::UnexpectedCommand) }
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

/// Body length of an ERROR with `reason` (truncated to 255 bytes).
#[must_use]
pub fn error_len(reason: &[u8]) -> usize {
    ERROR_NAME.len() + 1 + reason.len().min(255)
}

/// Appends a complete ERROR command frame (clear text, §4.5/§7.8). Reasons
/// longer than 255 bytes are truncated to 255.
pub fn push_error(out: &mut Vec<u8>, reason: &[u8]) {
    let reason = reason.get(..255).unwrap_or(reason);
    push_frame_header(out, true, error_len(reason));
    out.extend_from_slice(ERROR_NAME);
    out.push(u8::try_from(reason.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(reason);
}

/// The reason of an ERROR body (`%d5 "ERROR" len reason`), or `None` if
/// `body` is not a well-formed ERROR.
#[must_use]
pub fn error_reason(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_prefix(ERROR_NAME)?;
    let (&len, reason) = rest.split_first()?;
    reason.get(..usize::from(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_short_long_boundary() {
        let mut v = Vec::new();
        push_frame_header(&mut v, true, 255);
        assert_eq!(v, [0x04, 0xff]);
        v.clear();
        push_frame_header(&mut v, true, 256);
        assert_eq!(v, [0x06, 0, 0, 0, 0, 0, 0, 1, 0]);
        v.clear();
        push_frame_header(&mut v, false, 33);
        assert_eq!(v, [0x00, 33]);
        v.clear();
        push_frame_header(&mut v, false, 333);
        assert_eq!(v, [0x02, 0, 0, 0, 0, 0, 0, 1, 0x4d]);
        assert_eq!(frame_len(255), 257);
        assert_eq!(frame_len(256), 265);
        assert_eq!(frame_len(usize::MAX), usize::MAX);
    }

    /// ZMTP.md §12.4: ERROR "400".
    #[test]
    fn error_frame_bytes() {
        let mut v = Vec::new();
        push_error(&mut v, b"400");
        assert_eq!(v, hex::decode("040a054552524f5203343030").unwrap());
        assert_eq!(error_reason(&v[2..]), Some(&b"400"[..]));
        assert_eq!(error_reason(b"\x05ERROR\x05ab"), None);
        let mut long = Vec::new();
        push_error(&mut long, &[b'x'; 300]);
        assert_eq!(long.len(), 9 + 7 + 255);
        assert_eq!(error_reason(&long[9..]).map(<[u8]>::len), Some(255));
    }

    #[test]
    fn command_name_bounds() {
        assert_eq!(command_name(b""), Err(CurveError::BadCommand));
        assert_eq!(command_name(b"\x00"), Err(CurveError::BadCommand));
        assert_eq!(command_name(b"\x05REA"), Err(CurveError::BadCommand));
        assert_eq!(command_name(b"\x05READYxx"), Ok(&b"\x05READY"[..]));
        assert_eq!(expect_command(b"\x05HELLO", READY_NAME), Err(CurveError::UnexpectedCommand));
        assert_eq!(u64_at(&[0; 7], 0), Err(CurveError::WrongSize));
        assert_eq!(array_at::<4>(&[1, 2, 3, 4, 5], usize::MAX), Err(CurveError::WrongSize));
    }

    /// Anti-amplification: the server's answer to HELLO is smaller than HELLO.
    #[test]
    fn welcome_not_larger_than_hello() {
        const { assert!(WELCOME_LEN <= HELLO_LEN) };
        assert!(frame_len(WELCOME_LEN) <= frame_len(HELLO_LEN));
        assert_eq!(HELLO_BOX_AT + 16 + HELLO_SIGNATURE_LEN, HELLO_LEN);
        assert_eq!(WELCOME_BOX_AT + 16 + 32 + COOKIE_LEN, WELCOME_LEN);
        assert_eq!(INITIATE_BOX_AT + 16 + 32 + 16 + VOUCH_LEN, INITIATE_MIN_LEN);
        assert_eq!(INITIATE_METADATA_AT, INITIATE_MIN_LEN);
        assert_eq!(READY_BOX_AT + 16, READY_MIN_LEN);
    }
}
