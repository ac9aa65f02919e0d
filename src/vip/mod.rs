//! The VOLTTRON Interconnect Protocol core: pure data structures, no I/O
//! (../shared/spec/VIP.md §3–§8; DESIGN.md §2.2).
//!
//! Input: a complete ZMTP message from a connected peer, as a borrowed
//! [`crate::zmtp::Message`], plus the [`peers::PeerId`] it came from. Output: messages handed
//! to a [`router::Sink`], which queues them on the destination connections (or says it is
//! full), and an [`router::Outcome`] telling the server whether to pause the sender.
//!
//! Frame layout (DEALER-side view, what a peer writes): `[RECIPIENT, "VIP1", USER_ID, MSG_ID,
//! SUBSYSTEM, ARGS...]`; the sender's routing id is known from the connection. Forwarding
//! replaces RECIPIENT by the sender's identity and stamps USER_ID with it (VIP.md §3.5); the
//! other frames go through byte-for-byte (§3.7 recommendation: no JSON rewriting). An empty
//! RECIPIENT addresses the router itself (§5). Errors are the frames of §6; malformed input is
//! dropped silently and counted (§16.2 A13).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::cast_possible_truncation))]

pub mod bridge;
pub mod discovery;
pub mod envelope;
pub mod error;
pub mod external_pubsub;
pub mod external_rpc;
pub mod links;
pub mod peers;
pub mod platform;
pub mod protected;
pub mod pubsub;
pub mod report;
pub mod router;
pub mod routing_table;
pub mod subscriptions;

/// The protocol signature, frame 1 of every VIP message (VIP.md §3.3).
pub const SIGNATURE: &[u8] = b"VIP1";
