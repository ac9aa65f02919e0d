//! Listening endpoints: `tcp://host:port` (IPv4, IPv6, `*`) and `ipc://` on a filesystem path
//! or in the Linux abstract namespace (`ipc://@name`, VIP.md §2.5).
//!
//! The abstract address must have exactly the length libzmq uses — `offsetof(sun_path)` + 1 +
//! the name, no trailing NUL — or libzmq clients will not find it (ZMTP.md §9.7). std's
//! `SocketAddr::from_abstract_name` builds exactly that.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::linux::net::SocketAddrExt;

use mio::net::{TcpListener, UnixListener};

use crate::zmtp::mechanism::Mechanism;

/// A parsed endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://` with every address the host resolved to.
    Tcp(String),
    /// `ipc://@name`: Linux abstract namespace.
    IpcAbstract(String),
    /// `ipc:///path`: a socket file.
    IpcPath(String),
}

/// Why an endpoint string cannot be used.
#[derive(Debug)]
pub enum EndpointError {
    /// Not `tcp://` or `ipc://`.
    Scheme,
    /// The host:port part does not resolve.
    Address(io::Error),
    /// The ipc name is empty or longer than `sun_path` allows.
    IpcName,
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointError::Scheme => write!(f, "expected tcp://HOST:PORT or ipc://PATH or ipc://@NAME"),
            EndpointError::Address(e) => write!(f, "cannot resolve the address: {e}"),
            EndpointError::IpcName => write!(f, "ipc name empty or longer than 107 bytes"),
        }
    }
}

impl Endpoint {
    /// Parse a VOLTTRON vip-address. URL parameters (`?serverkey=…`, `?server=NULL`) are cut
    /// off here; the configuration layer reads the ones it supports first.
    ///
    /// # Errors
    /// [`EndpointError::Scheme`] or [`EndpointError::IpcName`].
    pub fn parse(addr: &str) -> Result<Endpoint, EndpointError> {
        let addr = addr.split('?').next().unwrap_or(addr);
        if let Some(rest) = addr.strip_prefix("tcp://") {
            Ok(Endpoint::Tcp(rest.to_string()))
        } else if let Some(name) = addr.strip_prefix("ipc://@") {
            if name.is_empty() || name.len() > 107 {
                return Err(EndpointError::IpcName);
            }
            Ok(Endpoint::IpcAbstract(name.to_string()))
        } else if let Some(path) = addr.strip_prefix("ipc://") {
            if path.is_empty() || path.len() > 107 {
                return Err(EndpointError::IpcName);
            }
            Ok(Endpoint::IpcPath(path.to_string()))
        } else {
            Err(EndpointError::Scheme)
        }
    }

    /// The socket addresses a `tcp://` endpoint binds (`*` = all IPv4 interfaces).
    ///
    /// # Errors
    /// [`EndpointError::Address`].
    pub fn tcp_addrs(host_port: &str) -> Result<Vec<SocketAddr>, EndpointError> {
        let hp = match host_port.strip_prefix("*:") {
            Some(port) => format!("0.0.0.0:{port}"),
            None => host_port.to_string(),
        };
        let addrs: Vec<SocketAddr> = hp.to_socket_addrs().map_err(EndpointError::Address)?.collect();
        if addrs.is_empty() {
            return Err(EndpointError::Address(io::Error::from(io::ErrorKind::NotFound)));
        }
        Ok(addrs)
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub enum ListenSocket {
    /// TCP.
    Tcp(TcpListener),
    /// Unix-domain (abstract or path).
    Unix(UnixListener),
}

/// The ZAP domain of every endpoint unless its address says `domain=` (VIP.md §2.1).
pub const DEFAULT_DOMAIN: &str = "vip";

/// One listener: its socket, the endpoint text reported to peers, its mechanism and ZAP domain.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub socket: ListenSocket,
    /// As reported by `query addresses` (`tcp://*:22916` reads `tcp://0.0.0.0:22916`).
    pub endpoint: String,
    /// Security mechanism of this endpoint.
    pub mechanism: Mechanism,
    /// ZAP domain the authorisation sees ([`DEFAULT_DOMAIN`] unless the address set one).
    pub domain: String,
    /// Socket file to remove on exit (ipc on a path).
    pub path: Option<String>,
}

impl Listener {
    /// A listener on `socket`, reported as `endpoint`, in the default ZAP domain.
    pub fn new(socket: ListenSocket, endpoint: String, mechanism: Mechanism, path: Option<String>) -> Self {
        Listener { socket, endpoint, mechanism, domain: DEFAULT_DOMAIN.to_string(), path }
    }

    /// Listen again with the largest backlog the system allows (`listen(fd, -1)`: Linux caps
    /// it at `net.core.somaxconn`, 4096 by default since 5.4). mio and std listen with 128, and
    /// systemd with the unit's `Backlog=`; a burst of reconnecting agents larger than that
    /// leaves connections completed by the kernel but never queued for `accept` (issue #13).
    /// Calling `listen` on a listening socket only changes its backlog.
    ///
    /// # Errors
    /// The `listen(2)` error.
    pub fn raise_backlog(&self) -> io::Result<()> {
        use nix::sys::socket::{Backlog, listen};
        match &self.socket {
            ListenSocket::Tcp(s) => listen(s, Backlog::MAXALLOWABLE),
            ListenSocket::Unix(s) => listen(s, Backlog::MAXALLOWABLE),
        }
        .map_err(io::Error::from)
    }
}

/// `net.core.somaxconn`: the kernel's cap on every listen backlog (`None` when unreadable).
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?.trim().parse().ok()
}

/// Bind `addr`; a `tcp://` host resolving to several addresses binds each.
///
/// # Errors
/// Parse or bind errors, with the address in the message.
pub fn bind(addr: &str, mechanism: Mechanism) -> Result<Vec<Listener>, String> {
    let ep = Endpoint::parse(addr).map_err(|e| format!("{addr}: {e}"))?;
    match ep {
        Endpoint::Tcp(hp) => {
            let mut out = Vec::new();
            for sa in Endpoint::tcp_addrs(&hp).map_err(|e| format!("{addr}: {e}"))? {
                let l = TcpListener::bind(sa).map_err(|e| format!("{addr}: bind {sa}: {e}"))?;
                let local = l.local_addr().map_err(|e| format!("{addr}: {e}"))?;
                out.push(Listener::new(ListenSocket::Tcp(l), format!("tcp://{local}"), mechanism, None));
            }
            Ok(out)
        }
        Endpoint::IpcAbstract(name) => {
            let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| format!("{addr}: {e}"))?;
            let l = UnixListener::bind_addr(&sa).map_err(|e| format!("{addr}: bind: {e}"))?;
            Ok(vec![Listener::new(ListenSocket::Unix(l), format!("ipc://@{name}"), mechanism, None)])
        }
        Endpoint::IpcPath(path) => {
            // libzmq unlinks a stale socket file before binding; do the same.
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(&path);
                }
            }
            let l = UnixListener::bind(&path).map_err(|e| format!("{addr}: bind: {e}"))?;
            Ok(vec![Listener::new(ListenSocket::Unix(l), format!("ipc://{path}"), mechanism, Some(path))])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vip_addresses() {
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:22916").unwrap(), Endpoint::Tcp("127.0.0.1:22916".into()));
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:22916?serverkey=abc").unwrap(),
            Endpoint::Tcp("127.0.0.1:22916".into())
        );
        assert_eq!(
            Endpoint::parse("ipc://@/home/pi/.volttron/run/vip.socket").unwrap(),
            Endpoint::IpcAbstract("/home/pi/.volttron/run/vip.socket".into())
        );
        assert_eq!(Endpoint::parse("ipc:///tmp/x.sock").unwrap(), Endpoint::IpcPath("/tmp/x.sock".into()));
        assert!(Endpoint::parse("udp://x").is_err());
        assert!(Endpoint::parse("ipc://@").is_err());
        assert_eq!(Endpoint::tcp_addrs("*:22916").unwrap()[0].to_string(), "0.0.0.0:22916");
        assert!(Endpoint::tcp_addrs("[::1]:1").unwrap()[0].is_ipv6());
    }
}
