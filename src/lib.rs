//! viprouter: a small, fast VOLTTRON VIP router (skeleton while the layers land; see README).
#![forbid(unsafe_code)]

pub mod json;
pub mod limits;
pub mod stats;
pub mod time;
pub mod zmtp;
pub mod vip;
pub mod server;
pub mod config;
pub mod bench;
