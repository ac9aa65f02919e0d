//! viprouter: a small, fast VOLTTRON™ VIP router that speaks ZMTP 3.x itself.
//!
//! ```text
//! server/    the only I/O: mio loop, sockets, signals, inotify, sd_notify, the clock
//!   │ bytes in (conn/ buffers)                  ▲ frames out (event_loop/sink.rs: vip::router::Sink)
//!   ▼ protocol.rs: Driver (ZMTP session inline, │
//!     or any Protocol: dialled links, AMQP)     │
//! zmtp/      sans-IO ZMTP: greeting, frame, command, deframer, traffic (both roles),
//!   │        session/ (server; client.rs), mechanism/ (PLAIN, CURVE), z85
//!   │ complete messages (held by the session, borrowed frame ranges)
//!   ▼                                           │
//! vip/       routing, hello/ping/peerlist/query, pubsub/, subscriptions/, protected topics
//! auth/      keystore, known_hosts, auth.json: the in-process ZAP decision; modular
//!            VOLTTRON's credentials_store and authz.json (layout, credentials, authz)
//! json/      zero-allocation JSON scanner and Python-compatible emitter (one string escaper)
//! amqp/      sans-IO AMQP 0-9-1 client and the VIP <-> RabbitMQ mapping (features `rabbitmq`, `rabbitmq-tls`)
//! limits.rs  every capacity (one table); stats.rs counters; time.rs; config/ (CLI + INI)
//! bytes.rs   byte-string equality for the short keys and names of the message path
//! pages.rs   the binary's allocator: large blocks (the start-up tables) as lazy anonymous mappings
//! fuzzing/   fuzz harnesses: only with cfg(test), cfg(fuzzing) or the `fuzzing` feature
//! ```
//!
//! The binary (`main.rs`) adds `viprouter keygen` and, with the default `bench` feature,
//! `viprouter bench` (`src/bench/`): the library is the router and nothing else.
//!
//! Layer rules (DESIGN.md §2.2):
//! 1. `zmtp`, `vip`, `auth` (decision), `json`, `bytes`, `limits`, `time` are pure: no sockets, no clock,
//!    no threads; randomness comes in as an argument.
//! 2. They talk to `server` only in data: bytes consumed, bytes queued, [`zmtp::session::Input`]
//!    events, [`vip::router::Outcome`]; the server owns the counters ([`stats::Stats`]) and lends
//!    them to the router.
//! 3. `server` holds no protocol knowledge beyond "feed bytes, route messages, flush": every
//!    connection's bytes go through its [`server::protocol::Driver`].
//! 4. A received message stays where the session parsed it, in the sender's receive buffer, until
//!    the router has read it; the router copies it once, into the destination's transmit queue
//!    (a pubsub fan-out to NULL/PLAIN subscribers: once into the shared transmit pool, which
//!    every recipient's queue refers to, `server/conn/shared.rs`); routing and pubsub fan-out
//!    allocate nothing in the steady state (`tests/no_alloc*.rs`). Buffers and pool chunks idle
//!    for `limits::IDLE_SHRINK_MS` are freed, so the first message after an idle period
//!    allocates them again: once per idle period, never per message.
//! 5. Nothing reachable from peer input panics: the pure layers deny `unwrap`, `expect`,
//!    `panic`, unchecked indexing and truncating casts outside tests.
//! 6. No `unsafe` code, except the calls into libsodium under the CURVE MESSAGE box
//!    (`zmtp::mechanism::curve::sodium`) and the binary's allocator ([`pages`]: large blocks
//!    as anonymous mappings), the two modules that allow it.
#![deny(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

#[cfg(feature = "rabbitmq")]
pub mod amqp;
pub mod auth;
pub mod bytes;
pub mod config;
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod limits;
pub mod pages;
pub mod server;
pub mod stats;
pub mod time;
pub mod vip;
pub mod zmtp;
