//! A server on 127.0.0.1 and raw ZMTP peers on blocking sockets (the peers allocate freely:
//! only the router thread's allocations are ever counted).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mio::Events;
use viprouter::limits::Limits;
use viprouter::server::event_loop::Server;
use viprouter::server::listener::{self, Listener};
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::Router;
use viprouter::zmtp::command;
use viprouter::zmtp::frame::{FLAG_COMMAND, FLAG_MORE, FrameHeader};
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

/// Connect to the server on `port`, greet, READY (NULL) with `identity`, say hello, then send
/// `then`.
pub fn connect(port: u16, identity: &[u8], then: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut hello = handshake(identity);
    hello.extend_from_slice(&frames(&[b"", b"VIP1", b"", b"h", b"hello", b"hello"]));
    hello.extend_from_slice(then);
    s.write_all(&hello).unwrap();
    s
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

/// Take the complete ZMTP messages (commands skipped) out of `buf`, after skipping the first
/// `greeting_left` bytes (the server's greeting); what they took is removed from `buf`, a
/// message still arriving stays.
pub fn take_messages(buf: &mut Vec<u8>, greeting_left: &mut usize) -> Vec<Vec<Vec<u8>>> {
    let skip = (*greeting_left).min(buf.len());
    *greeting_left -= skip;
    buf.drain(..skip);
    let (mut pos, mut done) = (0, 0);
    let mut out = Vec::new();
    let mut message = Vec::new();
    while let Some(header) = FrameHeader::parse(&buf[pos..]).ok().flatten() {
        let end = pos + header.header_len + header.size as usize;
        if end > buf.len() {
            break;
        }
        let body = buf[pos + header.header_len..end].to_vec();
        pos = end;
        if header.flags & FLAG_COMMAND != 0 {
            if message.is_empty() {
                done = pos;
            }
            continue;
        }
        message.push(body);
        if !header.more() {
            out.push(std::mem::take(&mut message));
            done = pos;
        }
    }
    buf.drain(..done);
    out
}
