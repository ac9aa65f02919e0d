//! Receiving on the bench client: bytes read into one buffer and handed to the session, which
//! holds each complete multipart message where it was parsed (CURVE MESSAGEs decrypted in place,
//! nothing copied) until the next call; PING is answered with PONG by the session.
//!
//! Contract: commands never reach the caller; the message from [`Client::poll_message`] stays
//! valid until the next call.

use std::io;

use super::{Client, ClientError, READ_CHUNK};
use viprouter::zmtp::Message;
use viprouter::zmtp::session::Input;

impl Client {
    /// Most bytes asked of the kernel per `read` (default 64 KiB; libzmq reads 8 KiB).
    pub fn set_read_chunk(&mut self, bytes: usize) {
        self.read_chunk = bytes.clamp(512, READ_CHUNK);
    }

    /// Read what the socket has. `Ok(false)` when it would block.
    pub(super) fn fill(&mut self) -> Result<bool, ClientError> {
        Ok(self.read_once()? > 0)
    }

    /// One `read` of at most the read chunk: bytes read, 0 when it would block. Complete
    /// messages are then taken with `poll_message(false)`.
    ///
    /// # Errors
    /// Socket errors; [`ClientError::Closed`] at end of stream.
    pub fn read_once(&mut self) -> Result<usize, ClientError> {
        let chunk = self.read_chunk;
        let used = self.rx_end - self.rx_start;
        let want = self.need.max(used) + chunk;
        if self.rx.len() - self.rx_end < chunk || self.rx.len() - self.rx_start < want {
            // The session's offsets are relative to `rx_start`: moving the bytes keeps them.
            if self.rx_start > 0 {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.rx_end -= self.rx_start;
                self.rx_start = 0;
            }
            if self.rx.len() < want {
                self.rx.resize(want, 0);
            }
        }
        let end = (self.rx_end + chunk).min(self.rx.len());
        let Some(buf) = self.rx.get_mut(self.rx_end..end) else {
            return Err(ClientError::Protocol("receive buffer"));
        };
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => {
                    self.rx_end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Make a complete message available as [`Client::message`]. With `read`, reads the
    /// socket (non-blocking) when the buffer holds no complete message. The previous message
    /// is released first.
    ///
    /// # Errors
    /// Socket, decode and CURVE errors; [`ClientError::Closed`].
    pub fn poll_message(&mut self, read: bool) -> Result<bool, ClientError> {
        if self.held {
            self.rx_start += self.session.release();
            self.held = false;
        }
        if !self.session.is_traffic() {
            return Err(ClientError::Protocol("receive before the handshake completed"));
        }
        loop {
            match self.feed()? {
                Input::Message => {
                    self.held = true;
                    return Ok(true);
                }
                Input::NeedMore { consumed, need } => {
                    self.rx_start += consumed;
                    self.need = need;
                }
                Input::Ready { .. } | Input::Verify { .. } => {}
            }
            if self.rx_start == self.rx_end {
                // nothing pending: restart at the front of the buffer (free compaction)
                self.rx_start = 0;
                self.rx_end = 0;
            }
            if !read || !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// The message made available by the last successful [`Client::poll_message`].
    pub fn message(&self) -> Message<'_> {
        let buf = self.rx.get(self.rx_start..self.rx_end).unwrap_or(&[]);
        if self.held { self.session.message(buf) } else { Message::new(buf, &[]) }
    }
}
