//! One VIP connection for `viprouter stats`: blocking socket I/O with timeouts (a client, not the
//! router's event loop) around the library's sans-IO client session
//! ([`ClientSession`]: greeting, NULL or CURVE handshake, deframing, CURVE MESSAGE boxes).
//!
//! Contract: [`Connection::open`] connects and completes the handshake within the timeout;
//! [`Connection::hello`] and [`Connection::query`] send one request each and wait, within the
//! timeout, for the reply with its MSG_ID (other messages — `peerlist` notices — are skipped).
//! Every failure is a [`Failure`] of the kind its exit status reports: nothing listening
//! ([`Failure::Absent`]), no answer in time ([`Failure::Timeout`]), an ERROR or a connection the
//! router closed during the handshake ([`Failure::Refused`]), anything else
//! ([`Failure::Protocol`]).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rand_core::OsRng;

use viprouter::limits::Limits;
use viprouter::server::listener::Endpoint;
use viprouter::zmtp::SessionError;
use viprouter::zmtp::session::Input;
use viprouter::zmtp::session::client::{ClientConfig, ClientSecurity, ClientSession};

use super::Failure;
use super::target::Target;

const VIP1: &[u8] = b"VIP1";
/// How a connection the router ended is reported (and recognised during the handshake).
const CLOSED: &str = "the router closed the connection";
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;

/// A connected socket of either family.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(Some(t)).and_then(|()| s.set_write_timeout(Some(t))),
            Socket::Unix(s) => s.set_read_timeout(Some(t)).and_then(|()| s.set_write_timeout(Some(t))),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.write_all(buf),
            Socket::Unix(s) => s.write_all(buf),
        }
    }
}

/// What the session produced.
enum Event {
    Ready,
    Message(Vec<Vec<u8>>),
}

/// A connection that completed its handshake.
pub struct Connection {
    socket: Socket,
    session: ClientSession,
    /// Received bytes; `rx[start..end]` is not consumed yet.
    rx: Vec<u8>,
    start: usize,
    end: usize,
    tx: Vec<u8>,
    timeout: Duration,
    address: String,
    requests: u32,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Connect to `endpoint` within `timeout`.
fn connect(endpoint: &Endpoint, address: &str, timeout: Duration) -> Result<Socket, Failure> {
    let failed = |e: io::Error| match e.kind() {
        _ if is_timeout(&e) => Failure::Timeout(format!("{address}: no connection within {} s", timeout.as_secs())),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound | io::ErrorKind::AddrNotAvailable => {
            Failure::Absent(format!("no router at {address} ({e})"))
        }
        _ => Failure::Absent(format!("{address}: {e}")),
    };
    match endpoint {
        Endpoint::Tcp(host_port) => {
            let addr = host_port
                .to_socket_addrs()
                .map_err(|e| Failure::Config(format!("{address}: {e}")))?
                .next()
                .ok_or_else(|| Failure::Config(format!("{address}: the host has no address")))?;
            let s = TcpStream::connect_timeout(&addr, timeout).map_err(failed)?;
            let _ = s.set_nodelay(true);
            Ok(Socket::Tcp(s))
        }
        Endpoint::IpcAbstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| Failure::Config(format!("{address}: {e}")))?;
            UnixStream::connect_addr(&sa).map(Socket::Unix).map_err(failed)
        }
        Endpoint::IpcPath(path) => UnixStream::connect(path).map(Socket::Unix).map_err(failed),
    }
}

impl Connection {
    /// Connect to `target` and complete the handshake; `timeout` bounds each step.
    ///
    /// # Errors
    /// See the module doc.
    pub fn open(target: &Target, timeout: Duration) -> Result<Connection, Failure> {
        let socket = connect(&target.endpoint, &target.address, timeout)?;
        socket.set_timeouts(timeout).map_err(|e| Failure::Protocol(format!("{}: {e}", target.address)))?;
        let config = ClientConfig {
            security: target.security.clone(),
            identity: heapless::Vec::from_slice(&target.identity)
                .map_err(|_| Failure::Config("--identity: longer than 255 bytes".into()))?,
            limits: Limits::COMPILED,
            staged_greeting: false,
        };
        let mut tx = Vec::new();
        let session = ClientSession::new(&config, &mut tx, &mut OsRng)
            .map_err(|e| Failure::Config(format!("server key of {}: {e}", target.address)))?;
        let mut c = Connection {
            socket,
            session,
            rx: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            tx,
            timeout,
            address: target.address.clone(),
            requests: 0,
        };
        let deadline = Instant::now() + timeout;
        match c.next_event(deadline) {
            Ok(Event::Ready) => Ok(c),
            Ok(Event::Message(_)) => Err(Failure::Protocol(format!("{}: a message before the handshake", c.address))),
            Err(e) => Err(c.handshake_failure(e, target)),
        }
    }

    /// A failure during the handshake, explained.
    fn handshake_failure(&self, e: Failure, target: &Target) -> Failure {
        let curve = matches!(target.security, ClientSecurity::Curve { .. });
        match e {
            Failure::Protocol(m) if m.ends_with(CLOSED) && curve => Failure::Refused(format!(
                "{}: the router closed the connection during the CURVE handshake: it cannot use our keys \
                 (a wrong server key?), or refused the peer",
                self.address
            )),
            Failure::Protocol(m) if m.ends_with(CLOSED) => {
                Failure::Refused(format!("{}: the router closed the connection during the handshake", self.address))
            }
            Failure::Refused(m) => Failure::Refused(format!("{m} (our key: {})", target.keys_from)),
            other => other,
        }
    }

    /// Say hello and wait for the welcome (VIP.md §5.1).
    ///
    /// # Errors
    /// See the module doc.
    pub fn hello(&mut self) -> Result<(), Failure> {
        let reply = self.request(b"hello", b"hello")?;
        if reply.get(5).map(Vec::as_slice) == Some(b"welcome") {
            Ok(())
        } else {
            Err(Failure::Protocol(format!("{}: hello was not welcomed", self.address)))
        }
    }

    /// `query KEY` (VIP.md §5.4): the value.
    ///
    /// # Errors
    /// See the module doc.
    pub fn query(&mut self, key: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut reply = self.request(b"query", key)?;
        if reply.len() < 7 {
            return Err(Failure::Protocol(format!("{}: a query reply of {} frames", self.address, reply.len())));
        }
        Ok(reply.swap_remove(6))
    }

    /// Send `['', VIP1, '', ID, subsystem, arg]` and wait for the reply with ID in `subsystem`.
    fn request(&mut self, subsystem: &[u8], arg: &[u8]) -> Result<Vec<Vec<u8>>, Failure> {
        self.requests += 1;
        let id = format!("viprouter.stats.{}", self.requests).into_bytes();
        let mut encoder = self.session.encoder().ok_or_else(|| Failure::Protocol("no handshake".into()))?;
        encoder
            .encode(&[b"", VIP1, b"", &id, subsystem, arg], &mut self.tx)
            .map_err(|e| Failure::Protocol(format!("{}: {e}", self.address)))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let Event::Message(frames) = self.next_event(deadline)? else { continue };
            let is = |i: usize, want: &[u8]| frames.get(i).map(Vec::as_slice) == Some(want);
            if frames.len() >= 5 && is(1, VIP1) && is(3, &id) {
                if is(4, subsystem) {
                    return Ok(frames);
                }
                if is(4, b"error") {
                    let text =
                        |i: usize| String::from_utf8_lossy(frames.get(i).map_or(&[][..], Vec::as_slice)).into_owned();
                    return Err(Failure::Protocol(format!(
                        "{}: {} answered with VIP error {} {}",
                        self.address,
                        String::from_utf8_lossy(subsystem),
                        text(5),
                        text(6)
                    )));
                }
            }
        }
    }

    /// Write what is queued, then feed the session until it has an event, reading as needed.
    fn next_event(&mut self, deadline: Instant) -> Result<Event, Failure> {
        loop {
            if !self.tx.is_empty() {
                self.socket.write_all(&self.tx).map_err(|e| self.io_failure(&e))?;
                self.tx.clear();
            }
            let buf = self.rx.get_mut(self.start..self.end).unwrap_or(&mut []);
            match self.session.handle_input(buf, &mut self.tx, &mut OsRng) {
                Ok(Input::Ready { consumed }) => {
                    self.start += consumed;
                    return Ok(Event::Ready);
                }
                Ok(Input::Message) => {
                    let buf = self.rx.get(self.start..self.end).unwrap_or(&[]);
                    let m = self.session.message(buf);
                    let frames = (0..m.len()).map(|i| m.frame(i).to_vec()).collect();
                    self.start += self.session.release();
                    return Ok(Event::Message(frames));
                }
                Ok(Input::NeedMore { consumed, need }) => {
                    self.start += consumed;
                    if self.tx.is_empty() {
                        self.fill(need, deadline)?;
                    }
                }
                Ok(Input::Verify { .. }) => return Err(Failure::Protocol("a client is never asked to verify".into())),
                Err(SessionError::PeerError) => {
                    let reason = String::from_utf8_lossy(self.session.error_reason()).into_owned();
                    return Err(Failure::Refused(format!("{}: the router sent ERROR {reason:?}", self.address)));
                }
                Err(SessionError::MechanismMismatch) => {
                    return Err(Failure::Config(format!(
                        "{}: the router serves another security mechanism (allow-auth, server= of the address, \
                         --serverkey)",
                        self.address
                    )));
                }
                Err(e) => return Err(Failure::Protocol(format!("{}: {e}", self.address))),
            }
        }
    }

    /// Read until `rx[start..]` holds at least `need` bytes or more arrived, by `deadline`.
    fn fill(&mut self, need: usize, deadline: Instant) -> Result<(), Failure> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.rx.len() < self.start + need.max(self.end - self.start) + READ_CHUNK {
            self.rx.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            let want = need.max(self.end) + READ_CHUNK;
            if self.rx.len() < want {
                self.rx.resize(want, 0);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        self.socket.set_timeouts(left).map_err(|e| Failure::Protocol(format!("{}: {e}", self.address)))?;
        let buf = self.rx.get_mut(self.end..).unwrap_or(&mut []);
        loop {
            match self.socket.read(buf) {
                Ok(0) => return Err(Failure::Protocol(format!("{}: {CLOSED}", self.address))),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_failure(&e)),
            }
        }
    }

    fn timed_out(&self) -> Failure {
        Failure::Timeout(format!("{}: no answer within {} s", self.address, self.timeout.as_secs()))
    }

    fn io_failure(&self, e: &io::Error) -> Failure {
        if is_timeout(e) {
            return self.timed_out();
        }
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                Failure::Protocol(format!("{}: {CLOSED}", self.address))
            }
            _ => Failure::Protocol(format!("{}: {e}", self.address)),
        }
    }
}
