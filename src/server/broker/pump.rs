//! Bytes through the bridge's connection: received bytes (through TLS when `amqps`) to the
//! client and its events to the router, the client's output (through TLS) to the transmit
//! queue.

use super::{BrokerProtocol, Step};
use crate::amqp::client::{Closer, Event};
use crate::server::close::CloseReason;
use crate::server::protocol::Context;
use crate::stats::{self, Stats};
use crate::time::Instant;
use crate::zmtp::SessionError;
use crate::zmtp::session::Input;

/// What an event asks of [`BrokerProtocol::process`].
enum Then {
    /// Go on with the next frame.
    Next,
    /// The bridge is up.
    Ready,
    /// A VIP message is held.
    Held,
}

impl BrokerProtocol {
    /// Feed the received bytes `buf` (see [`crate::server::protocol::Protocol::handle_input`]).
    pub(super) fn input(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Result<Input, CloseReason> {
        #[cfg(feature = "rabbitmq-tls")]
        if self.tls.is_some() {
            return self.input_tls(cx, buf);
        }
        Ok(match self.process(buf, cx)? {
            Step::Need { consumed, need } => Input::NeedMore { consumed, need },
            Step::Ready { consumed } => Input::Ready { consumed },
            Step::Message { consumed } => {
                self.release_rx = consumed;
                Input::Message
            }
        })
    }

    /// `amqps`: every ciphertext byte goes to rustls, the plaintext to the client.
    #[cfg(feature = "rabbitmq-tls")]
    fn input_tls(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Result<Input, CloseReason> {
        let Some(tls) = self.tls.as_mut() else { return Ok(Input::NeedMore { consumed: 0, need: 1 }) };
        let mut fed = 0;
        loop {
            let n = tls.read_tls(buf.get(fed..).unwrap_or(&[])).map_err(|e| tls_error(cx.stats, &e))?;
            fed += n;
            tls.read_plaintext(&mut self.plain, usize::MAX).map_err(|e| tls_error(cx.stats, &e))?;
            if n == 0 {
                break;
            }
        }
        let plain = core::mem::take(&mut self.plain);
        let step = self.process(&plain, cx);
        self.plain = plain;
        Ok(match step? {
            Step::Need { consumed, need } => {
                self.plain.drain(..consumed);
                if need > crate::limits::RX_BUF_MAX_BYTES {
                    // The plaintext buffer is bounded as the receive buffer of the plain path
                    // (`event_loop/input.rs`, `on_need_more`): a broker announcing a frame or a
                    // content larger than any message, or padding one delivery with empty body
                    // frames (`content::scan` waits for the body's bytes), is closed here instead
                    // of growing it.
                    return Err(CloseReason::Protocol(SessionError::MessageTooLarge));
                }
                Input::NeedMore { consumed: fed, need: 0 }
            }
            Step::Ready { consumed } => {
                self.plain.drain(..consumed);
                Input::Ready { consumed: fed }
            }
            Step::Message { consumed } => {
                self.release_plain = consumed;
                self.release_rx = fed;
                Input::Message
            }
        })
    }

    /// Run the client over `data` until it needs more bytes, comes up, or a message is held.
    pub(super) fn process(&mut self, data: &[u8], cx: &mut Context<'_>) -> Result<Step, CloseReason> {
        let mut pos = 0;
        loop {
            let rest = data.get(pos..).unwrap_or(&[]);
            let input = match self.client.handle_input(rest, cx.now) {
                Ok(i) => i,
                Err(e) => {
                    if stats::bump_and_should_log(&mut cx.stats.amqp_protocol_errors) {
                        log::warn!("RabbitMQ bridge: {e}: closing the connection (AMQP reply {})", e.reply_code());
                    }
                    return Err(CloseReason::Foreign("malformed input or a protocol error from the broker"));
                }
            };
            pos += input.consumed;
            let Some(event) = input.event else {
                if input.consumed == 0 {
                    return Ok(Step::Need { consumed: pos, need: input.need });
                }
                continue;
            };
            match self.event(event, cx.stats)? {
                Then::Next => {}
                Then::Ready => return Ok(Step::Ready { consumed: pos }),
                Then::Held => return Ok(Step::Message { consumed: pos }),
            }
        }
    }

    /// Act on one client event.
    fn event(&mut self, event: Event<'_>, stats: &mut Stats) -> Result<Then, CloseReason> {
        match event {
            Event::Ready => return Ok(Then::Ready),
            Event::Delivery(d) => {
                if self.map_delivery(&d, stats) {
                    self.ack = Some(d.delivery_tag);
                    return Ok(Then::Held);
                }
                self.client.ack(d.delivery_tag, false);
            }
            Event::Returned(r) => {
                if self.map_return(&r, stats) {
                    return Ok(Then::Held);
                }
            }
            Event::Confirmed { ack: false, settled, .. } => {
                stats.amqp_nacked += settled as u64;
                if stats::is_log_point(stats.amqp_nacked) {
                    log::warn!("RabbitMQ bridge: the broker refused (nack) {} publishes so far", stats.amqp_nacked);
                }
            }
            Event::Confirmed { .. } => {}
            Event::Blocked { reason } => {
                stats.amqp_blocked += 1;
                log::warn!(
                    "RabbitMQ bridge: the broker blocks publishing ({}): exports are dropped, RPC answered 11",
                    reason.escape_ascii()
                );
            }
            Event::Unblocked => log::info!("RabbitMQ bridge: the broker accepts publishes again"),
            Event::Dropped { body_size, .. } => {
                if stats::bump_and_should_log(&mut stats.amqp_dropped_too_large) {
                    log::warn!("RabbitMQ bridge: a delivery of {body_size} bytes is over max-msg-bytes: dropped");
                }
            }
            Event::Closing(c) => log::warn!(
                "RabbitMQ bridge: the broker {} ({} {}): reconnecting",
                if c.by == Closer::ConsumerCancelled { "cancelled our consumer" } else { "closed our channel" },
                c.code,
                c.text.escape_ascii()
            ),
            Event::Closed(c) => {
                if c.by != Closer::Client {
                    log::warn!(
                        "RabbitMQ bridge: the broker closed the connection ({} {})",
                        c.code,
                        c.text.escape_ascii()
                    );
                }
                return Err(CloseReason::Foreign("closed by the broker"));
            }
        }
        Ok(Then::Next)
    }

    /// Move up to `room` bytes of the client's output into `out` (through TLS when `amqps`).
    pub(super) fn pump(&mut self, now: Instant, out: &mut Vec<u8>, room: usize) -> Result<(), CloseReason> {
        let pending = self.client.transmit();
        let n = pending.len().min(room);
        #[cfg(feature = "rabbitmq-tls")]
        if let Some(tls) = self.tls.as_mut() {
            let chunk = pending.get(..n).unwrap_or(&[]);
            let taken = if chunk.is_empty() { Ok(0) } else { tls.write_plaintext(chunk) };
            let taken = taken.map_err(|e| {
                log::warn!("RabbitMQ bridge: {e}");
                CloseReason::Foreign("TLS failure")
            })?;
            self.client.written(taken, now);
            tls.write_tls(out).map_err(|e| {
                log::warn!("RabbitMQ bridge: {e}");
                CloseReason::Foreign("TLS failure")
            })?;
            return Ok(());
        }
        out.extend_from_slice(pending.get(..n).unwrap_or(&[]));
        self.client.written(n, now);
        Ok(())
    }
}

/// A TLS failure on input: counted with the protocol errors, logged, the connection closed.
#[cfg(feature = "rabbitmq-tls")]
fn tls_error(stats: &mut Stats, e: &crate::amqp::tls::TlsError) -> CloseReason {
    if stats::bump_and_should_log(&mut stats.amqp_protocol_errors) {
        log::warn!("RabbitMQ bridge: {e}");
    }
    CloseReason::Foreign("TLS failure")
}
