//! The socket the workloads use: the libzmq-shaped [`io::IoSocket`](super::io::IoSocket)
//! (default) or the direct [`Client`] (`--direct-io`), behind one interface.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use super::client::{Client, ClientError, Security, wait_fds};
use super::io::{IoSocket, IoThread};
use viprouter::server::listener::Endpoint;
use viprouter::zmtp::Message;

/// How clients do their I/O.
pub enum Gen {
    /// Each worker thread reads and writes its own sockets.
    Direct,
    /// One I/O thread for every socket, as libzmq (vipbench) does.
    Io(IoThread),
}

/// One DEALER socket.
pub enum Socket {
    /// See [`Gen::Direct`].
    Direct(Box<Client>),
    /// See [`Gen::Io`].
    Io(Box<IoSocket>),
}

impl Gen {
    /// Connect and finish the handshake within `timeout`.
    ///
    /// # Errors
    /// Connection and handshake errors.
    pub fn connect(
        &self,
        endpoint: &Endpoint,
        id: &[u8],
        security: &Security,
        timeout: Duration,
    ) -> Result<Socket, ClientError> {
        match self {
            Gen::Direct => Ok(Socket::Direct(Box::new(Client::connect(endpoint, id, security, timeout)?))),
            Gen::Io(io) => {
                let mut s = io.socket(endpoint, id, security)?;
                s.wait_ready(Instant::now() + timeout)?;
                Ok(Socket::Io(Box::new(s)))
            }
        }
    }

    /// Start connecting; [`Socket::advance`] tells when the handshake is done.
    ///
    /// # Errors
    /// Connection errors (direct).
    pub fn connect_async(&self, endpoint: &Endpoint, id: &[u8], security: &Security) -> Result<Socket, ClientError> {
        match self {
            Gen::Direct => Ok(Socket::Direct(Box::new(Client::connect_start(endpoint, id, security)?))),
            Gen::Io(io) => Ok(Socket::Io(Box::new(io.socket(endpoint, id, security)?))),
        }
    }
}

impl Socket {
    /// Drive the handshake (direct) or look at its state (I/O thread). `Ok(true)`: ready.
    ///
    /// # Errors
    /// Handshake errors.
    pub fn advance(&mut self) -> Result<bool, ClientError> {
        match self {
            Socket::Direct(c) => c.advance_handshake(),
            Socket::Io(s) => {
                s.check()?;
                Ok(s.is_ready())
            }
        }
    }

    /// May messages be queued before the handshake completed (`zmq_send` after
    /// `zmq_connect`)? Only with the I/O thread.
    pub fn queues_early(&self) -> bool {
        matches!(self, Socket::Io(_))
    }

    /// Queue one multipart message.
    ///
    /// # Errors
    /// CURVE nonce exhaustion (direct).
    pub fn queue(&mut self, frames: &[&[u8]]) -> Result<(), ClientError> {
        match self {
            Socket::Direct(c) => c.queue(frames),
            Socket::Io(s) => s.queue(frames),
        }
    }

    /// Write what the socket takes (direct); the I/O thread writes on its own. `Ok(true)`:
    /// nothing left here.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush(&mut self) -> Result<bool, ClientError> {
        match self {
            Socket::Direct(c) => c.flush(),
            Socket::Io(_) => Ok(true),
        }
    }

    /// Write everything queued (direct) until `deadline`.
    ///
    /// # Errors
    /// Socket errors, timeout.
    pub fn flush_until(&mut self, deadline: Instant) -> Result<(), ClientError> {
        match self {
            Socket::Direct(c) => c.flush_until(deadline),
            Socket::Io(s) => s.check(),
        }
    }

    /// Take the next message without blocking; it is then [`Socket::message`].
    ///
    /// # Errors
    /// Connection errors.
    pub fn poll_message(&mut self) -> Result<bool, ClientError> {
        match self {
            Socket::Direct(c) => c.poll_message(true),
            Socket::Io(s) => s.poll_message(),
        }
    }

    /// The message taken by the last successful [`Socket::poll_message`]/[`Socket::recv_until`].
    pub fn message(&self) -> Message<'_> {
        match self {
            Socket::Direct(c) => c.message(),
            Socket::Io(s) => s.message(),
        }
    }

    /// Wait for a message until `deadline`. `Ok(false)`: timed out.
    ///
    /// # Errors
    /// Connection errors.
    pub fn recv_until(&mut self, deadline: Instant) -> Result<bool, ClientError> {
        match self {
            Socket::Direct(c) => c.recv_until(deadline),
            Socket::Io(s) => s.recv_until(deadline),
        }
    }

    /// What to `poll` for this socket: its descriptor and events.
    pub fn poll_fd(&self) -> (BorrowedFd<'_>, PollFlags) {
        match self {
            Socket::Direct(c) => {
                let f = if c.pending_tx() { PollFlags::POLLIN | PollFlags::POLLOUT } else { PollFlags::POLLIN };
                (c.fd(), f)
            }
            Socket::Io(s) => (s.fd(), PollFlags::POLLIN),
        }
    }

    /// `ZMQ_EVENTS` (I/O thread sockets; the mailbox check) — direct sockets: false.
    fn events(&self) -> bool {
        match self {
            Socket::Direct(_) => false,
            Socket::Io(s) => s.events(),
        }
    }

    /// PONGs or messages waiting to be written by this thread.
    pub fn pending_tx(&self) -> bool {
        match self {
            Socket::Direct(c) => c.pending_tx(),
            Socket::Io(_) => false,
        }
    }
}

/// Wait until one of `socks` has input or `timeout` passes, as `zmq_poll` does for libzmq
/// sockets: a pass with a zero timeout, `ZMQ_EVENTS` (a mailbox check each) on every item,
/// and only when nothing is ready a second `poll` with the timeout and the same checks
/// again. For direct sockets, one `poll`.
///
/// # Errors
/// `poll` errors.
pub fn zmq_poll(socks: &[&Socket], timeout: Duration) -> Result<(), ClientError> {
    let mut fds: Vec<PollFd<'_>> = socks
        .iter()
        .map(|s| {
            let (fd, f) = s.poll_fd();
            PollFd::new(fd, f)
        })
        .collect();
    if socks.iter().all(|s| matches!(s, Socket::Direct(_))) {
        return wait_fds(&mut fds, timeout);
    }
    if let Err(e) = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO)
        && e != nix::errno::Errno::EINTR
    {
        return Err(ClientError::Io(e.into()));
    }
    let mut ready = false;
    for s in socks {
        ready |= s.events();
    }
    if ready || fds.iter().any(|f| f.any().unwrap_or(false)) {
        return Ok(());
    }
    wait_fds(&mut fds, timeout)?;
    for s in socks {
        s.events();
    }
    Ok(())
}
