//! Connecting and the ZMTP handshake of the bench client (ZMTP.md §2, §5, §7): our greeting
//! (staged as libzmq sends it when asked), NULL READY or CURVE HELLO → WELCOME → INITIATE →
//! READY through [`CurveClient`], the router's greeting parsed incrementally.
//!
//! Contract: [`Client::advance_handshake`] consumes only handshake commands and returns
//! `Ok(true)` once traffic may flow; the router must announce a Socket-Type a DEALER may talk
//! to (ZMTP.md §4.3, §7.7); an ERROR from the router is [`ClientError::Refused`] with its
//! reason.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rand_core::OsRng;

use super::{Client, ClientError, MAX_HANDSHAKE_FRAME_BYTES, Phase, READ_CHUNK, Security, Stream, WRITE_CHUNK};
use crate::server::listener::Endpoint;
use crate::zmtp::command::{self, Command};
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::mechanism::curve::{ClientStep, CurveClient, CurveError};
use crate::zmtp::{SessionError, metadata};

impl Client {
    /// Connect and complete the handshake within `timeout`.
    ///
    /// # Errors
    /// Connection, handshake and protocol errors; [`ClientError::Timeout`].
    pub fn connect(
        endpoint: &Endpoint,
        identity: &[u8],
        security: &Security,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut c = Client::connect_start(endpoint, identity, security)?;
        while !c.advance_handshake()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            c.wait(left)?;
        }
        Ok(c)
    }

    /// Connect and send our greeting and first handshake command; the handshake then
    /// proceeds with [`Client::advance_handshake`] whenever the socket is readable.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect_start(endpoint: &Endpoint, identity: &[u8], security: &Security) -> Result<Client, ClientError> {
        let stream = match endpoint {
            Endpoint::Tcp(hp) => {
                let hp = match hp.strip_prefix("*:") {
                    Some(port) => format!("127.0.0.1:{port}"),
                    None => hp.clone(),
                };
                let addr = hp
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                Stream::Tcp(s)
            }
            Endpoint::IpcAbstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                let s = UnixStream::connect_addr(&sa)?;
                s.set_nonblocking(true)?;
                Stream::Unix(s)
            }
            Endpoint::IpcPath(path) => {
                let s = UnixStream::connect(path)?;
                s.set_nonblocking(true)?;
                Stream::Unix(s)
            }
        };
        Client::start(stream, identity, security, false)
    }

    /// A TCP connection that was connected elsewhere (non-blocking connect in the I/O thread).
    ///
    /// # Errors
    /// Socket option and CURVE set-up errors.
    pub fn from_tcp(
        stream: TcpStream,
        identity: &[u8],
        security: &Security,
        staged: bool,
    ) -> Result<Client, ClientError> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Client::start(Stream::Tcp(stream), identity, security, staged)
    }

    /// Send the greeting and the first handshake command. With `staged`, the greeting goes
    /// out as libzmq sends it (ZMTP.md §2.2): the 10-byte signature now, the major version
    /// once the peer's signature arrived, the rest (and READY/HELLO) once its major did.
    fn start(stream: Stream, identity: &[u8], security: &Security, staged: bool) -> Result<Client, ClientError> {
        let mut c = Client {
            stream,
            phase: Phase::Greeting,
            security: security.clone(),
            curve: None,
            identity: identity.to_vec(),
            rx: vec![0; READ_CHUNK * 2],
            rx_start: 0,
            rx_end: 0,
            scan: 0,
            need: 0,
            parts: Vec::new(),
            complete: false,
            tx: Vec::with_capacity(WRITE_CHUNK * 4),
            tx_pos: 0,
            scratch: Vec::new(),
            read_chunk: READ_CHUNK,
            greeting_sent: 0,
            pings: 0,
        };
        if let Security::Curve { server_key, keys } = security {
            c.curve = Some(CurveClient::new(*server_key, keys.clone(), &mut OsRng)?);
        }
        c.send_greeting(if staged { 10 } else { GREETING_LEN })?;
        c.flush()?;
        Ok(c)
    }

    /// Queue our greeting up to byte `upto`; once all of it is queued, the first handshake
    /// command follows.
    fn send_greeting(&mut self, upto: usize) -> Result<(), ClientError> {
        let g = greeting::emit(self.security.mechanism(), false);
        let upto = upto.min(GREETING_LEN);
        if upto <= self.greeting_sent {
            return Ok(());
        }
        self.tx.extend_from_slice(g.get(self.greeting_sent..upto).unwrap_or(&[]));
        self.greeting_sent = upto;
        if upto == GREETING_LEN {
            match self.curve.as_mut() {
                None => command::emit_ready(b"DEALER", &self.identity, &mut self.tx),
                Some(curve) => curve.start(&mut self.tx)?,
            }
        }
        Ok(())
    }

    /// Drive the handshake with whatever has arrived. `Ok(true)` once traffic may flow.
    ///
    /// # Errors
    /// Handshake and protocol errors.
    pub fn advance_handshake(&mut self) -> Result<bool, ClientError> {
        loop {
            match self.phase {
                Phase::Traffic => {
                    self.flush()?;
                    return Ok(true);
                }
                Phase::Greeting => {
                    let avail = self.rx.get(self.rx_start..self.rx_end).unwrap_or(&[]);
                    let got = avail.len();
                    let parsed = greeting::parse(avail)?;
                    if self.greeting_sent < GREETING_LEN {
                        // libzmq's staging: major after the peer's signature, the rest after its major
                        if got >= 11 {
                            self.send_greeting(GREETING_LEN)?;
                        } else if got >= 10 {
                            self.send_greeting(11)?;
                        }
                    }
                    if let Some(g) = parsed {
                        if Mechanism::from_wire(&g.mechanism) != Some(self.security.mechanism()) {
                            return Err(SessionError::MechanismMismatch.into());
                        }
                        self.rx_start += GREETING_LEN;
                        self.scan = self.rx_start;
                        self.phase = Phase::Handshake;
                        continue;
                    }
                }
                Phase::Handshake => {
                    if let Some((h, start, end)) = self.next_frame(MAX_HANDSHAKE_FRAME_BYTES)? {
                        if !h.command() {
                            return Err(ClientError::Protocol("data frame before the handshake completed"));
                        }
                        self.handshake_command(start, end)?;
                        self.rx_start = self.scan;
                        self.flush()?;
                        continue;
                    }
                }
            }
            self.flush()?;
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    fn handshake_command(&mut self, start: usize, end: usize) -> Result<(), ClientError> {
        let Some(body) = self.rx.get_mut(start..end) else {
            return Err(ClientError::Protocol("frame outside the buffer"));
        };
        match self.curve.as_mut() {
            None => {
                let cmd = Command::parse(body)?;
                if cmd.is(command::READY) {
                    check_peer_socket_type(cmd.data)?;
                    self.phase = Phase::Traffic;
                    Ok(())
                } else if cmd.is(command::ERROR) {
                    let reason = cmd.data.get(1..).unwrap_or(&[]);
                    Err(ClientError::Refused(String::from_utf8_lossy(reason).into_owned()))
                } else {
                    Err(ClientError::Protocol("unexpected command during the NULL handshake"))
                }
            }
            Some(curve) => {
                self.scratch.clear();
                command::socket_metadata(b"DEALER", &self.identity, &mut self.scratch);
                match curve.handle_command(body, &self.scratch, &mut self.tx, &mut OsRng) {
                    Ok(ClientStep::InitiateSent) => Ok(()),
                    Ok(ClientStep::Ready { metadata }) => {
                        check_peer_socket_type(body.get(metadata).unwrap_or(&[]))?;
                        self.phase = Phase::Traffic;
                        Ok(())
                    }
                    Err(CurveError::ErrorReceived) => {
                        let reason = command::error_body_reason(body).unwrap_or(&[]);
                        Err(ClientError::Refused(String::from_utf8_lossy(reason).into_owned()))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// A DEALER talks to ROUTER, DEALER or REP (ZMTP.md §4.3, §7.7).
fn check_peer_socket_type(props: &[u8]) -> Result<(), ClientError> {
    match metadata::find(props, b"Socket-Type")? {
        Some(b"ROUTER" | b"DEALER" | b"REP") => Ok(()),
        _ => Err(ClientError::Protocol("router announced an incompatible Socket-Type")),
    }
}
