//! The socket of a connection: TCP or Unix-domain, registered with mio.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use mio::event::Source;
use mio::{Interest, Registry, Token};

/// A connected socket, TCP or Unix-domain.
#[derive(Debug)]
pub enum Stream {
    /// `tcp://`
    Tcp(mio::net::TcpStream),
    /// `ipc://`
    Unix(mio::net::UnixStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    /// Register with `interest`.
    ///
    /// # Errors
    /// The registry's error.
    pub fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        registry.register(self.source(), token, interest)
    }

    /// Change the interest.
    ///
    /// # Errors
    /// The registry's error.
    pub fn reregister(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        registry.reregister(self.source(), token, interest)
    }

    /// A non-blocking connect's outcome once the socket reported writable: `Ok(true)`
    /// connected, `Ok(false)` still in flight (a spurious wake-up), `Err` failed (mio's
    /// `TcpStream::connect` contract: `take_error`, then `peer_addr`).
    ///
    /// # Errors
    /// The connect's error.
    pub fn connect_result(&self) -> io::Result<bool> {
        let (error, peer) = match self {
            Stream::Tcp(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
            Stream::Unix(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
        };
        if let Some(e) = error {
            return Err(e);
        }
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deregister (before drop, as mio requires).
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.source());
    }

    /// Read what the socket has (non-blocking: `WouldBlock` when nothing; 0 at the end).
    ///
    /// # Errors
    /// The socket's error.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    /// Write what the socket takes (non-blocking: `WouldBlock` when full).
    ///
    /// # Errors
    /// The socket's error.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
}

/// The transmit queue writes through this (`writev` for its shared ranges).
impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Stream::write(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}
