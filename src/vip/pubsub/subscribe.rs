//! subscribe, unsubscribe, synchronize (VIP.md §7.3–§7.5): the peer's entries in the
//! [`Subscriptions`] index; subscribe/unsubscribe all or nothing, synchronize best effort within
//! the limits.

use super::*;

/// A subscription the sender may not make (`authz.json`).
pub(super) struct Unauthorized;

/// `prefix` as given to subscribe/unsubscribe: one string or a list of strings.
fn prefix_list(v: Value<'_>) -> Option<impl Iterator<Item = JsonStr<'_>> + Clone> {
    let one = (v.kind() == Kind::String).then(|| v.as_str()).flatten();
    let many = v.kind() == Kind::Array;
    if !(one.is_some() || many && v.items().all(|i| i.kind() == Kind::String)) {
        return None;
    }
    Some(one.into_iter().chain(v.items().filter_map(|i| i.as_str())))
}

/// Calls `add(bus, prefix, all_platforms)` for every item of a validated `synchronize`
/// `{PLATFORM: {BUS: [prefix, ...]}}` and returns the first error. Strings with a character above
/// U+00FF are skipped (they can never match a frame); over-long ones are refused.
fn sync_items(
    platforms: Value<'_>,
    mut add: impl FnMut(&[u8], &[u8], bool) -> Result<(), SubscribeError>,
) -> Option<SubscribeError> {
    let mut first_error = None;
    for (k, buses) in platforms.members() {
        let Some(all) = platform(k) else { continue };
        for (bus, prefixes) in buses.members() {
            let mut bus_buf = [0u8; MAX_BUS_BYTES];
            let bus = match bus.to_latin1(&mut bus_buf) {
                Ok(b) => b,
                Err(json::Latin1Error::NotLatin1) => continue,
                Err(json::Latin1Error::TooLong) => {
                    first_error.get_or_insert(SubscribeError::BusTooLong);
                    continue;
                }
            };
            for p in prefixes.items().filter_map(|p| p.as_str()) {
                let mut buf = [0u8; MAX_PREFIX_BYTES];
                let r = match p.to_latin1(&mut buf) {
                    Ok(p) => add(bus, p, all),
                    Err(json::Latin1Error::NotLatin1) => Ok(()),
                    Err(json::Latin1Error::TooLong) => Err(SubscribeError::PrefixTooLong),
                };
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    first_error
}

/// Argument frame `i` as a JSON object, or `None` after counting and logging why not (no
/// frame, not JSON, not an object).
fn object_arg<'a>(env: &Envelope<'a>, i: usize, stats: &mut Stats, requester: &[u8], op: &str) -> Option<Value<'a>> {
    let Some(body) = env.get_arg(i) else {
        malformed(stats, requester, op, "no JSON frame");
        return None;
    };
    match json::parse(body) {
        Ok(v) if v.kind() == Kind::Object => Some(v),
        Ok(_) => {
            malformed(stats, requester, op, "body is not a JSON object");
            None
        }
        Err(_) => {
            malformed(stats, requester, op, "body is not JSON");
            None
        }
    }
}

impl PubSub {
    /// VIP.md §7.3, and modular's protected-topic check (module doc).
    pub(super) fn subscribe(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        requester: &[u8],
        stats: &mut Stats,
    ) -> Subscribed {
        match self.subscribe_checked(from, env, requester, stats) {
            Ok(true) => Subscribed::Yes,
            Ok(false) => Subscribed::No,
            Err(Unauthorized) => Subscribed::Unauthorized,
        }
    }

    /// The first prefix the sender may not subscribe to under `authz.json`, written into
    /// `self.text` as modular's refusal.
    fn check_prefixes<'a>(
        &mut self,
        prefixes: impl Iterator<Item = JsonStr<'a>>,
        requester: &[u8],
        stats: &mut Stats,
    ) -> Result<(), Unauthorized> {
        let Some(authz) = self.authz.as_mut() else { return Ok(()) };
        for p in prefixes {
            let mut buf = [0u8; MAX_PREFIX_BYTES];
            // A prefix that is not latin-1 can never match a frame; one too long is refused below.
            if let Ok(p) = p.to_latin1(&mut buf)
                && !authz.allows(requester, p, Access::Subscribe)
            {
                self.unauthorized(&mut stats.rejected_protected_subscribe, requester, Access::Subscribe, p);
                return Err(Unauthorized);
            }
        }
        Ok(())
    }

    fn subscribe_checked(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        requester: &[u8],
        stats: &mut Stats,
    ) -> Result<bool, Unauthorized> {
        const OP: &str = "subscribe";
        let Some(v) = object_arg(env, 1, stats, requester, OP) else { return Ok(false) };
        let (Some(prefix), Some(bus)) = (v.get(b"prefix"), v.get(b"bus")) else {
            malformed(stats, requester, OP, "missing \"prefix\" or \"bus\"");
            return Ok(false);
        };
        let all = v.get(b"all_platforms").is_some_and(truthy);
        let mut bus_buf = [0u8; MAX_BUS_BYTES];
        let bus = match bus.as_str().map(|s| s.to_latin1(&mut bus_buf)) {
            Some(Ok(b)) => b,
            Some(Err(json::Latin1Error::TooLong)) => {
                refused(stats, requester, OP, SubscribeError::BusTooLong);
                return Ok(false);
            }
            _ => {
                malformed(stats, requester, OP, "\"bus\" is not a latin-1 string");
                return Ok(false);
            }
        };
        let Some(prefixes) = prefix_list(prefix) else {
            malformed(stats, requester, OP, "\"prefix\" is not a string or a list of strings");
            return Ok(false);
        };
        if prefixes.clone().count() > MAX_SUBS_PER_PEER {
            refused(stats, requester, OP, SubscribeError::PeerLimit);
            return Ok(false);
        }
        self.check_prefixes(prefixes.clone(), requester, stats)?;
        // All or nothing: remember which entries are new, to take them back on a refusal.
        let mut added = [0u64; MAX_SUBS_PER_PEER.div_ceil(64)];
        let mut failure = None;
        for (i, p) in prefixes.clone().enumerate() {
            let mut buf = [0u8; MAX_PREFIX_BYTES];
            let r = match p.to_latin1(&mut buf) {
                Ok(p) => self.subs.subscribe(from.0, bus, p, all),
                // A character above U+00FF can never prefix a frame: nothing to store (§3.8).
                Err(json::Latin1Error::NotLatin1) => Ok(false),
                Err(json::Latin1Error::TooLong) => Err(SubscribeError::PrefixTooLong),
            };
            match r {
                Ok(true) => {
                    if let Some(w) = added.get_mut(i / 64) {
                        *w |= 1 << (i % 64);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        let Some((failed_at, e)) = failure else {
            return Ok(true);
        };
        for (i, p) in prefixes.enumerate().take(failed_at) {
            if added.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0) {
                let mut buf = [0u8; MAX_PREFIX_BYTES];
                if let Ok(p) = p.to_latin1(&mut buf) {
                    self.subs.unsubscribe(from.0, bus, p, all);
                }
            }
        }
        refused(stats, requester, OP, e);
        Ok(false)
    }

    /// VIP.md §7.4. True = `01`. Everything is checked before anything is removed.
    pub(super) fn unsubscribe(
        &mut self,
        from: PeerId,
        env: &Envelope<'_>,
        requester: &[u8],
        stats: &mut Stats,
    ) -> bool {
        const OP: &str = "unsubscribe";
        let Some(v) = object_arg(env, 1, stats, requester, OP) else { return false };
        let (internal, all) = (v.get(b"internal"), v.get(b"all"));
        let entries: [Option<(Value<'_>, bool)>; 2] = if internal.is_some() || all.is_some() {
            [internal.map(|e| (e, false)), all.map(|e| (e, true))]
        } else {
            [Some((v, false)), None] // legacy {"prefix": P, "bus": B}
        };
        let valid = |e: Value<'_>| -> bool {
            let (Some(prefix), Some(bus)) = (e.get(b"prefix"), e.get(b"bus")) else {
                return false;
            };
            bus.as_str().is_some_and(|b| b.latin1_len().is_some())
                && (prefix.is_null() || prefix_list(prefix).is_some())
        };
        if !entries.iter().flatten().all(|&(e, _)| e.kind() == Kind::Object && valid(e)) {
            malformed(stats, requester, OP, "an entry lacks \"prefix\"/\"bus\" or has unusable types");
            return false;
        }
        for &(e, all) in entries.iter().flatten() {
            let mut bus_buf = [0u8; MAX_BUS_BYTES];
            let (Some(prefix), Some(Ok(bus))) =
                (e.get(b"prefix"), e.get(b"bus").and_then(|b| b.as_str()).map(|b| b.to_latin1(&mut bus_buf)))
            else {
                continue; // a bus too long to be stored holds nothing
            };
            if prefix.is_null() {
                self.subs.unsubscribe_bus(from.0, bus, all);
                continue;
            }
            for p in prefix_list(prefix).into_iter().flatten() {
                let mut buf = [0u8; MAX_PREFIX_BYTES];
                if let Ok(p) = p.to_latin1(&mut buf) {
                    self.subs.unsubscribe(from.0, bus, p, all);
                }
            }
        }
        true
    }

    /// VIP.md §7.5: replace the peer's whole set; no reply.
    pub(super) fn synchronize(&mut self, from: PeerId, env: &Envelope<'_>, requester: &[u8], stats: &mut Stats) {
        const OP: &str = "synchronize";
        if env.arg(1) != b"connected" {
            return;
        }
        let Some(body) = env.get_arg(2) else {
            malformed(stats, requester, OP, "no JSON frame");
            return;
        };
        let Ok(v) = json::parse(body) else {
            malformed(stats, requester, OP, "body is not JSON");
            return;
        };
        let Some(platforms) = v.get(b"subscriptions") else {
            malformed(stats, requester, OP, "no \"subscriptions\" key");
            return;
        };
        let valid = platforms.kind() == Kind::Object
            && platforms.members().filter(|&(k, _)| platform(k).is_some()).all(|(_, buses)| {
                buses.kind() == Kind::Object
                    && buses
                        .members()
                        .all(|(_, p)| p.kind() == Kind::Array && p.items().all(|i| i.kind() == Kind::String))
            });
        if !valid {
            malformed(stats, requester, OP, "\"subscriptions\" is not {PLATFORM: {BUS: [prefix, ...]}}");
            return;
        }
        let PubSub { subs, authz, .. } = self;
        let mut txn = match subs.begin_replace(from.0) {
            Ok(t) => t,
            Err(e) => {
                refused(stats, requester, OP, e);
                return;
            }
        };
        let mut denied: Option<Vec<u8>> = None;
        let mut permitted = |authz: &mut Option<Authz>, p: &[u8]| {
            let ok = authz.as_mut().is_none_or(|a| a.allows(requester, p, Access::Subscribe));
            if !ok && denied.is_none() {
                denied = Some(p.to_vec()); // refused input: not the steady state
            }
            ok
        };
        let mut first_error =
            sync_items(
                platforms,
                |bus, p, all| {
                    if permitted(authz, p) { txn.add(bus, p, all).map(|_| ()) } else { Ok(()) }
                },
            );
        txn.commit();
        if first_error.is_some() {
            // The replaced entries held slots until the commit; what did not fit then may fit now
            // (subscribe is idempotent for the entries already in).
            first_error = sync_items(platforms, |bus, p, all| {
                if permitted(authz, p) { subs.subscribe(from.0, bus, p, all).map(|_| ()) } else { Ok(()) }
            });
        }
        if let Some(p) = denied {
            self.unauthorized(&mut stats.rejected_protected_subscribe, requester, Access::Subscribe, &p);
        }
        if let Some(e) = first_error {
            refused(stats, requester, OP, e);
        }
    }
}
