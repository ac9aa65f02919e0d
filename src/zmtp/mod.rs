//! Sans-IO ZMTP 3.x.
pub mod mechanism;
