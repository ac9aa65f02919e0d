//! `auth.json` → [`AuthStore`]: the allow entries the decision of VIP.md §9.6 runs over.
//!
//! Reading follows VOLTTRON 9.0.4 (`auth_file.py`, `auth_entry.py`, VIP.md §9.5):
//!
//! * Comments (`# …`, `// …`, `/* … */` outside quoted strings) are stripped first
//!   (`auth::jsontext`); the rest is JSON (Python dialect, [`crate::json`]) in UTF-8.
//!   Empty text is an empty store.
//! * The top level must be an object; `allow`/`deny` must be arrays and `groups`/`roles`/
//!   `version` objects when present, otherwise the **file** is refused ([`AuthFileError`]).
//!   `version.major` must be 1 (VIP.md §9.5: only 1.x is understood; the `platform.auth` agent
//!   upgrades older files). A file without `version` is read as 1.x, not upgraded.
//! * Each `allow` entry is validated like `AuthEntry.__init__`; an invalid entry is **skipped**
//!   ([`SkippedEntry`], to be logged) and the others still load, as in Python. `deny` plays no
//!   role in authentication (§9.5) and is only type-checked.
//! * `enabled` uses Python truthiness (`false`, `null`, `0`, `""`, `[]`, `{}` disable the entry);
//!   disabled entries are counted and dropped.
//! * `domain`, `address`, `credentials`: `null`, missing, `""` or `[]` = wildcard (Python's
//!   `_build_field` maps falsy values to `None`); a string `"/…/"` (length > 1) is a regular
//!   expression; any other string must be equal; a list means "any element matches". Other
//!   JSON types skip the entry.
//! * `mechanism`: `CURVE` (default), `NULL`, `PLAIN`; a CURVE entry needs a 43-character key or a
//!   regex as credentials (a list never qualifies), else it is skipped.
//! * `user_id`: a string, kept as is (even `""`); missing or `null` → a random uuid4 drawn from the
//!   caller's RNG (new at every load, as in Python).
//! * `capabilities`: a string, a list of strings/objects, or an object; each name is kept with
//!   its argument (JSON, `null` for a bare name), merged as VOLTTRON's `dict.update` does
//!   ([`Capability`]): the router compares names (VIP.md §7.9) and shows the arguments in the
//!   -32001 text (§6.2). The capabilities of the roles listed in `roles`, and of the roles of the
//!   groups listed in `groups`, are added without argument (and drop the entry's own argument of
//!   the same name, as in Python). A string in `roles` or `groups` is taken as one name (Python
//!   would iterate its characters).
//!
//! # Regular expressions
//!
//! A `/…/` value is matched against the **whole** value, as VIP.md §9.5 states: the pattern is
//! compiled as `\A(?:…)\z` with `regex-lite`. Python compiles `'^' + body + '$'` and calls
//! `re.match`, which differs in two corners we deliberately do not copy: a top-level
//! alternation `a|b` is only anchored at the outer ends (`^a|b$`, so `/10\.0\.0\.1|10\.0\.0\.2/`
//! also admits `10.0.0.1x`), and `$` also matches before a final newline. The whole-value
//! reading is stricter and what the spec and users mean.
//!
//! `regex-lite` rather than `regex`: auth patterns are tiny (`/.*/`, `/192\.168\.1\..*/`), are
//! compiled only at load and matched only during handshakes, so the full crate's Unicode tables
//! and literal optimisations would add hundreds of KiB to a binary meant for a Raspberry Pi for
//! no measurable gain. `regex-lite` still guarantees linear-time matching (no catastrophic
//! backtracking on a hostile address) and accepts the Python syntax these patterns use; `\d`,
//! `\w` are ASCII-only there (Python's are Unicode; irrelevant for addresses and base64 keys).
//! A pattern `regex-lite` cannot compile (look-around, back-references) skips its entry
//! ([`SkipReason::BadRegex`]); Python would refuse the whole file on a bad pattern, which would
//! lock out every agent.
//!
//! # Order, duplicates, limits
//!
//! Entries whose credentials are not a regex are tried first, in file order, then the regex
//! ones, in file order (Python's sort intends this; its comparator is inconsistent, VIP.md
//! §9.6). Two enabled entries with the same domain, address, mechanism and credentials but a
//! different `user_id` or `identity` are a configuration error
//! ([`AuthFileErrorKind::DuplicateCredentials`]), since which one wins is not defined in Python.
//! More than [`MAX_AUTH_ENTRIES`] items in `allow` refuse the file. Every error comes with its
//! location (line/column or JSON path); a load returns a whole new store or an error, never a
//! partial store, so a failed reload keeps the previous one.
//!
//! # Layout
//!
//! This file is the store itself ([`AuthStore`]: loading, the file-level checks, match order,
//! the `user_id` index, [`AuthStore::upsert`]); `entry` reads and holds one `allow` entry;
//! `error` has the refusal and skip types.

mod entry;
mod error;

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::io::Read as _;
use std::path::Path;

use rand_core::RngCore;

use super::MAX_AUTH_ENTRIES;
use super::auto_entries::AutoEntry;
use super::jsontext::{line_column, strip_comments, to_string};
use crate::json::{self, Kind, Value};

use entry::parse_entry;
pub use entry::{AllowEntry, Capability, EntrySource};
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub(crate) use entry::{Field, Pattern}; // for the fuzz harnesses
use error::err_at;
pub use error::{AuthFileError, AuthFileErrorKind, Location, SkipReason, SkippedEntry, StoreFull};

/// Largest `auth.json` read, in bytes (4096 entries of ~600 bytes need ~2.5 MiB). A larger file
/// is refused with [`AuthFileErrorKind::TooLarge`].
pub const MAX_AUTH_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Compiled-size limit for one regex (regex-lite's default is 10 MiB); patterns are tiny.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// The store

/// The enabled, valid allow entries of one `auth.json` load, indexed for the decision.
///
/// Built whole by [`AuthStore::parse`]/[`AuthStore::load`] (allocation happens here, at load,
/// never while deciding); replaced whole on reload.
#[derive(Clone, Debug, Default)]
pub struct AuthStore {
    entries: Vec<AllowEntry>,
    /// Match order (indices into `entries`): exact credentials first, then regex; file order.
    order: Box<[u16]>,
    /// `user_id` (UTF-8) → index of the entry whose capabilities answer for it (last in match
    /// order wins, like `get_user_to_capabilities`).
    by_user_id: HashMap<Box<[u8]>, u16>,
    skipped: Vec<SkippedEntry>,
    disabled: usize,
}

impl AuthStore {
    /// A store with no entries (every CURVE/NULL request is refused).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads and parses `path` ([`AuthStore::parse`]). A missing file is an empty store
    /// (Python creates it empty).
    ///
    /// # Errors
    /// I/O errors other than "not found", a file over [`MAX_AUTH_FILE_BYTES`], and every error
    /// of [`AuthStore::parse`].
    pub fn load(path: &Path, rng: &mut impl RngCore) -> Result<Self, AuthFileError> {
        let io = |e: std::io::Error| AuthFileError { location: Location::File, kind: AuthFileErrorKind::Io(e.kind()) };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty()),
            Err(e) => return Err(io(e)),
        };
        let mut text = Vec::new();
        file.take(MAX_AUTH_FILE_BYTES + 1).read_to_end(&mut text).map_err(io)?;
        if text.len() as u64 > MAX_AUTH_FILE_BYTES {
            return Err(AuthFileError {
                location: Location::File,
                kind: AuthFileErrorKind::TooLarge { max: MAX_AUTH_FILE_BYTES },
            });
        }
        Self::parse(&text, rng)
    }

    /// Parses the text of an `auth.json` (see the module doc). `rng` supplies the uuid4s of
    /// entries without `user_id`.
    ///
    /// # Errors
    /// [`AuthFileError`] with the location of the first problem that refuses the file.
    pub fn parse(text: &[u8], rng: &mut impl RngCore) -> Result<Self, AuthFileError> {
        if let Err(e) = core::str::from_utf8(text) {
            let offset = e.valid_up_to();
            let (line, column) = line_column(text, offset);
            return Err(AuthFileError {
                location: Location::Text { offset, line, column },
                kind: AuthFileErrorKind::NotUtf8,
            });
        }
        let stripped = strip_comments(text);
        if stripped.text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::empty());
        }
        let top = json::parse(&stripped.text).map_err(|e| {
            let offset = stripped.original_offset(e.pos);
            let (line, column) = line_column(text, offset);
            AuthFileError { location: Location::Text { offset, line, column }, kind: AuthFileErrorKind::Json(e.kind) }
        })?;
        check_top_level(top)?;
        let groups = name_lists(top.get(b"groups"), "groups")?;
        let roles = name_lists(top.get(b"roles"), "roles")?;

        let allow = top.get(b"allow");
        let count = allow.map_or(0, |a| a.items().count());
        if count > MAX_AUTH_ENTRIES {
            return Err(err_at("allow", AuthFileErrorKind::TooManyEntries { count, max: MAX_AUTH_ENTRIES }));
        }

        let mut store = AuthStore { entries: Vec::with_capacity(count), ..AuthStore::default() };
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(count);
        for (index, item) in allow.into_iter().flat_map(|a| a.items()).enumerate() {
            match parse_entry(index, item, &groups, &roles, rng) {
                Ok(Some(entry)) => {
                    store.check_duplicate(&mut seen, index, &entry)?;
                    store.entries.push(entry);
                }
                Ok(None) => store.disabled += 1,
                Err(reason) => store.skipped.push(SkippedEntry { index, reason }),
            }
        }
        store.reindex();
        Ok(store)
    }

    /// Two entries for the same credentials must agree on `user_id` and `identity`
    /// (VOLTTRON refuses such a file too); `seen` maps credentials to their first entry.
    fn check_duplicate(
        &self,
        seen: &mut HashMap<String, usize>,
        index: usize,
        entry: &AllowEntry,
    ) -> Result<(), AuthFileError> {
        match seen.entry(entry.identity_key()) {
            MapEntry::Occupied(o) => {
                let first = *o.get();
                let earlier = self.entries.iter().find(|e| e.source == EntrySource::File { index: first });
                if let Some(earlier) = earlier
                    && (earlier.user_id_explicit != entry.user_id_explicit
                        || (entry.user_id_explicit && earlier.user_id != entry.user_id)
                        || earlier.identity != entry.identity)
                {
                    return Err(err_at(format!("allow[{index}]"), AuthFileErrorKind::DuplicateCredentials { first }));
                }
            }
            MapEntry::Vacant(v) => {
                v.insert(index);
            }
        }
        Ok(())
    }

    /// Recomputes the match order and the `user_id` index after `entries` changed.
    fn reindex(&mut self) {
        let idx = |i: usize| u16::try_from(i).ok();
        let exact = self.entries.iter().enumerate().filter(|(_, e)| !e.has_regex_credentials());
        let regex = self.entries.iter().enumerate().filter(|(_, e)| e.has_regex_credentials());
        self.order = exact.chain(regex).filter_map(|(i, _)| idx(i)).collect();
        self.by_user_id = HashMap::with_capacity(self.entries.len());
        for &i in self.order.iter() {
            if let Some(e) = self.entries.get(usize::from(i)) {
                self.by_user_id.insert(e.user_id.as_bytes().to_vec().into_boxed_slice(), i);
            }
        }
    }

    /// Adds an entry the platform adds on every start (VIP.md §9.7) the way VOLTTRON's
    /// `AuthFile.add(entry, overwrite=True)` does: the first entry with the same `user_id`, or
    /// else with the same domain/address/mechanism/credentials, is replaced in place; otherwise
    /// the entry is appended (it then comes after the file's exact entries in match order).
    /// In memory only: re-apply after every reload.
    ///
    /// # Errors
    /// [`StoreFull`] if appending would exceed [`MAX_AUTH_ENTRIES`] (the store is unchanged).
    pub fn upsert(&mut self, auto: &AutoEntry) -> Result<(), StoreFull> {
        let new = AllowEntry::from_auto(auto);
        let key = new.identity_key();
        let pos = self
            .entries
            .iter()
            .position(|e| e.user_id == new.user_id)
            .or_else(|| self.entries.iter().position(|e| e.identity_key() == key));
        let full = self.entries.len() >= MAX_AUTH_ENTRIES;
        match pos.and_then(|p| self.entries.get_mut(p)) {
            Some(slot) => *slot = new,
            None if full => return Err(StoreFull),
            None => self.entries.push(new),
        }
        self.reindex();
        Ok(())
    }

    /// A store of `entries` only, as if each were [`upsert`](Self::upsert)ed in order into an
    /// empty store (a later entry with the same `user_id`, or else the same credentials,
    /// replaces the earlier one in place), indexed once. Entries past [`MAX_AUTH_ENTRIES`] are
    /// left out. Used for modular VOLTTRON's credential files (`super::credentials`).
    #[must_use]
    pub fn from_auto_entries(entries: &[AutoEntry]) -> Self {
        let mut store = AuthStore { entries: Vec::with_capacity(entries.len()), ..AuthStore::default() };
        let mut by_user: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        let mut by_key: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        for auto in entries {
            let new = AllowEntry::from_auto(auto);
            let key = new.identity_key();
            let pos = by_user.get(&*new.user_id).or_else(|| by_key.get(&key)).copied();
            let pos = match pos
                .and_then(|p| store.entries.get_mut(p).map(|slot| (p, core::mem::replace(slot, new.clone()))))
            {
                Some((p, old)) => {
                    // The replaced entry's user id and credentials no longer lead here.
                    if by_user.get(&*old.user_id) == Some(&p) {
                        by_user.remove(&*old.user_id);
                    }
                    if by_key.get(&old.identity_key()) == Some(&p) {
                        by_key.remove(&old.identity_key());
                    }
                    p
                }
                None if store.entries.len() >= MAX_AUTH_ENTRIES => continue,
                None => {
                    store.entries.push(new);
                    store.entries.len() - 1
                }
            };
            by_user.insert(auto.user_id.clone(), pos);
            by_key.insert(key, pos);
        }
        store.reindex();
        store
    }

    /// Number of enabled, valid entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in file order (then those added by [`upsert`](Self::upsert)).
    pub fn entries(&self) -> impl Iterator<Item = &AllowEntry> {
        self.entries.iter()
    }

    /// Entries that were skipped as invalid (log them).
    #[must_use]
    pub fn skipped(&self) -> &[SkippedEntry] {
        &self.skipped
    }

    /// Number of `enabled: false` entries dropped.
    #[must_use]
    pub fn disabled(&self) -> usize {
        self.disabled
    }

    /// Entry by position (as in [`super::EntryId`]).
    pub(crate) fn get(&self, index: u16) -> Option<&AllowEntry> {
        self.entries.get(usize::from(index))
    }

    /// The entries in match order, with their positions.
    pub(crate) fn in_match_order(&self) -> impl Iterator<Item = (u16, &AllowEntry)> {
        self.order.iter().filter_map(|&i| self.entries.get(usize::from(i)).map(|e| (i, e)))
    }

    /// The entry whose capabilities answer for `user_id` (last in match order wins).
    pub(crate) fn by_user_id(&self, user_id: &[u8]) -> Option<&AllowEntry> {
        self.by_user_id.get(user_id).and_then(|&i| self.get(i))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers

/// The top level must be an object whose `allow`/`deny` are arrays, `groups`/`roles`/`version`
/// objects, and `version.major` (if any) 1.
fn check_top_level(top: Value<'_>) -> Result<(), AuthFileError> {
    if top.kind() != Kind::Object {
        return Err(AuthFileError {
            location: Location::File,
            kind: AuthFileErrorKind::WrongType { expected: "a JSON object at the top level" },
        });
    }
    for (field, kind) in [
        ("allow", Kind::Array),
        ("deny", Kind::Array),
        ("groups", Kind::Object),
        ("roles", Kind::Object),
        ("version", Kind::Object),
    ] {
        if let Some(v) = top.get(field.as_bytes())
            && v.kind() != kind
        {
            let expected = if kind == Kind::Array { "an array" } else { "an object" };
            return Err(err_at(field, AuthFileErrorKind::WrongType { expected }));
        }
    }
    if let Some(version) = top.get(b"version") {
        let major = version.get(b"major").and_then(|m| m.as_number());
        if major.and_then(|m| m.as_u64()) != Some(1) {
            return Err(err_at("version.major", AuthFileErrorKind::UnsupportedVersion));
        }
    }
    Ok(())
}

/// `groups` / `roles`: `{name: [string, …]}`.
fn name_lists(map: Option<Value<'_>>, what: &str) -> Result<HashMap<String, Vec<String>>, AuthFileError> {
    let mut out = HashMap::new();
    for (k, v) in map.into_iter().flat_map(|m| m.members()) {
        let name = to_string(k);
        let wrong =
            || err_at(format!("{what}.{name}"), AuthFileErrorKind::WrongType { expected: "an array of strings" });
        if v.kind() != Kind::Array {
            return Err(wrong());
        }
        let mut list = Vec::new();
        for item in v.items() {
            list.push(to_string(item.as_str().ok_or_else(wrong)?));
        }
        out.insert(name, list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
