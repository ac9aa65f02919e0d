//! The connection of a link to a remote platform (VIP.md §11.3, corrected by
//! `../shared/research/multiplatform.md` §2.2, §3; the link table is [`crate::vip::links`]).
//!
//! A link is what VOLTTRON's `RoutingService._build_connection` opens: a ZMTP **DEALER** client
//! to the remote router's vip-address, CURVE with the **platform** key pair (the keystore) and
//! the remote's server key from its discovery entry, under the routing id
//! `instance.<remote name>.0.<digits>`. [`LinkProtocol`] is that connection's [`Protocol`]: the
//! sans-IO ZMTP client session ([`ClientSession`]) behind the event loop's protocol contract.
//! The event loop dials it ([`dial_target`] resolves the address), reports its handshake to the
//! router as the link being up (not at TCP connect, as VOLTTRON's socket monitor does), feeds what
//! arrives on it to the router's link input, and reports its end as the link being down:
//! [`down_reason`] maps the close to what the link table needs for its backoff and its log
//! (a CURVE ERROR from the remote — its ZAP handler refused our platform key — is `Refused`).
//!
//! Frames go on the wire as the router writes them: a DEALER sends no routing id, so a message
//! starts with the empty RECIPIENT frame (`['', 'VIP1', USER, MSG_ID, …]`); what the remote's
//! ROUTER writes back starts with its sender frame.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::close::CloseReason;
use super::conn::Phase;
use super::listener::{Endpoint, EndpointError};
use super::protocol::{Context, Outbound, Protocol};
use crate::limits::Limits;
use crate::vip::links::{DownReason, LinkConfig};
use crate::zmtp::mechanism::curve::{KeyPair, PublicKey};
use crate::zmtp::session::Input;
use crate::zmtp::session::client::{ClientConfig, ClientSecurity, ClientSession};
use crate::zmtp::{Message, SessionError};

/// Where a link connects.
#[derive(Debug)]
pub enum DialTarget {
    /// `tcp://host:port` (the first address the host resolves to).
    Tcp(SocketAddr),
    /// `ipc://@name` (Linux abstract namespace) or `ipc:///path`.
    Unix(std::os::unix::net::SocketAddr),
}

/// Resolve a link's `vip-address`. An IP literal costs nothing; a host name is resolved by the
/// system resolver at the time the link is dialled (blocking the loop for the lookup: prefer
/// addresses on gateways, as VOLTTRON's discovery hands out).
///
/// # Errors
/// The address does not parse or resolve.
pub fn dial_target(address: &str) -> io::Result<DialTarget> {
    use std::os::linux::net::SocketAddrExt;
    let bad = |e: EndpointError| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    match Endpoint::parse(address).map_err(bad)? {
        Endpoint::Tcp(host_port) => {
            if let Ok(a) = host_port.parse::<SocketAddr>() {
                return Ok(DialTarget::Tcp(a));
            }
            let mut addrs = host_port.to_socket_addrs()?;
            addrs.next().map(DialTarget::Tcp).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        Endpoint::IpcAbstract(name) => {
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map(DialTarget::Unix)
        }
        Endpoint::IpcPath(path) => std::os::unix::net::SocketAddr::from_pathname(path).map(DialTarget::Unix),
    }
}

/// The ZMTP client of one link (see the module doc).
pub struct LinkProtocol {
    config: ClientConfig,
    /// Created when the connect completes (it greets at once).
    session: Option<ClientSession>,
    /// The remote's name, for logs.
    name: heapless::String<64>,
}

impl LinkProtocol {
    /// The client for `link` with routing id `identity`, our platform `keys`, sizes from
    /// `limits`.
    pub fn new(link: &LinkConfig, identity: &[u8], keys: &KeyPair, limits: &Limits) -> LinkProtocol {
        let mut name = heapless::String::new();
        for c in link.instance_name.escape_ascii().map(char::from) {
            if name.push(c).is_err() {
                break;
            }
        }
        let config = ClientConfig {
            security: ClientSecurity::Curve { server_key: PublicKey(link.serverkey), keys: keys.clone() },
            identity: heapless::Vec::from_slice(identity).unwrap_or_default(),
            limits: limits.clone(),
            staged_greeting: false,
        };
        LinkProtocol { config, session: None, name }
    }
}

impl Protocol for LinkProtocol {
    fn connected(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        let session = ClientSession::new(&self.config, out, cx.rng).map_err(CloseReason::Protocol)?;
        self.session = Some(session);
        Ok(())
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, buf: &mut [u8], out: &mut Vec<u8>) -> Result<Input, CloseReason> {
        let Some(s) = self.session.as_mut() else {
            return Err(CloseReason::Protocol(SessionError::UnexpectedCommand));
        };
        s.handle_input(buf, out, cx.rng).map_err(|e| {
            if e == SessionError::PeerError {
                log::debug!(
                    "link to {}: the remote sent ERROR {:?}",
                    self.name,
                    s.error_reason().escape_ascii().to_string()
                );
            }
            CloseReason::Protocol(e)
        })
    }

    fn identity(&self) -> &[u8] {
        &self.config.identity
    }

    #[inline]
    fn split<'a>(&'a mut self, buf: &'a [u8]) -> (Message<'a>, Option<Outbound<'a>>) {
        match self.session.as_mut() {
            Some(s) => {
                let (msg, enc) = s.split(buf);
                (msg, enc.map(Outbound::Zmtp))
            }
            None => (Message::new(buf, &[]), None),
        }
    }

    #[inline]
    fn release(&mut self) -> usize {
        self.session.as_mut().map_or(0, ClientSession::release)
    }

    #[inline]
    fn outbound(&mut self) -> Option<Outbound<'_>> {
        self.session.as_mut()?.encoder().map(Outbound::Zmtp)
    }
}

/// Why a link went down, from why its connection closed and how far it had come: a link whose
/// handshake completed is `Closed` whatever ended it; before that, a failed or timed-out connect
/// is `ConnectFailed`, an ERROR from the remote (its ZAP refused our key) `Refused`, anything
/// else `HandshakeFailed`.
pub fn down_reason(reason: CloseReason, phase: Phase) -> DownReason {
    match (phase, reason) {
        (Phase::Linked | Phase::Attached | Phase::Duplicate, _) => DownReason::Closed,
        (_, CloseReason::ConnectFailed | CloseReason::RegisterFailed) | (Phase::Connecting { .. }, _) => {
            DownReason::ConnectFailed
        }
        (_, CloseReason::Protocol(SessionError::PeerError)) => DownReason::Refused,
        _ => DownReason::HandshakeFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    #[test]
    fn addresses_resolve_without_a_lookup_for_literals() {
        assert!(matches!(dial_target("tcp://127.0.0.1:22916"), Ok(DialTarget::Tcp(a)) if a.port() == 22916));
        assert!(matches!(dial_target("tcp://[::1]:1?serverkey=x"), Ok(DialTarget::Tcp(a)) if a.is_ipv6()));
        assert!(matches!(dial_target("ipc://@vip.socket"), Ok(DialTarget::Unix(_))));
        assert!(matches!(dial_target("ipc:///run/vip.socket"), Ok(DialTarget::Unix(_))));
        assert!(dial_target("http://x:1").is_err());
        assert!(dial_target("tcp://no-port").is_err());
    }

    #[test]
    fn closes_map_to_down_reasons() {
        let hs = Phase::Handshaking { since: Instant(0) };
        let connecting = Phase::Connecting { since: Instant(0) };
        assert_eq!(down_reason(CloseReason::ConnectFailed, connecting), DownReason::ConnectFailed);
        assert_eq!(down_reason(CloseReason::HandshakeTimeout { ms: 5 }, connecting), DownReason::ConnectFailed);
        assert_eq!(down_reason(CloseReason::Protocol(SessionError::PeerError), hs), DownReason::Refused);
        assert_eq!(down_reason(CloseReason::HandshakeTimeout { ms: 5 }, hs), DownReason::HandshakeFailed);
        assert_eq!(down_reason(CloseReason::PeerClosed, hs), DownReason::HandshakeFailed);
        assert_eq!(down_reason(CloseReason::PeerClosed, Phase::Linked), DownReason::Closed);
        assert_eq!(down_reason(CloseReason::Protocol(SessionError::PeerError), Phase::Linked), DownReason::Closed);
    }
}
