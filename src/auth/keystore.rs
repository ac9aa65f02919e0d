//! The platform's key files (VIP.md §9.3, §14.1; ZMTP.md §11.3): `$VOLTTRON_HOME/keystore` and
//! `$VOLTTRON_HOME/known_hosts`. Loaders only: this module reads and writes files and is not on
//! any traffic path.
//!
//! **keystore** — JSON `{"public": <43>, "secret": <43>}` (Python writes it with `indent=4`),
//! mode 0600. [`load_or_create`]:
//! * missing or empty file → a new random pair, written;
//! * both keys present → decoded (any form [`decode_key`] accepts) and checked: the public key
//!   must be the X25519 base-point multiple of the secret ([`KeyPair::from_secret`]);
//! * a key whose text starts with `-` → a new pair, written (VOLTTRON regenerates such keys:
//!   they are mistaken for options on command lines). **This changes the server key**; agents
//!   that pinned the old one must be given the new one ([`KeystoreOrigin::Regenerated`] tells the
//!   caller to log it);
//! * anything else (unreadable, not JSON, a key missing or undecodable, public not matching
//!   secret) is an error and the file is left alone. Python silently regenerates a corrupt
//!   keystore; replacing the platform's identity behind the operator's back is worse than
//!   refusing to start.
//!
//! New pairs are redrawn while either key's text starts with `-` (VOLTTRON: up to 3 redraws; here
//! up to [`MAX_KEY_DRAWS`] draws, after which the last pair is used — it is a valid key, only
//! awkward on a command line). Files are written atomically: a temporary file in the same
//! directory, created with the final mode, written, `fsync`ed, renamed over the target, and the
//! directory `fsync`ed. An existing keystore with group/other permission bits is narrowed to
//! 0600, as Python's `chmod` on load does.
//!
//! **known_hosts** — JSON object `{HOST: "<43-char server key>"}`, mode 0644, HOST = the URL's
//! network location (`127.0.0.1:22916`), or `@` for abstract ipc ([`known_hosts_key`]).
//! [`update_known_hosts`] sets the given hosts and keeps every other member byte-for-byte
//! (Python's `dict.update` + `json.dumps(indent=4)`; duplicate keys collapse to the last, as in a
//! Python dict). A known_hosts that is not a JSON object is an error, not silently replaced
//! (Python would drop every other host).

use core::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;

use super::jsontext::to_string;
use super::keys::{KeyError, KeyText, decode_key};
use crate::json::emit::push_str;
use crate::json::{self, JsonErrorKind, Kind};
use crate::zmtp::mechanism::curve::keys::{KeyPair, PublicKey, SecretKey};

/// Mode of `keystore` files.
pub const KEYSTORE_MODE: u32 = 0o600;
/// Mode of `known_hosts`.
pub const KNOWN_HOSTS_MODE: u32 = 0o644;
/// Draws of a new key pair before accepting one whose text starts with `-`.
pub const MAX_KEY_DRAWS: usize = 16;
/// Largest keystore or known_hosts read, in bytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What went wrong with a key file. The file has not been changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileError {
    /// Reading, writing or renaming failed.
    Io(io::ErrorKind),
    /// Larger than 1 MiB.
    TooLarge,
    /// Not UTF-8 or not JSON.
    Json(Option<JsonErrorKind>),
    /// Not a JSON object.
    NotAnObject,
    /// A keystore without this member (or not a string).
    MissingKey(&'static str),
    /// A keystore key that does not decode.
    BadKey(&'static str, KeyError),
    /// The keystore's public key is not the one of its secret key.
    PublicMismatch,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(kind) => write!(f, "I/O error: {kind}"),
            Self::TooLarge => f.write_str("file larger than 1 MiB"),
            Self::Json(Some(kind)) => write!(f, "invalid JSON: {kind}"),
            Self::Json(None) => f.write_str("not UTF-8"),
            Self::NotAnObject => f.write_str("not a JSON object"),
            Self::MissingKey(k) => write!(f, "\"{k}\" missing or not a string"),
            Self::BadKey(k, e) => write!(f, "\"{k}\": {e}"),
            Self::PublicMismatch => f.write_str("public key does not belong to the secret key"),
        }
    }
}

impl std::error::Error for KeyFileError {}

fn io_err(e: io::Error) -> KeyFileError {
    KeyFileError::Io(e.kind())
}

/// How [`load_or_create`] obtained the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeystoreOrigin {
    /// Read from the file.
    Loaded,
    /// The file was missing or empty; a new pair was written.
    Created,
    /// A stored key started with `-`; a new pair was written (the server key changed).
    Regenerated,
}

/// The platform's key pair and where it came from.
#[derive(Clone, Debug)]
pub struct Keystore {
    /// The pair (CURVE server key of every endpoint; `query serverkey` reports the public half).
    pub keys: KeyPair,
    /// How it was obtained.
    pub origin: KeystoreOrigin,
}

/// `$VOLTTRON_HOME/keystore`.
#[must_use]
pub fn platform_keystore_path(home: &Path) -> PathBuf {
    home.join("keystore")
}

/// `$VOLTTRON_HOME/keystores/<identity>/keystore.json` (keys of `vctl`, services and agents
/// started outside the platform, VIP.md §9.3).
#[must_use]
pub fn service_keystore_path(home: &Path, identity: &str) -> PathBuf {
    home.join("keystores").join(identity).join("keystore.json")
}

/// `$VOLTTRON_HOME/known_hosts`.
#[must_use]
pub fn known_hosts_path(home: &Path) -> PathBuf {
    home.join("known_hosts")
}

/// A new random pair whose VOLTTRON texts do not start with `-` (see the module doc).
pub fn generate_pair(rng: &mut impl CryptoRngCore) -> KeyPair {
    let mut pair = KeyPair::generate(rng);
    for _ in 1..MAX_KEY_DRAWS {
        if !starts_with_dash(&pair) {
            break;
        }
        pair = KeyPair::generate(rng);
    }
    pair
}

fn starts_with_dash(pair: &KeyPair) -> bool {
    KeyText::new(&pair.public.0).as_bytes().first() == Some(&b'-')
        || KeyText::new(pair.secret.as_bytes()).as_bytes().first() == Some(&b'-')
}

/// Reads a file of at most [`MAX_FILE_BYTES`]; `Ok(None)` if it does not exist.
pub(crate) fn read_small(path: &Path) -> Result<Option<Vec<u8>>, KeyFileError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut text).map_err(io_err)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(KeyFileError::TooLarge);
    }
    Ok(Some(text))
}

/// `text` as a JSON object (UTF-8 first).
pub(crate) fn parse_object(text: &[u8]) -> Result<json::Value<'_>, KeyFileError> {
    core::str::from_utf8(text).map_err(|_| KeyFileError::Json(None))?;
    let v = json::parse(text).map_err(|e| KeyFileError::Json(Some(e.kind)))?;
    if v.kind() != Kind::Object {
        return Err(KeyFileError::NotAnObject);
    }
    Ok(v)
}

/// The two key texts of a keystore file.
fn keystore_texts(text: &[u8]) -> Result<(String, String), KeyFileError> {
    let v = parse_object(text)?;
    let get = |name: &'static str| {
        v.get(name.as_bytes()).and_then(|k| k.as_str()).map(to_string).ok_or(KeyFileError::MissingKey(name))
    };
    Ok((get("public")?, get("secret")?))
}

/// The pair of two key texts, the public one checked against the secret one.
pub(crate) fn pair_from_texts(public: &str, secret: &str) -> Result<KeyPair, KeyFileError> {
    let p = decode_key(public).map_err(|e| KeyFileError::BadKey("public", e))?;
    let s = decode_key(secret).map_err(|e| KeyFileError::BadKey("secret", e))?;
    let pair = KeyPair::from_secret(SecretKey::from_bytes(s));
    if pair.public != PublicKey(p) {
        return Err(KeyFileError::PublicMismatch);
    }
    Ok(pair)
}

/// Reads a keystore (platform or service) without creating or changing anything.
///
/// # Errors
/// A missing file is `Io(NotFound)`; otherwise as [`load_or_create`].
pub fn load(path: &Path) -> Result<KeyPair, KeyFileError> {
    let text = read_small(path)?.ok_or(KeyFileError::Io(io::ErrorKind::NotFound))?;
    let (public, secret) = keystore_texts(&text)?;
    pair_from_texts(&public, &secret)
}

/// Loads `$VOLTTRON_HOME/keystore`, creating or regenerating it as the module doc says.
///
/// # Errors
/// [`KeyFileError`]; the file is then unchanged.
pub fn load_or_create(path: &Path, rng: &mut impl CryptoRngCore) -> Result<Keystore, KeyFileError> {
    let text = read_small(path)?;
    let origin = match text.as_deref() {
        None => KeystoreOrigin::Created,
        Some(t) if t.iter().all(u8::is_ascii_whitespace) => KeystoreOrigin::Created,
        Some(t) => {
            let (public, secret) = keystore_texts(t)?;
            if public.starts_with('-') || secret.starts_with('-') {
                KeystoreOrigin::Regenerated
            } else {
                let keys = pair_from_texts(&public, &secret)?;
                narrow_mode(path, KEYSTORE_MODE)?;
                return Ok(Keystore { keys, origin: KeystoreOrigin::Loaded });
            }
        }
    };
    let keys = generate_pair(rng);
    write_atomic(path, keystore_json(&keys).as_bytes(), KEYSTORE_MODE)?;
    Ok(Keystore { keys, origin })
}

/// The keystore text as Python's `json.dumps(data, indent=4)` writes it.
#[must_use]
pub fn keystore_json(keys: &KeyPair) -> String {
    let mut s = String::from("{\n    \"public\": ");
    push_str(&mut s, KeyText::new(&keys.public.0).as_str());
    s.push_str(",\n    \"secret\": ");
    push_str(&mut s, KeyText::new(keys.secret.as_bytes()).as_str());
    s.push_str("\n}");
    s
}

/// Removes group/other bits beyond `mode` from an existing file.
fn narrow_mode(path: &Path, mode: u32) -> Result<(), KeyFileError> {
    let meta = fs::metadata(path).map_err(io_err)?;
    let current = meta.permissions().mode() & 0o777;
    if current & !mode != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err)?;
    }
    Ok(())
}

/// Writes `data` to `path` atomically with `mode` (temporary file, fsync, rename, fsync dir).
///
/// # Errors
/// The I/O error; the target is then unchanged (a leftover temporary file is removed).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed the creation mode; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

/// The `known_hosts` key of a VIP address: the URL's network location, else its path
/// (VOLTTRON's `KnownHostsStore._parse_addr`): `tcp://127.0.0.1:22916?serverkey=…` →
/// `127.0.0.1:22916`; `ipc://@/home/v/run/vip.socket` → `@`; `ipc:///tmp/v.sock` → `/tmp/v.sock`.
#[must_use]
pub fn known_hosts_key(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let netloc = rest.get(..netloc_end).unwrap_or("");
    if !netloc.is_empty() {
        return netloc;
    }
    let path = rest.get(netloc_end..).unwrap_or("");
    let path_end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..path_end).unwrap_or("")
}

/// Sets `hosts` (host → server key) in `known_hosts`, keeping all other members (see the module
/// doc). Creates the file if missing. Returns whether the file changed.
///
/// # Errors
/// [`KeyFileError`] if the existing file is not a JSON object or cannot be read or written;
/// the file is then unchanged.
pub fn update_known_hosts(path: &Path, hosts: &[(&str, &PublicKey)]) -> Result<bool, KeyFileError> {
    let text = read_small(path)?.unwrap_or_default();
    // (raw key text including quotes, raw value text, decoded key) in first-seen order.
    let mut members: Vec<(String, String, String)> = Vec::new();
    if !text.iter().all(u8::is_ascii_whitespace) {
        let v = parse_object(&text)?;
        for (k, val) in v.members() {
            let decoded = to_string(k);
            let raw_key = format!("\"{}\"", String::from_utf8_lossy(k.raw()));
            let raw_val = String::from_utf8_lossy(val.raw()).into_owned();
            match members.iter_mut().find(|m| m.2 == decoded) {
                Some(m) => m.1 = raw_val,
                None => members.push((raw_key, raw_val, decoded)),
            }
        }
    }
    let mut changed = false;
    for (host, key) in hosts {
        let mut value = String::new();
        push_str(&mut value, KeyText::new(&key.0).as_str());
        match members.iter_mut().find(|m| m.2 == *host) {
            Some(m) if m.1 == value => {}
            Some(m) => {
                m.1 = value;
                changed = true;
            }
            None => {
                let mut raw_key = String::new();
                push_str(&mut raw_key, host);
                members.push((raw_key, value, (*host).to_owned()));
                changed = true;
            }
        }
    }
    if !changed && !text.is_empty() {
        return Ok(false);
    }
    let mut out = String::from("{");
    for (i, (k, v, _)) in members.iter().enumerate() {
        out.push_str(if i == 0 { "\n    " } else { ",\n    " });
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
    }
    out.push_str(if members.is_empty() { "}" } else { "\n}" });
    write_atomic(path, out.as_bytes(), KNOWN_HOSTS_MODE)?;
    Ok(true)
}

/// The server key `known_hosts` holds for `host`, if any (`None` also for a missing file).
///
/// # Errors
/// As [`update_known_hosts`] for an unreadable file; [`KeyFileError::BadKey`] for an
/// undecodable key.
pub fn known_host(path: &Path, host: &str) -> Result<Option<PublicKey>, KeyFileError> {
    let Some(text) = read_small(path)? else {
        return Ok(None);
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v = parse_object(&text)?;
    let mut found = None;
    for (k, val) in v.members() {
        if to_string(k) == host {
            found = val.as_str().map(to_string);
        }
    }
    found.map(|t| decode_key(&t).map(PublicKey).map_err(|e| KeyFileError::BadKey("server key", e))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netloc_or_path() {
        assert_eq!(known_hosts_key("tcp://127.0.0.1:22916"), "127.0.0.1:22916");
        assert_eq!(known_hosts_key("tcp://127.0.0.1:22916?serverkey=abc&publickey=x"), "127.0.0.1:22916");
        assert_eq!(known_hosts_key("ipc://@/home/v/.volttron/run/vip.socket"), "@");
        assert_eq!(known_hosts_key("tcp://[::1]:22916/"), "[::1]:22916");
        assert_eq!(known_hosts_key("ipc:///tmp/vip.sock?x=1"), "/tmp/vip.sock");
    }
}
