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

/// What the RabbitMQ bridge (`rabbitmq-url`) holds outside the buffer budget, term by term, for
/// `limits`: each an upper bound on resident bytes, reached as its owner says. The broker
/// connection's receive buffer and transmit queue are connection buffers, inside the budget.
#[cfg(feature = "rabbitmq")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeBytes {
    /// The AMQP client's transmit buffer: `amqp-tx-bytes` of publishes, or one publish of up to
    /// `max-msg-bytes` admitted into an empty buffer, and the control frames behind them
    /// ([`crate::amqp::client::Client::tx_buffer_bytes`]).
    pub transmit: usize,
    /// The binding table: `amqp-max-bindings` entries with their keys
    /// ([`crate::amqp::bindings::Bindings::table_bytes`]).
    pub bindings: usize,
    /// The `all_platforms` prefixes the router hands the bridge and their binding keys: at most
    /// one each per subscription, twice while they change
    /// ([`crate::vip::bridge::Bridge::prefix_bytes`],
    /// [`crate::server::broker::BrokerProtocol::prefix_key_bytes`]).
    pub prefixes: usize,
    /// The publisher-confirm ring ([`crate::amqp::confirm::Window::table_bytes`]).
    pub confirm: usize,
    /// The largest delivery's contiguous copy and the VIP message it is mapped to, kept at
    /// their largest ([`crate::server::broker::BrokerProtocol::delivery_bytes`]).
    pub delivery: usize,
    /// With `amqps`: the decrypted bytes of one delivery and rustls' buffers
    /// (`BrokerProtocol::tls_bytes`); 0 in a build without `rabbitmq-tls`.
    pub tls: usize,
}

#[cfg(feature = "rabbitmq")]
impl BridgeBytes {
    /// The sum of the terms, TLS included when `tls` (an `amqps` URL).
    pub fn total(&self, tls: bool) -> usize {
        self.transmit
            .saturating_add(self.bindings)
            .saturating_add(self.prefixes)
            .saturating_add(self.confirm)
            .saturating_add(self.delivery)
            .saturating_add(if tls { self.tls } else { 0 })
    }
}

/// The bridge's terms for `limits` (see [`BridgeBytes`]).
#[cfg(feature = "rabbitmq")]
pub fn bridge_terms(limits: &Limits) -> BridgeBytes {
    use super::broker::BrokerProtocol;
    use crate::amqp::bindings::Bindings;
    use crate::amqp::client::Client;
    use crate::amqp::confirm::Window;
    use crate::vip::bridge::Bridge;
    #[cfg(feature = "rabbitmq-tls")]
    let tls = BrokerProtocol::tls_bytes(limits);
    #[cfg(not(feature = "rabbitmq-tls"))]
    let tls = 0;
    BridgeBytes {
        transmit: Client::tx_buffer_bytes(limits),
        bindings: Bindings::table_bytes(limits.amqp_max_bindings),
        prefixes: Bridge::prefix_bytes(limits).saturating_add(BrokerProtocol::prefix_key_bytes(limits)),
        confirm: Window::table_bytes(),
        delivery: BrokerProtocol::delivery_bytes(limits),
        tls,
    }
}

/// The resident bound of the RabbitMQ bridge outside the buffer budget for `limits` (`tls`: an
/// `amqps` URL): what a router with `rabbitmq-url` may hold above [`memory_ceiling_bytes`].
#[cfg(feature = "rabbitmq")]
pub fn bridge_bytes(limits: &Limits, tls: bool) -> usize {
    bridge_terms(limits).total(tls)
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

    #[cfg(feature = "rabbitmq")]
    #[test]
    fn the_bridge_bound_is_the_sum_of_its_terms_and_scales_with_the_limits() {
        const MIB: usize = 1024 * 1024;
        let l = Limits::COMPILED;
        let t = bridge_terms(&l);
        let sum = t.transmit + t.bindings + t.prefixes + t.confirm + t.delivery;
        assert_eq!(bridge_bytes(&l, false), sum);
        assert_eq!(bridge_bytes(&l, true), sum + t.tls);
        assert!(t.tls > 0 || !cfg!(feature = "rabbitmq-tls"));
        for (what, lower) in [
            ("amqp-max-bindings", Limits { amqp_max_bindings: 16, ..Limits::COMPILED }),
            ("max-msg-bytes", Limits { max_msg_bytes: 1 << 20, ..Limits::COMPILED }),
            ("max-subscriptions", Limits { max_subscriptions: 16, ..Limits::COMPILED }),
        ] {
            assert!(bridge_bytes(&lower, true) < bridge_bytes(&l, true), "{what} lowers the bound");
        }
        // The transmit buffer: amqp-tx-bytes once it is above one largest publish.
        let small = Limits { max_msg_bytes: 1 << 20, ..Limits::COMPILED };
        let tx = |amqp_tx_bytes| bridge_terms(&Limits { amqp_tx_bytes, ..small.clone() }).transmit;
        assert!(tx(2 << 20) > tx(1 << 20));
        // The compiled limits: a 16 MiB message in the transmit buffer, and as a delivery copied
        // and mapped to an RPC of 6 times its size; with TLS its decrypted bytes once more.
        assert_eq!(t.confirm, 128);
        assert!((16 * MIB..17 * MIB).contains(&t.transmit), "{t:?}");
        assert!((2 * MIB..3 * MIB).contains(&t.bindings), "{t:?}");
        assert!((110 * MIB..111 * MIB).contains(&t.delivery), "{t:?}");
        let (plain, tls) = (bridge_bytes(&l, false), bridge_bytes(&l, true));
        assert!((150 * MIB..175 * MIB).contains(&plain), "{} MiB: {t:?}", plain / MIB);
        assert!(tls - plain < 17 * MIB || !cfg!(feature = "rabbitmq-tls"), "{t:?}");
    }
}
