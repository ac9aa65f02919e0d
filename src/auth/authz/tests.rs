//! Unit tests of `authz`: the check, the capability expansion, bad files.

use super::*;

fn authz(text: &str) -> Authz {
    Authz::parse(text.as_bytes()).unwrap()
}

/// The shape modular's `platform.auth` writes on first start (abridged), plus test agents.
const PLATFORM: &str = r#"{
  "roles": {
    "default_rpc_capabilities": {"rpc_capabilities": ["platform.config_store.set_config"]},
    "admin": {"rpc_capabilities": ["/.*/"], "pubsub_capabilities": {"/.*/": "pubsub"}},
    "reader": {"pubsub_capabilities": {"secret": "subscribe"}}
  },
  "agents": {
    "platform.control": {"comments": "Automatically added by init of auth service"},
    "agent.pub": {"pubsub_capabilities": {"secret/": "publish"}},
    "agent.sub": {"agent_roles": [{"reader": {"identity": "agent.sub"}}]},
    "agent.both": {"pubsub_capabilities": {"/secret\\/.*/": "pubsub"}},
    "agent.none": {"agent_roles": [{"default_rpc_capabilities": {"identity": "agent.none"}}]},
    "agent.grouped": {}
  },
  "agent_groups": {
    "admin_users": {"identities": ["platform.control", "not.an.agent"], "agent_roles": ["admin"]},
    "readers": {"identities": ["agent.grouped"], "roles": ["reader"], "pubsub_capabilities": {"other": "publish"}}
  },
  "protected_topics": ["secret", "other", "/^alerts\\/[0-9]+$/"]
}"#;

#[test]
fn modular_rules() {
    use Access::{Publish, Subscribe};
    let mut a = authz(PLATFORM);
    assert_eq!((a.protected_len(), a.agents_len()), (3, 6));
    // Unprotected topics are open to anyone, even identities with no entry.
    assert!(a.allows(b"stranger", b"devices/x", Publish));
    assert!(a.allows(b"stranger", b"", Subscribe), "the empty prefix matches no protected entry");
    // A plain entry is a prefix: `secret` protects `secretive` too.
    for t in [&b"secret"[..], b"secret/x", b"secretive"] {
        assert!(!a.allows(b"stranger", t, Publish), "{t:?}");
    }
    assert!(a.allows(b"stranger", b"xsecret", Publish), "matched from the start only");
    // A /regex/ entry, matched from the start (Python re.match).
    assert!(!a.allows(b"stranger", b"alerts/12", Subscribe));
    assert!(a.allows(b"stranger", b"alerts/x", Subscribe));
    // Own capabilities: publish only.
    assert!(a.allows(b"agent.pub", b"secret/x", Publish));
    assert!(!a.allows(b"agent.pub", b"secret/x", Subscribe));
    assert!(!a.allows(b"agent.pub", b"secretive", Publish), "its pattern `secret/` does not match");
    // Through a role given with parameters ({"reader": {...}}).
    assert!(a.allows(b"agent.sub", b"secret/x", Subscribe));
    assert!(!a.allows(b"agent.sub", b"secret/x", Publish));
    // pubsub allows both.
    assert!(a.allows(b"agent.both", b"secret/x", Publish) && a.allows(b"agent.both", b"secret/x", Subscribe));
    // In `agents` but without pubsub capabilities, or not in `agents` at all: refused.
    assert!(!a.allows(b"agent.none", b"secret", Subscribe));
    assert!(!a.allows(b"not.an.agent", b"secret", Subscribe), "a group member without an agents entry");
    // Group `agent_roles` (as the platform writes and applies them): admin = /.*/ pubsub.
    assert!(a.allows(b"platform.control", b"secret/x", Publish));
    assert!(a.allows(b"platform.control", b"alerts/1", Subscribe));
    // Group `roles` (as modular's loader reads them) and group capabilities.
    assert!(a.allows(b"agent.grouped", b"secret", Subscribe));
    assert!(a.allows(b"agent.grouped", b"other/y", Publish));
    assert!(!a.allows(b"agent.grouped", b"other/y", Subscribe));
}

/// The first matching capability decides; `dict.update` keeps a pattern's first position and
/// takes the later access (agent, then groups in order, then roles).
#[test]
fn first_match_decides_in_dict_update_order() {
    let mut a = authz(
        r#"{"protected_topics": ["t"],
            "roles": {"r": {"pubsub_capabilities": {"t/a": "pubsub", "t": "publish"}}},
            "agents": {"x": {"pubsub_capabilities": {"t/a": "subscribe"}, "agent_roles": ["r"]},
                       "y": {"pubsub_capabilities": {"t": "subscribe", "t/a": "pubsub"}}},
            "agent_groups": {"g": {"identities": ["y"], "pubsub_capabilities": {"t": "publish"}}}}"#,
    );
    // x: {"t/a": pubsub (role replaced subscribe in place), "t": publish}
    assert!(a.allows(b"x", b"t/a", Access::Subscribe));
    assert!(a.allows(b"x", b"t/b", Access::Publish) && !a.allows(b"x", b"t/b", Access::Subscribe));
    // y: {"t": publish (the group replaced subscribe), "t/a": pubsub} — "t" comes first.
    assert!(!a.allows(b"y", b"t/a", Access::Subscribe));
    assert!(a.allows(b"y", b"t/a", Access::Publish));
}

#[test]
fn nothing_protected_and_missing_file() {
    let mut a = authz("{}");
    assert!(a.allows(b"anyone", b"anything", Access::Publish));
    let mut m = Authz::load(Path::new("/nonexistent/authz.json")).unwrap();
    assert!(m.allows(b"anyone", b"secret", Access::Subscribe));
    let mut c = Authz::closed();
    assert!(c.is_closed() && !c.allows(b"platform.control", b"x", Access::Publish));
}

#[test]
fn latin1_topics_and_identities() {
    let mut a = authz(
        r#"{"protected_topics": ["caf\u00e9"], "agents": {"\u00e9l\u00e8ve": {"pubsub_capabilities": {"caf\u00e9": "pubsub"}}, "\u0100": {}}}"#,
    );
    assert!(!a.allows(b"other", b"caf\xe9/x", Access::Publish));
    assert!(a.allows(b"\xe9l\xe8ve", b"caf\xe9/x", Access::Publish));
    assert!(a.allows(b"other", b"cafe", Access::Publish));
    assert_eq!(a.agents_len(), 1, "an identity above U+00FF can never be a peer");
}

#[test]
fn bad_files_are_refused_whole_with_where() {
    let err = |t: &str| Authz::parse(t.as_bytes()).unwrap_err().to_string();
    assert!(err("[]").contains("expected an object"));
    assert!(err("{\"protected_topics\": \"secret\"}").starts_with("protected_topics: expected a list"));
    assert!(err("{\"protected_topics\": [1]}").starts_with("protected_topics"));
    assert!(
        err("{\"agents\": {\"a\": {\"pubsub_capabilities\": {\"t\": \"write\"}}}}")
            .starts_with("agents.a.pubsub_capabilities.t: access must be")
    );
    assert!(
        err("{\"agents\": {\"a\": {\"pubsub_capabilities\": [\"t\"]}}}").starts_with("agents.a.pubsub_capabilities")
    );
    assert!(err("{\"agents\": {\"a\": {\"agent_roles\": [7]}}}").starts_with("agents.a.agent_roles"));
    assert!(err("{\"agent_groups\": {\"g\": {\"identities\": \"a\"}}}").starts_with("agent_groups.g.identities"));
    assert!(err("{\"roles\": []}").starts_with("roles: expected an object"));
    assert!(err("{\"protected_topics\": [\"/(?=x)/\"]}").starts_with("pattern \"/(?=x)/\" does not compile"));
    assert!(err("{\"protected_topics\": [\"a)\"]}").contains("does not compile"), "Python rejects `a).*` too");
    assert!(err("{\"protected_topics\": [").starts_with("invalid JSON"));
}

/// Every prefix and single-byte mutation of a real file: a policy or an error, never a panic.
#[test]
fn garbage_never_panics() {
    let text = PLATFORM.as_bytes();
    for n in 0..text.len() {
        let _ = Authz::parse(&text[..n]);
        for x in [0x00u8, 0x22, 0x5c, 0x7b, 0xff] {
            let mut b = text.to_vec();
            b[n] = x;
            if let Ok(mut a) = Authz::parse(&b) {
                let _ = a.allows(b"agent.pub", b"secret/\xff", Access::Publish);
            }
        }
    }
}
