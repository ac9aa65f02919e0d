//! A server on 127.0.0.1 and raw ZMTP peers on blocking sockets (the peers allocate freely:
//! only the router thread's allocations are ever counted).

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::Events;
use viprouter::limits::Limits;
use viprouter::server::event_loop::Server;
use viprouter::server::listener::{self, Listener};
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::Router;
use viprouter::zmtp::command;
use viprouter::zmtp::frame::{FLAG_MORE, FrameHeader};
use viprouter::zmtp::greeting;
use viprouter::zmtp::mechanism::Mechanism;

/// The port a `tcp://127.0.0.1:0` listener got.
pub fn port_of(listeners: &[Listener]) -> u16 {
    listeners[0].endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// A server on an ephemeral port of 127.0.0.1 (`mechanism` on its one endpoint), and the port.
pub fn server(limits: Limits, mechanism: Mechanism) -> (Server, u16) {
    let listeners = listener::bind("tcp://127.0.0.1:0", mechanism).unwrap();
    let port = port_of(&listeners);
    let router = Router::new(&limits, PlatformInfo::with_router_id(b"rid"), 1);
    (Server::new(listeners, router, limits, b"rid".to_vec()).unwrap(), port)
}

/// `parts` as one multipart message (MORE on all but the last).
pub fn frames(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        FrameHeader::emit_frame(if i + 1 < parts.len() { FLAG_MORE } else { 0 }, p, &mut out);
    }
    out
}

/// A NULL client's greeting and READY (DEALER) with `identity`, not yet sent.
pub fn handshake(identity: &[u8]) -> Vec<u8> {
    let mut out = greeting::emit(Mechanism::Null, false).to_vec();
    command::emit_ready(b"DEALER", identity, &mut out);
    out
}

/// One whole frame body from a blocking stream.
pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let size = if h[0] & 0x02 != 0 {
        let mut rest = [0u8; 7];
        s.read_exact(&mut rest).unwrap();
        let mut be = [0u8; 8];
        be[0] = h[1];
        be[1..].copy_from_slice(&rest);
        u64::from_be_bytes(be) as usize
    } else {
        h[1] as usize
    };
    let mut body = vec![0u8; size];
    s.read_exact(&mut body).unwrap();
    body
}

/// Turn `server` for `d` of wall time.
pub fn turn_for(server: &mut Server, events: &mut Events, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        server.run_once(events).unwrap();
    }
}
