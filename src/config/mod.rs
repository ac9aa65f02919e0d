//! Configuration: command line, environment and `$VOLTTRON_HOME/config`, validated into one
//! [`Config`] (VIP.md §14). Command-line values win over the file for single values;
//! `vip-address` accumulates from both, as in VOLTTRON.
//!
//! The `[volttron]` section is VOLTTRON's own (unknown keys there are ignored: the platform
//! keeps many keys the router does not need). The `[viprouter]` section holds the router's own
//! settings: every limit of [`crate::limits`] may be lowered there (never raised); an unknown
//! key there is an error, with its line. Other sections, and lines before the first header, are
//! skipped with a warning, as VOLTTRON skips them.

pub mod discovery;
pub mod ini;
pub mod rabbitmq;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::limits::{LimitError, Limits};
use crate::vip::error::ErrorMsgId;

/// The `[volttron]` keys the router reads; every other key of that section is VOLTTRON's alone
/// and ignored. This list gates [`Config::apply_file`] (a key missing here is never read) and
/// `tests/manpages.rs` checks that viprouter.conf(5) and the shipped config document each one.
pub const VOLTTRON_KEYS: [&str; 11] = [
    "vip-address",
    "address",
    "vip-local-address",
    "instance-name",
    "allow-auth",
    "auth-enabled",
    "message-bus",
    "agent-monitor-frequency",
    "volttron-central-address",
    "volttron-central-serverkey",
    "bind-web-address",
];

/// The `[viprouter]` keys besides the limits ([`Limits::NAMES`]), each with its default as the
/// file would write it; any other key of that section is an error. Gates
/// [`Config::apply_file`]; `tests/manpages.rs` checks that viprouter.conf(5) documents each key
/// with this default and that the shipped config shows it.
/// An empty default is written `key =` (not configured: the stats publish off and its sender the
/// router's own identity; the RabbitMQ bridge off).
pub const VIPROUTER_KEYS: [(&str, &str); 10] = [
    ("identity-binding", "False"),
    ("error-msg-id", "agent-readable"),
    ("stats-topic", ""),
    ("stats-interval", "60"),
    ("stats-sender", ""),
    // The RabbitMQ bridge (issue #15; `rabbitmq`): empty = not configured.
    ("rabbitmq-url", ""),
    ("rabbitmq-ca-file", ""),
    ("rabbitmq-cert-file", ""),
    ("rabbitmq-key-file", ""),
    ("rabbitmq-export", ""),
];

/// The longest `stats-interval`, in seconds (a day).
pub const MAX_STATS_INTERVAL_S: u64 = 86_400;

/// Every key of the `[viprouter]` section: [`VIPROUTER_KEYS`], then the limits.
pub fn viprouter_keys() -> impl Iterator<Item = &'static str> {
    VIPROUTER_KEYS.into_iter().map(|(key, _)| key).chain(Limits::NAMES)
}

/// The default of a `[viprouter]` key as the file would write it (a limit's compiled
/// capacity); `None` for an unknown key.
pub fn viprouter_default(key: &str) -> Option<String> {
    VIPROUTER_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, default)| (*default).to_string())
        .or_else(|| Limits::bounds(key).map(|(ceiling, _)| ceiling.to_string()))
}

/// Command-line values that feed the configuration (parsed by `main` with argh).
#[derive(Clone, Debug, Default)]
pub struct CliValues {
    /// `--vip-address`, repeatable.
    pub vip_addresses: Vec<String>,
    /// `--vip-local-address`.
    pub vip_local_address: Option<String>,
    /// `--instance-name`.
    pub instance_name: Option<String>,
    /// `--volttron-home`.
    pub volttron_home: Option<String>,
    /// `--allow-auth`.
    pub allow_auth: Option<bool>,
    /// `--setup-mode`.
    pub setup_mode: bool,
    /// `--auth-reports`.
    pub auth_reports: bool,
}

/// The validated configuration of one router.
#[derive(Clone, Debug)]
pub struct Config {
    /// `$VOLTTRON_HOME` (absolute, no trailing `/`).
    pub volttron_home: PathBuf,
    /// Extra bind addresses (`vip-address`).
    pub vip_addresses: Vec<String>,
    /// The local ipc endpoint, always bound.
    pub local_address: String,
    /// `instance-name`.
    pub instance_name: String,
    /// `allow-auth`: CURVE + auth.json when true, NULL everywhere when false.
    pub allow_auth: bool,
    /// Effective limits.
    pub limits: Limits,
    /// `agent-monitor-frequency` as configured (text), if set.
    pub agent_monitor_frequency: Option<String>,
    /// `volttron-central-address`.
    pub volttron_central_address: String,
    /// `volttron-central-serverkey`.
    pub volttron_central_serverkey: String,
    /// `bind-web-address`.
    pub bind_web_address: String,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// `[viprouter] identity-binding`: refuse a peer whose ZMTP identity differs from its
    /// auth entry's `identity` (VIP.md §9.8). Unset: off for a VOLTTRON 9 home (VOLTTRON does
    /// not bind them), on for a modular home (`crate::auth::credentials`).
    pub identity_binding: Option<bool>,
    /// `--setup-mode`: admit peers that auth.json refuses, as `volttron --setup-mode` does
    /// (`server::auth_report`).
    pub setup_mode: bool,
    /// `--auth-reports`: tell `platform.auth` about refused (and setup-mode admitted) peers
    /// (`server::auth_report`).
    pub auth_reports: bool,
    /// The RabbitMQ bridge (`[viprouter] rabbitmq-*`; disabled without `rabbitmq-url`).
    pub rabbitmq: rabbitmq::RabbitMq,
    /// `[viprouter] error-msg-id`: `agent-readable` (default) writes a MSG_ID that is valid JSON
    /// as a JSON string in the errors the router generates, so VOLTTRON's agent library matches
    /// them (an RPC to a missing peer raises `Unreachable`); `verbatim` echoes it byte-exact
    /// (`vip::error`).
    pub error_msg_id: ErrorMsgId,
    /// `[viprouter] stats-topic`: publish the router's counters on this topic (empty: never).
    pub stats_topic: String,
    /// `[viprouter] stats-interval`: seconds between two such publishes.
    pub stats_interval_s: u64,
    /// `[viprouter] stats-sender`: their sender and USER_ID (empty: the router's identity).
    pub stats_sender: String,
}

/// A configuration problem, with where it is.
#[derive(Debug)]
pub enum ConfigError {
    /// The config file cannot be read.
    Read(PathBuf, std::io::Error),
    /// A malformed line.
    Syntax(PathBuf, usize),
    /// A bad value.
    Value {
        /// The file (or `command line`).
        file: String,
        /// 1-based line, 0 for the command line.
        line: usize,
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            ConfigError::Syntax(p, l) => write!(f, "{}:{l}: expected `key = value` or `[section]`", p.display()),
            ConfigError::Value { file, line, key, why } => write!(f, "{file}:{line}: {key}: {why}"),
        }
    }
}

impl Config {
    /// Build the configuration from command-line values, the environment and the file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line and key.
    pub fn load(cli: &CliValues) -> Result<Config, ConfigError> {
        let home = cli
            .volttron_home
            .clone()
            .or_else(|| std::env::var("VOLTTRON_HOME").ok())
            .unwrap_or_else(|| "~/.volttron".to_string());
        let volttron_home = normalize_home(&home);
        let mut cfg = Config {
            local_address: format!("ipc://@{}/run/vip.socket", volttron_home.display()),
            volttron_home,
            vip_addresses: Vec::new(),
            instance_name: String::new(),
            allow_auth: true,
            limits: Limits::COMPILED,
            agent_monitor_frequency: None,
            volttron_central_address: String::new(),
            volttron_central_serverkey: String::new(),
            bind_web_address: String::new(),
            config_file: None,
            identity_binding: None,
            setup_mode: cli.setup_mode,
            auth_reports: cli.auth_reports,
            rabbitmq: rabbitmq::RabbitMq::default(),
            error_msg_id: ErrorMsgId::default(),
            stats_topic: String::new(),
            stats_interval_s: 60,
            stats_sender: String::new(),
        };
        let file = cfg.volttron_home.join("config");
        if std::env::var_os("SKIP_VOLTTRON_CONFIG").is_none() && file.exists() {
            let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::Read(file.clone(), e))?;
            cfg.apply_file(&file, &text)?;
            cfg.config_file = Some(file);
        }
        cfg.vip_addresses.extend(cli.vip_addresses.iter().cloned());
        if let Some(v) = &cli.vip_local_address {
            cfg.local_address = v.clone();
        }
        if let Some(v) = &cli.instance_name {
            cfg.instance_name = v.clone();
        }
        if let Some(v) = cli.allow_auth {
            cfg.allow_auth = v;
        }
        if cfg.instance_name.is_empty() {
            // VOLTTRON's default: the first vip-address (sic), else the host name (VIP.md §14.2).
            cfg.instance_name = match cfg.vip_addresses.first() {
                Some(a) => a.clone(),
                None => nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            };
        }
        cfg.check_rabbitmq()?;
        Ok(cfg)
    }

    /// The RabbitMQ keys' cross-checks, once every source is applied (the instance name may come
    /// from the command line).
    ///
    /// # Errors
    /// [`ConfigError::Value`] naming the key.
    pub fn check_rabbitmq(&self) -> Result<(), ConfigError> {
        self.rabbitmq.check(&self.instance_name).map_err(|(key, why)| ConfigError::Value {
            file: self.config_file.as_ref().map_or_else(|| "config".to_string(), |p| p.display().to_string()),
            line: 0,
            key: key.to_string(),
            why,
        })
    }

    /// Apply the entries of a config file.
    ///
    /// # Errors
    /// [`ConfigError`] for syntax errors and bad values.
    pub fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let entries = ini::parse(text).map_err(|e| ConfigError::Syntax(path.to_path_buf(), e.line))?;
        let file = path.display().to_string();
        let mut skipped: Vec<&str> = Vec::new();
        for e in &entries {
            let bad = |why: String| ConfigError::Value { file: file.clone(), line: e.line, key: e.key.clone(), why };
            match (e.section.as_str(), e.key.as_str()) {
                ("volttron", k) if !VOLTTRON_KEYS.contains(&k) => {}
                ("viprouter", k) if !viprouter_keys().any(|n| n == k) => return Err(bad("unknown setting".into())),
                // modular VOLTTRON's name for it (repeatable, or several on indented lines).
                ("volttron", "vip-address" | "address") => {
                    self.vip_addresses.extend(e.value.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string))
                }
                ("volttron", "vip-local-address") => self.local_address = e.value.clone(),
                ("volttron", "instance-name") => self.instance_name = e.value.clone(),
                // `auth-enabled` is modular VOLTTRON's name; it reads it the same way
                // (`ServerOptions.adjust_incoming_field_value`: only `False` is false).
                ("volttron", "allow-auth" | "auth-enabled") => {
                    // VOLTTRON (`main.py`, and agents' `is_auth_enabled`): only the exact text
                    // `False` turns auth off; `false`, `no`, `0`, … leave it on.
                    self.allow_auth = e.value != "False";
                    if self.allow_auth && ini::parse_bool(&e.value) == Some(false) {
                        log::warn!(
                            "{file}:{}: {} = {}: only `False` turns auth off (as in VOLTTRON); auth stays on",
                            e.line,
                            e.key,
                            e.value
                        );
                    }
                }
                ("volttron", "agent-monitor-frequency") => self.agent_monitor_frequency = Some(e.value.clone()),
                ("volttron", "volttron-central-address") => self.volttron_central_address = e.value.clone(),
                ("volttron", "volttron-central-serverkey") => self.volttron_central_serverkey = e.value.clone(),
                ("volttron", "bind-web-address") => self.bind_web_address = e.value.clone(),
                ("volttron", "message-bus") if e.value != "zmq" => {
                    return Err(bad(format!("{:?} is not served by viprouter (only zmq)", e.value)));
                }
                ("volttron", _) => {}
                ("viprouter", "identity-binding") => {
                    self.identity_binding =
                        Some(ini::parse_bool(&e.value).ok_or_else(|| bad("expected True or False".into()))?);
                }
                ("viprouter", "rabbitmq-url") if e.value.is_empty() => self.rabbitmq.url = None,
                ("viprouter", "rabbitmq-url") => {
                    let u = rabbitmq::AmqpUrl::parse(&e.value)
                        .map_err(|u| bad(format!("{u} (amqp[s]://USER:PASS@HOST:PORT/VHOST)")))?;
                    self.rabbitmq.url = Some(u);
                }
                ("viprouter", "rabbitmq-ca-file") => self.rabbitmq.ca_file = non_empty_path(&e.value),
                ("viprouter", "rabbitmq-cert-file") => self.rabbitmq.cert_file = non_empty_path(&e.value),
                ("viprouter", "rabbitmq-key-file") => self.rabbitmq.key_file = non_empty_path(&e.value),
                ("viprouter", "rabbitmq-export") => {
                    self.rabbitmq.export = e.value.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect();
                }
                ("viprouter", "error-msg-id") => {
                    self.error_msg_id = ErrorMsgId::from_config(&e.value)
                        .ok_or_else(|| bad("expected agent-readable or verbatim".into()))?;
                }
                ("viprouter", k) if k.starts_with("stats-") => self.apply_stats(k, &e.value).map_err(bad)?,
                ("viprouter", key) => {
                    let v: u64 = e.value.parse().map_err(|_| bad("expected a whole number".into()))?;
                    self.limits.lower(key, v).map_err(|le| match le {
                        LimitError::Unknown => bad("unknown setting".into()),
                        other => bad(other.to_string()),
                    })?;
                }
                (s, _) => {
                    // VOLTTRON reads only its own section and skips the rest (and lines before
                    // the first header): warn once per section, do not refuse to start.
                    if !skipped.contains(&s) {
                        log::warn!(
                            "{file}:{}: section {} is not read (only [volttron] and [viprouter])",
                            e.line,
                            if s.is_empty() { "(none: before the first header)".to_string() } else { format!("[{s}]") }
                        );
                        skipped.push(s);
                    }
                }
            }
        }
        Ok(())
    }

    /// One of the `[viprouter] stats-*` keys (the router's own stats publish).
    fn apply_stats(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "stats-topic" => self.stats_topic = value.to_string(),
            "stats-interval" => {
                self.stats_interval_s = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_STATS_INTERVAL_S).contains(s))
                    .ok_or_else(|| format!("expected whole seconds from 1 to {MAX_STATS_INTERVAL_S}"))?;
            }
            "stats-sender" if value.len() > crate::limits::MAX_IDENTITY_BYTES => {
                return Err(format!("longer than {} bytes", crate::limits::MAX_IDENTITY_BYTES));
            }
            "stats-sender" => self.stats_sender = value.to_string(),
            _ => return Err("unknown setting".into()),
        }
        Ok(())
    }
}

fn non_empty_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// Expand `~` and `$VAR`, make absolute, strip a trailing `/` (VIP.md §2.5).
pub fn normalize_home(home: &str) -> PathBuf {
    let mut s = home.to_string();
    if let Some(rest) = s.strip_prefix('~') {
        let h = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
        s = format!("{h}{rest}");
    }
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    let p = PathBuf::from(&s);
    if p.is_absolute() { p } else { std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_and_errors_name_the_line() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        assert_eq!(c.local_address, "ipc://@/nonexistent/vh/run/vip.socket");
        c.apply_file(
            Path::new("cfg"),
            "[volttron]\nvip-address = tcp://127.0.0.1:1\nallow-auth = False\n[viprouter]\nmax-connections = 10\n",
        )
        .unwrap();
        assert_eq!(c.vip_addresses, vec!["tcp://127.0.0.1:1"]);
        assert!(!c.allow_auth);
        assert_eq!(c.limits.max_connections, 10);
        let err = c.apply_file(Path::new("cfg"), "[viprouter]\nmax-connections = 99999999\n").unwrap_err();
        assert!(err.to_string().starts_with("cfg:2: max-connections: exceeds the compiled capacity"), "{err}");
        let err = c.apply_file(Path::new("cfg"), "[viprouter]\nbogus = 1\n").unwrap_err();
        assert_eq!(err.to_string(), "cfg:2: bogus: unknown setting");
        assert_eq!(c.error_msg_id, ErrorMsgId::AgentReadable);
        c.apply_file(Path::new("cfg"), "[viprouter]\nerror-msg-id = verbatim\n").unwrap();
        assert_eq!(c.error_msg_id, ErrorMsgId::Verbatim);
        let err = c.apply_file(Path::new("cfg"), "[viprouter]\nerror-msg-id = quoted\n").unwrap_err();
        assert_eq!(err.to_string(), "cfg:2: error-msg-id: expected agent-readable or verbatim");
    }

    /// VOLTTRON (`main.py`, `is_auth_enabled`) turns auth off only for the exact text `False`;
    /// `false`, `no`, `0`, `off` and anything else leave it on, for the platform and its agents.
    #[test]
    fn allow_auth_is_off_only_for_exact_false() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        for (v, want) in [
            ("False", false),
            ("'False'", false),
            ("false", true),
            ("no", true),
            ("0", true),
            ("off", true),
            ("True", true),
            ("maybe", true),
        ] {
            c.allow_auth = !want;
            c.apply_file(Path::new("cfg"), &format!("[volttron]\nallow-auth = {v}\n")).unwrap();
            assert_eq!(c.allow_auth, want, "allow-auth = {v}");
        }
    }

    /// modular VOLTTRON's keys: `address` (repeated, or continued on indented lines) adds bind
    /// addresses like `vip-address`; `auth-enabled` is `allow-auth`.
    #[test]
    fn modular_keys() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        c.apply_file(
            Path::new("cfg"),
            "[volttron]\naddress = tcp://127.0.0.1:1\naddress = tcp://127.0.0.1:2\n  tcp://127.0.0.1:3\nauth-enabled = False\n",
        )
        .unwrap();
        assert_eq!(c.vip_addresses, vec!["tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"]);
        assert!(!c.allow_auth);
        c.apply_file(Path::new("cfg"), "[volttron]\nauth-enabled = True\n").unwrap();
        assert!(c.allow_auth);
    }

    /// VOLTTRON reads only its own section: other sections and lines before the first header are
    /// skipped (warned), not fatal.
    #[test]
    fn other_sections_are_skipped() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        c.apply_file(Path::new("cfg"), "orphan = 1\n[web]\nbind = x\n[volttron]\ninstance-name = v1\n[Web]\ny = 2\n")
            .unwrap();
        assert_eq!(c.instance_name, "v1");
    }

    /// VOLTTRON splits values with `shlex.split(value, comments=True)`: `#` ends the value.
    #[test]
    fn inline_comments_end_the_value() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        c.apply_file(
            Path::new("cfg"),
            "[volttron]\nvip-address = tcp://127.0.0.1:22916 # public\nallow-auth = False # test rig\ninstance-name = v1 #x\n[viprouter]\nmax-connections = 10 # small\n",
        )
        .unwrap();
        assert_eq!(c.vip_addresses, vec!["tcp://127.0.0.1:22916"]);
        assert!(!c.allow_auth);
        assert_eq!(c.instance_name, "v1");
        assert_eq!(c.limits.max_connections, 10);
    }

    /// The exact keys (#15).
    #[test]
    fn rabbitmq_keys() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        assert!(!c.rabbitmq.enabled());
        c.apply_file(
            Path::new("cfg"),
            "[volttron]\ninstance-name = gw17\n[viprouter]\nrabbitmq-url = amqps://rmq.example:5671/volttron\n\
             rabbitmq-ca-file = /etc/ca.pem\nrabbitmq-cert-file = /etc/gw17.pem\nrabbitmq-key-file = /etc/gw17.key\n\
             rabbitmq-export = devices/ alerts/\n",
        )
        .unwrap();
        let r = &c.rabbitmq;
        assert_eq!(
            r.url.as_ref().map(|u| (u.host.as_str(), u.port, u.vhost.as_str(), u.tls)),
            Some(("rmq.example", 5671, "volttron", true))
        );
        assert_eq!(r.export, vec!["devices/", "alerts/"]);
        assert!(r.external());
        if cfg!(feature = "rabbitmq-tls") {
            c.check_rabbitmq().unwrap();
        } else {
            let e = c.check_rabbitmq().unwrap_err().to_string();
            assert!(e.contains("no RabbitMQ support") || e.contains("no TLS"), "{e}");
        }
        let err = c.apply_file(Path::new("cfg"), "[viprouter]\nrabbitmq-url = amqp://h:70000/v\n").unwrap_err();
        assert_eq!(err.to_string(), "cfg:2: rabbitmq-url: port must be 1..65535 (amqp[s]://USER:PASS@HOST:PORT/VHOST)");
        if cfg!(feature = "rabbitmq-tls") {
            c.apply_file(Path::new("cfg"), "[volttron]\ninstance-name = tcp://127.0.0.1:22916\n").unwrap();
            assert!(c.check_rabbitmq().unwrap_err().to_string().contains("instance-name"));
        }
    }

    /// Every listed `[viprouter]` key is accepted at its default (and sets it), an unlisted one is
    /// refused; an unlisted `[volttron]` key is ignored.
    #[test]
    fn listed_keys_are_the_accepted_ones() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        c.identity_binding = Some(true);
        for key in viprouter_keys() {
            let value = viprouter_default(key).unwrap();
            c.apply_file(Path::new("cfg"), &format!("[viprouter]\n{key} = {value}\n")).unwrap();
        }
        assert_eq!(c.identity_binding, Some(false));
        assert_eq!(c.limits, Limits::COMPILED);
        assert!(c.apply_file(Path::new("cfg"), "[viprouter]\nstats-interval = 0\n").is_err());
        c.apply_file(Path::new("cfg"), "[volttron]\nvolttron-central-address = x\nmessage-bus = zmq\nlog-level = 3\n")
            .unwrap();
        assert_eq!(c.volttron_central_address, "x");
    }

    /// The router's own stats publish: off until a topic is set; interval and sender checked.
    #[test]
    fn stats_publish_keys() {
        let mut c =
            Config::load(&CliValues { volttron_home: Some("/nonexistent/vh".into()), ..Default::default() }).unwrap();
        assert!(c.stats_topic.is_empty());
        assert_eq!(c.stats_interval_s, 60);
        c.apply_file(
            Path::new("cfg"),
            "[viprouter]\nstats-topic = analysis/viprouter/gw1\nstats-interval = 10\nstats-sender = viprouter\n",
        )
        .unwrap();
        assert_eq!(
            (c.stats_topic.as_str(), c.stats_interval_s, c.stats_sender.as_str()),
            ("analysis/viprouter/gw1", 10, "viprouter")
        );
        c.apply_file(Path::new("cfg"), "[viprouter]\nstats-topic =\n").unwrap();
        assert!(c.stats_topic.is_empty());
        for bad in ["stats-interval = 0", "stats-interval = 86401", "stats-interval = 1.5", "stats-interval = -1"] {
            let err = c.apply_file(Path::new("cfg"), &format!("[viprouter]\n{bad}\n")).unwrap_err();
            assert_eq!(err.to_string(), "cfg:2: stats-interval: expected whole seconds from 1 to 86400", "{bad}");
        }
        let long = "x".repeat(256);
        let err = c.apply_file(Path::new("cfg"), &format!("[viprouter]\nstats-sender = {long}\n")).unwrap_err();
        assert_eq!(err.to_string(), "cfg:2: stats-sender: longer than 255 bytes");
    }

    #[test]
    fn home_is_normalized() {
        assert_eq!(normalize_home("/a/b/"), PathBuf::from("/a/b"));
        assert!(normalize_home("~/.volttron").is_absolute());
    }
}
