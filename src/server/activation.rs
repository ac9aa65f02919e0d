//! Socket activation (sd_listen_fds(3) without libsystemd): listeners handed over by systemd
//! through `$LISTEN_FDS`, `$LISTEN_PID` and `$LISTEN_FDNAMES`.
//!
//! Layer: `server/`. Protocol (sd_listen_fds(3), systemd.socket(5)): the inherited descriptors
//! are the consecutive numbers `3 .. 3 + LISTEN_FDS`; they belong to us only if `LISTEN_PID`
//! is our PID (otherwise the variables leaked from a parent and must be ignored);
//! `LISTEN_FDNAMES` is a `:`-separated list with exactly one name per descriptor
//! (`FileDescriptorName=` in the .socket unit, default: the socket unit's name).
//!
//! Ownership and `unsafe`. The library is `#![deny(unsafe_code)]` (its one exception is the
//! libsodium calls of `zmtp::mechanism::curve::sodium`), and neither std nor nix
//! offers a safe way to take ownership of a descriptor *number* (`OwnedFd::from_raw_fd` and
//! `BorrowedFd::borrow_raw` are `unsafe` by design of I/O safety: the compiler cannot know that
//! nothing else owns fd 3). So this module does everything that can be done safely (parse,
//! validate with `getsockname(2)` which takes a plain number, classify, wrap) and leaves the
//! one `RawFd -> OwnedFd` step to the caller through the `adopt` closure of
//! [`ListenFds::into_listeners`]. The island in `main.rs` (a separate crate root, so the
//! server layer stays free of `unsafe`):
//!
//! ```ignore
//! #[allow(unsafe_code)]
//! fn adopt_listen_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
//!     // SAFETY: `activation::from_env` returned `fd` only if LISTEN_PID is our PID and
//!     // 3 <= fd < 3 + LISTEN_FDS, i.e. systemd passed it to this process; getsockname()
//!     // succeeded on it, so it is open. Nothing in this process opened, wrapped or closed it
//!     // before (this runs first thing in main, before any other fd is created), and
//!     // `into_listeners` calls `adopt` at most once per fd, so ownership is unique.
//!     unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
//! }
//! ```

use std::fmt;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt};

/// First inherited descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Upper bound on `LISTEN_FDS` accepted; the router needs a handful (tcp + ipc), this only keeps
/// a corrupt value from producing a huge list.
pub const MAX_LISTEN_FDS: usize = 64;

/// Address family of an inherited socket, learned from `getsockname(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `AF_INET` or `AF_INET6` (`ListenStream=127.0.0.1:22916`, `[::]:22916`).
    Inet,
    /// `AF_UNIX`, path or abstract (`ListenStream=/run/viprouter/vip.socket`, `@name`).
    Unix,
}

/// One descriptor systemd passed, validated but not yet owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InheritedFd {
    /// The descriptor number (3, 4, ...).
    pub fd: RawFd,
    /// Its `FileDescriptorName=` from `$LISTEN_FDNAMES`, if the variable was set.
    pub name: Option<String>,
    /// Its address family.
    pub family: Family,
}

/// A listener taken over from systemd.
#[derive(Debug)]
pub enum Listener {
    /// A listening TCP socket (IPv4 or IPv6); `mio::net::TcpListener::from_std` accepts it.
    Tcp(TcpListener),
    /// A listening Unix stream socket; `mio::net::UnixListener::from_std` accepts it.
    Unix(UnixListener),
}

/// Why the inherited descriptors cannot be used. Every variant means a unit-file or
/// environment mistake, so the router should log it and exit non-zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActivationError {
    /// `$LISTEN_FDS` or `$LISTEN_PID` is not a decimal number.
    BadNumber {
        /// The variable name.
        var: &'static str,
    },
    /// `$LISTEN_FDS` is above [`MAX_LISTEN_FDS`].
    TooMany {
        /// The value given.
        count: usize,
    },
    /// `$LISTEN_FDNAMES` does not have one name per descriptor.
    NamesMismatch {
        /// Descriptor count.
        fds: usize,
        /// Name count.
        names: usize,
    },
    /// `getsockname` failed: the descriptor is closed (`EBADF`) or not a socket (`ENOTSOCK`).
    NotASocket {
        /// The descriptor.
        fd: RawFd,
        /// The error.
        errno: Errno,
    },
    /// A socket family other than `AF_INET`, `AF_INET6`, `AF_UNIX`.
    UnsupportedFamily {
        /// The descriptor.
        fd: RawFd,
    },
    /// A datagram/seqpacket socket, or a stream socket that is not listening
    /// (`Accept=yes` in the .socket unit hands over connections: the router needs `Accept=no`).
    NotAListener {
        /// The descriptor.
        fd: RawFd,
    },
    /// `getsockopt`/`fcntl` failed on an owned descriptor.
    Sys {
        /// The descriptor.
        fd: RawFd,
        /// The error.
        errno: Errno,
    },
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::BadNumber { var } => write!(f, "${var} is not a number"),
            ActivationError::TooMany { count } => {
                write!(f, "LISTEN_FDS={count} exceeds the limit of {MAX_LISTEN_FDS}")
            }
            ActivationError::NamesMismatch { fds, names } => {
                write!(f, "LISTEN_FDNAMES has {names} names for {fds} descriptors")
            }
            ActivationError::NotASocket { fd, errno } => {
                write!(f, "inherited fd {fd} is not a socket: {errno}")
            }
            ActivationError::UnsupportedFamily { fd } => {
                write!(f, "inherited fd {fd} is neither AF_INET/AF_INET6 nor AF_UNIX")
            }
            ActivationError::NotAListener { fd } => write!(
                f,
                "inherited fd {fd} is not a listening stream socket (the .socket unit needs Accept=no and ListenStream=)"
            ),
            ActivationError::Sys { fd, errno } => write!(f, "inherited fd {fd}: {errno}"),
        }
    }
}

impl std::error::Error for ActivationError {}

/// The validated set of inherited descriptors.
#[derive(Debug, PartialEq, Eq)]
pub struct ListenFds {
    fds: Vec<InheritedFd>,
}

/// Reads the environment. `Ok(None)` means "not socket-activated": `$LISTEN_FDS` unset, or
/// `$LISTEN_PID` unset or not ours (sd_listen_fds returns 0 in those cases too); the router then
/// binds the addresses from its configuration.
///
/// # Errors
/// See [`ActivationError`]; each descriptor is checked with `getsockname`.
pub fn from_env() -> Result<Option<ListenFds>, ActivationError> {
    let get = |k: &str| std::env::var(k).ok();
    let parsed = parse_env(
        get("LISTEN_PID").as_deref(),
        get("LISTEN_FDS").as_deref(),
        get("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    let Some(list) = parsed else { return Ok(None) };
    let mut fds = Vec::with_capacity(list.len());
    for (fd, name) in list {
        fds.push(InheritedFd { fd, name, family: family_of_raw(fd)? });
    }
    Ok(Some(ListenFds { fds }))
}

/// A descriptor number with its `$LISTEN_FDNAMES` entry.
pub type NamedFd = (RawFd, Option<String>);

/// The pure part of [`from_env`]: which descriptor numbers, with which names, are ours.
///
/// # Errors
/// [`ActivationError::BadNumber`], [`ActivationError::TooMany`], [`ActivationError::NamesMismatch`].
pub fn parse_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    my_pid: u32,
) -> Result<Option<Vec<NamedFd>>, ActivationError> {
    let Some(count) = listen_fds else {
        return Ok(None);
    };
    let Some(pid) = listen_pid else {
        return Ok(None);
    };
    let pid: u32 = pid.trim().parse().map_err(|_| ActivationError::BadNumber { var: "LISTEN_PID" })?;
    if pid != my_pid {
        return Ok(None);
    }
    let count: usize = count.trim().parse().map_err(|_| ActivationError::BadNumber { var: "LISTEN_FDS" })?;
    if count > MAX_LISTEN_FDS {
        return Err(ActivationError::TooMany { count });
    }
    let names: Option<Vec<&str>> = listen_fdnames.map(|n| n.split(':').collect());
    if let Some(names) = &names {
        // sd_listen_fds_with_names: a count mismatch is -EINVAL. An empty variable with zero
        // fds splits into one empty name, which is fine.
        if names.len() != count && !(count == 0 && names == &[""]) {
            return Err(ActivationError::NamesMismatch { fds: count, names: names.len() });
        }
    }
    let mut out = Vec::with_capacity(count);
    for (i, fd) in (LISTEN_FDS_START..).take(count).enumerate() {
        let name = names.as_ref().map(|n| n[i].to_owned());
        out.push((fd, name));
    }
    Ok(Some(out))
}

/// Family of a descriptor we do not own yet (getsockname takes a plain number).
fn family_of_raw(fd: RawFd) -> Result<Family, ActivationError> {
    let addr: SockaddrStorage = getsockname(fd).map_err(|errno| ActivationError::NotASocket { fd, errno })?;
    match addr.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Ok(Family::Inet),
        Some(AddressFamily::Unix) => Ok(Family::Unix),
        _ => Err(ActivationError::UnsupportedFamily { fd }),
    }
}

impl ListenFds {
    /// The descriptors, in `LISTEN_FDS` order.
    #[must_use]
    pub fn fds(&self) -> &[InheritedFd] {
        &self.fds
    }

    /// Takes ownership of every descriptor through `adopt` (called exactly once per fd, in
    /// order; see the module doc for the one-line `unsafe` it must contain) and wraps each in
    /// a std listener. Descriptors already adopted when an error occurs are closed on return.
    ///
    /// # Errors
    /// See [`Listener::from_owned`].
    pub fn into_listeners(
        self,
        mut adopt: impl FnMut(RawFd) -> OwnedFd,
    ) -> Result<Vec<(Option<String>, Listener)>, ActivationError> {
        // Adopt all first, so an early error does not leave later fds open-but-unowned.
        let owned: Vec<(Option<String>, OwnedFd)> = self.fds.into_iter().map(|i| (i.name, adopt(i.fd))).collect();
        owned.into_iter().map(|(name, fd)| Ok((name, Listener::from_owned(fd)?))).collect()
    }
}

impl Listener {
    /// Wraps an owned descriptor after checking it is a listening stream socket of a supported
    /// family. Sets `FD_CLOEXEC` (systemd passes the fds without it) and non-blocking mode
    /// (mio requires it).
    ///
    /// # Errors
    /// [`ActivationError::NotASocket`], [`ActivationError::UnsupportedFamily`],
    /// [`ActivationError::NotAListener`], [`ActivationError::Sys`].
    pub fn from_owned(fd: OwnedFd) -> Result<Listener, ActivationError> {
        use std::os::fd::AsRawFd;
        let raw = fd.as_raw_fd();
        let sys = |errno| ActivationError::Sys { fd: raw, errno };
        let family = family_of_raw(raw)?;
        let ty = getsockopt(&fd, sockopt::SockType).map_err(sys)?;
        let listening = getsockopt(&fd, sockopt::AcceptConn).map_err(sys)?;
        if ty != SockType::Stream || !listening {
            return Err(ActivationError::NotAListener { fd: raw });
        }
        set_cloexec(&fd).map_err(sys)?;
        let listener = match family {
            Family::Inet => Listener::Tcp(TcpListener::from(fd)),
            Family::Unix => Listener::Unix(UnixListener::from(fd)),
        };
        let r = match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l) => l.set_nonblocking(true),
        };
        r.map_err(|e| sys(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        Ok(listener)
    }
}

fn set_cloexec(fd: &impl AsFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let flags = FdFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFD)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};

    #[test]
    fn env_parsing() {
        let me = 4242;
        assert_eq!(parse_env(None, None, None, me), Ok(None));
        assert_eq!(parse_env(Some("4242"), None, None, me), Ok(None));
        assert_eq!(parse_env(None, Some("2"), None, me), Ok(None), "no LISTEN_PID: not for us");
        assert_eq!(parse_env(Some("1"), Some("2"), None, me), Ok(None), "other pid: leaked env");
        assert_eq!(parse_env(Some("4242"), Some("2"), None, me), Ok(Some(vec![(3, None), (4, None)])));
        assert_eq!(
            parse_env(Some("4242"), Some("2"), Some("vip-tcp:vip-ipc"), me),
            Ok(Some(vec![(3, Some("vip-tcp".into())), (4, Some("vip-ipc".into()))]))
        );
        assert_eq!(parse_env(Some("4242"), Some("0"), Some(""), me), Ok(Some(vec![])));
        assert_eq!(
            parse_env(Some("4242"), Some("2"), Some("one"), me),
            Err(ActivationError::NamesMismatch { fds: 2, names: 1 })
        );
        assert_eq!(parse_env(Some("4242"), Some("x"), None, me), Err(ActivationError::BadNumber { var: "LISTEN_FDS" }));
        assert_eq!(parse_env(Some("x"), Some("1"), None, me), Err(ActivationError::BadNumber { var: "LISTEN_PID" }));
        assert_eq!(parse_env(Some("4242"), Some("65"), None, me), Err(ActivationError::TooMany { count: 65 }));
    }

    fn unix_listener() -> (UnixListener, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("viprouter-act-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        (UnixListener::bind(&p).unwrap(), p)
    }

    #[test]
    fn wraps_tcp_and_unix_listeners() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        match Listener::from_owned(OwnedFd::from(tcp)).unwrap() {
            Listener::Tcp(l) => assert_eq!(l.local_addr().unwrap().port(), port),
            other => panic!("{other:?}"),
        }
        let (unix, path) = unix_listener();
        match Listener::from_owned(OwnedFd::from(unix)).unwrap() {
            Listener::Unix(l) => {
                assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()))
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn rejects_non_listeners() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let raw = udp.as_raw_fd();
        assert_eq!(Listener::from_owned(OwnedFd::from(udp)).unwrap_err(), ActivationError::NotAListener { fd: raw });
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let raw = conn.as_raw_fd();
        assert_eq!(Listener::from_owned(OwnedFd::from(conn)).unwrap_err(), ActivationError::NotAListener { fd: raw });
        let file = std::fs::File::open("/dev/null").unwrap();
        let raw = file.as_raw_fd();
        assert!(matches!(
            Listener::from_owned(OwnedFd::from(file)),
            Err(ActivationError::NotASocket { fd, errno: Errno::ENOTSOCK }) if fd == raw
        ));
    }

    #[test]
    fn into_listeners_adopts_each_fd_once_in_order() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (unix, path) = unix_listener();
        let lf = ListenFds {
            fds: vec![
                InheritedFd { fd: 3, name: Some("tcp".into()), family: Family::Inet },
                InheritedFd { fd: 4, name: Some("ipc".into()), family: Family::Unix },
            ],
        };
        let mut pool = vec![OwnedFd::from(unix), OwnedFd::from(tcp)];
        let mut seen = vec![];
        let ls = lf
            .into_listeners(|fd| {
                seen.push(fd);
                pool.pop().unwrap()
            })
            .unwrap();
        assert_eq!(seen, [3, 4]);
        assert!(matches!(&ls[0], (Some(n), Listener::Tcp(_)) if n == "tcp"));
        assert!(matches!(&ls[1], (Some(n), Listener::Unix(_)) if n == "ipc"));
        let _ = std::fs::remove_file(path);
    }

    /// The real hand-over: a child process gets a TCP listener on fd 3 and a Unix listener on
    /// fd 4 (arranged by `sh`, which keeps its PID across `exec` so `LISTEN_PID=$$` is right)
    /// and runs `child_reads_inherited_fds` below.
    #[test]
    fn child_process_sees_inherited_listeners() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (unix, path) = unix_listener();
        let exe = std::env::current_exe().unwrap();
        // Cross tests run under qemu-user without binfmt_misc: the child must be started
        // through the same emulator (`make test-arm` sets this; qemu keeps fds 3/4 and the PID).
        let runner = std::env::var("VIPROUTER_TEST_RUNNER").unwrap_or_default();
        let out = Command::new("/bin/sh")
            .arg("-c")
            // fd 0 -> 3 (tcp), fd 2 -> 4 (unix); then restore sane 0 and 2 for the test harness.
            .arg(format!(r#"exec 3<&0 4<&2 0</dev/null 2>&1; LISTEN_PID=$$ exec {runner} "$0" "$@""#))
            .arg(exe)
            .args([
                "--exact",
                "server::activation::tests::child_reads_inherited_fds",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VIPROUTER_ACTIVATION_CHILD", "1")
            .env("LISTEN_FDS", "2")
            .env("LISTEN_FDNAMES", "vip-tcp:vip-ipc")
            .stdin(Stdio::from(OwnedFd::from(tcp)))
            .stderr(Stdio::from(OwnedFd::from(unix)))
            .output()
            .unwrap();
        let _ = std::fs::remove_file(path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("ACTIVATION-CHILD-OK"), "child did not run the check: {stdout}");
    }

    #[test]
    fn child_reads_inherited_fds() {
        if std::env::var_os("VIPROUTER_ACTIVATION_CHILD").is_none() {
            return; // only meaningful inside child_process_sees_inherited_listeners
        }
        let lf = from_env().unwrap().expect("LISTEN_PID should match");
        assert_eq!(
            lf.fds(),
            [
                InheritedFd { fd: 3, name: Some("vip-tcp".into()), family: Family::Inet },
                InheritedFd { fd: 4, name: Some("vip-ipc".into()), family: Family::Unix },
            ]
        );
        println!("ACTIVATION-CHILD-OK");
    }
}
