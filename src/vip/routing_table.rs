//! `routing_table` requests to the router (VIP.md §5.9, §11.2, §11.4, corrected by
//! `../shared/research/multiplatform.md` §2.3, §4, and `modular-volttron.md` §6).
//!
//! | operation (frame 6) | from | effect | reply |
//! |---|---|---|---|
//! | `normalmode_platform_connection ENTRY` | `keydiscovery` only | configure a link from ENTRY ([`super::discovery`]) | none |
//! | `hello hello NAME` | a link (`instance.*`) | remember it; answer `welcome` on our link to NAME (now, or when it comes up) | none on this connection |
//! | `hello welcome NAME` | a link | logged (the remote's answer to our `hello`) | none |
//! | `update`, `setupmode_platform_connection`, `web-addresses`, `request_response`, anything else, missing frames, bodies that are not what the operation needs | anyone | ignored, counted (`routing_table_ignored` / `external_malformed`), logged once | none |
//!
//! `welcome` is `['', 'VIP1', U, M, 'routing_table', 'hello', 'welcome', <our name>]` on the
//! link, with U and M of the `hello` (what modular VOLTTRON's `RoutingService` sends and waits
//! for before it treats a link as connected; VOLTTRON 9.0.4 ignores it — its own `hello`
//! handling compares text with bytes and never matches).
//!
//! # Where viprouter differs from VOLTTRON 9.0.4
//!
//! VOLTTRON's router accepts these from **any** peer and dies on several of them (measured):
//! `update` (TypeError), `normalmode_platform_connection` without a body (IndexError) or with a
//! body that is not an object (TypeError), `setupmode_platform_connection` with an unknown
//! web-address (ValueError); and any peer can make it open CURVE links, with the platform key
//! pair, to any address. Here only `keydiscovery` configures links, nothing is ever answered
//! with a crash, and VIP.md §5.9's claim that `update` is answered `request_response` is wrong
//! for 9.0.4 (it crashes): it is ignored. Setup mode (`setupmode_platform_connection`,
//! `web-addresses`, the HTTP key exchange) is not implemented: configure links with the
//! discovery file and `auth.json` entries instead.

use super::SIGNATURE;
use super::discovery::parse_entry_json;
use super::envelope::Envelope;
use super::external_pubsub::is_link_identity;
use super::links::{LinkState, OwnPlatform, Source};
use super::peers::PeerId;
use super::router::{Full, Outcome, Router, Sink};
use crate::stats::{self, Stats};

/// The only identity whose `normalmode_platform_connection` is honoured.
pub const KEYDISCOVERY_IDENTITY: &[u8] = b"keydiscovery";

impl Router {
    /// Handle one `routing_table` request from `from`. Never replies on `from`'s connection.
    pub(super) fn routing_table(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
    ) -> Outcome {
        match (env.arg(0), env.arg(1)) {
            (b"normalmode_platform_connection", _) if self.peers.identity(from) == KEYDISCOVERY_IDENTITY => {
                self.normalmode(stats, from, env)
            }
            (b"hello", b"hello") if is_link_identity(self.peers.identity(from)) && env.arg_count() >= 3 => {
                self.remote_hello(stats, from, env, sink)
            }
            (b"hello", b"welcome") if is_link_identity(self.peers.identity(from)) && env.arg_count() >= 3 => {
                log::debug!(
                    "platform {} welcomed our link (from {})",
                    env.arg(2).escape_ascii(),
                    self.peers.identity(from).escape_ascii()
                );
            }
            (op, _) => {
                if stats::bump_and_should_log(&mut stats.routing_table_ignored) {
                    log::warn!(
                        "routing_table {:?} from {} ignored ({} argument frames; multi-platform links are configured \
                         by external_platform_discovery.json and keydiscovery only)",
                        op.escape_ascii().to_string(),
                        self.peers.identity(from).escape_ascii(),
                        env.arg_count()
                    );
                }
            }
        }
        Outcome::Done
    }

    /// `normalmode_platform_connection ENTRY` from `keydiscovery`.
    fn normalmode(&mut self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>) {
        let Some(body) = env.get_arg(1) else {
            if stats::bump_and_should_log(&mut stats.external_malformed) {
                log::warn!("routing_table normalmode_platform_connection without an entry ignored");
            }
            return;
        };
        match parse_entry_json(body) {
            Ok(config) => {
                let own =
                    OwnPlatform { instance_name: &self.info.instance_name, addresses_json: &self.info.addresses_json };
                self.links.configure_logged(config, Source::Keydiscovery, own, stats);
            }
            Err(e) => {
                if stats::bump_and_should_log(&mut stats.external_malformed) {
                    log::warn!(
                        "routing_table normalmode_platform_connection from {}: {e}; ignored",
                        self.peers.identity(from).escape_ascii()
                    );
                }
            }
        }
    }

    /// `hello hello NAME` from a remote's link: answer `welcome` on our link to NAME.
    fn remote_hello(&mut self, stats: &mut Stats, from: PeerId, env: &Envelope<'_>, sink: &mut impl Sink) {
        let name = env.arg(2);
        let Router { links, info, peers, .. } = self;
        let Some(id) = links.by_name(name).map(|l| l.id()) else {
            if stats::bump_and_should_log(&mut stats.external_list_unknown_platform) {
                log::warn!(
                    "routing_table hello from platform {} (peer {}): no link is configured to it",
                    name.escape_ascii(),
                    peers.identity(from).escape_ascii()
                );
            }
            return;
        };
        let Some(link) = links.get_mut(id) else { return };
        if link.hello_from.replace(from) != Some(from) {
            log::info!("platform {} said hello (peer {})", name.escape_ascii(), peers.identity(from).escape_ascii());
        }
        if link.state() != LinkState::Up {
            link.welcome_owed = true;
            return;
        }
        let frames: [&[u8]; 8] =
            [b"", SIGNATURE, env.user_id, env.msg_id, b"routing_table", b"hello", b"welcome", &info.instance_name];
        link.welcome_owed = sink.deliver_link(id, &frames) == Err(Full);
    }

    /// What goes out on a link when it comes up: `hello`, an owed `welcome`, then our
    /// `external_list` (VOLTTRON sends `hello` at connect and the list on `CONNECTED`).
    pub(super) fn greet_link(&mut self, id: super::links::LinkId, sink: &mut impl Sink) {
        let Router { links, info, .. } = self;
        let name: &[u8] = &info.instance_name;
        let hello: [&[u8]; 8] = [b"", SIGNATURE, b"", b"", b"routing_table", b"hello", b"hello", name];
        let welcome: [&[u8]; 8] = [b"", SIGNATURE, b"", b"", b"routing_table", b"hello", b"welcome", name];
        let Some(link) = links.get_mut(id) else { return };
        if sink.deliver_link(id, &hello).is_err() {
            log::warn!("link to {}: hello could not be queued", link.name().escape_ascii());
        }
        if link.welcome_owed {
            link.welcome_owed = sink.deliver_link(id, &welcome).is_err();
        }
    }
}
