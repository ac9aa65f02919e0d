//! The I/O thread: libzmq's `io_thread_t` loop over every connection, and per connection its
//! view ([`IoSock`]: the connecter, then the stream engine's batched reads and writes).
//!
//! Contract (the libzmq shape the parent module's doc lists): at most one read of [`IN_BATCH`]
//! bytes and one write of [`WRITE_CHUNK`] bytes per ready connection per loop turn;
//! complete messages only are handed to the inbound pipe, and the application thread is
//! signalled only if it was asleep on it; output is pulled from the outbound pipe only when the
//! previous batch is out, and a connection whose pipe ran dry sleeps until activated.

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::cost::frame_work;
use super::pipe::{Cmd, Frame, IoShared, PipeFrame, SockShared};
use super::{FAILED, IN_BATCH, MAX_QUEUED_FRAMES, READY, WAKER};
use crate::bench::client::{Client, ClientError, Security, WRITE_CHUNK};
use viprouter::server::listener::Endpoint;

/// The I/O thread's view of one connection.
struct IoSock {
    sh: Arc<SockShared>,
    /// A TCP connect in progress (libzmq's `tcp_connecter_t`), with what the client needs.
    connecting: Option<(mio::net::TcpStream, Vec<u8>, Security)>,
    client: Option<Client>,
    /// Decoded frames on their way into the inbound pipe.
    staged_in: VecDeque<PipeFrame>,
    /// Frames taken from the outbound pipe, being encoded.
    staged_out: VecDeque<PipeFrame>,
    readable: bool,
    writable: bool,
    /// WRITABLE interest registered (libzmq's `set_pollout`/`reset_pollout`).
    pollout: bool,
    active: bool,
}

/// The last staged frame has MORE set: its message is not complete yet.
fn more_follow(q: &VecDeque<PipeFrame>) -> bool {
    q.back().is_some_and(|f| f.more)
}

/// The address of a `tcp://` endpoint; `None` for ipc (connected at once).
fn tcp_addr(endpoint: &Endpoint) -> Option<Result<std::net::SocketAddr, ClientError>> {
    use std::net::ToSocketAddrs;
    let Endpoint::Tcp(hp) = endpoint else { return None };
    let hp = match hp.strip_prefix("*:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => hp.clone(),
    };
    Some(match hp.to_socket_addrs() {
        Ok(mut a) => a.next().ok_or(ClientError::Protocol("endpoint resolves to no address")),
        Err(e) => Err(ClientError::Io(e)),
    })
}

impl IoSock {
    /// Register a connected client for reading and writing and start servicing it.
    fn attach(&mut self, mut client: Client, registry: &mio::Registry, active: &mut Vec<usize>) {
        client.set_read_chunk(IN_BATCH);
        let fd = client.fd().as_raw_fd();
        let r = registry.register(&mut SourceFd(&fd), Token(self.sh.id), Interest::READABLE | Interest::WRITABLE);
        self.client = Some(client);
        match r {
            Ok(()) => {
                self.pollout = true;
                self.readable = true; // the greeting may already be there
                if !self.active {
                    self.active = true;
                    active.push(self.sh.id);
                }
            }
            Err(e) => self.fail(&ClientError::Io(e), registry),
        }
    }

    /// The connect finished (the socket turned writable): check it, then start ZMTP.
    fn finish_connect(&mut self, registry: &mio::Registry, active: &mut Vec<usize>) {
        let Some((mut stream, identity, security)) = self.connecting.take() else { return };
        let err = match stream.take_error() {
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                    self.connecting = Some((stream, identity, security)); // not yet
                    return;
                }
                Err(e) => Some(e),
            },
            Ok(Some(e)) | Err(e) => Some(e),
        };
        let _ = registry.deregister(&mut stream);
        if let Some(e) = err {
            self.fail(&ClientError::Io(e), registry);
            return;
        }
        match Client::from_tcp(std::net::TcpStream::from(stream), &identity, &security, true) {
            Ok(client) => self.attach(client, registry, active),
            Err(e) => self.fail(&e, registry),
        }
    }

    fn fail(&mut self, e: &ClientError, registry: &mio::Registry) {
        if let Ok(mut err) = self.sh.error.lock() {
            *err = Some(e.to_string());
        }
        self.sh.state.store(FAILED, Ordering::Release);
        if let Some(c) = self.client.take() {
            let _ = registry.deregister(&mut SourceFd(&c.fd().as_raw_fd()));
        }
        if let Some((mut stream, ..)) = self.connecting.take() {
            let _ = registry.deregister(&mut stream);
        }
        self.sh.signal();
    }

    /// One loop's worth of work; returns whether more is pending without a new event.
    fn service(&mut self, registry: &mio::Registry, io_cost: u32) -> bool {
        let Some(c) = self.client.as_mut() else { return false };
        if !c.is_ready() {
            match c.advance_handshake() {
                Ok(true) => {
                    self.sh.state.store(READY, Ordering::Release);
                    self.sh.signal();
                    self.writable = true;
                    self.readable = true; // messages may have come with the handshake
                }
                Ok(false) => return false,
                Err(e) => {
                    self.fail(&e, registry);
                    return false;
                }
            }
        }
        if let Err(e) = self.service_ready(io_cost) {
            self.fail(&e, registry);
            return false;
        }
        let Some(c) = self.client.as_ref() else { return false };
        let out_work = c.tx_len() > 0 || !self.sh.out_asleep.load(Ordering::SeqCst);
        if !out_work && self.pollout {
            // nothing to send: stop polling for output, as libzmq's engine does
            self.set_interest(registry, false);
        }
        self.readable || (self.writable && out_work)
    }

    /// `set_pollout` / `reset_pollout`: one `epoll_ctl` each, as in libzmq.
    fn set_interest(&mut self, registry: &mio::Registry, pollout: bool) {
        let Some(c) = self.client.as_ref() else { return };
        let interest = if pollout { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        let fd = c.fd().as_raw_fd();
        if registry.reregister(&mut SourceFd(&fd), Token(self.sh.id), interest).is_ok() {
            self.pollout = pollout;
        }
    }

    /// An application thread queued output while this connection slept on its pipe:
    /// libzmq's `restart_output` (`set_pollout`, then a speculative write).
    fn restart_output(&mut self, registry: &mio::Registry) {
        if !self.pollout {
            self.set_interest(registry, true);
        }
        self.writable = true;
    }

    fn service_ready(&mut self, io_cost: u32) -> Result<(), ClientError> {
        let Some(c) = self.client.as_mut() else { return Ok(()) };
        if self.readable {
            let n = c.read_once()?;
            if n < IN_BATCH {
                self.readable = false; // drained (edge-triggered: new data brings a new event)
            }
            while c.poll_message(false)? {
                let m = c.message();
                let n = m.len();
                for i in 0..n {
                    frame_work(io_cost);
                    self.staged_in.push_back(PipeFrame { frame: Frame::new(m.frame(i)), more: i + 1 < n });
                }
            }
            if !self.staged_in.is_empty() {
                if let Ok(mut q) = self.sh.inbound.lock() {
                    q.append(&mut self.staged_in);
                }
                if self.sh.in_asleep.swap(false, Ordering::SeqCst) {
                    self.sh.signal();
                }
            }
        }
        if self.writable {
            // libzmq's encoder fills its 8 KiB batch exactly, cutting messages across batches:
            // top the transmit buffer up to a full batch before each write.
            if c.tx_len() < WRITE_CHUNK {
                // take about the missing bytes' worth of whole messages under the lock ...
                if let Ok(mut q) = self.sh.out.lock() {
                    let mut bytes = c.tx_len();
                    while bytes < WRITE_CHUNK {
                        let Some(f) = q.pop_front() else {
                            self.sh.out_asleep.store(true, Ordering::SeqCst);
                            break;
                        };
                        bytes += f.frame.bytes().len() + 2;
                        self.staged_out.push_back(f);
                        // the rest of its message (queued under one lock: all there)
                        while more_follow(&self.staged_out)
                            && let Some(f) = q.pop_front()
                        {
                            bytes += f.frame.bytes().len() + 2;
                            self.staged_out.push_back(f);
                        }
                    }
                }
                // ... and encode them outside it
                while !self.staged_out.is_empty() {
                    let mut msg: heapless::Vec<PipeFrame, MAX_QUEUED_FRAMES> = heapless::Vec::new();
                    while let Some(f) = self.staged_out.pop_front() {
                        frame_work(io_cost);
                        let more = f.more;
                        if msg.push(f).is_err() {
                            return Err(ClientError::Protocol("message of too many frames"));
                        }
                        if !more {
                            break;
                        }
                    }
                    let frames: heapless::Vec<&[u8], MAX_QUEUED_FRAMES> = msg.iter().map(|f| f.frame.bytes()).collect();
                    c.queue(&frames)?;
                }
            }
            if c.tx_len() > 0 && c.flush_once()? == 0 {
                self.writable = false;
            }
        }
        Ok(())
    }
}

/// Put `s` on the active list (once).
fn mark(s: &mut IoSock, active: &mut Vec<usize>) {
    if !s.active {
        s.active = true;
        active.push(s.sh.id);
    }
}

pub(super) fn io_loop(mut poll: Poll, sh: &IoShared) {
    let mut events = Events::with_capacity(1024);
    let mut socks: HashMap<usize, IoSock> = HashMap::new();
    let mut active: Vec<usize> = Vec::new();
    let mut next: Vec<usize> = Vec::new();
    let mut cmds: Vec<Cmd> = Vec::new();
    while !sh.stop.load(Ordering::SeqCst) {
        let timeout = if active.is_empty() { Duration::from_millis(100) } else { Duration::ZERO };
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            if let Some(s) = socks.get_mut(&ev.token().0) {
                if s.connecting.is_some() {
                    s.finish_connect(poll.registry(), &mut active);
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    s.readable = true;
                }
                if ev.is_writable() {
                    s.writable = true;
                }
                mark(s, &mut active);
            }
        }
        if let Ok(mut q) = sh.cmds.lock() {
            std::mem::swap(&mut *q, &mut cmds);
        }
        for c in cmds.drain(..) {
            command(c, &poll, &mut socks, &mut active);
        }
        for id in active.drain(..) {
            let Some(s) = socks.get_mut(&id) else { continue };
            s.active = false;
            if s.service(poll.registry(), sh.io_cost) {
                s.active = true;
                next.push(id);
            }
        }
        std::mem::swap(&mut active, &mut next);
    }
}

/// One command from a worker thread: add a socket (connecting it), activate one, close one.
fn command(c: Cmd, poll: &Poll, socks: &mut HashMap<usize, IoSock>, active: &mut Vec<usize>) {
    match c {
        Cmd::Add { sock, endpoint, identity, security } => {
            let id = sock.id;
            let mut s = IoSock {
                sh: sock,
                connecting: None,
                client: None,
                staged_in: VecDeque::new(),
                staged_out: VecDeque::new(),
                readable: false,
                writable: false,
                pollout: true,
                active: false,
            };
            match tcp_addr(&endpoint) {
                // libzmq: non-blocking connect, wait for POLLOUT, then hand the socket over to a
                // new engine (deregistered and registered again)
                Some(Ok(addr)) => match mio::net::TcpStream::connect(addr) {
                    Ok(mut stream) => match poll.registry().register(&mut stream, Token(id), Interest::WRITABLE) {
                        Ok(()) => s.connecting = Some((stream, identity, security)),
                        Err(e) => s.fail(&ClientError::Io(e), poll.registry()),
                    },
                    Err(e) => s.fail(&ClientError::Io(e), poll.registry()),
                },
                Some(Err(e)) => s.fail(&e, poll.registry()),
                None => match Client::connect_start(&endpoint, &identity, &security) {
                    Ok(client) => s.attach(client, poll.registry(), active),
                    Err(e) => s.fail(&e, poll.registry()),
                },
            }
            socks.insert(id, s);
        }
        Cmd::Activate(id) => {
            if let Some(s) = socks.get_mut(&id) {
                if s.client.as_ref().is_some_and(Client::is_ready) {
                    s.restart_output(poll.registry());
                }
                mark(s, active);
            }
        }
        Cmd::Close(id) => {
            if let Some(mut s) = socks.remove(&id)
                && let Some(c) = s.client.take()
            {
                let _ = poll.registry().deregister(&mut SourceFd(&c.fd().as_raw_fd()));
            }
        }
    }
}
