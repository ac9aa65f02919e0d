//! The authorisation decision the CURVE and PLAIN session targets are put through (VIP.md §9.6).

use super::*;

/// The server's long-term CURVE keys (fixed; computing a public key costs a scalar product,
/// so the pairs are made once).
pub(super) fn curve_server_keys() -> &'static KeyPair {
    static KEYS: OnceLock<KeyPair> = OnceLock::new();
    KEYS.get_or_init(|| KeyPair::from_secret(SecretKey::from_bytes([0x5e; 32])))
}

/// Client key pairs: 0 is admitted everywhere, 1 only from 10.0.0.1 (the harness connects
/// from 127.0.0.1), 2 and 3 are unknown.
pub(super) fn curve_client_keys(i: u8) -> &'static KeyPair {
    static KEYS: OnceLock<[KeyPair; 4]> = OnceLock::new();
    let keys =
        KEYS.get_or_init(|| [0xc0u8, 0xc1, 0xc2, 0xc3].map(|b| KeyPair::from_secret(SecretKey::from_bytes([b; 32]))));
    &keys[usize::from(i & 3)]
}

/// The `auth.json` the session harnesses decide with (see [`curve_client_keys`]).
pub(super) fn session_auth_json() -> String {
    let k0 = KeyText::new(&curve_client_keys(0).public.0);
    let k1 = KeyText::new(&curve_client_keys(1).public.0);
    format!(
        r#"{{"allow": [
  {{"credentials": "{k0}", "user_id": "agent.a", "identity": "agent1"}},
  {{"credentials": "{k1}", "user_id": "remote", "address": "10.0.0.1"}},
  {{"mechanism": "PLAIN", "credentials": "admin:secret", "user_id": "plain"}},
  {{"mechanism": "PLAIN", "credentials": "/guest:.*/", "user_id": "guest"}},
  {{"mechanism": "NULL", "address": "/localhost:.*/"}}
], "version": {{"major": 1, "minor": 4}}}}"#
    )
}

/// An authenticator over [`session_auth_json`] (built once: the store is only read).
pub(super) fn session_authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let store = AuthStore::parse(session_auth_json().as_bytes(), &mut FuzzRng(1));
        assert!(store.as_ref().is_ok_and(|s| s.len() == 5), "the harness auth.json loads: {store:?}");
        Authenticator::new(store.unwrap_or_default(), AuthMode::Enforced)
    })
}

pub(super) fn auth_request<'a>(
    domain: &'a [u8],
    address: &'a str,
    mechanism: Mechanism,
    credentials: Credentials<'a>,
) -> AuthRequest<'a> {
    AuthRequest { domain, address, mechanism, credentials }
}

/// The decision the server makes on Verify (VIP.md §9.6), for a TCP peer at 127.0.0.1.
pub(super) fn session_decide(s: &Session) -> bool {
    let auth = session_authenticator();
    let req = auth_request(b"vip", "127.0.0.1", s.mechanism(), s.credentials());
    match auth.decide(&req) {
        Decision::Allow { entry, user_id } => {
            let e = entry.and_then(|e| auth.entry(e));
            assert!(e.is_some_and(|e| e.mechanism() == s.mechanism()), "allowed by an entry of the mechanism");
            assert!(!user_id.to_string().is_empty());
            true
        }
        Decision::Deny(_) => false,
    }
}
