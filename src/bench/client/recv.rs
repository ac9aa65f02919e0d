//! Receiving on the bench client: frames parsed in place in one buffer, a complete multipart
//! message handed out as a borrowed [`Message`] (CURVE MESSAGEs decrypted in place, nothing
//! copied), PING answered with PONG as libzmq does (ZMTP.md §7.8).
//!
//! Contract: commands never reach the caller; at most [`MAX_PARTS`] frames and
//! [`MAX_FRAME_BYTES`] per frame are accepted; the message from
//! [`Client::poll_message`] stays valid until the next call.

use std::io;

use super::{Client, ClientError, MAX_FRAME_BYTES, MAX_PARTS, Phase, READ_CHUNK};
use crate::zmtp::command::{self, Command};
use crate::zmtp::frame::{FLAG_MORE, FrameHeader};
use crate::zmtp::mechanism::curve::{INNER_COMMAND, Traffic};
use crate::zmtp::{Message, Part, SessionError};

impl Client {
    /// The next complete frame at `scan`: header and absolute body range; advances `scan`.
    pub(super) fn next_frame(&mut self, limit: u64) -> Result<Option<(FrameHeader, usize, usize)>, ClientError> {
        let avail = self.rx.get(self.scan..self.rx_end).unwrap_or(&[]);
        let Some(h) = FrameHeader::parse(avail)? else {
            self.need = self.scan - self.rx_start + 9;
            return Ok(None);
        };
        if h.size > limit {
            return Err(SessionError::FrameTooLarge { declared: h.size, limit }.into());
        }
        // size ≤ 16 MiB: fits usize on every target.
        let total = h.header_len + h.size as usize;
        if avail.len() < total {
            self.need = self.scan - self.rx_start + total;
            return Ok(None);
        }
        let start = self.scan + h.header_len;
        self.scan += total;
        Ok(Some((h, start, self.scan)))
    }

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
            if self.rx_start > 0 {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.scan -= self.rx_start;
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
    /// is consumed first.
    ///
    /// # Errors
    /// Socket, decode and CURVE errors; [`ClientError::Closed`].
    pub fn poll_message(&mut self, read: bool) -> Result<bool, ClientError> {
        if self.complete {
            self.rx_start = self.scan;
            self.parts.clear();
            self.complete = false;
        }
        if self.phase != Phase::Traffic {
            return Err(ClientError::Protocol("receive before the handshake completed"));
        }
        loop {
            while let Some((h, start, end)) = self.next_frame(MAX_FRAME_BYTES)? {
                if self.take_frame(h, start, end)? {
                    self.complete = true;
                    return Ok(true);
                }
            }
            if self.rx_start == self.rx_end {
                // nothing pending: restart at the front of the buffer (free compaction)
                self.rx_start = 0;
                self.rx_end = 0;
                self.scan = 0;
            }
            if !read || !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// One traffic frame; `Ok(true)` when it completed a message.
    fn take_frame(&mut self, h: FrameHeader, start: usize, end: usize) -> Result<bool, ClientError> {
        let (flags, ps, pe) = match self.curve.as_mut() {
            None => {
                let flags = if h.command() { INNER_COMMAND } else { h.flags & FLAG_MORE };
                (flags, start, end)
            }
            Some(curve) => {
                if h.command() {
                    return Err(ClientError::Protocol("command frame after the CURVE handshake"));
                }
                let Some(body) = self.rx.get_mut(start..end) else {
                    return Err(ClientError::Protocol("frame outside the buffer"));
                };
                let (flags, r) = curve.open_message(body)?;
                (flags, start + r.start, start + r.end)
            }
        };
        if flags & INNER_COMMAND != 0 {
            self.on_command(ps, pe)?;
            if self.parts.is_empty() {
                // a command between messages: drop its bytes now
                self.rx_start = self.scan;
            }
            return Ok(false);
        }
        if self.parts.len() >= MAX_PARTS {
            return Err(SessionError::TooManyParts.into());
        }
        let rel = ps - self.rx_start;
        let (Ok(start), Ok(len)) = (u32::try_from(rel), u32::try_from(pe - ps)) else {
            return Err(SessionError::MessageTooLarge.into());
        };
        self.parts.push(Part { start, len });
        Ok(flags & FLAG_MORE == 0)
    }

    fn on_command(&mut self, start: usize, end: usize) -> Result<(), ClientError> {
        let body = self.rx.get(start..end).unwrap_or(&[]);
        let cmd = Command::parse(body)?;
        if cmd.is(command::PING) {
            let (_ttl, ctx) = command::parse_ping(cmd.data)?;
            let mut context = [0u8; crate::limits::MAX_PING_CONTEXT_BYTES];
            let n = ctx.len().min(context.len());
            for (d, s) in context.iter_mut().zip(ctx) {
                *d = *s;
            }
            let context = context.get(..n).unwrap_or(&[]);
            self.pings += 1;
            self.compact_tx();
            match self.curve.as_mut() {
                None => command::emit_pong(context, &mut self.tx),
                Some(curve) => {
                    self.scratch.clear();
                    command::emit_pong(context, &mut self.scratch);
                    let body = self.scratch.get(2..).unwrap_or(&[]);
                    curve.seal_frame(INNER_COMMAND, body, &mut self.tx)?;
                }
            }
            Ok(())
        } else if cmd.is(command::ERROR) {
            let reason = cmd.data.get(1..).unwrap_or(&[]);
            Err(ClientError::Refused(String::from_utf8_lossy(reason).into_owned()))
        } else {
            Ok(()) // PONG and anything else: ignored, as libzmq does
        }
    }

    /// The message made available by the last successful [`Client::poll_message`].
    pub fn message(&self) -> Message<'_> {
        let buf = self.rx.get(self.rx_start..self.scan).unwrap_or(&[]);
        if self.complete { Message::new(buf, &self.parts) } else { Message::new(buf, &[]) }
    }
}
