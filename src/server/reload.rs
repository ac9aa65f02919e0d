//! The platform's rules, loaded at start and again on SIGHUP or when a file changes (inotify):
//! `auth.json` with the entries the platform adds itself (VIP.md §9.7), `protected_topics.json`
//! and the users' capabilities for the pubsub service (§7.9), and the remote platforms to link to
//! from `external_platform_discovery.json` (§11.1, [`crate::config::discovery`]).
//!
//! A broken file is reported, counted (`config_load_errors`) and the previous rules stay in
//! force (at start, with none to keep, the platform's own entries only, as VOLTTRON does; and no
//! links from the discovery file). A modular VOLTTRON home has its own rule files and reload
//! (`super::modular`); the discovery file's links are reloaded in both layouts.

use std::path::{Path, PathBuf};

use super::modular::Modular;
use crate::auth::keystore;
use crate::auth::{AuthStore, Authenticator, auto_entries};
use crate::config::discovery::read_discovery;
use crate::stats::Stats;
use crate::vip::protected::UserCapabilities;
use crate::vip::router::Router;
use crate::zmtp::mechanism::curve::PublicKey;

/// Where the rules come from.
pub struct RuleFiles {
    /// `$VOLTTRON_HOME`.
    pub home: PathBuf,
    /// The platform's public key (its own `auth.json` entry), with auth on.
    pub platform: Option<PublicKey>,
    /// A modular VOLTTRON home: its files instead of `auth.json` and `protected_topics.json`.
    pub(super) modular: Option<Modular>,
}

impl RuleFiles {
    /// `$VOLTTRON_HOME/auth.json`.
    pub fn auth_path(&self) -> PathBuf {
        self.home.join("auth.json")
    }

    /// Whether these are a modular VOLTTRON home's files.
    pub fn is_modular(&self) -> bool {
        self.modular.is_some()
    }

    /// Reload `auth.json` into `auth` (the previous rules stay if it is broken), then the pubsub
    /// tables and the discovery file's links into `router`; a modular home reloads its own rule
    /// files (and the links).
    pub fn reload(&mut self, auth: Option<&mut Authenticator>, router: &mut Router, stats: &mut Stats) {
        reload_links(router, stats, &self.home);
        if let Some(m) = &mut self.modular {
            m.reload(auth, router, stats);
            return;
        }
        let (Some(auth), Some(platform)) = (auth, &self.platform) else {
            load_pubsub_policy(router, &self.home, None);
            return;
        };
        let path = self.auth_path();
        match load_auth(&path, &self.home, platform) {
            Ok(store) => {
                log::info!("{}: reloaded, {} allow entries", path.display(), store.len());
                auth.replace_store(store);
            }
            Err(e) => {
                stats.config_load_errors += 1;
                log::error!("{e}: keeping the previous rules");
            }
        }
        load_pubsub_policy(router, &self.home, Some(auth));
    }
}

/// Read `external_platform_discovery.json` again and apply it to the router's links; a file
/// that cannot be read or parsed keeps the links configured before (VIP.md §11.1).
pub fn reload_links(router: &mut Router, stats: &mut Stats, home: &Path) {
    match read_discovery(home) {
        Ok(d) => {
            log::info!(
                "{}: {} platforms to link to",
                crate::config::discovery::discovery_path(home).display(),
                d.entries.len()
            );
            router.set_file_links(stats, &d);
        }
        Err(e) => log::error!("{e}: keeping the previous links"),
    }
}

/// Built-in services whose keys the platform keeps in `keystores/<identity>/keystore.json` and
/// admits on every start (VIP.md §9.7). The last two reached VOLTTRON 9's router over
/// `inproc://vip`, where nothing is authenticated, so the platform never writes an auth.json
/// entry for them: `platform.health` (`main.py:1006`) and the throw-away `aip` agent that
/// `control.shutdown` connects (`aip.py:409`). A separate router admits them from their
/// keystores like the others, so that a platform on viprouter starts and shuts down without
/// hand edits.
const SERVICES: [&str; 8] = [
    "control.connection",
    "config.store",
    "platform.auth",
    "control",
    "keydiscovery",
    "platform_web",
    "platform.health",
    "aip",
];

/// Load `auth.json`, logging what was skipped, and add (in memory, after each load) the entries
/// VOLTTRON's platform adds on every start: its own key as `platform`, and the built-in
/// services whose keystores exist (VIP.md §9.7). The file itself is not rewritten.
pub fn load_auth(path: &Path, home: &Path, platform: &PublicKey) -> Result<AuthStore, String> {
    let store = AuthStore::load(path, &mut rand_core::OsRng).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(with_platform_entries(store, path, home, platform))
}

/// At start there are no previous rules to keep: a broken `auth.json` leaves the platform's own
/// entries only, as VOLTTRON loads such a file as empty — the router runs, the platform and its
/// built-in services (which can repair the file, e.g. `vctl auth`) are admitted, every other
/// peer is refused until the file is fixed (picked up at once).
pub fn load_auth_at_start(path: &Path, home: &Path, platform: &PublicKey) -> AuthStore {
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
pub fn load_pubsub_policy(router: &mut Router, home: &Path, auth: Option<&Authenticator>) {
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
