//! The CURVE server state machine for one connection (ZMTP.md §7.4–§7.9,
//! recipe §7.12; RFC 26 server side).
//!
//! ```text
//! ExpectHello --HELLO/WELCOME--> ExpectInitiate --INITIATE--> AwaitDecision
//!   --send_ready--> Traffic          any error --> Failed (close the connection)
//! ```
//! Before INITIATE the connection keeps only public values: the client's
//! transient key `C'`, the HELLO short nonce and the cookie nonce `Kn` it
//! issued. The server transient secret `s'` exists only inside the cookie
//! (sealed under the global [`CookieKeys`]) until INITIATE brings it back.

use core::ops::Range;

use rand_core::CryptoRngCore;

use super::CurveError;
use super::cookie::{COOKIE_NONCE_RANDOM_LEN, CookieKeys};
use super::keys::{KEY_LEN, KeyPair, PrecomputedBox, PublicKey, SecretKey, TAG_LEN};
use super::message::{Channel, Traffic};
use super::nonce::{
    HELLO_PREFIX, INITIATE_PREFIX, MESSAGE_C_PREFIX, MESSAGE_S_PREFIX, READY_PREFIX, RecvCounter, SendCounter,
    VOUCH_PREFIX, WELCOME_PREFIX, long_nonce, short_nonce,
};
use super::wire::{
    self, COOKIE_LEN, HELLO, HELLO_BOX_AT, HELLO_CLIENT_KEY_AT, HELLO_LEN, HELLO_NONCE_AT, HELLO_PADDING_AT,
    HELLO_PADDING_LEN, HELLO_VERSION_AT, INITIATE, INITIATE_BOX_AT, INITIATE_COOKIE_AT, INITIATE_METADATA_AT,
    INITIATE_MIN_LEN, INITIATE_NONCE_AT, READY, READY_MIN_LEN, VOUCH_LEN, WELCOME, WELCOME_LEN,
};
use crate::zmtp::command;
use crate::zmtp::frame::FrameHeader;

/// Length of the complete WELCOME frame `handle_command` appends for a HELLO.
pub const WELCOME_FRAME_LEN: usize = FrameHeader::frame_len(WELCOME_LEN);

/// What [`CurveServer::handle_command`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// HELLO was valid; a WELCOME frame was appended to `out`.
    WelcomeSent,
    /// INITIATE was valid (cookie, box and vouch all verified). Nothing was
    /// appended. Authorize `client_key`, parse the metadata, then call
    /// [`CurveServer::send_ready`] or [`CurveServer::send_error`].
    Initiated {
        /// The client's long-term public key `C` (for ZAP / the allow-list).
        client_key: PublicKey,
        /// Where the client's metadata (ZMTP.md §4.2) is, decrypted, within
        /// the INITIATE `body` passed in.
        metadata: Range<usize>,
    },
}

#[derive(Debug)]
enum State {
    ExpectHello,
    ExpectInitiate { client_transient: PublicKey, cookie_nonce: [u8; 16], hello_nonce: u64 },
    AwaitDecision(Channel),
    Traffic(Channel),
    Failed,
}

/// Server side of CURVE for one connection. Holds no secret per client
/// before a valid INITIATE.
#[derive(Debug)]
pub struct CurveServer {
    state: State,
}

impl Default for CurveServer {
    fn default() -> Self {
        Self::new()
    }
}

impl CurveServer {
    /// A server waiting for HELLO.
    #[must_use]
    pub fn new() -> Self {
        CurveServer { state: State::ExpectHello }
    }

    /// True once READY was sent (MESSAGE traffic may flow).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Traffic(_))
    }

    /// Handles one complete handshake command body (starting with the
    /// name-length byte). HELLO → appends a WELCOME frame
    /// ([`WELCOME_FRAME_LEN`] bytes) to `out`. INITIATE → decrypts in place
    /// and returns [`ServerStep::Initiated`]; appends nothing.
    ///
    /// Consumes from `rng` on HELLO: 32 bytes `s'`, 16 bytes `Wn`, 12 bytes
    /// of `Kn`. Any error moves the server to a failed state: close the
    /// connection silently (no ERROR, ZMTP.md §7.12).
    ///
    /// # Errors
    /// See [`CurveError`]; [`CurveError::Failed`] after an earlier error.
    pub fn handle_command(
        &mut self,
        body: &mut [u8],
        long_term: &KeyPair,
        cookies: &CookieKeys,
        out: &mut Vec<u8>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<ServerStep, CurveError> {
        let state = core::mem::replace(&mut self.state, State::Failed);
        let result = match state {
            State::ExpectHello => self.on_hello(body, long_term, cookies, out, rng),
            State::ExpectInitiate { client_transient, cookie_nonce, hello_nonce } => {
                self.on_initiate(body, long_term, cookies, &client_transient, &cookie_nonce, hello_nonce)
            }
            State::AwaitDecision(_) | State::Traffic(_) => Err(CurveError::UnexpectedCommand),
            State::Failed => Err(CurveError::Failed),
        };
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn on_hello(
        &mut self,
        body: &mut [u8],
        long_term: &KeyPair,
        cookies: &CookieKeys,
        out: &mut Vec<u8>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<ServerStep, CurveError> {
        wire::expect_command(body, HELLO)?;
        if body.len() != HELLO_LEN {
            return Err(CurveError::WrongSize);
        }
        if wire::array_at::<2>(body, HELLO_VERSION_AT)? != [1, 0] {
            return Err(CurveError::BadVersion);
        }
        let padding = body.get(HELLO_PADDING_AT..HELLO_PADDING_AT + HELLO_PADDING_LEN).ok_or(CurveError::WrongSize)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(CurveError::BadCommand);
        }
        let client_transient = PublicKey(wire::array_at(body, HELLO_CLIENT_KEY_AT)?);
        let hello_nonce = wire::u64_at(body, HELLO_NONCE_AT)?;
        // Box[64 zeros](C' -> S); the same key (C', s) seals WELCOME.
        let hello_box = PrecomputedBox::new(&client_transient, &long_term.secret)?;
        let boxed = body.get_mut(HELLO_BOX_AT..).ok_or(CurveError::WrongSize)?;
        hello_box.open_box_in_place(&short_nonce(HELLO_PREFIX, hello_nonce), boxed)?;
        if boxed.iter().skip(TAG_LEN).any(|&b| b != 0) {
            return Err(CurveError::BadCommand);
        }

        // Fresh transient pair and nonces; s' leaves only inside the cookie.
        let server_transient = SecretKey::generate(rng);
        let mut welcome_nonce = [0u8; 16];
        rng.fill_bytes(&mut welcome_nonce);
        let mut cookie_tail = [0u8; COOKIE_NONCE_RANDOM_LEN];
        rng.fill_bytes(&mut cookie_tail);
        let cookie = cookies.seal(&client_transient, &server_transient, &cookie_tail)?;
        let server_transient_public = server_transient.public_key();
        drop(server_transient);

        let start = out.len();
        wire::emit_command_start(WELCOME, WELCOME_LEN, out);
        out.extend_from_slice(&welcome_nonce);
        let box_at = out.len();
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.extend_from_slice(&server_transient_public.0);
        out.extend_from_slice(&cookie);
        let sealed = match out.get_mut(box_at..) {
            Some(b) => hello_box.seal_box_in_place(&long_nonce(WELCOME_PREFIX, &welcome_nonce), b),
            None => Err(CurveError::WrongSize),
        };
        if let Err(e) = sealed {
            out.truncate(start);
            return Err(e);
        }

        let mut cookie_nonce = [0u8; 16];
        cookie_nonce.copy_from_slice(cookie.get(..16).ok_or(CurveError::WrongSize)?);
        self.state = State::ExpectInitiate { client_transient, cookie_nonce, hello_nonce };
        Ok(ServerStep::WelcomeSent)
    }

    fn on_initiate(
        &mut self,
        body: &mut [u8],
        long_term: &KeyPair,
        cookies: &CookieKeys,
        client_transient: &PublicKey,
        cookie_nonce: &[u8; 16],
        hello_nonce: u64,
    ) -> Result<ServerStep, CurveError> {
        // libzmq process_initiate order: prefix, size, cookie, nonce, box, vouch.
        wire::expect_command(body, INITIATE)?;
        if body.len() < INITIATE_MIN_LEN {
            return Err(CurveError::WrongSize);
        }
        let cookie: [u8; COOKIE_LEN] = wire::array_at(body, INITIATE_COOKIE_AT)?;
        // Must be the cookie this connection issued (defeats replay of a
        // captured HELLO+INITIATE on a new connection while K is still valid).
        if cookie.get(..16) != Some(&cookie_nonce[..]) {
            return Err(CurveError::BadCookie);
        }
        let (cookie_client, server_transient) = cookies.open(&cookie)?;
        if cookie_client != *client_transient {
            return Err(CurveError::BadCookie);
        }
        let n = wire::u64_at(body, INITIATE_NONCE_AT)?;
        if n <= hello_nonce {
            return Err(CurveError::NonceNotIncreasing);
        }

        // k = beforenm(C', s') opens INITIATE and serves READY and MESSAGEs.
        let session = PrecomputedBox::new(client_transient, &server_transient)?;
        let boxed = body.get_mut(INITIATE_BOX_AT..).ok_or(CurveError::WrongSize)?;
        session.open_box_in_place(&short_nonce(INITIATE_PREFIX, n), boxed)?;

        // Plaintext: C (32) ‖ Vn (16) ‖ vouch (80) ‖ metadata.
        let plain_at = INITIATE_BOX_AT + TAG_LEN;
        let client_key = PublicKey(wire::array_at(body, plain_at)?);
        let vouch_nonce: [u8; 16] = wire::array_at(body, plain_at + KEY_LEN)?;
        let vouch_at = plain_at + KEY_LEN + 16;
        let vouch_box = PrecomputedBox::new(&client_key, &server_transient)?;
        drop(server_transient);
        let vouch = body.get_mut(vouch_at..vouch_at + VOUCH_LEN).ok_or(CurveError::WrongSize)?;
        vouch_box
            .open_box_in_place(&long_nonce(VOUCH_PREFIX, &vouch_nonce), vouch)
            .map_err(|_| CurveError::BadVouch)?;
        // The vouch binds C' to C (it opened with C) and to S (checked here;
        // libzmq checks only C').
        let vouched_transient: [u8; KEY_LEN] = wire::array_at(vouch, TAG_LEN)?;
        let vouched_server: [u8; KEY_LEN] = wire::array_at(vouch, TAG_LEN + KEY_LEN)?;
        if vouched_transient != client_transient.0 || vouched_server != long_term.public.0 {
            return Err(CurveError::BadVouch);
        }

        let mut recv = RecvCounter::new();
        recv.accept(n);
        self.state =
            State::AwaitDecision(Channel::new(session, SendCounter::new(), recv, MESSAGE_S_PREFIX, MESSAGE_C_PREFIX));
        Ok(ServerStep::Initiated { client_key, metadata: INITIATE_METADATA_AT..body.len() })
    }

    /// Length of the complete READY frame [`Self::send_ready`] appends for
    /// `metadata_len` bytes of metadata.
    #[must_use]
    pub const fn ready_frame_len(metadata_len: usize) -> usize {
        FrameHeader::frame_len(READY_MIN_LEN.saturating_add(metadata_len))
    }

    /// After a positive auth decision: appends READY (boxed under `k` with
    /// server short nonce 1) carrying `metadata` (already encoded as ZMTP
    /// metadata, ZMTP.md §4.2) and enters the traffic phase.
    ///
    /// # Errors
    /// [`CurveError::WrongState`] unless INITIATE was just accepted.
    pub fn send_ready(&mut self, metadata: &[u8], out: &mut Vec<u8>) -> Result<(), CurveError> {
        let State::AwaitDecision(channel) = &mut self.state else {
            return Err(CurveError::WrongState);
        };
        let n = channel.take_send_nonce()?;
        let start = out.len();
        wire::emit_command_start(READY, READY_MIN_LEN.saturating_add(metadata.len()), out);
        out.extend_from_slice(&n.to_be_bytes());
        let box_at = out.len();
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.extend_from_slice(metadata);
        let sealed = match out.get_mut(box_at..) {
            Some(b) => channel.key().seal_box_in_place(&short_nonce(READY_PREFIX, n), b),
            None => Err(CurveError::WrongSize),
        };
        if let Err(e) = sealed {
            out.truncate(start);
            self.state = State::Failed;
            return Err(e);
        }
        if let State::AwaitDecision(channel) = core::mem::replace(&mut self.state, State::Failed) {
            self.state = State::Traffic(channel);
        }
        Ok(())
    }

    /// Appends an ERROR command frame in clear (ZMTP.md §4.5, §7.8), e.g.
    /// reason `b"400"` for a denied client key. Reasons over 255 bytes are
    /// truncated. Send it only for permanent rejections, then close.
    pub fn send_error(reason: &[u8], out: &mut Vec<u8>) {
        command::emit_error(reason, out);
    }
}

impl Traffic for CurveServer {
    fn channel(&mut self) -> Result<&mut Channel, CurveError> {
        match &mut self.state {
            State::Traffic(channel) => Ok(channel),
            _ => Err(CurveError::WrongState),
        }
    }
}
