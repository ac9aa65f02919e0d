//! Unit tests of `protected` (kept apart so the module file shows the code).

use super::*;

fn repr(json: &str) -> String {
    let mut out = Vec::new();
    repr_value(json::parse(json.as_bytes()).unwrap(), &mut out);
    out.iter().map(|&b| char::from(b)).collect()
}

#[test]
fn python_repr() {
    assert_eq!(repr(r#"{"raw_cap": null}"#), "{'raw_cap': None}");
    assert_eq!(repr(r#"["can_publish"]"#), "['can_publish']");
    assert_eq!(
        repr(r#"{"a": [1, 2.50, true, false, NaN, -Infinity, 1e400]}"#),
        "{'a': [1, 2.5, True, False, nan, -inf, inf]}"
    );
    assert_eq!(repr(r#""it's""#), "\"it's\"");
    assert_eq!(repr(r#""it's \"q\"""#), "'it\\'s \"q\"'");
    assert_eq!(
        repr(r#""a\\b\n\u0001\u00e9\u00ad\u0100\ud83d\ude00""#),
        "'a\\\\b\\n\\x01\u{e9}\\xad\\u0100\\U0001f600'"
    );
    assert_eq!(repr("{}"), "{}");
}

#[test]
fn lookup_order() {
    let mut t = ProtectedTopics::from_json(
        br#"{"write-protect": [
            {"topic": "a/b", "capabilities": "x"},
            {"topic": "a", "capabilities": ["y"]},
            {"topic": "a/b/c", "capabilities": ["z"]},
            {"topic": "/r.*z/", "capabilities": "w"},
            {"topic": "/", "capabilities": "slash"},
            {"topic": "open", "capabilities": []}]}"#,
    )
    .unwrap();
    assert_eq!(t.lookup(b"a/b/c").unwrap().names(), ["z"], "exact wins over earlier prefixes");
    assert_eq!(t.lookup(b"a/b/d").unwrap().names(), ["x"], "first prefix in file order");
    assert_eq!(t.lookup(b"ab").unwrap().names(), ["y"]);
    assert_eq!(t.lookup(b"rxxz").unwrap().names(), ["w"]);
    assert!(t.lookup(b"rxxzq").is_none(), "anchored");
    assert_eq!(t.lookup(b"/x").unwrap().names(), ["slash"], "a lone / is a literal");
    assert!(t.lookup(b"open/x").unwrap().names().is_empty());
    assert!(t.lookup(b"b").is_none());
}

#[test]
fn load_errors() {
    assert!(matches!(ProtectedTopics::from_json(b"[]"), Err(PolicyError::NotObject)));
    assert!(matches!(ProtectedTopics::from_json(b"{"), Err(PolicyError::Json(_))));
    assert_eq!(ProtectedTopics::from_json(b"{}").unwrap().len(), 0);
    assert!(matches!(
        ProtectedTopics::from_json(br#"{"write-protect": [{"topic": "a"}]}"#),
        Err(PolicyError::Entry { index: 0, problem: EntryProblem::MissingCapabilities })
    ));
    assert!(matches!(
        ProtectedTopics::from_json(br#"{"write-protect": [{"topic": "/(?<=a)b/", "capabilities": "c"}]}"#),
        Err(PolicyError::Entry { index: 0, problem: EntryProblem::BadRegex })
    ));
    assert!(matches!(UserCapabilities::from_json(b"{}"), Err(PolicyError::MissingCapabilities)));
}

#[test]
fn check_rules() {
    let mut p = TopicPolicy::default();
    p.set_protected_topics_json(br#"{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}]}"#)
        .unwrap();
    p.set_user_capabilities_json(br#"{"capabilities": {"agent.a": {"raw_cap": null}, "agent.b": {"can_publish": null}, "agent.c": ["can_publish"]}}"#)
        .unwrap();
    let r = p.check(b"agent.a", b"secretive").unwrap();
    let mut text = Vec::new();
    r.write_text(b"secretive", &mut text);
    assert_eq!(
        text,
        b"to publish to topic \"secretive\" requires capabilities ['can_publish'], but capability list {'raw_cap': None} was provided"
    );
    assert!(p.check(b"agent.b", b"secret").is_none());
    assert!(p.check(b"agent.c", b"secret").is_none());
    assert!(p.check(b"nobody", b"secret").is_none(), "no capability entry: allowed");
    assert!(p.check(b"agent.a", b"public").is_none());
}

/// The table built from auth entries: arguments rendered as Python `repr`, user ids as latin-1
/// identities, a later pair for a user replacing an earlier one.
#[test]
fn user_capabilities_from_entries() {
    let users: [(&str, Vec<(&str, &str)>); 5] = [
        ("agent2", vec![("edit_config_store", r#"{"identity": "agent2"}"#), ("raw", "null")]),
        ("caf\u{e9}", vec![("x", r#"["\u00e9", 1.5]"#)]),
        ("\u{263a}", vec![("never", "null")]),
        ("empty", vec![]),
        ("agent2", vec![("bad", "{not json")]),
    ];
    let t = UserCapabilities::from_entries(users.iter().map(|(u, c)| (*u, c.iter().copied())));
    assert_eq!(t.len(), 3, "the user above U+00FF is left out; agent2 once");
    let text = |user: &[u8]| {
        let mut p = TopicPolicy::default();
        p.set_protected_topics_json(br#"{"write-protect": [{"topic": "t", "capabilities": "need"}]}"#).unwrap();
        p.set_user_capabilities(UserCapabilities::from_entries(users.iter().map(|(u, c)| (*u, c.iter().copied()))));
        let mut out = Vec::new();
        if let Some(r) = p.check(user, b"t") {
            r.write_text(b"t", &mut out);
        }
        out.iter().map(|&b| char::from(b)).collect::<String>()
    };
    let tail = |have: &str| {
        format!("to publish to topic \"t\" requires capabilities ['need'], but capability list {have} was provided")
    };
    assert_eq!(text(b"agent2"), tail("{'bad': None}"));
    assert_eq!(text(b"caf\xe9"), tail("{'x': ['\u{e9}', 1.5]}"));
    assert_eq!(text(b"empty"), tail("{}"));
    assert_eq!(text(b"nobody"), "", "a user without an entry may publish (VIP.md §7.9)");
    let first = UserCapabilities::from_entries(users.iter().take(1).map(|(u, c)| (*u, c.iter().copied())));
    assert_eq!(first.has(b"agent2", "raw"), Some(true));
    assert_eq!(first.has(b"agent2", "identity"), Some(false));
}
