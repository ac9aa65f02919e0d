//! External RPC: `external_rpc send_platform` / `send_peer` between platforms (VIP.md §10.2,
//! §11.6, corrected by `../shared/research/multiplatform.md` §2.5, §3, §4).
//!
//! # Wire
//!
//! 1. A local caller S asks its router: `[S, '', 'VIP1', U, M, 'external_rpc', 'send_platform',
//!    BODY]` with BODY `{"to_platform": R, "to_peer": P, "from_platform": "", "from_peer": "",
//!    "args": [<JSON-RPC text>…]}` (exactly two arguments).
//! 2. We set `from_platform` = our instance name and `from_peer` = S **ourselves** (whatever the
//!    caller wrote there), keeping every other byte and the key order ([`rewrite_body`]), and
//!    queue on the link to R: `['', 'VIP1', U, M, 'external_rpc', 'send_peer', BODY']` — U and
//!    M byte-exact (VOLTTRON mangles M into a 4-byte float on the way).
//! 3. The remote router delivers it to P: `[P, '', 'VIP1', USER, M, 'external_rpc',
//!    'send_peer', BODY']`; the callee answers with its own `send_platform` back the same way.
//!
//! # Where viprouter differs from VOLTTRON 9.0.4
//!
//! * **An unreachable platform is an error, not a timeout.** `send_platform` to a platform we
//!   have no link to, or whose link is not up, is answered at once with VOLTTRON's error 113,
//!   naming the platform, with the caller's MSG_ID byte-exact:
//!   `[S, '', 'VIP1', S, M, 'error', '113', 'No route to host', R, 'external_rpc']`. The agent
//!   library routes an `error` by its last frame to the `external_rpc` subsystem, whose error
//!   handler pops the pending call by MSG_ID (`rpc.py` `_handle_error`) and raises
//!   `Unreachable`. M is written as [`super::error::ErrorMsgId`] says (by default an RPC id
//!   such as `17.8766` as the JSON string `"17.8766"`, because VOLTTRON's agent library
//!   JSON-parses every frame and would otherwise look the call up by a float and time out).
//!   A full link queue is answered with error 11 the same way.
//! * **An unreachable callee is an error too.** When P is not connected here, we answer the
//!   caller over our link to its platform, addressed to it through its router:
//!   `[from_peer, 'VIP1', '', M, 'error', '+113', 'No route to host', P, 'external_rpc']`
//!   (M as for the 113 above; VOLTTRON drops the call and the caller times out). The error
//!   number is written `+113` (`+11` for a full queue, [`link_errnum`]): a VOLTTRON 9.0.4 router
//!   on the way JSON-decodes every frame it forwards and packs a number into 4 binary bytes
//!   (`utils/frame_serialization.py`), and its agent library then fails on `int(b'q\0\0\0')`
//!   and stops the caller agent altogether (measured: `tests/multiplatform`, vt-vr). `+113` is
//!   not JSON, so it is forwarded as text, and the agent library's `int()` reads it as 113. Behind
//!   a viprouter (which forwards frames byte-exact) the caller gets `Unreachable` at once; behind
//!   VOLTTRON 9.0.4 the MSG_ID its router mangled no longer matches the call, so the error is
//!   ignored there and the caller times out as it would anyway.
//! * **The callee knows who calls.** USER is `<from_platform>.<from_peer>` (RabbitMQ VOLTTRON's
//!   naming of remote users), so a method exported with required capabilities can be granted to
//!   a remote caller by an `auth.json` entry with that `user_id`. VOLTTRON delivers USER `''`
//!   and such methods refuse every remote caller (-32001). SENDER stays `''` as in VOLTTRON (the
//!   reply goes by `from_platform`/`from_peer`, not by SENDER).
//! * **Only links deliver `send_peer`.** From a peer whose routing id does not start with
//!   `instance.`, `send_peer` is dropped and counted (`rejected_external_not_link`); VOLTTRON lets
//!   any local agent forge a remote call.
//! * A body that is not a JSON object, or lacks `to_platform` (`send_platform`) or `to_peer`
//!   (`send_peer`), kills VOLTTRON's router or gets 93: here the first is dropped and counted
//!   (`external_rpc_dropped`), the second answered 93 as in VOLTTRON.
//!
//! # Cost
//!
//! The rewritten body is written once into a scratch buffer kept between calls (released after
//! use above [`super::pubsub::SCRATCH_KEEP_BYTES`]): no allocation in steady state.

use super::SIGNATURE;
use super::envelope::Envelope;
use super::error::{MAX_QUOTED_MSG_ID, VipErrno, error_frames};
use super::external_pubsub::is_link_identity;
use super::links::LinkState;
use super::peers::PeerId;
use super::router::{Full, Outcome, Router, Sink};
use crate::json::emit::emit_latin1_str;
use crate::json::{self, ByteSink, JsonStr, Kind, SinkFull, Value};
use crate::limits::MAX_INSTANCE_NAME_BYTES;
use crate::stats::{self, Stats};

/// Largest `<from_platform>.<from_peer>` user stamped on a delivered `send_peer`.
const MAX_REMOTE_USER_BYTES: usize = MAX_INSTANCE_NAME_BYTES + 1 + 255;

/// Write `body` (a JSON object) with the values of `from_platform` and `from_peer` replaced by
/// JSON strings of `platform` and `peer`; every other byte is copied as it is, so key order and
/// formatting are kept. A key that occurs several times has every occurrence replaced (the last
/// wins in Python anyway); a missing key is appended at the end, as Python's dict assignment does.
///
/// # Errors
/// The sink's [`SinkFull`].
pub fn rewrite_body(
    body: Value<'_>,
    doc: &[u8],
    platform: &[u8],
    peer: &[u8],
    out: &mut impl ByteSink,
) -> Result<(), SinkFull> {
    let range = body.range();
    let mut pos = range.start;
    let (mut saw_platform, mut saw_peer) = (false, false);
    for (k, v) in body.members() {
        let value: &[u8] = if k.eq_latin1(b"from_platform") {
            saw_platform = true;
            platform
        } else if k.eq_latin1(b"from_peer") {
            saw_peer = true;
            peer
        } else {
            continue;
        };
        let r = v.range();
        out.put(doc.get(pos..r.start).unwrap_or_default())?;
        emit_latin1_str(out, value)?;
        pos = r.end;
    }
    let close = range.end.saturating_sub(1); // the object's closing brace
    out.put(doc.get(pos..close).unwrap_or_default())?;
    let mut empty = body.members().next().is_none();
    for (missing, key, value) in
        [(!saw_platform, &b"\"from_platform\": "[..], platform), (!saw_peer, &b"\"from_peer\": "[..], peer)]
    {
        if missing {
            out.put(if empty { b"" } else { b", " })?;
            out.put(key)?;
            emit_latin1_str(out, value)?;
            empty = false;
        }
    }
    out.put(b"}")
}

/// The error number of an error sent to a remote caller over a link: `+113`, `+11` (not JSON,
/// so that a VOLTTRON 9.0.4 router on the way forwards it as text; see the module doc).
pub fn link_errnum(errno: VipErrno) -> &'static [u8] {
    match errno {
        VipErrno::HostUnreachable => b"+113",
        VipErrno::Again => b"+11",
        VipErrno::ProtoNotSupported => b"+93",
    }
}

/// The latin-1 bytes of a string member, into `buf`.
pub(crate) fn member<'a: 'b, 'b>(v: Value<'a>, key: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let s: JsonStr<'a> = v.get(key)?.as_str()?;
    s.to_latin1(buf).ok()
}

impl Router {
    /// `external_rpc send_platform|send_peer BODY` (exactly two arguments).
    pub(super) fn external_rpc(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        sink: &mut impl Sink,
    ) -> Outcome {
        let send_platform = env.arg(0) == b"send_platform";
        let key: &[u8] = if send_platform { b"to_platform" } else { b"to_peer" };
        let doc = env.arg(1);
        let body = match json::parse(doc) {
            Ok(v) if v.kind() == Kind::Object && v.get(key).is_none() => {
                return self.unsupported(stats, from, env, sink);
            }
            Ok(v) if v.kind() == Kind::Object => v,
            _ => {
                if stats::bump_and_should_log(&mut stats.external_rpc_dropped) {
                    log::warn!(
                        "external_rpc {} from {}: body is not a JSON object; dropped",
                        env.arg(0).escape_ascii(),
                        self.peers.identity(from).escape_ascii()
                    );
                }
                return Outcome::Done;
            }
        };
        if send_platform {
            self.send_platform(stats, from, env, body, doc, sink)
        } else {
            self.send_peer(stats, from, env, body, sink)
        }
    }

    /// A local caller's `send_platform`: rewrite and queue on the link, or answer 113/11.
    fn send_platform(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        body: Value<'_>,
        doc: &[u8],
        sink: &mut impl Sink,
    ) -> Outcome {
        let raw_platform = body.get(b"to_platform").and_then(|v| v.as_str()).map_or(&b""[..], |s| s.raw());
        let mut name_buf = [0u8; MAX_INSTANCE_NAME_BYTES];
        let name = member(body, b"to_platform", &mut name_buf);
        let link = name.and_then(|n| self.links.by_name(n)).map(|l| (l.id(), l.state()));
        if !matches!(link, Some((_, LinkState::Up))) && self.bridge.is_on() {
            // No ZMTP link up to that platform: the RabbitMQ bridge carries it (README "RabbitMQ
            // bridge": a platform with a link up is reached over the link).
            return self.bridge_send_platform(stats, from, env, name.unwrap_or(raw_platform), sink);
        }
        let Router { peers, links, info, rpc_body, error_msg_id, .. } = self;
        let me = peers.identity(from);
        let shown = name.unwrap_or(raw_platform);
        let Some((id, LinkState::Up)) = link else {
            if stats::bump_and_should_log(&mut stats.external_rpc_unreachable) {
                log::info!(
                    "send_platform from {} to {:?}: {}; answered 113",
                    me.escape_ascii(),
                    shown.escape_ascii().to_string(),
                    if link.is_some() { "its link is not up" } else { "no link to that platform" }
                );
            }
            let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
            let id = error_msg_id.msg_id(env.msg_id, &mut quoted);
            let f = error_frames(me, id, VipErrno::HostUnreachable, shown, b"external_rpc");
            return Router::reply(stats, sink, from, &f);
        };
        rpc_body.clear();
        let _ = rewrite_body(body, doc, &info.instance_name, me, rpc_body);
        let frames: [&[u8]; 7] =
            [b"", SIGNATURE, env.user_id, env.msg_id, b"external_rpc", b"send_peer", rpc_body.as_slice()];
        let r = sink.deliver_link(id, &frames);
        if rpc_body.capacity() > super::pubsub::SCRATCH_KEEP_BYTES {
            *rpc_body = Vec::new();
        }
        match r {
            Ok(()) => {
                stats.external_rpc_out += 1;
                if let Some(l) = links.get_mut(id) {
                    l.counters.rpc_out += 1;
                }
                Outcome::Done
            }
            Err(Full) => {
                if stats::bump_and_should_log(&mut stats.errors_again) {
                    log::warn!(
                        "send_platform from {}: the link to {} is full; answered 11",
                        me.escape_ascii(),
                        shown.escape_ascii()
                    );
                }
                let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
                let id = error_msg_id.msg_id(env.msg_id, &mut quoted);
                let f = error_frames(me, id, VipErrno::Again, shown, b"external_rpc");
                Router::reply(stats, sink, from, &f)
            }
        }
    }

    /// A remote platform's `send_peer` from its link: deliver to the local callee, or tell the
    /// caller (over our link to its platform) that the callee is not here.
    fn send_peer(
        &mut self,
        stats: &mut Stats,
        from: PeerId,
        env: &Envelope<'_>,
        body: Value<'_>,
        sink: &mut impl Sink,
    ) -> Outcome {
        if !is_link_identity(self.peers.identity(from)) {
            if stats::bump_and_should_log(&mut stats.rejected_external_not_link) {
                log::warn!(
                    "external_rpc send_peer from {} ignored: only platform links (instance.*) may send it",
                    self.peers.identity(from).escape_ascii()
                );
            }
            return Outcome::Done;
        }
        let (mut peer_buf, mut plat_buf, mut caller_buf) = ([0u8; 255], [0u8; MAX_INSTANCE_NAME_BYTES], [0u8; 255]);
        let to_peer = member(body, b"to_peer", &mut peer_buf).unwrap_or_default();
        let platform = member(body, b"from_platform", &mut plat_buf).unwrap_or_default();
        let caller = member(body, b"from_peer", &mut caller_buf).unwrap_or_default();
        match self.deliver_send_peer(stats, env, to_peer, platform, caller, sink) {
            Ok(()) => Outcome::Done,
            Err(errno) => self.callee_unreachable(stats, env, platform, caller, to_peer, errno, sink),
        }
    }

    /// Deliver a remote caller's `send_peer` (frames `env`, BODY `env.arg(1)`) to the local
    /// callee `to_peer`, USER = `<platform>.<caller>` (empty if it cannot be a user name: too
    /// long). `Err` with the error the caller is owed when the callee is not here
    /// (`HostUnreachable`) or its queue is full (`Again`: pausing the remote's link, or the
    /// broker's consumer, would stall all its traffic behind one local peer).
    pub(crate) fn deliver_send_peer(
        &self,
        stats: &mut Stats,
        env: &Envelope<'_>,
        to_peer: &[u8],
        platform: &[u8],
        caller: &[u8],
        sink: &mut impl Sink,
    ) -> Result<(), VipErrno> {
        let mut user = heapless::Vec::<u8, MAX_REMOTE_USER_BYTES>::new();
        let fits = user.extend_from_slice(platform).is_ok() && user.push(b'.').is_ok();
        if !fits || user.extend_from_slice(caller).is_err() {
            user.clear();
        }
        let target = self.peers.lookup(to_peer).filter(|&p| self.peers.is_registered(p));
        let to = target.ok_or(VipErrno::HostUnreachable)?;
        let frames: [&[u8]; 7] = [b"", SIGNATURE, &user, env.msg_id, b"external_rpc", b"send_peer", env.arg(1)];
        match sink.deliver(to, &frames) {
            Ok(()) => {
                stats.external_rpc_in += 1;
                Ok(())
            }
            Err(Full) => {
                let _ = stats::bump_and_should_log(&mut stats.external_rpc_dropped);
                Err(VipErrno::Again)
            }
        }
    }

    /// Error `errno` about `callee` to `caller` on `platform`, over our link to that platform
    /// (dropped and counted when there is none that is up).
    #[allow(clippy::too_many_arguments)]
    fn callee_unreachable(
        &mut self,
        stats: &mut Stats,
        env: &Envelope<'_>,
        platform: &[u8],
        caller: &[u8],
        callee: &[u8],
        errno: VipErrno,
        sink: &mut impl Sink,
    ) -> Outcome {
        let Router { links, error_msg_id, .. } = self;
        let link = links.by_name(platform).filter(|l| l.state() == LinkState::Up).map(|l| l.id());
        if stats::bump_and_should_log(&mut stats.external_rpc_unreachable) {
            log::info!(
                "send_peer from {} to {}: {}; {}",
                platform.escape_ascii(),
                callee.escape_ascii(),
                if errno == VipErrno::Again { "its queue is full" } else { "not connected here" },
                if link.is_some() { "error sent back over the link" } else { "no link back to tell the caller" }
            );
        }
        let Some(id) = link.filter(|_| !caller.is_empty()) else { return Outcome::Done };
        // RECIPIENT: the caller, reached through its platform's router.
        let mut quoted = [0u8; MAX_QUOTED_MSG_ID];
        let msg_id = error_msg_id.msg_id(env.msg_id, &mut quoted);
        let frames: [&[u8]; 9] =
            [caller, SIGNATURE, b"", msg_id, b"error", link_errnum(errno), errno.text(), callee, b"external_rpc"];
        if sink.deliver_link(id, &frames).is_ok()
            && let Some(l) = links.get_mut(id)
        {
            l.counters.rpc_out += 1;
        }
        Outcome::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(doc: &[u8], platform: &[u8], peer: &[u8]) -> Vec<u8> {
        let v = json::parse(doc).unwrap();
        let mut out = Vec::new();
        rewrite_body(v, doc, platform, peer, &mut out).unwrap();
        out
    }

    #[test]
    fn from_fields_are_replaced_in_place() {
        let doc = br#"{"to_platform": "p2", "to_peer": "callee2", "from_platform": "", "from_peer": "", "args": ["{\"jsonrpc\": \"2.0\"}"]}"#;
        assert_eq!(
            rewrite(doc, b"p1", b"caller1"),
            br#"{"to_platform": "p2", "to_peer": "callee2", "from_platform": "p1", "from_peer": "caller1", "args": ["{\"jsonrpc\": \"2.0\"}"]}"#
        );
    }

    #[test]
    fn forged_values_are_overwritten_and_formatting_kept() {
        let doc = b"{ \"from_peer\" :\"admin\",\"to_platform\":\"p2\",\"from_platform\":[1,2],\"from_peer\":null }";
        assert_eq!(
            rewrite(doc, b"p1", b"c\xe9"),
            b"{ \"from_peer\" :\"c\\u00e9\",\"to_platform\":\"p2\",\"from_platform\":\"p1\",\"from_peer\":\"c\\u00e9\" }"
        );
    }

    #[test]
    fn missing_keys_are_appended() {
        assert_eq!(rewrite(b"{}", b"p1", b"c"), br#"{"from_platform": "p1", "from_peer": "c"}"#);
        assert_eq!(
            rewrite(br#"{"to_platform": "p2", "from_peer": "x"}"#, b"p1", b"c"),
            br#"{"to_platform": "p2", "from_peer": "c", "from_platform": "p1"}"#
        );
        assert_eq!(rewrite(b" {\"a\": 1} ", b"p", b"c"), br#"{"a": 1, "from_platform": "p", "from_peer": "c"}"#);
    }
}
