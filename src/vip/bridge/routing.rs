//! The router's side of the bridge (module doc of [`super`]): the server's calls for the broker
//! connection, and the hooks in routing — bindings of peers and `all_platforms` prefixes,
//! `send_platform` over the broker, exported publishes.

use super::{BridgeDown, BridgeState, Bus, BusError};
use crate::stats::{self, Stats};
use crate::time::Instant;
use crate::vip::SIGNATURE;
use crate::vip::envelope::Envelope;
use crate::vip::error::{MAX_QUOTED_MSG_ID, VipErrno, error_frames};
use crate::vip::external_pubsub::is_link_identity;
use crate::vip::peers::PeerId;
use crate::vip::router::{Outcome, Router, Sink};

impl Router {
    /// Turn the bridge on (at start): the broker at `address` (for logs and `query stats`) is
    /// dialled from the next [`Router::poll_bridge`]; local publishes on topics under an
    /// `export` prefix are published to it.
    pub fn set_bridge(&mut self, address: &str, export: Vec<Vec<u8>>) {
        self.bridge.configure(address);
        self.pubsub.set_export(export);
    }

    /// Should the server dial the broker now? Call every turn; `true` once per dial (the bridge
    /// is then connecting until [`Router::bridge_up`] or [`Router::bridge_down`]).
    pub fn poll_bridge(&mut self, now: Instant) -> bool {
        self.bridge.take_dial(now)
    }

    /// When [`Router::poll_bridge`] will next say `true` (the retry time of a down bridge).
    pub fn next_bridge_deadline(&self) -> Option<Instant> {
        self.bridge.next_deadline()
    }

    /// The broker connection was just dialled (its [`Bus`] is in `sink`): hand it every binding
    /// the router wants — the peer set and the `all_platforms` prefixes as they are now — so
    /// that it declares them with the topology.
    pub fn bridge_dialled(&mut self, stats: &mut Stats, sink: &mut impl Sink) {
        self.refresh_bridge_prefixes();
        let Router { peers, bridge, .. } = self;
        let Some(bus) = sink.bus() else { return };
        for p in peers.registered() {
            bind_peer(stats, bus, peers.identity(p), true);
        }
        count_prefix_refusals(stats, bus.set_prefixes(&bridge.prefixes));
    }

    /// The broker connection declared the topology and consumes: the bridge is up.
    pub fn bridge_up(&mut self, stats: &mut Stats) {
        self.bridge.mark_up(stats);
    }

    /// The broker connection failed to come up or closed: it is dialled again after the
    /// backoff; until then exports are dropped and RPC is answered 11.
    pub fn bridge_down(&mut self, stats: &mut Stats, now: Instant, reason: BridgeDown) {
        self.bridge.mark_down(stats, now, reason);
    }

    /// Bind (`on`) or unbind local peer `peer` (it joined or left the peer set).
    pub(crate) fn bridge_peer(&self, stats: &mut Stats, peer: PeerId, on: bool, sink: &mut impl Sink) {
        if !self.bridge.is_on() {
            return;
        }
        if let Some(bus) = sink.bus() {
            bind_peer(stats, bus, self.peers.identity(peer), on);
        }
    }

    /// After a subscription change: when the set of `all_platforms` prefixes changed, bind
    /// what is new and unbind what is gone.
    pub(crate) fn sync_bridge_prefixes(&mut self, stats: &mut Stats, sink: &mut impl Sink) {
        if !self.bridge.is_on() || !self.refresh_bridge_prefixes() {
            return;
        }
        if let Some(bus) = sink.bus() {
            count_prefix_refusals(stats, bus.set_prefixes(&self.bridge.prefixes));
        }
    }

    /// Recompute the wanted prefixes if the `all_platforms` set moved; true if it did.
    fn refresh_bridge_prefixes(&mut self) -> bool {
        let subs = self.pubsub.subscriptions();
        let generation = subs.all_generation();
        let bridge = &mut self.bridge;
        if bridge.generation == Some(generation) {
            return false;
        }
        bridge.generation = Some(generation);
        // Control path (a subscription change): one allocation per prefix is acceptable.
        let mut next: Vec<Vec<u8>> = Vec::new();
        subs.for_each_prefix(true, None, |_bus, prefix, _| {
            if !next.iter().any(|p| p.as_slice() == prefix) {
                next.push(prefix.to_vec());
            }
        });
        let changed = next != bridge.prefixes;
        bridge.prefixes = next;
        changed
    }

    /// `send_platform` from `from` to a platform no ZMTP link reaches: publish it to the broker
    /// (routing key `X.P`, mandatory), or answer VIP error 11 when it cannot be published now.
    /// `platform` is the `to_platform` value, for the error.
    pub(crate) fn bridge_send_platform(
        &self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        platform: &[u8],
        sink: &mut impl Sink,
    ) -> Outcome {
        let me = self.peers.identity(from);
        let r = match sink.bus() {
            Some(bus) if self.bridge.state() == BridgeState::Up => bus.send_rpc(me, env.msg_id, env.arg(1)),
            _ => Err(BusError::Down),
        };
        let errno = match r {
            Ok(()) => {
                stats.amqp_rpc_out += 1;
                return Outcome::Done;
            }
            Err(BusError::BadBody | BusError::TooLarge) => {
                // Not a call the broker can carry (no `args` array, `to_platform` with a `.`,
                // names over 255 bytes): as for a platform nobody can reach.
                let _ = stats::bump_and_should_log(&mut stats.amqp_rpc_unmapped);
                VipErrno::HostUnreachable
            }
            Err(e) => {
                if stats::bump_and_should_log(&mut stats.amqp_rpc_refused) {
                    log::warn!(
                        "send_platform from {} to {:?} over RabbitMQ: {}; answered 11",
                        me.escape_ascii(),
                        platform.escape_ascii().to_string(),
                        e.text()
                    );
                }
                VipErrno::Again
            }
        };
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let id = self.error_msg_id.msg_id(env.msg_id, &mut quoted);
        let f = error_frames(me, id, errno, platform, b"external_rpc");
        Router::reply(stats, sink, from, &f)
    }
}

/// Bind or unbind one peer on `bus`, counting refusals. Remote platforms' links (`instance.…`)
/// are not agents: nobody addresses them through the broker.
fn bind_peer(stats: &mut Stats, bus: &mut dyn Bus, identity: &[u8], on: bool) {
    if is_link_identity(identity) {
        return;
    }
    match bus.bind_peer(identity, on) {
        Ok(()) => {}
        Err(BusError::BindingsFull) => {
            if stats::bump_and_should_log(&mut stats.amqp_rejected_binding_full) {
                log::warn!(
                    "RabbitMQ bridge: {} not bound: amqp-max-bindings reached (remote callers get 113)",
                    identity.escape_ascii()
                );
            }
        }
        Err(_) => {
            if stats::bump_and_should_log(&mut stats.amqp_rejected_binding_name) {
                log::warn!(
                    "RabbitMQ bridge: {} not bound: not a valid routing key (an AMQP wildcard word, or too long)",
                    identity.escape_ascii()
                );
            }
        }
    }
}

/// Count the prefixes [`Bus::set_prefixes`] could not bind.
fn count_prefix_refusals(stats: &mut Stats, (full, bad): (usize, usize)) {
    if full > 0 {
        stats.amqp_rejected_binding_full += full as u64 - 1;
        if stats::bump_and_should_log(&mut stats.amqp_rejected_binding_full) {
            log::warn!("RabbitMQ bridge: {full} all_platforms prefixes not bound: amqp-max-bindings reached");
        }
    }
    if bad > 0 {
        stats.amqp_rejected_binding_name += bad as u64 - 1;
        if stats::bump_and_should_log(&mut stats.amqp_rejected_binding_name) {
            log::warn!("RabbitMQ bridge: {bad} all_platforms prefixes not bound: not valid routing keys");
        }
    }
}

/// Publish a local publish on an exported topic to the broker (after the local deliveries),
/// or drop and count it: never waits, never adds to the publisher's count.
pub(crate) fn export_publish(
    stats: &mut Stats,
    sink: &mut impl Sink,
    publisher: &[u8],
    msg_id: &[u8],
    topic: &[u8],
    body: &[u8],
) {
    let r = match sink.bus() {
        Some(bus) => bus.publish(publisher, msg_id, topic, body),
        None => Err(BusError::Down),
    };
    let counter = match r {
        Ok(()) => {
            stats.amqp_export_out += 1;
            return;
        }
        Err(BusError::Down) => &mut stats.amqp_dropped_down,
        Err(BusError::Blocked) => &mut stats.amqp_dropped_blocked,
        Err(BusError::WindowFull) => &mut stats.amqp_dropped_unconfirmed,
        Err(BusError::TxFull) => &mut stats.amqp_dropped_tx_full,
        Err(_) => &mut stats.amqp_dropped_unmapped,
    };
    if stats::bump_and_should_log(counter) {
        log::warn!(
            "RabbitMQ bridge: publish on {:?} from {} not exported: {}",
            topic.escape_ascii().to_string(),
            publisher.escape_ascii(),
            r.err().map_or("", BusError::text)
        );
    }
}

/// The frames of an error for local peer `to` (ROUTER-side view, as [`error_frames`] after
/// the recipient), from what the bridge delivered.
pub(crate) fn error_to_peer<'a>(to: &'a [u8], msg_id: &'a [u8], env: &Envelope<'a>) -> [&'a [u8]; 9] {
    [b"", SIGNATURE, to, msg_id, b"error", env.arg(0), env.arg(1), env.arg(2), env.arg(3)]
}
