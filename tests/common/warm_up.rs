//! The warm-up of the zero-allocation tests: turn the server until every buffer on the traffic's
//! path has reached its ceiling, so that nothing can grow once allocations are counted. Include
//! it with `#[path = "common/warm_up.rs"] mod warm_up;`.

use std::thread;
use std::time::{Duration, Instant};

use mio::Events;
use viprouter::server::event_loop::Server;

/// How long the router stops turning to let input pile up, as if descheduled.
pub const NAP: Duration = Duration::from_millis(20);

/// Turn `server` (calling `each_turn` after every turn) until `done` holds and the buffer
/// budget holds `ceiling` bytes (`stats.buffer_bytes`, synced once per tick): the sum of every
/// buffer on the path at the largest size this traffic can make it. While below, the router
/// naps once per tick so that a backlog builds up in the peers' sockets and reads fill the
/// receive buffers (only full reads grow them), as when a loaded machine deschedules it.
///
/// Fails at `deadline`, and if the buffers hold more than `ceiling`: then the ceiling misses a
/// buffer, which could still grow while allocations are counted.
pub fn to_ceiling(
    server: &mut Server,
    events: &mut Events,
    deadline: Instant,
    ceiling: u64,
    mut done: impl FnMut(&Server) -> bool,
    mut each_turn: impl FnMut(&Server),
) {
    let mut nap_at = Instant::now();
    while !done(server) || server.stats().buffer_bytes < ceiling {
        server.run_once(events).unwrap();
        each_turn(server);
        if server.stats().buffer_bytes < ceiling && Instant::now() >= nap_at {
            thread::sleep(NAP);
            nap_at = Instant::now() + Duration::from_millis(100);
        }
        assert!(
            Instant::now() < deadline,
            "warm-up did not finish: buffers hold {} bytes of {ceiling}",
            server.stats().buffer_bytes
        );
    }
    assert_eq!(
        server.stats().buffer_bytes,
        ceiling,
        "no buffer grew beyond its ceiling for this traffic (else the ceiling misses a buffer)"
    );
}
