//! Every capacity limit of viprouter, in one place (DESIGN.md §2.5).
//!
//! Each `MAX_*`/`*_BYTES`/`*_MS` constant is the **compiled ceiling**. The configuration file
//! (`[viprouter]` section, see README) may *lower* a limit, never raise it
//! ([`LimitError::ExceedsCompiledCapacity`]). The effective values live in [`Limits`], built
//! once at start-up and passed by reference to every layer; nothing in the router grows past
//! them.
//!
//! Memory model. Fixed tables (connection slots, the peer table, the subscription index) are
//! allocated once at start-up from these limits. Per-connection receive and transmit buffers
//! start small on accept (`RX_BUF_MIN_BYTES`, `TX_BUF_MIN_BYTES`) and may grow — a one-time
//! warm-up allocation for a busy or large-message peer — but only while the process-wide
//! **buffer budget** (`BUFFER_BUDGET_BYTES`) has room. Buffers shrink back only after
//! `IDLE_SHRINK_MS` without traffic, so the steady state allocates nothing
//! (`tests/no_alloc.rs`). The total memory ceiling printed by `--print-limits` is the budget
//! plus the fixed tables, summed where the tables are known (`server::memory`): this module is
//! a leaf and knows none of them.
//!
//! The configurable limits are one table, [`SPECS`]: name, unit, what happens at the limit,
//! smallest workable value, and the field of [`Limits`] it sets. Lowering, printing and the
//! README table all read it.
//!
//! What happens when each limit is hit is part of the constant's doc; every such event is
//! counted in [`crate::stats::Stats`] and logged on its first occurrence (then at 10, 100, …).

use core::fmt;

/// Connections (accepted sockets in any state). Cost: one 16-byte slot each at start-up plus
/// the connection state on accept. **At the limit** a new connection is accepted and closed at
/// once (the peer sees a close, not a hang in the backlog); `rejected_conn_full`.
pub const MAX_CONNECTIONS: usize = 4096;

/// Half-open connections: still in the greeting/security handshake with our side of it not
/// done. A NULL connection whose READY the router has sent is not half-open (its peer may
/// already have sent its first messages; it is bounded by `max-connections` and
/// `handshake-timeout-ms` instead: `server::conn::Phase::AwaitingPeer`). **At the
/// limit** the half-open connection with the least progress (no greeting byte, then a partial
/// greeting, then a mechanism handshake under way), the oldest among equals, is closed to make
/// room (unauthenticated peers cannot starve authenticated ones of slots);
/// `rejected_handshake_evicted`. The limit in force is never more than half of
/// `max-connections` ([`Limits::handshake_cap`]), so half-open connections can never fill every
/// slot. The default, half of `MAX_CONNECTIONS`, lets a platform of up to 2048 agents
/// reconnect all at once (a router restart) without a single eviction; a larger storm is let
/// in in waves (an evicted libzmq peer reconnects after its reconnect interval and loses
/// nothing: it sends no message before the handshake completes). Cost: the buffers of each
/// (`RX_BUF_MIN_BYTES + TX_BUF_MIN_BYTES`), within the buffer budget.
pub const MAX_HANDSHAKES: usize = MAX_CONNECTIONS / 2;

/// Time allowed from accept until the handshake completes (libzmq `ZMQ_HANDSHAKE_IVL` is
/// 30 s). **At the limit** the connection is closed without an ERROR (a transient condition:
/// libzmq clients reconnect); `rejected_handshake_timeout`.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;

/// Routing-identity bytes (ZMTP `Identity` property, RFC 23: 0..255). Protocol limit; a
/// longer READY identity cannot be encoded on the wire at all (one length byte).
pub const MAX_IDENTITY_BYTES: usize = 255;

/// Bytes of one data frame. Checked against the declared size **at the frame header, in
/// u64, before any byte of the body is buffered**. **At the limit** the connection is closed
/// (libzmq `ZMQ_MAXMSGSIZE` semantics); `rejected_frame_too_large`.
pub const MAX_FRAME_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of one multipart message (sum of its frames). Checked at each frame header as the
/// message is assembled. **At the limit** the connection is closed; `rejected_msg_too_large`.
pub const MAX_MSG_BYTES: u64 = 16 * 1024 * 1024;

/// Frames of one multipart message. VIP messages have 5–10. **At the limit** the connection
/// is closed; `rejected_too_many_parts`.
pub const MAX_MSG_PARTS: usize = 64;

/// Bytes of one command frame after the handshake (PING, PONG, SUBSCRIBE, ...). Larger
/// commands close the connection; `rejected_frame_too_large`.
pub const MAX_COMMAND_BYTES: u64 = 4096;

/// Bytes of one frame during the greeting/handshake, before the peer is authenticated (READY
/// metadata, CURVE INITIATE). Larger: the handshake fails and the connection is closed.
pub const MAX_HANDSHAKE_FRAME_BYTES: u64 = 8192;

/// Initial receive-buffer bytes per connection, taken on accept.
pub const RX_BUF_MIN_BYTES: usize = 4096;

/// Largest receive buffer per connection: one whole message plus its frame headers and a
/// read's worth of the next. A message is routed only once it is complete in this buffer.
pub const RX_BUF_MAX_BYTES: usize = MAX_MSG_BYTES as usize + MAX_MSG_PARTS * 9 + 64 * 1024;

/// Receive-buffer bytes a busy connection grows to (its reads keep filling the buffer):
/// fewer, larger reads. A one-time warm-up allocation per busy connection.
pub const RX_BUF_BUSY_BYTES: usize = 64 * 1024;

/// Initial transmit-buffer bytes per connection, taken on accept.
pub const TX_BUF_MIN_BYTES: usize = 4096;

/// Queued transmit bytes per peer (the router's high-water mark; VOLTTRON uses 6000
/// messages). A message is admitted when it fits under this mark, or — a message too large to
/// fit, up to `max-msg-bytes` — when the queue is at most half full (so it reaches an idle or
/// draining peer; `server::event_loop::sink`). **At the limit**: a routed message pauses its
/// sender until the queue drains below half (at most `SEND_STALL_MS`, then error 11 to the
/// sender, as VOLTTRON's `_send` does); router notifications to that peer wait in their ring
/// (`BROADCAST_ENTRY_BYTES`); a pubsub delivery is dropped for that subscriber only
/// (`dropped_slow_subscriber`) and left out of the publisher's count.
pub const TX_QUEUE_BYTES: usize = 1024 * 1024;

/// Process-wide bytes for all receive and transmit buffers together. **At the limit** a
/// buffer that needs to grow does not: the receiving connection pauses until the growth it
/// needs fits (a message that could not fit even if every other connection closed — a
/// `buffer-budget-bytes` lowered below `max-msg-bytes` — is closed as too large instead), a
/// transmit queue that would have to grow counts as full — a routed message (or a reply) waits
/// until the growth fits, at most `SEND_STALL_MS` for a routed message (then error 11 to its
/// sender), and a pubsub delivery is dropped for that subscriber (`dropped_subscriber_budget`,
/// left out of the count) — and a new connection that cannot get its initial buffers is
/// refused like `MAX_CONNECTIONS`; `dropped_budget` / `paused_budget`.
pub const BUFFER_BUDGET_BYTES: usize = 128 * 1024 * 1024;

/// How long a sender may stay paused behind a full recipient before its message is answered
/// with VIP error 11 (EAGAIN) instead. A peer paused behind its *own* full queue (it asked the
/// router something and does not read the answers) stays paused: TCP pushes back on it.
pub const SEND_STALL_MS: u64 = 2_000;

/// Bytes read from one connection per event-loop turn before others get their turn
/// (fairness; the connection goes on a ready list and continues next turn).
pub const READ_BUDGET_BYTES: usize = 256 * 1024;

/// A connection idle this long (nothing queued, nothing buffered) gives its buffers back to the
/// budget, whole (its next read or message allocates `RX_BUF_MIN_BYTES`/`TX_BUF_MIN_BYTES`
/// again). A burst of `peerlist`
/// notifications on a 1000-peer start, for instance, leaves no lasting cost.
pub const IDLE_SHRINK_MS: u64 = 5_000;

/// Bytes of one entry of the `peerlist` notification ring (`server::event_loop::broadcast`),
/// which holds `max-connections` entries, allocated at start-up (zeroed: resident only once
/// used). A notification is 7 frames, the largest (an identity of 255 bytes) 1 + 7×2 + 4 + 8 +
/// 4 + 255 = 286 bytes. **At the limit** (the ring wraps over an entry a registered peer has not
/// received yet, because its queue stayed full): that peer loses it; `dropped_notify_full`.
pub const BROADCAST_ENTRY_BYTES: usize = 320;

/// `peerlist` notifications written into peers' queues per event-loop turn at most, after a
/// turn without input (the rest follow in the next turns, which poll without waiting) ...
pub const BROADCAST_BUDGET: usize = 4096;

/// ... and during a storm of connections (several notifications pending, and handshakes under
/// way or agents registering within the last `BROADCAST_QUIET_MS`) once the oldest
/// notification not yet written has waited `BROADCAST_DEFER_MS` or half the ring is unwritten
/// (before that, none): the storm's
/// handshakes and welcomes go first — 1000 CURVE agents reconnecting at once cost the router
/// 1.0 s of CPU until the last welcome when the notifications went along, 0.2 s when they
/// waited, and the agents less than half — yet a router that is never quiet still writes them
/// (each peer gets its own at the latest before anything else is queued to it).
pub const BROADCAST_BUDGET_BUSY: usize = 256;

/// A storm is over when no agent has registered for this long (see `BROADCAST_BUDGET_BUSY`).
pub const BROADCAST_QUIET_MS: u64 = 100;

/// How long `peerlist` notifications may wait during a storm of connections (see
/// `BROADCAST_BUDGET_BUSY`): longer than a storm of `MAX_HANDSHAKES` CURVE agents takes on a
/// slow board.
pub const BROADCAST_DEFER_MS: u64 = 5000;

/// Chunks of the shared transmit pool (`server::conn::shared`): a pubsub delivery that NULL and
/// PLAIN subscribers take verbatim is encoded once into a chunk and every recipient's transmit
/// queue refers to it (written with `writev`), instead of holding a copy each. A chunk is reused
/// once no queue refers to it any more. **At the limit** (every chunk still referred to by a
/// queue that has not drained it, or a delivery larger than a chunk, or a recipient already
/// referring to `TX_SHARED_REFS` chunks) the delivery is copied into the recipient's queue as
/// before the pool existed — nothing is lost; `fanout_copied`.
pub const SHARED_CHUNKS: usize = 8;

/// Bytes of one chunk of the shared transmit pool, taken from the buffer budget when the chunk
/// is first used (so at most `SHARED_CHUNKS` x this, 2 MiB, and none for a router that never
/// fans out; resident only as far as it was written); kept while fan-outs use it (no allocation
/// in the steady state), freed and given back to the budget once no queue refers to it and the
/// pool has not been written to for `IDLE_SHRINK_MS` (its pages go back to the kernel: this size is
/// at least `pages::LARGE`, a mapping of its own); the next fan-out takes it again, one
/// allocation per idle period. A chunk holds one event-loop turn of a publisher's input
/// (`READ_BUDGET_BYTES`) re-encoded, so a subscriber's references rarely span more than two. A
/// budget that refuses leaves the chunk unused (deliveries are copied, `fanout_copied`).
pub const SHARED_CHUNK_BYTES: usize = 256 * 1024;

/// Shared-pool references one transmit queue holds at most (consecutive deliveries in one chunk
/// are one reference; a subscriber that gets only some of the deliveries needs one each). Cost:
/// 24 bytes each in every connection's state. **At the limit** further deliveries are copied
/// into the queue; `fanout_copied`.
pub const TX_SHARED_REFS: usize = 4;

/// Timer granularity: handshake deadlines and stalls are checked this often.
pub const TICK_MS: u64 = 100;

/// mio events taken per poll.
pub const MAX_EVENTS: usize = 1024;

/// Listening endpoints (the ipc address plus `vip-address` entries). **At the limit** start-up
/// fails with a configuration error.
pub const MAX_LISTENERS: usize = 16;

/// PING context bytes echoed in PONG (ZMTP 3.1: at most 16; longer contexts are truncated as
/// libzmq does).
pub const MAX_PING_CONTEXT_BYTES: usize = 16;

/// Bytes of a pubsub bus name. Every shipped agent uses `''`. **Over it** a subscribe is
/// answered `00`; a publish on such a bus reaches nobody (count 0).
pub const MAX_BUS_BYTES: usize = 64;

/// Subscriptions in total (pubsub index). **At the limit** a subscribe is answered `00` and
/// logged; `rejected_subscription_full`.
pub const MAX_SUBSCRIPTIONS: usize = 16_384;

/// Subscriptions per peer. **At the limit** as above; `rejected_subscription_peer_limit`.
pub const MAX_SUBS_PER_PEER: usize = 1024;

/// Bytes of one subscription prefix or topic used as a prefix. **At the limit** the subscribe
/// is answered `00`.
pub const MAX_PREFIX_BYTES: usize = 1024;

/// Links to remote platforms (multi-platform routing, VIP.md §11; `vip::links`): one outbound
/// connection per remote platform named by `$VOLTTRON_HOME/external_platform_discovery.json` or
/// by `keydiscovery`. Cost: one slot each at start-up, plus the remote-subscription arena
/// (`EXT_PREFIX_BYTES_PER_LINK` + 4 × `MAX_EXT_PREFIXES_PER_LINK` bytes, reserved when a link is
/// configured, resident only as prefixes are stored). **At the limit** a further platform is
/// not linked: its entry is skipped and logged; `rejected_link_table_full`.
pub const MAX_LINKS: usize = 64;

/// Subscription prefixes kept per remote platform (its `external_list`, VIP.md §11.5). **At the
/// limit** the prefixes that fit are kept, the rest are left out (publishes matching only those
/// are not forwarded to that platform), the list is answered `00`, counted
/// (`rejected_external_prefixes`) and logged.
pub const MAX_EXT_PREFIXES_PER_LINK: usize = 1024;

/// Bytes of all subscription prefixes kept per remote platform (same behaviour as
/// `MAX_EXT_PREFIXES_PER_LINK`).
pub const EXT_PREFIX_BYTES_PER_LINK: usize = 64 * 1024;

/// Bytes of a remote platform's `instance-name` (link table key, `external_list` key,
/// `to_platform`). The link's routing id `instance.<name>.0.<16 digits>` must fit the 255 bytes
/// of a ZMTP identity. **Over it** a discovery entry is skipped and logged; a `send_platform` to
/// such a name is answered 113.
pub const MAX_INSTANCE_NAME_BYTES: usize = 224;

/// First delay before a link is dialled again after a failure or a drop; doubled after each
/// further failure up to `LINK_RETRY_MAX_MS`, with up to 25% random jitter (VOLTTRON retries
/// every 100 ms forever).
pub const LINK_RETRY_MIN_MS: u64 = 100;

/// Longest delay between two dials of a link that keeps failing: a remote platform that comes
/// back is linked again within this time.
pub const LINK_RETRY_MAX_MS: u64 = 5_000;

/// Bytes of a link's `vip-address` (e.g. `tcp://192.168.1.20:22916`). **Over it** the discovery
/// entry is skipped and logged.
pub const MAX_LINK_ADDRESS_BYTES: usize = 1024;

/// Bytes of a MSG_ID the router writes as a JSON string in the errors it generates, quotes
/// included (`[viprouter] error-msg-id = agent-readable`, `vip::error`; VOLTTRON's RPC ids are
/// about 25 bytes). Stack space, per error. **Over it** the MSG_ID is echoed byte-exact (as with
/// `verbatim`).
pub const MAX_QUOTED_MSG_ID: usize = 256;

/// Credential files read from a modular VOLTTRON home's `credentials_store` (one per identity;
/// `crate::auth::credentials`). Memory: a few hundred bytes each, at load. **Over it** the
/// files after the first 4096 in name order are not read (their keys are not admitted),
/// logged and counted in `config_load_errors`.
pub const MAX_CREDENTIAL_FILES: usize = 4096;

/// Bytes of a modular VOLTTRON `authz.json` (`crate::auth::authz`). **Over it** the file is
/// refused: the previous rules stay (at start: every topic protected), logged and counted in
/// `config_load_errors`.
pub const MAX_AUTHZ_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Distinct patterns (protected topics and capability patterns) compiled from one
/// `authz.json`. **Over it** the file is refused as above.
pub const MAX_AUTHZ_PATTERNS: usize = 16 * 1024;

/// Admission reports waiting for `platform.auth` (`--auth-reports`, `server::auth_report`), about
/// 200 bytes each. **At the limit** a new report is dropped, counted (`dropped_auth_report`) and
/// logged once.
pub const MAX_AUTH_REPORTS_QUEUED: usize = 64;

/// Admission reports accepted per second (a client cycling keys cannot flood the platform's
/// pending list). **Over it** as above.
pub const MAX_AUTH_REPORTS_PER_SECOND: u32 = 20;

// ----- RabbitMQ bridge (src/amqp/, cargo feature `rabbitmq`; issue #15) -----------------------

/// Bytes of one AMQP frame, header and end octet included: the frame-max the client asks for in
/// `connection.tune-ok` (the lower of this and the broker's; RabbitMQ's default is 131072, the
/// spec's minimum 4096). Publishes are split into body frames of at most this minus 8. **At the
/// limit** a broker frame declaring more is refused at its 7-byte header, nothing buffered: the
/// connection is closed with 501 FRAME_ERROR and the bridge reconnects; `amqp_protocol_errors`.
pub const AMQP_FRAME_MAX_BYTES: u32 = 131_072;

/// Bytes of one field table (message `headers`, `server-properties`, declare arguments),
/// checked at its 4-byte length before it is walked. **At the limit** as a malformed frame
/// (502 SYNTAX_ERROR, reconnect). Compiled only.
pub const AMQP_MAX_TABLE_BYTES: usize = 64 * 1024;

/// Nesting of field tables and arrays (`x-received-from` is an array of tables: depth 2;
/// `x-death` depth 3). **At the limit** as a malformed frame (502, reconnect). Compiled only:
/// the validator recurses, so this bounds its stack.
pub const AMQP_MAX_TABLE_DEPTH: usize = 8;

/// Bindings of the bridge's queue: one per locally connected peer (`N.<identity>`) plus one
/// per local `all_platforms` subscription prefix. Cost: one boxed key (at most 255 bytes) per
/// binding. **At the limit** the peer or prefix is not bound: remote senders get error 113 for
/// that peer (as for an unknown one), remote publishes on that prefix do not arrive;
/// `amqp_rejected_binding_full`.
pub const AMQP_MAX_BINDINGS: usize = 8192;

/// Publishes sent to the broker and not yet confirmed (publisher confirms). Cost: one bit each
/// (a fixed ring). **At the limit** an exported publish is dropped and counted
/// (`amqp_dropped_unconfirmed`) and an outbound RPC is answered with VIP error 11; nothing waits.
pub const AMQP_UNCONFIRMED_WINDOW: usize = 1024;

/// Bytes queued for the broker's socket (the AMQP connection's transmit buffer). **At the
/// limit** as the unconfirmed window: exported publishes dropped, RPC answered error 11;
/// control frames (acks, heartbeats, close) are always queued.
pub const AMQP_TX_BYTES: usize = 1024 * 1024;

/// First delay before the bridge dials the broker again after a failure or a drop; doubled
/// after each further failure up to [`BRIDGE_RETRY_MAX_MS`], with up to 25% random jitter.
pub const BRIDGE_RETRY_MIN_MS: u64 = 250;

/// Longest delay between two dials of a broker that keeps failing: a broker that comes back is
/// connected again within this time (VOLTTRON's agents retry every 2 s, 30 times, then stop).
pub const BRIDGE_RETRY_MAX_MS: u64 = 3_000;

/// Deliveries the broker may send before the bridge acknowledges (`basic.qos` prefetch-count).
pub const AMQP_PREFETCH: u16 = 256;

/// Heartbeat seconds the client proposes (VOLTTRON's RabbitMQ agents use 20, `auth_rmq.py`).
/// No frame from the broker for two intervals: the connection is dropped and re-opened.
pub const AMQP_HEARTBEAT_S: u16 = 20;

/// Time from TCP connect until the channel is open and the topology declared, and from our
/// `connection.close` until `close-ok`. **At the limit** the connection is dropped and the
/// bridge reconnects.
pub const AMQP_HANDSHAKE_TIMEOUT_MS: u64 = 15_000;

// Compile-time sanity checks (DESIGN.md §2.5).
const _: () = assert!(MAX_CONNECTIONS <= u16::MAX as usize, "PeerId is a u16 slot index");
const _: () = assert!(MAX_HANDSHAKES <= MAX_CONNECTIONS);
const _: () = assert!(MAX_MSG_BYTES <= u32::MAX as u64, "frame offsets are u32");
const _: () = assert!(TX_QUEUE_BYTES >= TX_BUF_MIN_BYTES);
const _: () = assert!(MAX_LINKS <= u16::MAX as usize, "LinkId is a u16 slot index");
const _: () = assert!(EXT_PREFIX_BYTES_PER_LINK <= u32::MAX as usize, "prefix offsets are u32");
const _: () = assert!(AMQP_FRAME_MAX_BYTES >= 4096, "AMQP frame-min-size");
const _: () = assert!(AMQP_TX_BYTES >= AMQP_FRAME_MAX_BYTES as usize * 2);
const _: () = assert!(
    BUFFER_BUDGET_BYTES >= RX_BUF_MAX_BYTES + TX_QUEUE_BYTES,
    "the budget must hold at least one maximal message in flight"
);

/// The effective limits of one router instance: the compiled ceilings, possibly lowered by
/// configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_HANDSHAKES`].
    pub max_handshakes: usize,
    /// See [`HANDSHAKE_TIMEOUT_MS`].
    pub handshake_timeout_ms: u64,
    /// See [`MAX_FRAME_BYTES`].
    pub max_frame_bytes: u64,
    /// See [`MAX_MSG_BYTES`].
    pub max_msg_bytes: u64,
    /// See [`MAX_MSG_PARTS`].
    pub max_msg_parts: usize,
    /// See [`TX_QUEUE_BYTES`].
    pub tx_queue_bytes: usize,
    /// See [`BUFFER_BUDGET_BYTES`].
    pub buffer_budget_bytes: usize,
    /// See [`SEND_STALL_MS`].
    pub send_stall_ms: u64,
    /// See [`MAX_SUBSCRIPTIONS`].
    pub max_subscriptions: usize,
    /// See [`MAX_SUBS_PER_PEER`].
    pub max_subs_per_peer: usize,
    /// See [`MAX_LINKS`].
    pub max_links: usize,
    /// See [`AMQP_FRAME_MAX_BYTES`].
    pub amqp_frame_max_bytes: u32,
    /// See [`AMQP_MAX_BINDINGS`].
    pub amqp_max_bindings: usize,
    /// See [`AMQP_UNCONFIRMED_WINDOW`].
    pub amqp_unconfirmed_window: usize,
    /// See [`AMQP_TX_BYTES`].
    pub amqp_tx_bytes: usize,
}

/// A configuration value that cannot be applied to [`Limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitError {
    /// No limit has this name.
    Unknown,
    /// The value is above the compiled ceiling (configuration may only lower limits).
    ExceedsCompiledCapacity {
        /// The compiled ceiling.
        ceiling: u64,
    },
    /// The value is below the smallest workable value.
    TooSmall {
        /// The smallest accepted value.
        floor: u64,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::Unknown => write!(f, "unknown limit"),
            LimitError::ExceedsCompiledCapacity { ceiling } => {
                write!(f, "exceeds the compiled capacity {ceiling} (limits may only be lowered)")
            }
            LimitError::TooSmall { floor } => write!(f, "below the minimum {floor}"),
        }
    }
}

/// One configurable limit (a row of [`SPECS`]).
pub struct LimitSpec {
    /// Key in the `[viprouter]` config section.
    pub name: &'static str,
    /// Unit of the value.
    pub unit: &'static str,
    /// Behaviour when the limit is hit.
    pub at_limit: &'static str,
    /// The smallest value configuration may set.
    pub floor: u64,
    /// The field in [`Limits`].
    get: fn(&Limits) -> u64,
    set: fn(&mut Limits, u64),
    /// The value in force, as printed (the handshake limit is capped by `max-connections`).
    shown: fn(&Limits) -> u64,
}

impl LimitSpec {
    /// The compiled ceiling: configuration may lower the limit to `floor`, never raise it.
    pub fn ceiling(&self) -> u64 {
        (self.get)(&Limits::COMPILED)
    }
}

/// A `usize` limit as u64 (usize is at most 64 bits on every target).
const fn wide(v: usize) -> u64 {
    v as u64
}

/// A u64 value at most a `usize` ceiling (checked by [`Limits::lower`]) as usize.
fn narrow(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Every configurable limit, in documentation order (README's limits table).
#[rustfmt::skip] // one row per line, as in the README table
pub const SPECS: [LimitSpec; 16] = [
    LimitSpec { name: "max-connections", unit: "connections", at_limit: "accept then close at once; rejected_conn_full", floor: 2, get: |l| wide(l.max_connections), set: |l, v| l.max_connections = narrow(v), shown: |l| wide(l.max_connections) },
    LimitSpec { name: "max-handshakes", unit: "connections", at_limit: "half-open one with least progress closed (never one whose READY we sent); rejected_handshake_evicted", floor: 1, get: |l| wide(l.max_handshakes), set: |l, v| l.max_handshakes = narrow(v), shown: |l| wide(l.handshake_cap()) },
    LimitSpec { name: "handshake-timeout-ms", unit: "ms", at_limit: "close (no ERROR; client reconnects); rejected_handshake_timeout", floor: 100, get: |l| l.handshake_timeout_ms, set: |l, v| l.handshake_timeout_ms = v, shown: |l| l.handshake_timeout_ms },
    LimitSpec { name: "max-frame-bytes", unit: "bytes", at_limit: "close at the frame header, nothing buffered; rejected_frame_too_large", floor: 256, get: |l| l.max_frame_bytes, set: |l, v| l.max_frame_bytes = v, shown: |l| l.max_frame_bytes },
    LimitSpec { name: "max-msg-bytes", unit: "bytes", at_limit: "close at the frame header; rejected_msg_too_large", floor: 256, get: |l| l.max_msg_bytes, set: |l, v| l.max_msg_bytes = v, shown: |l| l.max_msg_bytes },
    LimitSpec { name: "max-msg-parts", unit: "frames", at_limit: "close; rejected_too_many_parts", floor: 8, get: |l| wide(l.max_msg_parts), set: |l, v| l.max_msg_parts = narrow(v), shown: |l| wide(l.max_msg_parts) },
    LimitSpec { name: "tx-queue-bytes", unit: "bytes/peer", at_limit: "pause sender up to send-stall-ms, then VIP error 11; pubsub delivery dropped, not in the count", floor: wide(TX_BUF_MIN_BYTES), get: |l| wide(l.tx_queue_bytes), set: |l, v| l.tx_queue_bytes = narrow(v), shown: |l| wide(l.tx_queue_bytes) },
    LimitSpec { name: "buffer-budget-bytes", unit: "bytes", at_limit: "buffers stop growing: reader pauses, routed message waits (error 11 after send-stall-ms), new conns refused", floor: 1 << 20, get: |l| wide(l.buffer_budget_bytes), set: |l, v| l.buffer_budget_bytes = narrow(v), shown: |l| wide(l.buffer_budget_bytes) },
    LimitSpec { name: "send-stall-ms", unit: "ms", at_limit: "paused sender's message answered with VIP error 11", floor: 0, get: |l| l.send_stall_ms, set: |l, v| l.send_stall_ms = v, shown: |l| l.send_stall_ms },
    LimitSpec { name: "max-subscriptions", unit: "subscriptions", at_limit: "subscribe answered 00 and logged", floor: 1, get: |l| wide(l.max_subscriptions), set: |l, v| l.max_subscriptions = narrow(v), shown: |l| wide(l.max_subscriptions) },
    LimitSpec { name: "max-subs-per-peer", unit: "subscriptions", at_limit: "subscribe answered 00 and logged", floor: 1, get: |l| wide(l.max_subs_per_peer), set: |l, v| l.max_subs_per_peer = narrow(v), shown: |l| wide(l.max_subs_per_peer) },
    LimitSpec { name: "max-links", unit: "platforms", at_limit: "further platforms not linked, logged; rejected_link_table_full", floor: 0, get: |l| wide(l.max_links), set: |l, v| l.max_links = narrow(v), shown: |l| wide(l.max_links) },
    LimitSpec { name: "amqp-frame-max-bytes", unit: "bytes", at_limit: "RabbitMQ bridge: larger broker frame refused at its header (501), reconnect", floor: 4096, get: |l| u64::from(l.amqp_frame_max_bytes), set: |l, v| l.amqp_frame_max_bytes = u32::try_from(v).unwrap_or(u32::MAX), shown: |l| u64::from(l.amqp_frame_max_bytes) },
    LimitSpec { name: "amqp-max-bindings", unit: "bindings", at_limit: "RabbitMQ bridge: peer/prefix not bound (remote senders get 113); amqp_rejected_binding_full", floor: 1, get: |l| wide(l.amqp_max_bindings), set: |l, v| l.amqp_max_bindings = narrow(v), shown: |l| wide(l.amqp_max_bindings) },
    LimitSpec { name: "amqp-unconfirmed", unit: "publishes", at_limit: "RabbitMQ bridge: export dropped and counted, RPC answered VIP error 11", floor: 1, get: |l| wide(l.amqp_unconfirmed_window), set: |l, v| l.amqp_unconfirmed_window = narrow(v), shown: |l| wide(l.amqp_unconfirmed_window) },
    LimitSpec { name: "amqp-tx-bytes", unit: "bytes", at_limit: "RabbitMQ bridge: as amqp-unconfirmed (control frames always queued)", floor: 2 * AMQP_FRAME_MAX_BYTES as u64, get: |l| wide(l.amqp_tx_bytes), set: |l, v| l.amqp_tx_bytes = narrow(v), shown: |l| wide(l.amqp_tx_bytes) },
];

/// One row of the limits table: name (as in the config file), value, unit, and what happens
/// at the limit.
pub struct LimitRow {
    /// Key in the `[viprouter]` config section.
    pub name: &'static str,
    /// Effective value.
    pub value: u64,
    /// Unit of `value`.
    pub unit: &'static str,
    /// Behaviour when the limit is hit.
    pub at_limit: &'static str,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::COMPILED
    }
}

impl Limits {
    /// The compiled ceilings.
    pub const COMPILED: Limits = Limits {
        max_connections: MAX_CONNECTIONS,
        max_handshakes: MAX_HANDSHAKES,
        handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
        max_frame_bytes: MAX_FRAME_BYTES,
        max_msg_bytes: MAX_MSG_BYTES,
        max_msg_parts: MAX_MSG_PARTS,
        tx_queue_bytes: TX_QUEUE_BYTES,
        buffer_budget_bytes: BUFFER_BUDGET_BYTES,
        send_stall_ms: SEND_STALL_MS,
        max_subscriptions: MAX_SUBSCRIPTIONS,
        max_subs_per_peer: MAX_SUBS_PER_PEER,
        max_links: MAX_LINKS,
        amqp_frame_max_bytes: AMQP_FRAME_MAX_BYTES,
        amqp_max_bindings: AMQP_MAX_BINDINGS,
        amqp_unconfirmed_window: AMQP_UNCONFIRMED_WINDOW,
        amqp_tx_bytes: AMQP_TX_BYTES,
    };

    /// The config-file names of the limits, in documentation order (as [`Limits::rows`]).
    pub const NAMES: [&'static str; SPECS.len()] = {
        let mut names = [""; SPECS.len()];
        let mut i = 0;
        while i < SPECS.len() {
            names[i] = SPECS[i].name;
            i += 1;
        }
        names
    };

    /// `(compiled ceiling, smallest workable value)` of the limit `name` (config-file spelling),
    /// `None` for an unknown name: the range [`Limits::lower`] accepts.
    pub fn bounds(name: &str) -> Option<(u64, u64)> {
        SPECS.iter().find(|s| s.name == name).map(|s| (s.ceiling(), s.floor))
    }

    /// Lower the limit `name` (config-file spelling, e.g. `max-connections`) to `value`.
    ///
    /// # Errors
    /// [`LimitError`] when the name is unknown or the value is above the compiled ceiling or
    /// below the smallest workable value; the limit is then unchanged.
    pub fn lower(&mut self, name: &str, value: u64) -> Result<(), LimitError> {
        let spec = SPECS.iter().find(|s| s.name == name).ok_or(LimitError::Unknown)?;
        let ceiling = spec.ceiling();
        if value > ceiling {
            return Err(LimitError::ExceedsCompiledCapacity { ceiling });
        }
        if value < spec.floor {
            return Err(LimitError::TooSmall { floor: spec.floor });
        }
        (spec.set)(self, value);
        Ok(())
    }

    /// The handshake limit in force: `max-handshakes`, but at most half of `max-connections`
    /// (at least 1), so that unfinished handshakes are evicted before they can fill every slot
    /// and lock authenticated peers out (a lowered `max-connections` lowers it too).
    pub fn handshake_cap(&self) -> usize {
        self.max_handshakes.min(self.max_connections / 2).max(1)
    }

    /// Every limit as a table row, in documentation order.
    pub fn rows(&self) -> [LimitRow; SPECS.len()] {
        SPECS.each_ref().map(|s| LimitRow { name: s.name, value: (s.shown)(self), unit: s.unit, at_limit: s.at_limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_works_and_raising_is_refused() {
        let mut l = Limits::COMPILED;
        assert_eq!(l.lower("max-connections", 100), Ok(()));
        assert_eq!(l.max_connections, 100);
        assert_eq!(
            l.lower("max-connections", MAX_CONNECTIONS as u64 + 1),
            Err(LimitError::ExceedsCompiledCapacity { ceiling: MAX_CONNECTIONS as u64 })
        );
        assert_eq!(l.max_connections, 100);
        assert_eq!(l.lower("max-frame-bytes", 1), Err(LimitError::TooSmall { floor: 256 }));
        assert_eq!(l.lower("nonsense", 1), Err(LimitError::Unknown));
        assert_eq!(l.lower("send-stall-ms", 0), Ok(()));
        assert_eq!(l.send_stall_ms, 0);
    }

    #[test]
    fn every_row_name_is_lowerable() {
        let l = Limits::COMPILED;
        assert_eq!(l.rows().map(|r| r.name), Limits::NAMES);
        for row in l.rows() {
            let mut m = Limits::COMPILED;
            assert_eq!(m.lower(row.name, row.value), Ok(()), "{}", row.name);
        }
    }

    #[test]
    fn every_spec_sets_its_own_field() {
        for spec in &SPECS {
            let mut l = Limits::COMPILED;
            let v = spec.floor.max(1).min(spec.ceiling());
            assert_eq!(l.lower(spec.name, v), Ok(()), "{}", spec.name);
            assert_eq!((spec.get)(&l), v, "{} sets another field", spec.name);
            let changed = SPECS.iter().filter(|o| (o.get)(&l) != o.ceiling()).count();
            assert!(changed <= 1, "{} changed {changed} limits", spec.name);
        }
    }
}
