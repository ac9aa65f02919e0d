//! Start-up: from a validated [`Config`] to a running [`Server`] (VIP.md §2.1, §9, §14).
//!
//! Order, as VOLTTRON's platform does it: `$VOLTTRON_HOME` and its `run/` directory; with
//! `allow-auth` the platform keystore (created on first start, mode 0600), `known_hosts` entries
//! for `@` and every vip-address, and `auth.json`; then the local ipc address, then each
//! vip-address. Endpoints are CURVE servers when auth is on, unless a vip-address says
//! `?server=NULL` or `?server=PLAIN`; with `allow-auth = False` every endpoint is NULL. With
//! auth on, NULL peers are still decided by `auth.json` (an enabled NULL entry, or an ipc peer
//! of the router's own uid), as VOLTTRON's ZAP handler decides them.
//! `auth.json` (and `protected_topics.json`) are reloaded on SIGHUP and on change (inotify); a
//! broken file is reported and the previous rules stay in force (at start, with none to keep, the
//! platform's own entries only, as VOLTTRON).
//!
//! A modular VOLTTRON home (`credentials_store/platform.json`, `crate::auth::layout`) is read
//! by `super::modular` instead: [`run`] asks for the layout once and hands over the security
//! set-up, the pubsub policy, the reload and the watch.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use std::os::fd::{OwnedFd, RawFd};

use super::activation;
use super::event_loop::{AuthQuery, Exit, Server};
use super::listener::{self, ListenSocket, Listener};
use super::modular::Modular;
use super::notify::{self, Notifier};
use super::watch::Watch;
use crate::auth::keystore;
use crate::auth::layout::Layout;
use crate::auth::{AuthMode, AuthRequest, AuthStore, Authenticator, Decision, auto_entries, keys::KeyText};
use crate::config::Config;
use crate::stats;
use crate::vip::platform::PlatformInfo;
use crate::vip::protected::UserCapabilities;
use crate::vip::router::Router;
use crate::zmtp::mechanism::curve::{CookieKeys, KeyPair, PublicKey};
use crate::zmtp::mechanism::{Credentials, Mechanism};
use crate::zmtp::session::CurveContext;

/// The ZAP domain of every endpoint unless its address says `domain=` (VIP.md §2.1).
const DEFAULT_DOMAIN: &str = "vip";

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
    let quoted: Vec<String> =
        items.iter().map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("[{}]", quoted.join(", ")).into_bytes()
}

/// Built-in services whose keys the platform keeps in `keystores/<identity>/keystore.json` and
/// admits on every start (VIP.md §9.7).
const SERVICES: [&str; 6] =
    ["control.connection", "config.store", "platform.auth", "control", "keydiscovery", "platform_web"];

/// Load `auth.json`, logging what was skipped, and add (in memory, after each load) the entries
/// VOLTTRON's platform adds on every start: its own key as `platform`, and the built-in
/// services whose keystores exist (VIP.md §9.7). The file itself is not rewritten.
fn load_auth(path: &Path, home: &Path, platform: &PublicKey) -> Result<AuthStore, String> {
    let store = AuthStore::load(path, &mut rand_core::OsRng).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(with_platform_entries(store, path, home, platform))
}

/// At start there are no previous rules to keep: a broken `auth.json` leaves the platform's own
/// entries only, as VOLTTRON loads such a file as empty — the router runs, the platform and its
/// built-in services (which can repair the file, e.g. `vctl auth`) are admitted, every other
/// peer is refused until the file is fixed (picked up at once).
fn load_auth_at_start(path: &Path, home: &Path, platform: &PublicKey) -> AuthStore {
    load_auth(path, home, platform).unwrap_or_else(|e| {
        log::error!(
            "{e}: starting with the platform's own entries only (as VOLTTRON does): every other peer is \
             refused until the file is fixed"
        );
        with_platform_entries(AuthStore::empty(), path, home, platform)
    })
}

/// Log what `load` skipped and add the platform's own entries (see [`load_auth`]).
fn with_platform_entries(mut store: AuthStore, path: &Path, home: &Path, platform: &PublicKey) -> AuthStore {
    for s in store.skipped() {
        log::warn!("{}: {s}", path.display());
    }
    let mut services = Vec::new();
    for id in SERVICES {
        let ks = home.join("keystores").join(id).join("keystore.json");
        if ks.exists() {
            match keystore::load(&ks) {
                Ok(pair) => services.push((id, pair.public)),
                Err(e) => log::warn!("{}: {e} (service {id} not admitted automatically)", ks.display()),
            }
        }
    }
    for e in auto_entries(platform, &services) {
        if store.upsert(&e).is_err() {
            log::error!(
                "{}: full ({} entries): the platform's own entry {:?} was not added",
                path.display(),
                store.len(),
                e.user_id
            );
        }
    }
    store
}

/// The capabilities of every auth.json user, with their arguments, built from the entries
/// themselves as `platform.auth`'s `auth_update` carries them (VIP.md §7.8), for the
/// protected-topic check and its -32001 text (§7.9, §6.2).
fn user_capabilities(auth: &Authenticator) -> UserCapabilities {
    UserCapabilities::from_entries(
        auth.user_capabilities().map(|(user, caps)| (user, caps.all().iter().map(|c| (c.name(), c.arg_json())))),
    )
}

/// Load `protected_topics.json` (missing = no protected topics) and the auth.json capabilities
/// into the pubsub service (VIP.md §7.9). Bad input keeps the previous tables.
fn load_pubsub_policy(router: &mut Router, home: &Path, auth: Option<&Authenticator>) {
    let path = home.join("protected_topics.json");
    let content = match std::fs::read(&path) {
        Ok(c) if c.iter().all(u8::is_ascii_whitespace) => b"{}".to_vec(),
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => b"{}".to_vec(),
        Err(e) => {
            log::error!("{}: {e}: keeping the previous protected topics", path.display());
            return;
        }
    };
    if let Err(e) = router.pubsub.set_protected_topics_json(&content) {
        log::error!("{}: {e}: keeping the previous protected topics", path.display());
    }
    if let Some(a) = auth {
        router.pubsub.set_user_capabilities(user_capabilities(a));
    }
}

/// Everything `run` needs from the platform directory when auth is on.
pub(super) struct Security {
    /// The server key pair.
    pub(super) keys: KeyPair,
    /// The connection-time decision.
    pub(super) auth: Rc<RefCell<Authenticator>>,
    /// Where the allow entries come from (`auth.json`, or modular's `credentials_store`).
    pub(super) auth_path: PathBuf,
}

/// What a reload needs: the authenticator, auth.json, `$VOLTTRON_HOME`, the platform key.
type ReloadAuth = (Rc<RefCell<Authenticator>>, PathBuf, PathBuf, PublicKey);

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
    let store = load_auth_at_start(&auth_path, home, &public);
    log::info!("{}: {} allow entries (with the platform's own)", auth_path.display(), store.len());
    let mut authenticator = Authenticator::new(store, AuthMode::Enforced);
    authenticator.set_identity_binding(config.identity_binding.unwrap_or(false));
    // VOLTTRON admits NULL ipc peers of the platform's own uid (VIP.md §9.6); reachable only on
    // an ipc vip-address with `?server=NULL`.
    authenticator.set_local_uid(Some(nix::unistd::getuid().as_raw()));
    Ok(Some(Security { keys: ks.keys, auth: Rc::new(RefCell::new(authenticator)), auth_path }))
}

/// The in-process ZAP handler: the decision of VIP.md §9.6, refusals logged with key and
/// address (rate-limited).
fn authorize_hook(
    auth: Rc<RefCell<Authenticator>>,
    domains: Vec<String>,
    layout: Layout,
) -> super::event_loop::Authorize {
    let (binding, fix) = match layout {
        Layout::V9 => ("identity not bound to its key (identity binding is on)", "add an allow entry to auth.json"),
        Layout::Modular => (
            "not the identity of its credentials_store file (identity binding is on)",
            "a modular home admits the keys of credentials_store: vctl auth add",
        ),
    };
    let mut refused = 0u64;
    let mut log_limit = RefusalLog::default();
    Box::new(move |q: &AuthQuery<'_>| {
        let a = auth.borrow();
        let domain = domains.get(q.listener).map_or(DEFAULT_DOMAIN, String::as_str);
        let req = AuthRequest {
            domain: domain.as_bytes(),
            address: q.address,
            mechanism: q.mechanism,
            credentials: q.credentials,
        };
        match a.decide(&req) {
            Decision::Allow { entry, user_id } => {
                if let Some(e) = entry
                    && !a.check_identity(e, q.identity)
                {
                    log::warn!("refused {:?} from {}: {binding}", String::from_utf8_lossy(q.identity), q.address);
                    return false;
                }
                log::debug!("admitted {:?} from {} as {user_id}", String::from_utf8_lossy(q.identity), q.address);
                true
            }
            Decision::Deny(reason) => {
                let _ = stats::bump(&mut refused);
                let who = match q.credentials {
                    Credentials::Curve(k) => format!("key {}", KeyText::new(k).as_str()),
                    Credentials::Plain { user, .. } => format!("user {:?}", String::from_utf8_lossy(user)),
                    Credentials::Null => "NULL".to_string(),
                };
                if log_limit.first_time(&who, q.address) {
                    let reason = match (layout, reason) {
                        (Layout::Modular, crate::auth::DenyReason::UnknownKey) => "CURVE key not in credentials_store",
                        (_, r) => &r.to_string(),
                    };
                    log::warn!(
                        "refused {} {} from {} (identity {:?}): {reason} [refusal #{refused}; {fix}]",
                        q.mechanism.name(),
                        who,
                        q.address,
                        String::from_utf8_lossy(q.identity)
                    );
                }
                false
            }
        }
    })
}

/// Refusals are logged once per (credentials, address) among the last 64 distinct ones, so an
/// operator finds every new agent's key in the log while a client retrying in a loop (or an
/// attacker cycling keys) cannot flood it: at most 10 such lines per second.
struct RefusalLog {
    recent: [u32; 64],
    next: usize,
    second: u64,
    lines: u32,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog { recent: [0; 64], next: 0, second: 0, lines: 0 }
    }
}

impl RefusalLog {
    fn first_time(&mut self, who: &str, address: &str) -> bool {
        let mut h = crc32fast::Hasher::new();
        h.update(who.as_bytes());
        h.update(address.as_bytes());
        let key = h.finalize() | 1;
        if self.recent.contains(&key) {
            return false;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now != self.second {
            self.second = now;
            self.lines = 0;
        }
        if self.lines >= 10 {
            return false;
        }
        self.lines += 1;
        if let Some(slot) = self.recent.get_mut(self.next % 64) {
            *slot = key;
        }
        self.next = self.next.wrapping_add(1);
        true
    }
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
                Listener {
                    socket: ListenSocket::Tcp(mio::net::TcpListener::from_std(std_l)),
                    endpoint: format!("tcp://{local}"),
                    mechanism,
                    path: None,
                }
            }
            activation::Listener::Unix(std_l) => {
                use std::os::linux::net::SocketAddrExt;
                let local = std_l.local_addr().map_err(|e| format!("socket activation: {e}"))?;
                let endpoint = match (local.as_abstract_name(), local.as_pathname()) {
                    (Some(name), _) => format!("ipc://@{}", String::from_utf8_lossy(name)),
                    (None, Some(path)) => format!("ipc://{}", path.display()),
                    _ => "ipc://(unnamed)".to_string(),
                };
                Listener {
                    socket: ListenSocket::Unix(mio::net::UnixListener::from_std(std_l)),
                    endpoint,
                    mechanism,
                    path: None,
                }
            }
        });
    }
    log::info!("socket activation: {} listeners from systemd", out.len());
    Ok(Some(out))
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

    let mut listeners: Vec<Listener>;
    let mut domains: Vec<String>;
    let mut vip_endpoints = Vec::new();
    if let Some(inherited) = inherited_listeners(config.allow_auth, adopt)? {
        // systemd owns the addresses: bind nothing else.
        vip_endpoints.extend(inherited.iter().filter(|l| l.endpoint.starts_with("tcp://")).map(|l| l.endpoint.clone()));
        domains = vec![DEFAULT_DOMAIN.to_string(); inherited.len()];
        listeners = inherited;
    } else {
        let (local_mech, local_domain) = endpoint_params(&config.local_address, config.allow_auth)?;
        listeners = listener::bind(&config.local_address, local_mech)?;
        domains = vec![local_domain; listeners.len()];
        for a in &config.vip_addresses {
            let (mech, domain) = endpoint_params(a, config.allow_auth)?;
            let bound = listener::bind(a, mech)?;
            vip_endpoints.extend(bound.iter().map(|l| l.endpoint.clone()));
            domains.extend(std::iter::repeat_n(domain, bound.len()));
            listeners.extend(bound);
        }
    }
    if listeners.len() > crate::limits::MAX_LISTENERS {
        return Err(format!("{} endpoints: at most {} may be bound", listeners.len(), crate::limits::MAX_LISTENERS));
    }
    let summary: Vec<String> = listeners.iter().map(|l| format!("{} ({})", l.endpoint, l.mechanism.name())).collect();

    let random = random_bytes();
    let router_id = uuid4(&random);
    let mut info = PlatformInfo::with_router_id(router_id.as_bytes());
    info.instance_name = config.instance_name.clone().into_bytes();
    info.local_address = config.local_address.clone().into_bytes();
    info.addresses_json = if vip_endpoints.is_empty() {
        json_list(std::slice::from_ref(&config.local_address))
    } else {
        json_list(&vip_endpoints)
    };
    if let Some(f) = &config.agent_monitor_frequency {
        info.agent_monitor_frequency = f.clone().into_bytes();
    }
    info.volttron_central_address = config.volttron_central_address.clone().into_bytes();
    info.volttron_central_serverkey = config.volttron_central_serverkey.clone().into_bytes();
    info.bind_web_address = config.bind_web_address.clone().into_bytes();
    if let Some(s) = &sec {
        info.serverkey = KeyText::new(&s.keys.public.0).as_str().as_bytes().to_vec();
    }
    let seed = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
    let mut router = Router::new(&config.limits, info, seed);
    router.error_msg_id = config.error_msg_id;
    router.set_control_identity(layout.control_identity());
    match (&mut modular, &sec) {
        (Some(m), _) => m.start(&mut router),
        (None, Some(s)) => load_pubsub_policy(&mut router, &config.volttron_home, Some(&s.auth.borrow())),
        (None, None) => load_pubsub_policy(&mut router, &config.volttron_home, None),
    }
    let mut server = Server::new(listeners, router, config.limits.clone(), router_id.clone().into_bytes())
        .map_err(|e| format!("event loop: {e}"))?;

    let notifier = Notifier::from_env();
    let reload_notifier = notifier.as_ref().and_then(|n| n.try_clone().ok());
    let home = config.volttron_home.clone();
    let reload_auth: Option<ReloadAuth> = sec
        .as_ref()
        .filter(|_| layout == Layout::V9)
        .map(|s| (s.auth.clone(), s.auth_path.clone(), home.clone(), s.keys.public));
    let watch = match &modular {
        Some(m) => m.watch(),
        None => Watch::new(&config.volttron_home, &["auth.json", "protected_topics.json"]),
    };
    server.set_on_reload(Box::new(move |router: &mut Router| {
        // systemd: RELOADING=1 … READY=1 around every reload, failed or not (sd_notify(3)).
        if let Some(n) = &reload_notifier {
            let _ = n.reloading();
        }
        match (&mut modular, &reload_auth) {
            (Some(m), _) => m.reload(router),
            (None, Some((auth, path, home, platform))) => {
                match load_auth(path, home, platform) {
                    Ok(store) => {
                        log::info!("{}: reloaded, {} allow entries", path.display(), store.len());
                        auth.borrow_mut().replace_store(store);
                    }
                    Err(e) => log::error!("{e}: keeping the previous rules"),
                }
                load_pubsub_policy(router, home, Some(&auth.borrow()));
            }
            (None, None) => load_pubsub_policy(router, &home, None),
        }
        if let Some(n) = &reload_notifier {
            let _ = n.ready();
        }
    }));
    if let (Some(n), Some(every)) = (notifier.as_ref().and_then(|n| n.try_clone().ok()), notify::watchdog_interval()) {
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
    if let Some(sec) = sec {
        server.set_curve(CurveContext { keys: sec.keys, cookies: CookieKeys::new(&mut rand_core::OsRng) });
        server.set_authorize(authorize_hook(sec.auth.clone(), domains, layout));
    }
    match watch {
        Ok(w) => server.set_watch(w).map_err(|e| format!("inotify: {e}"))?,
        Err(e) => log::warn!("cannot watch {} ({e}): reload with SIGHUP", config.volttron_home.display()),
    }

    log::info!(
        "viprouter {} ready: router id {router_id}, endpoints {}, max {} connections, memory ceiling {} MiB",
        env!("CARGO_PKG_VERSION"),
        summary.join(" "),
        config.limits.max_connections,
        config.limits.memory_ceiling_bytes() / (1024 * 1024)
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
    fn refusals_are_logged_once_per_key_and_address() {
        let mut l = RefusalLog::default();
        assert!(l.first_time("key A", "1.2.3.4"));
        assert!(!l.first_time("key A", "1.2.3.4"));
        assert!(l.first_time("key B", "1.2.3.4"));
        assert!(l.first_time("key A", "5.6.7.8"));
        let fresh = (0..100).filter(|i| l.first_time(&format!("k{i}"), "x")).count();
        assert!(fresh <= 10, "at most 10 lines per second, got {fresh}");
    }

    #[test]
    fn uuid4_shape() {
        let u = uuid4(&[0xff; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
