//! One `allow` entry of `auth.json` (VIP.md §9.5): its `domain`/`address`/`credentials` patterns
//! ([`Field`], [`Pattern`]), the validated [`AllowEntry`], and [`parse_entry`], which reads one
//! JSON item the way VOLTTRON's `AuthEntry.__init__` does.
//!
//! Contract (the details are in the parent module's doc): an item is either an enabled, valid
//! entry, disabled (`Ok(None)`, counted by the caller), or skipped with a [`SkipReason`]; a
//! `/…/` value is a regular expression over the **whole** value; capabilities are normalised as
//! VOLTTRON's `AuthEntry.build_capabilities_field` and `AuthFile._use_groups_and_roles` do
//! (`auth/auth_entry.py:151-169`, `auth/auth_file.py:349-360`), each [`Capability`] keeping its
//! argument as JSON. Nothing here refuses the file: that is the store's decision
//! ([`super::AuthStore::parse`]).

use std::collections::HashMap;

use rand_core::RngCore;
use regex_lite::{Regex, RegexBuilder};

use super::REGEX_SIZE_LIMIT;
use super::error::SkipReason;
use crate::auth::auto_entries::AutoEntry;
use crate::auth::jsontext::to_string;
use crate::auth::keys::KEY_TEXT_LEN;
use crate::json::emit::emit_number;
use crate::json::emit::push_str;
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
    capabilities: Box<[Capability]>,
    comments: Option<Box<str>>,
}

/// One capability of an entry: its name and its argument, the JSON value VOLTTRON keeps for it
/// (`{name: null | ARG}` in `AuthEntry.capabilities`, e.g. `{"identity": "agent2"}` for
/// `edit_config_store`). The argument is kept as JSON text in Python's `json.dumps` form
/// (ASCII only, `", "`/`": "` separators, duplicate keys collapsed as a Python dict does), so
/// it reads back to the object VOLTTRON's `platform.auth` sends in `auth_update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    name: Box<str>,
    arg: Box<str>,
}

impl Capability {
    /// A capability with `arg` as its JSON argument (`"null"` for none).
    pub(crate) fn new(name: &str, arg: &str) -> Self {
        Capability { name: name.into(), arg: arg.into() }
    }

    /// The capability name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The argument as JSON text (`null` when it has none, e.g. for capabilities given by a
    /// role or group).
    #[must_use]
    pub fn arg_json(&self) -> &str {
        &self.arg
    }
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

    /// Capabilities: the entry's own, then those of its roles and groups (no duplicate names;
    /// a name given by a role or group has no argument, as in VOLTTRON).
    #[must_use]
    pub fn capabilities(&self) -> &[Capability] {
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
            capabilities: auto.capabilities.iter().map(|c| Capability::new(c.name, &c.arg_json())).collect(),
            comments: Some(auto.comments.into()),
        }
    }
}

/// Python's `dict.update` of one capability: a known name keeps its place and takes the new
/// argument; a new name is appended.
fn update_capability(caps: &mut Vec<Capability>, name: String, arg: String) {
    match caps.iter_mut().find(|c| *c.name == *name) {
        Some(c) => c.arg = arg.into_boxed_str(),
        None => caps.push(Capability { name: name.into_boxed_str(), arg: arg.into_boxed_str() }),
    }
}

/// `v` as JSON text the way Python's `json.dumps` writes the object `json.loads` made of it
/// (strings decoded as the file's UTF-8; duplicate keys: first position, last value).
fn python_json(v: Value<'_>, out: &mut String) {
    match v.kind() {
        Kind::Null => out.push_str("null"),
        Kind::Bool => out.push_str(if v.as_bool() == Some(true) { "true" } else { "false" }),
        Kind::Number => {
            let mut n = Vec::new();
            if let Some(num) = v.as_number() {
                let _ = emit_number(&mut n, num);
            }
            out.push_str(&String::from_utf8_lossy(&n));
        }
        Kind::String => push_str(out, &v.as_str().map(to_string).unwrap_or_default()),
        Kind::Array => {
            out.push('[');
            for (i, item) in v.items().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Kind::Object => {
            let mut members: Vec<(String, Value<'_>)> = Vec::new();
            for (k, val) in v.members() {
                let k = to_string(k);
                match members.iter_mut().find(|(name, _)| *name == k) {
                    Some(m) => m.1 = val,
                    None => members.push((k, val)),
                }
            }
            out.push('{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_str(out, &k);
                out.push_str(": ");
                python_json(val, out);
            }
            out.push('}');
        }
    }
}

/// `v` as JSON text ([`python_json`]).
fn json_text(v: Value<'_>) -> String {
    let mut s = String::new();
    python_json(v, &mut s);
    s
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

/// `build_capabilities_field`: falsy → none; a string → `{name: null}`; an object → its members
/// with their arguments; a list of those, merged in order with `dict.update` (a later element
/// wins, as in Python, whose "args override a bare name" intent at `auth_entry.py:162-164`
/// never takes effect). Anything else skips the entry.
fn capabilities(v: Option<Value<'_>>, out: &mut Vec<Capability>) -> Result<(), SkipReason> {
    let Some(v) = v.filter(|v| truthy(*v)) else {
        return Ok(());
    };
    let one = |v: Value<'_>, out: &mut Vec<Capability>| match v.kind() {
        Kind::String => {
            update_capability(out, v.as_str().map(to_string).unwrap_or_default(), "null".into());
            Ok(())
        }
        Kind::Object => {
            for (k, arg) in v.members() {
                update_capability(out, to_string(k), json_text(arg));
            }
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
    capabilities(v.get(b"capabilities"), &mut caps)?;
    let mut entry_roles = names(v.get(b"roles"), "roles")?;
    for g in names(v.get(b"groups"), "groups")? {
        entry_roles.extend(groups.get(&g).into_iter().flatten().cloned());
    }
    // `entry.add_capabilities(list(set(role capabilities)))`: each becomes `{name: None}` and is
    // merged with `dict.update`, so a role's capability also drops the entry's own argument for
    // that name. Python's order among the roles' names is a set's (random per process); ours is
    // first-seen.
    for r in &entry_roles {
        for name in roles.get(r).into_iter().flatten() {
            update_capability(&mut caps, name.clone(), "null".into());
        }
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
        capabilities: caps.into_boxed_slice(),
        comments,
    }))
}
