//! The client state machine against scripted broker frames (the real broker runs in
//! `tests/amqp_broker.rs`; here the edges: timers, refusals, closes, protocol errors).

use super::*;
use crate::amqp::Error;
use crate::amqp::frame::Frame;
use crate::amqp::wire::{self, Reader};
use crate::fuzzing::amqp_handshake;

fn client() -> Client {
    let creds = Credentials::Plain { user: "guest".into(), password: "guest".into() };
    let limits =
        Limits { amqp_unconfirmed_window: 2, max_msg_bytes: 100_000, amqp_tx_bytes: 300_000, ..Limits::COMPILED };
    let mut c = Client::new(Settings::new(creds, "/", "n", &limits));
    c.bind(b"n.a").unwrap();
    c
}

/// Feed `input` whole; returns the events' debug texts.
fn feed(c: &mut Client, input: &[u8], now: Instant) -> Vec<String> {
    let mut off = 0;
    let mut ev = Vec::new();
    while off < input.len() {
        let i = c.handle_input(&input[off..], now).unwrap();
        assert!(i.consumed > 0, "stuck at {off}");
        if let Some(e) = i.event {
            ev.push(format!("{e:?}"));
        }
        off += i.consumed;
    }
    ev
}

/// (class, method) of every method frame in `tx` (after the protocol header if present).
fn methods(tx: &[u8]) -> Vec<(u16, u16)> {
    let mut rest = tx.strip_prefix(&frame::PROTOCOL_HEADER).unwrap_or(tx);
    let mut out = Vec::new();
    while let Ok(Ok((f, n))) = Frame::parse(rest, u32::MAX) {
        if f.kind == frame::METHOD {
            let mut r = Reader::new(f.payload);
            out.push((r.u16().unwrap(), r.u16().unwrap()));
        }
        rest = &rest[n..];
    }
    out
}

fn ready() -> Client {
    let mut c = client();
    c.begin(Instant(0));
    let ev = feed(&mut c, &amqp_handshake(), Instant(0));
    assert_eq!(ev, vec!["Ready"]);
    c
}

fn server_method(channel: u16, class: u16, id: u16, args: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let at = frame::begin(&mut out, frame::METHOD, channel);
    wire::put_u16(&mut out, class);
    wire::put_u16(&mut out, id);
    out.extend_from_slice(args);
    frame::end(&mut out, at).unwrap();
    out
}

#[test]
fn handshake_sends_volttrons_topology_in_order() {
    let c = ready();
    assert!(c.transmit().starts_with(&frame::PROTOCOL_HEADER));
    assert_eq!(
        methods(c.transmit()),
        vec![
            (10, 11),
            (10, 31),
            (10, 40),
            (20, 10),
            (40, 10),
            (40, 10),
            (50, 10),
            (60, 10),
            (85, 10),
            (50, 20),
            (60, 20)
        ]
    );
    assert_eq!(c.bindings(), (1, 1));
    assert_eq!(c.queue(), "n.viprouter");
}

#[test]
fn publishes_are_refused_when_not_ready_blocked_or_the_window_is_full() {
    let p = Publish {
        exchange: EXCHANGE,
        routing_key: b"x.y",
        mandatory: true,
        properties: Properties::default(),
        body: b"1",
    };
    let mut c = client();
    assert_eq!(c.publish(&p), Err(PublishError::NotReady));
    let mut c = ready();
    let n = c.transmit().len();
    c.written(n, Instant(1));
    assert_eq!(
        feed(&mut c, &server_method(0, 10, 60, b"\x0blow on disk"), Instant(1)),
        vec!["Blocked { reason: [108, 111, 119, 32, 111, 110, 32, 100, 105, 115, 107] }"]
    );
    assert!(!c.is_ready() && c.is_open());
    assert_eq!(c.publish(&p), Err(PublishError::Blocked));
    assert_eq!(feed(&mut c, &server_method(0, 10, 61, b""), Instant(1)), vec!["Unblocked"]);
    assert_eq!(c.publish(&p), Ok(1));
    assert_eq!(c.publish(&p), Ok(2));
    assert_eq!(c.publish(&p), Err(PublishError::WindowFull), "window of 2");
    let big = vec![0u8; 100_001];
    assert_eq!(c.publish(&Publish { body: &big, ..p }), Err(PublishError::TooLarge), "over max-msg-bytes");
    // A nack settles one and says so.
    let mut nack = 2u64.to_be_bytes().to_vec();
    nack.push(0);
    let ev = feed(&mut c, &server_method(1, 60, 120, &nack), Instant(2));
    assert_eq!(ev, vec!["Confirmed { tag: 2, multiple: false, ack: false, settled: 1 }"]);
    assert_eq!(c.unconfirmed(), 1);
    // The transmit buffer: a message is admitted into an empty buffer whatever its size, then
    // nothing that would pass amqp-tx-bytes (300 000 here).
    let ack = |tag: u64| {
        let mut a = tag.to_be_bytes().to_vec();
        a.push(1); // multiple
        server_method(1, 60, 80, &a)
    };
    assert_eq!(feed(&mut c, &ack(1), Instant(2)).len(), 1);
    assert_eq!(c.unconfirmed(), 0);
    let n = c.transmit().len();
    c.written(n, Instant(2));
    let body = vec![7u8; 90_000];
    let p90 = Publish { body: &body, ..p };
    assert_eq!((c.publish(&p90), c.publish(&p90)), (Ok(3), Ok(4)));
    assert_eq!(c.publish(&p90), Err(PublishError::WindowFull));
    feed(&mut c, &ack(4), Instant(3));
    assert_eq!(c.publish(&p90), Ok(5));
    let held = c.transmit().len();
    assert_eq!(c.publish(&p90), Err(PublishError::TxFull));
    assert_eq!(c.transmit().len(), held);
    c.written(held, Instant(4));
    assert_eq!(c.publish(&p90), Ok(6), "room again once written");
    feed(&mut c, &ack(6), Instant(5));
    let rk = [b'k'; 256];
    assert_eq!(c.publish(&Publish { routing_key: &rk, ..p }), Err(PublishError::Encode));
    let before = c.transmit().len();
    assert_eq!(c.publish(&Publish { routing_key: &rk, ..p }), Err(PublishError::Encode));
    assert_eq!(c.transmit().len(), before, "a refused publish leaves nothing queued");
}

#[test]
fn heartbeats_and_timeouts() {
    let mut c = client();
    c.begin(Instant(0));
    assert_eq!(c.next_timer(), Some(Instant(AMQP_HANDSHAKE_TIMEOUT_MS)));
    assert_eq!(c.poll_timers(Instant(AMQP_HANDSHAKE_TIMEOUT_MS)), Err(Error::Timeout));
    let mut c = ready(); // the broker proposes 60 s, we 20 s: 20 s
    let n = c.transmit().len();
    c.written(n, Instant(0));
    assert_eq!(c.next_timer(), Some(Instant(10_000)));
    c.poll_timers(Instant(9_999)).unwrap();
    assert!(c.transmit().is_empty());
    c.poll_timers(Instant(10_000)).unwrap();
    assert_eq!(c.transmit(), &[8, 0, 0, 0, 0, 0, 0, 0xce], "a heartbeat after half an interval of silence");
    c.written(8, Instant(10_000));
    feed(&mut c, &[8, 0, 0, 0, 0, 0, 0, 0xce], Instant(30_000));
    c.poll_timers(Instant(70_000)).unwrap();
    assert_eq!(c.poll_timers(Instant(70_001)), Err(Error::HeartbeatTimeout), "two silent intervals");
}

#[test]
fn closes_both_ways() {
    // The broker closes the connection: close-ok answered.
    let mut c = ready();
    let n = c.transmit().len();
    c.written(n, Instant(0));
    let ev = feed(&mut c, &server_method(0, 10, 50, b"\x01\x40\x05forcd\x00\x00\x00\x00"), Instant(1));
    assert_eq!(ev, vec!["Closed(CloseInfo { by: Broker, code: 320, text: [102, 111, 114, 99, 100], cause: (0, 0) })"]);
    assert_eq!(methods(c.transmit()), vec![(10, 51)]);
    // The broker closes our channel: close-ok, then we close the connection and wait.
    let mut c = ready();
    let n = c.transmit().len();
    c.written(n, Instant(0));
    let ev = feed(&mut c, &server_method(1, 20, 40, b"\x01\x94\x03bad\x00\x28\x00\x0a"), Instant(1));
    assert!(ev[0].starts_with("Closing(CloseInfo { by: BrokerChannel, code: 404"), "{ev:?}");
    assert_eq!(methods(c.transmit()), vec![(20, 41), (10, 50)]);
    // A delivery still in flight is discarded, then close-ok ends it.
    let ev =
        feed(&mut c, &server_method(1, 60, 60, b"\x01t\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01e\x01k"), Instant(2));
    assert!(ev.is_empty());
    let ev = feed(&mut c, &server_method(0, 10, 51, b""), Instant(2));
    assert_eq!(ev, vec!["Closed(CloseInfo { by: Client, code: 200, text: [], cause: (0, 0) })"]);
    // Our own close.
    let mut c = ready();
    assert!(c.close(Instant(5)));
    assert!(!c.close(Instant(5)), "already closing");
    assert_eq!(c.poll_timers(Instant(5 + AMQP_HANDSHAKE_TIMEOUT_MS)), Err(Error::Timeout), "no close-ok in time");
}

#[test]
fn protocol_errors_close_with_the_reply_code() {
    let mut c = ready();
    let n = c.transmit().len();
    c.written(n, Instant(0));
    // A frame declaring more than frame-max: refused at its header, 501.
    let e = c.handle_input(&[3, 0, 1, 0x7f, 0xff, 0xff, 0xff], Instant(1)).unwrap_err();
    assert!(matches!(e, Error::FrameTooLarge { .. }));
    let m = methods(c.transmit());
    assert_eq!(m, vec![(10, 50)]);
    assert_eq!(&c.transmit()[11..13], &501u16.to_be_bytes());
    // A body frame with no delivery in progress: 505. A method on channel 7: 504.
    let mut c = ready();
    assert_eq!(c.handle_input(&[3, 0, 1, 0, 0, 0, 0, 0xce], Instant(1)), Err(Error::Unexpected));
    let mut c = ready();
    assert_eq!(c.handle_input(&server_method(7, 60, 80, &[0; 9]), Instant(1)), Err(Error::BadChannel(7)));
    // connection.start without our mechanism.
    let mut c = client();
    c.begin(Instant(0));
    let mut start = vec![0, 9, 0, 0, 0, 0];
    wire::put_longstr(&mut start, b"AMQPLAIN EXTERNAL").unwrap();
    wire::put_longstr(&mut start, b"en_US").unwrap();
    assert_eq!(c.handle_input(&server_method(0, 10, 10, &start), Instant(0)), Err(Error::Negotiation));
    // Input before begin.
    let mut c = client();
    assert_eq!(c.handle_input(&[8, 0, 0, 0, 0, 0, 0, 0xce], Instant(0)), Err(Error::Unexpected));
}
