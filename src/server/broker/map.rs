//! VIP ↔ AMQP for the bridge's connection, with [`crate::amqp::mapping`]: deliveries and
//! returns into the VIP messages the router reads (module doc of [`crate::vip::bridge`]), and
//! the router's [`Bus`] calls into bindings and publishes.

use super::BrokerProtocol;
use crate::amqp::client::{Delivery, EXCHANGE, Publish, PublishError, Returned};
use crate::amqp::mapping::pubsub::{InboundPublish, OutboundPublish, subscription_binding};
use crate::amqp::mapping::rpc::{InboundRpc, OutboundRpc, RpcError};
use crate::amqp::mapping::{MapError, Name, dotted, topic};
use crate::stats::{self, Stats};
use crate::vip::SIGNATURE;
use crate::vip::bridge::{Bus, BusError, BusStatus};

/// How many times its source bytes an inbound RPC's `send_peer` body may take: a name or an
/// argument that is not a string is written as a JSON string, and a control character in it —
/// JSON whitespace (tab, newline, carriage return) between the tokens of an argument included —
/// becomes `\u00XX`. The held message's buffer is reserved for this much.
pub(super) const RPC_GROWTH: usize = 6;

/// Does `key` hold a word that is an AMQP topic wildcard (`*` or `#` alone)?
fn has_wildcard_word(key: &[u8]) -> bool {
    key.split(|&b| b == b'.').any(|w| w == b"*" || w == b"#")
}

impl From<PublishError> for BusError {
    fn from(e: PublishError) -> BusError {
        match e {
            PublishError::NotReady => BusError::Down,
            PublishError::Blocked => BusError::Blocked,
            PublishError::WindowFull => BusError::WindowFull,
            PublishError::TxFull => BusError::TxFull,
            PublishError::TooLarge | PublishError::Encode => BusError::TooLarge,
        }
    }
}

impl From<MapError> for BusError {
    fn from(e: MapError) -> BusError {
        match e {
            MapError::NameTooLong | MapError::OutputFull => BusError::TooLarge,
            _ => BusError::BadBody,
        }
    }
}

impl BrokerProtocol {
    /// The body of `d`, in one slice (copied when the broker split it over frames).
    fn body_of<'a>(&'a mut self, body: crate::amqp::content::Body<'a>) -> &'a [u8] {
        if let Some(b) = body.contiguous() {
            return b;
        }
        self.body.clear();
        body.copy_to(&mut self.body);
        &self.body
    }

    /// Map a delivery into the held VIP message; false (counted) when it maps to nothing.
    pub(super) fn map_delivery(&mut self, d: &Delivery<'_>, stats: &mut Stats) -> bool {
        let instance = core::mem::take(&mut self.instance);
        let mut held = core::mem::take(&mut self.held);
        held.clear();
        let body = self.body_of(d.body);
        let r = match d.properties.kind.unwrap_or_default() {
            b"RPC" => InboundRpc::from_delivery(&instance, d, body).and_then(|rpc| {
                let head: [&[u8]; 6] = [b"", SIGNATURE, b"", rpc.message_id, b"external_rpc", b"send_peer"];
                // The head frames (a message id of up to 255 bytes among them), then the body
                // within what is left: its fixed text (< 128 bytes) and its values, each written
                // at most RPC_GROWTH times its size.
                let reserve = head.iter().map(|f| f.len()).sum::<usize>()
                    + 128
                    + RPC_GROWTH * (instance.len() + rpc.to_peer.len() + rpc.from_platform.len())
                    + RPC_GROWTH * (rpc.from_peer.len() + rpc.args.len());
                held.buf.reserve(reserve);
                head.iter().all(|f| held.push(f)).then_some(()).ok_or(MapError::OutputFull)?;
                let start = held.buf.len();
                rpc.write_body(&instance, &mut held.buf)?;
                held.close_part(start).then_some(()).ok_or(MapError::OutputFull)
            }),
            b"pubsub" => InboundPublish::from_delivery(&instance, d, body).and_then(|p| {
                let frames: [&[u8]; 8] =
                    [b"", SIGNATURE, b"", p.message_id, b"pubsub", b"external_publish", &p.topic, p.body];
                frames.iter().all(|f| held.push(f)).then_some(()).ok_or(MapError::OutputFull)
            }),
            b"error" => RpcError::from_error_delivery(&instance, d, body).and_then(|e| hold_error(&mut held, &e)),
            _ => Err(MapError::BadProperties),
        };
        self.instance = instance;
        self.held = held;
        match r {
            Ok(()) => true,
            Err(MapError::SelfEcho) => {
                stats.amqp_self_echo += 1;
                false
            }
            Err(e) => {
                if stats::bump_and_should_log(&mut stats.amqp_dropped_in) {
                    log::warn!(
                        "RabbitMQ bridge: delivery (type {:?}, routing key {:?}) dropped: {e}",
                        d.properties.kind.unwrap_or_default().escape_ascii().to_string(),
                        d.routing_key.escape_ascii().to_string()
                    );
                }
                false
            }
        }
    }

    /// Map a returned publish (only our RPC is mandatory) into the held error 113 for its
    /// caller; false (counted) otherwise.
    pub(super) fn map_return(&mut self, r: &Returned<'_>, stats: &mut Stats) -> bool {
        let mut held = core::mem::take(&mut self.held);
        held.clear();
        let mapped = RpcError::from_return(&self.instance, r).and_then(|e| hold_error(&mut held, &e));
        self.held = held;
        if mapped.is_ok() {
            stats.amqp_rpc_returned += 1;
            return true;
        }
        let _ = stats::bump_and_should_log(&mut stats.amqp_dropped_in);
        false
    }

    /// The binding key of an `all_platforms` prefix, if it can be one.
    fn prefix_key(prefix: &[u8]) -> Result<Name, BusError> {
        let trimmed = prefix.strip_suffix(b"/").unwrap_or(prefix);
        let mut words = Name::new();
        for &b in trimmed {
            words.push(if b == b'/' { b'.' } else { b }).map_err(|_| BusError::BadName)?;
        }
        if has_wildcard_word(&words) {
            return Err(BusError::BadName);
        }
        subscription_binding(prefix).map_err(|_| BusError::BadName)
    }
}

/// `[C, 'VIP1', '', M, 'error', ERRNUM, ERRTEXT, RECIPIENT, SUBSYSTEM]` for local caller C.
fn hold_error(held: &mut super::Held, e: &RpcError<'_>) -> Result<(), MapError> {
    let frames: [&[u8]; 9] =
        [e.to_peer, SIGNATURE, b"", e.message_id, b"error", e.errnum, e.errtext, e.recipient, e.subsystem];
    frames.iter().all(|f| held.push(f)).then_some(()).ok_or(MapError::OutputFull)
}

impl Bus for BrokerProtocol {
    fn bind_peer(&mut self, identity: &[u8], on: bool) -> Result<(), BusError> {
        let key = dotted(&self.instance, identity).map_err(|_| BusError::BadName)?;
        if has_wildcard_word(identity) || identity.is_empty() {
            return Err(BusError::BadName);
        }
        if on {
            self.client.bind(&key).map_err(|e| match e {
                crate::amqp::bindings::BindError::Full => BusError::BindingsFull,
                crate::amqp::bindings::BindError::TooLong => BusError::BadName,
            })
        } else {
            self.client.unbind(&key);
            Ok(())
        }
    }

    fn set_prefixes(&mut self, prefixes: &[Vec<u8>]) -> (usize, usize) {
        let (mut full, mut bad) = (0, 0);
        let mut next: Vec<Name> = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            match Self::prefix_key(p) {
                Ok(k) if !next.contains(&k) => next.push(k),
                Ok(_) => {}
                Err(_) => bad += 1,
            }
        }
        for old in &self.prefix_keys {
            if !next.contains(old) {
                self.client.unbind(old);
            }
        }
        next.retain(|k| {
            let bound = self.prefix_keys.contains(k) || self.client.bind(k).is_ok();
            full += usize::from(!bound);
            bound
        });
        self.prefix_keys = next;
        (full, bad)
    }

    fn send_rpc(&mut self, caller: &[u8], msg_id: &[u8], body: &[u8]) -> Result<(), BusError> {
        let rpc = OutboundRpc::from_vip(&self.instance, caller, msg_id, body)?;
        let headers = rpc.headers();
        let p = Publish {
            exchange: EXCHANGE,
            routing_key: &rpc.routing_key,
            mandatory: true,
            properties: rpc.properties(&headers),
            body: rpc.body,
        };
        self.client.publish(&p).map(|_| ()).map_err(BusError::from)
    }

    fn publish(&mut self, publisher: &[u8], msg_id: &[u8], topic_: &[u8], body: &[u8]) -> Result<(), BusError> {
        let out = OutboundPublish {
            routing_key: topic::publish_key(&self.instance, topic_)?,
            app_id: dotted(&self.instance, publisher)?,
            publisher,
            message_id: msg_id,
            body,
        };
        let headers = out.headers();
        let p = Publish {
            exchange: EXCHANGE,
            routing_key: &out.routing_key,
            mandatory: false,
            properties: out.properties(&headers),
            body: out.body,
        };
        self.client.publish(&p).map(|_| ()).map_err(BusError::from)
    }

    fn status(&self) -> BusStatus {
        let (bindings, bound) = self.client.bindings();
        BusStatus { unconfirmed: self.client.unconfirmed(), bindings, bound, blocked: self.client.is_blocked() }
    }
}
