//! Methods (spec §4.2.4 method frames; arguments per amqp0-9-1.xml): what the broker sends,
//! decoded into [`Incoming`] views over the frame payload, and what the client sends, encoded
//! by the `put_*` functions straight into the transmit buffer as whole method frames.
//!
//! A method payload is `[class-id:2][method-id:2][arguments]`; consecutive `bit` arguments
//! share octets (first bit lowest). Decoding is strict: a truncated argument is
//! [`Error::Truncated`], bytes after the last argument [`Error::TrailingBytes`].

use super::frame;
use super::table::{self, Table, Value};
use super::wire::{self, Reader};
use super::{EncodeError, Error};

/// Class ids.
pub mod class {
    /// connection.
    pub const CONNECTION: u16 = 10;
    /// channel.
    pub const CHANNEL: u16 = 20;
    /// exchange.
    pub const EXCHANGE: u16 = 40;
    /// queue.
    pub const QUEUE: u16 = 50;
    /// basic.
    pub const BASIC: u16 = 60;
    /// confirm (RabbitMQ extension).
    pub const CONFIRM: u16 = 85;
}

/// A method from the broker, its arguments borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Incoming<'a> {
    /// connection.start (10.10).
    Start {
        /// Major version (0).
        version_major: u8,
        /// Minor version (9).
        version_minor: u8,
        /// The broker's properties (product, version, capabilities, cluster_name…).
        server_properties: Table<'a>,
        /// Space-separated SASL mechanisms.
        mechanisms: &'a [u8],
        /// Space-separated locales.
        locales: &'a [u8],
    },
    /// connection.secure (10.20): a SASL challenge (neither PLAIN nor EXTERNAL has one).
    Secure {
        /// Challenge.
        challenge: &'a [u8],
    },
    /// connection.tune (10.30).
    Tune {
        /// Highest channel number (0: no limit).
        channel_max: u16,
        /// Largest frame (0: no limit).
        frame_max: u32,
        /// Heartbeat seconds the broker proposes (0: none).
        heartbeat: u16,
    },
    /// connection.open-ok (10.41).
    OpenOk,
    /// connection.close (10.50) or channel.close (20.40).
    Close {
        /// True for channel.close.
        channel: bool,
        /// Reply code.
        code: u16,
        /// Reply text.
        text: &'a [u8],
        /// Class of the method that caused it (0 if none).
        class_id: u16,
        /// Method that caused it.
        method_id: u16,
    },
    /// connection.close-ok (10.51) or channel.close-ok (20.41).
    CloseOk {
        /// True for channel.close-ok.
        channel: bool,
    },
    /// connection.blocked (10.60).
    Blocked {
        /// Why (e.g. `low on memory`).
        reason: &'a [u8],
    },
    /// connection.unblocked (10.61).
    Unblocked,
    /// channel.open-ok (20.11).
    ChannelOpenOk,
    /// channel.flow (20.20).
    Flow {
        /// Whether the client may publish.
        active: bool,
    },
    /// exchange.declare-ok (40.11).
    ExchangeDeclareOk,
    /// queue.declare-ok (50.11).
    QueueDeclareOk {
        /// Queue name.
        queue: &'a [u8],
        /// Messages ready.
        message_count: u32,
        /// Consumers.
        consumer_count: u32,
    },
    /// queue.bind-ok (50.21).
    BindOk,
    /// queue.unbind-ok (50.51).
    UnbindOk,
    /// basic.qos-ok (60.11).
    QosOk,
    /// basic.consume-ok (60.21).
    ConsumeOk {
        /// Consumer tag.
        consumer_tag: &'a [u8],
    },
    /// basic.cancel (60.30), sent by the broker when the queue goes away.
    Cancel {
        /// Consumer tag.
        consumer_tag: &'a [u8],
        /// The broker wants no cancel-ok.
        no_wait: bool,
    },
    /// basic.cancel-ok (60.31).
    CancelOk {
        /// Consumer tag.
        consumer_tag: &'a [u8],
    },
    /// basic.return (60.50); content follows.
    Return {
        /// Reply code (312 NO_ROUTE).
        code: u16,
        /// Reply text.
        text: &'a [u8],
        /// Exchange published to.
        exchange: &'a [u8],
        /// Routing key published with.
        routing_key: &'a [u8],
    },
    /// basic.deliver (60.60); content follows.
    Deliver {
        /// Consumer tag.
        consumer_tag: &'a [u8],
        /// Delivery tag (for basic.ack).
        delivery_tag: u64,
        /// Delivered before.
        redelivered: bool,
        /// Exchange published to.
        exchange: &'a [u8],
        /// Routing key published with.
        routing_key: &'a [u8],
    },
    /// basic.ack (60.80) or basic.nack (60.120) from the broker: publisher confirms.
    Confirm {
        /// Sequence number of the publish (1 = the first after confirm.select).
        delivery_tag: u64,
        /// All up to and including `delivery_tag`.
        multiple: bool,
        /// basic.ack (true) or basic.nack (false).
        ack: bool,
    },
    /// confirm.select-ok (85.11).
    SelectOk,
}

fn close<'a>(r: &mut Reader<'a>, channel: bool) -> Result<Incoming<'a>, Error> {
    Ok(Incoming::Close { channel, code: r.u16()?, text: r.shortstr()?, class_id: r.u16()?, method_id: r.u16()? })
}

impl<'a> Incoming<'a> {
    /// Decode a method frame's payload.
    ///
    /// # Errors
    /// [`Error::UnknownMethod`], [`Error::Truncated`], [`Error::TrailingBytes`], and a table's
    /// errors ([`Table::parse`]).
    pub fn parse(payload: &'a [u8]) -> Result<Incoming<'a>, Error> {
        use class::*;
        let mut r = Reader::new(payload);
        let (c, m) = (r.u16()?, r.u16()?);
        let v = match (c, m) {
            (CONNECTION, 10) => Incoming::Start {
                version_major: r.u8()?,
                version_minor: r.u8()?,
                server_properties: Table::parse(&mut r)?,
                mechanisms: r.longstr()?,
                locales: r.longstr()?,
            },
            (CONNECTION, 20) => Incoming::Secure { challenge: r.longstr()? },
            (CONNECTION, 30) => Incoming::Tune { channel_max: r.u16()?, frame_max: r.u32()?, heartbeat: r.u16()? },
            (CONNECTION, 41) => {
                r.shortstr()?; // reserved-1 (known-hosts)
                Incoming::OpenOk
            }
            (CONNECTION, 50) => close(&mut r, false)?,
            (CONNECTION, 51) => Incoming::CloseOk { channel: false },
            (CONNECTION, 60) => Incoming::Blocked { reason: r.shortstr()? },
            (CONNECTION, 61) => Incoming::Unblocked,
            (CHANNEL, 11) => {
                r.longstr()?; // reserved-1 (channel-id)
                Incoming::ChannelOpenOk
            }
            (CHANNEL, 20) => Incoming::Flow { active: r.u8()? & 1 != 0 },
            (CHANNEL, 40) => close(&mut r, true)?,
            (CHANNEL, 41) => Incoming::CloseOk { channel: true },
            (EXCHANGE, 11) => Incoming::ExchangeDeclareOk,
            (QUEUE, 11) => {
                Incoming::QueueDeclareOk { queue: r.shortstr()?, message_count: r.u32()?, consumer_count: r.u32()? }
            }
            (QUEUE, 21) => Incoming::BindOk,
            (QUEUE, 51) => Incoming::UnbindOk,
            (BASIC, 11) => Incoming::QosOk,
            (BASIC, 21) => Incoming::ConsumeOk { consumer_tag: r.shortstr()? },
            (BASIC, 30) => Incoming::Cancel { consumer_tag: r.shortstr()?, no_wait: r.u8()? & 1 != 0 },
            (BASIC, 31) => Incoming::CancelOk { consumer_tag: r.shortstr()? },
            (BASIC, 50) => Incoming::Return {
                code: r.u16()?,
                text: r.shortstr()?,
                exchange: r.shortstr()?,
                routing_key: r.shortstr()?,
            },
            (BASIC, 60) => Incoming::Deliver {
                consumer_tag: r.shortstr()?,
                delivery_tag: r.u64()?,
                redelivered: r.u8()? & 1 != 0,
                exchange: r.shortstr()?,
                routing_key: r.shortstr()?,
            },
            (BASIC, 80) => Incoming::Confirm { delivery_tag: r.u64()?, multiple: r.u8()? & 1 != 0, ack: true },
            (BASIC, 120) => Incoming::Confirm { delivery_tag: r.u64()?, multiple: r.u8()? & 1 != 0, ack: false },
            (CONFIRM, 11) => Incoming::SelectOk,
            _ => return Err(Error::UnknownMethod(c, m)),
        };
        r.finish()?;
        Ok(v)
    }

    /// Whether content (a header and body frames) follows this method.
    pub fn has_content(&self) -> bool {
        matches!(self, Incoming::Deliver { .. } | Incoming::Return { .. })
    }
}

/// Start a method frame on `channel` for `(class, method)`; finish with [`frame::end`].
fn begin(out: &mut Vec<u8>, channel: u16, class_id: u16, method_id: u16) -> usize {
    let at = frame::begin(out, frame::METHOD, channel);
    wire::put_u16(out, class_id);
    wire::put_u16(out, method_id);
    at
}

/// Run `args` between a method frame's start and end; on an encode error the buffer is cut
/// back to where it was, so nothing half-written is ever queued.
fn method(
    out: &mut Vec<u8>,
    channel: u16,
    ids: (u16, u16),
    args: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let at = begin(out, channel, ids.0, ids.1);
    let r = args(out).and_then(|()| frame::end(out, at));
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// The SASL mechanism and its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sasl<'a> {
    /// PLAIN: `\0user\0password`.
    Plain {
        /// User name.
        user: &'a [u8],
        /// Password.
        password: &'a [u8],
    },
    /// EXTERNAL: the TLS client certificate's subject names the user; empty response.
    External,
}

impl Sasl<'_> {
    /// The mechanism name as `connection.start` lists it.
    pub fn name(&self) -> &'static [u8] {
        match self {
            Sasl::Plain { .. } => b"PLAIN",
            Sasl::External => b"EXTERNAL",
        }
    }
}

/// connection.start-ok with the client properties (product, version, platform, connection
/// name and the capabilities the client relies on, memo §6.3).
///
/// # Errors
/// [`EncodeError`] when a value is over its type (nothing queued).
pub fn put_start_ok(out: &mut Vec<u8>, sasl: Sasl<'_>, connection_name: &[u8]) -> Result<(), EncodeError> {
    method(out, 0, (class::CONNECTION, 11), |out| {
        let props = table::TableWriter::begin(out);
        props.entry(out, b"product", Value::LongStr(b"viprouter"))?;
        props.entry(out, b"version", Value::LongStr(env!("CARGO_PKG_VERSION").as_bytes()))?;
        props.entry(out, b"platform", Value::LongStr(b"Rust"))?;
        props.entry(out, b"connection_name", Value::LongStr(connection_name))?;
        wire::put_shortstr(out, b"capabilities")?;
        out.push(b'F');
        table::put_table(
            out,
            &[
                (b"publisher_confirms", Value::Bool(true)),
                (b"basic.nack", Value::Bool(true)),
                (b"consumer_cancel_notify", Value::Bool(true)),
                (b"connection.blocked", Value::Bool(true)),
                (b"authentication_failure_close", Value::Bool(true)),
            ],
        )?;
        props.finish(out)?;
        wire::put_shortstr(out, sasl.name())?;
        match sasl {
            Sasl::Plain { user, password } => {
                let n = u32::try_from(2 + user.len() + password.len()).map_err(|_| EncodeError)?;
                wire::put_u32(out, n);
                out.push(0);
                out.extend_from_slice(user);
                out.push(0);
                out.extend_from_slice(password);
            }
            Sasl::External => wire::put_u32(out, 0),
        }
        wire::put_shortstr(out, b"en_US")
    })
}

/// connection.tune-ok.
pub fn put_tune_ok(out: &mut Vec<u8>, channel_max: u16, frame_max: u32, heartbeat: u16) {
    let _ = method(out, 0, (class::CONNECTION, 31), |out| {
        wire::put_u16(out, channel_max);
        wire::put_u32(out, frame_max);
        wire::put_u16(out, heartbeat);
        Ok(())
    });
}

/// connection.open.
///
/// # Errors
/// [`EncodeError`] when `vhost` is over 255 bytes.
pub fn put_open(out: &mut Vec<u8>, vhost: &[u8]) -> Result<(), EncodeError> {
    method(out, 0, (class::CONNECTION, 40), |out| {
        wire::put_shortstr(out, vhost)?;
        wire::put_shortstr(out, b"")?;
        out.push(0);
        Ok(())
    })
}

/// connection.close (`channel == 0`) or channel.close.
pub fn put_close(out: &mut Vec<u8>, channel: u16, code: u16, text: &[u8], cause: (u16, u16)) {
    let class_id = if channel == 0 { class::CONNECTION } else { class::CHANNEL };
    let id = if channel == 0 { 50 } else { 40 };
    let text = text.get(..255).unwrap_or(text);
    let _ = method(out, channel, (class_id, id), |out| {
        wire::put_u16(out, code);
        wire::put_shortstr(out, text)?;
        wire::put_u16(out, cause.0);
        wire::put_u16(out, cause.1);
        Ok(())
    });
}

/// connection.close-ok (`channel == 0`) or channel.close-ok.
pub fn put_close_ok(out: &mut Vec<u8>, channel: u16) {
    let (class_id, id) = if channel == 0 { (class::CONNECTION, 51) } else { (class::CHANNEL, 41) };
    let _ = method(out, channel, (class_id, id), |_| Ok(()));
}

/// channel.open.
pub fn put_channel_open(out: &mut Vec<u8>, channel: u16) {
    let _ = method(out, channel, (class::CHANNEL, 10), |out| wire::put_shortstr(out, b""));
}

/// channel.flow-ok.
pub fn put_flow_ok(out: &mut Vec<u8>, channel: u16, active: bool) {
    let _ = method(out, channel, (class::CHANNEL, 21), |out| {
        out.push(u8::from(active));
        Ok(())
    });
}

/// exchange.declare flags, in wire order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeFlags {
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Not publishable by clients.
    pub internal: bool,
}

/// exchange.declare (waits for declare-ok).
///
/// # Errors
/// [`EncodeError`] when a name is over 255 bytes.
pub fn put_exchange_declare(
    out: &mut Vec<u8>,
    channel: u16,
    name: &[u8],
    kind: &[u8],
    f: ExchangeFlags,
    args: &[(&[u8], Value<'_>)],
) -> Result<(), EncodeError> {
    method(out, channel, (class::EXCHANGE, 10), |out| {
        wire::put_u16(out, 0);
        wire::put_shortstr(out, name)?;
        wire::put_shortstr(out, kind)?;
        out.push(wire::pack_bits(&[f.passive, f.durable, f.auto_delete, f.internal, false]));
        table::put_table(out, args)
    })
}

/// queue.declare flags, in wire order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueFlags {
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Only this connection may use it; deleted with it.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
}

/// queue.declare (waits for declare-ok).
///
/// # Errors
/// [`EncodeError`] when the name is over 255 bytes.
pub fn put_queue_declare(
    out: &mut Vec<u8>,
    channel: u16,
    name: &[u8],
    f: QueueFlags,
    args: &[(&[u8], Value<'_>)],
) -> Result<(), EncodeError> {
    method(out, channel, (class::QUEUE, 10), |out| {
        wire::put_u16(out, 0);
        wire::put_shortstr(out, name)?;
        out.push(wire::pack_bits(&[f.passive, f.durable, f.exclusive, f.auto_delete, false]));
        table::put_table(out, args)
    })
}

/// queue.bind (`bind == true`, waits for bind-ok) or queue.unbind (unbind-ok), no arguments.
///
/// # Errors
/// [`EncodeError`] when a name is over 255 bytes.
pub fn put_queue_bind(
    out: &mut Vec<u8>,
    channel: u16,
    bind: bool,
    queue: &[u8],
    exchange: &[u8],
    routing_key: &[u8],
) -> Result<(), EncodeError> {
    method(out, channel, (class::QUEUE, if bind { 20 } else { 50 }), |out| {
        wire::put_u16(out, 0);
        wire::put_shortstr(out, queue)?;
        wire::put_shortstr(out, exchange)?;
        wire::put_shortstr(out, routing_key)?;
        if bind {
            out.push(0); // no-wait
        }
        table::put_table(out, &[])
    })
}

/// basic.qos (per-channel prefetch count).
pub fn put_qos(out: &mut Vec<u8>, channel: u16, prefetch_count: u16) {
    let _ = method(out, channel, (class::BASIC, 10), |out| {
        wire::put_u32(out, 0);
        wire::put_u16(out, prefetch_count);
        out.push(0);
        Ok(())
    });
}

/// basic.consume with acknowledgements (no-ack false), broker-chosen tag.
///
/// # Errors
/// [`EncodeError`] when the queue name is over 255 bytes.
pub fn put_consume(out: &mut Vec<u8>, channel: u16, queue: &[u8], exclusive: bool) -> Result<(), EncodeError> {
    method(out, channel, (class::BASIC, 20), |out| {
        wire::put_u16(out, 0);
        wire::put_shortstr(out, queue)?;
        wire::put_shortstr(out, b"")?;
        out.push(wire::pack_bits(&[false, false, exclusive, false]));
        table::put_table(out, &[])
    })
}

/// basic.cancel-ok (answer to a broker-sent basic.cancel).
///
/// # Errors
/// [`EncodeError`] when the tag is over 255 bytes.
pub fn put_cancel_ok(out: &mut Vec<u8>, channel: u16, consumer_tag: &[u8]) -> Result<(), EncodeError> {
    method(out, channel, (class::BASIC, 31), |out| wire::put_shortstr(out, consumer_tag))
}

/// basic.publish (the content header and body frames follow, [`super::properties`]).
///
/// # Errors
/// [`EncodeError`] when a name is over 255 bytes.
pub fn put_publish(
    out: &mut Vec<u8>,
    channel: u16,
    exchange: &[u8],
    routing_key: &[u8],
    mandatory: bool,
) -> Result<(), EncodeError> {
    method(out, channel, (class::BASIC, 40), |out| {
        wire::put_u16(out, 0);
        wire::put_shortstr(out, exchange)?;
        wire::put_shortstr(out, routing_key)?;
        out.push(wire::pack_bits(&[mandatory, false]));
        Ok(())
    })
}

/// basic.ack of a delivery.
pub fn put_ack(out: &mut Vec<u8>, channel: u16, delivery_tag: u64, multiple: bool) {
    let _ = method(out, channel, (class::BASIC, 80), |out| {
        wire::put_u64(out, delivery_tag);
        out.push(u8::from(multiple));
        Ok(())
    });
}

/// confirm.select (waits for select-ok).
pub fn put_confirm_select(out: &mut Vec<u8>, channel: u16) {
    let _ = method(out, channel, (class::CONFIRM, 10), |out| {
        out.push(0);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::frame::Frame;

    fn payload(out: &[u8]) -> &[u8] {
        Frame::parse(out, 1 << 20).unwrap().unwrap().0.payload
    }

    #[test]
    fn strictness() {
        // basic.deliver cut short, and with a trailing byte.
        let mut p = vec![0, 60, 0, 60, 1, b'c'];
        p.extend_from_slice(&7u64.to_be_bytes());
        p.extend_from_slice(&[0, 1, b'e', 1, b'k']);
        assert!(matches!(Incoming::parse(&p), Ok(Incoming::Deliver { delivery_tag: 7, .. })));
        assert_eq!(Incoming::parse(&p[..p.len() - 1]), Err(Error::Truncated));
        p.push(0);
        assert_eq!(Incoming::parse(&p), Err(Error::TrailingBytes));
        assert_eq!(Incoming::parse(&[0, 99, 0, 1]), Err(Error::UnknownMethod(99, 1)));
    }

    #[test]
    fn start_ok_carries_capabilities_and_plain() {
        let mut out = Vec::new();
        put_start_ok(&mut out, Sasl::Plain { user: b"u", password: b"p" }, b"v1.viprouter").unwrap();
        let mut r = Reader::new(payload(&out));
        assert_eq!((r.u16().unwrap(), r.u16().unwrap()), (10, 11));
        let props = Table::parse(&mut r).unwrap();
        let Some(Value::Table(caps)) = props.get(b"capabilities") else { panic!() };
        assert_eq!(caps.get(b"publisher_confirms"), Some(Value::Bool(true)));
        assert_eq!(r.shortstr().unwrap(), b"PLAIN");
        assert_eq!(r.longstr().unwrap(), b"\0u\0p");
        assert_eq!(r.shortstr().unwrap(), b"en_US");
        assert!(r.is_empty());
        let n = out.len();
        assert_eq!(put_open(&mut out, &[b'v'; 256]), Err(EncodeError));
        assert_eq!(out.len(), n, "nothing half-written is queued");
    }
}
