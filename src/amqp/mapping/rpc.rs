//! RPC across instances (memo §5.6, §6.2): VOLTTRON's `external_rpc` subsystem on the ZMQ side,
//! plain VIP-over-RabbitMQ messages of type `RPC` with a foreign instance prefix on the broker.
//!
//! * Outbound: a local agent C sends `['', 'VIP1', U, M, 'external_rpc', 'send_platform',
//!   {"to_platform": X, "to_peer": P, …, "args": A}]` → publish on `volttron`, routing key `X.P`,
//!   mandatory, `app_id N.C`, `type RPC`, `message_id M`, headers `{recipient: X.P, proto: VIP,
//!   user: N.C}`, body = A (the JSON array of JSON-RPC texts), byte for byte.
//! * Inbound: a delivery with routing key `N.C`, type `RPC`, `app_id X.P` (X ≠ N) → to C:
//!   `[C, '', 'VIP1', '', M, 'external_rpc', 'send_peer', {"to_platform": N, "to_peer": C,
//!   "from_platform": X, "from_peer": P, "args": A'}]` where A' is the body array with every
//!   element that is not a string re-serialised as a JSON string (VOLTTRON's dispatcher
//!   pre-serialises, so strings are the rule).
//! * `basic.return` of an outbound RPC (312 NO_ROUTE: nobody bound `X.P`) → VIP error 113 to C.
//! * A VOLTTRON RabbitMQ router's `type: error` message (`rmq_connection.py:534-579`, body
//!   `[113, "No route to host", recipient, subsystem]`) → VIP error to C.

use super::{MapError, Name, dotted, plain_member, put_json_str, put_raw, split_dotted, vip_headers, vip_properties};
use crate::amqp::client::{Delivery, Returned};
use crate::amqp::properties::Properties;
use crate::amqp::table::Value;
use crate::json::{self, Kind};

/// AMQP `type` of RPC messages.
pub const RPC: &[u8] = b"RPC";

/// An outbound RPC ready to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRpc<'a> {
    /// `X.P`.
    pub routing_key: Name,
    /// `N.C`.
    pub app_id: Name,
    /// M, byte for byte.
    pub message_id: &'a [u8],
    /// The `args` array, byte for byte.
    pub body: &'a [u8],
}

impl<'a> OutboundRpc<'a> {
    /// Map a local `external_rpc send_platform` from `sender` (its routing identity) with
    /// MSG_ID `message_id` and JSON `body` (the frame after `send_platform`).
    ///
    /// # Errors
    /// [`MapError::BadBody`] when the body is not an object with string `to_platform` and
    /// `to_peer` (without escapes) and an array `args`; [`MapError::NameTooLong`].
    pub fn from_vip(instance: &[u8], sender: &[u8], message_id: &'a [u8], body: &'a [u8]) -> Result<Self, MapError> {
        let v = json::parse(body).map_err(|_| MapError::BadBody)?;
        let platform = plain_member(&v, b"to_platform").ok_or(MapError::BadBody)?;
        let peer = plain_member(&v, b"to_peer").ok_or(MapError::BadBody)?;
        let args = v.get(b"args").filter(|a| a.kind() == Kind::Array).ok_or(MapError::BadBody)?;
        if platform.is_empty() || platform.contains(&b'.') {
            return Err(MapError::BadBody);
        }
        Ok(OutboundRpc {
            routing_key: dotted(platform, peer)?,
            app_id: dotted(instance, sender)?,
            message_id,
            body: args.raw(),
        })
    }

    /// The headers VOLTTRON sends (`recipient` = routing key, `user` = `app_id`).
    pub fn headers(&self) -> [(&'static [u8], Value<'_>); 3] {
        vip_headers(&self.routing_key, &self.app_id)
    }

    /// The properties, given [`OutboundRpc::headers`].
    pub fn properties<'s>(&'s self, headers: &'s [(&'s [u8], Value<'s>)]) -> Properties<'s> {
        vip_properties(&self.app_id, RPC, self.message_id, headers)
    }
}

/// An inbound RPC for local peer `to_peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundRpc<'a> {
    /// The local peer C.
    pub to_peer: &'a [u8],
    /// The calling instance X.
    pub from_platform: &'a [u8],
    /// The calling agent P.
    pub from_peer: &'a [u8],
    /// M.
    pub message_id: &'a [u8],
    /// The body array as received.
    pub args: &'a [u8],
}

impl<'a> InboundRpc<'a> {
    /// Map a delivery of type `RPC` for instance `instance`.
    ///
    /// # Errors
    /// [`MapError::NotForUs`] (routing key not `N.<peer>`), [`MapError::BadProperties`] (no
    /// `app_id X.P` or `message_id`), [`MapError::SelfEcho`] (X = N), [`MapError::BadBody`]
    /// (body not a JSON array).
    pub fn from_delivery(instance: &[u8], d: &Delivery<'a>, body: &'a [u8]) -> Result<Self, MapError> {
        let (n, to_peer) = split_dotted(d.routing_key).ok_or(MapError::NotForUs)?;
        if n != instance || to_peer.is_empty() {
            return Err(MapError::NotForUs);
        }
        let app_id = d.properties.app_id.ok_or(MapError::BadProperties)?;
        let (from_platform, from_peer) = split_dotted(app_id).ok_or(MapError::BadProperties)?;
        if from_platform == instance {
            return Err(MapError::SelfEcho);
        }
        let message_id = d.properties.message_id.unwrap_or(b"");
        let v = json::parse(body).map_err(|_| MapError::BadBody)?;
        if v.kind() != Kind::Array {
            return Err(MapError::BadBody);
        }
        Ok(InboundRpc { to_peer, from_platform, from_peer, message_id, args: body })
    }

    /// Append the `send_peer` JSON body for the local peer to `out`, within its capacity.
    ///
    /// # Errors
    /// [`MapError::OutputFull`]; [`MapError::BadBody`] if `args` stopped parsing.
    pub fn write_body(&self, instance: &[u8], out: &mut Vec<u8>) -> Result<(), MapError> {
        let start = out.len();
        let r = self.write_body_inner(instance, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn write_body_inner(&self, instance: &[u8], out: &mut Vec<u8>) -> Result<(), MapError> {
        let fields: [(&[u8], &[u8]); 4] = [
            (b"{\"to_platform\": ", instance),
            (b", \"to_peer\": ", self.to_peer),
            (b", \"from_platform\": ", self.from_platform),
            (b", \"from_peer\": ", self.from_peer),
        ];
        for (k, v) in fields {
            put_raw(out, k)?;
            put_json_str(out, v)?;
        }
        put_raw(out, b", \"args\": [")?;
        let v = json::parse(self.args).map_err(|_| MapError::BadBody)?;
        for (i, item) in v.items().enumerate() {
            if i > 0 {
                put_raw(out, b", ")?;
            }
            if item.kind() == Kind::String {
                put_raw(out, item.raw())?;
            } else {
                put_json_str(out, item.raw())?;
            }
        }
        put_raw(out, b"]}")
    }

    /// The VIP frames for C (ROUTER view) around the body written by [`InboundRpc::write_body`].
    pub fn frames<'s>(&'s self, body: &'s [u8]) -> [&'s [u8]; 8] {
        [self.to_peer, b"", b"VIP1", b"", self.message_id, b"external_rpc", b"send_peer", body]
    }
}

/// A VIP error for a local peer, from a `basic.return` or a VOLTTRON router's `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcError<'a> {
    /// The local peer C (from `app_id N.C` or the routing key `N.C`).
    pub to_peer: &'a [u8],
    /// M of the failed message.
    pub message_id: &'a [u8],
    /// ERRNUM as decimal text (`113`).
    pub errnum: &'a [u8],
    /// ERRTEXT.
    pub errtext: &'a [u8],
    /// ORIG_RECIPIENT (`X.P`).
    pub recipient: &'a [u8],
    /// ORIG_SUBSYSTEM.
    pub subsystem: &'a [u8],
}

impl<'a> RpcError<'a> {
    /// A mandatory publish came back: error 113 to the local sender named by its `app_id`.
    ///
    /// # Errors
    /// [`MapError::NotForUs`] when `app_id` is not `N.<peer>`; [`MapError::SelfEcho`] never.
    pub fn from_return(instance: &[u8], r: &Returned<'a>) -> Result<Self, MapError> {
        let (n, to_peer) = r.properties.app_id.and_then(split_dotted).ok_or(MapError::BadProperties)?;
        if n != instance {
            return Err(MapError::NotForUs);
        }
        Ok(RpcError {
            to_peer,
            message_id: r.properties.message_id.unwrap_or(b""),
            errnum: b"113",
            errtext: b"No route to host",
            recipient: r.routing_key,
            subsystem: b"external_rpc",
        })
    }

    /// A VOLTTRON router's `type: error` message for `N.C`: body `[errnum, errmsg, recipient,
    /// subsystem]`, strings without escapes.
    ///
    /// # Errors
    /// [`MapError::NotForUs`], [`MapError::BadBody`].
    pub fn from_error_delivery(instance: &[u8], d: &Delivery<'a>, body: &'a [u8]) -> Result<Self, MapError> {
        let (n, to_peer) = split_dotted(d.routing_key).ok_or(MapError::NotForUs)?;
        if n != instance {
            return Err(MapError::NotForUs);
        }
        let v = json::parse(body).map_err(|_| MapError::BadBody)?;
        let mut it = v.items();
        let errnum = it.next().and_then(|x| x.as_number()).map(|x| x.raw()).ok_or(MapError::BadBody)?;
        let mut s = || it.next().and_then(|x| x.as_str()).and_then(|x| x.as_plain()).ok_or(MapError::BadBody);
        let (errtext, recipient, subsystem) = (s()?, s()?, s()?);
        Ok(RpcError {
            to_peer,
            message_id: d.properties.message_id.unwrap_or(b""),
            errnum,
            errtext,
            recipient,
            subsystem,
        })
    }

    /// The VIP error frames (ROUTER view: routing id first; VIP.md §6).
    pub fn frames(&self) -> [&'a [u8]; 10] {
        [
            self.to_peer,
            b"",
            b"VIP1",
            b"",
            self.message_id,
            b"error",
            self.errnum,
            self.errtext,
            self.recipient,
            self.subsystem,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON whitespace inside an argument that is not a string is escaped as `\u00XX`: the
    /// `send_peer` body takes up to six times the delivery's bytes (what the bridge reserves for
    /// it, `server::broker::map::RPC_GROWTH`).
    #[test]
    fn whitespace_in_an_argument_is_written_six_times_over() {
        let n = 10_000;
        let mut args = b"[[".to_vec();
        args.extend(core::iter::repeat_n(b'\n', n));
        args.extend_from_slice(b"]]");
        let rpc = InboundRpc { to_peer: b"c", from_platform: b"x", from_peer: b"p", message_id: b"m", args: &args };
        let mut out = Vec::with_capacity(128 + 6 * (2 + 2 + args.len()));
        rpc.write_body(b"n", &mut out).unwrap();
        assert!(out.len() > 6 * n, "{} bytes written for {}", out.len(), args.len());
        assert!(json::parse(&out).is_ok_and(|v| v.kind() == Kind::Object));
    }
}
