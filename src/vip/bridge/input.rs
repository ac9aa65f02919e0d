//! What the broker delivers, as the router receives it from the bridge's connection: VIP
//! messages in the form a remote platform's link sends (module doc of [`super`]), delivered to
//! local peers exactly as their link counterparts are.

use super::routing::error_to_peer;
use crate::json::{self, Kind};
use crate::limits::MAX_INSTANCE_NAME_BYTES;
use crate::stats::{self, Stats};
use crate::vip::envelope::Envelope;
use crate::vip::error::{MAX_QUOTED_MSG_ID, VipErrno};
use crate::vip::external_rpc::member;
use crate::vip::router::{Router, Sink};
use crate::zmtp::Message;

impl Router {
    /// One message from the broker (see the module doc): an inbound RPC for a local peer, a
    /// remote publish for local subscribers, or an error for a local caller. Nothing is
    /// answered to the broker: a callee that is gone, or whose queue is full, costs the remote
    /// caller its timeout (counted: `amqp_rpc_undeliverable`), as in VOLTTRON.
    pub fn bridge_input(&mut self, stats: &mut Stats, msg: Message<'_>, sink: &mut impl Sink) {
        let Ok(env) = Envelope::parse(msg) else {
            let _ = stats::bump_and_should_log(&mut stats.amqp_dropped_in);
            return;
        };
        match (env.subsystem, env.arg(0)) {
            (b"external_rpc", b"send_peer") => self.bridge_send_peer(stats, &env, sink),
            (b"pubsub", b"external_publish") => {
                stats.amqp_publish_in += 1;
                self.remote_publish(stats, None, &env, sink);
            }
            (b"error", _) => self.bridge_error(stats, &env, sink),
            _ => {
                let _ = stats::bump_and_should_log(&mut stats.amqp_dropped_in);
            }
        }
    }

    /// An RPC request or response from agent P of instance X for local peer C.
    fn bridge_send_peer(&mut self, stats: &mut Stats, env: &Envelope<'_>, sink: &mut impl Sink) {
        let Some(body) = json::parse(env.arg(1)).ok().filter(|v| v.kind() == Kind::Object) else {
            let _ = stats::bump_and_should_log(&mut stats.amqp_dropped_in);
            return;
        };
        let (mut peer_buf, mut plat_buf, mut caller_buf) = ([0u8; 255], [0u8; MAX_INSTANCE_NAME_BYTES], [0u8; 255]);
        let to_peer = member(body, b"to_peer", &mut peer_buf).unwrap_or_default();
        let platform = member(body, b"from_platform", &mut plat_buf).unwrap_or_default();
        let caller = member(body, b"from_peer", &mut caller_buf).unwrap_or_default();
        match self.deliver_send_peer(stats, env, to_peer, platform, caller, sink) {
            Ok(()) => stats.amqp_rpc_in += 1,
            Err(errno) => {
                if stats::bump_and_should_log(&mut stats.amqp_rpc_undeliverable) {
                    log::info!(
                        "RabbitMQ bridge: RPC from {}.{} to {} not delivered: {}",
                        platform.escape_ascii(),
                        caller.escape_ascii(),
                        to_peer.escape_ascii(),
                        if errno == VipErrno::Again { "its queue is full" } else { "not connected here" }
                    );
                }
            }
        }
    }

    /// An error for local caller C (`basic.return` of its RPC: 113; a VOLTTRON router's
    /// `error`): delivered as the router's own errors are, MSG_ID written as `error-msg-id`
    /// says. Dropped (counted) when C is gone or full.
    fn bridge_error(&mut self, stats: &mut Stats, env: &Envelope<'_>, sink: &mut impl Sink) {
        let to = self.peers.lookup(env.recipient).filter(|&p| self.peers.is_registered(p));
        let Some(to) = to else {
            let _ = stats::bump_and_should_log(&mut stats.amqp_rpc_undeliverable);
            return;
        };
        stats.amqp_errors_in += 1;
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let id = self.error_msg_id.msg_id(env.msg_id, &mut quoted);
        let frames = error_to_peer(env.recipient, id, env);
        if sink.deliver(to, &frames).is_err() {
            let _ = stats::bump_and_should_log(&mut stats.dropped_reply_full);
        }
    }
}
