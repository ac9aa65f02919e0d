//! Signals as events of the loop (signalfd through nix): SIGTERM/SIGINT stop, SIGHUP
//! reloads, SIGUSR1 logs the counters. The signals are blocked for normal delivery, so a
//! handler never runs asynchronously.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What a signal asks of the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
    /// SIGUSR1.
    DumpStats,
}

/// The signal file descriptor.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Block the handled signals and open a non-blocking signalfd for them.
    ///
    /// # Errors
    /// The system call's error.
    pub fn new() -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGUSR1] {
            set.add(s);
        }
        set.thread_block().map_err(io::Error::from)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
        Ok(Signals { fd })
    }

    /// Register for READABLE under `token`.
    ///
    /// # Errors
    /// The registry's error.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut SourceFd(&self.fd.as_fd().as_raw_fd()), token, Interest::READABLE)
    }

    /// The next pending signal, if any.
    pub fn pending(&mut self) -> Option<SignalEvent> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT) => return Some(SignalEvent::Stop),
                    Ok(Signal::SIGHUP) => return Some(SignalEvent::Reload),
                    Ok(Signal::SIGUSR1) => return Some(SignalEvent::DumpStats),
                    _ => continue,
                },
                Ok(None) | Err(_) => return None,
            }
        }
    }
}
