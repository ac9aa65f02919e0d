//! A connection the router dials itself, speaking a protocol that is not ZMTP — what links to
//! other platforms and the AMQP broker connection will be — through the same event loop, with no
//! flag of its own: a [`Protocol`] test double.
//!
//! The double speaks lines: the router says `HELLO`, the remote answers `OK`, then every line is
//! one VIP message, frames separated by `|`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant as StdInstant};

use mio::Events;

use super::peer::Peer;
use super::{frames_of, server};
use crate::limits::Limits;
use crate::server::close::CloseReason;
use crate::server::event_loop::{DialEvent, Server};
use crate::server::protocol::{Context, Encode, Outbound, Protocol};
use crate::zmtp::session::Input;
use crate::zmtp::{Message, Part, Parts};

/// The line protocol's end of a dialled connection.
#[derive(Default)]
struct Lines {
    ready: bool,
    /// The frames of the held line, and the bytes to drop once it is released.
    parts: Parts,
    held: Option<usize>,
    enc: LineEncoder,
}

#[derive(Default)]
struct LineEncoder;

impl Encode for LineEncoder {
    fn encoded_len(&self, frames: &[&[u8]]) -> usize {
        frames.iter().map(|f| f.len() + 1).sum()
    }

    fn encode(&mut self, frames: &[&[u8]], out: &mut Vec<u8>) -> Result<(), CloseReason> {
        out.extend_from_slice(&frames.join(&b"|"[..]));
        out.push(b'\n');
        Ok(())
    }
}

impl Protocol for Lines {
    fn connected(&mut self, _cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        out.extend_from_slice(b"HELLO\n");
        Ok(())
    }

    fn handle_input(
        &mut self,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
        _out: &mut Vec<u8>,
    ) -> Result<Input, CloseReason> {
        if self.held.is_some() {
            return Ok(Input::Message);
        }
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            return Ok(Input::NeedMore { consumed: 0, need: buf.len() + 1 });
        };
        if !self.ready {
            if &buf[..nl] != b"OK" {
                return Err(CloseReason::Foreign("the remote did not say OK"));
            }
            self.ready = true;
            return Ok(Input::Ready { consumed: nl + 1 });
        }
        self.parts.clear();
        let mut start = 0;
        for field in buf[..nl].split(|&b| b == b'|') {
            let part = Part { start: start as u32, len: field.len() as u32 };
            self.parts.push(part).map_err(|_| CloseReason::Foreign("too many frames"))?;
            start += field.len() + 1;
        }
        self.held = Some(nl + 1);
        Ok(Input::Message)
    }

    fn identity(&self) -> &[u8] {
        b"double"
    }

    fn split<'a>(&'a mut self, buf: &'a [u8]) -> (Message<'a>, Option<Outbound<'a>>) {
        let parts: &[Part] = if self.held.is_some() { &self.parts } else { &[] };
        (Message::new(buf, parts), self.ready.then_some(Outbound::Other(&mut self.enc)))
    }

    fn release(&mut self) -> usize {
        self.held.take().unwrap_or(0)
    }

    fn outbound(&mut self) -> Option<Outbound<'_>> {
        self.ready.then_some(Outbound::Other(&mut self.enc))
    }
}

/// Turn the server and pump `peers` until `done` or two seconds.
fn turn_until(
    server: &mut Server,
    events: &mut Events,
    peers: &mut [&mut Peer],
    mut done: impl FnMut(&mut Server, &[&mut Peer]) -> bool,
) {
    let end = StdInstant::now() + Duration::from_secs(2);
    while !done(server, peers) {
        assert!(StdInstant::now() < end, "timed out");
        server.run_once(events).unwrap();
        for p in peers.iter_mut() {
            p.pump();
        }
    }
}

/// Read lines from the remote end until one contains `needle`.
fn line_with(remote: &mut BufReader<TcpStream>, server: &mut Server, events: &mut Events, needle: &str) -> String {
    let end = StdInstant::now() + Duration::from_secs(2);
    loop {
        server.run_once(events).unwrap();
        let mut line = String::new();
        match remote.read_line(&mut line) {
            Ok(n) if n > 0 && line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("remote read: {e}"),
        }
        assert!(StdInstant::now() < end, "no line with {needle:?}");
    }
}

#[test]
fn a_dialled_line_protocol_peer_routes_to_and_from_a_zmtp_agent() {
    let (mut server, port) = server(Limits::COMPILED);
    let mut events = Events::with_capacity(64);
    let remote_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let id = server.dial(remote_listener.local_addr().unwrap(), Box::new(Lines::default())).unwrap();
    let (remote, _) = remote_listener.accept().unwrap();
    remote.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut writer = remote.try_clone().unwrap();
    let mut remote = BufReader::new(remote);
    assert_eq!(line_with(&mut remote, &mut server, &mut events, "HELLO"), "HELLO\n", "the router spoke first");
    writer.write_all(b"OK\n").unwrap();
    let mut agent = Peer::connect(port, b"agent");
    turn_until(&mut server, &mut events, &mut [&mut agent], |s, p| {
        p[0].is_ready() && s.router.peers.lookup(b"double").is_some()
    });
    assert_eq!(server.take_dial_events(), vec![DialEvent::Ready(id)]);

    // The double to the agent: one line, one VIP message, routed like any other.
    writer.write_all(b"agent|VIP1||m1|RPC|hi\n").unwrap();
    turn_until(&mut server, &mut events, &mut [&mut agent], |_, p| p[0].inbox.iter().any(|m| m[4] == b"RPC"));
    let got = agent.inbox.iter().find(|m| m[4] == b"RPC").unwrap();
    assert_eq!(got, &frames_of(&[b"double", b"VIP1", b"double", b"m1", b"RPC", b"hi"]));

    // The agent to the double: encoded by the double's own encoder.
    agent.send(&[b"double", b"VIP1", b"", b"m2", b"RPC", b"back"]);
    agent.pump();
    assert_eq!(line_with(&mut remote, &mut server, &mut events, "m2"), "agent|VIP1|agent|m2|RPC|back\n");

    // The remote hangs up: the owner hears of it, the agent sees the peer leave.
    drop(writer);
    drop(remote);
    turn_until(&mut server, &mut events, &mut [&mut agent], |_, p| {
        p[0].inbox.iter().any(|m| m[4] == b"peerlist" && m[5] == b"drop" && m[6] == b"double")
    });
    assert_eq!(server.take_dial_events(), vec![DialEvent::Closed(id, CloseReason::PeerClosed)]);
    assert!(server.router.peers.lookup(b"double").is_none());
    super::assert_budget_balanced(&server);
}

#[test]
fn a_refused_dial_is_reported_to_its_owner() {
    let (mut server, _) = server(Limits::COMPILED);
    let mut events = Events::with_capacity(64);
    let gone = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let id = server.dial(gone, Box::new(Lines::default())).unwrap();
    let end = StdInstant::now() + Duration::from_secs(2);
    let mut seen = Vec::new();
    while seen.is_empty() {
        assert!(StdInstant::now() < end, "the refused connect was not noticed");
        server.run_once(&mut events).unwrap();
        seen = server.take_dial_events();
    }
    assert_eq!(seen, vec![DialEvent::Closed(id, CloseReason::ConnectFailed)]);
    assert_eq!(server.slots.live(), 0);
    super::assert_budget_balanced(&server);
}
