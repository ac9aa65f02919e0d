//! viprouter: a VOLTTRON VIP router (skeleton; see README).
#![forbid(unsafe_code)]

pub mod json;
pub mod zmtp;
