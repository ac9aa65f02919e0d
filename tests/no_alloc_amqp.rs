//! Zero allocation on the RabbitMQ bridge's message path (issue #15): after the handshake and
//! a warm-up, 100 000 publishes (VOLTTRON's properties and headers, mapped from a VIP RPC by
//! `amqp::mapping`), 100 000 deliveries parsed in place and mapped back (routing key, the
//! properties, the body, the inbound-RPC body written into a reused buffer), their acks and the
//! broker's confirms allocate nothing. Sans-IO: the broker's bytes are built here, so no
//! broker is needed; `tests/amqp_broker.rs` runs the same client against RabbitMQ.
#![cfg(feature = "rabbitmq")]

#[path = "common/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::{allocations, count_here, first, reset};

use viprouter::amqp::client::{Client, Credentials, EXCHANGE, Event, Publish, Settings};
use viprouter::amqp::mapping::pubsub::InboundPublish;
use viprouter::amqp::mapping::rpc::{InboundRpc, OutboundRpc};
use viprouter::amqp::mapping::{self, vip_headers};
use viprouter::amqp::properties::put_content_header;
use viprouter::amqp::{content, frame, wire};
use viprouter::fuzzing::amqp_handshake;
use viprouter::limits::Limits;
use viprouter::time::Instant;

const N: u64 = 100_000;

fn method(out: &mut Vec<u8>, class: u16, id: u16, args: &[u8]) {
    let at = frame::begin(out, frame::METHOD, 1);
    wire::put_u16(out, class);
    wire::put_u16(out, id);
    out.extend_from_slice(args);
    frame::end(out, at).unwrap();
}

/// basic.deliver (tag 1) + header (VOLTTRON's RPC properties) + body, and a basic.ack confirm.
fn broker_message(rpc_body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut d = Vec::new();
    let mut args = vec![4];
    args.extend_from_slice(b"ctag");
    args.extend_from_slice(&1u64.to_be_bytes());
    args.push(0);
    wire::put_shortstr(&mut args, EXCHANGE).unwrap();
    wire::put_shortstr(&mut args, b"n.callee").unwrap();
    method(&mut d, 60, 60, &args);
    let hdrs = vip_headers(b"n.callee", b"v1.agent_b");
    let props = mapping::vip_properties(b"v1.agent_b", b"RPC", b"1.123", &hdrs);
    put_content_header(&mut d, 1, rpc_body.len() as u64, &props).unwrap();
    content::put_body(&mut d, 1, rpc_body, 131_072).unwrap();
    let mut c = Vec::new();
    let mut a = 1u64.to_be_bytes().to_vec();
    a.push(1); // multiple
    method(&mut c, 60, 80, &a);
    (d, c)
}

#[test]
fn publish_deliver_ack_confirm_allocate_nothing() {
    let creds = Credentials::Plain { user: "guest".into(), password: "guest".into() };
    let mut c = Client::new(Settings::new(creds, "/", "n", &Limits::COMPILED));
    c.bind(b"n.a").unwrap();
    c.begin(Instant(0));
    let hs = amqp_handshake();
    let mut off = 0;
    let mut ready = false;
    while off < hs.len() {
        let i = c.handle_input(&hs[off..], Instant(0)).unwrap();
        ready |= i.event == Some(Event::Ready);
        off += i.consumed;
    }
    assert!(ready && c.is_ready());
    let n = c.transmit().len();
    c.written(n, Instant(0));

    let vip = br#"{"to_platform": "v1", "to_peer": "agent_b", "from_platform": "", "from_peer": "", "args": ["{\"jsonrpc\": \"2.0\", \"method\": \"echo\", \"params\": [1], \"id\": \"7\"}"]}"#;
    let rpc_body = br#"["{\"jsonrpc\": \"2.0\", \"result\": 1, \"id\": \"7\"}"]"#;
    let (delivery, mut confirm) = broker_message(rpc_body);
    let mut vip_out: Vec<u8> = Vec::with_capacity(4096);
    let mut one = |c: &mut Client, now: Instant| {
        // Outbound RPC: VIP → AMQP publish.
        let r = OutboundRpc::from_vip(b"n", b"caller", b"m-1", vip).unwrap();
        let h = r.headers();
        let p = Publish {
            exchange: EXCHANGE,
            routing_key: &r.routing_key,
            mandatory: true,
            properties: r.properties(&h),
            body: r.body,
        };
        let seq = c.publish(&p).unwrap();
        // The broker's delivery, parsed in place, mapped to VIP, acked.
        let i = c.handle_input(&delivery, now).unwrap();
        assert_eq!(i.consumed, delivery.len());
        let Some(Event::Delivery(d)) = i.event else { panic!("{:?}", i.event) };
        let body = d.body.contiguous().unwrap();
        let m = InboundRpc::from_delivery(b"n", &d, body).unwrap();
        vip_out.clear();
        m.write_body(b"n", &mut vip_out).unwrap();
        assert!(InboundPublish::from_delivery(b"n", &d, body).is_err());
        c.ack(d.delivery_tag, false);
        // The broker's confirm of that publish (its tag is the publish's sequence number).
        confirm[11..19].copy_from_slice(&seq.to_be_bytes());
        let i = c.handle_input(&confirm, now).unwrap();
        assert!(matches!(i.event, Some(Event::Confirmed { .. })));
        let n = c.transmit().len();
        c.written(n, now);
    };
    for k in 0..1000 {
        one(&mut c, Instant(k));
    }
    reset();
    count_here(true);
    for k in 0..N {
        one(&mut c, Instant(1000 + k));
    }
    count_here(false);
    assert_eq!(allocations(), 0, "allocations on the AMQP message path; first at {:?}", first());
    assert_eq!(c.unconfirmed(), 0);
}
