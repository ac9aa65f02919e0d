//! `amqp_client`: the sans-IO AMQP client (`crate::amqp::client`) fed broker bytes.
//!
//! Input: one control byte, then the broker's byte stream. Control bit 0 prepends a valid
//! RabbitMQ handshake (start, tune, open-ok, channel open-ok, the topology replies, bind-ok,
//! consume-ok) so the fuzzer starts in the Ready phase (deliveries, returns, confirms, closes);
//! bits 1–5 choose the chunk size (1–32 bytes) of the second run. The corpus holds streams
//! captured from RabbitMQ 3.10 by `tests/amqp_broker.rs` (`capture-*`, see README).
//!
//! Checks: nothing panics; `consumed <= held`; a step that consumes nothing and gives no event
//! asks for more bytes than are held; the run fed whole and the run fed in chunks give the same
//! events, the same transmitted bytes and the same end. On Ready the harness publishes one
//! message, on each delivery it acks. The frame, table, method and content-header parsers also
//! run on the raw stream: a table that parses re-encodes to one that parses to the same values.

use crate::amqp::client::{Client, Credentials, Event, Publish, Settings};
use crate::amqp::properties::{ContentHeader, put_content_header};
use crate::amqp::table::{self, Value};
use crate::amqp::{frame, method, wire};
use crate::limits::Limits;
use crate::time::Instant;

fn server_method(out: &mut Vec<u8>, channel: u16, class: u16, id: u16, args: &[u8]) {
    let at = frame::begin(out, frame::METHOD, channel);
    wire::put_u16(out, class);
    wire::put_u16(out, id);
    out.extend_from_slice(args);
    let _ = frame::end(out, at);
}

/// A RabbitMQ 3.10-shaped handshake up to consume-ok, for a client with one binding.
pub fn amqp_handshake() -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = vec![0, 9];
    let _ = table::put_table(
        &mut start,
        &[(b"product", Value::LongStr(b"RabbitMQ")), (b"version", Value::LongStr(b"3.10.8"))],
    );
    let _ = wire::put_longstr(&mut start, b"PLAIN AMQPLAIN");
    let _ = wire::put_longstr(&mut start, b"en_US");
    server_method(&mut out, 0, 10, 10, &start);
    server_method(&mut out, 0, 10, 30, &[0x07, 0xff, 0, 2, 0, 0, 0, 60]);
    server_method(&mut out, 0, 10, 41, &[0]);
    server_method(&mut out, 1, 20, 11, &[0, 0, 0, 0]);
    server_method(&mut out, 1, 40, 11, &[]);
    server_method(&mut out, 1, 40, 11, &[]);
    server_method(&mut out, 1, 50, 11, b"\x0bn.viprouter\0\0\0\0\0\0\0\0");
    server_method(&mut out, 1, 60, 11, &[]);
    server_method(&mut out, 1, 85, 11, &[]);
    server_method(&mut out, 1, 50, 21, &[]);
    server_method(&mut out, 1, 60, 21, b"\x04ctag");
    out
}

#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<String>,
    tx: Vec<u8>,
    end: Option<crate::amqp::Error>,
}

fn run(input: &[u8], chunk: usize) -> Run {
    let limits = Limits { max_msg_bytes: 20_000, amqp_unconfirmed_window: 4, amqp_max_bindings: 4, ..Limits::COMPILED };
    let creds = Credentials::Plain { user: "guest".into(), password: "guest".into() };
    let mut c = Client::new(Settings::new(creds, "/", "n", &limits));
    let _ = c.bind(b"n.a");
    c.begin(Instant(0));
    let mut r = Run { events: Vec::new(), tx: Vec::new(), end: None };
    let (mut rx, mut fed) = (Vec::new(), 0);
    loop {
        loop {
            let step = c.handle_input(&rx, Instant(0));
            let (consumed, ev) = match step {
                Err(e) => {
                    r.end = Some(e);
                    r.tx.extend_from_slice(c.transmit());
                    return r;
                }
                Ok(i) => {
                    assert!(i.consumed <= rx.len());
                    if i.consumed == 0 && i.event.is_none() {
                        assert!(i.need > rx.len(), "need {} with {} held", i.need, rx.len());
                        break;
                    }
                    (i.consumed, i.event.map(|e| (format!("{e:?}"), e)))
                }
            };
            let act = ev.map(|(s, e)| {
                r.events.push(s);
                match e {
                    Event::Ready => 1,
                    Event::Delivery(d) => 2 + d.delivery_tag,
                    _ => 0,
                }
            });
            rx.drain(..consumed);
            match act {
                Some(1) => {
                    let p = Publish {
                        exchange: b"volttron",
                        routing_key: b"x.y",
                        mandatory: true,
                        properties: Default::default(),
                        body: b"[1]",
                    };
                    r.events.push(format!("{:?}", c.publish(&p)));
                }
                Some(t) if t >= 2 => c.ack(t - 2, false),
                _ => {}
            }
        }
        r.tx.extend_from_slice(c.transmit());
        let n = c.transmit().len();
        c.written(n, Instant(0));
        if fed >= input.len() {
            return r;
        }
        let take = chunk.min(input.len() - fed);
        rx.extend_from_slice(input.get(fed..fed + take).unwrap_or(&[]));
        fed += take;
    }
}

/// The `amqp_client` target.
pub fn fuzz_amqp_client(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let mut input = if ctl & 1 == 1 { amqp_handshake() } else { Vec::new() };
    input.extend_from_slice(rest);
    let whole = run(&input, usize::MAX);
    let chunked = run(&input, 1 + usize::from((ctl >> 1) & 31));
    assert_eq!(whole, chunked, "whole and chunked runs differ");
    parsers(rest);
}

/// The parsers alone on the raw bytes.
fn parsers(b: &[u8]) {
    if let Ok(Ok((f, n))) = frame::Frame::parse(b, u32::MAX) {
        assert!(n <= b.len() && f.payload.len() + frame::OVERHEAD == n);
        let _ = method::Incoming::parse(f.payload);
        if let Ok(h) = ContentHeader::parse(f.payload) {
            let mut out = Vec::new();
            if put_content_header(&mut out, 1, h.body_size, &h.properties).is_ok() {
                let (g, _) = frame::Frame::parse(&out, u32::MAX)
                    .ok()
                    .and_then(|x| x.ok())
                    .unwrap_or_else(|| panic!("re-encoded header"));
                assert_eq!(ContentHeader::parse(g.payload).ok(), Some(h), "content header round trip");
            }
        }
    }
    if let Ok(t) = table::parse_exact(b) {
        let entries: Vec<_> = t.iter().collect();
        let mut out = Vec::new();
        assert!(table::put_table(&mut out, &entries).is_ok());
        let back = table::parse_exact(&out).unwrap_or_else(|e| panic!("re-encoded table refused: {e}"));
        assert!(back.iter().eq(entries.iter().copied()), "table round trip");
    }
}
