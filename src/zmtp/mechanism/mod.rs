//! Security mechanisms (ZMTP.md §5–§7).
pub mod curve;
