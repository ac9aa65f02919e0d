#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]
//! libsodium's Salsa20 and Poly1305, the primitives under every MESSAGE box (ZMTP.md §7.1,
//! §7.9): the only `unsafe` code of the library, a few safe functions around
//! `libsodium-sys-stable` (libsodium 1.0.22 "stable", built from the signature-checked source
//! the crate ships, `--enable-minimal`).
//!
//! Why libsodium: RustCrypto's released `salsa20` is portable scalar code (its one-block SSE2
//! backend was removed in 0.11 for a counter bug) and its `poly1305` AVX2 backend costs ~1.5 µs
//! of set-up per message; libsodium picks, at `sodium_init`, a 16-block AVX-512, 8-block AVX2
//! or 4-block SSE2 Salsa20 and an SSE2 Poly1305 on x86-64 (5-8× RustCrypto's Salsa20 and 2×
//! its Poly1305 at 1–8 KiB, measured here) and runs its portable C (`ref`, `poly1305-donna`)
//! on ARM, where neither has NEON code. It is the library libzmq itself uses, so the MESSAGE
//! box costs at most what libzmq's does, minus libzmq's per-frame HSalsa20 and copies
//! ([`super::keys::PrefixedBox`]).
//!
//! Two choices by size, on x86-64 only (measured there; ARM runs libsodium's code as is):
//! libsodium's SIMD Salsa20 runs whole 512/1024-byte batches fast and a batch's remainder
//! block by block, so keystream is taken in 1 KiB batches (`BATCH`); and frames of at most
//! 64 bytes (VIP's header frames) get RustCrypto's portable Poly1305, which has no set-up.
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
use std::sync::atomic::{AtomicBool, Ordering};

use libsodium_sys as ffi;

/// Length of a Salsa20 key (the XSalsa20 subkey).
pub(super) const KEY_LEN: usize = 32;
/// Length of a Salsa20 nonce (the 8-byte tail of an XSalsa20 nonce).
pub(super) const NONCE8_LEN: usize = 8;
/// Length of a Poly1305 tag.
pub(super) const TAG_LEN: usize = 16;
/// Keystream bytes of block 0 that make the one-time Poly1305 key (the rest encrypts the
/// first message bytes).
const POLY_KEY_LEN: usize = 32;
/// A Salsa20 block.
const BLOCK: usize = 64;
/// Keystream bytes generated per call where libsodium has multi-block SIMD code (x86-64 with
/// AVX2 or AVX-512): it runs whole 512/1024-byte batches at about the cost of two single
/// blocks, and a batch's tail block by block (`viprouter` measured 960 bytes at 3-4× the
/// cost of 1024), so tails longer than [`TAIL_DIRECT`] are taken from a whole batch.
const BATCH: usize = 1024;
/// Longest tail XORed by libsodium directly (two blocks) rather than from a batch.
const TAIL_DIRECT: usize = 2 * BLOCK;
/// Longest message whose Poly1305 tag RustCrypto's portable code computes on x86-64:
/// libsodium's SSE2 code has a set-up that costs twice as much as the whole portable MAC for a
/// 16-byte frame (VIP's header frames); from 64 bytes on libsodium's is as fast or faster. On
/// ARM libsodium's own code (portable `donna`, no set-up) does every MAC.
const SMALL_MAC: usize = 64;
/// Whether [`SMALL_MAC`] applies on this target.
const SMALL_MAC_SOFT: bool = cfg!(target_arch = "x86_64");

/// Whether libsodium runs multi-block SIMD Salsa20 here (set by [`init`]).
static SIMD_BATCHES: AtomicBool = AtomicBool::new(false);

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
        // SAFETY: no arguments; reads the CPU features sodium_init detected.
        let avx2 = unsafe { ffi::sodium_runtime_has_avx2() } == 1;
        SIMD_BATCHES.store(cfg!(target_arch = "x86_64") && avx2, Ordering::Relaxed);
    });
}

/// Which Salsa20 and Poly1305 code the MESSAGE boxes run on this machine.
#[must_use]
pub fn backend() -> &'static str {
    init();
    if SIMD_BATCHES.load(Ordering::Relaxed) {
        // SAFETY: no arguments; reads the CPU features sodium_init detected.
        if unsafe { ffi::sodium_runtime_has_avx512f() } == 1 {
            return "libsodium salsa20 xmm6int-avx512 in 1 KiB batches; poly1305 sse2 (RustCrypto soft <= 64 B)";
        }
        return "libsodium salsa20 xmm6int-avx2 in 1 KiB batches; poly1305 sse2 (RustCrypto soft <= 64 B)";
    }
    if cfg!(target_arch = "x86_64") {
        return "libsodium salsa20 xmm6 (sse2); poly1305 sse2 (RustCrypto soft <= 64 B)";
    }
    "libsodium salsa20 ref; poly1305 donna (portable C)"
}

fn len(buf: &[u8]) -> c_ulonglong {
    // usize is at most 64 bits on every target we build.
    buf.len() as c_ulonglong
}

/// XORs `buf` in place with Salsa20(`key`, `nonce`) keystream from block `ic` on.
fn xor_from_block(buf: &mut [u8], key: &[u8; KEY_LEN], nonce: &[u8; NONCE8_LEN], ic: u64) {
    if buf.is_empty() {
        return;
    }
    let p = buf.as_mut_ptr();
    // SAFETY: c and m are the same buf.len() bytes (libsodium allows c == m); the nonce is the
    // 8 bytes and the key the 32 bytes libsodium reads.
    unsafe { ffi::crypto_stream_salsa20_xor_ic(p, p, len(buf), nonce.as_ptr(), ic, key.as_ptr()) };
}

/// XORs `buf` with `ks` (as many bytes as the shorter has).
fn xor(buf: &mut [u8], ks: &[u8]) {
    for (b, k) in buf.iter_mut().zip(ks) {
        *b ^= k;
    }
}

/// One message's keystream under Salsa20(`key`, `nonce`): the first batch (block 0 on, at
/// least one block) generated ahead, so that its first 32 bytes (the Poly1305 key) are known
/// before anything is decrypted. Wiped on drop.
struct Keystream<'k> {
    key: &'k [u8; KEY_LEN],
    nonce: [u8; NONCE8_LEN],
    /// Keystream bytes 0..32, the one-time Poly1305 key (kept apart: `apply` may reuse `batch`).
    poly_key: [u8; POLY_KEY_LEN],
    batch: [u8; BATCH],
    /// Bytes of `batch` generated (a multiple of [`BLOCK`]).
    used: usize,
    simd: bool,
}

impl<'k> Keystream<'k> {
    /// Generates keystream bytes `0..n` for a message of `msg_len` bytes: one block, or a
    /// whole batch where SIMD makes that cheaper than blocks.
    fn new(key: &'k [u8; KEY_LEN], nonce: [u8; NONCE8_LEN], msg_len: usize) -> Self {
        let simd = SIMD_BATCHES.load(Ordering::Relaxed);
        let used = if simd && POLY_KEY_LEN + msg_len > TAIL_DIRECT { BATCH } else { BLOCK };
        let mut ks = Keystream { key, nonce, poly_key: [0u8; POLY_KEY_LEN], batch: [0u8; BATCH], used, simd };
        let Keystream { batch, key, nonce, poly_key, .. } = &mut ks;
        xor_from_block(batch.get_mut(..used).unwrap_or_default(), key, nonce, 0);
        poly_key.copy_from_slice(batch.split_at(POLY_KEY_LEN).0);
        ks
    }

    /// XORs `buf` (the message) with keystream bytes `32..32 + buf.len()`.
    fn apply(&mut self, buf: &mut [u8]) {
        let in_first = self.used - POLY_KEY_LEN;
        let (head, rest) = buf.split_at_mut(buf.len().min(in_first));
        xor(head, self.batch.get(POLY_KEY_LEN..self.used).unwrap_or_default());
        let mut block = (self.used / BLOCK) as u64;
        let bulk_len = if self.simd { rest.len() - rest.len() % BATCH } else { rest.len() };
        let (bulk, tail) = rest.split_at_mut(bulk_len);
        xor_from_block(bulk, self.key, &self.nonce, block);
        block += (bulk.len() / BLOCK) as u64;
        if tail.len() <= TAIL_DIRECT {
            xor_from_block(tail, self.key, &self.nonce, block);
        } else {
            self.batch.fill(0);
            self.used = BATCH;
            xor_from_block(&mut self.batch, self.key, &self.nonce, block);
            xor(tail, &self.batch);
        }
    }
}

impl Drop for Keystream<'_> {
    fn drop(&mut self) {
        let used = self.batch.get_mut(..self.used).unwrap_or_default();
        // SAFETY: both are valid writable slices of their own lengths.
        unsafe {
            ffi::sodium_memzero(used.as_mut_ptr().cast(), used.len());
            ffi::sodium_memzero(self.poly_key.as_mut_ptr().cast(), POLY_KEY_LEN);
        }
    }
}

/// Poly1305 of `msg` under the one-time `key`.
fn mac(msg: &[u8], key: &[u8; POLY_KEY_LEN]) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    if SMALL_MAC_SOFT && msg.len() <= SMALL_MAC {
        use poly1305::universal_hash::KeyInit;
        let key = poly1305::Key::from_slice(key.as_slice());
        tag.copy_from_slice(&poly1305::Poly1305::new(key).compute_unpadded(msg));
    } else {
        // SAFETY: tag is 16 writable bytes, the message msg.len() bytes, the key 32 bytes.
        unsafe { ffi::crypto_onetimeauth_poly1305(tag.as_mut_ptr(), msg.as_ptr(), len(msg), key.as_ptr()) };
    }
    tag
}

/// NaCl secretbox, detached: encrypts `buf` in place under the XSalsa20 subkey `key` and the
/// nonce tail `nonce`, and returns the Poly1305 tag of the ciphertext.
pub(super) fn seal_detached(key: &[u8; KEY_LEN], nonce: &[u8; NONCE8_LEN], buf: &mut [u8]) -> [u8; TAG_LEN] {
    let mut ks = Keystream::new(key, *nonce, buf.len());
    ks.apply(buf);
    mac(buf, &ks.poly_key)
}

/// NaCl secretbox open, detached: verifies `tag` over the ciphertext `buf` (constant-time
/// compare) and only then decrypts it in place. Returns false, with `buf` unchanged, if the
/// tag does not verify.
#[must_use]
pub(super) fn open_detached(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE8_LEN],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    let mut ks = Keystream::new(key, *nonce, buf.len());
    let want = mac(buf, &ks.poly_key);
    // SAFETY: both pointers address 16 readable bytes.
    let ok = unsafe { ffi::crypto_verify_16(want.as_ptr(), tag.as_ptr()) } == 0;
    if ok {
        ks.apply(buf);
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
        let lens = (0..300usize).chain((300..3200).step_by(29)).chain([
            991,
            992,
            993,
            1023,
            1024,
            1055,
            1056,
            1057,
            2015,
            2016,
            2017,
            4095,
            8192,
            8193,
            65_536 + 7,
        ]);
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
            bad_tag[i % 16] ^= 1 << (i % 8);
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
