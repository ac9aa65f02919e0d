//! Modular VOLTTRON's credential store: who may connect, and the server key pair (research memo
//! `shared/research/modular-volttron.md` §1.6, §1.7).
//!
//! `$VOLTTRON_HOME/credentials_store/<identity>.json` holds one identity's key pair, written by
//! `platform.auth` (`vctl auth add`, `vctl install`, the services on first start) as
//! `{"identity": ID, "publickey": <43>, "secretkey": <43>, "domain": "", "address": ""}`
//! (`volttron/auth/zap/credential_store.py` `FileBasedCredentialStore`). A file without
//! `secretkey` is a remote platform's public key (`PublicCredentials`, federation).
//!
//! * **The server pair** is `platform.json` ([`platform_keys`]). It is only ever read: never
//!   created, regenerated or rewritten, whatever its text (a key starting with `-` is a valid
//!   modular key — VOLTTRON 9's re-draw rule of [`super::keystore`] does not apply), because
//!   every modular client reads this file for the server key.
//! * **Admission** ([`CredentialStore::auth_store`]): every file with a secret key admits its
//!   public key under CURVE, with user id = identity, **bound to that identity** (the ZMTP
//!   identity must equal the file's `identity`, [`super::Authenticator::check_identity`]).
//!   Modular's own ZAP handler maps key → identity too, but never binds them, and as shipped is
//!   not consulted at all (memo §1.6): this is stricter, on purpose. Public-only files are not
//!   admitted: they are remote platforms' federation links, which viprouter does not serve
//!   (README "What works").
//! * **Bad files** ([`CredentialStore::load`]): a file that cannot be read or parsed is reported
//!   ([`FileProblem`]) and **its previous entry is kept**; the other files load. An empty file
//!   is one being written (`vctl auth add`: Python creates it, then writes): it keeps its
//!   previous entry, if any, without a report, and is read again on its close event. Files are read in name order; at most [`MAX_CREDENTIAL_FILES`] are read (the
//!   rest are reported), each at most 1 MiB (the key-file limit of [`super::keystore`]).
//! * Two files with the same public key: the later (in name order) wins, as in Python's
//!   key → identity map, and the pair is reported.
//!
//! A loader: reads files, allocates, and is never on a traffic path.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use super::MAX_AUTH_ENTRIES;
use super::auto_entries::AutoEntry;
use super::jsontext::to_string;
use super::keys::{KeyText, decode_key};
use super::keystore::{KeyFileError, pair_from_texts, parse_object, read_small};
use super::layout::PLATFORM_CREDENTIALS;
use super::store::AuthStore;
use crate::zmtp::mechanism::curve::keys::{KeyPair, PublicKey};

pub use crate::limits::MAX_CREDENTIAL_FILES;
const _: () = assert!(MAX_CREDENTIAL_FILES <= MAX_AUTH_ENTRIES, "every credential fits the allow store");
/// The `comments` of the allow entries made from credential files (seen in logs only).
pub const CREDENTIAL_COMMENT: &str = "modular VOLTTRON credentials_store";

/// One credential file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Its `identity`.
    pub identity: String,
    /// Its `publickey`.
    pub public: PublicKey,
    /// Whether it has a `secretkey` (a local identity) or not (a remote platform).
    pub has_secret: bool,
}

/// A file that was not (re)loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    /// Its name in the directory.
    pub file: String,
    /// Why.
    pub error: KeyFileError,
    /// Whether the entry it had before stays in force.
    pub kept_previous: bool,
}

/// What a load did besides the store: to be logged and counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Files that could not be read or parsed.
    pub problems: Vec<FileProblem>,
    /// Files beyond [`MAX_CREDENTIAL_FILES`], not read.
    pub over_limit: usize,
    /// `(winner, loser)` identities of files sharing a public key.
    pub duplicate_keys: Vec<(String, String)>,
}

/// The credential files of one load, by file name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialStore {
    files: BTreeMap<String, Credential>,
}

/// Parses one credential file (see the module doc).
///
/// # Errors
/// Not JSON, not an object, `identity` or `publickey` missing or not strings, a key that does
/// not decode.
pub fn parse_credential(text: &[u8]) -> Result<Credential, KeyFileError> {
    let v = parse_object(text)?;
    let field = |name: &'static str| v.get(name.as_bytes()).and_then(|k| k.as_str()).map(to_string);
    let identity = field("identity").ok_or(KeyFileError::MissingKey("identity"))?;
    let public = field("publickey").ok_or(KeyFileError::MissingKey("publickey"))?;
    let public = PublicKey(decode_key(&public).map_err(|e| KeyFileError::BadKey("publickey", e))?);
    let has_secret = field("secretkey").is_some_and(|s| !s.is_empty());
    Ok(Credential { identity, public, has_secret })
}

/// The server key pair from `platform.json` (read only; see the module doc).
///
/// # Errors
/// The file is missing or unreadable, or lacks a decodable `publickey`/`secretkey` pair whose
/// halves belong together.
pub fn platform_keys(path: &Path) -> Result<KeyPair, KeyFileError> {
    let text = read_small(path)?.ok_or(KeyFileError::Io(io::ErrorKind::NotFound))?;
    pair_of(&text)
}

/// The `publickey`/`secretkey` pair of a credential file's text.
fn pair_of(text: &[u8]) -> Result<KeyPair, KeyFileError> {
    let v = parse_object(text)?;
    let field = |name: &'static str| {
        v.get(name.as_bytes()).and_then(|k| k.as_str()).map(to_string).ok_or(KeyFileError::MissingKey(name))
    };
    pair_from_texts(&field("publickey")?, &field("secretkey")?)
}

/// A local identity's credential file: its `identity` and key pair (what modular's `vctl` reads
/// from `control.connection.json`; `viprouter stats` uses it the same way).
///
/// # Errors
/// As [`platform_keys`], and `identity` missing or not a string.
pub fn local_credential(path: &Path) -> Result<(String, KeyPair), KeyFileError> {
    let text = read_small(path)?.ok_or(KeyFileError::Io(io::ErrorKind::NotFound))?;
    let identity = parse_credential(&text)?.identity;
    Ok((identity, pair_of(&text)?))
}

/// `None` for an empty (or blank) file.
fn parse_or_empty(text: &[u8]) -> Result<Option<Credential>, KeyFileError> {
    if text.iter().all(u8::is_ascii_whitespace) { Ok(None) } else { parse_credential(text).map(Some) }
}

impl CredentialStore {
    /// Reads every `*.json` of `dir` (see the module doc). `previous` is the store in force: a
    /// bad file keeps its entry from there.
    ///
    /// # Errors
    /// The directory itself cannot be listed.
    pub fn load(dir: &Path, previous: Option<&CredentialStore>) -> io::Result<(CredentialStore, LoadReport)> {
        let mut names: Vec<String> = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') && e.file_type().is_ok_and(|t| !t.is_dir()) {
                names.push(name);
            }
        }
        names.sort_unstable();
        let mut report = LoadReport::default();
        if names.len() > MAX_CREDENTIAL_FILES {
            report.over_limit = names.len() - MAX_CREDENTIAL_FILES;
            names.truncate(MAX_CREDENTIAL_FILES);
        }
        let mut store = CredentialStore::default();
        for name in names {
            let keep = |store: &mut CredentialStore| {
                if let Some(old) = previous.and_then(|p| p.files.get(&name)) {
                    store.files.insert(name.clone(), old.clone());
                }
            };
            match read_small(&dir.join(&name)).and_then(|t| t.map(|t| parse_or_empty(&t)).transpose()) {
                Ok(Some(Some(c))) => {
                    store.files.insert(name, c);
                }
                Ok(Some(None)) => keep(&mut store), // empty: being written (Python opens, then writes)
                Ok(None) => {}                      // removed while listing
                Err(error) => {
                    let old = previous.and_then(|p| p.files.get(&name)).cloned();
                    report.problems.push(FileProblem { file: name.clone(), error, kept_previous: old.is_some() });
                    if let Some(old) = old {
                        store.files.insert(name, old);
                    }
                }
            }
        }
        let mut by_key: HashMap<[u8; 32], &str> = HashMap::new();
        for c in store.files.values().filter(|c| c.has_secret) {
            if let Some(earlier) = by_key.insert(c.public.0, &c.identity) {
                report.duplicate_keys.push((c.identity.clone(), earlier.to_owned()));
            }
        }
        Ok((store, report))
    }

    /// The credentials, in file-name order.
    pub fn iter(&self) -> impl Iterator<Item = &Credential> {
        self.files.values()
    }

    /// Number of files loaded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether none was loaded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The identity of `platform.json`'s entry, if loaded.
    #[must_use]
    pub fn platform(&self) -> Option<&Credential> {
        self.files.get(PLATFORM_CREDENTIALS)
    }

    /// The allow entries (see the module doc): one CURVE entry per file with a secret key, user
    /// id and bound identity = its `identity`.
    #[must_use]
    pub fn auth_store(&self) -> AuthStore {
        let entries: Vec<AutoEntry> = self
            .files
            .values()
            .filter(|c| c.has_secret)
            .map(|c| AutoEntry {
                user_id: c.identity.clone(),
                identity: Some(c.identity.clone()),
                credentials: KeyText::new(&c.public.0),
                capabilities: Vec::new(),
                comments: CREDENTIAL_COMMENT,
            })
            .collect();
        AuthStore::from_auto_entries(&entries)
    }
}

#[cfg(test)]
mod tests;
