//! A small ZMTP 3.x DEALER client over a plain socket, for `viprouter bench`.
//!
//! One connection, no background thread: the caller drives it. The socket is non-blocking;
//! [`Client::connect`], [`Client::recv_until`] and [`Client::flush_until`] wait with `poll(2)`
//! when the caller wants blocking behaviour.
//!
//! * Handshake (ZMTP.md §2, §5, §7): our 64-byte greeting is sent at once, followed by the
//!   NULL READY (`Socket-Type` DEALER, `Identity`) or the CURVE HELLO; the router's greeting is
//!   parsed incrementally; CURVE goes HELLO → WELCOME → INITIATE → READY via [`CurveClient`].
//! * Receive: frames are parsed in place in one buffer; a complete multipart message is
//!   handed out as a borrowed [`Message`] over that buffer (CURVE MESSAGEs are decrypted in
//!   place, nothing is copied). PING is answered with PONG (inside a MESSAGE under CURVE),
//!   as libzmq does; commands never reach the caller.
//! * Send: [`Client::queue`] encodes frames straight into the transmit buffer (sealed under
//!   CURVE); [`Client::flush`] writes what the socket takes.
//!
//! Codec pieces are the router's own (`zmtp::frame`, `greeting`, `command`, `metadata`,
//! `mechanism::curve`); only the client-side driving lives here.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use rand_core::OsRng;

use crate::server::listener::Endpoint;
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::{FLAG_MORE, FrameHeader};
use crate::zmtp::greeting::{self, GREETING_LEN};
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::mechanism::curve::{ClientStep, CurveClient, CurveError, KeyPair, PublicKey, wire};
use crate::zmtp::{DecodeError, Message, Part, metadata};

/// Largest frame accepted from the router (the router's own per-frame limit).
const MAX_FRAME_BYTES: u64 = crate::limits::MAX_FRAME_BYTES;
/// Largest frame accepted before the handshake completed.
const MAX_HANDSHAKE_FRAME_BYTES: u64 = crate::limits::MAX_HANDSHAKE_FRAME_BYTES;
/// Most frames in one received message.
const MAX_PARTS: usize = 4096;
/// Bytes asked of the kernel per `read`.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes handed to the kernel per `write`. libzmq's engine writes at most its 8 KiB batch
/// (`out_batch_size`) per call; doing the same keeps the router's view of the traffic (read
/// sizes, wake-ups) the same as under vipbench.
pub const WRITE_CHUNK: usize = 8 * 1024;

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum Security {
    /// NULL mechanism.
    Null,
    /// CURVE with the router's long-term public key and our key pair.
    Curve {
        /// The router's public key.
        server_key: PublicKey,
        /// Our long-term key pair.
        keys: KeyPair,
    },
}

impl Security {
    fn mechanism(&self) -> Mechanism {
        match self {
            Security::Null => Mechanism::Null,
            Security::Curve { .. } => Mechanism::Curve,
        }
    }
}

/// Why a connection failed.
#[derive(Debug)]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// The router closed the connection.
    Closed,
    /// Nothing arrived in time.
    Timeout,
    /// Malformed ZMTP from the router.
    Decode(DecodeError),
    /// The CURVE handshake or a MESSAGE failed.
    Curve(CurveError),
    /// The router sent ERROR (its reason).
    Refused(String),
    /// The router broke the protocol in another way.
    Protocol(&'static str),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Closed => write!(f, "connection closed by the router"),
            ClientError::Timeout => write!(f, "timed out"),
            ClientError::Decode(e) => write!(f, "ZMTP: {e}"),
            ClientError::Curve(e) => write!(f, "{e}"),
            ClientError::Refused(r) => write!(f, "router sent ERROR {r:?}"),
            ClientError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Decode(e)
    }
}

impl From<CurveError> for ClientError {
    fn from(e: CurveError) -> Self {
        ClientError::Curve(e)
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    Handshake,
    Traffic,
}

/// One DEALER connection to a router.
pub struct Client {
    stream: Stream,
    phase: Phase,
    security: Security,
    curve: Option<CurveClient>,
    identity: Vec<u8>,
    /// Receive buffer: `[rx_start, rx_end)` holds unconsumed bytes.
    rx: Vec<u8>,
    /// Start of the message being assembled (or of the next unparsed frame).
    rx_start: usize,
    rx_end: usize,
    /// Next frame header to parse (≥ `rx_start`).
    scan: usize,
    /// Bytes from `rx_start` the next frame needs in the buffer.
    need: usize,
    /// Frames of the message being assembled, offsets relative to `rx_start`.
    parts: Vec<Part>,
    /// `parts` is a complete message ending at `scan`, not yet consumed.
    complete: bool,
    tx: Vec<u8>,
    tx_pos: usize,
    scratch: Vec<u8>,
    /// Most bytes per `read`.
    read_chunk: usize,
    /// Bytes of our greeting queued so far (staged: 10, 11, then 64).
    greeting_sent: usize,
    /// PINGs answered.
    pub pings: u64,
}

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
    pub fn connect_start(
        endpoint: &Endpoint,
        identity: &[u8],
        security: &Security,
    ) -> Result<Client, ClientError> {
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
    pub fn from_tcp(stream: TcpStream, identity: &[u8], security: &Security, staged: bool) -> Result<Client, ClientError> {
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

    /// The routing identity this client announced.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// True once the handshake completed.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Traffic
    }

    /// The socket, for `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.fd()
    }

    /// True while queued bytes wait for the socket.
    pub fn pending_tx(&self) -> bool {
        self.tx_pos < self.tx.len()
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
                            return Err(DecodeError::MechanismMismatch.into());
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
                        let reason = wire::error_reason(body).unwrap_or(&[]);
                        Err(ClientError::Refused(String::from_utf8_lossy(reason).into_owned()))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The next complete frame at `scan`: header and absolute body range; advances `scan`.
    fn next_frame(&mut self, limit: u64) -> Result<Option<(FrameHeader, usize, usize)>, ClientError> {
        let avail = self.rx.get(self.scan..self.rx_end).unwrap_or(&[]);
        let Some(h) = FrameHeader::parse(avail)? else {
            self.need = self.scan - self.rx_start + 9;
            return Ok(None);
        };
        if h.size > limit {
            return Err(DecodeError::FrameTooLarge { declared: h.size, limit }.into());
        }
        // size ≤ 16 MiB: fits usize on every target.
        let total = h.header_len + h.size as usize;
        if avail.len() < total {
            self.need = self.scan - self.rx_start + total;
            return Ok(None);
        }
        let start = self.scan + h.header_len;
        self.scan += total;
        Ok(Some((h, start, self.scan)))
    }

    /// Most bytes asked of the kernel per `read` (default 64 KiB; libzmq reads 8 KiB).
    pub fn set_read_chunk(&mut self, bytes: usize) {
        self.read_chunk = bytes.clamp(512, READ_CHUNK);
    }

    /// Read what the socket has. `Ok(false)` when it would block.
    fn fill(&mut self) -> Result<bool, ClientError> {
        Ok(self.read_once()? > 0)
    }

    /// One `read` of at most the read chunk: bytes read, 0 when it would block. Complete
    /// messages are then taken with `poll_message(false)`.
    ///
    /// # Errors
    /// Socket errors; [`ClientError::Closed`] at end of stream.
    pub fn read_once(&mut self) -> Result<usize, ClientError> {
        let chunk = self.read_chunk;
        let used = self.rx_end - self.rx_start;
        let want = self.need.max(used) + chunk;
        if self.rx.len() - self.rx_end < chunk || self.rx.len() - self.rx_start < want {
            if self.rx_start > 0 {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.scan -= self.rx_start;
                self.rx_end -= self.rx_start;
                self.rx_start = 0;
            }
            if self.rx.len() < want {
                self.rx.resize(want, 0);
            }
        }
        let end = (self.rx_end + chunk).min(self.rx.len());
        let Some(buf) = self.rx.get_mut(self.rx_end..end) else {
            return Err(ClientError::Protocol("receive buffer"));
        };
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => {
                    self.rx_end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Make a complete message available as [`Client::message`]. With `read`, reads the
    /// socket (non-blocking) when the buffer holds no complete message. The previous message
    /// is consumed first.
    ///
    /// # Errors
    /// Socket, decode and CURVE errors; [`ClientError::Closed`].
    pub fn poll_message(&mut self, read: bool) -> Result<bool, ClientError> {
        if self.complete {
            self.rx_start = self.scan;
            self.parts.clear();
            self.complete = false;
        }
        if self.phase != Phase::Traffic {
            return Err(ClientError::Protocol("receive before the handshake completed"));
        }
        loop {
            while let Some((h, start, end)) = self.next_frame(MAX_FRAME_BYTES)? {
                if self.take_frame(h, start, end)? {
                    self.complete = true;
                    return Ok(true);
                }
            }
            if self.rx_start == self.rx_end {
                // nothing pending: restart at the front of the buffer (free compaction)
                self.rx_start = 0;
                self.rx_end = 0;
                self.scan = 0;
            }
            if !read || !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// One traffic frame; `Ok(true)` when it completed a message.
    fn take_frame(&mut self, h: FrameHeader, start: usize, end: usize) -> Result<bool, ClientError> {
        let (flags, ps, pe) = match self.curve.as_mut() {
            None => {
                let flags = if h.command() { 0x02 } else { h.flags & FLAG_MORE };
                (flags, start, end)
            }
            Some(curve) => {
                if h.command() {
                    return Err(ClientError::Protocol("command frame after the CURVE handshake"));
                }
                let Some(body) = self.rx.get_mut(start..end) else {
                    return Err(ClientError::Protocol("frame outside the buffer"));
                };
                let (flags, r) = curve.open_message(body)?;
                (flags, start + r.start, start + r.end)
            }
        };
        if flags & 0x02 != 0 {
            self.on_command(ps, pe)?;
            if self.parts.is_empty() {
                // a command between messages: drop its bytes now
                self.rx_start = self.scan;
            }
            return Ok(false);
        }
        if self.parts.len() >= MAX_PARTS {
            return Err(DecodeError::TooManyParts.into());
        }
        let rel = ps - self.rx_start;
        let (Ok(start), Ok(len)) = (u32::try_from(rel), u32::try_from(pe - ps)) else {
            return Err(DecodeError::MessageTooLarge.into());
        };
        self.parts.push(Part { start, len });
        Ok(flags & FLAG_MORE == 0)
    }

    fn on_command(&mut self, start: usize, end: usize) -> Result<(), ClientError> {
        let body = self.rx.get(start..end).unwrap_or(&[]);
        let cmd = Command::parse(body)?;
        if cmd.is(command::PING) {
            let (_ttl, ctx) = command::parse_ping(cmd.data)?;
            let mut context = [0u8; crate::limits::MAX_PING_CONTEXT_BYTES];
            let n = ctx.len().min(context.len());
            for (d, s) in context.iter_mut().zip(ctx) {
                *d = *s;
            }
            let context = context.get(..n).unwrap_or(&[]);
            self.pings += 1;
            self.compact_tx();
            match self.curve.as_mut() {
                None => command::emit_pong(context, &mut self.tx),
                Some(curve) => {
                    self.scratch.clear();
                    command::emit_pong(context, &mut self.scratch);
                    let body = self.scratch.get(2..).unwrap_or(&[]);
                    curve.seal_frame(0x02, body, &mut self.tx)?;
                }
            }
            Ok(())
        } else if cmd.is(command::ERROR) {
            let reason = cmd.data.get(1..).unwrap_or(&[]);
            Err(ClientError::Refused(String::from_utf8_lossy(reason).into_owned()))
        } else {
            Ok(()) // PONG and anything else: ignored, as libzmq does
        }
    }

    /// The message made available by the last successful [`Client::poll_message`].
    pub fn message(&self) -> Message<'_> {
        let buf = self.rx.get(self.rx_start..self.scan).unwrap_or(&[]);
        if self.complete { Message::new(buf, &self.parts) } else { Message::new(buf, &[]) }
    }

    fn compact_tx(&mut self) {
        if self.tx_pos == self.tx.len() {
            self.tx.clear();
            self.tx_pos = 0;
        } else if self.tx_pos >= 256 * 1024 {
            self.tx.drain(..self.tx_pos);
            self.tx_pos = 0;
        }
    }

    /// Encode one multipart message into the transmit buffer (nothing is written yet).
    ///
    /// # Errors
    /// CURVE nonce exhaustion.
    pub fn queue(&mut self, frames: &[&[u8]]) -> Result<(), ClientError> {
        self.compact_tx();
        let last = frames.len().saturating_sub(1);
        match self.curve.as_mut() {
            None => {
                for (i, f) in frames.iter().enumerate() {
                    FrameHeader::emit_frame(if i < last { FLAG_MORE } else { 0 }, f, &mut self.tx);
                }
            }
            Some(curve) => {
                for (i, f) in frames.iter().enumerate() {
                    curve.seal_frame(u8::from(i < last), f, &mut self.tx)?;
                }
            }
        }
        Ok(())
    }

    /// Write queued bytes until the socket would block. `Ok(true)` when all are written.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush(&mut self) -> Result<bool, ClientError> {
        while self.tx_pos < self.tx.len() {
            let end = (self.tx_pos + WRITE_CHUNK).min(self.tx.len());
            let chunk = self.tx.get(self.tx_pos..end).unwrap_or(&[]);
            match self.stream.write(chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.tx_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// One `write` of at most [`WRITE_CHUNK`] queued bytes: bytes written, 0 when the
    /// socket would block or nothing is queued.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush_once(&mut self) -> Result<usize, ClientError> {
        loop {
            if self.tx_pos >= self.tx.len() {
                return Ok(0);
            }
            let end = (self.tx_pos + WRITE_CHUNK).min(self.tx.len());
            let chunk = self.tx.get(self.tx_pos..end).unwrap_or(&[]);
            match self.stream.write(chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => {
                    self.tx_pos += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Bytes queued and not yet written.
    pub fn tx_len(&self) -> usize {
        self.tx.len() - self.tx_pos
    }

    /// Write everything queued, waiting for the socket until `deadline`.
    ///
    /// # Errors
    /// Socket errors, [`ClientError::Timeout`].
    pub fn flush_until(&mut self, deadline: Instant) -> Result<(), ClientError> {
        while !self.flush()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            self.wait(left)?;
        }
        Ok(())
    }

    /// Wait for a message until `deadline` (flushing queued bytes meanwhile). `Ok(true)`:
    /// it is available as [`Client::message`]; `Ok(false)`: timed out.
    ///
    /// # Errors
    /// As [`Client::poll_message`].
    pub fn recv_until(&mut self, deadline: Instant) -> Result<bool, ClientError> {
        // Buffered first, then poll + read: two system calls per message that was not
        // already buffered.
        if self.poll_message(false)? {
            return Ok(true);
        }
        loop {
            self.flush()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.wait(left)?;
            if self.poll_message(true)? {
                return Ok(true);
            }
        }
    }

    /// Block until the socket is readable (or writable with bytes queued), or `timeout`.
    fn wait(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut flags = PollFlags::POLLIN;
        if self.pending_tx() {
            flags |= PollFlags::POLLOUT;
        }
        wait_fds(&mut [PollFd::new(self.fd(), flags)], timeout)
    }
}

/// `poll(2)` on `fds` for at most `timeout` (EINTR is a normal return).
///
/// # Errors
/// Other `poll` errors.
pub fn wait_fds(fds: &mut [PollFd<'_>], timeout: Duration) -> Result<(), ClientError> {
    let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
    match nix::poll::poll(fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(ClientError::Io(e.into())),
    }
}

/// A DEALER talks to ROUTER, DEALER or REP (ZMTP.md §4.3, §7.7).
fn check_peer_socket_type(props: &[u8]) -> Result<(), ClientError> {
    match metadata::find(props, b"Socket-Type")? {
        Some(b"ROUTER" | b"DEALER" | b"REP") => Ok(()),
        _ => Err(ClientError::Protocol("router announced an incompatible Socket-Type")),
    }
}
