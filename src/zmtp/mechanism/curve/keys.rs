//! CURVE keys and the precomputed NaCl box (ZMTP.md §7.1, §7.2; RFC 26
//! "Keys").
//!
//! [`PublicKey`], [`SecretKey`] and [`KeyPair`] are the long-term (`S/s`,
//! `C/c`) and transient (`S'/s'`, `C'/c'`) Curve25519 keys. [`SecretKey`] is
//! zeroized on drop and never printed.
//!
//! [`PrecomputedBox`] is NaCl's `crypto_box_beforenm` result wrapped in an
//! XSalsa20-Poly1305 cipher: `k = HSalsa20(X25519(own_secret, peer_public),
//! 0^16)`, so that `crypto_box(m, n, pk, sk) == crypto_secretbox(m, n, k)`
//! (ZMTP.md §7.1). X25519 comes from `x25519-dalek`, HSalsa20 and
//! XSalsa20-Poly1305 from RustCrypto's `crypto_secretbox` — the same
//! primitives `crypto_box::SalsaBox` is built from (a unit test checks
//! byte-equality against `SalsaBox`). We assemble them ourselves only to add
//! libsodium's rejection of low-order public keys (an all-zero shared secret →
//! [`CurveError::WeakKey`]), which `SalsaBox::new` does not perform.
//!
//! Boxes on the wire are NaCl "easy" layout: the 16-byte Poly1305 tag first,
//! then the ciphertext. The `*_box_in_place` helpers work on that layout in a
//! caller buffer without allocating.

use core::fmt;

use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::{AeadInPlace, Kdf, KeyInit, XSalsa20Poly1305};
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::CurveError;
use crate::zmtp::z85::{self, Z85Error};

/// Length of a Curve25519 public or secret key.
pub const KEY_LEN: usize = 32;
/// Length of a Poly1305 tag (the "MAC" at the front of every box).
pub const TAG_LEN: usize = 16;
/// Length of an XSalsa20 nonce.
pub const NONCE_LEN: usize = 24;

/// A Curve25519 public key (32 bytes). `Debug` and `Display` print Z85.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// Parses a 40-character Z85 key (ZMTP.md §11.2).
    ///
    /// # Errors
    /// Any [`Z85Error`] from [`z85::decode_key`].
    pub fn from_z85(text: &[u8]) -> Result<Self, Z85Error> {
        z85::decode_key(text).map(PublicKey)
    }

    /// The 40 Z85 characters of this key.
    #[must_use]
    pub fn to_z85(&self) -> [u8; z85::KEY_TEXT_LEN] {
        z85::encode_key(&self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_z85();
        f.write_str(core::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// A Curve25519 secret key (32 bytes). Zeroized on drop; `Debug` prints
/// `SecretKey(..)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps raw secret bytes (X25519 clamps them at use, as libsodium does).
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// Parses a 40-character Z85 secret key (ZMTP.md §11.2).
    ///
    /// # Errors
    /// Any [`Z85Error`] from [`z85::decode_key`].
    pub fn from_z85(text: &[u8]) -> Result<Self, Z85Error> {
        let mut bytes = z85::decode_key(text)?;
        let key = SecretKey(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// 32 fresh random bytes from `rng`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = SecretKey([0u8; KEY_LEN]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// The matching public key: X25519 base-point multiplication
    /// (`zmq_curve_public`).
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// The raw secret bytes (for persisting the key; handle with care).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A public key with its secret key.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// The public half.
    pub public: PublicKey,
    /// The secret half (zeroized on drop).
    pub secret: SecretKey,
}

impl KeyPair {
    /// A fresh random key pair (`zmq_curve_keypair`).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self::from_secret(SecretKey::generate(rng))
    }

    /// The key pair of an existing secret key.
    #[must_use]
    pub fn from_secret(secret: SecretKey) -> Self {
        KeyPair { public: secret.public_key(), secret }
    }
}

/// `crypto_box_beforenm(peer_public, own_secret)`: the 32-byte key shared by
/// both ends, or [`CurveError::WeakKey`] for a low-order peer key (all-zero
/// X25519 result, rejected as libsodium does).
pub(crate) fn beforenm(
    peer_public: &PublicKey,
    own_secret: &SecretKey,
) -> Result<zeroize::Zeroizing<[u8; KEY_LEN]>, CurveError> {
    let secret = x25519_dalek::StaticSecret::from(own_secret.0);
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer_public.0));
    if !shared.was_contributory() {
        return Err(CurveError::WeakKey);
    }
    let mut k = XSalsa20Poly1305::kdf(GenericArray::from_slice(shared.as_bytes()), &GenericArray::default());
    let mut out = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(k.as_slice());
    k.as_mut_slice().zeroize();
    Ok(out)
}

/// An XSalsa20-Poly1305 cipher under a fixed 32-byte key: either
/// `beforenm(peer, own)` (a `crypto_box` precomputation) or a random
/// `crypto_secretbox` key (the cookie). The key is zeroized on drop by
/// `crypto_secretbox`.
pub struct PrecomputedBox {
    cipher: XSalsa20Poly1305,
    /// The same key, kept to derive [`PrefixedBox`]es (zeroized on drop).
    key: zeroize::Zeroizing<[u8; KEY_LEN]>,
}

impl PrecomputedBox {
    /// Precomputes the box between `peer_public` and `own_secret`.
    ///
    /// # Errors
    /// [`CurveError::WeakKey`] if `peer_public` has low order.
    pub fn new(peer_public: &PublicKey, own_secret: &SecretKey) -> Result<Self, CurveError> {
        let k = beforenm(peer_public, own_secret)?;
        Ok(Self::from_key(&k))
    }

    /// A `crypto_secretbox` under `key`.
    #[must_use]
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        PrecomputedBox {
            cipher: XSalsa20Poly1305::new(GenericArray::from_slice(key)),
            key: zeroize::Zeroizing::new(*key),
        }
    }

    /// The same box restricted to nonces that begin with `prefix` (see [`PrefixedBox`]).
    #[must_use]
    pub fn with_prefix(&self, prefix: &'static [u8; 16]) -> PrefixedBox {
        PrefixedBox::new(&self.key, prefix)
    }

    /// Encrypts `plain` in place and returns the detached tag.
    ///
    /// # Errors
    /// [`CurveError::BadBox`] if the cipher refuses (message too long).
    pub fn seal_detached(&self, nonce: &[u8; NONCE_LEN], plain: &mut [u8]) -> Result<[u8; TAG_LEN], CurveError> {
        let tag = self
            .cipher
            .encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", plain)
            .map_err(|_| CurveError::BadBox)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_slice());
        Ok(out)
    }

    /// Verifies `tag` over `cipher` and decrypts it in place. On failure the
    /// buffer is left unchanged.
    ///
    /// # Errors
    /// [`CurveError::BadBox`] if the MAC does not verify.
    pub fn open_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        cipher: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CurveError> {
        self.cipher
            .decrypt_in_place_detached(GenericArray::from_slice(nonce), b"", cipher, GenericArray::from_slice(tag))
            .map_err(|_| CurveError::BadBox)
    }

    /// NaCl layout in place: `boxed` = 16 bytes (tag, overwritten) ‖
    /// plaintext; encrypts the plaintext and writes the tag in front.
    ///
    /// # Errors
    /// [`CurveError::WrongSize`] if `boxed` is shorter than a tag;
    /// [`CurveError::BadBox`] as [`Self::seal_detached`].
    pub fn seal_box_in_place(&self, nonce: &[u8; NONCE_LEN], boxed: &mut [u8]) -> Result<(), CurveError> {
        let (tag_out, plain) = boxed.split_at_mut_checked(TAG_LEN).ok_or(CurveError::WrongSize)?;
        let tag = self.seal_detached(nonce, plain)?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// NaCl layout in place: `boxed` = tag ‖ ciphertext; on success the
    /// plaintext is at `boxed[TAG_LEN..]`.
    ///
    /// # Errors
    /// [`CurveError::WrongSize`] if `boxed` is shorter than a tag;
    /// [`CurveError::BadBox`] if the MAC does not verify.
    pub fn open_box_in_place(&self, nonce: &[u8; NONCE_LEN], boxed: &mut [u8]) -> Result<(), CurveError> {
        let (tag, cipher) = boxed.split_at_mut_checked(TAG_LEN).ok_or(CurveError::WrongSize)?;
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| CurveError::WrongSize)?;
        self.open_detached(nonce, cipher, &tag)
    }
}

/// A `crypto_secretbox` under key `k` for nonces that all begin with one 16-byte `prefix`:
/// CurveZMQ's MESSAGE nonces are `"CurveZMQMESSAGEC"`/`"CurveZMQMESSAGES"` ‖ an 8-byte counter
/// (ZMTP.md §7.9).
///
/// XSalsa20 with nonce `p ‖ c` is Salsa20 keyed with `HSalsa20(k, p)` and nonce `c`
/// (XSalsa20 paper §2). With `p` fixed, that subkey is fixed: it is derived once here
/// (RustCrypto's `hsalsa`), and each frame costs Salsa20 + Poly1305 only, which run in
/// libsodium ([`super::sodium`]: its SIMD code on x86-64). libsodium's `crypto_box_afternm`,
/// which libzmq calls per frame, derives the subkey every time; doing it once saves about a
/// fifth of the CPU a routed 256-byte CURVE message costs. Equality with [`PrecomputedBox`]
/// (RustCrypto's XSalsa20-Poly1305) under the full nonce is a property test
/// (`prefixed_box_equals_xsalsa20poly1305`), equality with libsodium's `crypto_secretbox` is
/// another (`sodium::tests`), and the CurveZMQ transcript vectors run through it.
pub struct PrefixedBox {
    /// `HSalsa20(k, prefix)` (zeroized on drop).
    subkey: zeroize::Zeroizing<[u8; KEY_LEN]>,
    prefix: &'static [u8; 16],
}

impl PrefixedBox {
    fn new(key: &[u8; KEY_LEN], prefix: &'static [u8; 16]) -> Self {
        super::sodium::init();
        let mut derived = salsa20::hsalsa::<salsa20::cipher::consts::U10>(
            GenericArray::from_slice(key),
            GenericArray::from_slice(prefix),
        );
        let mut subkey = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        subkey.copy_from_slice(derived.as_slice());
        derived.as_mut_slice().zeroize();
        PrefixedBox { subkey, prefix }
    }

    /// NaCl layout in place under nonce `prefix ‖ counter` (big-endian), as
    /// [`PrecomputedBox::seal_box_in_place`].
    ///
    /// # Errors
    /// [`CurveError::WrongSize`] if `boxed` is shorter than a tag.
    pub fn seal_box_in_place(&self, counter: u64, boxed: &mut [u8]) -> Result<(), CurveError> {
        let (tag_out, plain) = boxed.split_at_mut_checked(TAG_LEN).ok_or(CurveError::WrongSize)?;
        let tag = super::sodium::seal_detached(&self.subkey, &counter.to_be_bytes(), plain);
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// NaCl layout in place under nonce `prefix ‖ counter`, as
    /// [`PrecomputedBox::open_box_in_place`]; on failure the buffer is unchanged.
    ///
    /// # Errors
    /// [`CurveError::WrongSize`] if `boxed` is shorter than a tag; [`CurveError::BadBox`] if
    /// the MAC does not verify.
    pub fn open_box_in_place(&self, counter: u64, boxed: &mut [u8]) -> Result<(), CurveError> {
        let (tag, cipher) = boxed.split_at_mut_checked(TAG_LEN).ok_or(CurveError::WrongSize)?;
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| CurveError::WrongSize)?;
        if super::sodium::open_detached(&self.subkey, &counter.to_be_bytes(), cipher, &tag) {
            Ok(())
        } else {
            Err(CurveError::BadBox)
        }
    }
}

impl fmt::Debug for PrefixedBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrefixedBox({:?}, ..)", self.prefix.escape_ascii().to_string())
    }
}

impl fmt::Debug for PrecomputedBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrecomputedBox(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    const ALICE_SK: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PK: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const BOB_SK: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const BOB_PK: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
    const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    const BEFORENM: &str = "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389";
    const NONCE: &str = "69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37";
    const MESSAGE: &str = concat!(
        "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc",
        "e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31",
        "0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde",
        "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864",
        "5e0705"
    );
    const BOXED: &str = concat!(
        "f3ffc7703f9400e52a7dfb4b3d3305d9",
        "8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a",
        "c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738",
        "b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da",
        "99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74",
        "e355a5"
    );
    const LOW_ORDER: &str = "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800";

    fn nonce() -> [u8; 24] {
        hex::decode(NONCE).unwrap().try_into().unwrap()
    }

    /// ZMTP.md §12.2: public keys from secrets, X25519 shared secret, beforenm.
    /// PrefixedBox (subkey derived once) must be byte-identical to XSalsa20-Poly1305 under the
    /// full 24-byte nonce, for both MESSAGE prefixes, any key, counter and length; and open what
    /// the other seals.
    #[test]
    fn prefixed_box_equals_xsalsa20poly1305() {
        use super::super::nonce::{MESSAGE_C_PREFIX, MESSAGE_S_PREFIX, short_nonce};
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for case in 0..400usize {
            let mut k = [0u8; KEY_LEN];
            rng.fill_bytes(&mut k);
            let full = PrecomputedBox::from_key(&k);
            let prefix = if case % 2 == 0 { MESSAGE_C_PREFIX } else { MESSAGE_S_PREFIX };
            let pre = full.with_prefix(prefix);
            let counter = match case % 4 {
                0 => case as u64,
                1 => u64::MAX - case as u64,
                _ => rng.next_u64(),
            };
            let len = if case < 300 { case } else { 1000 + case * 7 };
            let mut a = vec![0u8; TAG_LEN + len];
            rng.fill_bytes(&mut a[TAG_LEN..]);
            let plain = a.clone();
            let mut b = a.clone();
            pre.seal_box_in_place(counter, &mut a).unwrap();
            full.seal_box_in_place(&short_nonce(prefix, counter), &mut b).unwrap();
            assert_eq!(a, b, "case {case} len {len}");
            full.open_box_in_place(&short_nonce(prefix, counter), &mut b).unwrap();
            assert_eq!(b[TAG_LEN..], plain[TAG_LEN..]);
            pre.open_box_in_place(counter, &mut a).unwrap();
            assert_eq!(a[TAG_LEN..], plain[TAG_LEN..]);
            // the wrong counter or the other direction's prefix does not open it
            let mut c = b.clone();
            full.seal_box_in_place(&short_nonce(prefix, counter), &mut c).unwrap();
            let sealed = c.clone();
            assert_eq!(pre.open_box_in_place(counter.wrapping_add(1), &mut c), Err(CurveError::BadBox));
            assert_eq!(c, sealed, "a failed open leaves the buffer unchanged");
            let other = full.with_prefix(if case % 2 == 0 { MESSAGE_S_PREFIX } else { MESSAGE_C_PREFIX });
            assert_eq!(other.open_box_in_place(counter, &mut c), Err(CurveError::BadBox));
        }
    }

    #[test]
    fn kat_scalarmult_and_beforenm() {
        let alice = SecretKey::from_bytes(h32(ALICE_SK));
        let bob = SecretKey::from_bytes(h32(BOB_SK));
        assert_eq!(alice.public_key().0, h32(ALICE_PK));
        assert_eq!(bob.public_key().0, h32(BOB_PK));
        let shared =
            x25519_dalek::StaticSecret::from(h32(ALICE_SK)).diffie_hellman(&x25519_dalek::PublicKey::from(h32(BOB_PK)));
        assert_eq!(shared.as_bytes(), &h32(SHARED));
        let k1 = beforenm(&PublicKey(h32(BOB_PK)), &alice).unwrap();
        let k2 = beforenm(&PublicKey(h32(ALICE_PK)), &bob).unwrap();
        assert_eq!(*k1, h32(BEFORENM));
        assert_eq!(*k2, h32(BEFORENM));
    }

    /// ZMTP.md §12.2: crypto_box_easy(message, nonce, bob pk, alice sk).
    #[test]
    fn kat_crypto_box_seal_and_open() {
        let alice = SecretKey::from_bytes(h32(ALICE_SK));
        let bob = SecretKey::from_bytes(h32(BOB_SK));
        let sealer = PrecomputedBox::new(&PublicKey(h32(BOB_PK)), &alice).unwrap();
        let mut buf = vec![0u8; 16];
        buf.extend_from_slice(&hex::decode(MESSAGE).unwrap());
        sealer.seal_box_in_place(&nonce(), &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), BOXED);

        // Same bytes from crypto_secretbox with k, and from crypto_box::SalsaBox.
        let sb = PrecomputedBox::from_key(&h32(BEFORENM));
        let mut buf2 = vec![0u8; 16];
        buf2.extend_from_slice(&hex::decode(MESSAGE).unwrap());
        sb.seal_box_in_place(&nonce(), &mut buf2).unwrap();
        assert_eq!(buf2, buf);
        {
            use crypto_box::aead::Aead;
            let salsa = crypto_box::SalsaBox::new(
                &crypto_box::PublicKey::from(h32(BOB_PK)),
                &crypto_box::SecretKey::from(h32(ALICE_SK)),
            );
            let ct =
                salsa.encrypt(GenericArray::from_slice(&nonce()), hex::decode(MESSAGE).unwrap().as_slice()).unwrap();
            assert_eq!(ct, buf);
        }

        let opener = PrecomputedBox::new(&PublicKey(h32(ALICE_PK)), &bob).unwrap();
        opener.open_box_in_place(&nonce(), &mut buf).unwrap();
        assert_eq!(hex::encode(&buf[16..]), MESSAGE);
    }

    /// Every single-bit flip of the KAT box fails the MAC (BadBox).
    #[test]
    fn kat_box_any_flip_is_bad_box() {
        let bob = SecretKey::from_bytes(h32(BOB_SK));
        let opener = PrecomputedBox::new(&PublicKey(h32(ALICE_PK)), &bob).unwrap();
        let boxed = hex::decode(BOXED).unwrap();
        for i in 0..boxed.len() {
            let mut b = boxed.clone();
            b[i] ^= 0x01;
            let before = b.clone();
            assert_eq!(opener.open_box_in_place(&nonce(), &mut b), Err(CurveError::BadBox), "byte {i}");
            assert_eq!(b, before, "failed open must not touch the buffer");
        }
        let mut short = [0u8; 15];
        assert_eq!(opener.open_box_in_place(&nonce(), &mut short), Err(CurveError::WrongSize));
    }

    /// ZMTP.md §12.2: the low-order public key makes beforenm fail.
    #[test]
    fn kat_low_order_key_is_weak() {
        let alice = SecretKey::from_bytes(h32(ALICE_SK));
        assert_eq!(PrecomputedBox::new(&PublicKey(h32(LOW_ORDER)), &alice).err(), Some(CurveError::WeakKey));
        assert_eq!(PrecomputedBox::new(&PublicKey([0; 32]), &alice).err(), Some(CurveError::WeakKey));
    }

    /// ZMTP.md §12.1: the standard test secrets yield their public keys.
    #[test]
    fn z85_test_keys_match() {
        let s = SecretKey::from_z85(b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
        assert_eq!(s.public_key(), PublicKey::from_z85(b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7").unwrap());
        let c = SecretKey::from_z85(b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs").unwrap();
        assert_eq!(c.public_key().to_string(), "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
    }

    #[test]
    fn secret_key_debug_hides_bytes() {
        let kp = KeyPair::from_secret(SecretKey::from_bytes([7; 32]));
        assert_eq!(format!("{:?}", kp.secret), "SecretKey(..)");
        assert!(!format!("{kp:?}").contains("7, 7"));
    }

    /// SecretKey implements ZeroizeOnDrop; zeroize() clears the bytes.
    #[test]
    fn secret_key_zeroizes() {
        fn assert_zod<T: ZeroizeOnDrop>() {}
        assert_zod::<SecretKey>();
        let mut s = SecretKey::from_bytes([9; 32]);
        s.zeroize();
        assert_eq!(s.as_bytes(), &[0u8; 32]);
    }
}
