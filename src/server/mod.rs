//! The only layer that touches sockets, mio, signals and the clock (DESIGN.md §2.2 rule 3).
//!
//! It holds no protocol knowledge beyond "feed bytes to the connection's protocol, hand complete
//! messages to the router, write what they queued". See [`event_loop`] for one turn of the loop
//! and the path of one message, [`conn`] for a connection's state, [`protocol`] for what drives
//! its bytes (accepted ZMTP agents, connections the router dials), [`link`] for the connection of
//! a link to a remote platform, [`close`] for why one ends, [`startup`] for start-up and
//! [`auth_hook`]/[`reload`] for the platform's rules (and the discovery file's links).

pub mod activation;
pub mod auth_hook;
pub mod auth_report;
#[cfg(feature = "rabbitmq")]
pub mod broker;
pub mod close;
pub mod conn;
pub mod event_loop;
pub mod link;
pub mod listener;
pub mod memory;
mod modular;
pub mod notify;
pub mod protocol;
pub mod reload;
pub mod signals;
pub mod sockopt;
pub mod startup;
pub mod watch;
