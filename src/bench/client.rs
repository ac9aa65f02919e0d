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
//!   handed out as a borrowed [`Message`](crate::zmtp::Message) over that buffer (CURVE
//!   MESSAGEs are decrypted in place, nothing is copied). PING is answered with PONG (inside a
//!   MESSAGE under CURVE), as libzmq does; commands never reach the caller.
//! * Send: [`Client::queue`] encodes frames straight into the transmit buffer (sealed under
//!   CURVE); [`Client::flush`] writes what the socket takes.
//!
//! Codec pieces are the router's own (`zmtp::frame`, `greeting`, `command`, `metadata`,
//! `mechanism::curve`); only the client-side driving lives here.
//!
//! Layout: this file holds [`Client`], [`Security`], sending and waiting; `handshake`
//! connecting and the ZMTP handshake; `recv` receiving; `error` [`ClientError`].

mod error;
mod handshake;
mod recv;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::zmtp::Part;
use crate::zmtp::frame::{FLAG_MORE, FrameHeader};
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::mechanism::curve::{CurveClient, KeyPair, PublicKey, Traffic};
pub use error::ClientError;

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
