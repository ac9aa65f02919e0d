//! Modular VOLTTRON's `authz.json`: protected topics and who may publish or subscribe to them
//! (research memo `shared/research/modular-volttron.md` §1.5, §1.6).
//!
//! modular's `platform.auth` keeps the file (`volttron/auth/authz_manager.py`,
//! `volttron/types/auth/authz_types.py`); its router asks it in-process before a subscribe and a
//! publish (`messagebus/zmq/routing/pubsub_service.py` `_check_topic_authorization`). This module
//! answers the same question from the file, for the pubsub service ([`Authz::allows`]):
//!
//! ```text
//! {"protected_topics": ["devices/secret", "/^alerts\/.*/"],
//!  "roles":        {"admin": {"pubsub_capabilities": {"/.*/": "pubsub"}}, ...},
//!  "agent_groups": {"admin_users": {"identities": [ID, ...], "agent_roles": ["admin"],
//!                                   "pubsub_capabilities": {PATTERN: ACCESS}}},
//!  "agents":       {ID: {"agent_roles": ["r", {"r2": {params}}], "pubsub_capabilities": {PATTERN: ACCESS}}}}
//! ```
//!
//! # The check (`check_pubsub_authorization`, `is_protected_topic`)
//!
//! * A topic (a subscribed prefix, or a published topic) is **protected** when a
//!   `protected_topics` entry matches it: a `/…/` entry (at least two characters) is a regular
//!   expression, any other entry `P` is the regular expression `P.*` (so `devices/*` means
//!   `devices` followed by slashes); both are matched from the start of the topic and need not
//!   reach its end (Python's `re.match`). Unprotected topics are open to everyone.
//! * For a protected topic, the identity's **capabilities** are tried in order; the first whose
//!   pattern matches (same pattern rules) decides: `pubsub` allows both, `publish` or
//!   `subscribe` allows that access only. No match, or an identity without capabilities (not in
//!   `agents`), is refused.
//! * An identity's capabilities, as the running `platform.auth` computes them
//!   (`VolttronAuthzMap.expand_agent_capabilities`): its own `pubsub_capabilities`; then, group
//!   by group (file order), the capabilities of each group listing it (a later pattern's access
//!   replaces an earlier one in place, a new pattern goes last: Python `dict.update`) and the
//!   group's roles appended to its own; then the capabilities of each of its roles, in order.
//!   Group roles are read from `agent_roles` (what the platform writes and applies in memory)
//!   and from `roles` (what `from_unstructured_dict` reads back); modular's own reload of the
//!   file reads only `roles`, which loses the `admin` role of `admin_users` until its next
//!   start re-merges it — viprouter does not copy that loss. A group member without an entry in
//!   `agents` gets nothing (Python raises `KeyError` there).
//!
//! # Where viprouter is stricter than modular (documented in README)
//!
//! modular's router checks a subscribe with `access="publish"` hard-coded, checks a publish
//! against the unverified USER_ID frame (modular's agents put their identity there, but any
//! client may put another: spoofable), and never checks `synchronize`. The pubsub service calls
//! [`Authz::allows`] with the **sender's identity** and the real access, for subscribe,
//! publish and every prefix of a synchronize.
//!
//! # Bad files
//!
//! The file is read whole or refused ([`AuthzError`], with its JSON path): every structure
//! Python would fail to load (wrong types, an access other than the three words, an entry that
//! is not a string) and every pattern that `regex-lite` cannot compile (Python would raise at
//! check time; look-around and back-references are not supported, `\d`/`\w` are ASCII). The
//! caller keeps the previous rules; at start, with none, it uses [`Authz::closed`]: every topic
//! protected, nobody allowed, until the file is fixed (modular's platform does not start at
//! all on such a file). A missing file protects nothing, as in modular.
//!
//! # Cost
//!
//! Loading allocates. [`Authz::allows`] allocates nothing in steady state: an ASCII topic is
//! matched in place; a topic with bytes ≥ 0x80 is decoded latin-1 (as modular decodes frames)
//! into a kept scratch `String`. Patterns are compiled once per distinct text and shared.
//! With no protected topic the check is one length test.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use core::fmt;
use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use super::jsontext::to_string;
use crate::json::{self, JsonErrorKind, JsonStr, Kind, Value};

pub use crate::limits::{MAX_AUTHZ_FILE_BYTES, MAX_AUTHZ_PATTERNS};
/// Compiled-size limit of one pattern.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// What a peer wants to do with a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Publish to it.
    Publish,
    /// Subscribe to it.
    Subscribe,
    /// Both (only as a capability).
    PubSub,
}

impl Access {
    /// The word in `authz.json` and in modular's refusal text.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Access::Publish => "publish",
            Access::Subscribe => "subscribe",
            Access::PubSub => "pubsub",
        }
    }

    fn from_word(s: &str) -> Option<Access> {
        match s {
            "publish" => Some(Access::Publish),
            "subscribe" => Some(Access::Subscribe),
            "pubsub" => Some(Access::PubSub),
            _ => None,
        }
    }
}

/// Why `authz.json` was not loaded (the previous rules stay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthzError {
    /// It could not be read.
    Io(std::io::ErrorKind),
    /// Over [`MAX_AUTHZ_FILE_BYTES`].
    TooLarge,
    /// Not JSON (byte offset, what).
    Json(usize, JsonErrorKind),
    /// At this JSON path, not the type modular needs.
    WrongType {
        /// JSON path, e.g. `agents.a1.pubsub_capabilities`.
        path: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An access other than `publish`, `subscribe`, `pubsub`.
    BadAccess {
        /// JSON path of the capability.
        path: String,
    },
    /// A pattern that does not compile.
    BadRegex {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        why: String,
    },
    /// More than [`MAX_AUTHZ_PATTERNS`] distinct patterns.
    TooManyPatterns,
}

impl fmt::Display for AuthzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(k) => write!(f, "I/O error: {k}"),
            Self::TooLarge => write!(f, "larger than {MAX_AUTHZ_FILE_BYTES} bytes"),
            Self::Json(at, kind) => write!(f, "invalid JSON at byte {at}: {kind}"),
            Self::WrongType { path, expected } => write!(f, "{path}: expected {expected}"),
            Self::BadAccess { path } => write!(f, "{path}: access must be \"publish\", \"subscribe\" or \"pubsub\""),
            Self::BadRegex { pattern, why } => write!(f, "pattern {pattern:?} does not compile: {why}"),
            Self::TooManyPatterns => write!(f, "more than {MAX_AUTHZ_PATTERNS} distinct patterns"),
        }
    }
}

impl std::error::Error for AuthzError {}

/// One identity's capabilities in order: (index into the compiled patterns, access).
type Capabilities = Box<[(u32, Access)]>;

/// The loaded policy (see the module doc).
#[derive(Debug, Default)]
pub struct Authz {
    /// Every distinct pattern, compiled `^(?:BODY)`.
    patterns: Vec<regex_lite::Regex>,
    /// Indices into `patterns`.
    protected: Vec<u32>,
    /// Identity (latin-1 bytes) → capabilities in order.
    agents: HashMap<Box<[u8]>, Capabilities>,
    /// Every topic protected, nobody allowed ([`Authz::closed`]).
    closed: bool,
    /// A non-ASCII topic decoded latin-1, reused.
    scratch: String,
}

/// An ordered pattern → access map with Python `dict.update` semantics.
type CapList = Vec<(String, Access)>;

fn update(into: &mut CapList, from: &[(String, Access)]) {
    for (p, a) in from {
        match into.iter_mut().find(|(q, _)| q == p) {
            Some(slot) => slot.1 = *a,
            None => into.push((p.clone(), *a)),
        }
    }
}

fn wrong(path: impl Into<String>, expected: &'static str) -> AuthzError {
    AuthzError::WrongType { path: path.into(), expected }
}

/// `{PATTERN: ACCESS}` (absent or `null`: none).
fn caps_of(v: Option<Value<'_>>, path: &str) -> Result<CapList, AuthzError> {
    let mut out = CapList::new();
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(out) };
    if v.kind() != Kind::Object {
        return Err(wrong(path, "an object {pattern: access}"));
    }
    for (k, a) in v.members() {
        let pattern = to_string(k);
        let access = a
            .as_str()
            .map(to_string)
            .and_then(|w| Access::from_word(&w))
            .ok_or_else(|| AuthzError::BadAccess { path: format!("{path}.{pattern}") })?;
        update(&mut out, &[(pattern, access)]);
    }
    Ok(out)
}

/// A list of role names: strings, or `{name: {params}}` objects (the first key is the name).
fn role_names(v: Option<Value<'_>>, path: &str) -> Result<Vec<String>, AuthzError> {
    let mut out = Vec::new();
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(out) };
    if v.kind() != Kind::Array {
        return Err(wrong(path, "a list of role names"));
    }
    for item in v.items() {
        let name = match item.kind() {
            Kind::String => item.as_str().map(to_string),
            Kind::Object => item.members().next().map(|(k, _)| to_string(k)),
            _ => None,
        }
        .ok_or_else(|| wrong(path, "role names (strings or {name: params})"))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn strings(v: Option<Value<'_>>, path: &str) -> Result<Vec<String>, AuthzError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    if v.kind() != Kind::Array {
        return Err(wrong(path, "a list of strings"));
    }
    v.items().map(|i| i.as_str().map(to_string).ok_or_else(|| wrong(path, "a list of strings"))).collect()
}

/// The members of an optional object.
fn object<'a>(top: Value<'a>, key: &str) -> Result<Vec<(JsonStr<'a>, Value<'a>)>, AuthzError> {
    match top.get(key.as_bytes()) {
        None => Ok(Vec::new()),
        Some(v) if v.is_null() => Ok(Vec::new()),
        Some(v) if v.kind() == Kind::Object => Ok(v.members().collect()),
        Some(_) => Err(wrong(key, "an object")),
    }
}

/// The regular expression of a `protected_topics` entry or capability pattern (module doc).
fn regex_body(pattern: &str) -> String {
    if pattern.chars().count() > 1 && pattern.starts_with('/') && pattern.ends_with('/') {
        pattern.get(1..pattern.len() - 1).unwrap_or_default().to_owned()
    } else {
        format!("{pattern}.*")
    }
}

/// Compiles patterns once per distinct text.
#[derive(Default)]
struct Compiler {
    index: HashMap<String, u32>,
    compiled: Vec<regex_lite::Regex>,
}

impl Compiler {
    fn get(&mut self, pattern: &str) -> Result<u32, AuthzError> {
        if let Some(&i) = self.index.get(pattern) {
            return Ok(i);
        }
        if self.compiled.len() >= MAX_AUTHZ_PATTERNS {
            return Err(AuthzError::TooManyPatterns);
        }
        let body = regex_body(pattern);
        let bad = |e: regex_lite::Error| AuthzError::BadRegex { pattern: pattern.to_owned(), why: e.to_string() };
        // The body alone must compile (as Python compiles it), then anchored at the start.
        regex_lite::RegexBuilder::new(&body).size_limit(REGEX_SIZE_LIMIT).build().map_err(bad)?;
        let re =
            regex_lite::RegexBuilder::new(&format!("^(?:{body})")).size_limit(REGEX_SIZE_LIMIT).build().map_err(bad)?;
        let i = u32::try_from(self.compiled.len()).map_err(|_| AuthzError::TooManyPatterns)?;
        self.compiled.push(re);
        self.index.insert(pattern.to_owned(), i);
        Ok(i)
    }
}

/// One agent while expanding: its capabilities and roles.
struct Expanding {
    caps: CapList,
    roles: Vec<String>,
}

impl Authz {
    /// Every topic protected and nobody allowed: the rules at start when `authz.json` is broken.
    #[must_use]
    pub fn closed() -> Authz {
        Authz { closed: true, ..Authz::default() }
    }

    /// Reads `path` ([`Authz::parse`]); a missing file protects nothing.
    ///
    /// # Errors
    /// I/O errors other than "not found", a file over [`MAX_AUTHZ_FILE_BYTES`], and every error of
    /// [`Authz::parse`].
    pub fn load(path: &Path) -> Result<Authz, AuthzError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Authz::default()),
            Err(e) => return Err(AuthzError::Io(e.kind())),
        };
        let mut text = Vec::new();
        file.take(MAX_AUTHZ_FILE_BYTES + 1).read_to_end(&mut text).map_err(|e| AuthzError::Io(e.kind()))?;
        if text.len() as u64 > MAX_AUTHZ_FILE_BYTES {
            return Err(AuthzError::TooLarge);
        }
        Self::parse(&text)
    }

    /// Parses the text of an `authz.json` (module doc).
    ///
    /// # Errors
    /// [`AuthzError`] for the first problem; nothing is half-loaded.
    pub fn parse(text: &[u8]) -> Result<Authz, AuthzError> {
        let top = json::parse(text).map_err(|e| AuthzError::Json(e.pos, e.kind))?;
        if top.kind() != Kind::Object {
            return Err(wrong("(top level)", "an object"));
        }
        let protected = strings(top.get(b"protected_topics"), "protected_topics")?;
        let mut roles: HashMap<String, CapList> = HashMap::new();
        for (name, v) in object(top, "roles")? {
            let name = to_string(name);
            let path = format!("roles.{name}");
            if v.kind() != Kind::Object {
                return Err(wrong(path, "an object"));
            }
            roles.insert(name, caps_of(v.get(b"pubsub_capabilities"), &format!("{path}.pubsub_capabilities"))?);
        }
        let mut agents: Vec<(String, Expanding)> = Vec::new();
        for (id, v) in object(top, "agents")? {
            let id = to_string(id);
            let path = format!("agents.{id}");
            if v.kind() != Kind::Object {
                return Err(wrong(path, "an object"));
            }
            let caps = caps_of(v.get(b"pubsub_capabilities"), &format!("{path}.pubsub_capabilities"))?;
            let roles = role_names(v.get(b"agent_roles"), &format!("{path}.agent_roles"))?;
            agents.retain(|(other, _)| *other != id);
            agents.push((id, Expanding { caps, roles }));
        }
        for (name, v) in object(top, "agent_groups")? {
            let path = format!("agent_groups.{}", to_string(name));
            if v.kind() != Kind::Object {
                return Err(wrong(path, "an object"));
            }
            let members = strings(v.get(b"identities"), &format!("{path}.identities"))?;
            let mut group_roles = role_names(v.get(b"agent_roles"), &format!("{path}.agent_roles"))?;
            for r in role_names(v.get(b"roles"), &format!("{path}.roles"))? {
                if !group_roles.contains(&r) {
                    group_roles.push(r);
                }
            }
            let caps = caps_of(v.get(b"pubsub_capabilities"), &format!("{path}.pubsub_capabilities"))?;
            for (id, a) in agents.iter_mut() {
                if members.contains(id) {
                    for r in &group_roles {
                        if !a.roles.contains(r) {
                            a.roles.push(r.clone());
                        }
                    }
                    update(&mut a.caps, &caps);
                }
            }
        }
        let mut compiler = Compiler::default();
        let protected = protected.iter().map(|p| compiler.get(p)).collect::<Result<Vec<u32>, _>>()?;
        let mut out = HashMap::with_capacity(agents.len());
        for (id, mut a) in agents {
            for r in &a.roles {
                if let Some(caps) = roles.get(r) {
                    update(&mut a.caps, caps);
                }
            }
            let caps = a
                .caps
                .iter()
                .map(|(p, access)| compiler.get(p).map(|i| (i, *access)))
                .collect::<Result<Vec<_>, _>>()?;
            // Identities are compared with frame bytes (latin-1): a name above U+00FF never
            // matches a peer.
            if let Some(key) = latin1(&id) {
                out.insert(key.into_boxed_slice(), caps.into_boxed_slice());
            }
        }
        Ok(Authz { patterns: compiler.compiled, protected, agents: out, closed: false, scratch: String::new() })
    }

    /// Number of protected-topic entries (0 for [`Authz::closed`], which protects all).
    #[must_use]
    pub fn protected_len(&self) -> usize {
        self.protected.len()
    }

    /// Number of identities with an entry in `agents`.
    #[must_use]
    pub fn agents_len(&self) -> usize {
        self.agents.len()
    }

    /// Whether this is [`Authz::closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// May `identity` have `access` (publish or subscribe) to `topic` (frame bytes, latin-1)?
    /// See the module doc. No allocation once the scratch text has grown to the longest
    /// non-ASCII topic seen.
    pub fn allows(&mut self, identity: &[u8], topic: &[u8], access: Access) -> bool {
        if self.closed {
            return false;
        }
        if self.protected.is_empty() {
            return true;
        }
        let Authz { patterns, protected, agents, scratch, .. } = self;
        let text: &str = match core::str::from_utf8(topic) {
            Ok(t) if topic.is_ascii() => t,
            _ => {
                scratch.clear();
                scratch.extend(topic.iter().map(|&b| char::from(b)));
                scratch
            }
        };
        let matches = |i: u32| patterns.get(i as usize).is_some_and(|re| re.is_match(text));
        if !protected.iter().any(|&i| matches(i)) {
            return true;
        }
        let Some(caps) = agents.get(identity) else { return false };
        match caps.iter().find(|&&(i, _)| matches(i)) {
            Some(&(_, Access::PubSub)) => true,
            Some(&(_, a)) => a == access,
            None => false,
        }
    }
}

/// `s` as latin-1 bytes, if every character is at most U+00FF.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

#[cfg(test)]
mod tests;
