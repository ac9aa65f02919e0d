//! Size probe for the `rabbitmq` feature (README "RabbitMQ bridge"): until phase 2 wires the
//! client into the event loop, the router binary does not call `viprouter::amqp`, so link-time
//! optimisation drops it and the feature costs the shipped binary next to nothing. This probe
//! links what phase 2 will link — the client, TLS (rustls + ring), the mapping and the URL
//! parser — behind a blocking socket, so `size(with) - size(without)` estimates the real cost:
//!
//! ```sh
//! cargo build --release --example amqp_size_probe                          # with the feature
//! cargo build --release --example amqp_size_probe --no-default-features    # baseline: TCP only
//! ```
//!
//! Usage: `amqp_size_probe amqp[s]://USER:PASS@HOST:PORT/VHOST [CA_PEM]` connects, reaches
//! Ready, publishes one message and closes.

use std::io::{Read, Write};
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1) else {
        eprintln!("usage: amqp_size_probe URL [CA_PEM]");
        std::process::exit(2);
    };
    run(url, args.get(2));
}

#[cfg(not(feature = "rabbitmq"))]
fn run(url: &str, _ca: Option<&String>) {
    let u = viprouter::config::rabbitmq::AmqpUrl::parse(url).unwrap_or_else(|e| panic!("{e}"));
    let mut s = TcpStream::connect((u.host.as_str(), u.port)).expect("connect");
    s.write_all(b"AMQP\x00\x00\x09\x01").expect("write");
    let mut b = [0u8; 4096];
    let n = s.read(&mut b).expect("read");
    println!("{n} bytes");
}

#[cfg(feature = "rabbitmq-tls")]
fn tls(ca: Option<&String>, host: &str) -> Option<viprouter::amqp::tls::Tls> {
    use viprouter::amqp::tls;
    ca.map(|p| {
        let cfg = tls::client_config(&std::fs::read(p).expect("CA file"), None).expect("TLS config");
        tls::Tls::new(cfg, host).expect("TLS")
    })
}

/// Without TLS: the same calls on a type that is never constructed.
#[cfg(all(feature = "rabbitmq", not(feature = "rabbitmq-tls")))]
fn tls(ca: Option<&String>, _host: &str) -> Option<NoTls> {
    assert!(ca.is_none(), "built without rabbitmq-tls");
    None
}

#[cfg(all(feature = "rabbitmq", not(feature = "rabbitmq-tls")))]
struct NoTls;

#[cfg(all(feature = "rabbitmq", not(feature = "rabbitmq-tls")))]
impl NoTls {
    fn write_plaintext(&mut self, _: &[u8]) -> Result<usize, ()> {
        Err(())
    }
    fn write_tls(&mut self, _: &mut Vec<u8>) -> Result<usize, ()> {
        Err(())
    }
    fn read_tls(&mut self, _: &[u8]) -> Result<usize, ()> {
        Err(())
    }
    fn read_plaintext(&mut self, _: &mut Vec<u8>, _: usize) -> Result<usize, ()> {
        Err(())
    }
}

#[cfg(feature = "rabbitmq")]
fn run(url: &str, ca: Option<&String>) {
    use viprouter::amqp::client::{Client, Credentials, EXCHANGE, Event, Publish, Settings};
    use viprouter::amqp::mapping::rpc::OutboundRpc;
    use viprouter::time::Instant;

    let u = viprouter::config::rabbitmq::AmqpUrl::parse(url).unwrap_or_else(|e| panic!("{e}"));
    let creds = Credentials::Plain {
        user: u.user.clone().unwrap_or_else(|| "guest".into()),
        password: u.password.clone().unwrap_or_else(|| "guest".into()),
    };
    let mut c = Client::new(Settings::new(creds, &u.vhost, "probe", &viprouter::limits::Limits::COMPILED));
    let mut s = TcpStream::connect((u.host.as_str(), u.port)).expect("connect");
    let mut t = tls(ca, &u.host);
    c.begin(Instant(0));
    let (mut rx, mut buf, mut published) = (Vec::new(), [0u8; 16384], false);
    loop {
        let out = c.transmit().to_vec();
        let n = out.len();
        match &mut t {
            None => s.write_all(&out).expect("write"),
            Some(t) => {
                t.write_plaintext(&out).expect("tls");
                let mut ct = Vec::new();
                t.write_tls(&mut ct).expect("tls");
                s.write_all(&ct).expect("write");
            }
        }
        c.written(n, Instant(0));
        let input = c.handle_input(&rx, Instant(0)).expect("protocol");
        let (consumed, ev) = (input.consumed, input.event.map(|e| format!("{e:?}")));
        rx.drain(..consumed);
        if let Some(e) = ev {
            println!("{e}");
            if e == "Ready" && !published {
                let body = br#"{"to_platform": "x", "to_peer": "y", "args": []}"#;
                let r = OutboundRpc::from_vip(b"probe", b"me", b"1", body).expect("map");
                let h = r.headers();
                let p = Publish {
                    exchange: EXCHANGE,
                    routing_key: &r.routing_key,
                    mandatory: true,
                    properties: r.properties(&h),
                    body: r.body,
                };
                c.publish(&p).expect("publish");
                published = true;
                c.close(Instant(0));
            }
            if matches!(e.as_str(), s if s.starts_with("Closed")) {
                return;
            }
            continue;
        }
        if consumed > 0 {
            continue;
        }
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            return;
        }
        match &mut t {
            None => rx.extend_from_slice(&buf[..n]),
            Some(t) => {
                t.read_tls(&buf[..n]).expect("tls");
                t.read_plaintext(&mut rx, usize::MAX).expect("tls");
            }
        }
        let _ = Event::Ready;
    }
}
