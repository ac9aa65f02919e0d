//! Security mechanisms (ZMTP.md §5–§7).
