#![allow(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
//! libsodium's Salsa20 and Poly1305, the primitives under every MESSAGE box (ZMTP.md §7.1,
//! §7.9): the only `unsafe` code of the library, a few safe functions around
//! `libsodium-sys-stable` (libsodium 1.0.22 "stable", built from the signature-checked source
//! the crate ships, `--enable-minimal`).
//!
//! Why libsodium: RustCrypto's released `salsa20` is portable scalar code (its one-block SSE2
//! backend was removed in 0.11 for a counter bug) and its `poly1305` AVX2 backend costs ~1.5 µs
//! of set-up per message; libsodium picks, at `sodium_init`, an 8-block AVX2 or 4-block SSE2
//! Salsa20 and an SSE2 Poly1305 on x86-64 (3-5× faster at 1–8 KiB here) and runs its portable
//! C (`ref`, `poly1305-donna`) on ARM. It is the library libzmq itself uses, so the MESSAGE
//! box costs what libzmq's does, minus libzmq's per-frame HSalsa20 and copies
//! ([`super::keys::PrefixedBox`]).
//!
//! Only *primitives* are called here; the secretbox layout around them is NaCl's
//! (`crypto_secretbox_detached` in libsodium's `secretbox_easy.c`): keystream block 0 under
//! the XSalsa20 subkey gives the one-time Poly1305 key (its first 32 bytes) and encrypts the
//! first 32 message bytes (its last 32); blocks 1… encrypt the rest; the tag is Poly1305 of
//! the ciphertext. Byte equality with libsodium's `crypto_secretbox_detached` and with
//! RustCrypto's XSalsa20-Poly1305 is tested (`tests` below, `keys::tests`).
//!
//! Every function here is safe to call with any arguments: lengths come from the slices,
//! libsodium accepts in-place (`c == m`) stream XOR, and nothing here allocates.

use core::ffi::c_ulonglong;
use std::sync::Once;

use libsodium_sys as ffi;
use zeroize::Zeroizing;

/// Length of a Salsa20 key (the XSalsa20 subkey).
pub(super) const KEY_LEN: usize = 32;
/// Length of a Salsa20 nonce (the 8-byte tail of an XSalsa20 nonce).
pub(super) const NONCE8_LEN: usize = 8;
/// Length of a Poly1305 tag.
pub(super) const TAG_LEN: usize = 16;
/// Bytes of keystream block 0 that encrypt message bytes (the rest is the Poly1305 key).
const BLOCK0_MSG: usize = 32;

/// `sodium_init()`, once per process: selects libsodium's fastest implementations for this
/// CPU. Before it libsodium runs its portable (or, on x86-64, SSE) code, which is correct but
/// slower, so a failure (-1, no entropy source for its RNG, which we do not use) changes speed
/// only.
pub(super) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: no arguments; libsodium documents sodium_init as thread-safe and idempotent.
        let rc = unsafe { ffi::sodium_init() };
        if rc < 0 {
            log::warn!("sodium_init failed ({rc}): CURVE uses libsodium's portable code");
        }
    });
}

/// Which Salsa20 libsodium runs on this build (for `--print-limits`-style reports and tests).
#[must_use]
pub fn backend() -> &'static str {
    init();
    if cfg!(target_arch = "x86_64") {
        // SAFETY: no arguments; reads the CPU features sodium_init detected.
        if unsafe { ffi::sodium_runtime_has_avx2() } == 1 {
            return "libsodium salsa20 xmm6int-avx2, poly1305 sse2";
        }
        return "libsodium salsa20 xmm6 (sse2), poly1305 sse2";
    }
    "libsodium salsa20 ref, poly1305 donna (portable C)"
}

fn len(buf: &[u8]) -> c_ulonglong {
    // usize is at most 64 bits on every target we build.
    buf.len() as c_ulonglong
}

/// Keystream bytes `0..64` (block 0) of Salsa20(`key`, `nonce`).
fn block0(key: &[u8; KEY_LEN], nonce: &[u8; NONCE8_LEN]) -> Zeroizing<[u8; 64]> {
    let mut out = Zeroizing::new([0u8; 64]);
    // SAFETY: out is 64 writable bytes (clen = 64); nonce and key have the sizes libsodium reads.
    unsafe { ffi::crypto_stream_salsa20(out.as_mut_ptr(), 64, nonce.as_ptr(), key.as_ptr()) };
    out
}

/// XORs `buf` in place with Salsa20(`key`, `nonce`) keystream from block `ic` on.
fn xor_from_block(buf: &mut [u8], key: &[u8; KEY_LEN], nonce: &[u8; NONCE8_LEN], ic: u64) {
    if buf.is_empty() {
        return;
    }
    let p = buf.as_mut_ptr();
    // SAFETY: c and m are the same buf.len() bytes (libsodium allows c == m); sizes as above.
    unsafe { ffi::crypto_stream_salsa20_xor_ic(p, p, len(buf), nonce.as_ptr(), ic, key.as_ptr()) };
}

/// XORs the first (at most 32) bytes of `head` with keystream bytes 32.. of block 0.
fn xor_head(head: &mut [u8], block0: &[u8; 64]) {
    let (_, ks) = block0.split_at(BLOCK0_MSG);
    for (b, k) in head.iter_mut().zip(ks) {
        *b ^= k;
    }
}

/// Splits `buf` into the bytes block 0 encrypts and the rest.
fn split_head(buf: &mut [u8]) -> (&mut [u8], &mut [u8]) {
    let at = buf.len().min(BLOCK0_MSG);
    buf.split_at_mut(at)
}

fn poly_key(block0: &[u8; 64]) -> &[u8] {
    block0.split_at(BLOCK0_MSG).0
}

/// NaCl secretbox, detached: encrypts `buf` in place under the XSalsa20 subkey `key` and the
/// nonce tail `nonce`, and returns the Poly1305 tag of the ciphertext.
pub(super) fn seal_detached(key: &[u8; KEY_LEN], nonce: &[u8; NONCE8_LEN], buf: &mut [u8]) -> [u8; TAG_LEN] {
    let b0 = block0(key, nonce);
    let (head, rest) = split_head(buf);
    xor_head(head, &b0);
    xor_from_block(rest, key, nonce, 1);
    let mut tag = [0u8; TAG_LEN];
    // SAFETY: tag is 16 writable bytes; the message is buf (inlen = its length); the key is
    // the 32 bytes poly_key returns.
    unsafe { ffi::crypto_onetimeauth_poly1305(tag.as_mut_ptr(), buf.as_ptr(), len(buf), poly_key(&b0).as_ptr()) };
    tag
}

/// NaCl secretbox open, detached: verifies `tag` over the ciphertext `buf` (constant time)
/// and only then decrypts it in place. Returns false, with `buf` unchanged, if the tag does
/// not verify.
#[must_use]
pub(super) fn open_detached(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE8_LEN],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    let b0 = block0(key, nonce);
    // SAFETY: tag is 16 readable bytes, the message is buf, the key 32 bytes (as in seal).
    let ok = unsafe {
        ffi::crypto_onetimeauth_poly1305_verify(tag.as_ptr(), buf.as_ptr(), len(buf), poly_key(&b0).as_ptr())
    } == 0;
    if ok {
        let (head, rest) = split_head(buf);
        xor_head(head, &b0);
        xor_from_block(rest, key, nonce, 1);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// libsodium's own `crypto_secretbox_detached` under the full 24-byte nonce `prefix ‖ tail`.
    fn libsodium_secretbox(k: &[u8; 32], nonce24: &[u8; 24], msg: &[u8]) -> (Vec<u8>, [u8; 16]) {
        let mut c = vec![0u8; msg.len()];
        let mut mac = [0u8; 16];
        // SAFETY: c has msg.len() bytes, mac 16, nonce 24, key 32.
        let rc = unsafe {
            ffi::crypto_secretbox_detached(
                c.as_mut_ptr(),
                mac.as_mut_ptr(),
                msg.as_ptr(),
                len(msg),
                nonce24.as_ptr(),
                k.as_ptr(),
            )
        };
        assert_eq!(rc, 0);
        (c, mac)
    }

    fn subkey(k: &[u8; 32], prefix: &[u8; 16]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: out 32, in 16, key 32; a NULL constant means Salsa20's "expand 32-byte k".
        unsafe { ffi::crypto_core_hsalsa20(out.as_mut_ptr(), prefix.as_ptr(), k.as_ptr(), core::ptr::null()) };
        out
    }

    /// seal/open with a pre-derived subkey are byte-equal to libsodium's crypto_secretbox
    /// under the full nonce, for every length 0..300 and a spread of longer ones (block
    /// boundaries, the 32-byte head, libsodium's 512-byte AVX2 batches).
    #[test]
    fn composition_equals_libsodium_secretbox() {
        init();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let lens = (0..300usize).chain([511, 512, 513, 1023, 1024, 4095, 8192, 8193, 65_536 + 7]);
        for (i, n) in lens.enumerate() {
            let mut k = [0u8; 32];
            let mut nonce24 = [0u8; 24];
            rng.fill_bytes(&mut k);
            rng.fill_bytes(&mut nonce24);
            let mut msg = vec![0u8; n];
            rng.fill_bytes(&mut msg);
            let (prefix, tail) = nonce24.split_at(16);
            let sk = subkey(&k, prefix.try_into().unwrap());
            let tail: [u8; 8] = tail.try_into().unwrap();
            let (want_c, want_tag) = libsodium_secretbox(&k, &nonce24, &msg);
            let mut buf = msg.clone();
            let tag = seal_detached(&sk, &tail, &mut buf);
            assert_eq!((buf.as_slice(), tag), (want_c.as_slice(), want_tag), "case {i} len {n}");
            let mut bad = buf.clone();
            let mut bad_tag = tag;
            bad_tag[(i % 16) as usize] ^= 1 << (i % 8);
            assert!(!open_detached(&sk, &tail, &mut bad, &bad_tag));
            assert_eq!(bad, buf, "a failed open leaves the buffer unchanged");
            assert!(open_detached(&sk, &tail, &mut buf, &tag));
            assert_eq!(buf, msg);
        }
    }

    #[test]
    fn backend_is_named() {
        assert!(backend().starts_with("libsodium"));
    }
}
