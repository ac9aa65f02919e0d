//! viprouter: a VOLTTRON VIP router (skeleton; see README).
#![forbid(unsafe_code)]

pub mod server;
pub mod zmtp;
