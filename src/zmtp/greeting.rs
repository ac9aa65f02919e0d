//! The 64-byte ZMTP 3.x greeting (ZMTP.md §2; RFC 23 "Greeting", "Version negotiation").
//!
//! We send our whole greeting at once, right after accept, and parse the peer's
//! incrementally: libzmq sends its greeting in three stages (10 + 1 + 53 bytes) and waits for
//! ours between them, so waiting for 64 bytes before answering would deadlock (ZMTP.md §15
//! item 1). Only the fields libzmq itself checks are validated (§15 item 2): byte 0 = 0xFF,
//! bit 0 of byte 9, major ≥ 3, and the 20-byte mechanism. Padding and as-server are ignored.
//! ZMTP 1.0/2.0 peers are refused (no downgrade, §2.5): they cannot use CURVE, and every
//! libzmq in use speaks 3.x.

use super::SessionError;
use super::mechanism::Mechanism;

/// Greeting length.
pub const GREETING_LEN: usize = 64;

/// Minor version we announce (ZMTP 3.1: PING/PONG).
pub const OUR_MINOR: u8 = 1;

/// Our greeting: signature with zero padding, version 3.1, the mechanism, as-server = 1 for
/// PLAIN/CURVE servers and 0 for NULL (RFC 23/37; libzmq never reads it), zero filler.
pub fn emit(mechanism: Mechanism, as_server: bool) -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = OUR_MINOR;
    g[12..32].copy_from_slice(&mechanism.wire_name());
    g[32] = u8::from(as_server && mechanism != Mechanism::Null);
    g
}

/// What the peer announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// Major version (≥ 3).
    pub major: u8,
    /// Minor version (0 = ZMTP 3.0, ≥ 1 = 3.1).
    pub minor: u8,
    /// The 20-byte mechanism field.
    pub mechanism: [u8; 20],
}

/// Check the peer's greeting as far as `buf` reaches.
///
/// Returns `Ok(None)` while fewer than 64 bytes are present and nothing seen so far is wrong;
/// errors are reported as soon as the offending byte arrives, so a ZMTP 1.0/2.0 peer is
/// refused after 1 or 11 bytes instead of waiting for bytes it will never send.
///
/// # Errors
/// [`SessionError::BadSignature`], [`SessionError::UnsupportedVersion`].
pub fn parse(buf: &[u8]) -> Result<Option<Greeting>, SessionError> {
    if let Some(&b0) = buf.first()
        && b0 != 0xFF
    {
        return Err(SessionError::BadSignature);
    }
    if let Some(&b9) = buf.get(9)
        && b9 & 1 == 0
    {
        return Err(SessionError::BadSignature);
    }
    if let Some(&major) = buf.get(10)
        && major < 3
    {
        return Err(SessionError::UnsupportedVersion { major });
    }
    let Some(g) = buf.get(..GREETING_LEN) else { return Ok(None) };
    let mut mechanism = [0u8; 20];
    mechanism.copy_from_slice(g.get(12..32).unwrap_or(&[0; 20]));
    Ok(Some(Greeting { major: g.get(10).copied().unwrap_or(3), minor: g.get(11).copied().unwrap_or(0), mechanism }))
}

/// A libzmq 4.3.5 NULL client greeting (ZMTP.md §2.3, §12.4; padding byte 8 = identity length
/// + 1), for the tests and the fuzz harnesses.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
#[doc(hidden)]
pub const LIBZMQ_NULL_GREETING: [u8; GREETING_LEN] = {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xff;
    g[8] = 0x01;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    g[12] = b'N';
    g[13] = b'U';
    g[14] = b'L';
    g[15] = b'L';
    g
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libzmq_null_greeting_and_every_prefix_needs_more() {
        let g = parse(&LIBZMQ_NULL_GREETING).unwrap().unwrap();
        assert_eq!((g.major, g.minor), (3, 1));
        assert_eq!(Mechanism::from_wire(&g.mechanism), Some(Mechanism::Null));
        for n in 0..64 {
            assert_eq!(parse(&LIBZMQ_NULL_GREETING[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn our_null_greeting_equals_libzmqs_but_for_padding() {
        let ours = emit(Mechanism::Null, true);
        assert_eq!(ours[..8], LIBZMQ_NULL_GREETING[..8]);
        assert_eq!(ours[9..], LIBZMQ_NULL_GREETING[9..]);
        assert_eq!(ours[8], 0, "padding is zero");
    }

    #[test]
    fn refuses_old_and_garbage_peers_early() {
        assert_eq!(parse(b"GET / HTTP/1.1"), Err(SessionError::BadSignature));
        assert_eq!(parse(&[0xFE]), Err(SessionError::BadSignature));
        // ZMTP 1.0 with an 8-byte length: byte 9 bit 0 clear.
        assert_eq!(parse(&[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7e]), Err(SessionError::BadSignature));
        // ZMTP 2.0: major 1, refused at byte 10.
        assert_eq!(
            parse(&[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 5]),
            Err(SessionError::UnsupportedVersion { major: 1 })
        );
        // ZMTP 3.0 accepted, minor 0.
        let mut g = LIBZMQ_NULL_GREETING;
        g[11] = 0;
        assert_eq!(parse(&g).unwrap().unwrap().minor, 0);
        // Non-zero padding (libzmq: identity length + 1) is not validated.
        g[8] = 7;
        assert!(parse(&g).unwrap().is_some());
    }
}
