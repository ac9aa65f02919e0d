//! A small blocking driver around the sans-IO `amqp::client::Client` (test only): a std TCP
//! socket (optionally through `amqp::tls::Tls`), a receive buffer, and a loop that feeds bytes,
//! flushes the transmit buffer, runs the timers and returns owned copies of the events.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use viprouter::amqp::client::{Client, Closer, Event, Publish, Settings};
use viprouter::amqp::properties::{Headers, Properties};
use viprouter::amqp::table::Value;
use viprouter::amqp::tls::Tls;
use viprouter::time::Instant;

/// Properties as owned strings (the ones VOLTTRON uses) plus string headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Props {
    pub content_type: Option<String>,
    pub message_id: Option<String>,
    pub kind: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Header names whose value is not a long string (e.g. `x-received-from`).
    pub other_headers: Vec<String>,
}

fn s(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

impl Props {
    pub fn from(p: &Properties<'_>) -> Props {
        let mut headers = Vec::new();
        let mut other = Vec::new();
        if let Some(Headers::Table(t)) = p.headers {
            for (k, v) in t.iter() {
                let k = String::from_utf8_lossy(k).into_owned();
                match v {
                    Value::LongStr(x) => headers.push((k, String::from_utf8_lossy(x).into_owned())),
                    _ => other.push(k),
                }
            }
        }
        Props {
            content_type: s(p.content_type),
            message_id: s(p.message_id),
            kind: s(p.kind),
            app_id: s(p.app_id),
            user_id: s(p.user_id),
            headers,
            other_headers: other,
        }
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// An owned copy of an `Event`.
#[derive(Clone, Debug, PartialEq)]
pub enum Ev {
    Ready,
    Delivery { tag: u64, routing_key: String, props: Props, body: Vec<u8>, frames: usize },
    Returned { code: u16, routing_key: String, props: Props, body: Vec<u8> },
    Confirmed { tag: u64, multiple: bool, ack: bool, settled: usize },
    Blocked(String),
    Unblocked,
    Dropped { tag: u64, size: u64 },
    Closing { by: Closer, code: u16, text: String },
    Closed { by: Closer, code: u16, text: String },
}

impl Ev {
    fn from(e: &Event<'_>) -> Ev {
        let st = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match e {
            Event::Ready => Ev::Ready,
            Event::Delivery(d) => {
                let mut body = Vec::new();
                d.body.copy_to(&mut body);
                Ev::Delivery {
                    tag: d.delivery_tag,
                    routing_key: st(d.routing_key),
                    props: Props::from(&d.properties),
                    body,
                    frames: d.body.chunks().count(),
                }
            }
            Event::Returned(r) => {
                let mut body = Vec::new();
                r.body.copy_to(&mut body);
                Ev::Returned { code: r.code, routing_key: st(r.routing_key), props: Props::from(&r.properties), body }
            }
            Event::Confirmed { tag, multiple, ack, settled } => {
                Ev::Confirmed { tag: *tag, multiple: *multiple, ack: *ack, settled: *settled }
            }
            Event::Blocked { reason } => Ev::Blocked(st(reason)),
            Event::Unblocked => Ev::Unblocked,
            Event::Dropped { delivery_tag, body_size } => Ev::Dropped { tag: *delivery_tag, size: *body_size },
            Event::Closing(c) => Ev::Closing { by: c.by, code: c.code, text: st(c.text) },
            Event::Closed(c) => Ev::Closed { by: c.by, code: c.code, text: st(c.text) },
        }
    }
}

/// One client on a blocking socket.
pub struct Driver {
    pub client: Client,
    stream: TcpStream,
    tls: Option<Tls>,
    rx: Vec<u8>,
    epoch: std::time::Instant,
    pub port: u16,
    /// Every byte received (plaintext), kept when `VIPROUTER_AMQP_CAPTURE` names a directory:
    /// written there on drop as `capture-<instance>` (fuzz corpus material, see README).
    capture: Vec<u8>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(dir) = std::env::var_os("VIPROUTER_AMQP_CAPTURE") {
            let name = format!("capture-{}", self.client.settings().instance);
            let mut data = vec![0u8];
            data.extend_from_slice(&self.capture);
            let _ = std::fs::write(std::path::Path::new(&dir).join(name), data);
        }
    }
}

impl Driver {
    /// Connect to 127.0.0.1:`port` (through TLS to `host` when `tls` is given) and begin.
    pub fn connect(
        port: u16,
        settings: Settings,
        tls: Option<(Arc<viprouter::amqp::tls::ClientConfig>, &str)>,
    ) -> Driver {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let tls = tls.map(|(cfg, host)| Tls::new(cfg, host).unwrap());
        let mut d = Driver {
            client: Client::new(settings),
            stream,
            tls,
            rx: Vec::new(),
            epoch: std::time::Instant::now(),
            port,
            capture: Vec::new(),
        };
        let now = d.now();
        d.client.begin(now);
        d
    }

    /// A new socket for the same client (reconnect), handshake started.
    pub fn reconnect(&mut self) -> usize {
        self.stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        self.rx.clear();
        let now = self.now();
        self.client.begin(now)
    }

    pub fn now(&self) -> Instant {
        Instant(self.epoch.elapsed().as_millis() as u64)
    }

    /// Write everything queued.
    pub fn flush(&mut self) {
        let now = self.now();
        let n = self.client.transmit().len();
        if n == 0 && self.tls.as_ref().is_none_or(|t| !t.is_handshaking()) {
            return;
        }
        let data = self.client.transmit().to_vec();
        match &mut self.tls {
            None => {
                self.stream.write_all(&data).unwrap();
                self.client.written(n, now);
            }
            Some(t) => {
                let taken = t.write_plaintext(&data).unwrap();
                self.client.written(taken, now);
                let mut out = Vec::new();
                t.write_tls(&mut out).unwrap();
                self.stream.write_all(&out).unwrap();
            }
        }
    }

    /// Read what arrives within `wait`; `Ok(false)` on EOF, `Err` for a TLS failure.
    fn fill(&mut self, wait: Duration) -> Result<bool, String> {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                let before = self.rx.len();
                match &mut self.tls {
                    None => self.rx.extend_from_slice(&buf[..n]),
                    Some(t) => {
                        let mut off = 0;
                        while off < n {
                            off += t.read_tls(&buf[off..n]).map_err(|e| format!("TLS: {e}"))?;
                            t.read_plaintext(&mut self.rx, usize::MAX).map_err(|e| format!("TLS: {e}"))?;
                        }
                        let mut out = Vec::new();
                        t.write_tls(&mut out).unwrap();
                        self.stream.write_all(&out).unwrap();
                    }
                }
                if std::env::var_os("VIPROUTER_AMQP_CAPTURE").is_some() {
                    self.capture.extend_from_slice(&self.rx[before..]);
                }
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(e) => panic!("read: {e}"),
        }
    }

    /// The next event within `timeout` (`Err` carries a protocol error or "EOF"/"timeout").
    pub fn next(&mut self, timeout: Duration) -> Result<Ev, String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.flush();
            let now = self.now();
            self.client.poll_timers(now).map_err(|e| format!("timer: {e}"))?;
            self.flush();
            let (ev, consumed) = match self.client.handle_input(&self.rx, now) {
                Ok(input) => (input.event.as_ref().map(Ev::from), input.consumed),
                Err(e) => {
                    self.flush();
                    return Err(format!("protocol: {e:?}"));
                }
            };
            self.rx.drain(..consumed);
            if let Some(ev) = ev {
                self.flush();
                return Ok(ev);
            }
            if consumed > 0 {
                continue;
            }
            if std::time::Instant::now() >= deadline {
                return Err("timeout".into());
            }
            if !self.fill(Duration::from_millis(50))? {
                return Err("EOF".into());
            }
        }
    }

    /// Events until `pred` matches one (which is returned); the others are collected.
    pub fn until(&mut self, timeout: Duration, mut pred: impl FnMut(&Ev) -> bool) -> (Ev, Vec<Ev>) {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next(left) {
                Ok(e) if pred(&e) => return (e, seen),
                Ok(e) => seen.push(e),
                Err(err) => panic!("waiting: {err}; seen {seen:?}"),
            }
        }
    }

    /// Run the loop for `d` without expecting anything; returns what came.
    pub fn idle(&mut self, d: Duration) -> Vec<Ev> {
        let deadline = std::time::Instant::now() + d;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return seen;
            }
            match self.next(left) {
                Ok(e) => seen.push(e),
                Err(e) if e == "timeout" => return seen,
                Err(e) => panic!("idle: {e}; seen {seen:?}"),
            }
        }
    }

    /// Handshake and topology: wait for Ready.
    pub fn ready(&mut self) {
        let (e, seen) = self.until(Duration::from_secs(15), |e| *e == Ev::Ready);
        assert_eq!(e, Ev::Ready, "{seen:?}");
    }

    pub fn publish(&mut self, p: &Publish<'_>) -> u64 {
        let seq = self.client.publish(p).unwrap();
        self.flush();
        seq
    }
}
