//! The router's side of the link contract (module doc of [`super`]): the calls the server makes
//! for the connections it dials, and the discovery configuration it loads.

use super::{DownReason, LinkAction, LinkId, OwnPlatform, Source};
use crate::stats::Stats;
use crate::time::Instant;
use crate::vip::discovery::Discovery;
use crate::vip::router::{Router, Sink};
use crate::zmtp::Message;

impl Router {
    /// Apply a parsed `external_platform_discovery.json` (at start and on every reload that
    /// parsed; when it did not, do not call this: the previous links stay). Skipped entries are
    /// logged here; links no longer named by the file (nor by `keydiscovery`) are closed.
    pub fn set_file_links(&mut self, stats: &mut Stats, discovery: &Discovery) {
        for (key, why) in &discovery.skipped {
            if crate::stats::bump_and_should_log(&mut stats.external_malformed) {
                log::warn!("external_platform_discovery.json: entry {key:?} skipped: {why}");
            }
        }
        let Router { links, info, .. } = self;
        let own = OwnPlatform { instance_name: &info.instance_name, addresses_json: &info.addresses_json };
        links.set_file_links(&discovery.entries, own, stats);
    }

    /// Configure one link directly (as a `keydiscovery` message would).
    pub fn configure_link(&mut self, stats: &mut Stats, config: super::LinkConfig) {
        let Router { links, info, .. } = self;
        let own = OwnPlatform { instance_name: &info.instance_name, addresses_json: &info.addresses_json };
        links.configure_logged(config, Source::Keydiscovery, own, stats);
    }

    /// The next thing the server must do for links: call on every tick until `None`. Before
    /// handing out actions it retries what is owed on up links (an `external_list` or a
    /// `welcome` that found the link's queue full).
    pub fn poll_link(&mut self, stats: &mut Stats, now: Instant, sink: &mut impl Sink) -> Option<LinkAction> {
        self.sync_external_list(stats, sink);
        self.links.next_action(now)
    }

    /// When [`Router::poll_link`] will next have a dial to hand out (a down link's retry time).
    pub fn next_link_deadline(&self) -> Option<Instant> {
        self.links.next_deadline()
    }

    /// The dialled connection of `link` completed its handshake: the link is up. Sends `hello`,
    /// an owed `welcome` and our `external_list` on it. A stale id is ignored.
    pub fn link_up(&mut self, stats: &mut Stats, link: LinkId, sink: &mut impl Sink) {
        if self.links.mark_up(link, stats) {
            self.greet_link(link, sink);
            self.sync_external_list(stats, sink);
        }
    }

    /// The connection of `link` failed to come up or closed (`reason`): nothing more is sent on
    /// it, publishes for its remote are dropped and counted until it is up again, and it is
    /// dialled again after the backoff. A stale id is ignored.
    pub fn link_down(&mut self, stats: &mut Stats, link: LinkId, now: Instant, reason: DownReason) {
        self.links.mark_down(link, now, reason, stats);
    }

    /// A message arrived on `link` from the remote router (its replies to our `external_list`,
    /// `peerlist` broadcasts, errors): counted and dropped, as VOLTTRON does.
    pub fn link_input(&mut self, stats: &mut Stats, link: LinkId, msg: Message<'_>) {
        stats.link_msgs_in += 1;
        if let Some(l) = self.links.get_mut(link) {
            l.counters.msgs_in += 1;
            if msg.len() >= 5 && msg.frame(4) == b"error" {
                log::debug!(
                    "link to {}: error {} {:?} from the remote router",
                    l.name().escape_ascii(),
                    msg.frame(5).escape_ascii(),
                    msg.frame(6).escape_ascii().to_string()
                );
            }
        }
    }
}
