//! Discovery entries: what names a remote platform to link to (VIP.md §11.1–§11.2,
//! `../shared/research/multiplatform.md` §1.2, §2.1).
//!
//! One entry is a JSON object with at least
//! `{"instance-name": "p2", "vip-address": "tcp://127.0.0.1:23917", "serverkey": "<43-char key>"}`
//! (extra keys, e.g. `web-address` or `rmq-address`, are ignored). It comes either as one value
//! of `$VOLTTRON_HOME/external_platform_discovery.json` — a JSON object whose keys are not used
//! (VOLTTRON sends every *value* to its router as it stands) — or as the body of
//! `routing_table normalmode_platform_connection` from `keydiscovery`.
//!
//! Parsing is strict where VOLTTRON crashes or silently links nowhere, and says why:
//! a missing or non-string key, an empty or over-long name ([`MAX_INSTANCE_NAME_BYTES`]), an
//! address that is not `tcp://…`/`ipc://…`, a server key that is not one of the forms
//! VOLTTRON's `decode_key` accepts (43-char URL-safe base64, Z85, hex). A bad entry is skipped;
//! the others apply. A file that is not a JSON object (or not JSON at all) is an error as a whole:
//! at start the router runs with no file links, on reload the previous configuration stays.
//! An empty file (or only whitespace) is an empty configuration, as VOLTTRON's
//! `PersistentDict(flag='c')` creates it.

use core::fmt;

use super::links::{LinkConfig, valid_instance_name, valid_link_address};
use crate::auth::keys::decode_key;
use crate::json::{self, JsonError, Kind, Value};
use crate::limits::{MAX_INSTANCE_NAME_BYTES, MAX_LINK_ADDRESS_BYTES};

/// Why one entry is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The entry is not a JSON object.
    NotObject,
    /// A required key is absent or not a string.
    Missing(&'static str),
    /// `instance-name` is empty, too long, or has characters above U+00FF.
    BadName,
    /// `vip-address` is not `tcp://…` or `ipc://…`, or too long.
    BadAddress,
    /// `serverkey` is not a CURVE public key in a form VOLTTRON accepts.
    BadServerKey,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::NotObject => f.write_str("not a JSON object"),
            EntryError::Missing(k) => write!(f, "no \"{k}\" string"),
            EntryError::BadName => {
                write!(f, "instance-name empty, over {MAX_INSTANCE_NAME_BYTES} bytes, or not latin-1")
            }
            EntryError::BadAddress => {
                write!(f, "vip-address is not tcp://… or ipc://… (≤ {MAX_LINK_ADDRESS_BYTES} bytes)")
            }
            EntryError::BadServerKey => f.write_str("serverkey is not a CURVE key (43-char base64, Z85 or hex)"),
        }
    }
}

/// Why a whole discovery document is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// Not JSON (with the byte position).
    Json(JsonError),
    /// JSON, but not an object.
    NotObject,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::Json(e) => write!(f, "not JSON: {e}"),
            DiscoveryError::NotObject => f.write_str("not a JSON object of entries"),
        }
    }
}

/// A parsed discovery file: the usable entries, and the skipped ones with the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Usable entries, in file order (a name listed twice: the later entry wins when applied).
    pub entries: Vec<LinkConfig>,
    /// `(outer key, why)` of each skipped entry.
    pub skipped: Vec<(String, EntryError)>,
}

/// A string member of `entry`, as latin-1 bytes.
fn string_member(entry: Value<'_>, key: &'static str) -> Result<Vec<u8>, EntryError> {
    let s = entry.get(key.as_bytes()).and_then(|v| v.as_str()).ok_or(EntryError::Missing(key))?;
    let n = s.latin1_len().ok_or(EntryError::Missing(key))?;
    let mut scratch = vec![0u8; n];
    // `to_latin1` returns the input itself when it has no escapes: copy what it returns.
    s.to_latin1(&mut scratch).map(<[u8]>::to_vec).map_err(|_| EntryError::Missing(key))
}

/// Parse one entry (a JSON object value).
///
/// # Errors
/// [`EntryError`].
pub fn parse_entry(entry: Value<'_>) -> Result<LinkConfig, EntryError> {
    if entry.kind() != Kind::Object {
        return Err(EntryError::NotObject);
    }
    let name = string_member(entry, "instance-name")?;
    let address = string_member(entry, "vip-address")?;
    let key = string_member(entry, "serverkey")?;
    if !valid_instance_name(&name) {
        return Err(EntryError::BadName);
    }
    let address = String::from_utf8(address).map_err(|_| EntryError::BadAddress)?;
    if !valid_link_address(&address) {
        return Err(EntryError::BadAddress);
    }
    let serverkey = decode_key(&key).map_err(|_| EntryError::BadServerKey)?;
    Ok(LinkConfig { instance_name: name, vip_address: address, serverkey })
}

/// Parse one entry from its JSON text (the `normalmode_platform_connection` body).
///
/// # Errors
/// [`EntryError::NotObject`] for text that is not a JSON object; else as [`parse_entry`].
pub fn parse_entry_json(body: &[u8]) -> Result<LinkConfig, EntryError> {
    json::parse(body).map_err(|_| EntryError::NotObject).and_then(parse_entry)
}

/// Parse the content of `external_platform_discovery.json`.
///
/// # Errors
/// [`DiscoveryError`] when the document as a whole is unusable (the caller keeps the previous
/// configuration).
pub fn parse_discovery(content: &[u8]) -> Result<Discovery, DiscoveryError> {
    if content.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        return Ok(Discovery::default());
    }
    let doc = json::parse(content).map_err(DiscoveryError::Json)?;
    if doc.kind() != Kind::Object {
        return Err(DiscoveryError::NotObject);
    }
    let mut d = Discovery::default();
    for (key, entry) in doc.members() {
        match parse_entry(entry) {
            Ok(c) => d.entries.push(c),
            Err(e) => {
                let key: String = key.chars().map(|c| char::from_u32(c).unwrap_or('\u{FFFD}')).collect();
                d.skipped.push((key, e));
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ";

    fn entry(name: &str, addr: &str, key: &str) -> String {
        format!(r#"{{"vip-address": "{addr}", "instance-name": "{name}", "serverkey": "{key}", "extra": [1]}}"#)
    }

    #[test]
    fn a_good_entry_parses_with_its_key_decoded() {
        let c = parse_entry_json(entry("p2", "tcp://127.0.0.1:23917", KEY).as_bytes()).unwrap();
        assert_eq!(c.instance_name, b"p2");
        assert_eq!(c.vip_address, "tcp://127.0.0.1:23917");
        assert_eq!(c.serverkey, decode_key(KEY).unwrap());
    }

    #[test]
    fn bad_entries_say_why() {
        let cases: [(String, EntryError); 8] = [
            ("[]".into(), EntryError::NotObject),
            ("garbage".into(), EntryError::NotObject),
            (r#"{"vip-address": "tcp://h:1", "serverkey": "k"}"#.into(), EntryError::Missing("instance-name")),
            (
                r#"{"instance-name": 5, "vip-address": "tcp://h:1", "serverkey": "k"}"#.into(),
                EntryError::Missing("instance-name"),
            ),
            (entry("", "tcp://h:1", KEY), EntryError::BadName),
            (entry("p2", "http://h:1", KEY), EntryError::BadAddress),
            (entry("p2", "tcp://", KEY), EntryError::BadAddress),
            (entry("p2", "tcp://h:1", "not-a-key"), EntryError::BadServerKey),
        ];
        for (text, want) in cases {
            assert_eq!(parse_entry_json(text.as_bytes()), Err(want), "{text}");
        }
        let long = "x".repeat(MAX_INSTANCE_NAME_BYTES + 1);
        assert_eq!(parse_entry_json(entry(&long, "tcp://h:1", KEY).as_bytes()), Err(EntryError::BadName));
        assert!(parse_entry_json(entry(&long[1..], "tcp://h:1", KEY).as_bytes()).is_ok());
        assert_eq!(
            parse_entry_json(entry("\\u0100", "tcp://h:1", KEY).as_bytes()),
            Err(EntryError::Missing("instance-name"))
        );
    }

    #[test]
    fn a_file_keeps_the_good_entries_and_names_the_bad_ones() {
        let text = format!(
            r#"{{"p2": {}, "broken": {{"instance-name": "p3"}}, "p4": {}}}"#,
            entry("p2", "tcp://127.0.0.1:1", KEY),
            entry("p4", "ipc://@/x/vip.socket", KEY)
        );
        let d = parse_discovery(text.as_bytes()).unwrap();
        assert_eq!(d.entries.iter().map(|c| c.instance_name.as_slice()).collect::<Vec<_>>(), vec![&b"p2"[..], b"p4"]);
        assert_eq!(d.skipped, vec![("broken".to_string(), EntryError::Missing("vip-address"))]);
    }

    #[test]
    fn empty_and_garbage_files() {
        assert_eq!(parse_discovery(b"").unwrap(), Discovery::default());
        assert_eq!(parse_discovery(b" \n").unwrap(), Discovery::default());
        assert_eq!(parse_discovery(b"{}").unwrap(), Discovery::default());
        assert_eq!(parse_discovery(b"[1]"), Err(DiscoveryError::NotObject));
        assert!(matches!(parse_discovery(b"{\"p2\": "), Err(DiscoveryError::Json(_))));
        assert!(matches!(parse_discovery(b"\xff\xfe"), Err(DiscoveryError::Json(_))));
    }
}
