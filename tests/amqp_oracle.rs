//! The hand-rolled AMQP codec (`viprouter::amqp`) checked against `amq-protocol` 10.6.3 (the
//! codec lapin uses; a dev-dependency only) on random input, both directions (memo §7, §9.2):
//! field tables of every type nested, content headers with any subset of the 14 properties,
//! the broker's methods (amq-protocol encodes, we decode) and the client's (we encode,
//! amq-protocol decodes).
#![cfg(feature = "rabbitmq")]

use std::collections::BTreeMap;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, basic, channel, connection, exchange, queue};
use amq_protocol::types::{AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use proptest::prelude::*;
use viprouter::amqp::frame::Frame;
use viprouter::amqp::method::{self, ExchangeFlags, Incoming, QueueFlags, Sasl};
use viprouter::amqp::properties::{ContentHeader, Headers, Properties, put_content_header};
use viprouter::amqp::table::{self, Table, TableWriter, Value};
use viprouter::amqp::wire;

fn encode(f: &AMQPFrame) -> Vec<u8> {
    gen_frame(f)(WriteContext::from(Vec::new())).unwrap().write
}

fn amq_parse(b: &[u8]) -> AMQPFrame {
    let (rest, f) = parse_frame(b).unwrap_or_else(|e| panic!("amq-protocol refused {b:02x?}: {e:?}"));
    assert!(rest.is_empty());
    f
}

fn payload(b: &[u8]) -> &[u8] {
    Frame::parse(b, u32::MAX).unwrap().unwrap().0.payload
}

// ---- values -----------------------------------------------------------------------------

fn leaf() -> impl Strategy<Value = AMQPValue> {
    prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        prop::num::f32::NORMAL.prop_map(AMQPValue::Float),
        prop::num::f64::NORMAL.prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|v| AMQPValue::LongString(v.into())),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|v| AMQPValue::ByteArray(v.into())),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        Just(AMQPValue::Void),
    ]
}

fn value() -> impl Strategy<Value = AMQPValue> {
    leaf().prop_recursive(3, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            prop::collection::btree_map("[a-z_.-]{1,12}", inner, 0..5).prop_map(|m| AMQPValue::FieldTable(table_of(m))),
        ]
    })
}

fn table_of(m: BTreeMap<String, AMQPValue>) -> FieldTable {
    FieldTable::from(m.into_iter().map(|(k, v)| (ShortString::from(k), v)).collect::<BTreeMap<_, _>>())
}

fn field_table() -> impl Strategy<Value = FieldTable> {
    prop::collection::btree_map("[a-zA-Z0-9_.-]{1,20}", value(), 0..8).prop_map(table_of)
}

/// Our view as amq-protocol's value.
fn to_amq(v: &Value<'_>) -> AMQPValue {
    match *v {
        Value::Bool(b) => AMQPValue::Boolean(b),
        Value::I8(x) => AMQPValue::ShortShortInt(x),
        Value::U8(x) => AMQPValue::ShortShortUInt(x),
        Value::I16(x) => AMQPValue::ShortInt(x),
        Value::U16(x) => AMQPValue::ShortUInt(x),
        Value::I32(x) => AMQPValue::LongInt(x),
        Value::U32(x) => AMQPValue::LongUInt(x),
        Value::I64(x) => AMQPValue::LongLongInt(x),
        Value::F32(x) => AMQPValue::Float(x),
        Value::F64(x) => AMQPValue::Double(x),
        Value::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue { scale, value }),
        Value::LongStr(s) => AMQPValue::LongString(s.to_vec().into()),
        Value::Bytes(s) => AMQPValue::ByteArray(s.to_vec().into()),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(a.iter().map(|x| to_amq(&x)).collect::<Vec<_>>())),
        Value::Timestamp(t) => AMQPValue::Timestamp(t),
        Value::Table(t) => AMQPValue::FieldTable(table_to_amq(&t)),
        Value::Void => AMQPValue::Void,
    }
}

fn table_to_amq(t: &Table<'_>) -> FieldTable {
    let mut out = FieldTable::default();
    for (k, v) in t.iter() {
        out.insert(ShortString::from(std::str::from_utf8(k).unwrap()), to_amq(&v));
    }
    out
}

/// amq-protocol's value encoded by our encoder (nested blocks built bottom-up).
fn put_amq_value(out: &mut Vec<u8>, v: &AMQPValue) {
    let scalar = match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(x) => Value::I8(*x),
        AMQPValue::ShortShortUInt(x) => Value::U8(*x),
        AMQPValue::ShortInt(x) => Value::I16(*x),
        AMQPValue::ShortUInt(x) => Value::U16(*x),
        AMQPValue::LongInt(x) => Value::I32(*x),
        AMQPValue::LongUInt(x) => Value::U32(*x),
        AMQPValue::LongLongInt(x) => Value::I64(*x),
        AMQPValue::Float(x) => Value::F32(*x),
        AMQPValue::Double(x) => Value::F64(*x),
        AMQPValue::DecimalValue(d) => Value::Decimal { scale: d.scale, value: d.value },
        AMQPValue::LongString(s) => Value::LongStr(s.as_bytes()),
        AMQPValue::ByteArray(s) => Value::Bytes(s.as_slice()),
        AMQPValue::Timestamp(t) => Value::Timestamp(*t),
        AMQPValue::Void => Value::Void,
        AMQPValue::FieldArray(a) => {
            out.push(b'A');
            let at = wire::begin_len32(out);
            for x in a.as_slice() {
                put_amq_value(out, x);
            }
            wire::end_len32(out, at).unwrap();
            return;
        }
        AMQPValue::FieldTable(t) => {
            out.push(b'F');
            put_amq_table(out, t);
            return;
        }
        AMQPValue::ShortString(_) => unreachable!("not generated"),
    };
    scalar.emit(out).unwrap();
}

fn put_amq_table(out: &mut Vec<u8>, t: &FieldTable) {
    let w = TableWriter::begin(out);
    for (k, v) in t.inner() {
        wire::put_shortstr(out, k.as_str().as_bytes()).unwrap();
        put_amq_value(out, v);
    }
    w.finish(out).unwrap();
}

// ---- properties ---------------------------------------------------------------------------

fn short() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[ -~]{0,40}")
}

prop_compose! {
    fn amq_properties()(
        ct in short(), ce in short(), h in prop::option::of(field_table()), dm in prop::option::of(any::<u8>()),
        pr in prop::option::of(any::<u8>()), ci in short(), rt in short(), ex in short(), mi in short(),
        ts in prop::option::of(any::<u64>()), ty in short(), ui in short(), ai in short(), cl in short(),
    ) -> basic::AMQPProperties {
        let mut p = basic::AMQPProperties::default();
        let s = |x: String| ShortString::from(x);
        if let Some(x) = ct { p = p.with_content_type(s(x)); }
        if let Some(x) = ce { p = p.with_content_encoding(s(x)); }
        if let Some(x) = h { p = p.with_headers(x); }
        if let Some(x) = dm { p = p.with_delivery_mode(x); }
        if let Some(x) = pr { p = p.with_priority(x); }
        if let Some(x) = ci { p = p.with_correlation_id(s(x)); }
        if let Some(x) = rt { p = p.with_reply_to(s(x)); }
        if let Some(x) = ex { p = p.with_expiration(s(x)); }
        if let Some(x) = mi { p = p.with_message_id(s(x)); }
        if let Some(x) = ts { p = p.with_timestamp(x); }
        if let Some(x) = ty { p = p.with_type(s(x)); }
        if let Some(x) = ui { p = p.with_user_id(s(x)); }
        if let Some(x) = ai { p = p.with_app_id(s(x)); }
        if let Some(x) = cl { p = p.with_cluster_id(s(x)); }
        p
    }
}

fn ss(o: &Option<ShortString>) -> Option<&[u8]> {
    o.as_ref().map(|s| s.as_str().as_bytes())
}

fn assert_same_properties(ours: &Properties<'_>, amq: &basic::AMQPProperties) {
    assert_eq!(ours.content_type, ss(amq.content_type()));
    assert_eq!(ours.content_encoding, ss(amq.content_encoding()));
    let h = ours.headers.map(|h| match h {
        Headers::Table(t) => table_to_amq(&t),
        Headers::Entries(_) => unreachable!(),
    });
    assert_eq!(h.as_ref(), amq.headers().as_ref());
    assert_eq!(ours.delivery_mode, *amq.delivery_mode());
    assert_eq!(ours.priority, *amq.priority());
    assert_eq!(ours.correlation_id, ss(amq.correlation_id()));
    assert_eq!(ours.reply_to, ss(amq.reply_to()));
    assert_eq!(ours.expiration, ss(amq.expiration()));
    assert_eq!(ours.message_id, ss(amq.message_id()));
    assert_eq!(ours.timestamp, *amq.timestamp());
    assert_eq!(ours.kind, ss(amq.kind()));
    assert_eq!(ours.user_id, ss(amq.user_id()));
    assert_eq!(ours.app_id, ss(amq.app_id()));
    assert_eq!(ours.cluster_id, ss(amq.cluster_id()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// amq-protocol encodes a table, we parse it to the same values.
    #[test]
    fn tables_amq_to_ours(t in field_table()) {
        let mut buf = Vec::new();
        put_amq_table(&mut buf, &t); // (our encoder; the next line checks amq's own)
        let amq_bytes = amq_protocol::types::generation::gen_field_table(&t)(WriteContext::from(Vec::new())).unwrap().write;
        let ours = table::parse_exact(&amq_bytes).unwrap();
        prop_assert_eq!(table_to_amq(&ours), t.clone());
        // We encode it, amq-protocol parses the same table, byte for byte the same encoding.
        let (rest, back) = amq_protocol::types::parsing::parse_field_table(&buf[..]).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(back, t);
        prop_assert_eq!(buf, amq_bytes);
    }

    /// A content header from amq-protocol parses to the same properties; ours parses back in
    /// amq-protocol to the same header.
    #[test]
    fn content_headers_both_ways(p in amq_properties(), size in any::<u64>()) {
        let f = AMQPFrame::Header(1, AMQPContentHeader { class_id: 60, body_size: size, properties: p.clone() });
        let bytes = encode(&f);
        let h = ContentHeader::parse(payload(&bytes)).unwrap();
        prop_assert_eq!(h.body_size, size);
        assert_same_properties(&h.properties, &p);
        let mut ours = Vec::new();
        put_content_header(&mut ours, 1, size, &h.properties).unwrap();
        prop_assert_eq!(amq_parse(&ours), f);
        prop_assert_eq!(ours, bytes);
    }

    /// The broker's methods, encoded by amq-protocol, decoded by us.
    #[test]
    fn broker_methods_amq_to_ours(
        tag in any::<u64>(), flag in any::<bool>(), code in any::<u16>(), a in "[ -~]{0,60}", b in "[ -~]{0,60}",
        n in any::<u32>(), m in any::<u32>(), hb in any::<u16>(), props in field_table(),
    ) {
        let s = |x: &str| ShortString::from(x);
        let cases: Vec<(AMQPClass, u16)> = vec![
            (AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: s(&a), delivery_tag: tag, redelivered: flag, exchange: s(&b), routing_key: s(&a) })), 1),
            (AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                reply_code: code, reply_text: s(&a), exchange: s(&b), routing_key: s(&b) })), 1),
            (AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: tag, multiple: flag })), 1),
            (AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack { delivery_tag: tag, multiple: flag, requeue: !flag })), 1),
            (AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk { consumer_tag: s(&a) })), 1),
            (AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel { consumer_tag: s(&a), nowait: flag })), 1),
            (AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: s(&a), message_count: n, consumer_count: m })), 1),
            (AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0, version_minor: 9, server_properties: props.clone(),
                mechanisms: LongString::from(a.as_bytes()), locales: LongString::from(b.as_bytes()) })), 0),
            (AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                channel_max: code, frame_max: n, heartbeat: hb })), 0),
            (AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: code, reply_text: s(&a), class_id: hb, method_id: code })), 0),
            (AMQPClass::Connection(connection::AMQPMethod::Blocked(connection::Blocked { reason: s(&b) })), 0),
            (AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: code, reply_text: s(&a), class_id: hb, method_id: code })), 1),
            (AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: flag })), 1),
        ];
        for (class, ch) in cases {
            let bytes = encode(&AMQPFrame::Method(ch, class.clone()));
            let got = Incoming::parse(payload(&bytes)).unwrap();
            let ok = match (&class, got) {
                (AMQPClass::Basic(basic::AMQPMethod::Deliver(d)), Incoming::Deliver { consumer_tag, delivery_tag, redelivered, exchange, routing_key }) =>
                    consumer_tag == d.consumer_tag.as_str().as_bytes() && delivery_tag == d.delivery_tag
                    && redelivered == d.redelivered && exchange == d.exchange.as_str().as_bytes()
                    && routing_key == d.routing_key.as_str().as_bytes(),
                (AMQPClass::Basic(basic::AMQPMethod::Return(r)), Incoming::Return { code, text, exchange, routing_key }) =>
                    code == r.reply_code && text == r.reply_text.as_str().as_bytes()
                    && exchange == r.exchange.as_str().as_bytes() && routing_key == r.routing_key.as_str().as_bytes(),
                (AMQPClass::Basic(basic::AMQPMethod::Ack(x)), Incoming::Confirm { delivery_tag, multiple, ack }) =>
                    ack && delivery_tag == x.delivery_tag && multiple == x.multiple,
                (AMQPClass::Basic(basic::AMQPMethod::Nack(x)), Incoming::Confirm { delivery_tag, multiple, ack }) =>
                    !ack && delivery_tag == x.delivery_tag && multiple == x.multiple,
                (AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(x)), Incoming::ConsumeOk { consumer_tag }) =>
                    consumer_tag == x.consumer_tag.as_str().as_bytes(),
                (AMQPClass::Basic(basic::AMQPMethod::Cancel(x)), Incoming::Cancel { consumer_tag, no_wait }) =>
                    consumer_tag == x.consumer_tag.as_str().as_bytes() && no_wait == x.nowait,
                (AMQPClass::Queue(queue::AMQPMethod::DeclareOk(x)), Incoming::QueueDeclareOk { queue, message_count, consumer_count }) =>
                    queue == x.queue.as_str().as_bytes() && message_count == x.message_count && consumer_count == x.consumer_count,
                (AMQPClass::Connection(connection::AMQPMethod::Start(x)), Incoming::Start { version_major, version_minor, server_properties, mechanisms, locales }) =>
                    (version_major, version_minor) == (0, 9) && table_to_amq(&server_properties) == x.server_properties
                    && mechanisms == x.mechanisms.as_bytes() && locales == x.locales.as_bytes(),
                (AMQPClass::Connection(connection::AMQPMethod::Tune(x)), Incoming::Tune { channel_max, frame_max, heartbeat }) =>
                    (channel_max, frame_max, heartbeat) == (x.channel_max, x.frame_max, x.heartbeat),
                (AMQPClass::Connection(connection::AMQPMethod::Close(x)), Incoming::Close { channel: false, code, text, class_id, method_id }) =>
                    code == x.reply_code && text == x.reply_text.as_str().as_bytes() && (class_id, method_id) == (x.class_id, x.method_id),
                (AMQPClass::Channel(channel::AMQPMethod::Close(x)), Incoming::Close { channel: true, code, text, class_id, method_id }) =>
                    code == x.reply_code && text == x.reply_text.as_str().as_bytes() && (class_id, method_id) == (x.class_id, x.method_id),
                (AMQPClass::Connection(connection::AMQPMethod::Blocked(x)), Incoming::Blocked { reason }) =>
                    reason == x.reason.as_str().as_bytes(),
                (AMQPClass::Channel(channel::AMQPMethod::Flow(x)), Incoming::Flow { active }) => active == x.active,
                _ => false,
            };
            prop_assert!(ok, "{:?} decoded as {:?}", class, got);
        }
    }

    /// The client's methods, encoded by us, decoded by amq-protocol.
    #[test]
    fn client_methods_ours_to_amq(
        tag in any::<u64>(), flags in any::<[bool; 4]>(), code in any::<u16>(), a in "[ -~]{0,60}", b in "[ -~]{0,60}",
        fm in any::<u32>(), hb in any::<u16>(), prefetch in any::<u16>(), args in field_table(),
    ) {
        let s = |x: &str| ShortString::from(x);
        let mut arg_bytes = Vec::new();
        put_amq_table(&mut arg_bytes, &args);
        let arg_view = table::parse_exact(&arg_bytes).unwrap();
        let entries: Vec<(&[u8], Value<'_>)> = arg_view.iter().collect();
        let mut out = Vec::new();
        let mut expect: Vec<AMQPFrame> = Vec::new();
        method::put_exchange_declare(&mut out, 1, a.as_bytes(), b.as_bytes(),
            ExchangeFlags { passive: flags[0], durable: flags[1], auto_delete: flags[2], internal: flags[3] }, &entries).unwrap();
        expect.push(AMQPFrame::Method(1, AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: s(&a), kind: s(&b), passive: flags[0], durable: flags[1], auto_delete: flags[2], internal: flags[3],
            nowait: false, arguments: args.clone() }))));
        method::put_queue_declare(&mut out, 1, a.as_bytes(),
            QueueFlags { passive: flags[0], durable: flags[1], exclusive: flags[2], auto_delete: flags[3] }, &entries).unwrap();
        expect.push(AMQPFrame::Method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: s(&a), passive: flags[0], durable: flags[1], exclusive: flags[2], auto_delete: flags[3],
            nowait: false, arguments: args.clone() }))));
        for bind in [true, false] {
            method::put_queue_bind(&mut out, 1, bind, a.as_bytes(), b"volttron", b.as_bytes()).unwrap();
            expect.push(AMQPFrame::Method(1, AMQPClass::Queue(if bind {
                queue::AMQPMethod::Bind(queue::Bind { queue: s(&a), exchange: s("volttron"), routing_key: s(&b), nowait: false, arguments: FieldTable::default() })
            } else {
                queue::AMQPMethod::Unbind(queue::Unbind { queue: s(&a), exchange: s("volttron"), routing_key: s(&b), arguments: FieldTable::default() })
            })));
        }
        method::put_publish(&mut out, 1, b"volttron", a.as_bytes(), flags[0]).unwrap();
        expect.push(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: s("volttron"), routing_key: s(&a), mandatory: flags[0], immediate: false }))));
        method::put_ack(&mut out, 1, tag, flags[1]);
        expect.push(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: tag, multiple: flags[1] }))));
        method::put_qos(&mut out, 1, prefetch);
        expect.push(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos { prefetch_count: prefetch, global: false }))));
        method::put_consume(&mut out, 1, a.as_bytes(), flags[2]).unwrap();
        expect.push(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: s(&a), consumer_tag: s(""), no_local: false, no_ack: false, exclusive: flags[2], nowait: false, arguments: FieldTable::default() }))));
        method::put_tune_ok(&mut out, 1, fm, hb);
        expect.push(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk { channel_max: 1, frame_max: fm, heartbeat: hb }))));
        method::put_open(&mut out, a.as_bytes()).unwrap();
        expect.push(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: s(&a) }))));
        method::put_close(&mut out, 0, code, b.as_bytes(), (hb, code));
        expect.push(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: code, reply_text: s(&b), class_id: hb, method_id: code }))));
        method::put_start_ok(&mut out, Sasl::Plain { user: a.as_bytes(), password: b.as_bytes() }, b"c").unwrap();
        let mut rest = &out[..];
        for want in expect {
            let (r, f) = parse_frame(rest).unwrap();
            prop_assert_eq!(f, want);
            rest = r;
        }
        let (r, f) = parse_frame(rest).unwrap();
        prop_assert!(r.is_empty());
        let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(so))) = f else { panic!("{f:?}") };
        prop_assert_eq!(so.mechanism.as_str(), "PLAIN");
        let mut resp = vec![0u8];
        resp.extend_from_slice(a.as_bytes());
        resp.push(0);
        resp.extend_from_slice(b.as_bytes());
        prop_assert_eq!(so.response.as_bytes(), &resp[..]);
        let caps = so.client_properties.inner().get(&ShortString::from("capabilities"));
        prop_assert!(matches!(caps, Some(AMQPValue::FieldTable(t)) if t.inner().len() == 5));
    }
}
