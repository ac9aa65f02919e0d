//! The CURVE client state machine for one connection (ZMTP.md §7.4–§7.9;
//! RFC 26 client side), for outbound platform links and `viprouter bench`.
//!
//! ```text
//! New --start: HELLO--> ExpectWelcome --WELCOME/INITIATE--> ExpectReady
//!   --READY--> Traffic              any error or ERROR --> Failed
//! ```

use core::ops::Range;

use rand_core::CryptoRngCore;

use super::CurveError;
use super::keys::{KEY_LEN, KeyPair, PrecomputedBox, PublicKey, SecretKey, TAG_LEN};
use super::message::{Channel, Traffic};
use super::nonce::{
    HELLO_PREFIX, INITIATE_PREFIX, MESSAGE_C_PREFIX, MESSAGE_S_PREFIX, READY_PREFIX, RecvCounter, SendCounter,
    VOUCH_PREFIX, WELCOME_PREFIX, long_nonce, short_nonce,
};
use super::wire::{
    self, COOKIE_LEN, HELLO, HELLO_LEN, HELLO_PADDING_LEN, HELLO_SIGNATURE_LEN, INITIATE, INITIATE_MIN_LEN, READY,
    READY_BOX_AT, READY_METADATA_AT, READY_MIN_LEN, READY_NONCE_AT, WELCOME, WELCOME_BOX_AT, WELCOME_LEN,
    WELCOME_NONCE_AT,
};
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::FrameHeader;

/// Length of the complete HELLO frame [`CurveClient::start`] appends.
pub const HELLO_FRAME_LEN: usize = FrameHeader::frame_len(HELLO_LEN);

/// What [`CurveClient::handle_command`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientStep {
    /// WELCOME was valid; an INITIATE frame was appended to `out`.
    InitiateSent,
    /// READY was valid; the server's metadata (ZMTP.md §4.2) is decrypted
    /// at this range within `body`. Traffic may flow.
    Ready {
        /// Range of the server's metadata within the READY `body`.
        metadata: Range<usize>,
    },
}

#[derive(Debug)]
enum State {
    New,
    ExpectWelcome,
    ExpectReady(Channel),
    Traffic(Channel),
    Failed,
}

/// Client side of CURVE for one connection.
#[derive(Debug)]
pub struct CurveClient {
    server_key: PublicKey,
    keys: KeyPair,
    /// `c'`, until INITIATE is built.
    transient: Option<SecretKey>,
    transient_public: PublicKey,
    /// `beforenm(S, c')` for HELLO and WELCOME, until WELCOME is opened.
    hello_box: Option<PrecomputedBox>,
    send: SendCounter,
    state: State,
}

impl CurveClient {
    /// A client that will authenticate as `keys` to the server whose
    /// long-term public key is `server_key`. Consumes 32 bytes (`c'`) from
    /// `rng`.
    ///
    /// # Errors
    /// [`CurveError::WeakKey`] if `server_key` has low order.
    pub fn new(server_key: PublicKey, keys: KeyPair, rng: &mut impl CryptoRngCore) -> Result<Self, CurveError> {
        let transient = SecretKey::generate(rng);
        let hello_box = PrecomputedBox::new(&server_key, &transient)?;
        Ok(CurveClient {
            server_key,
            transient_public: transient.public_key(),
            transient: Some(transient),
            keys,
            hello_box: Some(hello_box),
            send: SendCounter::new(),
            state: State::New,
        })
    }

    /// True once READY was received (MESSAGE traffic may flow).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Traffic(_))
    }

    /// Appends the HELLO frame ([`HELLO_FRAME_LEN`] bytes, short nonce 1).
    ///
    /// # Errors
    /// [`CurveError::WrongState`] if called twice.
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), CurveError> {
        let (State::New, Some(hello_box)) = (&self.state, &self.hello_box) else {
            return Err(CurveError::WrongState);
        };
        let n = self.send.take()?;
        let start = out.len();
        wire::emit_command_start(HELLO, HELLO_LEN, out);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&[0u8; HELLO_PADDING_LEN]);
        out.extend_from_slice(&self.transient_public.0);
        out.extend_from_slice(&n.to_be_bytes());
        let box_at = out.len();
        out.extend_from_slice(&[0u8; TAG_LEN + HELLO_SIGNATURE_LEN]);
        let sealed = match out.get_mut(box_at..) {
            Some(b) => hello_box.seal_box_in_place(&short_nonce(HELLO_PREFIX, n), b),
            None => Err(CurveError::WrongSize),
        };
        if let Err(e) = sealed {
            out.truncate(start);
            self.state = State::Failed;
            return Err(e);
        }
        self.state = State::ExpectWelcome;
        Ok(())
    }

    /// Length of the INITIATE frame appended for `metadata_len` bytes.
    #[must_use]
    pub const fn initiate_frame_len(metadata_len: usize) -> usize {
        FrameHeader::frame_len(INITIATE_MIN_LEN.saturating_add(metadata_len))
    }

    /// Handles one handshake command body: WELCOME → appends INITIATE
    /// carrying `metadata` (ZMTP.md §4.2 encoding; consumes 16 bytes `Vn`
    /// from `rng`); READY → decrypts in place and returns
    /// [`ClientStep::Ready`]. An ERROR command yields
    /// [`CurveError::ErrorReceived`] (its reason: [`command::error_body_reason`]).
    ///
    /// # Errors
    /// See [`CurveError`]; the client is failed afterwards.
    pub fn handle_command(
        &mut self,
        body: &mut [u8],
        metadata: &[u8],
        out: &mut Vec<u8>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<ClientStep, CurveError> {
        let state = core::mem::replace(&mut self.state, State::Failed);
        let result = match state {
            State::ExpectWelcome | State::ExpectReady(_)
                if Command::parse(body).is_ok_and(|c| c.is(command::ERROR)) =>
            {
                Err(CurveError::ErrorReceived)
            }
            State::ExpectWelcome => self.on_welcome(body, metadata, out, rng),
            State::ExpectReady(channel) => self.on_ready(body, channel),
            State::New | State::Traffic(_) => Err(CurveError::UnexpectedCommand),
            State::Failed => Err(CurveError::Failed),
        };
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn on_welcome(
        &mut self,
        body: &mut [u8],
        metadata: &[u8],
        out: &mut Vec<u8>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<ClientStep, CurveError> {
        wire::expect_command(body, WELCOME)?;
        if body.len() != WELCOME_LEN {
            return Err(CurveError::WrongSize);
        }
        let welcome_nonce: [u8; 16] = wire::array_at(body, WELCOME_NONCE_AT)?;
        let hello_box = self.hello_box.take().ok_or(CurveError::WrongState)?;
        let transient = self.transient.take().ok_or(CurveError::WrongState)?;
        let boxed = body.get_mut(WELCOME_BOX_AT..).ok_or(CurveError::WrongSize)?;
        hello_box.open_box_in_place(&long_nonce(WELCOME_PREFIX, &welcome_nonce), boxed)?;
        drop(hello_box);
        let server_transient = PublicKey(wire::array_at(boxed, TAG_LEN)?);
        let cookie: [u8; COOKIE_LEN] = wire::array_at(boxed, TAG_LEN + KEY_LEN)?;

        let session = PrecomputedBox::new(&server_transient, &transient)?;
        drop(transient);
        let vouch_box = PrecomputedBox::new(&server_transient, &self.keys.secret)?;
        let mut vouch_nonce = [0u8; 16];
        rng.fill_bytes(&mut vouch_nonce);
        let n = self.send.take()?;

        let start = out.len();
        wire::emit_command_start(INITIATE, INITIATE_MIN_LEN.saturating_add(metadata.len()), out);
        out.extend_from_slice(&cookie);
        out.extend_from_slice(&n.to_be_bytes());
        let box_at = out.len();
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.extend_from_slice(&self.keys.public.0);
        out.extend_from_slice(&vouch_nonce);
        let vouch_at = out.len();
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.extend_from_slice(&self.transient_public.0);
        out.extend_from_slice(&self.server_key.0);
        out.extend_from_slice(metadata);
        let vouch_end = vouch_at.saturating_add(TAG_LEN + 2 * KEY_LEN);
        // Vouch = Box[C' ‖ S](c -> S') first, then the INITIATE box over it.
        let sealed = match out.get_mut(vouch_at..vouch_end) {
            Some(v) => vouch_box.seal_box_in_place(&long_nonce(VOUCH_PREFIX, &vouch_nonce), v),
            None => Err(CurveError::WrongSize),
        }
        .and_then(|()| match out.get_mut(box_at..) {
            Some(b) => session.seal_box_in_place(&short_nonce(INITIATE_PREFIX, n), b),
            None => Err(CurveError::WrongSize),
        });
        if let Err(e) = sealed {
            out.truncate(start);
            return Err(e);
        }

        let send = core::mem::take(&mut self.send);
        self.state =
            State::ExpectReady(Channel::new(session, send, RecvCounter::new(), MESSAGE_C_PREFIX, MESSAGE_S_PREFIX));
        Ok(ClientStep::InitiateSent)
    }

    fn on_ready(&mut self, body: &mut [u8], mut channel: Channel) -> Result<ClientStep, CurveError> {
        wire::expect_command(body, READY)?;
        if body.len() < READY_MIN_LEN {
            return Err(CurveError::WrongSize);
        }
        let n = wire::u64_at(body, READY_NONCE_AT)?;
        channel.recv_counter().check(n)?;
        let boxed = body.get_mut(READY_BOX_AT..).ok_or(CurveError::WrongSize)?;
        channel.key().open_box_in_place(&short_nonce(READY_PREFIX, n), boxed)?;
        channel.recv_counter().accept(n);
        self.state = State::Traffic(channel);
        Ok(ClientStep::Ready { metadata: READY_METADATA_AT..body.len() })
    }

    #[cfg(test)]
    pub(crate) fn channel_mut(&mut self) -> Option<&mut Channel> {
        match &mut self.state {
            State::Traffic(c) | State::ExpectReady(c) => Some(c),
            _ => None,
        }
    }
}

impl Traffic for CurveClient {
    fn channel(&mut self) -> Result<&mut Channel, CurveError> {
        match &mut self.state {
            State::Traffic(channel) => Ok(channel),
            _ => Err(CurveError::WrongState),
        }
    }
}
