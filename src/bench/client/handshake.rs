//! Connecting and driving the ZMTP handshake of the bench client. The handshake itself is the
//! library's client session ([`ClientSession`]: greeting — staged as libzmq sends it when asked
//! — NULL READY or CURVE HELLO → WELCOME → INITIATE → READY); this file opens the socket and
//! moves bytes.
//!
//! Contract: [`Client::advance_handshake`] returns `Ok(true)` once traffic may flow; an ERROR
//! from the router is [`ClientError::Refused`] with its reason.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rand_core::OsRng;

use super::{Client, ClientError, READ_CHUNK, Security, Stream, WRITE_CHUNK};
use viprouter::limits::Limits;
use viprouter::server::listener::Endpoint;
use viprouter::zmtp::SessionError;
use viprouter::zmtp::session::Input;
use viprouter::zmtp::session::client::{ClientConfig, ClientSession};

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
                Stream::Tcp(mio::net::TcpStream::from_std(s))
            }
            Endpoint::IpcAbstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                let s = UnixStream::connect_addr(&sa)?;
                s.set_nonblocking(true)?;
                Stream::Unix(mio::net::UnixStream::from_std(s))
            }
            Endpoint::IpcPath(path) => {
                let s = UnixStream::connect(path)?;
                s.set_nonblocking(true)?;
                Stream::Unix(mio::net::UnixStream::from_std(s))
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
        Client::start(Stream::Tcp(mio::net::TcpStream::from_std(stream)), identity, security, staged)
    }

    /// Send the greeting and the first handshake command. With `staged`, the greeting goes
    /// out as libzmq sends it (ZMTP.md §2.2; see [`ClientSession`]).
    fn start(stream: Stream, identity: &[u8], security: &Security, staged: bool) -> Result<Client, ClientError> {
        let config = ClientConfig {
            security: security.clone(),
            identity: heapless::Vec::from_slice(identity).map_err(|_| SessionError::IdentityTooLong)?,
            limits: Limits::COMPILED,
            staged_greeting: staged,
        };
        let mut tx = Vec::with_capacity(WRITE_CHUNK * 4);
        let session = ClientSession::new(&config, &mut tx, &mut OsRng)?;
        let mut c = Client {
            stream,
            session,
            rx: vec![0; READ_CHUNK * 2],
            rx_start: 0,
            rx_end: 0,
            need: 0,
            held: false,
            tx,
            tx_pos: 0,
            read_chunk: READ_CHUNK,
        };
        c.flush()?;
        Ok(c)
    }

    /// Drive the handshake with whatever has arrived. `Ok(true)` once traffic may flow.
    ///
    /// # Errors
    /// Handshake and protocol errors.
    pub fn advance_handshake(&mut self) -> Result<bool, ClientError> {
        loop {
            if self.session.is_traffic() {
                self.flush()?;
                return Ok(true);
            }
            match self.feed()? {
                Input::Ready { consumed } => {
                    self.rx_start += consumed;
                    continue;
                }
                Input::NeedMore { consumed, need } => {
                    self.rx_start += consumed;
                    self.need = need;
                }
                Input::Verify { .. } | Input::Message => {
                    return Err(ClientError::Protocol("unexpected input during the handshake"));
                }
            }
            self.flush()?;
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// Hand the unconsumed bytes to the session; its output (handshake replies, PONGs) is
    /// queued. An ERROR from the router becomes [`ClientError::Refused`].
    pub(super) fn feed(&mut self) -> Result<Input, ClientError> {
        self.compact_tx();
        let buf = self.rx.get_mut(self.rx_start..self.rx_end).unwrap_or(&mut []);
        match self.session.handle_input(buf, &mut self.tx, &mut OsRng) {
            Ok(input) => Ok(input),
            Err(SessionError::PeerError) => {
                Err(ClientError::Refused(String::from_utf8_lossy(self.session.error_reason()).into_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }
}
