//! The capacity of a subscription table, fixed at construction ([`SubscriptionLimits`], its
//! memory cost), and what happens at a limit: [`LimitsError`] (limits refused by
//! [`Subscriptions::new`](super::Subscriptions::new)) and [`SubscribeError`] (an entry refused;
//! the table is unchanged) — DESIGN.md §2.5: reject, never evict.

use core::fmt;

use super::table::{KeySlot, SubSlot, index_len};

/// Capacity limits, fixed at construction (normally from `limits.rs` / config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionLimits {
    /// Total entries `(peer, bus, prefix, platform)` in the table (`MAX_SUBSCRIPTIONS`).
    pub max_subscriptions: usize,
    /// Entries one peer may hold (`MAX_SUBS_PER_PEER`).
    pub max_per_peer: usize,
    /// Longest prefix in bytes (`MAX_PREFIX_BYTES`); at most 65535.
    pub max_prefix_bytes: usize,
    /// Longest bus name in bytes; at most 65535.
    pub max_bus_bytes: usize,
    /// Peer indices accepted are `0..max_peers` (`MAX_PEERS`); at most 65536.
    pub max_peers: usize,
}

impl SubscriptionLimits {
    /// Bytes [`Subscriptions::new`](super::Subscriptions::new) allocates for these limits, or
    /// `None` if that overflows.
    pub fn memory_bytes(&self) -> Option<usize> {
        let n = self.max_subscriptions;
        let stride = self.max_bus_bytes.checked_add(self.max_prefix_bytes)?;
        let keys = n.checked_mul(stride.checked_add(size_of::<KeySlot>())?)?;
        let subs = n.checked_mul(size_of::<SubSlot>())?;
        let index = index_len(n)?.checked_mul(size_of::<u64>())?;
        let lens = self.max_prefix_bytes.checked_add(1)?.checked_mul(4)?;
        let peers = self.max_peers.checked_mul(12)?;
        keys.checked_add(subs)?.checked_add(index)?.checked_add(lens)?.checked_add(peers)
    }
}

/// Why [`Subscriptions::new`](super::Subscriptions::new) refused a set of limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsError {
    /// `max_subscriptions` above
    /// [`MAX_SUPPORTED_SUBSCRIPTIONS`](super::MAX_SUPPORTED_SUBSCRIPTIONS).
    TooManySubscriptions,
    /// `max_peers` above 65536 (peer indices are `u16`).
    TooManyPeers,
    /// `max_prefix_bytes` or `max_bus_bytes` above 65535.
    NameTooLong,
    /// The memory size overflows `usize`.
    TooLarge,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooManySubscriptions => "max_subscriptions too large",
            Self::TooManyPeers => "max_peers above 65536",
            Self::NameTooLong => "max_prefix_bytes or max_bus_bytes above 65535",
            Self::TooLarge => "subscription table size overflows",
        })
    }
}

impl std::error::Error for LimitsError {}

/// Why an entry was not added. The table is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// `peer ≥ max_peers`.
    PeerOutOfRange,
    /// The bus is longer than `max_bus_bytes`.
    BusTooLong,
    /// The prefix is longer than `max_prefix_bytes`.
    PrefixTooLong,
    /// The peer already holds `max_per_peer` entries.
    PeerLimit,
    /// The table holds `max_subscriptions` entries.
    TableFull,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PeerOutOfRange => "peer index out of range",
            Self::BusTooLong => "bus name too long",
            Self::PrefixTooLong => "subscription prefix too long",
            Self::PeerLimit => "too many subscriptions for this peer",
            Self::TableFull => "subscription table full",
        })
    }
}

impl std::error::Error for SubscribeError {}
