//! Who may connect and which user id they get: VOLTTRON's ZAP handler, in process
//! (VIP.md §9; ZMTP.md §8).
//!
//! VOLTTRON's `platform.auth` agent answers libzmq's ZAP requests from `auth.json`. A pure-Rust
//! router runs the same decision inline at the end of the CURVE handshake, after the client's
//! INITIATE is verified and before READY (VIP.md §9.9): the session builds an [`AuthRequest`]
//! from what a ZAP request would carry (§9.4) and acts on the [`Decision`] (READY, or ERROR
//! `400`: VIP.md §9.6 recommends answering refusals, unlike 9.0.4 which never does).
//!
//! Layers (DESIGN.md §2.2): [`Authenticator::decide`], [`Authenticator::capabilities`] and
//! [`Authenticator::check_identity`] are pure: no I/O, no clock, and no allocation of their own
//! (a `/regex/` entry's `regex-lite` matcher creates its scratch cache on first use and reuses
//! it). Files are read
//! only by the loaders — [`AuthStore::load`] (`auth.json`, §9.5) and [`keystore`] (`keystore`,
//! `known_hosts`, §9.3) — which build whole new values or fail, so a failed reload keeps the old
//! store. Randomness (uuid4 user ids, key generation) comes in as an RNG argument.
//!
//! # The decision (VIP.md §9.6)
//!
//! * [`AuthMode::Open`] (`allow-auth = False`, §9.1): every connection is allowed, NULL
//!   mechanism, no user id ([`UserId::Anonymous`], no entry).
//! * Otherwise the enabled `allow` entries are tried, exact credentials first, then regex ones,
//!   each in file order. An entry matches when its `domain` and `address` are wildcards or match
//!   (equal, `/regex/` over the whole value, or any element of a list), its `mechanism` equals
//!   the request's, and — unless the mechanism is NULL — its credentials match the client key in
//!   its 43-character VOLTTRON text ([`keys::KeyText`]). The first match allows, with the
//!   entry's `user_id`, or, if that is `""`, VOLTTRON's `dump_user(domain, address, mechanism,
//!   key)` form ([`UserId::Composed`]). `deny` entries play no role.
//! * **PLAIN** entries match `USER:PASSWORD`: a PLAIN entry's `credentials` is the text
//!   `"user:password"` (or a `/regex/` over it). VOLTTRON 9.0.4 compares the entry's text with
//!   the raw username bytes, which never succeeds, so PLAIN has never worked there and there is
//!   no existing file to stay compatible with; this is the natural reading, documented in
//!   README. A user name or password that is not UTF-8 is refused
//!   ([`DenyReason::PlainUnsupported`]). PLAIN sends the password in clear: for trusted
//!   networks only.
//! * NULL over ipc (`localhost:uid:gid:pid`): VOLTTRON also admits a process of the platform's
//!   own uid (and of agents it launched, which a router cannot know). That branch is unreachable
//!   in a default installation (§9.6) and is off unless [`Authenticator::set_local_uid`] is
//!   given the router's uid; it then admits NULL ipc peers of that uid with the composed user id
//!   `vip,localhost:…,NULL`.
//! * Setup mode (admit and record unknown keys) is not handled here: on
//!   [`Decision::Deny`] the caller may record the request.
//!
//! # What the user id is for (VIP.md §9.8)
//!
//! Not for routing, not for USER_ID. The router uses capabilities only for protected topics
//! (§7.9): [`Authenticator::capabilities`] looks up the entry whose `user_id` equals the
//! publisher's identity. The optional hardening of §9.8 — refuse a peer whose ZMTP `Identity`
//! differs from its entry's `identity` — is [`Authenticator::check_identity`], off by default
//! ([`Authenticator::set_identity_binding`]).
//!
//! # Limits
//!
//! At most [`MAX_AUTH_ENTRIES`] entries; memory is allocated when a store is built, never while
//! deciding.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod authz;
pub mod auto_entries;
pub mod credentials;
mod jsontext;
pub mod keys;
pub mod keystore;
pub mod layout;
pub mod store;

use core::fmt;

pub use auto_entries::{AutoCapability, AutoEntry, auto_entries};
pub use keys::{KeyError, KeyText, decode_key, encode_key};
pub use store::{
    AllowEntry, AuthFileError, AuthFileErrorKind, AuthStore, Capability, EntrySource, Location, SkipReason,
    SkippedEntry, StoreFull,
};

/// What the client presented (the ZAP credentials frames, VIP.md §9.4); the session's own type.
pub use crate::zmtp::mechanism::Credentials;
use crate::zmtp::mechanism::Mechanism;

/// Most `allow` entries an [`AuthStore`] holds (file entries plus those added by
/// [`AuthStore::upsert`]). Cost: a few hundred bytes per entry, allocated at load.
/// **Over the limit** `auth.json` is refused as a whole ([`AuthFileErrorKind::TooManyEntries`],
/// location `allow`): the caller keeps the previous store (on first start: no store, so the
/// router should not start). `upsert` over the limit returns [`StoreFull`].
pub const MAX_AUTH_ENTRIES: usize = 4096;

/// The fields of a ZAP request that the decision uses (VIP.md §9.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    /// ZAP domain of the endpoint (`vip`, or the `domain=` of the bound address).
    pub domain: &'a [u8],
    /// TCP: the peer's IP as text, without port. IPC: `localhost:<uid>:<gid>:<pid>`.
    pub address: &'a str,
    /// The mechanism of the endpoint.
    pub mechanism: Mechanism,
    /// What the client presented; must agree with `mechanism`.
    pub credentials: Credentials<'a>,
}

/// An entry of the store a [`Decision`] came from. Valid for the store it was issued by: after
/// [`Authenticator::replace_store`] it refers to nothing ([`Authenticator::entry`] → `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryId {
    generation: u32,
    index: u16,
}

/// The user id of an allowed peer (the `User-Id` a ZAP reply would carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserId<'a> {
    /// The matching entry's non-empty `user_id`.
    Entry(&'a str),
    /// VOLTTRON's `dump_user(domain, address, mechanism[, key])`: the fields joined by `,` with
    /// `,` and `\` backslash-escaped. Used when the entry's `user_id` is `""`, and for the local
    /// uid branch.
    Composed {
        /// ZAP domain.
        domain: &'a [u8],
        /// Peer address.
        address: &'a str,
        /// Mechanism.
        mechanism: Mechanism,
        /// CURVE key text, if CURVE.
        key: Option<KeyText>,
    },
    /// No user id: [`AuthMode::Open`] (no ZAP at all in VOLTTRON).
    Anonymous,
}

impl fmt::Display for UserId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
            for ch in s.chars() {
                if matches!(ch, ',' | '\\') {
                    f.write_str("\\")?;
                }
                write!(f, "{ch}")?;
            }
            Ok(())
        }
        match self {
            UserId::Entry(s) => f.write_str(s),
            UserId::Anonymous => Ok(()),
            UserId::Composed { domain, address, mechanism, key } => {
                escaped(f, &String::from_utf8_lossy(domain))?;
                f.write_str(",")?;
                escaped(f, address)?;
                f.write_str(",")?;
                f.write_str(mechanism.name())?;
                if let Some(k) = key {
                    f.write_str(",")?;
                    escaped(f, k.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// Why a connection is refused. `Display` gives a log line fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// CURVE: no enabled allow entry has this key (or a regex matching it).
    UnknownKey,
    /// CURVE: entries have this key, but none for this domain and address.
    KeyNotAllowedHere,
    /// NULL: no enabled NULL entry for this domain and address.
    NoNullEntry,
    /// PLAIN: never admitted (see the module doc).
    PlainUnsupported,
    /// The credentials do not belong to the request's mechanism (caller bug).
    MalformedRequest,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownKey => "CURVE key not in any enabled allow entry of auth.json",
            Self::KeyNotAllowedHere => "CURVE key in auth.json, but not for this domain and address",
            Self::NoNullEntry => "no enabled NULL allow entry for this domain and address",
            Self::PlainUnsupported => "PLAIN user name or password is not UTF-8",
            Self::MalformedRequest => "credentials do not match the mechanism",
        })
    }
}

/// The answer to an [`AuthRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision<'a> {
    /// Admit (ZAP `200 SUCCESS`).
    Allow {
        /// User id of the peer.
        user_id: UserId<'a>,
        /// The entry that matched; `None` in [`AuthMode::Open`] and for the local uid branch.
        entry: Option<EntryId>,
    },
    /// Refuse (ZAP `400 FAIL`).
    Deny(DenyReason),
}

/// `allow-auth` (VIP.md §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// `allow-auth = True` (default): every connection is checked against `auth.json`.
    #[default]
    Enforced,
    /// `allow-auth = False`: NULL everywhere, everything allowed.
    Open,
}

/// The connection-time authority: a store of allow entries plus the switches of VIP.md §9.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    mode: AuthMode,
    store: AuthStore,
    generation: u32,
    bind_identity: bool,
    local_uid: Option<u32>,
}

/// The capabilities of one entry ([`Authenticator::capabilities`]).
#[derive(Clone, Copy, Debug)]
pub struct Capabilities<'a>(&'a [Capability]);

impl<'a> Capabilities<'a> {
    /// The names, the entry's own first.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().map(Capability::name)
    }

    /// The capabilities with their arguments, the entry's own first.
    #[must_use]
    pub fn all(&self) -> &'a [Capability] {
        self.0
    }

    /// Whether `name` is among them.
    #[must_use]
    pub fn contains(&self, name: &[u8]) -> bool {
        self.0.iter().any(|c| c.name().as_bytes() == name)
    }

    /// Number of names.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Authenticator {
    /// An authenticator over `store` in `mode`, identity binding off, no local-uid branch.
    #[must_use]
    pub fn new(store: AuthStore, mode: AuthMode) -> Self {
        Authenticator { mode, store, ..Self::default() }
    }

    /// Installs a reloaded store. Peers already admitted stay (VIP.md §9.6); [`EntryId`]s issued
    /// before refer to nothing afterwards.
    pub fn replace_store(&mut self, store: AuthStore) {
        self.store = store;
        self.generation = self.generation.wrapping_add(1);
    }

    /// The current store.
    #[must_use]
    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    /// The current store, for [`AuthStore::upsert`] of the auto entries (VIP.md §9.7).
    pub fn store_mut(&mut self) -> &mut AuthStore {
        &mut self.store
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Turns the identity binding of VIP.md §9.8 on or off (off by default).
    pub fn set_identity_binding(&mut self, on: bool) {
        self.bind_identity = on;
    }

    /// Admits NULL-mechanism ipc peers whose address `localhost:<uid>:…` carries this uid
    /// (VOLTTRON's "same uid as the platform" branch, §9.6). `None` (default) turns it off.
    pub fn set_local_uid(&mut self, uid: Option<u32>) {
        self.local_uid = uid;
    }

    /// The entry an [`EntryId`] refers to, if it is from the current store.
    #[must_use]
    pub fn entry(&self, id: EntryId) -> Option<&AllowEntry> {
        if id.generation != self.generation {
            return None;
        }
        self.store.get(id.index)
    }

    /// The decision of VIP.md §9.6 for `req` (see the module doc). Pure; the key text is built
    /// on the stack.
    pub fn decide<'a>(&'a self, req: &AuthRequest<'a>) -> Decision<'a> {
        if self.mode == AuthMode::Open {
            return Decision::Allow { user_id: UserId::Anonymous, entry: None };
        }
        let mut plain_buf = [0u8; 512];
        let mut plain_text: Option<&str> = None;
        let key = match (req.mechanism, req.credentials) {
            (Mechanism::Plain, Credentials::Plain { user, password }) => {
                // "user:password" on the stack: both are at most 255 bytes (ZMTP.md §6).
                let n = user.len() + 1 + password.len();
                let Some(dst) = plain_buf.get_mut(..n) else {
                    return Decision::Deny(DenyReason::MalformedRequest);
                };
                let (u, rest) = dst.split_at_mut(user.len());
                u.copy_from_slice(user);
                if let Some((colon, p)) = rest.split_first_mut() {
                    *colon = b':';
                    p.copy_from_slice(password);
                }
                match core::str::from_utf8(plain_buf.get(..n).unwrap_or(&[])) {
                    Ok(t) => plain_text = Some(t),
                    Err(_) => return Decision::Deny(DenyReason::PlainUnsupported),
                }
                None
            }
            (Mechanism::Curve, Credentials::Curve(k)) => Some(KeyText::new(k)),
            (Mechanism::Null, Credentials::Null) => None,
            _ => return Decision::Deny(DenyReason::MalformedRequest),
        };
        let key_str = key.as_ref().map(KeyText::as_str).or(plain_text);
        let domain = core::str::from_utf8(req.domain).ok();
        let address = Some(req.address);
        for (index, e) in self.store.in_match_order() {
            if e.domain.matches(domain)
                && e.address.matches(address)
                && e.mechanism == req.mechanism
                && (req.mechanism == Mechanism::Null || e.credentials.matches(key_str))
            {
                let user_id = if e.user_id().is_empty() {
                    UserId::Composed { domain: req.domain, address: req.address, mechanism: req.mechanism, key }
                } else {
                    UserId::Entry(e.user_id())
                };
                return Decision::Allow { user_id, entry: Some(EntryId { generation: self.generation, index }) };
            }
        }
        if req.mechanism == Mechanism::Plain {
            return Decision::Deny(DenyReason::UnknownKey);
        }
        if req.mechanism == Mechanism::Null {
            if let Some(uid) = self.local_uid
                && local_uid_of(req.address) == Some(uid)
            {
                return Decision::Allow {
                    user_id: UserId::Composed {
                        domain: req.domain,
                        address: req.address,
                        mechanism: Mechanism::Null,
                        key: None,
                    },
                    entry: None,
                };
            }
            return Decision::Deny(DenyReason::NoNullEntry);
        }
        let known =
            self.store.in_match_order().any(|(_, e)| e.mechanism == Mechanism::Curve && e.credentials.matches(key_str));
        Decision::Deny(if known { DenyReason::KeyNotAllowedHere } else { DenyReason::UnknownKey })
    }

    /// The capability names for the protected-topic check (VIP.md §7.9): those of the entry
    /// whose `user_id` equals `user_id` (compared as UTF-8 bytes; with several such entries the
    /// last in match order wins, like `get_user_to_capabilities`). `None` means "no entry for
    /// this user" — the publish is then **allowed** (Python quirk, §7.9/§16.2 A12).
    #[must_use]
    pub fn capabilities(&self, user_id: &[u8]) -> Option<Capabilities<'_>> {
        self.store.by_user_id(user_id).map(|e| Capabilities(e.capabilities()))
    }

    /// Every user's capabilities, as VOLTTRON's `get_user_to_capabilities` (`auth/auth.py:533`)
    /// maps them for `auth_update`: one pair per entry whose `user_id` was written in the file
    /// (generated uuid4s name no peer), in match order, so with several entries for one user the
    /// last pair is the one [`Authenticator::capabilities`] answers.
    pub fn user_capabilities(&self) -> impl Iterator<Item = (&str, Capabilities<'_>)> {
        self.store
            .in_match_order()
            .filter(|(_, e)| e.user_id_is_explicit())
            .map(|(_, e)| (e.user_id(), Capabilities(e.capabilities())))
    }

    /// The identity binding of VIP.md §9.8: whether a peer admitted through `entry` may use the
    /// ZMTP routing identity `identity`. Always `true` while the switch is off (the default) and
    /// for entries without `identity`; otherwise the entry's `identity` must equal `identity`
    /// (UTF-8 bytes). `false` for an [`EntryId`] from a replaced store.
    #[must_use]
    pub fn check_identity(&self, entry: EntryId, identity: &[u8]) -> bool {
        if !self.bind_identity {
            return true;
        }
        match self.entry(entry) {
            None => false,
            Some(e) => e.identity().is_none_or(|id| id.as_bytes() == identity),
        }
    }
}

/// The uid of an ipc ZAP address `localhost:<uid>:<gid>:<pid>`.
fn local_uid_of(address: &str) -> Option<u32> {
    address.strip_prefix("localhost:")?.split(':').next()?.parse().ok()
}
