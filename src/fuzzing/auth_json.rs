//! `fuzz_auth_json`: auth.json parsing and the decision (VIP.md §9.5).

use super::*;

/// A pattern's literal text, if it is one (regex patterns are only matched, not guessed).
pub(super) fn exact_text(f: &Field) -> Option<Option<&str>> {
    match f {
        Field::Any => Some(None),
        Field::One(Pattern::Exact(s)) => Some(Some(s)),
        Field::AnyOf(ps) => match ps.first() {
            Some(Pattern::Exact(s)) => Some(Some(s)),
            _ => None,
        },
        Field::One(Pattern::Regex { .. }) => None,
    }
}

/// Check one decision against the store it came from; returns whether it allowed.
pub(super) fn check_decision(auth: &Authenticator, req: &AuthRequest<'_>) -> bool {
    match auth.decide(req) {
        Decision::Allow { user_id, entry } => {
            let _ = user_id.to_string();
            match entry {
                Some(id) => {
                    let e = auth.entry(id);
                    assert!(e.is_some(), "an allow names an entry of the current store");
                    if let Some(e) = e {
                        assert_eq!(e.mechanism(), req.mechanism);
                        match user_id {
                            UserId::Entry(u) => assert_eq!(u, e.user_id()),
                            UserId::Composed { .. } => assert!(e.user_id().is_empty()),
                            UserId::Anonymous => panic!("an entry gave no user id"),
                        }
                        let _ = auth.check_identity(id, b"agent1");
                    }
                }
                None => assert!(
                    auth.mode() == AuthMode::Open || req.mechanism == Mechanism::Null,
                    "an allow without an entry is the open mode or the local-uid branch"
                ),
            }
            true
        }
        Decision::Deny(reason) => {
            let _ = reason.to_string();
            false
        }
    }
}

/// `AuthStore::parse` on arbitrary bytes, then decisions. Parsing is deterministic for a given
/// RNG; an error's text position is consistent with the text; every entry's own credentials,
/// domain and address (when they are literal) are allowed, by an entry of the mechanism;
/// capabilities are found for every entry's `user_id`; entry ids die with their store.
pub fn fuzz_auth_json(data: &[u8]) {
    let store = match AuthStore::parse(data, &mut FuzzRng(7)) {
        Err(e) => {
            let _ = e.to_string();
            if let Location::Text { offset, line, column } = e.location {
                assert!(offset <= data.len(), "error offset {offset} past the end");
                let before = data.get(..offset).unwrap_or(data);
                let nl = before.iter().filter(|&&b| b == b'\n').count();
                let col = before.iter().rev().take_while(|&&b| b != b'\n').count();
                assert_eq!((line, column), (nl + 1, col + 1), "line/column of offset {offset}");
            }
            return;
        }
        Ok(s) => s,
    };
    let again = AuthStore::parse(data, &mut FuzzRng(7));
    assert!(again.as_ref().is_ok_and(
        |a| a.len() == store.len() && a.entries().zip(store.entries()).all(|(x, y)| x.user_id() == y.user_id())
    ));
    assert!(store.len() <= crate::auth::MAX_AUTH_ENTRIES);
    for s in store.skipped() {
        let _ = s.to_string();
    }
    let mut auth = Authenticator::new(store, AuthMode::Enforced);
    check_own_credentials(&auth);
    // Fixed requests: a key nobody has, NULL over ipc, PLAIN that is not UTF-8, a mismatch.
    let stranger = [0x42u8; 32];
    let requests = [
        auth_request(b"vip", "127.0.0.1", Mechanism::Curve, Credentials::Curve(&stranger)),
        auth_request(b"vip", "localhost:1000:1000:42", Mechanism::Null, Credentials::Null),
        auth_request(b"\xff", "", Mechanism::Plain, Credentials::Plain { user: b"\xff", password: b"" }),
        auth_request(b"vip", "10.0.0.1", Mechanism::Curve, Credentials::Null),
    ];
    for req in &requests {
        check_decision(&auth, req);
    }
    assert_eq!(auth.decide(&requests[2]), Decision::Deny(crate::auth::DenyReason::PlainUnsupported));
    assert_eq!(auth.decide(&requests[3]), Decision::Deny(crate::auth::DenyReason::MalformedRequest));
    auth.set_local_uid(Some(1000));
    auth.set_identity_binding(true);
    assert!(check_decision(&auth, &requests[1]), "the local-uid branch admits its uid");
    // The platform's own entries (VIP.md §9.7) go in; old entry ids die with a replaced store.
    let platform = curve_client_keys(0).public;
    for auto in crate::auth::auto_entries(&platform, &[("control", curve_client_keys(1).public)]) {
        let full = auth.store().len() >= crate::auth::MAX_AUTH_ENTRIES;
        assert!(auth.store_mut().upsert(&auto).is_ok() || full);
    }
    let own = Credentials::Curve(&platform.0);
    let req = auth_request(b"vip", "127.0.0.1", Mechanism::Curve, own);
    if let Decision::Allow { entry: Some(id), .. } = auth.decide(&req) {
        auth.replace_store(AuthStore::empty());
        assert!(auth.entry(id).is_none(), "an entry id outlived its store");
        assert!(!auth.check_identity(id, b"x"));
    }
}

/// Every entry admits its own literal credentials (first 16 entries), and has capabilities.
fn check_own_credentials(auth: &Authenticator) {
    let entries: Vec<AllowEntry> = auth.store().entries().take(16).cloned().collect();
    for e in &entries {
        let user = e.user_id().as_bytes().to_vec();
        assert!(auth.capabilities(&user).is_some(), "no capabilities for user_id {:?}", e.user_id());
        let (Some(domain), Some(address), Some(creds)) =
            (exact_text(&e.domain), exact_text(&e.address), exact_text(&e.credentials))
        else {
            continue;
        };
        let domain = domain.unwrap_or("vip");
        let address = address.unwrap_or("127.0.0.1");
        let key;
        let credentials = match (e.mechanism(), creds) {
            (Mechanism::Null, _) => Credentials::Null,
            (Mechanism::Curve, Some(text)) => {
                match decode_key(text) {
                    Ok(raw) if KeyText::new(&raw).as_str() == text => key = raw,
                    _ => continue, // not a canonical key text: nothing can present it
                }
                Credentials::Curve(&key)
            }
            (Mechanism::Plain, Some(text)) => {
                let Some((u, p)) = text.split_once(':') else { continue };
                if u.len() > 255 || p.len() > 255 {
                    continue;
                }
                Credentials::Plain { user: u.as_bytes(), password: p.as_bytes() }
            }
            _ => continue,
        };
        let req = auth_request(domain.as_bytes(), address, e.mechanism(), credentials);
        assert!(check_decision(auth, &req), "entry {:?} does not admit its own credentials", e.source());
    }
}
