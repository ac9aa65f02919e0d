//! [`Client::handle_input`]: one frame (or one whole message: method, header and body frames)
//! per call, dispatched on the connection's phase (spec §2.2.4 connection and channel
//! life-cycles, §4.2.6 content, §4.2.7 heartbeats).

use super::{Client, CloseInfo, Closer, Delivery, Event, Phase, Returned, Skip, Step, sasl};
use crate::amqp::content::{self, Scan};
use crate::amqp::frame::{self, Frame, Need};
use crate::amqp::method::{self, Incoming};
use crate::amqp::{Error, reply};
use crate::time::Instant;

/// The result of one [`Client::handle_input`] step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Input<'a> {
    /// Bytes consumed from the front of the slice given (drop them).
    pub consumed: usize,
    /// When nothing was consumed: bytes (from the front) that must be buffered before the
    /// next step can make progress. 0 otherwise.
    pub need: usize,
    /// What it means, if anything.
    pub event: Option<Event<'a>>,
}

impl<'a> Input<'a> {
    fn need(n: usize) -> Self {
        Input { consumed: 0, need: n, event: None }
    }

    fn consumed(n: usize) -> Self {
        Input { consumed: n, need: 0, event: None }
    }

    fn event(n: usize, e: Event<'a>) -> Self {
        Input { consumed: n, need: 0, event: Some(e) }
    }
}

/// Whether a method belongs on channel 0 (the connection class).
fn on_connection_channel(m: &Incoming<'_>) -> bool {
    matches!(
        m,
        Incoming::Start { .. }
            | Incoming::Secure { .. }
            | Incoming::Tune { .. }
            | Incoming::OpenOk
            | Incoming::Close { channel: false, .. }
            | Incoming::CloseOk { channel: false }
            | Incoming::Blocked { .. }
            | Incoming::Unblocked
    )
}

impl Client {
    /// Consume the next frame (or whole message) of `buf`, the unconsumed received bytes.
    ///
    /// # Errors
    /// [`Error`] for malformed input or a protocol violation: the client has queued a
    /// `connection.close` with the matching reply code when the connection was open; flush it,
    /// close the socket and reconnect.
    pub fn handle_input<'a>(&mut self, buf: &'a [u8], now: Instant) -> Result<Input<'a>, Error> {
        if !buf.is_empty() {
            self.last_rx = now;
        }
        let r = self.step(buf, now);
        if let Err(e) = r {
            self.skip = None;
            if matches!(self.phase, Phase::AwaitOpenOk | Phase::AwaitChannelOpenOk | Phase::Declare(_) | Phase::Ready) {
                let text: &[u8] = match e {
                    Error::UnknownMethod(..) => b"unknown method",
                    Error::Unexpected => b"unexpected frame",
                    _ => b"malformed frame",
                };
                self.start_close(now, e.reply_code(), text, (0, 0));
            } else {
                self.phase = Phase::Idle;
            }
        }
        r
    }

    fn step<'a>(&mut self, buf: &'a [u8], now: Instant) -> Result<Input<'a>, Error> {
        if self.phase == Phase::Idle {
            return Err(Error::Unexpected);
        }
        if let Some(skip) = self.skip {
            return self.skip_body(buf, skip);
        }
        let (f, n) = match Frame::parse(buf, self.frame_max)? {
            Ok(x) => x,
            Err(Need::Bytes(need)) => return Ok(Input::need(need)),
        };
        match (f.kind, f.channel) {
            (frame::HEARTBEAT, 0) => Ok(Input::consumed(n)),
            (frame::METHOD, 0 | super::CHANNEL) => {
                let m = Incoming::parse(f.payload)?;
                if on_connection_channel(&m) != (f.channel == 0) {
                    return Err(Error::BadChannel(f.channel));
                }
                if self.phase == Phase::Closing {
                    return Ok(self.closing(m, n));
                }
                self.method(m, buf, n, now)
            }
            // After our close, the broker may still be sending a message: discard it.
            (frame::HEADER | frame::BODY, super::CHANNEL) if self.phase == Phase::Closing => Ok(Input::consumed(n)),
            (frame::HEADER | frame::BODY, super::CHANNEL) => Err(Error::Unexpected),
            (_, c) => Err(Error::BadChannel(c)),
        }
    }

    /// While we wait for `close-ok` everything but the connection's close methods is
    /// discarded (spec §2.2.4, "Closing").
    fn closing<'a>(&mut self, m: Incoming<'a>, n: usize) -> Input<'a> {
        match m {
            Incoming::CloseOk { channel: false } => {
                self.phase = Phase::Idle;
                let info = CloseInfo { by: Closer::Client, code: reply::SUCCESS, text: b"", cause: (0, 0) };
                Input::event(n, Event::Closed(info))
            }
            Incoming::Close { channel: false, code, text, class_id, method_id } => {
                method::put_close_ok(&mut self.tx, 0);
                self.phase = Phase::Idle;
                let info = CloseInfo { by: Closer::Broker, code, text, cause: (class_id, method_id) };
                Input::event(n, Event::Closed(info))
            }
            _ => Input::consumed(n),
        }
    }

    fn method<'a>(&mut self, m: Incoming<'a>, buf: &'a [u8], n: usize, now: Instant) -> Result<Input<'a>, Error> {
        let open = !matches!(self.phase, Phase::AwaitStart | Phase::AwaitTune);
        match (self.phase, m) {
            (_, Incoming::Close { channel: false, code, text, class_id, method_id }) => {
                method::put_close_ok(&mut self.tx, 0);
                self.phase = Phase::Idle;
                let info = CloseInfo { by: Closer::Broker, code, text, cause: (class_id, method_id) };
                Ok(Input::event(n, Event::Closed(info)))
            }
            (Phase::AwaitStart, Incoming::Start { version_major, version_minor, mechanisms, .. }) => {
                self.on_start(version_major, version_minor, mechanisms)?;
                Ok(Input::consumed(n))
            }
            (Phase::AwaitTune, Incoming::Tune { frame_max, heartbeat, .. }) => {
                self.on_tune(frame_max, heartbeat)?;
                Ok(Input::consumed(n))
            }
            (Phase::AwaitOpenOk, Incoming::OpenOk) => {
                method::put_channel_open(&mut self.tx, super::CHANNEL);
                self.phase = Phase::AwaitChannelOpenOk;
                Ok(Input::consumed(n))
            }
            (Phase::AwaitChannelOpenOk, Incoming::ChannelOpenOk) => {
                self.declare(Step::ExchangeVolttron);
                Ok(Input::consumed(n))
            }
            (Phase::Declare(step), reply) if !matches!(step, Step::Binds) && !is_async(&reply) => {
                self.topology_reply(step, reply)?;
                Ok(Input { consumed: n, need: 0, event: (self.phase == Phase::Ready).then_some(Event::Ready) })
            }
            (Phase::Declare(Step::Binds) | Phase::Ready, Incoming::BindOk | Incoming::UnbindOk) => {
                if !self.bindings.done() {
                    return Err(Error::Unexpected);
                }
                self.pump_bindings();
                Ok(Input::consumed(n))
            }
            (_, m) if open => self.async_method(m, buf, n, now),
            _ => Err(Error::Unexpected),
        }
    }

    /// The reply to topology step `step`: go on with the next one.
    fn topology_reply(&mut self, step: Step, m: Incoming<'_>) -> Result<(), Error> {
        match (step, m) {
            (Step::ExchangeVolttron, Incoming::ExchangeDeclareOk) => self.declare(Step::ExchangeUndeliverable),
            (Step::ExchangeUndeliverable, Incoming::ExchangeDeclareOk) => self.declare(Step::Queue),
            (Step::Queue, Incoming::QueueDeclareOk { .. }) => self.declare(Step::Qos),
            (Step::Qos, Incoming::QosOk) => self.declare(Step::Select),
            (Step::Select, Incoming::SelectOk) => self.declare(Step::Binds),
            (Step::Consume, Incoming::ConsumeOk { .. }) => {
                self.phase = Phase::Ready;
                self.pump_bindings();
            }
            _ => return Err(Error::Unexpected),
        }
        Ok(())
    }

    fn on_start(&mut self, major: u8, minor: u8, mechanisms: &[u8]) -> Result<(), Error> {
        let s = sasl(&self.settings.credentials);
        if (major, minor) != (0, 9) || !mechanisms.split(|&b| b == b' ').any(|m| m == s.name()) {
            return Err(Error::Negotiation);
        }
        method::put_start_ok(&mut self.tx, s, self.queue.as_bytes()).map_err(|_| Error::Negotiation)?;
        self.phase = Phase::AwaitTune;
        Ok(())
    }

    fn on_tune(&mut self, frame_max: u32, heartbeat: u16) -> Result<(), Error> {
        let ours = self.settings.frame_max;
        let fm = if frame_max == 0 { ours } else { ours.min(frame_max) };
        if fm < frame::FRAME_MIN_SIZE {
            return Err(Error::FrameMaxTooSmall);
        }
        let hb_ours = self.settings.heartbeat_s;
        let hb = match (hb_ours, heartbeat) {
            (0, _) => 0,
            (h, 0) => h,
            (h, s) => h.min(s),
        };
        self.frame_max = fm;
        self.heartbeat_ms = u64::from(hb) * 1000;
        method::put_tune_ok(&mut self.tx, 1, fm, hb);
        method::put_open(&mut self.tx, self.settings.vhost.as_bytes()).map_err(|_| Error::Negotiation)?;
        self.phase = Phase::AwaitOpenOk;
        Ok(())
    }

    /// Methods that may come at any time once the connection is open.
    fn async_method<'a>(&mut self, m: Incoming<'a>, buf: &'a [u8], n: usize, now: Instant) -> Result<Input<'a>, Error> {
        let ready = self.phase == Phase::Ready;
        let event = match m {
            Incoming::Blocked { reason } => {
                self.blocked = true;
                Event::Blocked { reason }
            }
            Incoming::Unblocked => {
                self.blocked = false;
                Event::Unblocked
            }
            Incoming::Flow { active } => {
                method::put_flow_ok(&mut self.tx, super::CHANNEL, active);
                self.blocked = !active;
                if active { Event::Unblocked } else { Event::Blocked { reason: b"channel.flow" } }
            }
            Incoming::Close { channel: true, code, text, class_id, method_id } => {
                method::put_close_ok(&mut self.tx, super::CHANNEL);
                self.start_close(now, reply::SUCCESS, b"channel closed by the broker", (0, 0));
                Event::Closing(CloseInfo { by: Closer::BrokerChannel, code, text, cause: (class_id, method_id) })
            }
            Incoming::Cancel { consumer_tag, no_wait } if ready => {
                if !no_wait {
                    method::put_cancel_ok(&mut self.tx, super::CHANNEL, consumer_tag).map_err(|_| Error::Unexpected)?;
                }
                self.start_close(now, reply::SUCCESS, b"consumer cancelled by the broker", (0, 0));
                Event::Closing(CloseInfo { by: Closer::ConsumerCancelled, code: 0, text: b"", cause: (60, 30) })
            }
            Incoming::Confirm { delivery_tag, multiple, ack } if ready => {
                let settled = self.window.settle(delivery_tag, multiple);
                Event::Confirmed { tag: delivery_tag, multiple, ack, settled }
            }
            Incoming::Deliver { .. } | Incoming::Return { .. } if ready => return self.content(m, buf, n),
            _ => return Err(Error::Unexpected),
        };
        Ok(Input::event(n, event))
    }

    /// A delivery or return: the header and body frames must follow in `buf` after the method
    /// frame (`n` bytes); nothing is consumed until the whole message is there.
    fn content<'a>(&mut self, m: Incoming<'a>, buf: &'a [u8], n: usize) -> Result<Input<'a>, Error> {
        let rest = buf.get(n..).unwrap_or(&[]);
        let (header, body, len) = match content::scan(rest, self.frame_max, super::CHANNEL, self.settings.max_body)? {
            Scan::Need(k) => return Ok(Input::need(n + k)),
            Scan::TooLarge { body_size, len } => {
                let ack = if let Incoming::Deliver { delivery_tag, .. } = m { Some(delivery_tag) } else { None };
                self.skip = Some(Skip { remaining: body_size, body_size, ack });
                return Ok(Input::consumed(n + len));
            }
            Scan::Complete { header, body, len } => (header, body, len),
        };
        let properties = header.properties;
        let event = match m {
            Incoming::Deliver { delivery_tag, redelivered, exchange, routing_key, .. } => {
                Event::Delivery(Delivery { delivery_tag, redelivered, exchange, routing_key, properties, body })
            }
            Incoming::Return { code, text, exchange, routing_key } => {
                Event::Returned(Returned { code, text, exchange, routing_key, properties, body })
            }
            _ => return Err(Error::Unexpected),
        };
        Ok(Input::event(n + len, event))
    }

    /// One body frame of a message too large to buffer: consumed and forgotten.
    fn skip_body<'a>(&mut self, buf: &'a [u8], mut skip: Skip) -> Result<Input<'a>, Error> {
        let (f, n) = match Frame::parse(buf, self.frame_max)? {
            Ok(x) => x,
            Err(Need::Bytes(need)) => return Ok(Input::need(need)),
        };
        let len = f.payload.len() as u64;
        if f.kind != frame::BODY || f.channel != super::CHANNEL || len > skip.remaining {
            return Err(Error::Unexpected);
        }
        skip.remaining -= len;
        if skip.remaining > 0 {
            self.skip = Some(skip);
            return Ok(Input::consumed(n));
        }
        self.skip = None;
        if let Some(tag) = skip.ack {
            self.ack(tag, false);
        }
        let delivery_tag = skip.ack.unwrap_or(0);
        Ok(Input::event(n, Event::Dropped { delivery_tag, body_size: skip.body_size }))
    }
}

/// Methods handled by [`Client::async_method`] whatever the phase.
fn is_async(m: &Incoming<'_>) -> bool {
    matches!(
        m,
        Incoming::Blocked { .. }
            | Incoming::Unblocked
            | Incoming::Flow { .. }
            | Incoming::Close { .. }
            | Incoming::Cancel { .. }
            | Incoming::Confirm { .. }
            | Incoming::Deliver { .. }
            | Incoming::Return { .. }
    )
}
