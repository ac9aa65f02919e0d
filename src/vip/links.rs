//! The link table: one outbound connection per remote platform (multi-platform routing,
//! VIP.md §11.1–§11.3, corrected by `../shared/research/multiplatform.md` §1–§4).
//!
//! A **link** is the DEALER-side connection this router dials to a remote platform's router,
//! as VOLTTRON's `RoutingService` does: a CURVE client with the **platform** key pair (the
//! server's keystore) and the remote's server key from its discovery entry, under the routing id
//! `instance.<remote instance-name>.0.<16 digits>` (the remote's name, a new random part per
//! start; the remote sees it as an ordinary peer, `peerlist add instance.…` included). Every
//! link carries, from us to the remote: `routing_table hello`, `pubsub external_list`,
//! `pubsub external_publish`, `external_rpc send_peer`, and `routing_table hello welcome`
//! (modular VOLTTRON). What the remote router writes back on it (replies, `peerlist`
//! broadcasts) is counted and dropped, as VOLTTRON does. Traffic *from* a remote arrives on our
//! own listening socket, from the remote's link to us (see [`super::external_pubsub`],
//! [`super::external_rpc`]).
//!
//! # Contract with the server (phase 2 implements the server side)
//!
//! The table is pure state: no sockets, no clock (time comes in as [`Instant`]), randomness from
//! the seed given to [`Links::new`]. The server drives it through [`super::router::Router`]:
//!
//! * [`Router::poll_link`](super::router::Router::poll_link)`(now, sink)` on every tick until it
//!   returns `None`: each [`LinkAction::Dial`] asks the server to open a connection for that
//!   link ([`Links::get`] gives the address, the server key and the routing id); each
//!   [`LinkAction::Close`] asks it to close the connection of that (stale) link id.
//! * [`Router::link_up`](super::router::Router::link_up) once the ZMTP handshake of a dialled
//!   link completed (not at TCP connect, as VOLTTRON's monitor does): the router sends `hello`,
//!   a `welcome` it owes, and its `external_list` on it, through
//!   [`Sink::deliver_link`](super::router::Sink::deliver_link).
//! * [`Router::link_down`](super::router::Router::link_down) when the connection failed, was
//!   refused, or closed: the link is dialled again after a backoff
//!   (`LINK_RETRY_MIN_MS`…`LINK_RETRY_MAX_MS`, jittered). Nothing is queued for a down link.
//! * [`Router::link_input`](super::router::Router::link_input) for each message read from a link.
//!
//! Every event carries a [`LinkId`] with a generation: an event for a link that was removed or
//! re-configured since (a stale id) is ignored, as the server's slot ids are.
//!
//! # Configuration
//!
//! Links come from `$VOLTTRON_HOME/external_platform_discovery.json` ([`Links::set_file_links`],
//! at start and on reload) and from `routing_table normalmode_platform_connection` sent by
//! `keydiscovery` ([`Links::configure`]; VOLTTRON's `keydiscovery` sends one per entry of the
//! same file). A link is keyed by the entry's `instance-name`, which must equal the remote's own
//! configured name (multiplatform.md §1.1). An entry whose `vip-address` is one of ours, or
//! whose name is ours, is skipped (VOLTTRON skips the first only). Re-configuring a name with
//! another address or key re-dials it under a new id; a link that neither the file nor
//! `keydiscovery` names any more is closed.
//!
//! # Capacity
//!
//! `max-links` slots, allocated at start-up ([`crate::limits::MAX_LINKS`]); a slot's
//! remote-subscription arena is reserved when a link is first configured in it (start-up,
//! reload, a `keydiscovery` message — never per message) and kept for the slot's later links,
//! so an idle router without links pays nothing for them. A platform over the limit is not
//! linked (`rejected_link_table_full`).
//!
//! # Corrections to VIP.md §11 (measured on VOLTTRON 9.0.4, `multiplatform.md` §4)
//!
//! The shared spec is read-only; where it is wrong or silent about multi-platform routing, this
//! is what 9.0.4 does (and what the modules here are built on):
//!
//! | VIP.md | 9.0.4 actually |
//! |---|---|
//! | §5.9, §11.4: `routing_table update` is answered `request_response` | it kills the router (TypeError); so do `normalmode_platform_connection` without a body or with a non-object body, from **any** peer ([`super::routing_table`]) |
//! | §11.3: `CONNECTED` drives the link status | it fires at TCP connect, before CURVE; `CONNECTION_DELAY` repeats on every retry; the link DEALER has HWM 1000, `RECONNECT_IVL` 100 ms, its own zmq context. viprouter: up = ZMTP handshake done |
//! | §11.3: replies on the outbound link are dropped | yes, and the rest of `ext_route` is dead code too (pyzmq `Frame != str`): nothing arriving on a link is ever acted on, so each direction needs its own link |
//! | §11.3: client key pair = the platform keystore | yes; `known_hosts` is **not** consulted for links, the server key comes from the discovery entry only |
//! | §11.1: names "must be unique" | also: the `instance-name` in A's entry for B must equal B's configured name, and both must list each other, or traffic is lost silently (issue #1545, once a crash) |
//! | §11.1: discovery by `GET <web>/discovery/` | body `{"serverkey", "vip-address", "instance-name"}` (+ `rmq-address`, `rmq-ca-cert`); `vip-address` is in effect the first tcp vip-address; the path must be exactly `/discovery/`, setup-mode URLs must have no path ([`super::discovery`]; setup mode is not implemented here) |
//! | §7.12: a cleanly disconnected platform's `ext_subscriptions` entry is removed | never on disconnect: the entry stays, publishes still count the remote and queue in the dead link, replayed later ([`super::external_pubsub`]) |
//! | §11.5: the list is sent when the `all` set changes and on `CONNECTED` | also on every peer drop and every `synchronize` once any publish created the `all` key (empty lists on every agent start/stop); the bus is not carried; the receiver skips the key equal to the name in *its config file* |
//! | §11.5: `external_publish` | byte-for-byte as described; the receiver also delivers to `internal` subscribers; the publisher's count includes remotes whose link is down |
//! | §11.6: external RPC | as described, but MSG_ID arrives as a 4-byte float, the callee sees peer and user `''` (capability-protected methods refuse remote callers, -32001), an unknown platform or peer is a silent timeout; loopback round trip 12 ms ([`super::external_rpc`]) |
//! | §11.7: #1528 "subscriptions discarded on disconnect, not re-sent" | stale: they are never discarded and are re-sent on every reconnect; the real failures are stale counting/replay and agents that stop after 50 reconnect retries (§13.5: ≈5 s, so "agents keep running across a router restart" holds only for short outages) |
//! | §11.7: #1506 decorator subscriptions not propagated | fixed by PR #1507 (`_sync` pushes the list); the issue was never closed |
//! | §14.2: default `instance-name` "first vip-address, else the host name" | on the first start without a vip-address the router gets `None`; the host name takes effect from the next start |

use super::external_pubsub::ExtSubs;
use super::peers::PeerId;
use crate::limits::{EXT_PREFIX_BYTES_PER_LINK, LINK_RETRY_MAX_MS, LINK_RETRY_MIN_MS, MAX_EXT_PREFIXES_PER_LINK};

/// The remote-subscription arena of one configured link.
fn link_arena() -> ExtSubs {
    ExtSubs::new(EXT_PREFIX_BYTES_PER_LINK, MAX_EXT_PREFIXES_PER_LINK)
}
use crate::stats::{self, Stats};
use crate::time::Instant;

/// A link slot and its generation (stale ids are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId {
    /// Slot index, below `max-links`.
    pub index: u16,
    /// Bumped each time the slot is re-configured or freed.
    pub generation: u16,
}

/// Where a link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected; dialled again when its retry time comes.
    Down,
    /// Handed to the server to dial; no handshake yet.
    Connecting,
    /// Handshake done: traffic flows.
    Up,
}

impl LinkState {
    /// `down`, `connecting`, `up` (for logs and `query stats`).
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Down => "down",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
        }
    }
}

/// Why the server reports a link down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// TCP connect failed (refused, unreachable, timed out).
    ConnectFailed,
    /// The remote refused our key (CURVE ERROR, e.g. no auth.json entry for our platform key).
    Refused,
    /// The handshake failed otherwise (bad server key, protocol error, handshake timeout).
    HandshakeFailed,
    /// An established link closed.
    Closed,
}

impl DownReason {
    fn text(self) -> &'static str {
        match self {
            DownReason::ConnectFailed => "connect failed",
            DownReason::Refused => "refused by the remote (is our platform key in its auth.json?)",
            DownReason::HandshakeFailed => "handshake failed",
            DownReason::Closed => "closed",
        }
    }
}

/// What the router asks the server to do for a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    /// Open a connection for this link ([`Links::get`] has its configuration), then report
    /// `link_up` or `link_down`.
    Dial(LinkId),
    /// Close the connection of this link id (removed or re-configured); no report expected.
    Close(LinkId),
}

/// Where a configuration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `external_platform_discovery.json`.
    File,
    /// `routing_table normalmode_platform_connection` from `keydiscovery`.
    Keydiscovery,
}

/// One remote platform to link to: a validated discovery entry (see [`super::discovery`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The remote's `instance-name` (latin-1 bytes, 1..=[`crate::limits::MAX_INSTANCE_NAME_BYTES`]).
    pub instance_name: Vec<u8>,
    /// Where to dial, e.g. `tcp://192.168.1.20:22916` (≤ [`crate::limits::MAX_LINK_ADDRESS_BYTES`]).
    pub vip_address: String,
    /// The remote's CURVE server key (its platform public key), raw.
    pub serverkey: [u8; 32],
}

/// Per-link counters (shown under `"links"` in `query stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Times the link came up.
    pub ups: u64,
    /// Times it went down or failed to come up.
    pub downs: u64,
    /// Handshakes the remote refused.
    pub refused: u64,
    /// `external_publish` messages queued on it.
    pub publishes_out: u64,
    /// External publishes not sent: the link was down.
    pub dropped_down: u64,
    /// External publishes not sent: its queue was full.
    pub dropped_full: u64,
    /// `external_rpc send_peer` (and error) messages queued on it.
    pub rpc_out: u64,
    /// `external_list` messages queued on it.
    pub lists_out: u64,
    /// Messages the remote wrote back on it (dropped).
    pub msgs_in: u64,
}

/// One link: configuration, routing id, state and what is owed to the remote.
#[derive(Debug)]
pub struct Link {
    id: LinkId,
    config: LinkConfig,
    identity: Vec<u8>,
    state: LinkState,
    /// Counters.
    pub counters: LinkCounters,
    in_file: bool,
    from_keydiscovery: bool,
    dial_pending: bool,
    retry_at: Instant,
    failures: u32,
    /// Our current `external_list` still has to be sent on it.
    pub(super) list_owed: bool,
    /// The remote said `routing_table hello`; a `welcome` still has to go out on this link.
    pub(super) welcome_owed: bool,
    /// The peer (the remote's link to us) that said `hello` with this link's name.
    pub(super) hello_from: Option<PeerId>,
    last_down: Option<DownReason>,
}

impl Link {
    /// This link's id.
    pub fn id(&self) -> LinkId {
        self.id
    }

    /// Where to dial and whom to expect.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The remote's instance name.
    pub fn name(&self) -> &[u8] {
        &self.config.instance_name
    }

    /// Our routing id on this link: `instance.<remote name>.0.<16 digits>`.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// Current state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Why it last went down.
    pub fn last_down(&self) -> Option<DownReason> {
        self.last_down
    }

    /// When it will be dialled again (meaningful while down).
    pub fn retry_at(&self) -> Instant {
        self.retry_at
    }
}

/// A slot: the link (if configured), its remote subscriptions, a close owed to the server.
#[derive(Debug)]
struct Slot {
    generation: u16,
    link: Option<Link>,
    /// The remote's subscription prefixes (its `external_list`), kept with the slot's arena.
    ext: ExtSubs,
    /// A connection of an older id of this slot that the server must close.
    close_pending: Option<LinkId>,
}

/// The link table. See the module documentation.
#[derive(Debug)]
pub struct Links {
    slots: Box<[Slot]>,
    rng: u64,
    /// Links in state `Up` (fast path: publishes skip the link walk when none could match).
    up: usize,
    /// Slots holding a remote subscription list (fast path for publishes).
    with_subs: usize,
}

/// The wait before the next dial after `failures` failures in a row: `min_ms` doubled per
/// failure up to `max_ms`, plus up to 25% jitter taken from `random` (the link table's and the
/// RabbitMQ bridge's backoff).
pub(crate) fn retry_delay_ms(failures: u32, random: u64, min_ms: u64, max_ms: u64) -> u64 {
    let base = min_ms.saturating_mul(1u64 << failures.min(16)).min(max_ms);
    base + random % (base / 4 + 1)
}

/// splitmix64: the link table's random source (routing-id suffixes, backoff jitter).
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Links {
    /// Bytes allocated at start-up for `max_links` slots (an upper bound; the arenas are zero
    /// pages until used).
    pub fn memory_bytes(max_links: usize) -> usize {
        max_links.saturating_mul(EXT_PREFIX_BYTES_PER_LINK + 4 * MAX_EXT_PREFIXES_PER_LINK + 1024)
    }

    /// A table of `max_links` slots; `seed` drives routing-id suffixes and jitter.
    pub fn new(max_links: usize, seed: u32) -> Links {
        let n = max_links.min(usize::from(u16::MAX));
        let slots = (0..n)
            .map(|_| Slot {
                generation: 0,
                link: None,
                // Reserved when a link is first configured in the slot (Links::configure).
                ext: ExtSubs::new(0, 0),
                close_pending: None,
            })
            .collect();
        Links { slots, rng: u64::from(seed) ^ 0x6C69_6E6B_7376_6970, up: 0, with_subs: 0 }
    }

    /// Number of configured links.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.link.is_some()).count()
    }

    /// Whether no link is configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of links that are up.
    pub fn up_count(&self) -> usize {
        self.up
    }

    /// The link with this id, if it is current.
    pub fn get(&self, id: LinkId) -> Option<&Link> {
        let s = self.slots.get(usize::from(id.index))?;
        s.link.as_ref().filter(|l| l.id == id)
    }

    pub(super) fn get_mut(&mut self, id: LinkId) -> Option<&mut Link> {
        let s = self.slots.get_mut(usize::from(id.index))?;
        s.link.as_mut().filter(|l| l.id == id)
    }

    /// Every configured link.
    pub fn iter(&self) -> impl Iterator<Item = &Link> {
        self.slots.iter().filter_map(|s| s.link.as_ref())
    }

    /// The link to the platform named `name`.
    pub fn by_name(&self, name: &[u8]) -> Option<&Link> {
        self.iter().find(|l| l.config.instance_name == name)
    }

    /// The remote subscriptions held for link `id`.
    pub fn ext_subs(&self, id: LinkId) -> Option<&ExtSubs> {
        let s = self.slots.get(usize::from(id.index))?;
        s.link.as_ref().filter(|l| l.id == id).map(|_| &s.ext)
    }

    /// Links with their remote subscriptions, for the publish fan-out.
    pub(super) fn with_ext_mut(&mut self) -> impl Iterator<Item = (&mut Link, &ExtSubs)> {
        self.slots.iter_mut().filter_map(|s| s.link.as_mut().map(|l| (l, &s.ext)))
    }

    /// Whether any link holds remote subscriptions (publishes need not look otherwise).
    pub fn any_remote_subs(&self) -> bool {
        self.with_subs > 0
    }

    /// Replace the remote subscription list of the link named `name` by `f` (which fills the
    /// arena and reports whether everything fit); `from` is the peer that sent it. `None` when no
    /// link has that name.
    pub(super) fn set_ext_subs<R>(
        &mut self,
        name: &[u8],
        from: PeerId,
        f: impl FnOnce(&mut ExtSubs) -> R,
    ) -> Option<R> {
        let slot = self.slots.iter_mut().find(|s| s.link.as_ref().is_some_and(|l| l.config.instance_name == name))?;
        let had = !slot.ext.is_empty();
        let r = f(&mut slot.ext);
        slot.ext.set_from(Some(from));
        match (had, slot.ext.is_empty()) {
            (false, false) => self.with_subs += 1,
            (true, true) => self.with_subs -= 1,
            _ => {}
        }
        Some(r)
    }

    /// The peer `peer` left: the remote subscription lists it sent go (the remote platform's
    /// router restarted or its link to us dropped; its next link-up sends a fresh list).
    /// Returns how many lists were dropped.
    pub fn peer_gone(&mut self, peer: PeerId) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if s.ext.from() == Some(peer) {
                if !s.ext.is_empty() {
                    self.with_subs -= 1;
                }
                s.ext.clear();
                n += 1;
            }
            if let Some(l) = s.link.as_mut()
                && l.hello_from == Some(peer)
            {
                l.hello_from = None;
            }
        }
        n
    }

    /// The next thing the server must do (see the module doc), or `None`. Closes come first.
    pub fn next_action(&mut self, now: Instant) -> Option<LinkAction> {
        for s in self.slots.iter_mut() {
            if let Some(id) = s.close_pending.take() {
                return Some(LinkAction::Close(id));
            }
        }
        for s in self.slots.iter_mut() {
            if let Some(l) = s.link.as_mut()
                && l.dial_pending
                && l.state == LinkState::Down
                && now >= l.retry_at
            {
                l.dial_pending = false;
                l.state = LinkState::Connecting;
                log::debug!("link to {}: dialling {}", l.config.instance_name.escape_ascii(), l.config.vip_address);
                return Some(LinkAction::Dial(l.id));
            }
        }
        None
    }

    /// The earliest time a down link is due to be dialled again.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.iter().filter(|l| l.dial_pending && l.state == LinkState::Down).map(|l| l.retry_at).min()
    }

    /// The handshake of link `id` completed. Returns whether it was a current, not-yet-up link.
    pub fn mark_up(&mut self, id: LinkId, stats: &mut Stats) -> bool {
        let Some(l) = self.get_mut(id) else { return false };
        if l.state == LinkState::Up {
            return false;
        }
        l.state = LinkState::Up;
        l.failures = 0;
        l.counters.ups += 1;
        l.list_owed = true;
        log::info!(
            "link to {} is up ({}, as {})",
            l.config.instance_name.escape_ascii(),
            l.config.vip_address,
            l.identity.escape_ascii()
        );
        stats.link_ups += 1;
        self.up += 1;
        true
    }

    /// Link `id` went down (or never came up): it is dialled again after the backoff.
    pub fn mark_down(&mut self, id: LinkId, now: Instant, reason: DownReason, stats: &mut Stats) {
        let jitter = next_random(&mut self.rng);
        let Some(l) = self.get_mut(id) else { return };
        let was_up = l.state == LinkState::Up;
        if l.state == LinkState::Down {
            return;
        }
        l.state = LinkState::Down;
        l.dial_pending = true;
        l.counters.downs += 1;
        l.last_down = Some(reason);
        l.list_owed = false;
        let wait = retry_delay_ms(l.failures, jitter, LINK_RETRY_MIN_MS, LINK_RETRY_MAX_MS);
        l.retry_at = now.plus(wait);
        l.failures = l.failures.saturating_add(1);
        stats.link_downs += 1;
        if reason == DownReason::Refused {
            l.counters.refused += 1;
            stats.link_refused += 1;
        }
        let name = l.config.instance_name.escape_ascii().to_string();
        if was_up {
            log::warn!("link to {name} is down ({}); retrying in {wait} ms", reason.text());
        } else if stats::is_log_point(l.failures.into()) || reason == DownReason::Refused && l.counters.refused == 1 {
            log::warn!(
                "link to {name} ({}): {} (attempt {}); retrying in {} ms",
                l.config.vip_address,
                reason.text(),
                l.failures,
                wait
            );
        }
        if was_up {
            self.up -= 1;
        }
    }
}

mod configure;
mod events;
mod stats_json;

pub use configure::{ConfigureError, OwnPlatform, valid_instance_name, valid_link_address};

#[cfg(test)]
mod tests;
