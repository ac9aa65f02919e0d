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
//! * `capabilities`: a string, a list of strings/objects, or an object; only the **names** are
//!   kept (the router needs nothing else, VIP.md §7.9). The capabilities of the roles listed in
//!   `roles`, and of the roles of the groups listed in `groups`, are added. A string in `roles`
//!   or `groups` is taken as one name (Python would iterate its characters).
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
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use core::fmt;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::io::Read as _;
use std::path::Path;

use rand_core::RngCore;
use regex_lite::{Regex, RegexBuilder};

use super::MAX_AUTH_ENTRIES;
use super::auto_entries::AutoEntry;
use super::jsontext::{line_column, strip_comments, to_string};
use super::keys::KEY_TEXT_LEN;
use crate::json::{self, JsonErrorKind, Kind, Value};
use crate::zmtp::mechanism::Mechanism;

/// Largest `auth.json` read, in bytes (4096 entries of ~600 bytes need ~2.5 MiB). A larger file
/// is refused with [`AuthFileErrorKind::TooLarge`].
pub const MAX_AUTH_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Compiled-size limit for one regex (regex-lite's default is 10 MiB); patterns are tiny.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Errors

/// Where in `auth.json` a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (I/O, size, encoding, empty top level).
    File,
    /// A byte position in the original text (comments included), 1-based line and column.
    Text {
        /// Byte offset.
        offset: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column, in bytes.
        column: usize,
    },
    /// A JSON path such as `allow[3]` or `roles.admin`.
    Path(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("file"),
            Location::Text { line, column, .. } => write!(f, "line {line}, column {column}"),
            Location::Path(p) => f.write_str(p),
        }
    }
}

/// What is wrong with `auth.json` as a whole. The previous store should be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFileErrorKind {
    /// The file could not be read.
    Io(std::io::ErrorKind),
    /// The file is larger than [`MAX_AUTH_FILE_BYTES`].
    TooLarge {
        /// Limit in bytes.
        max: u64,
    },
    /// The file is not valid UTF-8 (Python opens it as UTF-8 text).
    NotUtf8,
    /// Not valid JSON after comment stripping.
    Json(JsonErrorKind),
    /// A value has the wrong JSON type.
    WrongType {
        /// What was expected there.
        expected: &'static str,
    },
    /// `version.major` is not 1.
    UnsupportedVersion,
    /// `allow` has more entries than [`MAX_AUTH_ENTRIES`].
    TooManyEntries {
        /// Entries in the file.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// This entry has the same domain, address, mechanism and credentials as `allow[first]` but
    /// a different `user_id` or `identity`.
    DuplicateCredentials {
        /// Index of the earlier entry in `allow`.
        first: usize,
    },
}

impl fmt::Display for AuthFileErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(kind) => write!(f, "cannot read: {kind}"),
            Self::TooLarge { max } => write!(f, "larger than {max} bytes"),
            Self::NotUtf8 => f.write_str("not valid UTF-8"),
            Self::Json(kind) => write!(f, "invalid JSON: {kind}"),
            Self::WrongType { expected } => write!(f, "expected {expected}"),
            Self::UnsupportedVersion => {
                f.write_str("unsupported version (only major version 1 is understood)")
            }
            Self::TooManyEntries { count, max } => {
                write!(f, "{count} entries, more than the limit of {max}")
            }
            Self::DuplicateCredentials { first } => write!(
                f,
                "same domain, address, mechanism and credentials as allow[{first}] \
                 but a different user_id or identity"
            ),
        }
    }
}

/// `auth.json` was refused as a whole: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFileError {
    /// Where.
    pub location: Location,
    /// Why.
    pub kind: AuthFileErrorKind,
}

impl fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth.json: {}: {}", self.location, self.kind)
    }
}

impl std::error::Error for AuthFileError {}

fn err_at(path: impl Into<String>, kind: AuthFileErrorKind) -> AuthFileError {
    AuthFileError {
        location: Location::Path(path.into()),
        kind,
    }
}

/// Why one `allow` entry was skipped (the rest of the file still loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The entry is not a JSON object.
    NotAnObject,
    /// A field has a JSON type the entry cannot have.
    BadFieldType {
        /// The field.
        field: &'static str,
    },
    /// `mechanism` is not `NULL`, `PLAIN` or `CURVE`.
    BadMechanism,
    /// A PLAIN or CURVE entry without credentials.
    MissingCredentials,
    /// CURVE credentials that are neither a 43-character key nor a regex.
    BadCurveKey,
    /// A `/…/` pattern that does not compile.
    BadRegex {
        /// The field holding it.
        field: &'static str,
    },
    /// A capability that is not a string or an object.
    BadCapability,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("entry is not an object"),
            Self::BadFieldType { field } => write!(f, "{field}: wrong type"),
            Self::BadMechanism => f.write_str("mechanism must be NULL, PLAIN or CURVE"),
            Self::MissingCredentials => f.write_str("credentials required for this mechanism"),
            Self::BadCurveKey => {
                f.write_str("credentials: not a 43-character CURVE key or a /regex/")
            }
            Self::BadRegex { field } => write!(f, "{field}: regular expression does not compile"),
            Self::BadCapability => f.write_str("capabilities: entries must be strings or objects"),
        }
    }
}

/// An `allow` entry that was skipped, to be logged by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkippedEntry {
    /// Index in the file's `allow` array.
    pub index: usize,
    /// Why.
    pub reason: SkipReason,
}

impl fmt::Display for SkippedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allow[{}] skipped: {}", self.index, self.reason)
    }
}

/// [`AuthStore::upsert`] would exceed [`MAX_AUTH_ENTRIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreFull;

impl fmt::Display for StoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth store full ({MAX_AUTH_ENTRIES} entries)")
    }
}

impl std::error::Error for StoreFull {}

// ---------------------------------------------------------------------------------------------
// Entries

/// One value pattern of `domain`, `address` or `credentials`.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// Must be equal.
    Exact(Box<str>),
    /// `/…/`: whole-value regular expression (`source` is the text between the slashes).
    Regex { source: Box<str>, re: Regex },
}

impl Pattern {
    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(s) => &**s == value,
            Pattern::Regex { re, .. } => re.is_match(value),
        }
    }

    fn key(&self, out: &mut String) {
        match self {
            Pattern::Exact(s) => {
                out.push('=');
                out.push_str(s);
            }
            Pattern::Regex { source, .. } => {
                out.push('/');
                out.push_str(source);
            }
        }
        out.push('\u{1}');
    }
}

/// A `domain`, `address` or `credentials` field (VIP.md §9.5).
#[derive(Clone, Debug)]
pub(crate) enum Field {
    /// `null`/missing/falsy: matches everything.
    Any,
    /// One string.
    One(Pattern),
    /// A list: any element matches.
    AnyOf(Box<[Pattern]>),
}

impl Field {
    /// Whether `value` matches; `None` (a value that is not text) matches only [`Field::Any`].
    pub(crate) fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Field::Any, _) => true,
            (_, None) => false,
            (Field::One(p), Some(v)) => p.matches(v),
            (Field::AnyOf(ps), Some(v)) => ps.iter().any(|p| p.matches(v)),
        }
    }

    fn is_regex(&self) -> bool {
        matches!(self, Field::One(Pattern::Regex { .. }))
    }

    fn key(&self, out: &mut String) {
        match self {
            Field::Any => out.push('*'),
            Field::One(p) => p.key(out),
            Field::AnyOf(ps) => {
                out.push('[');
                for p in ps.iter() {
                    p.key(out);
                }
            }
        }
        out.push('\u{2}');
    }
}

/// Where an [`AllowEntry`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntrySource {
    /// `allow[index]` of `auth.json`.
    File {
        /// Index in the file's `allow` array.
        index: usize,
    },
    /// Added in memory by [`AuthStore::upsert`] (VIP.md §9.7).
    Auto,
}

/// An enabled, valid `allow` entry.
#[derive(Clone, Debug)]
pub struct AllowEntry {
    source: EntrySource,
    pub(crate) domain: Field,
    pub(crate) address: Field,
    pub(crate) mechanism: Mechanism,
    pub(crate) credentials: Field,
    user_id: Box<str>,
    user_id_explicit: bool,
    identity: Option<Box<str>>,
    capabilities: Box<[Box<str>]>,
    comments: Option<Box<str>>,
}

impl AllowEntry {
    /// Where the entry came from.
    #[must_use]
    pub fn source(&self) -> EntrySource {
        self.source
    }

    /// The entry's `user_id` (a generated uuid4 if the file has none; may be `""`).
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Whether `user_id` was written in the file (not generated).
    #[must_use]
    pub fn user_id_is_explicit(&self) -> bool {
        self.user_id_explicit
    }

    /// The VIP identity the entry is meant for (VIP.md §9.8), if any.
    #[must_use]
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The mechanism the entry admits.
    #[must_use]
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Capability names: the entry's own, then those of its roles and groups (no duplicates).
    #[must_use]
    pub fn capabilities(&self) -> &[Box<str>] {
        &self.capabilities
    }

    /// The `comments` text, if a string.
    #[must_use]
    pub fn comments(&self) -> Option<&str> {
        self.comments.as_deref()
    }

    /// Whether the credentials are a `/…/` regex (such entries are tried last).
    #[must_use]
    pub fn has_regex_credentials(&self) -> bool {
        self.credentials.is_regex()
    }

    /// Key for the duplicate check: domain, address, mechanism, credentials.
    fn identity_key(&self) -> String {
        let mut k = String::new();
        self.domain.key(&mut k);
        self.address.key(&mut k);
        k.push_str(self.mechanism.name());
        k.push('\u{2}');
        self.credentials.key(&mut k);
        k
    }

    pub(crate) fn from_auto(auto: &AutoEntry) -> Self {
        AllowEntry {
            source: EntrySource::Auto,
            domain: Field::Any,
            address: Field::Any,
            mechanism: Mechanism::Curve,
            credentials: Field::One(Pattern::Exact(auto.credentials.as_str().into())),
            user_id: auto.user_id.as_str().into(),
            user_id_explicit: true,
            identity: auto.identity.as_deref().map(Into::into),
            capabilities: dedup(auto.capabilities.iter().map(|c| c.name.to_owned())),
            comments: Some(auto.comments.into()),
        }
    }
}

fn dedup(names: impl Iterator<Item = String>) -> Box<[Box<str>]> {
    let mut out: Vec<Box<str>> = Vec::new();
    for n in names {
        if !out.iter().any(|o| **o == *n) {
            out.push(n.into_boxed_str());
        }
    }
    out.into_boxed_slice()
}

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
        let io = |e: std::io::Error| AuthFileError {
            location: Location::File,
            kind: AuthFileErrorKind::Io(e.kind()),
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty()),
            Err(e) => return Err(io(e)),
        };
        let mut text = Vec::new();
        file.take(MAX_AUTH_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_AUTH_FILE_BYTES {
            return Err(AuthFileError {
                location: Location::File,
                kind: AuthFileErrorKind::TooLarge {
                    max: MAX_AUTH_FILE_BYTES,
                },
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
                location: Location::Text {
                    offset,
                    line,
                    column,
                },
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
            AuthFileError {
                location: Location::Text {
                    offset,
                    line,
                    column,
                },
                kind: AuthFileErrorKind::Json(e.kind),
            }
        })?;
        if top.kind() != Kind::Object {
            return Err(AuthFileError {
                location: Location::File,
                kind: AuthFileErrorKind::WrongType {
                    expected: "a JSON object at the top level",
                },
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
                let expected = if kind == Kind::Array {
                    "an array"
                } else {
                    "an object"
                };
                return Err(err_at(field, AuthFileErrorKind::WrongType { expected }));
            }
        }
        if let Some(version) = top.get(b"version") {
            let major = version.get(b"major").and_then(|m| m.as_number());
            if major.and_then(|m| m.as_u64()) != Some(1) {
                return Err(err_at(
                    "version.major",
                    AuthFileErrorKind::UnsupportedVersion,
                ));
            }
        }
        let groups = name_lists(top.get(b"groups"), "groups")?;
        let roles = name_lists(top.get(b"roles"), "roles")?;

        let allow = top.get(b"allow");
        let count = allow.map_or(0, |a| a.items().count());
        if count > MAX_AUTH_ENTRIES {
            return Err(err_at(
                "allow",
                AuthFileErrorKind::TooManyEntries {
                    count,
                    max: MAX_AUTH_ENTRIES,
                },
            ));
        }

        let mut store = AuthStore {
            entries: Vec::with_capacity(count),
            ..AuthStore::default()
        };
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(count);
        for (index, item) in allow.into_iter().flat_map(|a| a.items()).enumerate() {
            match parse_entry(index, item, &groups, &roles, rng) {
                Ok(Some(entry)) => {
                    match seen.entry(entry.identity_key()) {
                        MapEntry::Occupied(o) => {
                            let first = *o.get();
                            let earlier = store
                                .entries
                                .iter()
                                .find(|e| e.source == EntrySource::File { index: first });
                            if let Some(earlier) = earlier
                                && (earlier.user_id_explicit != entry.user_id_explicit
                                    || (entry.user_id_explicit && earlier.user_id != entry.user_id)
                                    || earlier.identity != entry.identity)
                            {
                                return Err(err_at(
                                    format!("allow[{index}]"),
                                    AuthFileErrorKind::DuplicateCredentials { first },
                                ));
                            }
                        }
                        MapEntry::Vacant(v) => {
                            v.insert(index);
                        }
                    }
                    store.entries.push(entry);
                }
                Ok(None) => store.disabled += 1,
                Err(reason) => store.skipped.push(SkippedEntry { index, reason }),
            }
        }
        store.reindex();
        Ok(store)
    }

    /// Recomputes the match order and the `user_id` index after `entries` changed.
    fn reindex(&mut self) {
        let idx = |i: usize| u16::try_from(i).ok();
        let exact = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.has_regex_credentials());
        let regex = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has_regex_credentials());
        self.order = exact.chain(regex).filter_map(|(i, _)| idx(i)).collect();
        self.by_user_id = HashMap::with_capacity(self.entries.len());
        for &i in self.order.iter() {
            if let Some(e) = self.entries.get(usize::from(i)) {
                self.by_user_id
                    .insert(e.user_id.as_bytes().to_vec().into_boxed_slice(), i);
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
        self.order
            .iter()
            .filter_map(|&i| self.entries.get(usize::from(i)).map(|e| (i, e)))
    }

    /// The entry whose capabilities answer for `user_id` (last in match order wins).
    pub(crate) fn by_user_id(&self, user_id: &[u8]) -> Option<&AllowEntry> {
        self.by_user_id.get(user_id).and_then(|&i| self.get(i))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers

/// `groups` / `roles`: `{name: [string, …]}`.
fn name_lists(
    map: Option<Value<'_>>,
    what: &str,
) -> Result<HashMap<String, Vec<String>>, AuthFileError> {
    let mut out = HashMap::new();
    for (k, v) in map.into_iter().flat_map(|m| m.members()) {
        let name = to_string(k);
        let wrong = || {
            err_at(
                format!("{what}.{name}"),
                AuthFileErrorKind::WrongType {
                    expected: "an array of strings",
                },
            )
        };
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

/// Python truthiness of a JSON value.
fn truthy(v: Value<'_>) -> bool {
    match v.kind() {
        Kind::Null => false,
        Kind::Bool => v.as_bool() == Some(true),
        Kind::Number => v.as_number().is_none_or(|n| n.as_f64() != 0.0),
        Kind::String => !v.raw().eq(b"\"\""),
        Kind::Array => v.items().next().is_some(),
        Kind::Object => v.members().next().is_some(),
    }
}

fn pattern(s: &str, field: &'static str) -> Result<Pattern, SkipReason> {
    let body = s
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix('/'))
        .filter(|_| s.len() > 1);
    match body {
        None => Ok(Pattern::Exact(s.into())),
        Some(body) => {
            let re = RegexBuilder::new(&format!(r"\A(?:{body})\z"))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|_| SkipReason::BadRegex { field })?;
            Ok(Pattern::Regex {
                source: body.into(),
                re,
            })
        }
    }
}

/// `_build_field`: falsy → wildcard; string → one pattern; list of strings → any of them.
fn field(v: Option<Value<'_>>, name: &'static str) -> Result<Field, SkipReason> {
    let Some(v) = v.filter(|v| truthy(*v)) else {
        return Ok(Field::Any);
    };
    match v.kind() {
        Kind::String => {
            let s = v.as_str().map(to_string).unwrap_or_default();
            Ok(Field::One(pattern(&s, name)?))
        }
        Kind::Array => {
            let mut ps = Vec::new();
            for item in v.items() {
                let s = item
                    .as_str()
                    .map(to_string)
                    .ok_or(SkipReason::BadFieldType { field: name })?;
                ps.push(pattern(&s, name)?);
            }
            Ok(Field::AnyOf(ps.into_boxed_slice()))
        }
        _ => Err(SkipReason::BadFieldType { field: name }),
    }
}

/// A string or `null`/missing; anything else skips the entry.
fn opt_string(v: Option<Value<'_>>, name: &'static str) -> Result<Option<String>, SkipReason> {
    match v {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(to_string(s)))
            .ok_or(SkipReason::BadFieldType { field: name }),
    }
}

/// `groups` / `roles` of an entry: falsy → none; a string → one name; a list of strings.
fn names(v: Option<Value<'_>>, name: &'static str) -> Result<Vec<String>, SkipReason> {
    let Some(v) = v.filter(|v| truthy(*v)) else {
        return Ok(Vec::new());
    };
    match v.kind() {
        Kind::String => Ok(v.as_str().map(to_string).into_iter().collect()),
        Kind::Array => v
            .items()
            .map(|i| {
                i.as_str()
                    .map(to_string)
                    .ok_or(SkipReason::BadFieldType { field: name })
            })
            .collect(),
        _ => Err(SkipReason::BadFieldType { field: name }),
    }
}

/// Capability names of `build_capabilities_field`: string, object, or list of those.
fn capability_names(v: Option<Value<'_>>, out: &mut Vec<String>) -> Result<(), SkipReason> {
    let Some(v) = v.filter(|v| truthy(*v)) else {
        return Ok(());
    };
    let one = |v: Value<'_>, out: &mut Vec<String>| match v.kind() {
        Kind::String => {
            out.extend(v.as_str().map(to_string));
            Ok(())
        }
        Kind::Object => {
            out.extend(v.members().map(|(k, _)| to_string(k)));
            Ok(())
        }
        _ => Err(SkipReason::BadCapability),
    };
    if v.kind() == Kind::Array {
        for item in v.items() {
            one(item, out)?;
        }
        Ok(())
    } else {
        one(v, out)
    }
}

/// A random uuid4 in its usual text form (what Python's `str(uuid.uuid4())` gives).
pub(crate) fn uuid4(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// One `allow` item → `Ok(Some(entry))`, `Ok(None)` if disabled, or why it is skipped.
fn parse_entry(
    index: usize,
    v: Value<'_>,
    groups: &HashMap<String, Vec<String>>,
    roles: &HashMap<String, Vec<String>>,
    rng: &mut impl RngCore,
) -> Result<Option<AllowEntry>, SkipReason> {
    if v.kind() != Kind::Object {
        return Err(SkipReason::NotAnObject);
    }
    let mechanism = match v.get(b"mechanism") {
        None => Mechanism::Curve,
        Some(m) => match m.as_str().and_then(|s| s.as_plain()) {
            Some(b"CURVE") => Mechanism::Curve,
            Some(b"NULL") => Mechanism::Null,
            Some(b"PLAIN") => Mechanism::Plain,
            _ => return Err(SkipReason::BadMechanism),
        },
    };
    let domain = field(v.get(b"domain"), "domain")?;
    let address = field(v.get(b"address"), "address")?;
    let credentials = field(v.get(b"credentials"), "credentials")?;
    // `valid_credentials`.
    match (mechanism, &credentials) {
        (Mechanism::Null, _) => {}
        (_, Field::Any) => return Err(SkipReason::MissingCredentials),
        (_, Field::One(Pattern::Regex { .. })) => {}
        (Mechanism::Curve, Field::One(Pattern::Exact(k))) if k.len() == KEY_TEXT_LEN => {}
        (Mechanism::Curve, _) => return Err(SkipReason::BadCurveKey),
        (Mechanism::Plain, _) => {}
    }
    let explicit_user_id = opt_string(v.get(b"user_id"), "user_id")?;
    let identity = opt_string(v.get(b"identity"), "identity")?;
    let comments = v
        .get(b"comments")
        .and_then(|c| c.as_str())
        .map(|s| to_string(s).into_boxed_str());
    if let Some(rpc) = v.get(b"rpc_method_authorizations")
        && truthy(rpc)
        && rpc.kind() != Kind::Object
    {
        return Err(SkipReason::BadFieldType {
            field: "rpc_method_authorizations",
        });
    }
    let mut caps = Vec::new();
    capability_names(v.get(b"capabilities"), &mut caps)?;
    let mut entry_roles = names(v.get(b"roles"), "roles")?;
    for g in names(v.get(b"groups"), "groups")? {
        entry_roles.extend(groups.get(&g).into_iter().flatten().cloned());
    }
    for r in &entry_roles {
        caps.extend(roles.get(r).into_iter().flatten().cloned());
    }
    let enabled = v.get(b"enabled").is_none_or(truthy);
    if !enabled {
        return Ok(None);
    }
    let user_id_explicit = explicit_user_id.is_some();
    let user_id = explicit_user_id.unwrap_or_else(|| uuid4(rng));
    Ok(Some(AllowEntry {
        source: EntrySource::File { index },
        domain,
        address,
        mechanism,
        credentials,
        user_id: user_id.into_boxed_str(),
        user_id_explicit,
        identity: identity.map(String::into_boxed_str),
        capabilities: dedup(caps.into_iter()),
        comments,
    }))
}

#[cfg(test)]
mod tests;
