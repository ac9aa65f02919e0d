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
