//! A libzmq-shaped client context: one I/O thread owns every connection; application
//! threads hand it messages through per-socket pipes and are woken through a per-socket
//! signal descriptor (libzmq's `io_thread_t`, `ypipe_t`, `mailbox_t`/`signaler_t`).
//!
//! Why: vipbench's figures are those of a libzmq client. A generator that writes straight
//! from the application thread pays no thread hand-off per message (rtt), feeds the router
//! fewer, larger batches (route: the router's CPU per message drops) and costs far less
//! CPU, which on a 2-core machine is CPU left to the router. To measure what vipbench
//! measures, and what VOLTTRON agents (pyzmq, hence libzmq) do to a router, the default
//! generator has libzmq's shape:
//!
//! * the I/O thread does one `read` of at most 8 KiB per readable connection per loop
//!   (`in_batch_size`), decodes every complete message into the socket's inbound pipe and
//!   signals the application thread only if it was asleep on that pipe;
//! * it writes at most 8 KiB per writable connection per loop (`out_batch_size`), refilled
//!   from the outbound pipe only when the previous batch is out; when that pipe runs dry it
//!   goes to sleep on it, and the next message an application thread queues activates it
//!   (a command plus a wake-up of the I/O thread's poller, libzmq's `activate_read`);
//! * connecting and the ZMTP handshake happen in the I/O thread; messages queued before the
//!   handshake completed wait in the pipe (`zmq_connect` + `zmq_send` semantics).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::client::{Client, ClientError, Security, WRITE_CHUNK};
use crate::server::listener::Endpoint;
use crate::zmtp::{Message, Part};

/// libzmq's `in_batch_size`.
pub const IN_BATCH: usize = 8192;
/// libzmq's `inbound_poll_rate`: frames received between two mailbox checks.
const INBOUND_POLL_RATE: u32 = 100;
/// Most frames in one queued message.
const MAX_QUEUED_FRAMES: usize = 64;
/// Frames kept per received message (vipbench's `MAXF`); more are dropped.
const MAX_FRAMES: usize = 24;
const WAKER: Token = Token(usize::MAX);

const CONNECTING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// The libzmq cost model, in [`frame_work`] steps (about 1 ns each on the 2-core x86-64
/// machine vipbench was compared on), at `--zmq-cost 100`.
///
/// libzmq handles every frame on its own (`zmq_msg_t` init/move/close, `ypipe_t`
/// write/read, the v2 encoder/decoder state machine, `socket_base_t` bookkeeping on each
/// `zmq_send`/`zmq_msg_recv`), which costs it more than the pipes here; its system calls
/// (mailbox checks with `getpid`, eventfd signalling, `POLLOUT` toggling, the connecter,
/// the staged greeting) are done for real above. The rest is calibrated against vipbench
/// on the same router (`../shared/bench/vipbench.c`, libzmq 4.3.4):
/// * 40 steps per frame, two thirds in the I/O thread (encoder/decoder), one third in the
///   application thread: the gap in generator CPU per routed message (route, 12 frame
///   hand-offs per message), split as vipbench's CPU is between libzmq's I/O thread and
///   its workers (`perf stat --per-thread`: 0.94 vs 0.64 CPU at 1 M msg/s), which makes
///   the I/O thread the bottleneck it is there;
/// * 150 steps per message taken by the application (`zmq_msg_recv` of each frame and
///   vipbench's `mm_recv`): the gap per peer that remained in `peers`, where 500 small
///   peerlist notices per peer dominate.
///
/// Without it (`--zmq-cost 0`) this client costs about half of what libzmq does, and on a
/// machine where router and generator share the CPU its throughput figures run ahead of
/// vipbench's.
pub const FRAME_COST_IO: u32 = 27;
/// See [`FRAME_COST_IO`]: the application thread's share per frame.
pub const FRAME_COST_APP: u32 = 13;
/// See [`FRAME_COST_IO`]: per message received by the application thread.
pub const MSG_COST_APP: u32 = 150;

/// Scale a 100 % cost to `percent`.
fn scaled(cost: u32, percent: u32) -> u32 {
    u32::try_from(u64::from(cost) * u64::from(percent) / 100).unwrap_or(u32::MAX)
}

/// `n` dependent shift-xor-multiply steps the compiler cannot fold.
#[inline(never)]
pub fn frame_work(n: u32) {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..n {
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    std::hint::black_box(x);
}

/// libzmq keeps message parts of at most 33 bytes inside the `zmq_msg_t` (VSM).
const VSM: usize = 33;

/// One message part in a pipe, held as libzmq holds it: small ones inline, larger ones in
/// a heap block of their own (the decoder's `malloc` per large frame).
enum Frame {
    Vsm { len: u8, data: [u8; VSM] },
    Heap(Vec<u8>),
}

impl Frame {
    fn new(b: &[u8]) -> Frame {
        if b.len() <= VSM {
            let mut data = [0u8; VSM];
            for (d, s) in data.iter_mut().zip(b) {
                *d = *s;
            }
            Frame::Vsm { len: b.len() as u8, data }
        } else {
            Frame::Heap(b.to_vec())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Frame::Vsm { len, data } => data.get(..usize::from(*len)).unwrap_or(&[]),
            Frame::Heap(v) => v,
        }
    }
}

/// A frame and whether more of its message follow: the unit libzmq's pipes carry.
struct PipeFrame {
    frame: Frame,
    more: bool,
}

/// State shared by a socket's application side and the I/O thread.
struct SockShared {
    id: usize,
    /// Application → I/O thread, frame by frame.
    out: Mutex<VecDeque<PipeFrame>>,
    /// The I/O thread found `out` empty and waits for an activation.
    out_asleep: AtomicBool,
    /// I/O thread → application, frame by frame.
    inbound: Mutex<VecDeque<PipeFrame>>,
    /// The application found `inbound` empty and may be waiting on its descriptor.
    in_asleep: AtomicBool,
    state: AtomicU8,
    error: Mutex<Option<String>>,
    /// Application end of the signal pair (polled, drained).
    app_fd: UnixStream,
    /// I/O thread end (written).
    io_fd: UnixStream,
}

impl SockShared {
    fn signal(&self) {
        let _ = (&self.io_fd).write(&[1]);
    }
}

enum Cmd {
    Add { sock: Arc<SockShared>, endpoint: Endpoint, identity: Vec<u8>, security: Security },
    Activate(usize),
    Close(usize),
}

struct IoShared {
    /// Per-frame work on the application side of a pipe (`zmq_send`/`zmq_msg_recv`).
    app_cost: u32,
    /// Per-frame work in the I/O thread (encoder/decoder, session).
    io_cost: u32,
    /// Per message received, application side.
    msg_cost: u32,
    waker: Waker,
    cmds: Mutex<Vec<Cmd>>,
    stop: AtomicBool,
    next_id: AtomicUsize,
}

impl IoShared {
    fn command(&self, c: Cmd) {
        if let Ok(mut q) = self.cmds.lock() {
            q.push(c);
        }
        let _ = self.waker.wake();
    }
}

/// The context: one I/O thread (vipbench runs libzmq with one).
pub struct IoThread {
    shared: Arc<IoShared>,
    handle: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Start the I/O thread with the libzmq cost model at `zmq_cost_percent` (100: libzmq's).
    ///
    /// # Errors
    /// Poller or thread creation errors.
    pub fn start(zmq_cost_percent: u32) -> Result<IoThread, String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| format!("waker: {e}"))?;
        let shared =
            Arc::new(IoShared {
                app_cost: scaled(FRAME_COST_APP, zmq_cost_percent),
                io_cost: scaled(FRAME_COST_IO, zmq_cost_percent),
                msg_cost: scaled(MSG_COST_APP, zmq_cost_percent),
                waker,
                cmds: Mutex::new(Vec::new()),
                stop: AtomicBool::new(false),
                next_id: AtomicUsize::new(0),
            });
        let sh = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("bench-io".into())
            .spawn(move || io_loop(poll, &sh))
            .map_err(|e| format!("I/O thread: {e}"))?;
        Ok(IoThread { shared, handle: Some(handle) })
    }

    /// A socket connecting to `endpoint` in the background (`zmq_connect`).
    ///
    /// # Errors
    /// Signal pair creation.
    pub fn socket(&self, endpoint: &Endpoint, identity: &[u8], security: &Security) -> Result<IoSocket, ClientError> {
        let (app_fd, io_fd) = UnixStream::pair()?;
        app_fd.set_nonblocking(true)?;
        io_fd.set_nonblocking(true)?;
        let sock = Arc::new(SockShared {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            out: Mutex::new(VecDeque::new()),
            out_asleep: AtomicBool::new(true),
            inbound: Mutex::new(VecDeque::new()),
            in_asleep: AtomicBool::new(false),
            state: AtomicU8::new(CONNECTING),
            error: Mutex::new(None),
            app_fd,
            io_fd,
        });
        self.shared.command(Cmd::Add {
            sock: Arc::clone(&sock),
            endpoint: endpoint.clone(),
            identity: identity.to_vec(),
            security: security.clone(),
        });
        Ok(IoSocket {
            sock,
            io: Arc::clone(&self.shared),
            local: VecDeque::new(),
            buf: Vec::new(),
            parts: heapless::Vec::new(),
            has: false,
            ticks: Cell::new(0),
        })
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The application side of one DEALER socket.
pub struct IoSocket {
    sock: Arc<SockShared>,
    io: Arc<IoShared>,
    /// Frames taken from the pipe in one go (whole messages).
    local: VecDeque<PipeFrame>,
    /// The current message, reassembled from its frames for [`IoSocket::message`].
    buf: Vec<u8>,
    parts: heapless::Vec<Part, MAX_FRAMES>,
    has: bool,
    /// Frames received since the last mailbox check (libzmq `socket_base_t::_ticks`).
    ticks: Cell<u32>,
}

impl IoSocket {
    /// Handshake done?
    pub fn is_ready(&self) -> bool {
        self.sock.state.load(Ordering::Acquire) == READY
    }

    /// The connection's failure, if it failed.
    ///
    /// # Errors
    /// The failure.
    pub fn check(&self) -> Result<(), ClientError> {
        if self.sock.state.load(Ordering::Acquire) == FAILED {
            let msg = self.sock.error.lock().ok().and_then(|e| e.clone()).unwrap_or_default();
            return Err(ClientError::Refused(msg));
        }
        Ok(())
    }

    /// Descriptor readable when messages (or a state change) arrived (`ZMQ_FD`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.app_fd.as_fd()
    }

    /// Queue one multipart message (`zmq_send` of each frame: one pipe entry per frame,
    /// flushed to the I/O thread after the last).
    ///
    /// # Errors
    /// None today; kept for symmetry with the direct client.
    pub fn queue(&mut self, frames: &[&[u8]]) -> Result<(), ClientError> {
        let last = frames.len().saturating_sub(1);
        let mut staged: heapless::Vec<PipeFrame, MAX_QUEUED_FRAMES> = heapless::Vec::new();
        for (i, f) in frames.iter().enumerate() {
            frame_work(self.io.app_cost);
            if staged.push(PipeFrame { frame: Frame::new(f), more: i < last }).is_err() {
                return Err(ClientError::Protocol("message of too many frames"));
            }
        }
        // the pipe lock is held only to link the frames in, never while working on them
        if let Ok(mut q) = self.sock.out.lock() {
            q.extend(staged);
        }
        if self.sock.out_asleep.load(Ordering::SeqCst) && self.sock.out_asleep.swap(false, Ordering::SeqCst) {
            self.io.command(Cmd::Activate(self.sock.id));
        }
        Ok(())
    }

    /// Take the next received message, if any (non-blocking); it is then [`IoSocket::message`].
    ///
    /// As `zmq_msg_recv(ZMQ_DONTWAIT)`: the pipe first; when it is empty, the mailbox is
    /// checked (a zero-timeout `poll` of the signal descriptor, drained when signalled) and
    /// the pipe read again. That system call on every empty receive is part of what a libzmq
    /// client costs, and part of what vipbench measures.
    ///
    /// # Errors
    /// The connection's failure.
    pub fn poll_message(&mut self) -> Result<bool, ClientError> {
        if self.take() {
            return Ok(true);
        }
        self.check_mailbox();
        if self.take() {
            return Ok(true);
        }
        self.check()?;
        Ok(false)
    }

    /// Take the next message from the local batch, refilled from the shared pipe; marks
    /// the reader asleep when both are empty.
    fn take(&mut self) -> bool {
        if self.local.is_empty()
            && let Ok(mut q) = self.sock.inbound.lock()
        {
            std::mem::swap(&mut *q, &mut self.local);
            if self.local.is_empty() {
                self.sock.in_asleep.store(true, Ordering::SeqCst);
            }
        }
        self.has = false;
        self.buf.clear();
        self.parts.clear();
        while let Some(f) = self.local.pop_front() {
            frame_work(self.io.app_cost);
            // libzmq checks its mailbox every `inbound_poll_rate` (100) frames received
            self.ticks.set(self.ticks.get() + 1);
            if self.ticks.get() >= INBOUND_POLL_RATE {
                self.check_mailbox();
            }
            let b = f.frame.bytes();
            let start = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
            // beyond MAX_FRAMES frames are dropped, as vipbench's receive does
            if self.parts.push(Part { start, len: u32::try_from(b.len()).unwrap_or(0) }).is_ok() {
                self.buf.extend_from_slice(b);
            }
            if !f.more {
                self.has = true;
                frame_work(self.io.msg_cost);
                break;
            }
        }
        self.has
    }

    /// libzmq's `mailbox_t::recv(…, 0)`: poll the signal descriptor without waiting and
    /// drain it when it was signalled. `signaler_t::wait` and `recv` also call `getpid()`
    /// each time (fork detection); so does this, to cost what they cost.
    fn check_mailbox(&self) {
        self.ticks.set(0);
        std::hint::black_box(std::process::id());
        let mut fds = [nix::poll::PollFd::new(self.fd(), nix::poll::PollFlags::POLLIN)];
        if matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0) {
            self.drain_signal();
        }
    }

    fn drain_signal(&self) {
        std::hint::black_box(std::process::id());
        let mut b = [0u8; 64];
        while matches!((&self.sock.app_fd).read(&mut b), Ok(n) if n == b.len()) {}
    }

    /// `getsockopt(ZMQ_EVENTS)`: process pending commands (the mailbox check) and tell
    /// whether a message is waiting.
    pub fn events(&self) -> bool {
        self.check_mailbox();
        !self.local.is_empty() || self.sock.inbound.lock().map(|q| !q.is_empty()).unwrap_or(false)
    }

    /// The message taken by the last successful [`IoSocket::poll_message`].
    pub fn message(&self) -> Message<'_> {
        if self.has { Message::new(&self.buf, &self.parts) } else { Message::new(&[], &[]) }
    }

    /// Wait until a message arrives or `deadline`. `Ok(false)`: timed out.
    ///
    /// # Errors
    /// The connection's failure.
    pub fn recv_until(&mut self, deadline: Instant) -> Result<bool, ClientError> {
        // As a blocking zmq_msg_recv: the pipe, else wait on the mailbox and read it.
        loop {
            if self.take() {
                return Ok(true);
            }
            self.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            super::client::wait_fds(&mut [nix::poll::PollFd::new(self.fd(), nix::poll::PollFlags::POLLIN)], left)?;
            self.drain_signal();
        }
    }

    /// Wait for the handshake until `deadline`.
    ///
    /// # Errors
    /// The connection's failure, [`ClientError::Timeout`].
    pub fn wait_ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        loop {
            self.check()?;
            if self.is_ready() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            let left = left.min(Duration::from_millis(50));
            super::client::wait_fds(&mut [nix::poll::PollFd::new(self.fd(), nix::poll::PollFlags::POLLIN)], left)?;
            self.check_mailbox();
        }
    }
}

impl Drop for IoSocket {
    fn drop(&mut self) {
        self.io.command(Cmd::Close(self.sock.id));
    }
}

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

fn io_loop(mut poll: Poll, sh: &IoShared) {
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
        let mark = |s: &mut IoSock, active: &mut Vec<usize>| {
            if !s.active {
                s.active = true;
                active.push(s.sh.id);
            }
        };
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
                        // libzmq: non-blocking connect, wait for POLLOUT, then hand the socket
                        // over to a new engine (deregistered and registered again)
                        Some(Ok(addr)) => match mio::net::TcpStream::connect(addr) {
                            Ok(mut stream) => {
                                match poll.registry().register(&mut stream, Token(id), Interest::WRITABLE) {
                                    Ok(()) => s.connecting = Some((stream, identity, security)),
                                    Err(e) => s.fail(&ClientError::Io(e), poll.registry()),
                                }
                            }
                            Err(e) => s.fail(&ClientError::Io(e), poll.registry()),
                        },
                        Some(Err(e)) => s.fail(&e, poll.registry()),
                        None => match Client::connect_start(&endpoint, &identity, &security) {
                            Ok(client) => s.attach(client, poll.registry(), &mut active),
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
                        mark(s, &mut active);
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
