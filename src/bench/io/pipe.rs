//! What the application threads and the I/O thread share: the per-socket pipes of frames
//! (libzmq's `ypipe_t`, frames held as libzmq holds them), the signal pair that wakes an
//! application thread (`signaler_t`), and the command queue that wakes the I/O thread
//! (`mailbox_t` + the poller's waker).
//!
//! Contract: every lock here is held only to link frames in or out, never while working on
//! them; a side that finds its pipe empty says so (`out_asleep`, `in_asleep`) and the other
//! side wakes it with exactly one signal or command when it next adds something.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize};
use std::sync::{Arc, Mutex};

use mio::Waker;

use crate::bench::client::Security;
use viprouter::server::listener::Endpoint;

/// libzmq keeps message parts of at most 33 bytes inside the `zmq_msg_t` (VSM).
const VSM: usize = 33;

/// One message part in a pipe, held as libzmq holds it: small ones inline, larger ones in
/// a heap block of their own (the decoder's `malloc` per large frame).
pub(super) enum Frame {
    Vsm { len: u8, data: [u8; VSM] },
    Heap(Vec<u8>),
}

impl Frame {
    pub(super) fn new(b: &[u8]) -> Frame {
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

    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Frame::Vsm { len, data } => data.get(..usize::from(*len)).unwrap_or(&[]),
            Frame::Heap(v) => v,
        }
    }
}

/// A frame and whether more of its message follow: the unit libzmq's pipes carry.
pub(super) struct PipeFrame {
    pub(super) frame: Frame,
    pub(super) more: bool,
}

/// State shared by a socket's application side and the I/O thread.
pub(super) struct SockShared {
    pub(super) id: usize,
    /// Application → I/O thread, frame by frame.
    pub(super) out: Mutex<VecDeque<PipeFrame>>,
    /// The I/O thread found `out` empty and waits for an activation.
    pub(super) out_asleep: AtomicBool,
    /// I/O thread → application, frame by frame.
    pub(super) inbound: Mutex<VecDeque<PipeFrame>>,
    /// The application found `inbound` empty and may be waiting on its descriptor.
    pub(super) in_asleep: AtomicBool,
    pub(super) state: AtomicU8,
    pub(super) error: Mutex<Option<String>>,
    /// Application end of the signal pair (polled, drained).
    pub(super) app_fd: UnixStream,
    /// I/O thread end (written).
    pub(super) io_fd: UnixStream,
}

impl SockShared {
    pub(super) fn signal(&self) {
        let _ = (&self.io_fd).write(&[1]);
    }
}

pub(super) enum Cmd {
    Add { sock: Arc<SockShared>, endpoint: Endpoint, identity: Vec<u8>, security: Security },
    Activate(usize),
    Close(usize),
}

pub(super) struct IoShared {
    /// Per-frame work on the application side of a pipe (`zmq_send`/`zmq_msg_recv`).
    pub(super) app_cost: u32,
    /// Per-frame work in the I/O thread (encoder/decoder, session).
    pub(super) io_cost: u32,
    /// Per message received, application side.
    pub(super) msg_cost: u32,
    pub(super) waker: Waker,
    pub(super) cmds: Mutex<Vec<Cmd>>,
    pub(super) stop: AtomicBool,
    pub(super) next_id: AtomicUsize,
}

impl IoShared {
    pub(super) fn command(&self, c: Cmd) {
        if let Ok(mut q) = self.cmds.lock() {
            q.push(c);
        }
        let _ = self.waker.wake();
    }
}
