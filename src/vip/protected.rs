//! Write-protected pubsub topics and the users' capabilities (VIP.md §7.8, §7.9, §6.2).
//!
//! Two tables, each replaced whole from a JSON document and never partially:
//!
//! * [`ProtectedTopics`] from the content of `protected_topics.json` (the body of
//!   `protected_update`): `{"write-protect": [{"topic": T, "capabilities": C}, ...]}` where C is a
//!   string or a list of strings. A topic written `/.../` (at least two characters) is a regular
//!   expression compiled as `'^' + inner + '$'`, exactly the text Python's `re` gets; any other
//!   topic is a literal. A missing `write-protect` key gives an empty table (what Python does with
//!   `{}`, the body `platform.auth` sends when the file is empty).
//! * [`UserCapabilities`] from the body of `auth_update`:
//!   `{"capabilities": {USER: {CAP: ARG_OR_NULL, ...}, ...}}` (a list of names is accepted too, as
//!   older auth entries have), or from the router's own `auth.json` entries
//!   ([`UserCapabilities::from_entries`], the same table without a JSON round trip).
//!
//! Lookup of a published topic ([`ProtectedTopics::lookup`], VIP.md §7.9): an exact literal match,
//! else the **first literal in file order that is a plain prefix** of the topic (so `secret`
//! protects `secretive`), else the first regex that matches, else unprotected. A literal listed
//! twice keeps its first position and takes the last capabilities (a Python dict). An entry whose
//! capability list is empty (or `null`) protects nothing, and stops the lookup there, as in Python.
//!
//! Check ([`TopicPolicy::check`]): user = the publisher's identity. A user without an entry in the
//! capability table is allowed (Python quirk kept, VIP.md §16.2 A12); otherwise every required
//! capability name must be a key of the user's capability object, else the publish is refused with
//! the -32001 text of VIP.md §6.2, whose lists are rendered with Python's `repr`
//! ([`Refusal::write_text`]).
//!
//! Cost: loading allocates (it is not on the hot path). [`TopicPolicy::check`] allocates nothing
//! in steady state: literals are scanned in order (tables are short), and a regex needs the topic
//! as text, decoded latin-1 into a `String` kept between calls (grown once). With no protected
//! topic at all, the check is one length test.
//!
//! Deviations (documented): regexes use `regex-lite`, whose syntax covers Python's common
//! subset but not look-around or back-references (such a pattern is refused as a load error and
//! the old table is kept), its `$` does not match before a final newline, and `\w`/`\d`/`\s` are
//! ASCII-only. In the refusal text, characters above U+00FF (which Python would fail to encode
//! into the latin-1 frame) are written as `\uXXXX`/`\UXXXXXXXX` escapes. Capability names and
//! literal topics containing a lone surrogate escape compare as U+FFFD.

use core::fmt;
use std::collections::HashMap;

use crate::json::emit::emit_number;
use crate::json::{self, JsonError, JsonStr, Kind, Value};

/// Why a table was not replaced (the old one stays in force).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The document is not valid JSON (VIP.md §3.8 dialect).
    Json(JsonError),
    /// The document is not a JSON object.
    NotObject,
    /// `auth_update` without a `capabilities` key.
    MissingCapabilities,
    /// `capabilities` (auth_update) is not an object, or `write-protect` is not a list.
    NotAContainer,
    /// Entry `index` of the table is unusable.
    Entry {
        /// Position in `write-protect`, or of the user in `capabilities`.
        index: usize,
        /// What is wrong with it.
        problem: EntryProblem,
    },
}

/// What is wrong with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryProblem {
    /// The entry is not an object.
    NotObject,
    /// No `topic` key.
    MissingTopic,
    /// No `capabilities` key.
    MissingCapabilities,
    /// `topic` is not a string.
    TopicNotString,
    /// `capabilities` is not a string, a list of strings or null (topics), or not an object, a
    /// list or null (users).
    BadCapabilities,
    /// The `/.../` topic does not compile as a regular expression.
    BadRegex,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotObject => "entry is not an object",
            Self::MissingTopic => "entry has no \"topic\"",
            Self::MissingCapabilities => "entry has no \"capabilities\"",
            Self::TopicNotString => "\"topic\" is not a string",
            Self::BadCapabilities => "\"capabilities\" has an unusable type",
            Self::BadRegex => "the /regex/ topic does not compile",
        })
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "{e}"),
            Self::NotObject => f.write_str("not a JSON object"),
            Self::MissingCapabilities => f.write_str("no \"capabilities\" key"),
            Self::NotAContainer => f.write_str("\"write-protect\" is not a list, or \"capabilities\" is not an object"),
            Self::Entry { index, problem } => write!(f, "entry {index}: {problem}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The capabilities a protected topic requires.
#[derive(Clone, Debug, Default)]
pub struct Required {
    names: Vec<String>,
    /// Python `repr` of the list, e.g. `['can_publish']`.
    repr: Vec<u8>,
}

impl Required {
    /// The required capability names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn from_json(v: Value<'_>) -> Option<Required> {
        let mut r = Required::default();
        match v.kind() {
            Kind::Null => {}
            Kind::String => r.names.push(decode(v.as_str()?)),
            Kind::Array => {
                for item in v.items() {
                    r.names.push(decode(item.as_str()?));
                }
            }
            _ => return None,
        }
        // Python wraps a single string in a list before storing it.
        r.repr.push(b'[');
        for (i, n) in r.names.iter().enumerate() {
            if i > 0 {
                r.repr.extend_from_slice(b", ");
            }
            repr_str(n.chars().map(u32::from), &mut r.repr);
        }
        r.repr.push(b']');
        Some(r)
    }
}

#[derive(Debug)]
struct Literal {
    /// The decoded topic (for duplicate detection).
    text: String,
    /// Its latin-1 bytes; `None` if it has a character above U+00FF (never matches a frame).
    bytes: Option<Vec<u8>>,
    required: Required,
}

#[derive(Debug)]
struct Pattern {
    regex: regex_lite::Regex,
    required: Required,
}

/// The protected-topic table (VIP.md §7.9). See the module doc.
#[derive(Debug, Default)]
pub struct ProtectedTopics {
    literals: Vec<Literal>,
    patterns: Vec<Pattern>,
    /// The topic as text for regex matching, reused.
    text: String,
}

impl ProtectedTopics {
    /// Parses the content of `protected_topics.json` (or a `protected_update` body).
    ///
    /// # Errors
    /// [`PolicyError`] for anything Python would reject or crash on; nothing is half-loaded.
    pub fn from_json(input: &[u8]) -> Result<ProtectedTopics, PolicyError> {
        let v = json::parse(input).map_err(PolicyError::Json)?;
        if v.kind() != Kind::Object {
            return Err(PolicyError::NotObject);
        }
        let mut t = ProtectedTopics::default();
        let Some(list) = v.get(b"write-protect") else {
            return Ok(t);
        };
        if list.kind() != Kind::Array {
            return Err(PolicyError::NotAContainer);
        }
        for (index, e) in list.items().enumerate() {
            let bad = |problem| PolicyError::Entry { index, problem };
            if e.kind() != Kind::Object {
                return Err(bad(EntryProblem::NotObject));
            }
            let topic = e.get(b"topic").ok_or(bad(EntryProblem::MissingTopic))?;
            let caps = e.get(b"capabilities").ok_or(bad(EntryProblem::MissingCapabilities))?;
            let topic = topic.as_str().ok_or(bad(EntryProblem::TopicNotString))?;
            let required = Required::from_json(caps).ok_or(bad(EntryProblem::BadCapabilities))?;
            let text = decode(topic);
            let n = text.chars().count();
            if n > 1 && text.starts_with('/') && text.ends_with('/') {
                let inner = text.get(1..text.len() - 1).unwrap_or_default();
                let regex = regex_lite::Regex::new(&format!("^{inner}$")).map_err(|err| {
                    log::warn!("protected topic {text:?}: {err}");
                    bad(EntryProblem::BadRegex)
                })?;
                t.patterns.push(Pattern { regex, required });
            } else if let Some(old) = t.literals.iter_mut().find(|l| l.text == text) {
                old.required = required;
            } else {
                let bytes = topic.latin1_len().and_then(|len| {
                    let mut buf = vec![0u8; len];
                    topic.to_latin1(&mut buf).ok().map(<[u8]>::to_vec)
                });
                t.literals.push(Literal { text, bytes, required });
            }
        }
        Ok(t)
    }

    /// Number of entries (literals and regexes).
    pub fn len(&self) -> usize {
        self.literals.len() + self.patterns.len()
    }

    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.patterns.is_empty()
    }

    /// The entry that governs `topic` (frame bytes, latin-1), if any. No allocation once the
    /// text buffer has grown to the longest topic matched against a regex.
    pub fn lookup(&mut self, topic: &[u8]) -> Option<&Required> {
        let ProtectedTopics { literals, patterns, text } = self;
        let literals: &Vec<Literal> = literals;
        let mut first_prefix = None;
        for lit in literals {
            let Some(t) = lit.bytes.as_deref() else {
                continue;
            };
            // Lengths first: never hand memcmp an empty (possibly dangling) slice.
            if t.len() == topic.len() && (t.is_empty() || t == topic) {
                return Some(&lit.required);
            }
            if first_prefix.is_none() && t.len() <= topic.len() && (t.is_empty() || topic.get(..t.len()) == Some(t)) {
                first_prefix = Some(&lit.required);
            }
        }
        if first_prefix.is_some() || patterns.is_empty() {
            return first_prefix;
        }
        text.clear();
        text.extend(topic.iter().map(|&b| char::from(b)));
        let text: &str = text;
        patterns.iter().find(|p| p.regex.is_match(text)).map(|p| &p.required)
    }
}

#[derive(Debug)]
struct UserCaps {
    names: Vec<String>,
    /// Python `repr` of the user's capability object, e.g. `{'raw_cap': None}`.
    repr: Vec<u8>,
}

/// Capabilities per user (VIP.md §7.8 `auth_update`). See the module doc.
#[derive(Debug, Default)]
pub struct UserCapabilities {
    users: HashMap<Vec<u8>, UserCaps>,
}

impl UserCapabilities {
    /// Parses an `auth_update` body: `{"capabilities": {USER: {CAP: ARG}, ...}}`.
    ///
    /// # Errors
    /// [`PolicyError`]; nothing is half-loaded.
    pub fn from_json(input: &[u8]) -> Result<UserCapabilities, PolicyError> {
        let v = json::parse(input).map_err(PolicyError::Json)?;
        if v.kind() != Kind::Object {
            return Err(PolicyError::NotObject);
        }
        let caps = v.get(b"capabilities").ok_or(PolicyError::MissingCapabilities)?;
        if caps.kind() != Kind::Object {
            return Err(PolicyError::NotAContainer);
        }
        let mut t = UserCapabilities::default();
        for (index, (user, c)) in caps.members().enumerate() {
            let names = match c.kind() {
                Kind::Object => c.members().map(|(k, _)| decode(k)).collect(),
                Kind::Array => c.items().filter_map(|i| i.as_str()).map(decode).collect(),
                Kind::Null => Vec::new(),
                _ => {
                    return Err(PolicyError::Entry { index, problem: EntryProblem::BadCapabilities });
                }
            };
            let mut repr = Vec::new();
            repr_value(c, &mut repr);
            // Users are identities, compared with frame bytes: a name above U+00FF never matches.
            let Some(len) = user.latin1_len() else {
                continue;
            };
            let mut key = vec![0u8; len];
            let Ok(key) = user.to_latin1(&mut key).map(<[u8]>::to_vec) else {
                continue;
            };
            t.users.insert(key, UserCaps { names, repr });
        }
        Ok(t)
    }

    /// Builds the table from the router's own auth entries, without a JSON document: `users`
    /// yields `(user_id, capabilities)` pairs, each capability as `(name, argument as JSON
    /// text)`, in the order VOLTTRON's `get_user_to_capabilities` walks its entries (a later
    /// pair for the same user replaces an earlier one, as in its dict). The -32001 text then
    /// shows each argument as `platform.auth`'s `auth_update` would carry it (VIP.md §6.2, e.g.
    /// `{'edit_config_store': {'identity': 'agent2'}}`). A user id with a character above U+00FF
    /// can never equal an identity frame and is left out; an argument that is not JSON shows as
    /// `None`.
    pub fn from_entries<'a, C>(users: impl IntoIterator<Item = (&'a str, C)>) -> UserCapabilities
    where
        C: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut t = UserCapabilities::default();
        for (user, caps) in users {
            let Some(key) = user.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<Vec<u8>>>() else {
                continue;
            };
            let mut names = Vec::new();
            let mut repr = vec![b'{'];
            for (i, (name, arg)) in caps.into_iter().enumerate() {
                if i > 0 {
                    repr.extend_from_slice(b", ");
                }
                repr_str(name.chars().map(u32::from), &mut repr);
                repr.extend_from_slice(b": ");
                match json::parse(arg.as_bytes()) {
                    Ok(v) => repr_value(v, &mut repr),
                    Err(_) => repr.extend_from_slice(b"None"),
                }
                names.push(name.to_owned());
            }
            repr.push(b'}');
            t.users.insert(key, UserCaps { names, repr });
        }
        t
    }

    /// Number of users with an entry.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user has an entry.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` has an entry, and if so whether it holds capability `name`.
    pub fn has(&self, user: &[u8], name: &str) -> Option<bool> {
        self.users.get(user).map(|u| u.names.iter().any(|n| n == name))
    }
}

/// A refused publish: the two Python `repr`s of the -32001 text (VIP.md §6.2).
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    /// `repr` of the required capability list, e.g. `['can_publish']`.
    pub required: &'a [u8],
    /// `repr` of the publisher's capability object, e.g. `{'raw_cap': None}`.
    pub provided: &'a [u8],
}

impl Refusal<'_> {
    /// Appends `to publish to topic "<topic>" requires capabilities <required>, but capability
    /// list <provided> was provided` to `out` (the topic's frame bytes as they are).
    pub fn write_text(&self, topic: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"to publish to topic \"");
        out.extend_from_slice(topic);
        out.extend_from_slice(b"\" requires capabilities ");
        out.extend_from_slice(self.required);
        out.extend_from_slice(b", but capability list ");
        out.extend_from_slice(self.provided);
        out.extend_from_slice(b" was provided");
    }
}

/// Both tables and the check of VIP.md §7.9.
#[derive(Debug, Default)]
pub struct TopicPolicy {
    topics: ProtectedTopics,
    users: UserCapabilities,
}

impl TopicPolicy {
    /// Replaces the protected-topic table from `protected_topics.json` content. On error the old
    /// table is kept and the error is logged.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn set_protected_topics_json(&mut self, input: &[u8]) -> Result<(), PolicyError> {
        match ProtectedTopics::from_json(input) {
            Ok(t) => {
                log::info!("protected topics loaded: {} entries", t.len());
                self.topics = t;
                Ok(())
            }
            Err(e) => {
                log::warn!("protected topics not loaded ({e}); the previous table stays in force");
                Err(e)
            }
        }
    }

    /// Replaces the capability table from an `auth_update`-shaped body. On error the old table
    /// is kept and the error is logged.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn set_user_capabilities_json(&mut self, input: &[u8]) -> Result<(), PolicyError> {
        match UserCapabilities::from_json(input) {
            Ok(u) => {
                log::info!("user capabilities loaded: {} users", u.len());
                self.users = u;
                Ok(())
            }
            Err(e) => {
                log::warn!("user capabilities not loaded ({e}); the previous table stays in force");
                Err(e)
            }
        }
    }

    /// Replaces the capability table with `users` (built by the caller, e.g.
    /// [`UserCapabilities::from_entries`]).
    pub fn set_user_capabilities(&mut self, users: UserCapabilities) {
        log::info!("user capabilities loaded: {} users", users.len());
        self.users = users;
    }

    /// The protected-topic table.
    pub fn topics(&self) -> &ProtectedTopics {
        &self.topics
    }

    /// The capability table.
    pub fn users(&self) -> &UserCapabilities {
        &self.users
    }

    /// May a remote platform's publish (`external_publish`) with USER_ID `user` go to `topic`?
    /// As [`TopicPolicy::check`], except that a user **without** an entry in the capability table
    /// is refused when the topic is protected: remote platforms send `''` as USER_ID, and
    /// VOLTTRON's "no entry, no check" would leave protected topics open to every remote.
    pub fn check_external(&mut self, user: &[u8], topic: &[u8]) -> bool {
        if self.topics.is_empty() {
            return true;
        }
        let TopicPolicy { topics, users } = self;
        let Some(required) = topics.lookup(topic) else { return true };
        if required.names.is_empty() {
            return true;
        }
        users.users.get(user).is_some_and(|caps| required.names.iter().all(|r| caps.names.iter().any(|n| n == r)))
    }

    /// May `user` publish to `topic`? `None` = yes; otherwise the refusal (VIP.md §7.9).
    pub fn check(&mut self, user: &[u8], topic: &[u8]) -> Option<Refusal<'_>> {
        if self.topics.is_empty() {
            return None;
        }
        let TopicPolicy { topics, users } = self;
        let required = topics.lookup(topic)?;
        if required.names.is_empty() {
            return None;
        }
        let caps = users.users.get(user)?;
        if required.names.iter().all(|r| caps.names.iter().any(|n| n == r)) {
            return None;
        }
        Some(Refusal { required: &required.repr, provided: &caps.repr })
    }
}

/// The decoded string (lone surrogates as U+FFFD).
fn decode(s: JsonStr<'_>) -> String {
    s.chars().map(|c| char::from_u32(c).unwrap_or('\u{FFFD}')).collect()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_escape(out: &mut Vec<u8>, prefix: &[u8], c: u32, digits: u32) {
    out.extend_from_slice(prefix);
    for i in (0..digits).rev() {
        out.push(HEX.get(((c >> (i * 4)) & 0xf) as usize).copied().unwrap_or(b'0'));
    }
}

/// Python's `repr(str)` of a string given as code points, written as latin-1 bytes.
fn repr_str(chars: impl Iterator<Item = u32> + Clone, out: &mut Vec<u8>) {
    let (mut single, mut double) = (false, false);
    for c in chars.clone() {
        single |= c == u32::from(b'\'');
        double |= c == u32::from(b'"');
    }
    let quote = if single && !double { b'"' } else { b'\'' };
    out.push(quote);
    for c in chars {
        match c {
            _ if c == u32::from(quote) || c == u32::from(b'\\') => {
                out.push(b'\\');
                out.push(if c == u32::from(quote) { quote } else { b'\\' });
            }
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0d => out.extend_from_slice(b"\\r"),
            // Both arms are within 0..=0xff: the conversion cannot fail.
            0x20..=0x7e => out.push(u8::try_from(c).unwrap_or(b'?')),
            // Printable latin-1 (Python `str.isprintable`): everything from U+00A1 but U+00AD.
            0xa1..=0xff if c != 0xad => out.push(u8::try_from(c).unwrap_or(b'?')),
            0..=0xff => hex_escape(out, b"\\x", c, 2),
            0x100..=0xffff => hex_escape(out, b"\\u", c, 4),
            _ => hex_escape(out, b"\\U", c, 8),
        }
    }
    out.push(quote);
}

/// Python's `repr` of the object `json.loads` builds from `v`.
fn repr_value(v: Value<'_>, out: &mut Vec<u8>) {
    match v.kind() {
        Kind::Null => out.extend_from_slice(b"None"),
        Kind::Bool => out.extend_from_slice(if v.as_bool() == Some(true) { b"True" } else { b"False" }),
        Kind::Number => {
            let start = out.len();
            if let Some(n) = v.as_number() {
                let _ = emit_number(out, n);
            }
            let replacement: Option<&[u8]> = match out.get(start..) {
                Some(b"NaN") => Some(b"nan"),
                Some(b"Infinity") => Some(b"inf"),
                Some(b"-Infinity") => Some(b"-inf"),
                _ => None,
            };
            if let Some(r) = replacement {
                out.truncate(start);
                out.extend_from_slice(r);
            }
        }
        Kind::String => {
            if let Some(s) = v.as_str() {
                repr_str(s.chars(), out);
            }
        }
        Kind::Array => {
            out.push(b'[');
            for (i, item) in v.items().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                repr_value(item, out);
            }
            out.push(b']');
        }
        Kind::Object => {
            out.push(b'{');
            for (i, (k, val)) in v.members().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                repr_str(k.chars(), out);
                out.extend_from_slice(b": ");
                repr_value(val, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests;
