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
//!
//! Layout: this file is the application side ([`IoThread`], [`IoSocket`]); `pipe` what both
//! sides share; `engine` the I/O thread; `cost` the libzmq cost model.

mod cost;
mod engine;
mod pipe;

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Token, Waker};

use super::client::{ClientError, Security};
use cost::scaled;
pub use cost::{FRAME_COST_APP, FRAME_COST_IO, MSG_COST_APP, frame_work};
use engine::io_loop;
use pipe::{Cmd, Frame, IoShared, PipeFrame, SockShared};
use viprouter::server::listener::Endpoint;
use viprouter::zmtp::{Message, Part};

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
        let shared = Arc::new(IoShared {
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
