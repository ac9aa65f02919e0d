//! Helpers shared by the integration tests: include with `mod common;`.
//!
//! * [`router`]: the VIP router core without sockets — a recording [`router::Recorder`] sink,
//!   messages built from frame lists, and [`router::TestRouter`], a router with its own counters
//!   (the server owns them in production and lends them to every call).
//! * [`server`]: a server on 127.0.0.1 and raw ZMTP peers (greeting, READY, frames).
//! * `alloc_counter.rs` (the counting global allocator) and `warm_up.rs` are included by the
//!   zero-allocation tests only, with `#[path]`: an allocator is one per test binary.
#![allow(dead_code)] // each test binary uses some of the helpers

pub mod router;
pub mod server;
