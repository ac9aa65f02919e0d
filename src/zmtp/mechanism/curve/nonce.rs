//! CurveZMQ nonces (ZMTP.md §7.3; RFC 26 "Nonces").
//!
//! Every box uses a 24-byte nonce: a fixed ASCII prefix followed either by a
//! 16-byte random "long nonce" (WELCOME, cookie, vouch) or by an 8-byte
//! big-endian "short nonce" counter (HELLO, INITIATE, READY, MESSAGE).
//!
//! Short nonces: one counter per sender per connection, starting at 1 and
//! shared between handshake commands and MESSAGEs (client: HELLO 1,
//! INITIATE 2, MESSAGE 3, …; server: READY 1, MESSAGE 2, …). The receiver
//! requires each short nonce to be **strictly greater** than the last one it
//! accepted from that peer (gaps allowed, as libzmq). [`SendCounter`] and
//! [`RecvCounter`] implement the two halves; the sender refuses to wrap.

use super::CurveError;
use super::keys::NONCE_LEN;

/// HELLO box nonce prefix (client short nonce follows).
pub const HELLO_PREFIX: &[u8; 16] = b"CurveZMQHELLO---";
/// WELCOME box nonce prefix (16-byte random `Wn` follows).
pub const WELCOME_PREFIX: &[u8; 8] = b"WELCOME-";
/// Cookie secretbox nonce prefix (16-byte `Kn` follows).
pub const COOKIE_PREFIX: &[u8; 8] = b"COOKIE--";
/// INITIATE box nonce prefix (client short nonce follows).
pub const INITIATE_PREFIX: &[u8; 16] = b"CurveZMQINITIATE";
/// Vouch box nonce prefix (16-byte random `Vn` follows).
pub const VOUCH_PREFIX: &[u8; 8] = b"VOUCH---";
/// READY box nonce prefix (server short nonce follows).
pub const READY_PREFIX: &[u8; 16] = b"CurveZMQREADY---";
/// MESSAGE box nonce prefix, client → server.
pub const MESSAGE_C_PREFIX: &[u8; 16] = b"CurveZMQMESSAGEC";
/// MESSAGE box nonce prefix, server → client.
pub const MESSAGE_S_PREFIX: &[u8; 16] = b"CurveZMQMESSAGES";

/// `prefix` (16 bytes) ‖ `short` as u64 big-endian.
#[must_use]
pub fn short_nonce(prefix: &[u8; 16], short: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    let (head, tail) = n.split_at_mut(16);
    head.copy_from_slice(prefix);
    tail.copy_from_slice(&short.to_be_bytes());
    n
}

/// `prefix` (8 bytes) ‖ `long` (16 bytes).
#[must_use]
pub fn long_nonce(prefix: &[u8; 8], long: &[u8; 16]) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    let (head, tail) = n.split_at_mut(8);
    head.copy_from_slice(prefix);
    tail.copy_from_slice(long);
    n
}

/// Our own short-nonce counter for one direction of one connection.
#[derive(Debug, Clone)]
pub struct SendCounter {
    next: u64,
}

impl SendCounter {
    /// A counter whose first value is 1.
    #[must_use]
    pub fn new() -> Self {
        SendCounter { next: 1 }
    }

    /// Takes the next short nonce.
    ///
    /// # Errors
    /// [`CurveError::NonceExhausted`] instead of wrapping past `u64::MAX`
    /// (the connection must be closed).
    pub fn take(&mut self) -> Result<u64, CurveError> {
        let n = self.next;
        if n == 0 {
            return Err(CurveError::NonceExhausted);
        }
        // After u64::MAX, `next` becomes 0 and means "exhausted".
        self.next = n.wrapping_add(1);
        Ok(n)
    }

    #[cfg(test)]
    pub(crate) fn set_next(&mut self, next: u64) {
        self.next = next;
    }
}

impl Default for SendCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// The peer's last accepted short nonce for one direction of one connection.
#[derive(Debug, Clone, Default)]
pub struct RecvCounter {
    last: u64,
}

impl RecvCounter {
    /// Nothing accepted yet (any nonce ≥ 1 is acceptable).
    #[must_use]
    pub fn new() -> Self {
        RecvCounter { last: 0 }
    }

    /// Checks that `n` is strictly greater than the last accepted nonce.
    ///
    /// # Errors
    /// [`CurveError::NonceNotIncreasing`] otherwise.
    pub fn check(&self, n: u64) -> Result<(), CurveError> {
        if n > self.last { Ok(()) } else { Err(CurveError::NonceNotIncreasing) }
    }

    /// Records `n` as accepted; call only after the box under `n` opened.
    pub fn accept(&mut self, n: u64) {
        self.last = n;
    }

    /// The last accepted nonce (0 if none).
    #[must_use]
    pub fn last(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_layouts() {
        let n = short_nonce(MESSAGE_C_PREFIX, 3);
        assert_eq!(&n[..16], b"CurveZMQMESSAGEC");
        assert_eq!(&n[16..], &[0, 0, 0, 0, 0, 0, 0, 3]);
        let l = long_nonce(VOUCH_PREFIX, &[0xAB; 16]);
        assert_eq!(&l[..8], b"VOUCH---");
        assert_eq!(&l[8..], &[0xAB; 16]);
    }

    #[test]
    fn send_counter_starts_at_one_and_never_wraps() {
        let mut c = SendCounter::new();
        assert_eq!(c.take(), Ok(1));
        assert_eq!(c.take(), Ok(2));
        c.set_next(u64::MAX);
        assert_eq!(c.take(), Ok(u64::MAX));
        assert_eq!(c.take(), Err(CurveError::NonceExhausted));
        assert_eq!(c.take(), Err(CurveError::NonceExhausted));
    }

    #[test]
    fn recv_counter_strictly_increasing_gaps_allowed() {
        let mut r = RecvCounter::new();
        assert_eq!(r.check(0), Err(CurveError::NonceNotIncreasing));
        r.check(1).unwrap();
        r.accept(1);
        assert_eq!(r.check(1), Err(CurveError::NonceNotIncreasing));
        r.check(1001).unwrap();
        r.accept(1001);
        assert_eq!(r.check(1000), Err(CurveError::NonceNotIncreasing));
        assert_eq!(r.last(), 1001);
    }
}
