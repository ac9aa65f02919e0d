//! File watching with inotify (through nix): a change to `auth.json` or
//! `protected_topics.json` in `$VOLTTRON_HOME` (VOLTTRON 9), or to `authz.json` or any
//! `credentials_store/*.json` (modular VOLTTRON), triggers the same reload as SIGHUP, so an
//! operator's edit (or `vctl auth add`, `vctl install`) takes effect for new handshakes without
//! a restart.
//!
//! Directories are watched, not the files: editors and VOLTTRON replace files by rename, which
//! a file watch would lose. Only close-after-write, move-in, create and delete events for the
//! watched names count (a name, or `*SUFFIX` for every name ending so), and a queue overflow
//! (events lost: reload to be safe).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// An inotify watch on directories, each for a set of file names.
pub struct Watch {
    inotify: Inotify,
    dirs: Vec<(WatchDescriptor, Vec<String>)>,
}

impl Watch {
    /// Watch `dir` for changes to any of `names` (a name, or `*SUFFIX`).
    ///
    /// # Errors
    /// inotify initialisation or `add_watch` errors (e.g. the directory does not exist).
    pub fn new(dir: &Path, names: &[&str]) -> io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(io::Error::from)?;
        let mut w = Watch { inotify, dirs: Vec::new() };
        w.add(dir, names)?;
        Ok(w)
    }

    /// Also watch `dir` for changes to any of `names`.
    ///
    /// # Errors
    /// `add_watch` errors (e.g. the directory does not exist).
    pub fn add(&mut self, dir: &Path, names: &[&str]) -> io::Result<()> {
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE;
        let wd = self.inotify.add_watch(dir, flags).map_err(io::Error::from)?;
        self.dirs.push((wd, names.iter().map(|s| (*s).to_string()).collect()));
        Ok(())
    }

    /// Register for READABLE under `token`.
    ///
    /// # Errors
    /// The registry's error.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut SourceFd(&self.inotify.as_fd().as_raw_fd()), token, Interest::READABLE)
    }

    /// Drain pending events; true if any concerned a watched name.
    pub fn changed(&self) -> bool {
        let mut hit = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                hit |= self.concerns(e.wd, e.mask, e.name.as_deref());
            }
        }
        hit
    }

    /// Whether an event calls for a reload: it names a watched file, or the kernel's event
    /// queue overflowed (`IN_Q_OVERFLOW`: events were lost, one of them may have been ours).
    fn concerns(&self, wd: WatchDescriptor, mask: AddWatchFlags, name: Option<&OsStr>) -> bool {
        let matches = |n: &String, name: &OsStr| match n.strip_prefix('*') {
            Some(suffix) => name.as_encoded_bytes().ends_with(suffix.as_bytes()),
            None => OsStr::new(n) == name,
        };
        mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
            || name.is_some_and(|name| {
                self.dirs.iter().filter(|(d, _)| *d == wd).any(|(_, names)| names.iter().any(|n| matches(n, name)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_writes_and_renames_of_watched_names_only() {
        let dir = std::env::temp_dir().join(format!("viprouter-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = Watch::new(&dir, &["auth.json"]).unwrap();
        assert!(!w.changed());
        std::fs::write(dir.join("other.json"), b"{}").unwrap();
        assert!(!w.changed());
        std::fs::write(dir.join("auth.json"), b"{}").unwrap();
        assert!(w.changed());
        std::fs::write(dir.join("auth.json.tmp"), b"{}").unwrap();
        std::fs::rename(dir.join("auth.json.tmp"), dir.join("auth.json")).unwrap();
        assert!(w.changed());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_queue_overflow_counts_as_a_change() {
        let dir = std::env::temp_dir().join(format!("viprouter-watch-ovf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = Watch::new(&dir, &["auth.json"]).unwrap();
        let wd = w.dirs[0].0;
        assert!(w.concerns(wd, AddWatchFlags::IN_Q_OVERFLOW, None));
        assert!(!w.concerns(wd, AddWatchFlags::IN_CLOSE_WRITE, Some(OsStr::new("other.json"))));
        assert!(w.concerns(wd, AddWatchFlags::IN_MOVED_TO, Some(OsStr::new("auth.json"))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The modular layout: `authz.json` in the home, every `*.json` in `credentials_store`.
    #[test]
    fn several_directories_and_suffix_patterns() {
        let dir = std::env::temp_dir().join(format!("viprouter-watch-multi-{}", std::process::id()));
        let creds = dir.join("credentials_store");
        std::fs::create_dir_all(&creds).unwrap();
        let mut w = Watch::new(&dir, &["authz.json"]).unwrap();
        w.add(&creds, &["*.json"]).unwrap();
        assert!(!w.changed());
        std::fs::write(dir.join("agent.json"), b"{}").unwrap();
        assert!(!w.changed(), "*.json applies to credentials_store only");
        std::fs::write(creds.join("agent.json"), b"{}").unwrap();
        assert!(w.changed());
        std::fs::write(creds.join("agent.json.swp"), b"{}").unwrap();
        assert!(!w.changed());
        std::fs::remove_file(creds.join("agent.json")).unwrap();
        assert!(w.changed(), "a removed credential is a change");
        std::fs::write(dir.join("authz.json"), b"{}").unwrap();
        assert!(w.changed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
