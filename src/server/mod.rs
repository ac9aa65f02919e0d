//! I/O layer (placeholder on the `embedded` branch; the lead replaces this file on merge).
pub mod activation;
pub mod notify;
