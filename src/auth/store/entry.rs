//! One `allow` entry of `auth.json` (VIP.md §9.5): its `domain`/`address`/`credentials` patterns
//! ([`Field`], [`Pattern`]), the validated [`AllowEntry`], and [`parse_entry`], which reads one
//! JSON item the way VOLTTRON's `AuthEntry.__init__` does.
//!
//! Contract (the details are in the parent module's doc): an item is either an enabled, valid
//! entry, disabled (`Ok(None)`, counted by the caller), or skipped with a [`SkipReason`]; a
//! `/…/` value is a regular expression over the **whole** value; capability names of the
//! entry's roles and groups are merged, without duplicates. Nothing here refuses the file: that
//! is the store's decision ([`super::AuthStore::parse`]).

use std::collections::HashMap;

use rand_core::RngCore;
use regex_lite::{Regex, RegexBuilder};

use super::REGEX_SIZE_LIMIT;
use super::error::SkipReason;
use crate::auth::auto_entries::AutoEntry;
use crate::auth::jsontext::to_string;
use crate::auth::keys::KEY_TEXT_LEN;
use crate::json::{Kind, Value};
use crate::zmtp::mechanism::Mechanism;

/// One value pattern of `domain`, `address` or `credentials`.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// Must be equal.
    Exact(Box<str>),
    /// `/…/`: whole-value regular expression (`source` is the text between the slashes).
    Regex { source: Box<str>, re: Regex },
}

impl Pattern {
    pub(super) fn matches(&self, value: &str) -> bool {
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
    /// Added in memory by [`super::AuthStore::upsert`] (VIP.md §9.7).
    Auto,
}

/// An enabled, valid `allow` entry.
#[derive(Clone, Debug)]
pub struct AllowEntry {
    pub(super) source: EntrySource,
    pub(crate) domain: Field,
    pub(crate) address: Field,
    pub(crate) mechanism: Mechanism,
    pub(crate) credentials: Field,
    pub(super) user_id: Box<str>,
    pub(super) user_id_explicit: bool,
    pub(super) identity: Option<Box<str>>,
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
    pub(super) fn identity_key(&self) -> String {
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

/// Python truthiness of a JSON value.
pub(super) fn truthy(v: Value<'_>) -> bool {
    match v.kind() {
        Kind::Null => false,
        Kind::Bool => v.as_bool() == Some(true),
        Kind::Number => v.as_number().is_none_or(|n| n.as_f64() != 0.0),
        Kind::String => !v.raw().eq(b"\"\""),
        Kind::Array => v.items().next().is_some(),
        Kind::Object => v.members().next().is_some(),
    }
}

pub(super) fn pattern(s: &str, field: &'static str) -> Result<Pattern, SkipReason> {
    let body = s.strip_prefix('/').and_then(|r| r.strip_suffix('/')).filter(|_| s.len() > 1);
    match body {
        None => Ok(Pattern::Exact(s.into())),
        Some(body) => {
            let re = RegexBuilder::new(&format!(r"\A(?:{body})\z"))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|_| SkipReason::BadRegex { field })?;
            Ok(Pattern::Regex { source: body.into(), re })
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
                let s = item.as_str().map(to_string).ok_or(SkipReason::BadFieldType { field: name })?;
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
        Some(v) => v.as_str().map(|s| Some(to_string(s))).ok_or(SkipReason::BadFieldType { field: name }),
    }
}

/// `groups` / `roles` of an entry: falsy → none; a string → one name; a list of strings.
fn names(v: Option<Value<'_>>, name: &'static str) -> Result<Vec<String>, SkipReason> {
    let Some(v) = v.filter(|v| truthy(*v)) else {
        return Ok(Vec::new());
    };
    match v.kind() {
        Kind::String => Ok(v.as_str().map(to_string).into_iter().collect()),
        Kind::Array => {
            v.items().map(|i| i.as_str().map(to_string).ok_or(SkipReason::BadFieldType { field: name })).collect()
        }
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
pub(super) fn parse_entry(
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
    let comments = v.get(b"comments").and_then(|c| c.as_str()).map(|s| to_string(s).into_boxed_str());
    if let Some(rpc) = v.get(b"rpc_method_authorizations")
        && truthy(rpc)
        && rpc.kind() != Kind::Object
    {
        return Err(SkipReason::BadFieldType { field: "rpc_method_authorizations" });
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
