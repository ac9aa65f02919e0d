//! Socket options through nix: TCP keepalive as VOLTTRON sets it (VIP.md §2.1: idle 180 s,
//! interval 20 s, 6 probes — a dead peer is noticed after about 5 minutes) and the Unix
//! peer credentials that name an ipc peer `localhost:uid:gid:pid` (VIP.md §9.6).

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

/// Enable TCP keepalive with VOLTTRON's timings. Failures are logged, not fatal.
pub fn keepalive(stream: &mio::net::TcpStream) {
    let r = setsockopt(stream, sockopt::KeepAlive, &true)
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepIdle, &180))
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepInterval, &20))
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepCount, &6));
    if let Err(e) = r {
        log::debug!("TCP keepalive: {e}");
    }
}

/// `localhost:uid:gid:pid` of an ipc peer (SO_PEERCRED), the address VOLTTRON's auth sees.
pub fn peer_cred_label(stream: &mio::net::UnixStream) -> String {
    match getsockopt(stream, sockopt::PeerCredentials) {
        Ok(c) => format!("localhost:{}:{}:{}", c.uid(), c.gid(), c.pid()),
        Err(_) => "localhost".to_string(),
    }
}
