//! VIP ↔ AMQP, as VOLTTRON 9.0.4's RabbitMQ message bus maps them (memo §5.3–§5.6), for a
//! gateway that is VOLTTRON instance `N` on the vhost (memo §6.2). Pure functions: VIP frames
//! and JSON bodies in, routing keys, properties and bodies out (and back), borrowed or built
//! in fixed-size [`Name`]s and caller-owned buffers; nothing here allocates.
//!
//! * [`rpc`]: outbound RPC (`external_rpc send_platform` → publish `X.P`, mandatory), inbound
//!   RPC (delivery `N.C` type `RPC` → `external_rpc send_peer` to C), `basic.return` → VIP
//!   error 113, VOLTTRON routers' `error` messages → VIP error.
//! * [`pubsub`]: outbound publishes on exported prefixes (`__pubsub__.N.<topic>.#`), inbound
//!   publishes (self-echo dropped), `all_platforms` subscription bindings.
//! * [`topic`]: VOLTTRON's topic ↔ routing-key conversion (`rmq_pubsub.py` `_form_routing_key`
//!   and `_get_original_topic`) and where it differs from VIP's character prefixes.
//!
//! Property conventions (memo §5.3): SENDER ↔ `app_id` (`<instance>.<identity>`), RECIPIENT ↔
//! routing key and `headers.recipient`, PROTO ↔ `headers.proto = "VIP"`, USER_ID ↔
//! `headers.user`, MSG_ID ↔ `message_id` (byte-exact), SUBSYSTEM ↔ `type`, ARGS ↔ JSON body
//! with `content_type: application/json`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod pubsub;
pub mod rpc;
pub mod topic;

use core::fmt;

use super::properties::{Headers, Properties};
use super::table::Value;

/// A routing key, `app_id` or topic: at most 255 bytes (an AMQP short string), on the stack.
pub type Name = heapless::Vec<u8, 255>;

/// `content_type` of every VOLTTRON message.
pub const CONTENT_TYPE: &[u8] = b"application/json";

/// Why a message could not be mapped. The bridge drops it and counts the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The VIP body is not the JSON the operation needs (or a name in it has escapes).
    BadBody,
    /// A routing key or `app_id` would be over 255 bytes.
    NameTooLong,
    /// The AMQP message lacks a property the mapping needs, or has one of the wrong shape.
    BadProperties,
    /// The message is addressed to another instance, or has a routing key of another shape.
    NotForUs,
    /// Our own publish coming back (RabbitMQ ignores `no_local`): dropped.
    SelfEcho,
    /// The output buffer's capacity would be exceeded.
    OutputFull,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapError::BadBody => "body is not the expected JSON",
            MapError::NameTooLong => "routing key over 255 bytes",
            MapError::BadProperties => "missing or malformed properties",
            MapError::NotForUs => "routing key not addressed to this instance",
            MapError::SelfEcho => "own publish echoed back",
            MapError::OutputFull => "output buffer full",
        })
    }
}

/// `a` `.` `b` as a [`Name`].
///
/// # Errors
/// [`MapError::NameTooLong`].
pub fn dotted(a: &[u8], b: &[u8]) -> Result<Name, MapError> {
    let mut n = Name::new();
    n.extend_from_slice(a).map_err(|_| MapError::NameTooLong)?;
    n.push(b'.').map_err(|_| MapError::NameTooLong)?;
    n.extend_from_slice(b).map_err(|_| MapError::NameTooLong)?;
    Ok(n)
}

/// Split `<instance>.<identity>` at the first `.` (VOLTTRON: `app_id.split('.', 1)`).
pub fn split_dotted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == b'.')?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// VOLTTRON's VIP headers (`recipient`, `proto`, `user`), as table entries.
pub fn vip_headers<'a>(recipient: &'a [u8], user: &'a [u8]) -> [(&'static [u8], Value<'a>); 3] {
    [(b"recipient", Value::LongStr(recipient)), (b"proto", Value::LongStr(b"VIP")), (b"user", Value::LongStr(user))]
}

/// The properties VOLTTRON publishes with.
pub fn vip_properties<'a>(
    app_id: &'a [u8],
    kind: &'a [u8],
    message_id: &'a [u8],
    headers: &'a [(&'a [u8], Value<'a>)],
) -> Properties<'a> {
    Properties {
        content_type: Some(CONTENT_TYPE),
        headers: Some(Headers::Entries(headers)),
        message_id: Some(message_id),
        kind: Some(kind),
        app_id: Some(app_id),
        ..Properties::default()
    }
}

/// Append `s` as a JSON string: `"` and `\` escaped, control characters as `\u00XX`, every
/// other byte (UTF-8 included) as is — valid JSON for `json.loads`, and the same text VOLTTRON
/// writes with `ensure_ascii=False`.
///
/// # Errors
/// [`MapError::OutputFull`] when `out` has no room (capacity is never grown).
pub fn put_json_str(out: &mut Vec<u8>, s: &[u8]) -> Result<(), MapError> {
    let need = 2 + s
        .iter()
        .map(|&b| {
            if b < 0x20 {
                6
            } else if b == b'"' || b == b'\\' {
                2
            } else {
                1
            }
        })
        .sum::<usize>();
    if out.capacity() - out.len() < need {
        return Err(MapError::OutputFull);
    }
    out.push(b'"');
    for &b in s {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                let lo = HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0');
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
    Ok(())
}

/// Append raw bytes within capacity.
///
/// # Errors
/// [`MapError::OutputFull`].
pub fn put_raw(out: &mut Vec<u8>, s: &[u8]) -> Result<(), MapError> {
    if out.capacity() - out.len() < s.len() {
        return Err(MapError::OutputFull);
    }
    out.extend_from_slice(s);
    Ok(())
}

/// A plain JSON string (no escapes) of `v`'s member `key`.
fn plain_member<'a>(v: &crate::json::Value<'a>, key: &[u8]) -> Option<&'a [u8]> {
    v.get(key)?.as_str()?.as_plain()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_and_names() {
        let mut out = Vec::with_capacity(64);
        put_json_str(&mut out, b"a\"b\\c\n\xc3\xa9").unwrap();
        assert_eq!(out, b"\"a\\\"b\\\\c\\u000a\xc3\xa9\"");
        let mut small = Vec::with_capacity(2);
        assert_eq!(put_json_str(&mut small, b"x"), Err(MapError::OutputFull));
        assert_eq!(split_dotted(b"v1.agent.x"), Some((&b"v1"[..], &b"agent.x"[..])));
        assert_eq!(split_dotted(b"v1"), None);
        assert_eq!(&dotted(b"v1", b"a").unwrap()[..], b"v1.a");
        assert_eq!(dotted(&[b'x'; 200], &[b'y'; 60]), Err(MapError::NameTooLong));
    }
}
