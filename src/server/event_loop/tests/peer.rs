//! A ZMTP agent for the event-loop tests: the library's client session over a non-blocking
//! socket, pumped by the test between the server's turns (both run in the test thread).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use crate::limits::Limits;
use crate::zmtp::session::Input;
use crate::zmtp::session::client::{ClientConfig, ClientSecurity, ClientSession};

/// One DEALER connected to the server under test.
pub(super) struct Peer {
    stream: TcpStream,
    session: ClientSession,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Messages received so far.
    pub(super) inbox: Vec<Vec<Vec<u8>>>,
}

impl Peer {
    /// Connect with NULL as `identity`; the handshake proceeds as [`Peer::pump`] is called.
    pub(super) fn connect(port: u16, identity: &[u8]) -> Peer {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nonblocking(true).unwrap();
        let config = ClientConfig {
            security: ClientSecurity::Null,
            identity: heapless::Vec::from_slice(identity).unwrap(),
            limits: Limits::COMPILED,
            staged_greeting: false,
        };
        let mut tx = Vec::new();
        let session = ClientSession::new(&config, &mut tx, &mut rand_core::OsRng).unwrap();
        Peer { stream, session, rx: Vec::new(), tx, inbox: Vec::new() }
    }

    /// The handshake completed.
    pub(super) fn is_ready(&self) -> bool {
        self.session.is_traffic()
    }

    /// Queue one message (after the handshake).
    pub(super) fn send(&mut self, frames: &[&[u8]]) {
        let mut enc = self.session.encoder().expect("handshake completed");
        enc.encode(frames, &mut self.tx).unwrap();
    }

    /// Write what is queued, read what arrived, and take every complete message.
    pub(super) fn pump(&mut self) {
        while !self.tx.is_empty() {
            match self.stream.write(&self.tx) {
                Ok(n) => drop(self.tx.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let mut buf = [0u8; 65536];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        loop {
            match self.session.handle_input(&mut self.rx, &mut self.tx, &mut rand_core::OsRng).unwrap() {
                Input::NeedMore { consumed, .. } => {
                    self.rx.drain(..consumed);
                    break;
                }
                Input::Ready { consumed } => drop(self.rx.drain(..consumed)),
                Input::Verify { .. } => unreachable!("a client does not verify"),
                Input::Message => {
                    let m = self.session.message(&self.rx);
                    self.inbox.push((0..m.len()).map(|i| m.frame(i).to_vec()).collect());
                    let consumed = self.session.release();
                    self.rx.drain(..consumed);
                }
            }
        }
    }
}
