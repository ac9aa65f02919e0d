//! The server's handshake: greeting (ZMTP.md §2), NULL (§5), PLAIN (§6), CURVE (§7.12), and
//! the authorisation step between the peer's credentials and our READY/WELCOME (§8).
//!
//! Every handshake frame must be a command of at most `MAX_HANDSHAKE_FRAME_BYTES`; the peer's
//! metadata must name a socket type a ROUTER accepts; an ERROR from the peer fails the
//! handshake. A step the caller must hear about ([`Input::Verify`], [`Input::Ready`]) consumes
//! everything scanned so far; bytes after it stay for the next call.

use rand_core::CryptoRngCore;

use super::{Input, Mech, Session, SessionConfig, SocketType, State};
use crate::zmtp::command::{self, Command};
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::curve::ServerStep;
use crate::zmtp::mechanism::{Mechanism, plain};
use crate::zmtp::{SessionError, metadata};

/// What a handshake step tells the caller.
enum HandshakeDone {
    Verify,
    Ready,
}

impl Session {
    /// Greeting and handshake commands, until the caller must be told something or the bytes
    /// run out.
    pub(super) fn handshake_step(
        &mut self,
        cfg: &SessionConfig<'_>,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Input, SessionError> {
        loop {
            if self.state == State::Greeting {
                let Some(g) = greeting::parse(buf)? else {
                    return Ok(Input::NeedMore { consumed: 0, need: GREETING_LEN });
                };
                if g.mechanism != self.mechanism.wire_name() {
                    return Err(SessionError::MechanismMismatch);
                }
                self.peer_minor = g.minor;
                self.deframer.skip(GREETING_LEN);
                self.state = self.after_greeting(cfg, out)?;
                continue;
            }
            let Some(body) = self.deframer.next_handshake_command(buf)? else {
                return Ok(super::need_more(&mut self.deframer, buf));
            };
            let body = buf.get_mut(body).unwrap_or(&mut []);
            let done = self.handshake_command(cfg, body, out, rng)?;
            self.deframer.command_done();
            if let Some(done) = done {
                let consumed = self.deframer.consume_scanned();
                return Ok(match done {
                    HandshakeDone::Verify => Input::Verify { consumed },
                    HandshakeDone::Ready => Input::Ready { consumed },
                });
            }
        }
    }

    /// The state after the peer's greeting; NULL sends READY now unless it must verify first.
    fn after_greeting(&mut self, cfg: &SessionConfig<'_>, out: &mut Vec<u8>) -> Result<State, SessionError> {
        Ok(match self.mechanism {
            Mechanism::Null => {
                // NULL: the server sends READY right after the greeting (ZMTP.md §5), or, when it
                // must verify, once allowed (libzmq waits for ZAP).
                if !self.null_verify {
                    command::emit_ready(b"ROUTER", cfg.identity, out);
                }
                State::NullHandshake
            }
            Mechanism::Plain => State::PlainHello,
            Mechanism::Curve if cfg.curve.is_some() => State::CurveHandshake,
            Mechanism::Curve => return Err(SessionError::NotConfigured),
        })
    }

    /// One complete handshake command. Returns `Some` when the caller must be told.
    fn handshake_command(
        &mut self,
        cfg: &SessionConfig<'_>,
        body: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Option<HandshakeDone>, SessionError> {
        if self.state == State::CurveHandshake {
            return self.curve_command(cfg, body, out, rng);
        }
        let cmd = Command::parse(body)?;
        if cmd.is(command::ERROR) {
            return Err(SessionError::PeerError);
        }
        match self.state {
            State::NullHandshake if cmd.is(command::READY) => {
                self.accept_peer_metadata(cmd.data)?;
                if self.null_verify {
                    self.state = State::Verify;
                    return Ok(Some(HandshakeDone::Verify));
                }
                self.state = State::Traffic;
                Ok(Some(HandshakeDone::Ready))
            }
            State::PlainHello if cmd.is(plain::HELLO) => {
                let (u, p) = plain::parse_hello(cmd.data)?;
                if let Mech::Plain(c) = &mut self.mech {
                    // Both are at most 255 bytes (one length byte each).
                    c.user = heapless::Vec::from_slice(u).unwrap_or_default();
                    c.password = heapless::Vec::from_slice(p).unwrap_or_default();
                }
                self.state = State::Verify;
                Ok(Some(HandshakeDone::Verify))
            }
            State::PlainInitiate if cmd.is(plain::INITIATE) => {
                plain::check_initiate(cmd.data)?;
                self.accept_peer_metadata(cmd.data)?;
                let mut props = Vec::with_capacity(64 + cfg.identity.len());
                command::socket_metadata(b"ROUTER", cfg.identity, &mut props);
                plain::emit_ready(&props, out);
                self.state = State::Traffic;
                Ok(Some(HandshakeDone::Ready))
            }
            _ => Err(SessionError::UnexpectedCommand),
        }
    }

    /// HELLO (answered with WELCOME) or INITIATE (credentials to verify) of CURVE.
    fn curve_command(
        &mut self,
        cfg: &SessionConfig<'_>,
        body: &mut [u8],
        out: &mut Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Option<HandshakeDone>, SessionError> {
        let (Mech::Curve { server, client_key }, Some(ctx)) = (&mut self.mech, cfg.curve) else {
            return Err(SessionError::NotConfigured);
        };
        let step = server.handle_command(body, &ctx.keys, &ctx.cookies, out, &mut &mut *rng);
        match step.map_err(SessionError::Curve)? {
            ServerStep::WelcomeSent => Ok(None),
            ServerStep::Initiated { client_key: key, metadata } => {
                *client_key = key.0;
                let props = body.get(metadata).unwrap_or(&[]);
                self.accept_peer_metadata(props)?;
                self.state = State::Verify;
                Ok(Some(HandshakeDone::Verify))
            }
        }
    }

    /// The caller's authorisation decision after [`Input::Verify`]. Allowed: PLAIN sends
    /// WELCOME and waits for INITIATE; CURVE (and NULL with [`Session::verify_null`]) sends
    /// READY and the next [`Session::handle_input`] reports [`Input::Ready`]. Refused: an ERROR
    /// "400" is queued (ZMTP.md §8.3: permanent, the libzmq client will not retry) and the
    /// session fails.
    ///
    /// # Errors
    /// [`SessionError::AuthDenied`] when refused; a CURVE error if READY cannot be sealed.
    pub fn authorize(&mut self, cfg: &SessionConfig<'_>, allow: bool, out: &mut Vec<u8>) -> Result<(), SessionError> {
        if self.state != State::Verify {
            return Err(SessionError::UnexpectedCommand);
        }
        if !allow {
            self.state = State::Failed;
            command::emit_error(b"400", out);
            return Err(SessionError::AuthDenied);
        }
        match &mut self.mech {
            Mech::Null => {
                // Only reached with `verify_null`: our READY was held back until now.
                command::emit_ready(b"ROUTER", cfg.identity, out);
                self.state = State::Traffic;
                self.ready_pending = true;
            }
            Mech::Plain(_) => {
                plain::emit_welcome(out);
                self.state = State::PlainInitiate;
            }
            Mech::Curve { server, .. } => {
                let mut props = Vec::with_capacity(64 + cfg.identity.len());
                command::socket_metadata(b"ROUTER", cfg.identity, &mut props);
                server.send_ready(&props, out).map_err(SessionError::Curve)?;
                self.state = State::Traffic;
                self.ready_pending = true;
            }
        }
        Ok(())
    }

    /// Check the peer's READY/INITIATE metadata: Socket-Type (if present) must be one a
    /// ROUTER accepts; Identity ≤ 255 bytes becomes the routing id.
    fn accept_peer_metadata(&mut self, props: &[u8]) -> Result<(), SessionError> {
        metadata::validate(props)?;
        if let Some(t) = metadata::find(props, b"Socket-Type")? {
            self.socket_type = SocketType::from_wire(t).ok_or(SessionError::IncompatibleSocketType)?;
        }
        let id = metadata::find(props, b"Identity")?.unwrap_or(&[]);
        self.identity = heapless::Vec::from_slice(id).map_err(|_| SessionError::IdentityTooLong)?;
        Ok(())
    }
}
