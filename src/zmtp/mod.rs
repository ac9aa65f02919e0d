//! Sans-IO ZMTP 3.x.
pub mod mechanism;
pub mod z85;
