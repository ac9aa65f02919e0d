//! Router counters: accepted, rejected_*, dropped_*, high-water marks (DESIGN.md §2.3 naming).
//!
//! One [`Stats`] lives in the server, which lends it to the router for each message. Every limit hit, refusal and drop increments a counter
//! here; [`bump_and_should_log`] also says whether this occurrence should be logged (the first, then
//! the 10th, 100th, … — "logged once" without letting a hostile peer flood the journal).
//! The whole structure is answered as a JSON object to `query stats` and logged on SIGUSR1.
//! A few members are gauges (`connections`, `peers`, `buffer_bytes`, `uptime_ms`): the state
//! now, not a count.
//!
//! [`PeerTraffic`] counts messages per peer (in from it, out to it) in a table sized once for
//! `max-connections`, indexed by the peer's slot: the top talkers of `query stats`.

use core::fmt::{self, Write};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// All counters of one router instance.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Stats {
            /// Write the counters as the members of a JSON object (`"name": n, ...`, no braces)
            /// without allocating; the `query stats` reply wraps them with the pubsub fields.
            ///
            /// # Errors
            /// Only the writer's own error (e.g. a fixed buffer that is too small).
            pub fn write_fields(&self, w: &mut impl Write) -> fmt::Result {
                let mut first = true;
                $(
                    if !first { w.write_str(", ")?; }
                    first = false;
                    write!(w, "\"{}\": {}", stringify!($name), self.$name)?;
                )*
                let _ = first;
                Ok(())
            }

            /// Write the counters as one JSON object (`{"name": n, ...}`) without allocating.
            ///
            /// # Errors
            /// Only the writer's own error.
            pub fn write_json(&self, w: &mut impl Write) -> fmt::Result {
                w.write_char('{')?;
                self.write_fields(w)?;
                w.write_char('}')
            }
        }
    };
}

counters! {
    /// Connections accepted.
    accepted,
    /// Connections closed, for any reason.
    closed,
    /// Handshakes completed (peer attached or ignored as a duplicate).
    handshakes_completed,
    /// Connections refused because every slot was in use.
    rejected_conn_full,
    /// Unfinished handshakes closed to make room for new connections.
    rejected_handshake_evicted,
    /// Handshakes that did not finish in time.
    rejected_handshake_timeout,
    /// Greetings that were not ZMTP 3.x (bad signature, version 1.0/2.0).
    rejected_greeting,
    /// Greetings announcing another security mechanism than the endpoint's.
    rejected_mechanism,
    /// Handshakes that failed (bad READY, wrong socket type, bad metadata, ERROR received,
    /// CURVE box or cookie errors).
    rejected_handshake,
    /// Peers refused by the authorisation decision (auth.json), answered ERROR 400.
    rejected_auth,
    /// Frames whose declared size was over the frame or command limit.
    rejected_frame_too_large,
    /// Messages over the message-size limit.
    rejected_msg_too_large,
    /// Messages with more frames than the limit.
    rejected_too_many_parts,
    /// Other ZMTP protocol errors after the handshake (connection closed).
    rejected_protocol,
    /// Connections whose identity was already attached to a live connection (first wins).
    rejected_duplicate_identity,
    /// Messages read from a connection whose identity is held by another connection.
    dropped_duplicate_identity,
    /// Connections closed by the peer or by an I/O error.
    closed_by_peer,
    /// Messages read from peers (complete multipart messages).
    msgs_in,
    /// Messages queued to peers.
    msgs_out,
    /// Bytes read from sockets.
    bytes_in,
    /// Bytes written to sockets.
    bytes_out,
    /// Peer-to-peer messages forwarded.
    routed,
    /// Router probes (2-frame messages with an empty body).
    unroutable_probe,
    /// Messages with fewer than 6 frames (router-side view): dropped silently.
    unroutable_too_few_frames,
    /// Messages whose protocol frame was not `VIP1`: dropped silently.
    unroutable_bad_signature,
    /// Error 113 replies (unknown recipient).
    errors_unreachable,
    /// Error 11 replies (recipient's queue full past the stall time).
    errors_again,
    /// Error 93 replies (unknown router subsystem).
    errors_unsupported,
    /// Replies or errors that could not be queued to their requester (its queue was full).
    dropped_reply_full,
    /// `peerlist` notifications a registered peer never got: its queue stayed full until the
    /// notification ring wrapped over them, or was full when it left the peer set (and our
    /// `external_list` to a link whose queue was full: sent again later).
    dropped_notify_full,
    /// Bytes still queued to a connection when it closed (the peer left without reading them,
    /// or the router stopped before they could be written): accepted messages that were lost.
    lost_queued_bytes,
    /// Times a sender was paused behind a full recipient.
    paused_sender,
    /// Times a connection paused because the buffer budget was exhausted.
    paused_budget,
    /// Buffer growths refused by the buffer budget.
    dropped_budget,
    /// Peers registered (VIP peer set joins).
    peers_added,
    /// Peers removed (agentstop or disconnect).
    peers_dropped,
    /// High-water mark of simultaneous connections.
    connections_hwm,
    /// High-water mark of the buffer bytes in use.
    buffer_bytes_hwm,
    /// Buffer bytes in use now.
    buffer_bytes,
    /// Publishes handled by the pubsub service.
    pubsub_publishes,
    /// Pubsub deliveries queued.
    pubsub_deliveries,
    /// Pubsub deliveries dropped because the subscriber's queue was full (not in the count).
    dropped_slow_subscriber,
    /// Pubsub deliveries dropped because the buffer budget could not hold them (the
    /// subscriber's queue had room; not in the count).
    dropped_subscriber_budget,
    /// Pubsub deliveries to NULL/PLAIN subscribers queued as a reference to the one shared
    /// encoding (`limits::SHARED_CHUNKS`), not a copy.
    fanout_shared,
    /// Such deliveries copied into the subscriber's queue instead: the shared pool had no room,
    /// the delivery was larger than a chunk, or the queue held `TX_SHARED_REFS` references.
    fanout_copied,
    /// Subscribes refused because a subscription limit was reached.
    rejected_subscription_full,
    /// Publishes refused by the protected-topic check.
    rejected_protected_topic,
    /// Subscriptions refused by the protected-topic check (modular `authz.json`): subscribes
    /// answered -32001, and `synchronize` requests with prefixes left out (once per request).
    rejected_protected_subscribe,
    /// Pubsub requests with malformed bodies (answered with the non-crashing reply).
    pubsub_malformed,
    /// Subscribes refused because the peer holds `max-subs-per-peer` subscriptions.
    rejected_subscription_peer_limit,
    /// Publishes dropped because the delivery body would exceed the message-size limit.
    rejected_publish_too_large,
    /// Pubsub operations ignored: unknown, or multi-platform (`external_*`).
    pubsub_unknown_op,
    /// `auth_update`/`protected_update` ignored: not from `platform.auth`, or unusable content.
    rejected_policy_update,
    /// `accept` failures that leave connections in the backlog (out of file descriptors or
    /// kernel memory); the listener is retried on every tick until they clear.
    accept_errors,
    /// `external_rpc` requests dropped: a body that is not a JSON object, a `send_peer` from a
    /// peer that is not a link, or to a local peer whose queue is full (VIP.md §11.6).
    external_rpc_dropped,
    /// Authorisation files not (re)loaded because they were broken (`auth.json` on a reload; in
    /// a modular home `authz.json` or a credential file): the previous rules stayed in force.
    config_load_errors,
    /// Links that came up (handshake done), all links together (VIP.md §11.3; per link in
    /// `"links"` of `query stats`).
    link_ups,
    /// Links that went down or failed to connect.
    link_downs,
    /// Link handshakes the remote refused (CURVE: no auth.json entry for our platform key there).
    link_refused,
    /// Discovery entries not linked because the link table was full (`max-links`).
    rejected_link_table_full,
    /// Messages that arrived on a link from the remote router (replies, peerlist): dropped, as
    /// VOLTTRON does.
    link_msgs_in,
    /// `external_publish` messages queued on links.
    external_publish_out,
    /// External publishes not sent because the link was down (not counted for the publisher).
    external_publish_dropped_down,
    /// External publishes not sent because the link's queue was full (not counted for the
    /// publisher).
    external_publish_dropped_full,
    /// `external_publish` messages received from links.
    external_publish_in,
    /// Received external publishes refused by the protected-topic check.
    rejected_external_protected,
    /// `external_rpc send_peer` messages queued on links.
    external_rpc_out,
    /// `external_rpc send_peer` messages received from links and delivered.
    external_rpc_in,
    /// `send_platform` answered error 113: unknown platform, or its link is down.
    external_rpc_unreachable,
    /// `external_list`, `external_publish`, `external_rpc` or `routing_table` bodies that are
    /// malformed (answered with the non-crashing reply or dropped).
    external_malformed,
    /// `external_list`/`external_publish`/`send_peer` from a peer that is not a link (its identity
    /// does not start with `instance.`): ignored.
    rejected_external_not_link,
    /// `external_list` entries and `routing_table hello`s naming a platform we have no link to
    /// (an `instance-name` mismatch): ignored.
    external_list_unknown_platform,
    /// Remote subscription prefixes left out: over the per-link capacity.
    rejected_external_prefixes,
    /// `routing_table` requests ignored: `update`, setup mode, `web-addresses`, unknown
    /// operations, missing bodies, and `normalmode_platform_connection` not from `keydiscovery`.
    routing_table_ignored,
    /// RabbitMQ bridge (issue #15; `"rabbitmq"` in `query stats` has its state): connections
    /// that came up (topology declared, consumer running).
    amqp_ups,
    /// Bridge connections that failed to come up or closed (each is dialled again after a
    /// backoff).
    amqp_downs,
    /// Bridge connections closed because the broker sent malformed input or broke the protocol
    /// (we closed with its reply code), a TLS failure, or input past the receive buffer's cap
    /// (a frame or content larger than any message, a delivery padded with empty body frames).
    amqp_protocol_errors,
    /// `connection.blocked` (or `channel.flow` off) from the broker: publishing paused.
    amqp_blocked,
    /// Outbound RPC (`send_platform` without a ZMTP link) published to the broker.
    amqp_rpc_out,
    /// `send_platform` answered VIP error 11: the bridge was down, blocked, or its unconfirmed
    /// window or transmit buffer full.
    amqp_rpc_refused,
    /// `send_platform` answered VIP error 113: the call cannot be carried by the broker (no
    /// `args` array, a `to_platform` with `.`, a name over 255 bytes).
    amqp_rpc_unmapped,
    /// Outbound RPC returned by the broker (nobody bound `X.P`): answered VIP error 113.
    amqp_rpc_returned,
    /// Exported publishes (`rabbitmq-export`) published to the broker.
    amqp_export_out,
    /// Exported publishes dropped: the bridge was down.
    amqp_dropped_down,
    /// Exported publishes dropped: the broker blocked publishing.
    amqp_dropped_blocked,
    /// Exported publishes dropped: `amqp-unconfirmed` publishes awaited the broker's confirm.
    amqp_dropped_unconfirmed,
    /// Exported publishes dropped: `amqp-tx-bytes` waited for the broker's socket.
    amqp_dropped_tx_full,
    /// Exported publishes dropped: topic or publisher too long for a routing key or `app_id`.
    amqp_dropped_unmapped,
    /// Publishes (RPC and exports) unconfirmed when their connection ended: their fate is unknown.
    amqp_unconfirmed_lost,
    /// Publishes the broker refused (`basic.nack`).
    amqp_nacked,
    /// RPC requests and responses from the broker delivered to local peers.
    amqp_rpc_in,
    /// Publishes from other instances received from the broker (delivered to local subscribers;
    /// deliveries count in `pubsub_deliveries`).
    amqp_publish_in,
    /// Errors from the broker (returned RPC, VOLTTRON routers' `error`) delivered to local peers.
    amqp_errors_in,
    /// Deliveries from the broker that map to nothing (no or unknown `type`, malformed body or
    /// properties, a routing key of another instance): acknowledged and dropped.
    amqp_dropped_in,
    /// Our own exported publishes coming back through one of our bindings (RabbitMQ ignores
    /// `no_local`): acknowledged and dropped.
    amqp_self_echo,
    /// Deliveries over `max-msg-bytes`: skipped without buffering, acknowledged and dropped.
    amqp_dropped_too_large,
    /// RPC from the broker for a local peer that is gone or whose queue is full (and errors for
    /// such a peer): dropped; the remote caller times out, as in VOLTTRON.
    amqp_rpc_undeliverable,
    /// Peers or `all_platforms` prefixes not bound: `amqp-max-bindings` reached.
    amqp_rejected_binding_full,
    /// Peers or `all_platforms` prefixes not bound: not a valid routing key (a `*` or `#` word,
    /// longer than an AMQP short string).
    amqp_rejected_binding_name,
    /// Admission reports queued to `platform.auth` (`--auth-reports`, `server::auth_report`).
    auth_reports_sent,
    /// Admission reports dropped: over the per-second rate or the waiting-queue size.
    dropped_auth_report,
    /// Peers that auth.json refuses, admitted because the router runs with `--setup-mode`.
    admitted_setup_mode,
    /// Connections open now (a gauge: set at every accept, dial and close).
    connections,
    /// Peers in the VIP peer set now (a gauge: set at every join and leave).
    peers,
    /// Milliseconds since the router started (a gauge: the time of the current loop turn).
    uptime_ms,
    /// Publishes the router made itself (`[viprouter] stats-topic`: its own counters).
    router_publishes,
}

/// Messages from and to one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages read from the peer and handled (routed, answered or dropped by the router).
    pub msgs_in: u64,
    /// Messages queued to the peer (forwarded, replies, notifications, pubsub deliveries).
    pub msgs_out: u64,
}

/// [`Traffic`] of every peer, indexed by its connection slot (`vip::peers::PeerId`'s index):
/// allocated once for `max-connections` peers, counted without allocating; a slot's counts
/// start again at 0 when its connection closes ([`PeerTraffic::reset`]).
#[derive(Clone, Debug, Default)]
pub struct PeerTraffic {
    peers: Box<[Traffic]>,
}

impl PeerTraffic {
    /// A table for `max_peers` slots, all zero.
    pub fn new(max_peers: usize) -> Self {
        PeerTraffic { peers: vec![Traffic::default(); max_peers].into_boxed_slice() }
    }

    /// Bytes [`PeerTraffic::new`] allocates for `max_peers` (the memory ceiling).
    pub fn table_bytes(max_peers: usize) -> usize {
        max_peers.saturating_mul(core::mem::size_of::<Traffic>())
    }

    /// One message read from slot `index`.
    #[inline]
    pub fn count_in(&mut self, index: u16) {
        if let Some(t) = self.peers.get_mut(usize::from(index)) {
            t.msgs_in += 1;
        }
    }

    /// One message queued to slot `index`.
    #[inline]
    pub fn count_out(&mut self, index: u16) {
        if let Some(t) = self.peers.get_mut(usize::from(index)) {
            t.msgs_out += 1;
        }
    }

    /// The counts of slot `index` (zero outside the table).
    pub fn get(&self, index: u16) -> Traffic {
        self.peers.get(usize::from(index)).copied().unwrap_or_default()
    }

    /// Slot `index` was freed: its next connection starts from zero.
    pub fn reset(&mut self, index: u16) {
        if let Some(t) = self.peers.get_mut(usize::from(index)) {
            *t = Traffic::default();
        }
    }
}

/// Increment `counter` and say whether this occurrence should be logged: the 1st, 10th,
/// 100th, … occurrence.
#[must_use]
pub fn bump_and_should_log(counter: &mut u64) -> bool {
    *counter = counter.saturating_add(1);
    is_log_point(*counter)
}

/// Is `n` a count worth a log line: 1, 10, 100, …?
#[must_use]
pub fn is_log_point(mut n: u64) -> bool {
    if n == 0 {
        return false;
    }
    while n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_logs_first_and_powers_of_ten() {
        let mut c = 0;
        let logged: Vec<u64> = (1..=1000u64).filter(|_| bump_and_should_log(&mut c)).collect();
        assert_eq!(logged, vec![1, 10, 100, 1000]);
    }

    use crate::json::SliceWriter;

    #[test]
    fn json_is_an_object_with_every_counter() {
        let s = Stats { accepted: 3, ..Stats::default() };
        let mut buf = [0u8; 4096];
        let mut w = SliceWriter::new(&mut buf);
        s.write_json(&mut w).unwrap();
        let text = core::str::from_utf8(w.written()).unwrap();
        assert!(text.starts_with("{\"accepted\": 3, \"closed\": 0"));
        assert!(text.ends_with('}'));
        assert!(text.contains("\"dropped_slow_subscriber\": 0"));
    }

    #[test]
    fn peer_traffic_counts_per_slot_and_ignores_out_of_range() {
        let mut t = PeerTraffic::new(4);
        t.count_in(1);
        t.count_in(1);
        t.count_out(1);
        t.count_out(3);
        t.count_in(4); // outside the table: ignored, no panic
        assert_eq!(t.get(1), Traffic { msgs_in: 2, msgs_out: 1 });
        assert_eq!(t.get(3), Traffic { msgs_in: 0, msgs_out: 1 });
        assert_eq!(t.get(4), Traffic::default());
        t.reset(1);
        assert_eq!(t.get(1), Traffic::default());
        assert_eq!(PeerTraffic::table_bytes(4), 64);
    }

    #[test]
    fn fixed_writer_refuses_overflow() {
        let mut buf = [0u8; 4];
        let mut w = SliceWriter::new(&mut buf);
        assert!(w.write_str("12345").is_err());
        assert!(w.write_str("1234").is_ok());
    }
}
