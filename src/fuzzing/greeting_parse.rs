//! `fuzz_greeting`: the greeting parser against a model (ZMTP.md §2).

use super::*;

/// `zmtp::greeting::parse` on every prefix of `data`, against a model of the four checks.
///
/// Invariants: `Ok(Some)` only once 64 bytes are present, and then the same value for every
/// longer prefix; an error is the one of the earliest offending byte and stays the same as
/// more bytes arrive; the parsed fields are the bytes at their offsets.
pub fn fuzz_greeting(data: &[u8]) {
    // Nothing past byte 64 is ever looked at; a few more prefixes show that.
    let data = data.get(..GREETING_LEN + 8).unwrap_or(data);
    let mut seen: Option<Result<Option<greeting::Greeting>, SessionError>> = None;
    for n in 0..=data.len() {
        let prefix = data.get(..n).unwrap_or(data);
        let r = greeting::parse(prefix);
        assert_eq!(r, greeting_model(prefix), "prefix {n}");
        match (&seen, &r) {
            (Some(Err(e0)), _) => assert_eq!(r, Err(*e0), "errors are stable (prefix {n})"),
            (Some(Ok(Some(g0))), _) => assert_eq!(r, Ok(Some(*g0)), "a complete greeting stays (prefix {n})"),
            _ => {}
        }
        if let Ok(Some(g)) = r {
            assert!(n >= GREETING_LEN);
            assert!(g.major >= 3);
            if let Some(m) = Mechanism::from_wire(&g.mechanism) {
                assert_eq!(m.wire_name(), g.mechanism);
            }
        }
        if r.is_err() || matches!(r, Ok(Some(_))) {
            seen = Some(r);
        }
    }
    // What we send is what we accept.
    for m in [Mechanism::Null, Mechanism::Plain, Mechanism::Curve] {
        let ours = greeting::emit(m, data.first().is_some_and(|b| b & 1 == 1));
        let g = greeting::parse(&ours);
        assert!(matches!(g, Ok(Some(g)) if g.mechanism == m.wire_name() && (g.major, g.minor) == (3, 1)));
    }
}

/// The greeting checks, restated: the earliest offending byte decides.
pub(super) fn greeting_model(p: &[u8]) -> Result<Option<greeting::Greeting>, SessionError> {
    if p.first().is_some_and(|&b| b != 0xFF) {
        return Err(SessionError::BadSignature);
    }
    if p.get(9).is_some_and(|&b| b & 1 == 0) {
        return Err(SessionError::BadSignature);
    }
    if let Some(&major) = p.get(10)
        && major < 3
    {
        return Err(SessionError::UnsupportedVersion { major });
    }
    if p.len() < GREETING_LEN {
        return Ok(None);
    }
    let mut mechanism = [0u8; 20];
    for (d, s) in mechanism.iter_mut().zip(p.iter().skip(12)) {
        *d = *s;
    }
    Ok(Some(greeting::Greeting {
        major: p.get(10).copied().unwrap_or(0),
        minor: p.get(11).copied().unwrap_or(0),
        mechanism,
    }))
}
