//! Which router `viprouter stats` talks to, with which mechanism, keys and identity: the keys a
//! local agent would use, found where VOLTTRON keeps them (VIP.md §9.3; VOLTTRON 9.0.4's
//! `auth_zmq.py` `_set_server_key`, `_get_keys_from_keystore`; `vctl`'s `ControlConnection`).
//!
//! * Address: `--address`, else the platform's local endpoint (`vip-local-address`, default
//!   `ipc://@$VOLTTRON_HOME/run/vip.socket`).
//! * Mechanism: CURVE when a server key is given (`--serverkey`, or the address's `serverkey=`
//!   parameter, as VOLTTRON agents take it); else NULL for an address with `server=NULL`; else,
//!   for one of this platform's own addresses, what the router serves there (`allow-auth`); else
//!   CURVE if `known_hosts` knows the address, NULL if not.
//! * Server key, when not given: `known_hosts` (its entry for the address: `@` for the ipc
//!   endpoint), else the platform keystore's public key.
//! * Our pair: `--key-file` (a `{"public", "secret"}` keystore whose public key `auth.json`
//!   lists), else the address's `publickey=`/`secretkey=` parameters, else
//!   `keystores/control.connection/keystore.json` — the pair `vctl` uses, which VOLTTRON's
//!   platform creates and admits on every start (viprouter admits it too when the file exists) —
//!   else the platform's own `keystore` (admitted as the `platform` user; readable only by the
//!   platform's user: `sudo -u viprouter viprouter stats` on the packaged router).
//! * Identity: `--identity`, else `viprouter.stats.<pid>` (two operators never collide), except
//!   `control.connection` when that pair is used and `[viprouter] identity-binding` is on (the
//!   binding requires the entry's identity).
//!
//! In a modular home (`crate::auth::layout`: `credentials_store/platform.json` exists) the same
//! order reads modular's files, as modular's `vctl` does: the server key is `platform.json`'s
//! public key; our pair is `credentials_store/control.connection.json` (vctl's), else
//! `platform.json`; identity binding is on unless `identity-binding = False`, so the identity is
//! the file's `identity` (the router binds each credential file's key to it).

use std::path::{Path, PathBuf};

use viprouter::auth::credentials::{local_credential, platform_keys};
use viprouter::auth::keys::decode_key;
use viprouter::auth::keystore::{self, KeyFileError};
use viprouter::auth::layout::{Layout, credentials_dir, platform_credentials_path};
use viprouter::config::Config;
use viprouter::server::listener::Endpoint;
use viprouter::zmtp::mechanism::curve::{KeyPair, PublicKey, SecretKey};
use viprouter::zmtp::session::client::ClientSecurity;

use super::{Failure, StatsCmd};

/// VOLTTRON's identity (and keystore name) of `vctl`'s connection.
const CONTROL_CONNECTION: &str = "control.connection";

/// What to connect to, and how.
#[derive(Debug)]
pub struct Target {
    /// The address as given (parameters included), for messages.
    pub address: String,
    /// Where it is.
    pub endpoint: Endpoint,
    /// NULL, or CURVE with the keys.
    pub security: ClientSecurity,
    /// Our routing identity.
    pub identity: Vec<u8>,
    /// Where our keys come from, for the messages of a refusal.
    pub keys_from: String,
}

/// The URL parameter `name` of `address` (case-insensitive name), if present.
fn param<'a>(address: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = address.split_once('?')?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn without_params(address: &str) -> &str {
    address.split('?').next().unwrap_or(address)
}

/// A key text (Z85 or VOLTTRON's base64), for `what`.
fn key(text: &str, what: &str) -> Result<[u8; 32], Failure> {
    decode_key(text.trim()).map_err(|e| Failure::Config(format!("{what}: {e}")))
}

fn key_file_error(path: &Path, e: KeyFileError) -> Failure {
    let hint = if e == KeyFileError::Io(std::io::ErrorKind::PermissionDenied) {
        " (run as the platform's user, e.g. `sudo -u viprouter viprouter stats`, or pass --key-file)"
    } else {
        ""
    };
    Failure::Config(format!("{}: {e}{hint}", path.display()))
}

/// Decide the target (see the module doc).
///
/// # Errors
/// [`Failure::Config`] for a bad address or key, or when CURVE is needed and no key is found.
pub fn resolve(cmd: &StatsCmd, config: &Config) -> Result<Target, Failure> {
    if cmd.address.is_none() && !config.volttron_home.is_dir() {
        return Err(Failure::Config(format!(
            "{} does not exist: no platform there (--volttron-home, VOLTTRON_HOME, or --address)",
            config.volttron_home.display()
        )));
    }
    let address = cmd.address.clone().unwrap_or_else(|| config.local_address.clone());
    let endpoint = Endpoint::parse(&address).map_err(|e| Failure::Config(format!("{address}: {e}")))?;
    let bare = without_params(&address);
    let own =
        bare == without_params(&config.local_address) || config.vip_addresses.iter().any(|a| without_params(a) == bare);
    let given = match (&cmd.serverkey, param(&address, "serverkey")) {
        (Some(k), _) => Some(key(k, "--serverkey")?),
        (None, Some(k)) => Some(key(k, "serverkey= of the address")?),
        (None, None) => None,
    };
    let null_param = param(&address, "server").is_some_and(|v| v.trim().eq_ignore_ascii_case("NULL"));
    let home = &config.volttron_home;
    let layout = Layout::detect(home);
    let known = || -> Result<Option<[u8; 32]>, Failure> {
        let path = keystore::known_hosts_path(home);
        keystore::known_host(&path, keystore::known_hosts_key(&address))
            .map(|k| k.map(|k| k.0))
            .map_err(|e| key_file_error(&path, e))
    };
    let server_key = match given {
        Some(k) => Some(k),
        None if null_param => None,
        None if own && !config.allow_auth => None,
        None if own && layout == Layout::Modular => Some(modular_platform(home)?.public.0),
        None if own => Some(match known()? {
            Some(k) => k,
            None => platform_public(home)?,
        }),
        None => known()?,
    };
    let identity_given = cmd.identity.as_ref().map(|i| i.as_bytes().to_vec());
    let Some(server_key) = server_key else {
        let identity = identity_given.unwrap_or_else(default_identity);
        return Ok(Target { address, endpoint, security: ClientSecurity::Null, identity, keys_from: "NULL".into() });
    };
    let ClientKeys { keys, from: keys_from, bound } = client_keys(cmd, &address, home, layout)?;
    // The router's default: binding on for a modular home, off for VOLTTRON 9's.
    let binding = config.identity_binding.unwrap_or(layout == Layout::Modular);
    let identity = identity_given.unwrap_or_else(|| match bound {
        Some(bound) if binding => bound.into_bytes(),
        _ => default_identity(),
    });
    let security = ClientSecurity::Curve { server_key: PublicKey(server_key), keys };
    Ok(Target { address, endpoint, security, identity, keys_from })
}

fn default_identity() -> Vec<u8> {
    format!("viprouter.stats.{}", std::process::id()).into_bytes()
}

/// The platform's public key from its keystore (the ipc endpoint's server key when
/// `known_hosts` has none).
fn platform_public(home: &Path) -> Result<[u8; 32], Failure> {
    let path = keystore::platform_keystore_path(home);
    match keystore::load(&path) {
        Ok(pair) => Ok(pair.public.0),
        Err(KeyFileError::Io(std::io::ErrorKind::NotFound)) => Err(Failure::Config(format!(
            "no server key: {} has no entry for this address and {} does not exist (pass --serverkey)",
            keystore::known_hosts_path(home).display(),
            path.display()
        ))),
        Err(e) => Err(key_file_error(&path, e)),
    }
}

/// A modular home's server pair, `credentials_store/platform.json`.
fn modular_platform(home: &Path) -> Result<KeyPair, Failure> {
    let path = platform_credentials_path(home);
    platform_keys(&path).map_err(|e| key_file_error(&path, e))
}

/// Our key pair for CURVE.
struct ClientKeys {
    keys: KeyPair,
    /// Where it came from, for the messages of a refusal.
    from: String,
    /// The identity the router binds this pair to, when identity binding is on.
    bound: Option<String>,
}

/// Our pair, where it came from and the identity its entry binds (see the module doc).
fn client_keys(cmd: &StatsCmd, address: &str, home: &Path, layout: Layout) -> Result<ClientKeys, Failure> {
    if let Some(file) = &cmd.key_file {
        let path = PathBuf::from(file);
        let keys = keystore::load(&path).map_err(|e| key_file_error(&path, e))?;
        return Ok(ClientKeys { keys, from: path.display().to_string(), bound: None });
    }
    if let (Some(public), Some(secret)) = (param(address, "publickey"), param(address, "secretkey")) {
        let keys = KeyPair::from_secret(SecretKey::from_bytes(key(secret, "secretkey= of the address")?));
        if keys.public.0 != key(public, "publickey= of the address")? {
            return Err(Failure::Config("publickey= and secretkey= of the address are not one pair".into()));
        }
        return Ok(ClientKeys { keys, from: "the address's publickey=".into(), bound: None });
    }
    if layout == Layout::Modular {
        return modular_client_keys(home);
    }
    let control = keystore::service_keystore_path(home, CONTROL_CONNECTION);
    let platform = keystore::platform_keystore_path(home);
    let missing = || {
        Failure::Config(format!(
            "no client key: neither {} nor {} exists (pass --key-file with a key pair auth.json lists)",
            control.display(),
            platform.display()
        ))
    };
    first_usable([&control, &platform], missing, |path| {
        let keys = keystore::load(path)?;
        let bound = (path == control.as_path()).then(|| CONTROL_CONNECTION.to_string());
        Ok(ClientKeys { keys, from: path.display().to_string(), bound })
    })
}

/// The first of `paths` that `load` reads; a missing file is skipped, an unusable one is reported
/// (the first such) when none loads, `missing()` when none exists.
fn first_usable(
    paths: [&Path; 2],
    missing: impl FnOnce() -> Failure,
    load: impl Fn(&Path) -> Result<ClientKeys, KeyFileError>,
) -> Result<ClientKeys, Failure> {
    let mut unusable = None;
    for path in paths {
        match load(path) {
            Ok(keys) => return Ok(keys),
            Err(KeyFileError::Io(std::io::ErrorKind::NotFound)) => {}
            Err(e) => unusable = unusable.or(Some(key_file_error(path, e))),
        }
    }
    Err(unusable.unwrap_or_else(missing))
}

/// A modular home: vctl's credential file, else the platform's (see the module doc).
fn modular_client_keys(home: &Path) -> Result<ClientKeys, Failure> {
    let control = credentials_dir(home).join(format!("{CONTROL_CONNECTION}.json"));
    let platform = platform_credentials_path(home);
    let missing = || {
        Failure::Config(format!(
            "no client key: {} does not exist (pass --key-file with a key pair of a credential file)",
            platform.display()
        ))
    };
    first_usable([&control, &platform], missing, |path| {
        let (identity, keys) = local_credential(path)?;
        Ok(ClientKeys { keys, from: path.display().to_string(), bound: Some(identity) })
    })
}
