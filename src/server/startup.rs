//! Start-up: from a validated [`Config`] to a running [`Server`] (VIP.md §2.1, §9, §14).
//!
//! Order, as VOLTTRON's platform does it: `$VOLTTRON_HOME` and its `run/` directory; with
//! `allow-auth` the platform keystore (created on first start, mode 0600), `known_hosts` entries
//! for `@` and every vip-address, and `auth.json`; then the local ipc address, then each
//! vip-address. Endpoints are CURVE servers when auth is on, unless a vip-address says
//! `?server=NULL` or `?server=PLAIN`; with `allow-auth = False` every endpoint is NULL. With
//! auth on, NULL peers are still decided by `auth.json` (an enabled NULL entry, or an ipc peer
//! of the router's own uid), as VOLTTRON's ZAP handler decides them.
//! The rules then live in one [`PlatformPolicy`] owned by the event loop (`auth_hook.rs`): the
//! authorisation decision, and the reload of `auth.json` and `protected_topics.json` on SIGHUP
//! and on change (inotify, `reload.rs`).
//!
//! A modular VOLTTRON home (`credentials_store/platform.json`, `crate::auth::layout`) is read
//! by `super::modular` instead: [`run`] asks for the layout once and hands over the security
//! set-up, the pubsub policy, the watch and (through [`RuleFiles`]) the reload.

use std::os::fd::{OwnedFd, RawFd};

use super::activation;
use super::auth_hook::PlatformPolicy;
use super::auth_report::Admission;
use super::event_loop::{Exit, Server, StatsPublish};
use super::listener::{self, DEFAULT_DOMAIN, ListenSocket, Listener};
use super::modular::Modular;
use super::notify::{self, Notifier};
use super::reload::{self, RuleFiles};
use super::watch::Watch;
use crate::auth::keystore;
use crate::auth::layout::Layout;
use crate::auth::{AuthMode, Authenticator, keys::KeyText};
use crate::config::Config;
use crate::config::discovery::{DISCOVERY_FILE, discovery_path, read_discovery};
use crate::json::emit::push_str;
use crate::vip::platform::PlatformInfo;
use crate::vip::router::Router;
use crate::zmtp::mechanism::Mechanism;
use crate::zmtp::mechanism::curve::{CookieKeys, KeyPair};
use crate::zmtp::session::CurveContext;

/// Per-endpoint settings from a vip-address's URL parameters (`server=`, `domain=`), read as
/// VOLTTRON's `vip.socket.Address` reads them: parameter names case-insensitive, the `server`
/// value upper-cased and trimmed.
///
/// # Errors
/// A `server` value other than NULL, PLAIN or CURVE (VOLTTRON refuses to start on it too).
fn endpoint_params(address: &str, allow_auth: bool) -> Result<(Mechanism, String), String> {
    let mut mechanism = if allow_auth { Mechanism::Curve } else { Mechanism::Null };
    let mut domain = DEFAULT_DOMAIN.to_string();
    if let Some((_, query)) = address.split_once('?') {
        for kv in query.split('&') {
            let (name, value) = kv.split_once('=').unwrap_or((kv, ""));
            if name.eq_ignore_ascii_case("server") {
                match value.trim().to_ascii_uppercase().as_str() {
                    "NULL" => mechanism = Mechanism::Null,
                    "PLAIN" if allow_auth => mechanism = Mechanism::Plain,
                    "CURVE" if allow_auth => mechanism = Mechanism::Curve,
                    "PLAIN" | "CURVE" => {}
                    _ => return Err(format!("{address}: bad value for server parameter: {value:?}")),
                }
            } else if name.eq_ignore_ascii_case("domain") {
                domain = value.to_string();
            }
        }
    }
    Ok((mechanism, domain))
}

/// A uuid4 text, as VOLTTRON's router uses for its routing id (VIP.md §2.1).
fn uuid4(random: &[u8; 16]) -> String {
    let mut b = *random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn random_bytes() -> [u8; 16] {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

/// Let the process hold every connection the limits allow.
fn raise_fd_limit(connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = connections as u64 + 64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < want
    {
        let new = want.min(hard);
        if setrlimit(Resource::RLIMIT_NOFILE, new, hard).is_err() || new < want {
            log::warn!("open-file limit {new} is below max-connections + 64 = {want}: accepts may fail first");
        }
    }
}

fn json_list(items: &[String]) -> Vec<u8> {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str(&mut out, item);
    }
    out.push(']');
    out.into_bytes()
}

/// Everything `run` needs from the platform directory when auth is on.
pub(super) struct Security {
    /// The server key pair.
    pub(super) keys: KeyPair,
    /// The connection-time decision.
    pub(super) auth: Authenticator,
}

fn security(config: &Config) -> Result<Option<Security>, String> {
    if !config.allow_auth {
        return Ok(None);
    }
    let home = &config.volttron_home;
    let ks_path = home.join("keystore");
    let ks =
        keystore::load_or_create(&ks_path, &mut rand_core::OsRng).map_err(|e| format!("{}: {e}", ks_path.display()))?;
    match ks.origin {
        keystore::KeystoreOrigin::Created => log::info!("created the platform keystore {}", ks_path.display()),
        keystore::KeystoreOrigin::Regenerated => {
            log::warn!(
                "regenerated the platform keystore {} (its key was unusable): agents must learn the new server key",
                ks_path.display()
            );
        }
        keystore::KeystoreOrigin::Loaded => {}
    }
    let public = ks.keys.public;
    let mut hosts: Vec<(&str, &_)> = vec![("@", &public)];
    for a in &config.vip_addresses {
        hosts.push((keystore::known_hosts_key(a), &public));
    }
    let kh = home.join("known_hosts");
    if let Err(e) = keystore::update_known_hosts(&kh, &hosts) {
        log::warn!("{}: {e} (left unchanged)", kh.display());
    }
    let auth_path = home.join("auth.json");
    let store = reload::load_auth_at_start(&auth_path, home, &public);
    log::info!("{}: {} allow entries (with the platform's own)", auth_path.display(), store.len());
    let mut authenticator = Authenticator::new(store, AuthMode::Enforced);
    authenticator.set_identity_binding(config.identity_binding.unwrap_or(false));
    // VOLTTRON admits NULL ipc peers of the platform's own uid (VIP.md §9.6); reachable only on
    // an ipc vip-address with `?server=NULL`.
    authenticator.set_local_uid(Some(nix::unistd::getuid().as_raw()));
    Ok(Some(Security { keys: ks.keys, auth: authenticator }))
}

/// Listeners handed over by systemd (`viprouter.socket`, sd_listen_fds(3)), if any. `adopt`
/// takes ownership of a descriptor number: the one `unsafe` step, which lives in `main.rs`
/// (see `server::activation`). Every inherited socket serves the default mechanism (CURVE
/// with auth, else NULL) and domain `vip`.
fn inherited_listeners(
    allow_auth: bool,
    adopt: &mut dyn FnMut(RawFd) -> OwnedFd,
) -> Result<Option<Vec<Listener>>, String> {
    let Some(fds) = activation::from_env().map_err(|e| format!("socket activation: {e}"))? else {
        return Ok(None);
    };
    let mechanism = if allow_auth { Mechanism::Curve } else { Mechanism::Null };
    let mut out = Vec::new();
    for (_name, l) in fds.into_listeners(adopt).map_err(|e| format!("socket activation: {e}"))? {
        out.push(match l {
            activation::Listener::Tcp(std_l) => {
                let local = std_l.local_addr().map_err(|e| format!("socket activation: {e}"))?;
                let socket = ListenSocket::Tcp(mio::net::TcpListener::from_std(std_l));
                Listener::new(socket, format!("tcp://{local}"), mechanism, None)
            }
            activation::Listener::Unix(std_l) => {
                use std::os::linux::net::SocketAddrExt;
                let local = std_l.local_addr().map_err(|e| format!("socket activation: {e}"))?;
                let endpoint = match (local.as_abstract_name(), local.as_pathname()) {
                    (Some(name), _) => format!("ipc://@{}", String::from_utf8_lossy(name)),
                    (None, Some(path)) => format!("ipc://{}", path.display()),
                    _ => "ipc://(unnamed)".to_string(),
                };
                Listener::new(ListenSocket::Unix(mio::net::UnixListener::from_std(std_l)), endpoint, mechanism, None)
            }
        });
    }
    log::info!("socket activation: {} listeners from systemd", out.len());
    Ok(Some(out))
}

/// The listeners: handed over by systemd, else the local address and every vip-address bound
/// (each with the mechanism and ZAP domain its URL parameters say); and the tcp endpoints
/// reported to peers.
fn listeners(config: &Config, adopt: &mut dyn FnMut(RawFd) -> OwnedFd) -> Result<(Vec<Listener>, Vec<String>), String> {
    if let Some(inherited) = inherited_listeners(config.allow_auth, adopt)? {
        // systemd owns the addresses: bind nothing else.
        let vip = inherited.iter().filter(|l| l.endpoint.starts_with("tcp://")).map(|l| l.endpoint.clone()).collect();
        return Ok((inherited, vip));
    }
    let mut listeners = Vec::new();
    let mut vip_endpoints = Vec::new();
    for (i, a) in std::iter::once(&config.local_address).chain(&config.vip_addresses).enumerate() {
        let (mechanism, domain) = endpoint_params(a, config.allow_auth)?;
        let mut bound = listener::bind(a, mechanism)?;
        for l in &mut bound {
            l.domain.clone_from(&domain);
        }
        if i > 0 {
            vip_endpoints.extend(bound.iter().map(|l| l.endpoint.clone()));
        }
        listeners.extend(bound);
    }
    if listeners.len() > crate::limits::MAX_LISTENERS {
        return Err(format!("{} endpoints: at most {} may be bound", listeners.len(), crate::limits::MAX_LISTENERS));
    }
    Ok((listeners, vip_endpoints))
}

/// What `hello` and `query` answer (VIP.md §5.1, §5.4).
fn platform_info(config: &Config, router_id: &str, vip_endpoints: &[String], keys: Option<&KeyPair>) -> PlatformInfo {
    let mut info = PlatformInfo::with_router_id(router_id.as_bytes());
    info.instance_name = config.instance_name.clone().into_bytes();
    info.local_address = config.local_address.clone().into_bytes();
    info.addresses_json = if vip_endpoints.is_empty() {
        json_list(std::slice::from_ref(&config.local_address))
    } else {
        json_list(vip_endpoints)
    };
    if let Some(f) = &config.agent_monitor_frequency {
        info.agent_monitor_frequency = f.clone().into_bytes();
    }
    info.volttron_central_address = config.volttron_central_address.clone().into_bytes();
    info.volttron_central_serverkey = config.volttron_central_serverkey.clone().into_bytes();
    info.bind_web_address = config.bind_web_address.clone().into_bytes();
    if let Some(k) = keys {
        info.serverkey = KeyText::new(&k.public.0).as_str().as_bytes().to_vec();
    }
    info
}

/// The links to remote platforms (VIP.md §11.3): the key pair they authenticate with — the
/// platform keystore; with auth off it is loaded (or created, as VOLTTRON's platform does on
/// every start) when the first link is dialled — and the platforms
/// `external_platform_discovery.json` names. A broken file is reported: no links from it until
/// it is fixed (picked up at once).
fn start_links(server: &mut Server, config: &Config, keys: Option<KeyPair>) {
    let home = &config.volttron_home;
    match keys {
        Some(k) => server.set_link_keys(k),
        None => server.set_link_keystore(home.join("keystore")),
    }
    match read_discovery(home) {
        Ok(d) => {
            if !d.entries.is_empty() || !d.skipped.is_empty() {
                log::info!("{}: {} platforms to link to", discovery_path(home).display(), d.entries.len());
            }
            server.set_file_links(&d);
        }
        Err(e) => log::error!("{e}: no links from it until it is fixed"),
    }
}

/// WATCHDOG=1 from the loop's tick when systemd asks for it.
fn install_watchdog(server: &mut Server, notifier: Option<&Notifier>) {
    let (Some(n), Some(every)) = (notifier.and_then(|n| n.try_clone().ok()), notify::watchdog_interval()) else {
        return;
    };
    let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut last = crate::time::Instant(0);
    server.set_on_tick(Box::new(move |now| {
        if now.since(last) >= every_ms {
            last = now;
            let _ = n.watchdog();
        }
    }));
    log::info!("systemd watchdog: WATCHDOG=1 every {every_ms} ms");
}

/// The router's own periodic publish of its counters, when `[viprouter] stats-topic` is set.
fn install_stats_publish(server: &mut Server, config: &Config, router_id: &str) {
    if config.stats_topic.is_empty() {
        return;
    }
    let sender = if config.stats_sender.is_empty() { router_id } else { config.stats_sender.as_str() };
    log::info!(
        "publishing the router's counters on {:?} every {} s as {sender:?}",
        config.stats_topic,
        config.stats_interval_s
    );
    server.set_stats_publish(StatsPublish {
        topic: config.stats_topic.clone().into_bytes(),
        sender: sender.as_bytes().to_vec(),
        interval_ms: config.stats_interval_s.saturating_mul(1000),
    });
}

/// The RabbitMQ bridge, when the configuration names a broker (cargo feature `rabbitmq`).
fn install_bridge(server: &mut Server, config: &Config) -> Result<(), String> {
    #[cfg(feature = "rabbitmq")]
    if let Some(bridge) = super::broker::BrokerConfig::from_config(config, &config.limits)? {
        log::info!(
            "RabbitMQ bridge: instance {} on {}, exporting {:?}",
            config.instance_name,
            bridge.label,
            config.rabbitmq.export
        );
        server.set_bridge(bridge);
    }
    #[cfg(not(feature = "rabbitmq"))]
    let _ = (server, config);
    Ok(())
}

/// The memory ceiling for the start-up line, `N MiB`; with `rabbitmq-url`, also the ceiling
/// with what the bridge holds outside the buffer budget (`server::memory::bridge_bytes`).
fn ceiling_text(config: &Config) -> String {
    const MIB: usize = 1024 * 1024;
    let ceiling = super::memory::memory_ceiling_bytes(&config.limits);
    #[cfg(feature = "rabbitmq")]
    if let Some(url) = &config.rabbitmq.url {
        let with = ceiling.saturating_add(super::memory::bridge_bytes(&config.limits, url.tls));
        return format!("{} MiB ({} MiB with the RabbitMQ bridge)", ceiling / MIB, with / MIB);
    }
    format!("{} MiB", ceiling / MIB)
}

/// Bind, set up and run the router until a stop signal or `quit`. `adopt` takes ownership of a
/// descriptor systemd passed (socket activation; see `server::activation`).
///
/// # Errors
/// Start-up failures (directories, keys, auth.json, binding), with the path or address.
pub fn run(config: Config, adopt: &mut dyn FnMut(RawFd) -> OwnedFd) -> Result<Exit, String> {
    raise_fd_limit(config.limits.max_connections);
    let run_dir = config.volttron_home.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let layout = Layout::detect(&config.volttron_home);
    log::info!("{}: {}", config.volttron_home.display(), layout.name());
    let (sec, mut modular) = match layout {
        Layout::V9 => (security(&config)?, None),
        Layout::Modular => Modular::open(&config).map(|(m, sec)| (sec, Some(m)))?,
    };
    let (listeners, vip_endpoints) = listeners(&config, adopt)?;
    let summary: Vec<String> = listeners.iter().map(|l| format!("{} ({})", l.endpoint, l.mechanism.name())).collect();

    let random = random_bytes();
    let router_id = uuid4(&random);
    let info = platform_info(&config, &router_id, &vip_endpoints, sec.as_ref().map(|s| &s.keys));
    let seed = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
    let mut router = Router::new(&config.limits, info, seed);
    router.error_msg_id = config.error_msg_id;
    router.set_control_identity(layout.control_identity());
    let load_errors = match &mut modular {
        Some(m) => m.start(&mut router),
        None => {
            reload::load_pubsub_policy(&mut router, &config.volttron_home, sec.as_ref().map(|s| &s.auth));
            0
        }
    };
    let mut server = Server::new(listeners, router, config.limits.clone(), router_id.clone().into_bytes())
        .map_err(|e| format!("event loop: {e}"))?;
    server.stats_mut().config_load_errors += load_errors;

    let notifier = Notifier::from_env();
    install_watchdog(&mut server, notifier.as_ref());
    install_stats_publish(&mut server, &config, &router_id);
    let watch = match &modular {
        Some(m) => m.watch(),
        None => Watch::new(&config.volttron_home, &["auth.json", "protected_topics.json", DISCOVERY_FILE]),
    };
    let files =
        RuleFiles { home: config.volttron_home.clone(), platform: sec.as_ref().map(|s| s.keys.public), modular };
    let reload_notifier = notifier.as_ref().and_then(|n| n.try_clone().ok());
    let link_keys = sec.as_ref().map(|s| s.keys.clone());
    let auth = match sec {
        Some(sec) => {
            server.set_curve(CurveContext { keys: sec.keys, cookies: CookieKeys::new(&mut rand_core::OsRng) });
            Some(sec.auth)
        }
        None => None,
    };
    if config.setup_mode && auth.is_some() {
        log::warn!("setup mode: peers that auth.json refuses are admitted (as `volttron --setup-mode`)");
    }
    let admission = Admission::new(config.auth_reports, config.setup_mode);
    server.set_policy(Box::new(PlatformPolicy::new(auth, files, reload_notifier).with_admission(admission)));
    start_links(&mut server, &config, link_keys);
    install_bridge(&mut server, &config)?;
    match watch {
        Ok(w) => server.set_watch(w).map_err(|e| format!("inotify: {e}"))?,
        Err(e) => log::warn!("cannot watch {} ({e}): reload with SIGHUP", config.volttron_home.display()),
    }

    log::info!(
        "viprouter {} ready: router id {router_id}, endpoints {}, max {} connections, memory ceiling {}",
        env!("CARGO_PKG_VERSION"),
        summary.join(" "),
        config.limits.max_connections,
        ceiling_text(&config)
    );
    if let Some(n) = &notifier {
        // Every listener is bound and the loop is about to run (Type=notify).
        let _ = n.ready();
        let _ = n.status(&format!("routing on {}", summary.join(" ")));
    }
    let exit = server.run().map_err(|e| format!("event loop: {e}"))?;
    if let Some(n) = &notifier {
        let _ = n.stopping();
    }
    server.log_stats();
    server.cleanup();
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parameters() {
        let p = |a: &str, auth: bool| endpoint_params(a, auth).unwrap();
        assert_eq!(p("tcp://1.2.3.4:1", true), (Mechanism::Curve, "vip".to_string()));
        assert_eq!(p("tcp://1.2.3.4:1?server=NULL", true).0, Mechanism::Null);
        assert_eq!(p("tcp://1.2.3.4:1?serverkey=x&server=PLAIN&domain=d", true), (Mechanism::Plain, "d".to_string()));
        assert_eq!(p("tcp://1.2.3.4:1?server=CURVE", false).0, Mechanism::Null);
        // as VOLTTRON's Address: names case-insensitive, the server value upper-cased and trimmed
        assert_eq!(p("tcp://1.2.3.4:1?Server=null", true).0, Mechanism::Null);
        assert_eq!(
            p("tcp://1.2.3.4:1?server=%20plain%20&DOMAIN=x".replace("%20", " ").as_str(), true),
            (Mechanism::Plain, "x".to_string())
        );
        assert!(
            endpoint_params("tcp://1.2.3.4:1?server=foo", true).unwrap_err().contains("bad value for server parameter")
        );
        assert!(endpoint_params("tcp://1.2.3.4:1?server=", false).is_err());
    }

    #[test]
    fn uuid4_shape() {
        let u = uuid4(&[0xff; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
