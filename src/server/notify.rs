//! sd_notify(3) without libsystemd: `READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1` and
//! `STATUS=` datagrams to the socket named by `$NOTIFY_SOCKET`.
//!
//! Layer: `server/` (touches sockets and the clock). Protocol: systemd's `sd_notify(3)` and
//! "The sd_notify protocol" in systemd.io/NOTIFY: one `AF_UNIX`/`SOCK_DGRAM` datagram per call,
//! newline-separated `KEY=VALUE` assignments; an address starting with `@` is in the abstract
//! namespace (the `@` becomes the leading NUL), any other address must be an absolute path.
//!
//! Invariants:
//! - Sending never blocks the event loop: the socket is non-blocking. A full receive queue on
//!   systemd's side surfaces as `WouldBlock`; a lost `WATCHDOG=1` is harmless as long as the
//!   loop pings at [`watchdog_interval`] (half the timeout), a lost `READY=1` is not, so callers
//!   log errors from [`Notifier::ready`].
//! - No `unsafe`: `NOTIFY_SOCKET` is **not** removed from the environment after use
//!   (`std::env::remove_var` is `unsafe` since edition 2024). The router spawns no children, so
//!   nothing inherits it; if that changes, clear it with `Command::env_remove`.
//! - No state between calls: systemd attributes datagrams to the main PID through
//!   `SCM_CREDENTIALS`, which the kernel adds itself; `NotifyAccess=main` in the unit suffices.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connected-by-address sender to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`, or `None` when the variable is unset or empty (not
    /// started by systemd with `Type=notify`) or names an address this code cannot use (a
    /// relative path, or `vsock:`, which only VMs/containers set up).
    #[must_use]
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        Notifier::from_notify_socket(&value).ok()
    }

    /// A notifier for the address as it appears in `$NOTIFY_SOCKET`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty value, a relative path or an unsupported scheme; otherwise
    /// the error from creating the socket or from converting the address (too long).
    pub fn from_notify_socket(value: &OsStr) -> io::Result<Notifier> {
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            // Abstract namespace: "@name" means "\0name" on the wire.
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            Some(b'/') => SocketAddr::from_pathname(value)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
                ));
            }
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier { sock, addr })
    }

    /// A second handle to the same destination (e.g. one for the watchdog tick, one for the
    /// reload hook), sharing the socket.
    ///
    /// # Errors
    /// The `dup(2)` error.
    pub fn try_clone(&self) -> io::Result<Notifier> {
        Ok(Notifier { sock: self.sock.try_clone()?, addr: self.addr.clone() })
    }

    /// Sends one raw notification, e.g. `"READY=1\nSTATUS=listening"`.
    ///
    /// # Errors
    /// The `sendto(2)` error; `WouldBlock` when systemd's queue is full.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.sock.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent == state.len() {
            Ok(())
        } else {
            // Datagram sockets send all or nothing; guard anyway so a short write is not "ok".
            Err(io::Error::new(io::ErrorKind::WriteZero, "short notification datagram"))
        }
    }

    /// `READY=1`: send once every listener is bound (and after a reload finished).
    ///
    /// # Errors
    /// See [`Notifier::notify`].
    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC now), sent when a SIGHUP reload
    /// starts; follow it with [`Notifier::ready`] when the reload is done (also if it failed
    /// and the old configuration stays). systemd requires the timestamp for
    /// `Type=notify-reload` and accepts it for `Type=notify`.
    ///
    /// # Errors
    /// The clock error, or see [`Notifier::notify`].
    pub fn reloading(&self) -> io::Result<()> {
        let usec = monotonic_usec()?;
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
    }

    /// `STOPPING=1`: send when shutdown begins (SIGTERM/SIGINT), before closing listeners.
    ///
    /// # Errors
    /// See [`Notifier::notify`].
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// `WATCHDOG=1`: keep-alive; send from the event loop's timer every [`watchdog_interval`].
    ///
    /// # Errors
    /// See [`Notifier::notify`].
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// `STATUS=<text>`, shown by `systemctl status`. Newlines in `text` would start new
    /// assignments, so they are replaced by spaces.
    ///
    /// # Errors
    /// See [`Notifier::notify`].
    pub fn status(&self, text: &str) -> io::Result<()> {
        let one_line: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
        self.notify(&format!("STATUS={one_line}"))
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd uses for `MONOTONIC_USEC=`.
fn monotonic_usec() -> io::Result<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    // tv_sec/tv_nsec are i64 or i32 depending on the target (armv6/armv7 musl: 64-bit time_t);
    // go through u64 before multiplying so 32-bit targets cannot overflow.
    let secs = u64::try_from(now.tv_sec()).unwrap_or(0);
    let nsecs = u64::try_from(now.tv_nsec()).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000).saturating_add(nsecs / 1_000))
}

/// The watchdog timeout systemd enforces (`WatchdogSec=`), from `$WATCHDOG_USEC`, or `None`
/// when the watchdog is off or meant for another process (`$WATCHDOG_PID` differs from ours).
#[must_use]
pub fn watchdog_timeout() -> Option<Duration> {
    watchdog_timeout_from(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// How often the event loop should send `WATCHDOG=1`: half of [`watchdog_timeout`], as
/// sd_watchdog_enabled(3) recommends, so one late tick does not kill the service.
#[must_use]
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_timeout().map(|t| t / 2)
}

/// [`watchdog_timeout`] on explicit inputs (testable without touching the environment).
#[must_use]
pub fn watchdog_timeout_from(usec: Option<&OsStr>, pid: Option<&OsStr>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.to_str()?.parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        // Set by systemd only for the main process; a forked helper must not ping.
        let pid: u32 = pid.to_str()?.parse().ok()?;
        if pid != my_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("viprouter-notify-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn path_socket_receives_states_in_order() {
        let dir = TempDir::new();
        let path = dir.0.join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_notify_socket(path.as_os_str()).unwrap();
        n.ready().unwrap();
        n.try_clone().unwrap().watchdog().unwrap();
        n.reloading().unwrap();
        n.ready().unwrap();
        n.status("two\nlines").unwrap();
        n.stopping().unwrap();
        assert_eq!(recv(&server), "READY=1");
        assert_eq!(recv(&server), "WATCHDOG=1");
        let reload = recv(&server);
        let usec = reload.strip_prefix("RELOADING=1\nMONOTONIC_USEC=").expect(&reload);
        assert!(usec.parse::<u64>().unwrap() > 0);
        assert_eq!(recv(&server), "READY=1");
        assert_eq!(recv(&server), "STATUS=two lines");
        assert_eq!(recv(&server), "STOPPING=1");
    }

    #[test]
    fn abstract_socket_is_supported() {
        let name = format!("viprouter-notify-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::from_notify_socket(OsStr::new(&format!("@{name}"))).unwrap();
        n.ready().unwrap();
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn bad_addresses_are_rejected() {
        for v in ["", "relative/path", "vsock:2:1234"] {
            let e = Notifier::from_notify_socket(OsStr::new(v)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{v}");
        }
    }

    #[test]
    fn missing_listener_is_an_error_not_a_hang() {
        let dir = TempDir::new();
        let n = Notifier::from_notify_socket(dir.0.join("absent").as_os_str()).unwrap();
        assert!(n.ready().is_err());
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec().unwrap();
        let b = monotonic_usec().unwrap();
        assert!(b >= a && a > 0);
    }

    #[test]
    fn watchdog_env_parsing() {
        let s = |v: &'static str| Some(OsStr::new(v));
        assert_eq!(watchdog_timeout_from(s("30000000"), s("42"), 42), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_timeout_from(s("30000000"), None, 42), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_timeout_from(s("30000000"), s("41"), 42), None);
        assert_eq!(watchdog_timeout_from(s("0"), s("42"), 42), None);
        assert_eq!(watchdog_timeout_from(s("x"), s("42"), 42), None);
        assert_eq!(watchdog_timeout_from(None, s("42"), 42), None);
        assert_eq!(watchdog_timeout_from(s("30000000"), s("pid"), 42), None);
    }
}
