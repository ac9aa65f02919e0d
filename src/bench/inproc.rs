//! The router under test started in this process: the same library pieces `main.rs` wires
//! (`listener::bind`, `Router::new`, `Server::new`), driven turn by turn in a thread of its
//! own on an ephemeral loopback port until the bench drops it.
//!
//! `Server::new` blocks SIGTERM/SIGINT/SIGHUP/SIGUSR1 in that thread only (signalfd); the
//! bench's other threads keep the default dispositions, so Ctrl-C still ends the bench.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::Events;
use rand_core::{OsRng, RngCore};

use viprouter::limits::{Limits, MAX_EVENTS};
use viprouter::server::event_loop::Server;
use viprouter::server::listener;
use viprouter::vip::platform::PlatformInfo;
use viprouter::vip::router::Router;
use viprouter::zmtp::mechanism::Mechanism;
use viprouter::zmtp::mechanism::curve::{CookieKeys, KeyPair, PublicKey};
use viprouter::zmtp::session::CurveContext;

/// A running in-process router.
pub struct Inproc {
    /// `tcp://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its CURVE public key when it serves CURVE.
    pub server_key: Option<PublicKey>,
    /// Kernel thread id of the router thread (`/proc/self/task/TID/stat`).
    pub tid: u32,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl Inproc {
    /// Bind `tcp://127.0.0.1:0` and start the router thread. With `curve`, the endpoint
    /// serves CURVE with a fresh key pair and authorises every client key.
    ///
    /// # Errors
    /// Bind and event-loop set-up errors.
    pub fn start(curve: bool) -> Result<Inproc, String> {
        let mechanism = if curve { Mechanism::Curve } else { Mechanism::Null };
        let listeners = listener::bind("tcp://127.0.0.1:0", mechanism)?;
        let endpoint = listeners
            .first()
            .map(|l| l.endpoint.clone())
            .ok_or_else(|| "in-process router: nothing bound".to_string())?;
        let keys = curve.then(|| KeyPair::generate(&mut OsRng));
        let server_key = keys.as_ref().map(|k| k.public);
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        let router_id = uuid4(random);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<u32, String>>();
        let stop2 = Arc::clone(&stop);
        let addresses = format!("[\"{endpoint}\"]");
        let handle = std::thread::Builder::new()
            .name("bench-router".into())
            .spawn(move || {
                let limits = Limits::default();
                let mut info = PlatformInfo::with_router_id(router_id.as_bytes());
                info.instance_name = b"bench".to_vec();
                info.addresses_json = addresses.into_bytes();
                let seed = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
                let router = Router::new(&limits, info, seed);
                let mut server = match Server::new(listeners, router, limits, router_id.into_bytes()) {
                    Ok(s) => s,
                    Err(e) => {
                        let msg = format!("in-process router: event loop: {e}");
                        let _ = tx.send(Err(msg.clone()));
                        return Err(msg);
                    }
                };
                if let Some(keys) = keys {
                    server.set_curve(CurveContext { keys, cookies: CookieKeys::new(&mut OsRng) });
                    server.set_authorize(Box::new(|_| true));
                }
                let _ = tx.send(super::cpu::current_tid().ok_or_else(|| "no /proc/thread-self".to_string()));
                let mut events = Events::with_capacity(MAX_EVENTS);
                let mut result = Ok(());
                while !stop2.load(Ordering::Relaxed) {
                    if let Err(e) = server.run_once(&mut events) {
                        result = Err(format!("in-process router: {e}"));
                        break;
                    }
                }
                server.cleanup();
                result
            })
            .map_err(|e| format!("in-process router thread: {e}"))?;
        let tid = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(tid)) => tid,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("in-process router did not start".into()),
        };
        Ok(Inproc { endpoint, server_key, tid, stop, handle: Some(handle) })
    }
}

impl Drop for Inproc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn uuid4(random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let p = |r: core::ops::Range<usize>| h.get(r).unwrap_or("").to_string();
    format!("{}-{}-{}-{}-{}", p(0..8), p(8..12), p(12..16), p(16..20), p(20..32))
}
