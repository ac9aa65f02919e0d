//! Unit tests of `store` (kept apart so the module file shows the code).

use super::entry::{pattern, truthy, uuid4};
use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn uuid4_shape() {
    let u = uuid4(&mut ChaCha20Rng::seed_from_u64(1));
    assert_eq!(u.len(), 36);
    assert_eq!(&u[14..15], "4");
    assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
}

#[test]
fn regex_is_whole_value() {
    let p = pattern(r"/10\.0\.0\.1|10\.0\.0\.2/", "address").unwrap();
    assert!(p.matches("10.0.0.1"));
    assert!(p.matches("10.0.0.2"));
    assert!(!p.matches("10.0.0.12"));
    assert!(!p.matches("x10.0.0.2"));
    assert!(matches!(pattern("/", "x").unwrap(), Pattern::Exact(_)));
    let empty = pattern("//", "x").unwrap();
    assert!(empty.matches("") && !empty.matches("a"));
}

#[test]
fn truthiness() {
    for (t, want) in [
        ("0", false),
        ("0.0", false),
        ("1", true),
        ("\"\"", false),
        ("\"false\"", true),
        ("[]", false),
        ("{}", false),
        ("null", false),
        ("true", true),
    ] {
        assert_eq!(truthy(json::parse(t.as_bytes()).unwrap()), want, "{t}");
    }
}

/// `from_auto_entries` builds what repeated `upsert`s into an empty store build, duplicates of
/// user id and of credentials included.
#[test]
fn from_auto_entries_equals_repeated_upserts() {
    use crate::auth::keys::KeyText;
    let key = |i: u8| KeyText::new(&[i; 32]);
    let e = |user: &str, k: u8| AutoEntry {
        user_id: user.to_owned(),
        identity: Some(user.to_owned()),
        credentials: key(k),
        capabilities: Vec::new(),
        comments: "t",
    };
    let cases = [
        vec![e("a", 1), e("b", 2), e("c", 3)],
        vec![e("a", 1), e("b", 1), e("a", 3)],
        vec![e("a", 1), e("a", 2), e("b", 1), e("c", 2)],
        vec![e("a", 1), e("b", 2), e("b", 1), e("a", 2), e("c", 1)],
    ];
    let summary = |s: &AuthStore| -> Vec<(String, String)> {
        s.entries().map(|x| (x.user_id().to_owned(), x.identity_key())).collect()
    };
    for entries in cases {
        let mut slow = AuthStore::empty();
        for a in &entries {
            slow.upsert(a).unwrap();
        }
        let fast = AuthStore::from_auto_entries(&entries);
        assert_eq!(summary(&fast), summary(&slow));
        for x in slow.entries() {
            assert_eq!(fast.by_user_id(x.user_id().as_bytes()).map(AllowEntry::user_id), Some(x.user_id()));
        }
    }
}
