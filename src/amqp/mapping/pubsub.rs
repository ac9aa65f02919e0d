//! Pubsub across instances (memo §5.4, §6.2).
//!
//! * Outbound: after local delivery, a publish from local agent A on topic T under one of the
//!   export prefixes (`rabbitmq-export`) → publish `__pubsub__.N.<T>.#`, not mandatory, with
//!   `app_id N.A`, `type pubsub`, `message_id M`, headers `{recipient: '', proto: VIP, user: A}`
//!   (the bare identity, as `rmq_pubsub.py` sends it) and the delivery body `{"sender", "bus",
//!   "headers", "message"}` byte for byte. Topics outside the list never cross the uplink: the
//!   broker gives publishers no interest information.
//! * Inbound: a delivery of type `pubsub` whose `app_id` is not `N.…` (RabbitMQ ignores
//!   `no_local`, so our own exports come back when a binding matches) → an external publish
//!   on topic `'/'.join(key.split('.')[2:-1])` for local subscribers whose prefix matches it,
//!   body as received.
//! * Subscriptions: each local `all_platforms` prefix p binds `__pubsub__.*.<p>.#`.

use super::{MapError, Name, dotted, topic, vip_headers, vip_properties};
use crate::amqp::client::Delivery;
use crate::amqp::properties::Properties;
use crate::amqp::table::Value;

/// AMQP `type` of pubsub messages.
pub const PUBSUB: &[u8] = b"pubsub";

/// An outbound publish ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundPublish<'a> {
    /// `__pubsub__.N.<topic>.#`.
    pub routing_key: Name,
    /// `N.A`.
    pub app_id: Name,
    /// A (bare identity: `headers.user`).
    pub publisher: &'a [u8],
    /// M.
    pub message_id: &'a [u8],
    /// The delivery body.
    pub body: &'a [u8],
}

impl<'a> OutboundPublish<'a> {
    /// Map a local publish, or `Ok(None)` when `topic` is under no export prefix.
    ///
    /// # Errors
    /// [`MapError::NameTooLong`] when the key or `app_id` would be over 255 bytes.
    pub fn from_vip<S: AsRef<[u8]>>(
        instance: &[u8],
        export: &[S],
        publisher: &'a [u8],
        message_id: &'a [u8],
        topic_: &[u8],
        body: &'a [u8],
    ) -> Result<Option<Self>, MapError> {
        if !topic::exported(topic_, export) {
            return Ok(None);
        }
        Ok(Some(OutboundPublish {
            routing_key: topic::publish_key(instance, topic_)?,
            app_id: dotted(instance, publisher)?,
            publisher,
            message_id,
            body,
        }))
    }

    /// The headers (`recipient` empty, `user` the bare publisher).
    pub fn headers(&self) -> [(&'static [u8], Value<'a>); 3] {
        vip_headers(b"", self.publisher)
    }

    /// The properties, given [`OutboundPublish::headers`].
    pub fn properties<'s>(&'s self, headers: &'s [(&'s [u8], Value<'s>)]) -> Properties<'s> {
        vip_properties(&self.app_id, PUBSUB, self.message_id, headers)
    }
}

/// An inbound publish for local subscribers.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundPublish<'a> {
    /// The publishing instance X.
    pub instance: &'a [u8],
    /// The topic, `/`-separated.
    pub topic: Name,
    /// M.
    pub message_id: &'a [u8],
    /// The body as received.
    pub body: &'a [u8],
}

impl<'a> InboundPublish<'a> {
    /// Map a delivery of type `pubsub` for instance `instance`.
    ///
    /// # Errors
    /// [`MapError::SelfEcho`] (our own export), [`MapError::NotForUs`] (not a pubsub key),
    /// [`MapError::BadProperties`] (no `app_id`).
    pub fn from_delivery(instance: &[u8], d: &Delivery<'a>, body: &'a [u8]) -> Result<Self, MapError> {
        let app_id = d.properties.app_id.ok_or(MapError::BadProperties)?;
        if app_id.strip_prefix(instance).is_some_and(|r| r.first() == Some(&b'.')) {
            return Err(MapError::SelfEcho);
        }
        let (from, topic) = topic::parse_key(d.routing_key).ok_or(MapError::NotForUs)?;
        Ok(InboundPublish { instance: from, topic, message_id: d.properties.message_id.unwrap_or(b""), body })
    }

    /// The VIP frames for subscriber `sub` (ROUTER view), as a local router delivers an
    /// external publish (memo §3).
    pub fn frames<'s>(&'s self, sub: &'s [u8]) -> [&'s [u8]; 9] {
        [sub, b"", b"VIP1", b"", self.message_id, b"pubsub", b"publish", &self.topic, self.body]
    }
}

/// The binding for a local `all_platforms` subscription prefix.
///
/// # Errors
/// [`MapError::NameTooLong`].
pub fn subscription_binding(prefix: &[u8]) -> Result<Name, MapError> {
    topic::subscription_key(prefix)
}
