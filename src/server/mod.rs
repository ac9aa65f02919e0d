//! The only layer that touches sockets, mio, signals and the clock (DESIGN.md §2.2 rule 3).
//!
//! It holds no protocol knowledge beyond "feed bytes to the session, hand complete messages
//! to the router, write what they queued". See [`event_loop`] for one turn of the loop.

pub mod activation;
pub mod conn;
pub mod event_loop;
pub mod listener;
mod modular;
pub mod notify;
pub mod signals;
pub mod slots;
pub mod sockopt;
pub mod startup;
pub mod watch;
