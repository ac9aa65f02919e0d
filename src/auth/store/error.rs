//! Why `auth.json` is refused as a whole ([`AuthFileError`]: where, [`Location`], and why,
//! [`AuthFileErrorKind`]), why one `allow` entry is skipped while the rest loads
//! ([`SkippedEntry`], [`SkipReason`]), and [`StoreFull`] (VIP.md §9.5).
//!
//! Contract: every refusal names its location (line/column in the original text, or a JSON path
//! such as `allow[3]`), so the log line the caller writes points at the problem; the types are
//! plain values (`Clone`, `Eq`) that tests compare exactly.

use core::fmt;

use crate::auth::MAX_AUTH_ENTRIES;
use crate::json::JsonErrorKind;

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
    /// The file is larger than [`MAX_AUTH_FILE_BYTES`](super::MAX_AUTH_FILE_BYTES).
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
            Self::UnsupportedVersion => f.write_str("unsupported version (only major version 1 is understood)"),
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

pub(super) fn err_at(path: impl Into<String>, kind: AuthFileErrorKind) -> AuthFileError {
    AuthFileError { location: Location::Path(path.into()), kind }
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
            Self::BadCurveKey => f.write_str("credentials: not a 43-character CURVE key or a /regex/"),
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

/// [`AuthStore::upsert`](super::AuthStore::upsert) would exceed [`MAX_AUTH_ENTRIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreFull;

impl fmt::Display for StoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth store full ({MAX_AUTH_ENTRIES} entries)")
    }
}

impl std::error::Error for StoreFull {}
