//! The RabbitMQ bridge's connection (issue #15; memo `multiplatform.md` §6): the event loop's
//! [`Protocol`] around the sans-IO AMQP client ([`crate::amqp::client::Client`]), with rustls in
//! between for `amqps` (feature `rabbitmq-tls`).
//!
//! * **Bytes.** What the socket delivers goes to the client (plain) or through TLS first
//!   (decrypted into a plaintext buffer of this protocol). What the client queues — its
//!   handshake, the topology, publishes, acks, heartbeats, close — stays in the client's own
//!   transmit buffer until the server flushes the connection: [`Protocol::take_output`] moves
//!   it into the connection's transmit queue a bounded chunk at a time
//!   ([`TAKE_OUTPUT_BYTES`]), so that a slow socket fills the *client's* buffer and its
//!   `amqp-tx-bytes` limit refuses further publishes instead of the queue growing.
//! * **Events.** The handshake ends in [`Input::Ready`] (the server reports the bridge up);
//!   every delivery and every returned publish is mapped (`map.rs`) into a VIP message the
//!   router reads like a remote link's ([`crate::vip::bridge`]) and held as [`Input::Message`]:
//!   [`Protocol::release`] acknowledges it. Confirms, `connection.blocked`, oversize deliveries
//!   are counted here (the [`Context`] lends the counters); a broker close, malformed input or a
//!   missed heartbeat closes the connection ([`CloseReason::Foreign`]) and the router redials.
//! * **Timers.** [`Protocol::next_timer`] is the client's (heartbeats every 10 s, the
//!   handshake deadline): the server's tick runs them.
//! * **The bus.** [`Protocol::bus`] lends the router this connection as a
//!   [`crate::vip::bridge::Bus`] (binding peers and prefixes, publishing RPC and exports;
//!   `map.rs`).
//!
//! Cost: the plain path allocates nothing once its buffers have grown to the largest message
//! (the client's transmit buffer is reserved at creation, the held message's buffer is kept);
//! TLS allocates inside rustls.

#[cfg(feature = "rabbitmq-tls")]
use std::sync::Arc;

use super::close::CloseReason;
use super::protocol::{Context, Outbound, Protocol};
use crate::amqp::client::{Client, Credentials, Settings, max_body};
use crate::amqp::mapping::Name;
use crate::config::Config;
use crate::config::rabbitmq::AmqpUrl;
use crate::limits::Limits;
use crate::time::Instant;
use crate::vip::bridge::Bus;
use crate::zmtp::session::Input;
use crate::zmtp::{Message, Part, Parts};

mod map;
mod pump;

/// Bytes the connection's transmit queue may hold before more of the client's buffer is moved
/// into it: what the socket does not take stays in the client's buffer, where its
/// `amqp-tx-bytes` limit applies.
pub const TAKE_OUTPUT_BYTES: usize = 64 * 1024;

/// What the held VIP message of an inbound RPC holds besides its re-escaped arguments: six
/// frames before the body (a MSG_ID of at most 255 bytes, 280 in all), the body's fixed text
/// (84) and four names escaped (instance, peer, platform and peer of the caller: at most
/// `RPC_GROWTH` × 508 + 8), rounded up.
const HELD_EXTRA_BYTES: usize = 4096;

/// What every connection of the bridge is made from (read once at start-up).
#[derive(Clone)]
pub struct BrokerConfig {
    /// Host to resolve and connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The client's settings (credentials, vhost, instance, limits).
    pub settings: Settings,
    /// `amqps`: the TLS client configuration (the broker's CA, our certificate for EXTERNAL).
    #[cfg(feature = "rabbitmq-tls")]
    pub tls: Option<Arc<crate::amqp::tls::ClientConfig>>,
    /// For logs and `query stats`: `amqp[s]://host:port/vhost` (no credentials).
    pub label: String,
    /// `rabbitmq-export`.
    pub export: Vec<Vec<u8>>,
}

impl core::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BrokerConfig").field("label", &self.label).finish_non_exhaustive()
    }
}

impl BrokerConfig {
    /// The bridge of `config` (`None`: no `rabbitmq-url`), with the limits in force.
    ///
    /// # Errors
    /// A certificate file that cannot be read or parsed (named in the message).
    pub fn from_config(config: &Config, limits: &Limits) -> Result<Option<BrokerConfig>, String> {
        let r = &config.rabbitmq;
        let Some(url) = &r.url else { return Ok(None) };
        let credentials = if r.external() {
            Credentials::External
        } else {
            Credentials::Plain {
                user: url.user.clone().unwrap_or_else(|| "guest".into()),
                password: url.password.clone().unwrap_or_else(|| "guest".into()),
            }
        };
        let mut settings = Settings::new(credentials, &url.vhost, &config.instance_name, limits);
        settings.max_body = max_body(limits);
        Ok(Some(BrokerConfig {
            host: url.host.clone(),
            port: url.port,
            #[cfg(feature = "rabbitmq-tls")]
            tls: tls_config(r, url)?,
            label: label(url),
            settings,
            export: r.export.iter().map(|p| p.as_bytes().to_vec()).collect(),
        }))
    }
}

/// `amqp[s]://host:port/vhost` (vhost percent-encoded as the URL needs it).
fn label(url: &AmqpUrl) -> String {
    let host = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
    let vhost = url.vhost.replace('%', "%25").replace('/', "%2F");
    format!("{}://{host}:{}/{vhost}", if url.tls { "amqps" } else { "amqp" }, url.port)
}

/// The TLS client configuration of an `amqps` URL: the CA file, and the client certificate and
/// key when given (EXTERNAL).
#[cfg(feature = "rabbitmq-tls")]
fn tls_config(
    r: &crate::config::rabbitmq::RabbitMq,
    url: &AmqpUrl,
) -> Result<Option<Arc<crate::amqp::tls::ClientConfig>>, String> {
    if !url.tls {
        return Ok(None);
    }
    let read = |key: &str, p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, String> {
        p.as_ref().map(|p| std::fs::read(p).map_err(|e| format!("{key} {}: {e}", p.display()))).transpose()
    };
    let ca = read("rabbitmq-ca-file", &r.ca_file)?.ok_or("amqps needs rabbitmq-ca-file")?;
    let cert = read("rabbitmq-cert-file", &r.cert_file)?;
    let key = read("rabbitmq-key-file", &r.key_file)?;
    let client = cert.as_deref().zip(key.as_deref());
    crate::amqp::tls::client_config(&ca, client).map(Some).map_err(|e| e.to_string())
}

/// The VIP message the router reads for one delivery or return (see `map.rs`).
#[derive(Debug, Default)]
struct Held {
    buf: Vec<u8>,
    parts: Parts,
}

impl Held {
    fn clear(&mut self) {
        self.buf.clear();
        self.parts.clear();
    }

    /// Append one frame (false when the frame list is full: the message is dropped).
    fn push(&mut self, frame: &[u8]) -> bool {
        let start = self.buf.len();
        self.buf.extend_from_slice(frame);
        self.close_part(start)
    }

    /// The bytes from `start` to the end are one frame.
    fn close_part(&mut self, start: usize) -> bool {
        let (Ok(s), Ok(l)) = (u32::try_from(start), u32::try_from(self.buf.len() - start)) else { return false };
        self.parts.push(Part { start: s, len: l }).is_ok()
    }
}

/// One connection of the bridge (see the module doc).
pub struct BrokerProtocol {
    client: Client,
    instance: Vec<u8>,
    #[cfg(feature = "rabbitmq-tls")]
    tls: Option<crate::amqp::tls::Tls>,
    /// TLS: decrypted bytes the client has not consumed yet.
    plain: Vec<u8>,
    held: Held,
    /// Receive-buffer bytes to drop when the held message is released (plain: the AMQP bytes
    /// up to its end; TLS: the ciphertext fed in that call).
    release_rx: usize,
    /// TLS: plaintext bytes to drop when the held message is released.
    release_plain: usize,
    /// The delivery to acknowledge when the held message is released.
    ack: Option<u64>,
    /// The `all_platforms` bindings wanted ([`Bus::set_prefixes`]).
    prefix_keys: Vec<Name>,
    /// A body that came in several frames, made contiguous.
    body: Vec<u8>,
}

/// What one pass over the received bytes came to.
enum Step {
    /// Nothing more to do with what is buffered: `consumed` bytes done, `need` more wanted.
    Need { consumed: usize, need: usize },
    /// The topology is declared: the bridge is up.
    Ready { consumed: usize },
    /// A VIP message is held for the router.
    Message { consumed: usize },
}

impl BrokerProtocol {
    /// A connection for `config`.
    ///
    /// # Errors
    /// The TLS session cannot be made for the host name.
    pub fn new(config: &BrokerConfig) -> Result<BrokerProtocol, String> {
        #[cfg(feature = "rabbitmq-tls")]
        let tls = match &config.tls {
            Some(c) => Some(crate::amqp::tls::Tls::new(c.clone(), &config.host).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(BrokerProtocol {
            client: Client::new(config.settings.clone()),
            instance: config.settings.instance.as_bytes().to_vec(),
            #[cfg(feature = "rabbitmq-tls")]
            tls,
            plain: Vec::new(),
            held: Held::default(),
            release_rx: 0,
            release_plain: 0,
            ack: None,
            prefix_keys: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Bytes of the largest delivery and its mapping, each kept at its largest while the
    /// connection lasts: the copy of a body the broker split over frames (at most [`max_body`];
    /// RabbitMQ splits every body over frame-max) and the VIP message it is mapped to — a publish
    /// holds its body and names, an inbound RPC its `send_peer` body re-escaped, for which
    /// `RPC_GROWTH` (6) times the delivery's bytes are reserved, and written for arguments full
    /// of JSON whitespace (`HELD_EXTRA_BYTES` more: the frames before it and the names).
    /// Reached by a split delivery of `max-msg-bytes` and an inbound RPC of that size.
    pub fn delivery_bytes(limits: &Limits) -> usize {
        let body = usize::try_from(max_body(limits)).unwrap_or(usize::MAX);
        body.saturating_add(body.saturating_mul(map::RPC_GROWTH)).saturating_add(HELD_EXTRA_BYTES)
    }

    /// Bytes of the `all_platforms` binding keys ([`Bus::set_prefixes`]): one [`Name`] per
    /// distinct prefix, at most `max-subscriptions`, and while they change the new list and the
    /// old one. Reached with every subscription an `all_platforms` one of its own prefix.
    pub fn prefix_key_bytes(limits: &Limits) -> usize {
        // A `Name`'s 264 bytes on a 64-bit target, an upper bound on any (the printed bound is
        // the same on every build).
        const NAME_BYTES: usize = 264;
        const _: () = assert!(core::mem::size_of::<Name>() <= NAME_BYTES);
        limits.max_subscriptions.saturating_mul(2 * NAME_BYTES)
    }

    /// `amqps`: the decrypted bytes the client has not consumed — the delivery being assembled,
    /// in frames of frame-max as RabbitMQ sends them
    /// ([`crate::amqp::client::message_frames_bytes`]), and the rest of the ciphertext read with
    /// it (decrypted at once: a receive buffer, at most [`crate::limits::RX_BUF_BUSY_BYTES`]) —
    /// and rustls' own buffers
    /// ([`crate::amqp::tls::Tls::BUFFER_BYTES`]). Reached by a delivery of `max-msg-bytes`.
    #[cfg(feature = "rabbitmq-tls")]
    pub fn tls_bytes(limits: &Limits) -> usize {
        crate::amqp::client::message_frames_bytes(limits)
            .saturating_add(crate::limits::RX_BUF_BUSY_BYTES)
            .saturating_add(crate::amqp::tls::Tls::BUFFER_BYTES)
    }

    /// Publishes sent on this connection and not confirmed (their fate is unknown once it
    /// ends).
    pub fn unconfirmed(&self) -> usize {
        self.client.unconfirmed()
    }
}

impl Protocol for BrokerProtocol {
    fn connected(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        self.client.begin(cx.now);
        self.take_output(cx.now, out)
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, buf: &mut [u8], out: &mut Vec<u8>) -> Result<Input, CloseReason> {
        let r = self.input(cx, buf);
        // Handshake replies, acks, a close-ok: out now (also before an error closes it).
        let w = self.take_output(cx.now, out);
        let input = r?;
        w?;
        Ok(input)
    }

    fn identity(&self) -> &[u8] {
        b""
    }

    fn split<'a>(&'a mut self, _buf: &'a [u8]) -> (Message<'a>, Option<Outbound<'a>>) {
        (Message::new(&self.held.buf, &self.held.parts), None)
    }

    fn release(&mut self) -> usize {
        if let Some(tag) = self.ack.take() {
            self.client.ack(tag, false);
        }
        self.held.clear();
        let plain = core::mem::take(&mut self.release_plain);
        self.plain.drain(..plain.min(self.plain.len()));
        core::mem::take(&mut self.release_rx)
    }

    fn outbound(&mut self) -> Option<Outbound<'_>> {
        None
    }

    fn take_output(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        self.pump(now, out, TAKE_OUTPUT_BYTES.saturating_sub(out.len()))
    }

    fn next_timer(&self) -> Option<Instant> {
        self.client.next_timer()
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Result<(), CloseReason> {
        let r = self.client.poll_timers(cx.now);
        self.take_output(cx.now, out)?;
        r.map_err(|e| {
            log::warn!("RabbitMQ bridge: {e}");
            CloseReason::Foreign("AMQP heartbeat or handshake timeout")
        })
    }

    fn bus(&mut self) -> Option<&mut dyn Bus> {
        Some(self)
    }
}
