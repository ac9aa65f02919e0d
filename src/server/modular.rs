//! Start-up and reload for a modular VOLTTRON home (`crate::auth::layout::Layout::Modular`:
//! `credentials_store/platform.json` exists). The VOLTTRON 9 path is `super::startup`; this
//! file holds everything the modular layout does differently, so that `startup` only asks
//! "which layout?" at four places (security, pubsub policy, reload, watch).
//!
//! * Server keys: `credentials_store/platform.json`, read only (never created or rewritten; a
//!   missing or broken file stops the start with auth on, since every modular client pins
//!   that key). No `keystore`, no `known_hosts`.
//! * Admission: `credentials_store/*.json` ([`crate::auth::credentials`]), each key bound to
//!   its identity unless `[viprouter] identity-binding = False`.
//! * Protected topics: `authz.json` ([`crate::auth::authz`]); broken at start → every topic
//!   protected until it is fixed ([`Authz::closed`]).
//! * Reload (SIGHUP, or inotify on `authz.json` and `credentials_store/*.json`): both reread;
//!   what is broken keeps its previous rules, is logged and counted (`config_load_errors`).
//!   `platform.json` itself is not reloaded: a changed server key needs a restart (logged).

use std::io;
use std::path::PathBuf;

use super::startup::Security;
use super::watch::Watch;
use crate::auth::authz::Authz;
use crate::auth::credentials::{CredentialStore, LoadReport, platform_keys};
use crate::auth::layout::{AUTHZ_FILE, authz_path, credentials_dir, platform_credentials_path};
use crate::auth::{AuthMode, Authenticator};
use crate::config::Config;
use crate::stats::Stats;
use crate::vip::router::Router;
use crate::zmtp::mechanism::curve::PublicKey;

/// The modular home the router serves: what a reload needs (the authenticator itself is the
/// policy's, `super::auth_hook`).
pub(super) struct Modular {
    home: PathBuf,
    creds: CredentialStore,
    /// The server key in use; `None` with `auth-enabled = False`.
    server_key: Option<PublicKey>,
    /// Problems found before the server (and its counters) existed.
    pending_errors: u64,
}

/// Logs a credential load's problems; returns how many count as load errors.
fn report(dir: &std::path::Path, r: &LoadReport) -> u64 {
    for p in &r.problems {
        if p.kept_previous {
            log::error!("{}/{}: {}: its previous entry stays in force", dir.display(), p.file, p.error);
        } else {
            log::error!("{}/{}: {}: not admitted until it is fixed", dir.display(), p.file, p.error);
        }
    }
    if r.over_limit > 0 {
        log::error!(
            "{}: {} credential files beyond the first {} (name order) are not read",
            dir.display(),
            r.over_limit,
            crate::auth::credentials::MAX_CREDENTIAL_FILES
        );
    }
    for (winner, loser) in &r.duplicate_keys {
        log::warn!("{}: {winner} and {loser} have the same public key: only {winner} is admitted", dir.display());
    }
    r.problems.len() as u64 + u64::from(r.over_limit > 0)
}

impl Modular {
    /// Reads the home at start: credentials, and with auth on the server pair and the
    /// authenticator (the `Security` for `startup::run`).
    ///
    /// # Errors
    /// `credentials_store` cannot be listed; with auth on, `platform.json` is missing or broken.
    pub(super) fn open(config: &Config) -> Result<(Modular, Option<Security>), String> {
        let home = config.volttron_home.clone();
        let dir = credentials_dir(&home);
        let (creds, r) = CredentialStore::load(&dir, None).map_err(|e| format!("{}: {e}", dir.display()))?;
        let pending_errors = report(&dir, &r);
        let mut m = Modular { home, creds, server_key: None, pending_errors };
        if !config.allow_auth {
            log::info!("auth-enabled = False: NULL everywhere, credentials_store not consulted");
            return Ok((m, None));
        }
        let path = platform_credentials_path(&m.home);
        let keys = platform_keys(&path).map_err(|e| {
            format!("{}: {e} (the server key pair of a modular home: viprouter only reads it)", path.display())
        })?;
        let mut a = Authenticator::new(m.creds.auth_store(), AuthMode::Enforced);
        let binding = config.identity_binding.unwrap_or(true);
        a.set_identity_binding(binding);
        // As for a VOLTTRON 9 home: NULL ipc peers of the router's own uid, on an ipc address
        // with `?server=NULL` only.
        a.set_local_uid(Some(nix::unistd::getuid().as_raw()));
        log::info!(
            "{}: {} identities admitted (CURVE, identity binding {})",
            dir.display(),
            a.store().len(),
            if binding { "on" } else { "off" }
        );
        m.server_key = Some(keys.public);
        Ok((m, Some(Security { keys, auth: a })))
    }

    /// The pubsub policy at start: `authz.json`, or every topic protected if it is broken.
    /// Returns how many files could not be loaded (for `config_load_errors`).
    pub(super) fn start(&mut self, router: &mut Router) -> u64 {
        let mut errors = core::mem::take(&mut self.pending_errors);
        let path = authz_path(&self.home);
        let authz = Authz::load(&path).unwrap_or_else(|e| {
            errors += 1;
            log::error!(
                "{}: {e}: every topic is protected (nobody may publish or subscribe) until it is fixed",
                path.display()
            );
            Authz::closed()
        });
        log_authz(&path, &authz);
        router.pubsub.set_authz(Some(authz));
        errors
    }

    /// SIGHUP or a watched file changed: reread the credentials into `auth` and `authz.json`
    /// into `router`.
    pub(super) fn reload(&mut self, auth: Option<&mut Authenticator>, router: &mut Router, stats: &mut Stats) {
        let dir = credentials_dir(&self.home);
        match CredentialStore::load(&dir, Some(&self.creds)) {
            Ok((creds, r)) => {
                stats.config_load_errors += report(&dir, &r);
                if let (Some(auth), Some(public)) = (auth, &self.server_key) {
                    if creds.platform().is_some_and(|p| p.public != *public) {
                        log::warn!(
                            "{}: the server key changed: new handshakes keep the key the router started with until it \
                             is restarted",
                            platform_credentials_path(&self.home).display()
                        );
                    }
                    let store = creds.auth_store();
                    log::info!("{}: reloaded, {} identities admitted", dir.display(), store.len());
                    auth.replace_store(store);
                }
                self.creds = creds;
            }
            Err(e) => {
                stats.config_load_errors += 1;
                log::error!("{}: {e}: keeping the previous credentials", dir.display());
            }
        }
        let path = authz_path(&self.home);
        match std::fs::read(&path) {
            // Python truncates, then writes: a blank file is one being written (its close
            // event reloads again).
            Ok(t) if t.iter().all(u8::is_ascii_whitespace) => {
                log::info!("{}: empty (being written?): keeping the previous rules", path.display());
                return;
            }
            _ => {}
        }
        match Authz::load(&path) {
            Ok(a) => {
                log_authz(&path, &a);
                router.pubsub.set_authz(Some(a));
            }
            Err(e) => {
                stats.config_load_errors += 1;
                log::error!("{}: {e}: keeping the previous rules", path.display());
            }
        }
    }

    /// inotify on `authz.json` and `credentials_store/*.json`.
    ///
    /// # Errors
    /// inotify errors.
    pub(super) fn watch(&self) -> io::Result<Watch> {
        let mut w = Watch::new(&self.home, &[AUTHZ_FILE, crate::config::discovery::DISCOVERY_FILE])?;
        w.add(&credentials_dir(&self.home), &["*.json"])?;
        Ok(w)
    }
}

fn log_authz(path: &std::path::Path, a: &Authz) {
    if !a.is_closed() {
        log::info!(
            "{}: {} protected topics, {} identities with capabilities",
            path.display(),
            a.protected_len(),
            a.agents_len()
        );
    }
}
