//! The RabbitMQ bridge's settings in `$VOLTTRON_HOME/config` (issue #15; operators and scripts
//! depend on these exact keys):
//!
//! ```ini
//! [volttron]
//! instance-name = gw17                       # the gateway's instance name N on the vhost
//! [viprouter]
//! rabbitmq-url = amqps://broker.example:5671/volttron     # or amqp://USER:PASS@HOST:PORT/VHOST
//! rabbitmq-ca-file = /etc/viprouter/rmq-ca.pem            # amqps: the broker's CA (required)
//! rabbitmq-cert-file = /etc/viprouter/gw17.pem            # amqps: client certificate -> EXTERNAL
//! rabbitmq-key-file = /etc/viprouter/gw17.key
//! rabbitmq-export = devices/ alerts/                      # topic prefixes published to the broker
//! ```
//!
//! The URL follows RabbitMQ's URI spec (`rabbitmq.com/docs/uri-spec`): scheme `amqp` (port
//! 5672) or `amqps` (5671); user and password percent-decoded (default `guest`/`guest` for
//! PLAIN); host a name, an IPv4 address or `[IPv6]`; the path is the vhost, percent-decoded,
//! one segment (`/volttron`, `/%2F` for `/`; no path at all means `/`). Query parameters are
//! refused rather than silently ignored.
//!
//! Authentication: EXTERNAL when `amqps` with a client certificate (VOLTTRON's default
//! RabbitMQ set-up), else PLAIN (VOLTTRON's `ssl: false`).

use std::fmt;
use std::path::PathBuf;

/// A parsed `rabbitmq-url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpUrl {
    /// `amqps`.
    pub tls: bool,
    /// User (decoded), if the URL has one.
    pub user: Option<String>,
    /// Password (decoded), if the URL has one.
    pub password: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Virtual host (decoded).
    pub vhost: String,
}

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(pub &'static str);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn percent_decode(s: &str, what: &'static str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(UrlError(what))?;
            out.push(v);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError(what))
}

impl AmqpUrl {
    /// Parse `amqp[s]://[user[:password]@]host[:port][/vhost]`.
    ///
    /// # Errors
    /// [`UrlError`] naming what is wrong.
    pub fn parse(url: &str) -> Result<AmqpUrl, UrlError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("amqps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("amqp://") {
            (false, r)
        } else {
            return Err(UrlError("expected amqp://… or amqps://…"));
        };
        if rest.contains(['?', '#']) {
            return Err(UrlError("query parameters and fragments are not supported"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((a, b)) => (
                    Some(percent_decode(a, "bad %-escape in the user")?),
                    Some(percent_decode(b, "bad %-escape in the password")?),
                ),
                None => (Some(percent_decode(u, "bad %-escape in the user")?), None),
            },
        };
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => {
                if tls {
                    5671
                } else {
                    5672
                }
            }
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or(UrlError("port must be 1..65535"))?,
        };
        let vhost = match path {
            None => "/".to_string(),
            Some(p) if p.contains('/') => return Err(UrlError("the vhost is one path segment (write / as %2F)")),
            Some(p) => percent_decode(p, "bad %-escape in the vhost")?,
        };
        if vhost.len() > 255 || user.as_ref().is_some_and(|u| u.len() > 255) {
            return Err(UrlError("vhost or user over 255 bytes"));
        }
        Ok(AmqpUrl { tls, user, password, host, port, vhost })
    }
}

fn split_host_port(hp: &str) -> Result<(String, Option<&str>), UrlError> {
    if let Some(r) = hp.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or(UrlError("unclosed [ in the host"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError("bad IPv6 address"));
        }
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or(UrlError("junk after ]"))?),
        };
        return Ok((h.to_string(), port));
    }
    let (h, port) = match hp.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hp, None),
    };
    let ok = !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        return Err(UrlError("missing or malformed host"));
    }
    Ok((h.to_string(), port))
}

/// The bridge's settings as configured (validated by [`RabbitMq::check`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RabbitMq {
    /// `rabbitmq-url`, parsed.
    pub url: Option<AmqpUrl>,
    /// `rabbitmq-ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `rabbitmq-cert-file`.
    pub cert_file: Option<PathBuf>,
    /// `rabbitmq-key-file`.
    pub key_file: Option<PathBuf>,
    /// `rabbitmq-export`: topic prefixes (character prefixes, as VIP).
    pub export: Vec<String>,
}

impl RabbitMq {
    /// Whether the bridge is configured (a URL is set).
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Whether the client authenticates with EXTERNAL (amqps and a client certificate).
    pub fn external(&self) -> bool {
        self.url.as_ref().is_some_and(|u| u.tls) && self.cert_file.is_some()
    }

    /// Cross-key checks, once the whole configuration is read: `(key, why)` of the first
    /// problem.
    ///
    /// # Errors
    /// The key to blame and why.
    pub fn check(&self, instance_name: &str) -> Result<(), (&'static str, String)> {
        let Some(url) = &self.url else {
            let stray =
                [("rabbitmq-ca-file", self.ca_file.is_some()), ("rabbitmq-cert-file", self.cert_file.is_some())];
            if let Some((k, _)) = stray.iter().find(|(_, set)| *set) {
                return Err((k, "set without rabbitmq-url".into()));
            }
            return Ok(());
        };
        if !cfg!(feature = "rabbitmq") {
            return Err(("rabbitmq-url", "this build has no RabbitMQ support (cargo feature `rabbitmq`)".into()));
        }
        if instance_name.is_empty() || instance_name.contains(['.', '*', '#', ' ']) {
            return Err((
                "rabbitmq-url",
                format!(
                    "[volttron] instance-name {instance_name:?} cannot name an instance on RabbitMQ \
                     (set one without '.', '*', '#' or blanks)"
                ),
            ));
        }
        if url.tls && !cfg!(feature = "rabbitmq-tls") {
            return Err(("rabbitmq-url", "this build has no TLS (cargo feature `rabbitmq-tls`): use amqp://".into()));
        }
        if url.tls && self.ca_file.is_none() {
            return Err(("rabbitmq-ca-file", "amqps needs the broker's CA (rabbitmq-ca-file)".into()));
        }
        if !url.tls && (self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()) {
            return Err(("rabbitmq-url", "certificate files are set but the URL is amqp:// (use amqps://)".into()));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(("rabbitmq-key-file", "rabbitmq-cert-file and rabbitmq-key-file go together".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = AmqpUrl::parse("amqp://admin:p%40ss@rmq.example:5673/volttron").unwrap();
        assert_eq!(
            u,
            AmqpUrl {
                tls: false,
                user: Some("admin".into()),
                password: Some("p@ss".into()),
                host: "rmq.example".into(),
                port: 5673,
                vhost: "volttron".into()
            }
        );
        let u = AmqpUrl::parse("amqps://10.0.0.5").unwrap();
        assert_eq!((u.tls, u.port, u.vhost.as_str(), u.user), (true, 5671, "/", None));
        assert_eq!(AmqpUrl::parse("amqp://h/").unwrap().vhost, "");
        assert_eq!(AmqpUrl::parse("amqp://h/%2F").unwrap().vhost, "/");
        let u = AmqpUrl::parse("amqp://[::1]:5672/v").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 5672));
        for bad in [
            "http://h/v",
            "amqp://",
            "amqp://h:0/v",
            "amqp://h:99999/v",
            "amqp://h:x/v",
            "amqp://h/a/b",
            "amqp://h/v?heartbeat=5",
            "amqp://u:%zz@h/v",
            "amqp://[::1/v",
            "amqp://[nothex]/v",
            "amqp://h h/v",
        ] {
            assert!(AmqpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[cfg(not(feature = "rabbitmq"))]
    fn a_build_without_the_feature_refuses_the_url() {
        let r = RabbitMq { url: Some(AmqpUrl::parse("amqp://h/v").unwrap()), ..Default::default() };
        let (key, why) = r.check("gw1").unwrap_err();
        assert_eq!(key, "rabbitmq-url");
        assert!(why.contains("no RabbitMQ support"), "{why}");
    }

    #[test]
    #[cfg(all(feature = "rabbitmq", not(feature = "rabbitmq-tls")))]
    fn a_build_without_tls_refuses_amqps() {
        let r = RabbitMq {
            url: Some(AmqpUrl::parse("amqps://h/v").unwrap()),
            ca_file: Some("ca".into()),
            ..Default::default()
        };
        let (key, why) = r.check("gw1").unwrap_err();
        assert_eq!(key, "rabbitmq-url");
        assert!(why.contains("no TLS"), "{why}");
        let plain = RabbitMq { url: Some(AmqpUrl::parse("amqp://h/v").unwrap()), ..Default::default() };
        assert!(plain.check("gw1").is_ok());
    }

    #[test]
    #[cfg(feature = "rabbitmq-tls")]
    fn cross_checks() {
        let mut r = RabbitMq { url: Some(AmqpUrl::parse("amqps://h/v").unwrap()), ..Default::default() };
        assert_eq!(r.check("gw1").unwrap_err().0, "rabbitmq-ca-file");
        r.ca_file = Some("ca.pem".into());
        assert!(r.check("gw1").is_ok());
        assert!(!r.external());
        r.cert_file = Some("c.pem".into());
        assert_eq!(
            r.check("gw1").unwrap_err().0,
            if cfg!(feature = "rabbitmq") { "rabbitmq-key-file" } else { "rabbitmq-url" }
        );
        r.key_file = Some("c.key".into());
        assert!(r.external());
        assert!(r.check("gw.1").is_err(), "a '.' in the instance name breaks <instance>.<identity> keys");
        r.url = Some(AmqpUrl::parse("amqp://h/v").unwrap());
        assert!(r.check("gw1").is_err(), "certificates with amqp://");
        let none = RabbitMq { ca_file: Some("x".into()), ..Default::default() };
        assert_eq!(none.check("gw1").unwrap_err().0, "rabbitmq-ca-file");
    }
}
