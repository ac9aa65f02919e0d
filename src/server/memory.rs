//! The memory ceiling of a router for its limits (`--print-limits`, the start-up line): the
//! buffer budget plus the fixed tables allocated at start-up, each table reporting its own cost.
//! Summed here, where every table is known, so that `limits.rs` stays a leaf.

use super::conn::slots::Slots;
use super::event_loop::Broadcasts;
use crate::limits::Limits;
use crate::stats::PeerTraffic;
use crate::vip::links::Links;
use crate::vip::peers::PeerTable;
use crate::vip::pubsub::PubSub;

/// Bytes of the fixed tables allocated at start-up for `limits` (an upper bound: pages that are
/// never touched cost no resident memory): connection slots with their per-connection state,
/// the peer table, the subscription index, the link table, the ring of `peerlist` notifications,
/// the per-peer message counts.
pub fn fixed_table_bytes(limits: &Limits) -> usize {
    let n = limits.max_connections;
    Slots::table_bytes(n)
        .saturating_add(PeerTable::table_bytes(n))
        .saturating_add(PubSub::table_bytes(limits))
        .saturating_add(Links::memory_bytes(limits.max_links))
        .saturating_add(Broadcasts::table_bytes(n))
        .saturating_add(PeerTraffic::table_bytes(n))
}

/// The memory ceiling of the whole router for `limits`: the buffer budget plus the fixed tables.
pub fn memory_ceiling_bytes(limits: &Limits) -> usize {
    limits.buffer_budget_bytes.saturating_add(fixed_table_bytes(limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_budget_plus_every_table() {
        let l = Limits::COMPILED;
        assert!(memory_ceiling_bytes(&l) > l.buffer_budget_bytes);
        let small = Limits { max_connections: 16, max_subscriptions: 16, ..Limits::COMPILED };
        assert!(fixed_table_bytes(&small) < fixed_table_bytes(&l), "the tables scale with the limits");
    }
}
