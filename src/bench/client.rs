//! A small ZMTP 3.x DEALER client over a plain socket, for `viprouter bench`.
//!
//! One connection, no background thread: the caller drives it. The protocol is the library's
//! sans-IO client session ([`ClientSession`]: greeting, NULL or CURVE handshake, the shared
//! deframer, PING → PONG); this file adds only the socket, the buffers and the waiting. The
//! socket is non-blocking; [`Client::connect`], [`Client::recv_until`] and
//! [`Client::flush_until`] wait with `poll(2)` when the caller wants blocking behaviour.
//!
//! * Receive: a complete multipart message is handed out as a borrowed
//!   [`Message`](viprouter::zmtp::Message) over the receive buffer (CURVE MESSAGEs are decrypted in
//!   place, nothing is copied); commands never reach the caller.
//! * Send: [`Client::queue`] encodes frames straight into the transmit buffer (sealed under
//!   CURVE); [`Client::flush`] writes what the socket takes.
//!
//! Layout: this file holds [`Client`], sending and waiting; `handshake` connecting and driving
//! the handshake; `recv` receiving; `error` [`ClientError`].

mod error;
mod handshake;
mod recv;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

pub use error::ClientError;
use viprouter::server::conn::Stream;
pub use viprouter::zmtp::session::client::ClientSecurity as Security;
use viprouter::zmtp::session::client::ClientSession;

/// Bytes asked of the kernel per `read`.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes handed to the kernel per `write`. libzmq's engine writes at most its 8 KiB batch
/// (`out_batch_size`) per call; doing the same keeps the router's view of the traffic (read
/// sizes, wake-ups) the same as under vipbench.
pub const WRITE_CHUNK: usize = 8 * 1024;

/// One DEALER connection to a router.
pub struct Client {
    stream: Stream,
    session: ClientSession,
    /// Receive buffer: `[rx_start, rx_end)` holds unconsumed bytes, handed to the session.
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    /// Bytes from `rx_start` the session needs in the buffer for its next step.
    need: usize,
    /// The session holds a complete message, not yet released.
    held: bool,
    tx: Vec<u8>,
    tx_pos: usize,
    /// Most bytes per `read`.
    read_chunk: usize,
}

impl Client {
    /// True once the handshake completed.
    pub fn is_ready(&self) -> bool {
        self.session.is_traffic()
    }

    /// The socket, for `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
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
        let mut encoder = self.session.encoder().ok_or(ClientError::Protocol("send before the handshake completed"))?;
        encoder.encode(frames, &mut self.tx)?;
        Ok(())
    }

    /// Write queued bytes until the socket would block. `Ok(true)` when all are written.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush(&mut self) -> Result<bool, ClientError> {
        while self.flush_once()? > 0 {}
        Ok(self.tx_pos >= self.tx.len())
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
