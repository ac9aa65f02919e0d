//! Links to remote platforms in the event loop: the server side of the contract in
//! [`crate::vip::links`] (the table and its backoff live there, the connection's protocol in
//! [`crate::server::link`]).
//!
//! * Every turn, [`Server::drive_links`] asks the router for what the table wants
//!   ([`Router::poll_link`](crate::vip::router::Router::poll_link)) until it has nothing more:
//!   a `Dial` opens a connection ([`Origin::Link`], a DEALER CURVE client with the platform key
//!   pair, the link's routing id and the remote's server key); a `Close` closes the connection
//!   of a link id that was removed or re-configured. A dial that fails at once (the address does
//!   not resolve, no free slot, a refused ipc connect) is reported down at once. The earliest
//!   retry time of a down link bounds the poll timeout ([`Server::timeout`]).
//! * The connection's handshake completing is the link coming up
//!   ([`Router::link_up`](crate::vip::router::Router::link_up): `hello`, an owed `welcome`, our
//!   `external_list` are queued on it); every message read from it goes to
//!   [`Router::link_input`](crate::vip::router::Router::link_input); its close, whatever the
//!   reason, is the link going down with the reason the backoff and the log need
//!   ([`down_reason`]).
//! * What the router sends on a link lands in that connection's transmit queue through
//!   [`super::sink::ConnSink`]'s `deliver_link`, bounded by `tx-queue-bytes` like any peer's.
//!
//! A link connection is never a VIP peer of this router: nothing routes to it by identity, no
//! `peerlist` announces it (the remote announces it to its own agents), and it cannot block a
//! local sender. Counting: `closed` counts its close; the link table counts ups, downs and
//! refusals (`query stats` `"links"`), and logs each transition once.

use super::*;
use crate::server::conn::Origin;
use crate::server::link::{DialTarget, LinkProtocol, dial_target, down_reason};
use crate::vip::links::{DownReason, LinkAction, LinkId};
use crate::zmtp::mechanism::curve::KeyPair;

/// The connection dialled for each link slot, and the key pair links authenticate with.
#[derive(Debug)]
pub(super) struct LinkConns {
    /// Indexed by [`LinkId::index`]: the current link id of that slot and its connection.
    by_index: Box<[Option<(LinkId, SlotId)>]>,
    /// The platform key pair (the keystore): a link's CURVE client keys.
    keys: LinkKeys,
}

/// Where a link's CURVE client keys come from.
#[derive(Debug)]
enum LinkKeys {
    /// None: every dial fails (logged).
    None,
    /// The platform key pair.
    Loaded(KeyPair),
    /// The platform keystore, loaded (or created) when the first link is dialled.
    File(std::path::PathBuf),
}

impl LinkConns {
    /// Room for `max_links` links.
    pub(super) fn new(max_links: usize) -> LinkConns {
        LinkConns { by_index: vec![None; max_links].into_boxed_slice(), keys: LinkKeys::None }
    }

    /// The connection of `link`, if one is open (or opening) for that exact id.
    #[inline]
    pub(super) fn slot(&self, link: LinkId) -> Option<SlotId> {
        match self.by_index.get(usize::from(link.index)) {
            Some(Some((l, slot))) if *l == link => Some(*slot),
            _ => None,
        }
    }

    fn insert(&mut self, link: LinkId, slot: SlotId) {
        if let Some(e) = self.by_index.get_mut(usize::from(link.index)) {
            *e = Some((link, slot));
        }
    }

    /// Forget `slot` as the connection of `link` (if it still is).
    fn remove(&mut self, link: LinkId, slot: SlotId) {
        if let Some(e) = self.by_index.get_mut(usize::from(link.index))
            && *e == Some((link, slot))
        {
            *e = None;
        }
    }
}

impl Server {
    /// Links authenticate with `keys`, the platform key pair (VOLTTRON's `KeyStore()`; VIP.md
    /// §11.3). Without them every dial fails (logged).
    pub fn set_link_keys(&mut self, keys: KeyPair) {
        self.links.keys = LinkKeys::Loaded(keys);
    }

    /// Links authenticate with the key pair of the keystore at `path`, loaded (or created) when
    /// the first link is dialled (a router with auth off, which needs no keys otherwise).
    pub fn set_link_keystore(&mut self, path: std::path::PathBuf) {
        self.links.keys = LinkKeys::File(path);
    }

    /// The links' key pair, loading the keystore the first time.
    fn link_keys(&mut self) -> Option<&KeyPair> {
        if let LinkKeys::File(path) = &self.links.keys {
            self.links.keys = match crate::auth::keystore::load_or_create(path, &mut rand_core::OsRng) {
                Ok(ks) => LinkKeys::Loaded(ks.keys),
                Err(e) => {
                    log::error!("{}: {e}: links cannot authenticate", path.display());
                    LinkKeys::None
                }
            };
        }
        match &self.links.keys {
            LinkKeys::Loaded(k) => Some(k),
            LinkKeys::None | LinkKeys::File(_) => None,
        }
    }

    /// Apply a parsed `external_platform_discovery.json` (at start; reloads go through the
    /// [`Policy`]): the links it names are dialled from the next turn on.
    pub fn set_file_links(&mut self, discovery: &crate::vip::discovery::Discovery) {
        self.router.set_file_links(&mut self.stats, discovery);
    }

    /// Do what the link table asks until it has nothing more (see the module doc).
    pub(super) fn drive_links(&mut self, now: Instant) {
        loop {
            let (router, stats, mut sink) = self.routing(None);
            let action = router.poll_link(stats, now, &mut sink);
            let totals = sink.totals();
            self.account(totals);
            match action {
                None => break,
                Some(LinkAction::Dial(link)) => self.dial_link(link, now),
                Some(LinkAction::Close(link)) => {
                    if let Some(slot) = self.links.slot(link) {
                        self.close(slot, CloseReason::Unlinked);
                    }
                }
            }
        }
        self.close_broken();
    }

    /// Open the connection of `link`; a failure at once is the link down at once.
    fn dial_link(&mut self, link: LinkId, now: Instant) {
        let keys = self.link_keys().cloned();
        let Some(l) = self.router.links.get(link) else { return };
        let address = l.config().vip_address.clone();
        let dialled = match keys {
            None => Err(io::Error::other("no platform key pair to authenticate with")),
            Some(keys) => {
                let protocol = LinkProtocol::new(l.config(), l.identity(), &keys, &self.limits);
                dial_target(&address).and_then(|t| self.dial_as(t, Box::new(protocol), Origin::Link(link), &address))
            }
        };
        match dialled {
            Ok(slot) => self.links.insert(link, slot),
            Err(e) => {
                log::debug!("link dial to {address}: {e}");
                self.router.link_down(&mut self.stats, link, now, DownReason::ConnectFailed);
            }
        }
    }

    /// The handshake of `link`'s connection `id` completed: the link is up.
    pub(super) fn on_link_ready(&mut self, id: SlotId, link: LinkId) {
        self.slots.set_phase(id, Phase::Linked);
        let (router, stats, mut sink) = self.routing(None);
        router.link_up(stats, link, &mut sink);
        let totals = sink.totals();
        self.account(totals);
    }

    /// A message arrived on `link`'s connection `id`: the router's link input, then dropped.
    pub(super) fn on_link_message(&mut self, id: SlotId, link: LinkId) -> Next {
        let Some(conn) = self.slots.get_mut(id) else { return Next::Stop };
        let (msg, _) = conn.route_view();
        self.router.link_input(&mut self.stats, link, msg);
        conn.release_message();
        Next::ReadMore
    }

    /// `link`'s connection `id` closed in `phase` for `reason`: the link is down.
    pub(super) fn on_link_closed(&mut self, id: SlotId, link: LinkId, reason: CloseReason, phase: Phase) {
        self.links.remove(link, id);
        self.router.link_down(&mut self.stats, link, self.now, down_reason(reason, phase));
    }

    /// Milliseconds until a down link is due to be dialled again, if one is.
    pub(super) fn link_wait_ms(&self) -> Option<u64> {
        self.router.next_link_deadline().map(|t| t.0.saturating_sub(self.now.0))
    }

    /// Open a connection to `target` for `origin`, its protocol speaking once the connect
    /// completes (see [`Server::dial`]).
    pub(super) fn dial_as(
        &mut self,
        target: DialTarget,
        protocol: Box<dyn Protocol>,
        origin: Origin,
        label: &str,
    ) -> io::Result<SlotId> {
        let now = self.now;
        if self.slots.is_full() || !self.budget.take(Conn::INITIAL_BYTES) {
            return Err(io::Error::other("no free connection slot or buffer budget"));
        }
        let stream = match target {
            DialTarget::Tcp(addr) => mio::net::TcpStream::connect(addr).map(|s| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
            DialTarget::Unix(addr) => mio::net::UnixStream::connect_addr(&addr).map(Stream::Unix),
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                self.budget.give(Conn::INITIAL_BYTES);
                return Err(e);
            }
        };
        let conn = Box::new(Conn::dialled(stream, protocol, origin, now, label));
        let Ok(id) = self.slots.insert(conn) else {
            self.budget.give(Conn::INITIAL_BYTES);
            return Err(io::Error::other("no free connection slot"));
        };
        self.stats.connections = self.slots.live() as u64;
        let registry = self.poll.registry();
        if let Some(conn) = self.slots.get_mut(id)
            && let Err(e) = conn.register(registry, id.token())
        {
            self.close(id, CloseReason::RegisterFailed);
            return Err(e);
        }
        log::debug!("dialling {label} on slot {}", id.index);
        Ok(id)
    }
}
