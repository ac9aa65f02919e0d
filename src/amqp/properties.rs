//! The content header frame and basic's 14 properties (spec §4.2.6.1, class `basic` in
//! amqp0-9-1.xml).
//!
//! ```text
//! [class-id:2 = 60][weight:2 = 0][body-size:8][property-flags:2][properties present, in order]
//! ```
//! Flag bits from 15 down: content-type, content-encoding, headers, delivery-mode, priority,
//! correlation-id, reply-to, expiration, message-id, timestamp, type, user-id, app-id,
//! cluster-id (reserved); bit 0 would announce another flag word, which basic never needs, so
//! it is refused like any bit below 2.
//!
//! VOLTTRON's RabbitMQ mapping (memo §5.3) uses `content_type`, `headers`
//! (`recipient`/`proto`/`user`), `message_id`, `type` and `app_id`; all 14 are parsed.

use super::frame;
use super::method::class;
use super::table::{self, Table, Value};
use super::wire::{self, Reader};
use super::{EncodeError, Error};

const FLAG_CONTENT_TYPE: u16 = 1 << 15;
const FLAG_CONTENT_ENCODING: u16 = 1 << 14;
const FLAG_HEADERS: u16 = 1 << 13;
const FLAG_DELIVERY_MODE: u16 = 1 << 12;
const FLAG_PRIORITY: u16 = 1 << 11;
const FLAG_CORRELATION_ID: u16 = 1 << 10;
const FLAG_REPLY_TO: u16 = 1 << 9;
const FLAG_EXPIRATION: u16 = 1 << 8;
const FLAG_MESSAGE_ID: u16 = 1 << 7;
const FLAG_TIMESTAMP: u16 = 1 << 6;
const FLAG_TYPE: u16 = 1 << 5;
const FLAG_USER_ID: u16 = 1 << 4;
const FLAG_APP_ID: u16 = 1 << 3;
const FLAG_CLUSTER_ID: u16 = 1 << 2;
const KNOWN_FLAGS: u16 = 0xfffc;

/// A message's `headers` property: parsed from a frame, or entries to encode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Headers<'a> {
    /// A table as received (or any validated table).
    Table(Table<'a>),
    /// Entries to encode, in order (the publish path builds them on the stack).
    Entries(&'a [(&'a [u8], Value<'a>)]),
}

impl<'a> Headers<'a> {
    /// The value of the first entry named `key`.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        match self {
            Headers::Table(t) => t.get(key),
            Headers::Entries(e) => e.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
        }
    }
}

/// The 14 basic properties; `None` = absent (flag clear).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Properties<'a> {
    /// MIME type (`application/json` for VOLTTRON).
    pub content_type: Option<&'a [u8]>,
    /// MIME encoding.
    pub content_encoding: Option<&'a [u8]>,
    /// Application headers.
    pub headers: Option<Headers<'a>>,
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    /// 0–9.
    pub priority: Option<u8>,
    /// Correlation id.
    pub correlation_id: Option<&'a [u8]>,
    /// Reply-to queue.
    pub reply_to: Option<&'a [u8]>,
    /// Per-message TTL (text).
    pub expiration: Option<&'a [u8]>,
    /// Message id (VIP MSG_ID).
    pub message_id: Option<&'a [u8]>,
    /// Seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Message type (VIP SUBSYSTEM).
    pub kind: Option<&'a [u8]>,
    /// Authenticated user (validated by RabbitMQ when set).
    pub user_id: Option<&'a [u8]>,
    /// Application id (VIP SENDER as `<instance>.<identity>`).
    pub app_id: Option<&'a [u8]>,
    /// Reserved (cluster-id).
    pub cluster_id: Option<&'a [u8]>,
}

/// A parsed content header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContentHeader<'a> {
    /// Total body bytes announced (the body frames must add up to it).
    pub body_size: u64,
    /// The properties.
    pub properties: Properties<'a>,
}

fn opt_str<'a>(r: &mut Reader<'a>, flags: u16, bit: u16) -> Result<Option<&'a [u8]>, Error> {
    if flags & bit != 0 { r.shortstr().map(Some) } else { Ok(None) }
}

fn opt_u8(r: &mut Reader<'_>, flags: u16, bit: u16) -> Result<Option<u8>, Error> {
    if flags & bit != 0 { r.u8().map(Some) } else { Ok(None) }
}

impl<'a> ContentHeader<'a> {
    /// Parse a content header frame's payload.
    ///
    /// # Errors
    /// [`Error::BadContentHeader`] (class not basic, weight not 0),
    /// [`Error::BadPropertyFlags`], [`Error::Truncated`], [`Error::TrailingBytes`] and the
    /// headers table's errors.
    pub fn parse(payload: &'a [u8]) -> Result<ContentHeader<'a>, Error> {
        let mut r = Reader::new(payload);
        if r.u16()? != class::BASIC || r.u16()? != 0 {
            return Err(Error::BadContentHeader);
        }
        let body_size = r.u64()?;
        let f = r.u16()?;
        if f & !KNOWN_FLAGS != 0 {
            return Err(Error::BadPropertyFlags(f));
        }
        let r = &mut r;
        let properties = Properties {
            content_type: opt_str(r, f, FLAG_CONTENT_TYPE)?,
            content_encoding: opt_str(r, f, FLAG_CONTENT_ENCODING)?,
            headers: if f & FLAG_HEADERS != 0 { Some(Headers::Table(Table::parse(r)?)) } else { None },
            delivery_mode: opt_u8(r, f, FLAG_DELIVERY_MODE)?,
            priority: opt_u8(r, f, FLAG_PRIORITY)?,
            correlation_id: opt_str(r, f, FLAG_CORRELATION_ID)?,
            reply_to: opt_str(r, f, FLAG_REPLY_TO)?,
            expiration: opt_str(r, f, FLAG_EXPIRATION)?,
            message_id: opt_str(r, f, FLAG_MESSAGE_ID)?,
            timestamp: if f & FLAG_TIMESTAMP != 0 { Some(r.u64()?) } else { None },
            kind: opt_str(r, f, FLAG_TYPE)?,
            user_id: opt_str(r, f, FLAG_USER_ID)?,
            app_id: opt_str(r, f, FLAG_APP_ID)?,
            cluster_id: opt_str(r, f, FLAG_CLUSTER_ID)?,
        };
        r.finish()?;
        Ok(ContentHeader { body_size, properties })
    }
}

impl Properties<'_> {
    fn flags(&self) -> u16 {
        let bits = [
            (self.content_type.is_some(), FLAG_CONTENT_TYPE),
            (self.content_encoding.is_some(), FLAG_CONTENT_ENCODING),
            (self.headers.is_some(), FLAG_HEADERS),
            (self.delivery_mode.is_some(), FLAG_DELIVERY_MODE),
            (self.priority.is_some(), FLAG_PRIORITY),
            (self.correlation_id.is_some(), FLAG_CORRELATION_ID),
            (self.reply_to.is_some(), FLAG_REPLY_TO),
            (self.expiration.is_some(), FLAG_EXPIRATION),
            (self.message_id.is_some(), FLAG_MESSAGE_ID),
            (self.timestamp.is_some(), FLAG_TIMESTAMP),
            (self.kind.is_some(), FLAG_TYPE),
            (self.user_id.is_some(), FLAG_USER_ID),
            (self.app_id.is_some(), FLAG_APP_ID),
            (self.cluster_id.is_some(), FLAG_CLUSTER_ID),
        ];
        bits.iter().filter(|(on, _)| *on).fold(0, |acc, (_, bit)| acc | bit)
    }

    /// Append the properties (flags word, then those present).
    ///
    /// # Errors
    /// [`EncodeError`] when a string is over 255 bytes or the headers over their type.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let put = |out: &mut Vec<u8>, s: Option<&[u8]>| s.map_or(Ok(()), |s| wire::put_shortstr(out, s));
        wire::put_u16(out, self.flags());
        put(out, self.content_type)?;
        put(out, self.content_encoding)?;
        match self.headers {
            Some(Headers::Table(t)) => wire::put_longstr(out, t.raw())?,
            Some(Headers::Entries(e)) => table::put_table(out, e)?,
            None => {}
        }
        if let Some(v) = self.delivery_mode {
            out.push(v);
        }
        if let Some(v) = self.priority {
            out.push(v);
        }
        put(out, self.correlation_id)?;
        put(out, self.reply_to)?;
        put(out, self.expiration)?;
        put(out, self.message_id)?;
        if let Some(v) = self.timestamp {
            wire::put_u64(out, v);
        }
        put(out, self.kind)?;
        put(out, self.user_id)?;
        put(out, self.app_id)?;
        put(out, self.cluster_id)
    }
}

/// Append a whole content header frame on `channel`.
///
/// # Errors
/// [`EncodeError`] as [`Properties::emit`]; the buffer is cut back on error.
pub fn put_content_header(
    out: &mut Vec<u8>,
    channel: u16,
    body_size: u64,
    props: &Properties<'_>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let at = frame::begin(out, frame::HEADER, channel);
    wire::put_u16(out, class::BASIC);
    wire::put_u16(out, 0);
    wire::put_u64(out, body_size);
    let r = props.emit(out).and_then(|()| frame::end(out, at));
    if r.is_err() {
        out.truncate(start);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::frame::Frame;

    /// The properties VOLTTRON publishes an RPC with (memo §5.3, observed in E2).
    #[test]
    fn volttron_rpc_properties_round_trip() {
        let hdrs: [(&[u8], Value<'_>); 3] = [
            (b"recipient", Value::LongStr(b"v1.agent_b")),
            (b"proto", Value::LongStr(b"VIP")),
            (b"user", Value::LongStr(b"v1.agent_a")),
        ];
        let p = Properties {
            content_type: Some(b"application/json"),
            headers: Some(Headers::Entries(&hdrs)),
            message_id: Some(b"1.123"),
            kind: Some(b"RPC"),
            app_id: Some(b"v1.agent_a"),
            ..Properties::default()
        };
        let mut out = Vec::new();
        put_content_header(&mut out, 1, 42, &p).unwrap();
        let (f, _) = Frame::parse(&out, 4096).unwrap().unwrap();
        let h = ContentHeader::parse(f.payload).unwrap();
        assert_eq!(h.body_size, 42);
        assert_eq!(h.properties.app_id, Some(&b"v1.agent_a"[..]));
        assert_eq!(h.properties.kind, Some(&b"RPC"[..]));
        let hd = h.properties.headers.unwrap();
        assert_eq!(hd.get(b"recipient"), Some(Value::LongStr(b"v1.agent_b")));
        assert_eq!(hd.get(b"proto"), Some(Value::LongStr(b"VIP")));
        assert_eq!(h.properties.delivery_mode, None);
    }

    #[test]
    fn unknown_flags_and_other_classes_are_refused() {
        let mut p = vec![0, 60, 0, 0];
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        assert_eq!(ContentHeader::parse(&p), Err(Error::BadPropertyFlags(1)));
        p[1] = 50;
        assert_eq!(ContentHeader::parse(&p), Err(Error::BadContentHeader));
        let mut q = vec![0, 60, 0, 0];
        q.extend_from_slice(&0u64.to_be_bytes());
        q.extend_from_slice(&[0x80, 0, 5, b'a']);
        assert_eq!(ContentHeader::parse(&q), Err(Error::Truncated));
    }
}
