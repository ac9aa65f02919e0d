//! viprouter: a small, fast VOLTTRON™ VIP router that speaks ZMTP 3.x itself.
//!
//! ```text
//! server/   the only I/O: mio loop, sockets, signals, inotify, sd_notify, the clock
//!   │ bytes in                                   ▲ frames out (vip::router::Sink)
//!   ▼                                            │
//! zmtp/     sans-IO ZMTP: greeting, frames, commands, NULL/PLAIN/CURVE sessions
//!   │ complete messages (borrowed frame ranges)  │
//!   ▼                                            │
//! vip/      routing, hello/ping/peerlist/query, pubsub, protected topics
//! auth/     keystore, known_hosts, auth.json: the in-process ZAP decision
//! json/     zero-allocation JSON scanner and Python-compatible emitter
//! amqp/     sans-IO AMQP 0-9-1 client and the VIP <-> RabbitMQ mapping (feature `rabbitmq`)
//! limits.rs every capacity (one place); stats.rs counters; time.rs; config/ (CLI + INI)
//! ```
//!
//! Layer rules (DESIGN.md §2.2):
//! 1. `zmtp`, `vip`, `auth` (decision), `json`, `limits`, `time` are pure: no sockets, no clock,
//!    no threads; randomness comes in as an argument.
//! 2. They talk to `server` only in data: bytes consumed, bytes queued, [`zmtp::session::Input`]
//!    events, [`vip::router::Outcome`].
//! 3. `server` holds no protocol knowledge beyond "feed bytes, route messages, flush".
//! 4. The router borrows frames from the sender's receive buffer and copies each message once,
//!    into the destination's transmit queue; routing and pubsub fan-out allocate nothing in the
//!    steady state (`tests/no_alloc.rs`, `tests/no_alloc_pubsub.rs`).
//! 5. Nothing reachable from peer input panics: the pure layers deny `unwrap`, `expect`,
//!    `panic` and unchecked indexing outside tests.
#![forbid(unsafe_code)]

#[cfg(feature = "rabbitmq")]
pub mod amqp;
pub mod auth;
pub mod bench;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod limits;
pub mod server;
pub mod stats;
pub mod time;
pub mod vip;
pub mod zmtp;
