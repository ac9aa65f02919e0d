//! The CURVE security mechanism (RFC 25 → RFC 26 CurveZMQ), sans-IO, as
//! libzmq 4.3 speaks it (ZMTP.md §7).
//!
//! Pure code: bytes in, bytes out. No `std::io`, sockets or clocks (time
//! arrives as `now_ms`), and randomness arrives as `&mut impl CryptoRngCore`
//! so tests can script it. Primitives come from vetted libraries (X25519 from
//! `x25519-dalek`, HSalsa20/XSalsa20-Poly1305 from RustCrypto's
//! `crypto_secretbox`, the MESSAGE path's Salsa20/Poly1305 from libsodium);
//! only the protocol is written here.
//!
//! | file | noun | spec |
//! |---|---|---|
//! | [`keys`] | long-term and transient keys, precomputed box | ZMTP.md §7.1, §7.2, §11.2 |
//! | [`nonce`] | nonce prefixes, short-nonce counters | ZMTP.md §7.3 |
//! | [`wire`] | command layouts (frame and command codec: [`crate::zmtp::frame`], [`crate::zmtp::command`]) | ZMTP.md §7.4–§7.9 |
//! | [`cookie`] | WELCOME cookie, rotating cookie keys | ZMTP.md §7.5, §7.12 |
//! | [`message`] | MESSAGE traffic channel, inner flags, [`Traffic`] | ZMTP.md §7.9, §3.3 |
//! | [`sodium`] | libsodium's Salsa20 + Poly1305 under the MESSAGE box (the one `unsafe` module) | ZMTP.md §7.1 |
//! | [`server`] | [`CurveServer`] state machine | ZMTP.md §7.12 |
//! | [`client`] | [`CurveClient`] state machine | ZMTP.md §7.11 |
//!
//! # Handshake (ZMTP.md §7.11)
//! ```text
//! C→S  HELLO     200 B   C', nonce 1, Box[0^64](C'->S)
//! S→C  WELCOME   168 B   Wn, Box[S' ‖ cookie](S->C');  cookie = Kn ‖ SecretBox[C' ‖ s'](K)
//! C→S  INITIATE  257+M   cookie, nonce 2, Box[C ‖ Vn ‖ Box[C' ‖ S](C->S') ‖ metadata](C'->S')
//! S→C  READY     30+M    nonce 1, Box[metadata](S'->C')
//! both MESSAGE   33+N    nonce, Box[flags ‖ payload](k)   (outer frame flags 0x00/0x02)
//! ```
//!
//! # Integration (server side)
//! * Keep one [`CookieKeys`] for the whole server; call
//!   [`CookieKeys::rotate_if_due`] (or [`CookieKeys::rotate`] every
//!   [`cookie::COOKIE_ROTATE_MS`]) from the timer path.
//! * Per connection, a [`CurveServer`]. Feed it each complete command frame
//!   body during the handshake. Reserve [`server::WELCOME_FRAME_LEN`] for the
//!   HELLO reply, [`CurveServer::ready_frame_len`] for READY and
//!   [`message::sealed_frame_len`] per outgoing frame.
//! * Client side ([`CurveClient`]): reserve [`client::HELLO_FRAME_LEN`],
//!   then [`CurveClient::initiate_frame_len`]; the same seal/open API ([`Traffic`]).
//! * On any `Err`: close silently (ERROR only for auth denials, via
//!   [`CurveServer::send_error`]). See [`CurveError`].
//!
//! # Security notes
//! Each rule names the unit test(s) that enforce it.
//!
//! 1. **HELLO has its exact size (200 bytes).** Any other size is
//!    [`CurveError::WrongSize`] before any crypto.
//!    Tests: `tests::hello_199_and_201_bytes_wrong_size`.
//! 2. **WELCOME ≤ HELLO (anti-amplification).** An unauthenticated HELLO
//!    yields at most 168 bytes (170 framed) for its 200 (202 framed), and
//!    nothing at all unless the HELLO box opened with our long-term key.
//!    Tests: `wire::tests::welcome_not_larger_than_hello`,
//!    `tests::welcome_smaller_than_hello_on_the_wire`,
//!    `tests::wrong_server_key_bad_box`.
//! 3. **No per-client secret state before a valid INITIATE (cookie).** The
//!    server seals `C' ‖ s'` into the cookie under the global cookie key and
//!    drops `s'`; until INITIATE the connection keeps only public values
//!    (`C'`, HELLO nonce, the `Kn` it issued). INITIATE must carry exactly
//!    the cookie this connection issued, for the `C'` of its HELLO.
//!    Tests: `tests::flipped_byte_in_initiate_specific_errors`,
//!    `tests::replayed_initiate_on_new_connection_bad_cookie`,
//!    `cookie::tests::cookie_any_flip_rejected`.
//! 4. **Cookie keys rotate.** [`CookieKeys`] accepts the current and the
//!    previous key only; a cookie from before two rotations is
//!    [`CurveError::CookieExpired`]. Tests:
//!    `tests::initiate_after_two_rotations_cookie_expired`,
//!    `tests::initiate_after_one_rotation_ok`,
//!    `cookie::tests::cookie_expires_after_two_rotations`,
//!    `cookie::tests::rotate_if_due_uses_interval`.
//! 5. **Short nonces strictly increase, per direction.** Counters start at 1
//!    and are shared by handshake and traffic; a received nonce must exceed
//!    the last accepted one (INITIATE's must exceed HELLO's), and is recorded
//!    only after its MAC verified; the sender refuses to wrap; the
//!    direction-specific prefixes stop reflection. Replayed HELLO/INITIATE on
//!    the same connection are [`CurveError::UnexpectedCommand`].
//!    Tests: `tests::message_nonce_not_increasing`,
//!    `tests::reflected_message_bad_box`, `tests::replayed_hello_and_initiate`,
//!    `tests::nonce_exhaustion_refuses_to_wrap`,
//!    `nonce::tests::recv_counter_strictly_increasing_gaps_allowed`,
//!    `nonce::tests::send_counter_starts_at_one_and_never_wraps`.
//! 6. **The vouch binds `C'` to `C` and to `S`.** The vouch must open with
//!    (`C`, `s'`) and contain exactly `C'` of this handshake and our `S`
//!    (libzmq checks only `C'`). Tests: `tests::vouch_for_other_transient_bad_vouch`,
//!    `tests::vouch_for_other_server_bad_vouch`,
//!    `tests::vouch_signed_by_other_key_bad_vouch`.
//! 7. **Decrypt into caller buffers, in place.** INITIATE, READY and MESSAGE
//!    are decrypted inside the `body` slice the caller passed (results are
//!    ranges into it); sealing appends into the caller's `Vec` and encrypts
//!    there, allocating only if the caller reserved too little. The cookie
//!    plaintext (which holds `s'`) only lives in a zeroizing stack buffer.
//!    Tests: `tests::seal_and_open_do_not_reallocate`,
//!    `tests::transcript_messages_open_in_place`.
//! 8. **Secrets are zeroized on drop.** [`SecretKey`] is `ZeroizeOnDrop`;
//!    precomputed box keys and cookie keys are wiped by `crypto_secretbox`'s
//!    `Drop`; transient secrets are dropped as soon as `k` is computed; no
//!    `Debug` prints secret bytes. Tests: `keys::tests::secret_key_zeroizes`,
//!    `keys::tests::secret_key_debug_hides_bytes`.
//! 9. **MACs are never bypassed.** There is no code path (test or fuzz
//!    switch) that skips a Poly1305 check; any flipped bit in any box fails;
//!    low-order public keys are refused ([`CurveError::WeakKey`]) as
//!    libsodium does. Tests: `keys::tests::kat_box_any_flip_is_bad_box`,
//!    `keys::tests::kat_low_order_key_is_weak`,
//!    `tests::flipped_byte_in_hello_specific_errors`,
//!    `tests::flipped_byte_in_welcome_specific_errors`,
//!    `tests::flipped_byte_in_ready_specific_errors`,
//!    `tests::flipped_byte_in_message_specific_errors`.
//! 10. **Only vetted primitives, composed as NaCl composes them.** X25519 is
//!     `x25519-dalek`; HSalsa20 and the handshake boxes are RustCrypto's
//!     (`crypto_secretbox`); the MESSAGE boxes run libsodium's Salsa20 and
//!     Poly1305 ([`sodium`]) in libsodium's own secretbox layout. The one
//!     rearrangement: MESSAGE nonces share a fixed 16-byte prefix per direction,
//!     so [`keys::PrefixedBox`] derives the XSalsa20 subkey `HSalsa20(k, prefix)`
//!     once per connection and runs Salsa20 with it (XSalsa20's definition).
//!     Tests: `keys::tests::prefixed_box_equals_xsalsa20poly1305` (byte-equal to
//!     RustCrypto's XSalsa20-Poly1305 under the full nonce),
//!     `sodium::tests::composition_equals_libsodium_secretbox` (byte-equal to
//!     libsodium's `crypto_secretbox_detached`), `tests::transcript_*`.
//!
//! Interop: byte-exact against the ZMTP.md §12.3 transcript
//! (`tests::transcript_*`) and §12.2 NaCl KATs (`keys::tests::kat_*`); live
//! against libzmq 4.3.5 in both roles in `tests/curve_pyzmq.rs` (skips when
//! pyzmq is absent).
//!
//! Deviations from libzmq, all stricter: HELLO padding and signature must be
//! zero; INITIATE's nonce must exceed HELLO's; the vouch must also name `S`;
//! low-order keys are refused. `Kn` carries the cookie-key epoch in its first
//! 4 bytes (see [`cookie`]); peers treat the cookie as opaque.

use core::fmt;

pub mod client;
pub mod cookie;
pub mod keys;
pub mod message;
pub mod nonce;
pub mod server;
pub mod sodium;
pub mod wire;

pub use client::{ClientStep, CurveClient};
pub use cookie::{COOKIE_ROTATE_MS, CookieKeys};
pub use keys::{KeyPair, PublicKey, SecretKey};
pub use message::{Channel, INNER_COMMAND, INNER_FLAGS_MASK, INNER_MORE, Traffic};
pub use server::{CurveServer, ServerStep};

/// Why a CURVE command or message was refused. Every variant means "close
/// the connection"; none is worth an ERROR command except an auth denial,
/// which is decided outside this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurveError {
    /// Malformed command: empty body, bad name length, non-zero HELLO
    /// padding or signature.
    BadCommand,
    /// A well-formed command that is not valid in the current state.
    UnexpectedCommand,
    /// A command of the right kind with the wrong size (HELLO ≠ 200,
    /// WELCOME ≠ 168, INITIATE < 257, READY < 30, MESSAGE < 33).
    WrongSize,
    /// HELLO version is not 1.0.
    BadVersion,
    /// A box (HELLO, WELCOME, INITIATE, READY, MESSAGE) failed its MAC.
    BadBox,
    /// The INITIATE cookie is not the one issued on this connection, or
    /// failed its MAC.
    BadCookie,
    /// The INITIATE cookie was sealed under a key older than the previous
    /// one (more than two rotations ago).
    CookieExpired,
    /// The vouch failed its MAC or does not bind `C'` and `S`.
    BadVouch,
    /// A short nonce did not exceed the last accepted one.
    NonceNotIncreasing,
    /// Our short-nonce counter would wrap: close the connection.
    NonceExhausted,
    /// A public key of low order (all-zero X25519 result).
    WeakKey,
    /// The peer sent ERROR during the handshake (reason:
    /// [`crate::zmtp::command::error_body_reason`] on the same body).
    ErrorReceived,
    /// API misuse: the call is not valid in this state (e.g. sealing before
    /// READY).
    WrongState,
    /// An earlier error already failed this mechanism.
    Failed,
}

impl fmt::Display for CurveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CurveError::BadCommand => "CURVE: malformed command",
            CurveError::UnexpectedCommand => "CURVE: unexpected command",
            CurveError::WrongSize => "CURVE: command has the wrong size",
            CurveError::BadVersion => "CURVE: unsupported CurveZMQ version",
            CurveError::BadBox => "CURVE: box failed authentication",
            CurveError::BadCookie => "CURVE: invalid cookie",
            CurveError::CookieExpired => "CURVE: cookie expired",
            CurveError::BadVouch => "CURVE: invalid vouch",
            CurveError::NonceNotIncreasing => "CURVE: short nonce not increasing",
            CurveError::NonceExhausted => "CURVE: short nonce exhausted",
            CurveError::WeakKey => "CURVE: low-order public key",
            CurveError::ErrorReceived => "CURVE: peer sent ERROR",
            CurveError::WrongState => "CURVE: call not valid in this state",
            CurveError::Failed => "CURVE: mechanism already failed",
        })
    }
}

impl std::error::Error for CurveError {}

#[cfg(test)]
mod tests;
