//! Out of file descriptors (EMFILE) while connections wait in the listen backlog: they must be
//! accepted once descriptors free up, without waiting for yet another client to connect
//! (the listener is edge-triggered: the connections already queued raise no new event).
//!
//! One test in its own binary: it lowers the process's RLIMIT_NOFILE, which would break any
//! test running beside it.

use std::net::TcpStream;
use std::time::Duration;

use mio::Events;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use viprouter::limits::Limits;
use viprouter::zmtp::mechanism::Mechanism;

mod common;
use common::server::{server, turn_for};

/// The RLIMIT_NOFILE under which exactly one more descriptor can be opened (the limit bounds
/// descriptor numbers, and the table may have holes).
fn limit_for_one_more() -> u64 {
    let entries: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The last entry listed may be the directory's own descriptor, closed by now: re-check.
    let used: Vec<u64> =
        entries.into_iter().filter(|fd| std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok()).collect();
    let mut free_below = 0;
    let mut limit = 0u64;
    while free_below < 1 {
        if !used.contains(&limit) {
            free_below += 1;
        }
        limit += 1;
    }
    limit
}

#[test]
fn connections_left_in_the_backlog_by_emfile_are_accepted_once_descriptors_free_up() {
    let (mut server, port) = server(Limits::COMPILED, Mechanism::Null);
    let mut events = Events::with_capacity(64);
    turn_for(&mut server, &mut events, Duration::from_millis(20));

    let first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _waiting: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    // Room for exactly one accepted socket.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, limit_for_one_more(), hard).unwrap();
    turn_for(&mut server, &mut events, Duration::from_millis(100));
    assert_eq!(server.stats().accepted, 1, "one descriptor, one accepted connection");

    // The first client leaves: the router closes its socket, one descriptor is free again.
    drop(first);
    turn_for(&mut server, &mut events, Duration::from_millis(500));
    let accepted = server.stats().accepted;
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    assert_eq!(server.stats().closed, 1);
    assert!(accepted >= 2, "a connection waiting in the backlog was never accepted after EMFILE");
}
