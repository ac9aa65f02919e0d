//! The WELCOME cookie and the server-wide cookie keys (ZMTP.md §7.5, §7.12;
//! RFC 26 "WELCOME", "INITIATE").
//!
//! cookie (96 bytes) = `Kn` (16) ‖ `SecretBox[C' ‖ s'](K)` (16 tag + 64),
//! nonce `"COOKIE--" ‖ Kn`. The server puts its transient secret `s'` into the
//! cookie and forgets it, so between WELCOME and INITIATE it holds no secret
//! per client; INITIATE returns the cookie and the server recovers `C'` and
//! `s'` from it.
//!
//! Unlike libzmq (one random `K` per connection), `K` is **global** and
//! rotates: [`CookieKeys`] keeps the current and the previous key, and the
//! server layer calls [`CookieKeys::rotate`] every [`COOKIE_ROTATE_MS`] (or
//! [`CookieKeys::rotate_if_due`] on each timer tick). A cookie is therefore
//! accepted for at least one and at most two rotation intervals; older ones
//! fail with [`CurveError::CookieExpired`].
//!
//! `Kn` = key epoch (u32 big-endian) ‖ 12 random bytes. The epoch tells which
//! key sealed the cookie, so an expired cookie is recognised without trying
//! keys, and a tampered one is a [`CurveError::BadCookie`] (MAC failure). 96
//! random bits per key per interval keep `Kn` unique under that key.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::CurveError;
use super::keys::{KEY_LEN, PrecomputedBox, PublicKey, SecretKey, TAG_LEN};
use super::nonce::{COOKIE_PREFIX, long_nonce};
use super::wire::COOKIE_LEN;

/// How often the server layer should call [`CookieKeys::rotate`]
/// (milliseconds). RFC 26 suggests 60 s; a cookie stays valid for 60–120 s.
pub const COOKIE_ROTATE_MS: u64 = 60_000;

/// Length of the random part of `Kn` (after the 4-byte epoch).
pub const COOKIE_NONCE_RANDOM_LEN: usize = 12;

/// One cookie key with its epoch number.
struct CookieKey {
    epoch: u32,
    cipher: PrecomputedBox,
}

impl CookieKey {
    fn generate(epoch: u32, rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut key[..]);
        CookieKey { epoch, cipher: PrecomputedBox::from_key(&key) }
    }
}

/// The cookie keys shared by all server connections: current and previous.
/// Keys are zeroized on drop and on rotation.
pub struct CookieKeys {
    current: CookieKey,
    previous: Option<CookieKey>,
    rotated_at_ms: Option<u64>,
}

impl core::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieKeys").field("epoch", &self.current.epoch).finish_non_exhaustive()
    }
}

impl CookieKeys {
    /// A random current key with a random starting epoch, no previous key.
    /// Consumes 32 bytes (key) then 4 bytes (epoch) from `rng`.
    pub fn new(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut key[..]);
        let mut epoch = [0u8; 4];
        rng.fill_bytes(&mut epoch);
        CookieKeys {
            current: CookieKey { epoch: u32::from_be_bytes(epoch), cipher: PrecomputedBox::from_key(&key) },
            previous: None,
            rotated_at_ms: None,
        }
    }

    /// Makes a fresh current key; the old current becomes previous and the
    /// old previous is dropped (zeroized), expiring its cookies.
    pub fn rotate(&mut self, rng: &mut impl CryptoRngCore) {
        let next = CookieKey::generate(self.current.epoch.wrapping_add(1), rng);
        self.previous = Some(core::mem::replace(&mut self.current, next));
    }

    /// Rotates if [`COOKIE_ROTATE_MS`] passed since the last rotation (the
    /// first call only records `now_ms`). Returns whether it rotated.
    pub fn rotate_if_due(&mut self, now_ms: u64, rng: &mut impl CryptoRngCore) -> bool {
        match self.rotated_at_ms {
            Some(at) if now_ms.saturating_sub(at) >= COOKIE_ROTATE_MS => {
                self.rotate(rng);
                self.rotated_at_ms = Some(now_ms);
                true
            }
            Some(_) => false,
            None => {
                self.rotated_at_ms = Some(now_ms);
                false
            }
        }
    }

    /// Seals `C' ‖ s'` into a cookie under the current key;
    /// `Kn = epoch ‖ random_tail`.
    ///
    /// # Errors
    /// [`CurveError::BadBox`] only if the cipher refuses (cannot happen for
    /// 64 bytes).
    pub fn seal(
        &self,
        client_transient: &PublicKey,
        server_transient: &SecretKey,
        random_tail: &[u8; COOKIE_NONCE_RANDOM_LEN],
    ) -> Result<[u8; COOKIE_LEN], CurveError> {
        let mut kn = [0u8; 16];
        let (epoch, tail) = kn.split_at_mut(4);
        epoch.copy_from_slice(&self.current.epoch.to_be_bytes());
        tail.copy_from_slice(random_tail);

        // Plaintext C' ‖ s' lives only in this zeroizing buffer.
        let mut plain = Zeroizing::new([0u8; 64]);
        let (c, s) = plain.split_at_mut(KEY_LEN);
        c.copy_from_slice(&client_transient.0);
        s.copy_from_slice(server_transient.as_bytes());
        let tag = self.current.cipher.seal_detached(&long_nonce(COOKIE_PREFIX, &kn), &mut plain[..])?;

        let mut cookie = [0u8; COOKIE_LEN];
        let (kn_out, rest) = cookie.split_at_mut(16);
        let (tag_out, ct_out) = rest.split_at_mut(TAG_LEN);
        kn_out.copy_from_slice(&kn);
        tag_out.copy_from_slice(&tag);
        ct_out.copy_from_slice(&plain[..]);
        Ok(cookie)
    }

    /// Opens a cookie: returns `(C', s')`.
    ///
    /// # Errors
    /// [`CurveError::CookieExpired`] if its epoch is neither the current nor
    /// the previous key's; [`CurveError::BadCookie`] if the MAC fails.
    pub fn open(&self, cookie: &[u8; COOKIE_LEN]) -> Result<(PublicKey, SecretKey), CurveError> {
        let (kn, rest) = cookie.split_at(16);
        let (tag, ct) = rest.split_at(TAG_LEN);
        let kn: [u8; 16] = kn.try_into().map_err(|_| CurveError::BadCookie)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| CurveError::BadCookie)?;
        let epoch = u32::from_be_bytes([kn[0], kn[1], kn[2], kn[3]]);
        let key = if epoch == self.current.epoch {
            &self.current
        } else {
            match &self.previous {
                Some(prev) if prev.epoch == epoch => prev,
                _ => return Err(CurveError::CookieExpired),
            }
        };
        let mut plain = Zeroizing::new([0u8; 64]);
        plain.copy_from_slice(ct);
        key.cipher
            .open_detached(&long_nonce(COOKIE_PREFIX, &kn), &mut plain[..], &tag)
            .map_err(|_| CurveError::BadCookie)?;
        let (c, s) = plain.split_at(KEY_LEN);
        let c: [u8; KEY_LEN] = c.try_into().map_err(|_| CurveError::BadCookie)?;
        let mut s_bytes = Zeroizing::new([0u8; KEY_LEN]);
        s_bytes.copy_from_slice(s);
        Ok((PublicKey(c), SecretKey::from_bytes(*s_bytes)))
    }

    /// The current key's epoch (the first 4 bytes of new cookies' `Kn`).
    #[must_use]
    pub fn epoch(&self) -> u32 {
        self.current.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn setup() -> (ChaCha20Rng, CookieKeys, PublicKey, SecretKey) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let keys = CookieKeys::new(&mut rng);
        (rng, keys, PublicKey([3; 32]), SecretKey::from_bytes([4; 32]))
    }

    #[test]
    fn cookie_roundtrip_and_one_rotation_ok() {
        let (mut rng, mut keys, c, s) = setup();
        let cookie = keys.seal(&c, &s, &[9; 12]).unwrap();
        assert_eq!(cookie[..4], keys.epoch().to_be_bytes());
        let (c2, s2) = keys.open(&cookie).unwrap();
        assert_eq!(c2, c);
        assert_eq!(s2.as_bytes(), s.as_bytes());
        keys.rotate(&mut rng);
        assert!(keys.open(&cookie).is_ok(), "previous key still accepted");
    }

    /// A cookie from before two rotations is CookieExpired.
    #[test]
    fn cookie_expires_after_two_rotations() {
        let (mut rng, mut keys, c, s) = setup();
        let cookie = keys.seal(&c, &s, &[9; 12]).unwrap();
        keys.rotate(&mut rng);
        keys.rotate(&mut rng);
        assert_eq!(keys.open(&cookie).err(), Some(CurveError::CookieExpired));
    }

    #[test]
    fn cookie_any_flip_rejected() {
        let (_, keys, c, s) = setup();
        let cookie = keys.seal(&c, &s, &[9; 12]).unwrap();
        for i in 0..COOKIE_LEN {
            let mut bad = cookie;
            bad[i] ^= 0x01;
            let want = if i < 4 { CurveError::CookieExpired } else { CurveError::BadCookie };
            assert_eq!(keys.open(&bad).err(), Some(want), "byte {i}");
        }
    }

    #[test]
    fn rotate_if_due_uses_interval() {
        let (mut rng, mut keys, _, _) = setup();
        let e0 = keys.epoch();
        assert!(!keys.rotate_if_due(1_000, &mut rng));
        assert!(!keys.rotate_if_due(1_000 + COOKIE_ROTATE_MS - 1, &mut rng));
        assert!(keys.rotate_if_due(1_000 + COOKIE_ROTATE_MS, &mut rng));
        assert_eq!(keys.epoch(), e0.wrapping_add(1));
        assert!(!keys.rotate_if_due(1_000 + COOKIE_ROTATE_MS + 5, &mut rng));
    }
}
