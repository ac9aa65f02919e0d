//! One accepted connection: its stream, its ZMTP session, and its receive and transmit
//! buffers, all in one struct (one slot, one owner — DESIGN.md §2.10).
//!
//! Buffers start at `RX_BUF_MIN_BYTES`/`TX_BUF_MIN_BYTES` and grow only when needed (a large
//! message, or a busy connection whose reads fill the buffer), and only while the process-wide
//! [`Budget`] allows. They shrink back to the initial size only after `IDLE_SHRINK_MS` without
//! traffic ([`Conn::shrink_if_idle`]), so a warmed-up, busy connection allocates nothing.

use std::io;

use crate::limits::{IDLE_SHRINK_MS, RX_BUF_MIN_BYTES, TX_BUF_MIN_BYTES};
use crate::time::Instant;
use crate::zmtp::Parts;
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::session::Session;

mod buffers;
pub mod slots;
mod stream;

pub use buffers::{Budget, RxBuf, TxBuf};
pub use stream::Stream;

/// Why a connection is not reading now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// Its pending message waits for room in the queue of connection slot `on`.
    Recipient {
        /// Slot index of the full peer.
        on: u16,
        /// When the pause began.
        since: Instant,
    },
    /// Its receive buffer may not grow: the buffer budget is exhausted. Resumed once `extra`
    /// more bytes fit (resuming sooner would only fail again, every turn).
    Budget {
        /// The growth it waits for.
        extra: usize,
    },
}

fn bounded(s: &str) -> heapless::String<64> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Everything the server keeps per connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: Stream,
    /// ZMTP state.
    pub session: Session,
    /// Received bytes.
    pub rx: RxBuf,
    /// Bytes to send.
    pub tx: TxBuf,
    /// Index of the listener it came from.
    pub listener: u8,
    /// When it was accepted.
    pub accepted_at: Instant,
    /// The handshake completed.
    pub handshake_done: bool,
    /// Its identity is attached in the router (false for an ignored duplicate).
    pub attached: bool,
    /// Not reading, and why.
    pub paused: Option<Pause>,
    /// The next retry of the pending message answers error 11 instead of waiting.
    pub stall_expired: bool,
    /// A complete message that could not be routed yet (its recipient was full): its frames,
    /// and the bytes to consume once it is routed (0 = none).
    pub pending_parts: Parts,
    /// See `pending_parts`.
    pub pending_consumed: usize,
    /// Its queue stayed full for longer than the stall time: messages to it are answered with
    /// error 11 at once until the queue drains below half.
    pub stalled: bool,
    /// WRITABLE interest is registered.
    pub want_write: bool,
    /// Queued on the dirty list this turn.
    pub dirty: bool,
    /// Queued on the ready list (this turn's or the next), to be serviced without an event.
    pub in_ready: bool,
    /// The peer closed its side (EOF read).
    pub eof: bool,
    /// Last time bytes moved in or out (for `IDLE_SHRINK_MS`).
    pub last_active: Instant,
    /// For logs: the peer's address.
    pub peer: heapless::String<64>,
    /// The address the authorisation sees: TCP peer IP without port, or
    /// `localhost:uid:gid:pid` for ipc (VIP.md §9.6).
    pub auth_addr: heapless::String<64>,
}

impl Conn {
    /// A connection just accepted; our greeting is already queued. Takes its initial buffers
    /// from `budget` (the caller checked it has room).
    pub fn new(stream: Stream, mechanism: Mechanism, listener: u8, now: Instant, peer: &str, auth_addr: &str) -> Conn {
        let mut tx = TxBuf { buf: Vec::with_capacity(TX_BUF_MIN_BYTES), sent: 0 };
        let session = Session::new(mechanism, &mut tx.buf);
        let label = bounded(peer);
        Conn {
            stream,
            session,
            rx: RxBuf { buf: vec![0u8; RX_BUF_MIN_BYTES], start: 0, end: 0 },
            tx,
            listener,
            accepted_at: now,
            handshake_done: false,
            attached: false,
            paused: None,
            stall_expired: false,
            pending_parts: Parts::new(),
            pending_consumed: 0,
            stalled: false,
            want_write: false,
            dirty: false,
            in_ready: false,
            eof: false,
            last_active: now,
            peer: label,
            auth_addr: bounded(auth_addr),
        }
    }

    /// Bytes a new connection takes from the budget.
    pub const INITIAL_BYTES: usize = RX_BUF_MIN_BYTES + TX_BUF_MIN_BYTES;

    /// Buffer bytes this connection holds (returned to the budget on close).
    pub fn buffer_bytes(&self) -> usize {
        self.rx.buf.len() + self.tx.capacity()
    }

    /// After `IDLE_SHRINK_MS` without traffic, give buffers that grew back to their initial
    /// size. Returns the bytes given back to the budget.
    pub fn shrink_if_idle(&mut self, now: Instant) -> usize {
        if now.since(self.last_active) < IDLE_SHRINK_MS || self.tx.pending() > 0 || !self.rx.is_empty() {
            return 0;
        }
        let mut freed = 0;
        if self.rx.buf.len() > RX_BUF_MIN_BYTES {
            freed += self.rx.buf.len() - RX_BUF_MIN_BYTES;
            self.rx = RxBuf { buf: vec![0u8; RX_BUF_MIN_BYTES], start: 0, end: 0 };
        }
        if self.tx.buf.capacity() > TX_BUF_MIN_BYTES {
            freed += self.tx.buf.capacity() - TX_BUF_MIN_BYTES;
            self.tx = TxBuf { buf: Vec::with_capacity(TX_BUF_MIN_BYTES), sent: 0 };
        }
        freed
    }

    /// Read into the free tail of the receive buffer.
    ///
    /// # Errors
    /// The socket's error (`WouldBlock` included).
    pub fn read(&mut self) -> io::Result<usize> {
        let tail = self.rx.buf.get_mut(self.rx.end..).unwrap_or(&mut []);
        let n = self.stream.read(tail)?;
        self.rx.end += n;
        Ok(n)
    }

    /// Write queued bytes until the queue is empty or the socket would block. Returns the
    /// bytes written.
    ///
    /// # Errors
    /// A socket error other than `WouldBlock`/`Interrupted`.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while self.tx.pending() > 0 {
            let chunk = self.tx.buf.get(self.tx.sent..).unwrap_or(&[]);
            match self.stream.write(chunk) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.tx.sent += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.tx.pending() == 0 {
            self.tx.buf.clear();
            self.tx.sent = 0;
        }
        Ok(total)
    }
}
