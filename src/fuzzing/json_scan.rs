//! `fuzz_json_scan`: the JSON validator, navigator and emitter (VIP.md §3.8).

use super::*;

/// Same JSON value, as Python's `json.loads` would see it: same kinds, same decoded strings
/// and keys in the same order, numbers equal (integers by text with `-0` = `0`, floats by
/// value and sign, a float that overflows equal to the infinity it becomes).
pub(super) fn same_json(a: Value<'_>, b: Value<'_>) -> bool {
    match (a.kind(), b.kind()) {
        (Kind::Null, Kind::Null) => true,
        (Kind::Bool, Kind::Bool) => a.as_bool() == b.as_bool(),
        (Kind::String, Kind::String) => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.chars().eq(y.chars()),
            _ => false,
        },
        (Kind::Number, Kind::Number) => match (a.as_number(), b.as_number()) {
            (Some(x), Some(y)) => same_number(x, y),
            _ => false,
        },
        (Kind::Array, Kind::Array) => {
            let (mut x, mut y) = (a.items(), b.items());
            loop {
                match (x.next(), y.next()) {
                    (None, None) => return true,
                    (Some(p), Some(q)) if same_json(p, q) => {}
                    _ => return false,
                }
            }
        }
        (Kind::Object, Kind::Object) => {
            let (mut x, mut y) = (a.members(), b.members());
            loop {
                match (x.next(), y.next()) {
                    (None, None) => return true,
                    (Some((k, p)), Some((l, q))) if k.chars().eq(l.chars()) && same_json(p, q) => {}
                    _ => return false,
                }
            }
        }
        _ => false,
    }
}

pub(super) fn same_number(x: Number<'_>, y: Number<'_>) -> bool {
    pub(super) fn int_text<'a>(n: Number<'a>) -> &'a [u8] {
        if n.raw() == b"-0" { b"0" } else { n.raw() }
    }
    match (x.kind(), y.kind()) {
        (NumberKind::Integer, NumberKind::Integer) => int_text(x) == int_text(y),
        (NumberKind::NaN, NumberKind::NaN) => true,
        (NumberKind::Integer, _) | (_, NumberKind::Integer) => false,
        // Float, Infinity, -Infinity: by value (an overflowing float is an infinity).
        _ => x.as_f64().to_bits() == y.as_f64().to_bits(),
    }
}

/// Emit `v` canonically; checks that the measure is exact and that a slice one byte short
/// fails without writing past what fits.
pub(super) fn emit_checked(v: Value<'_>) -> Vec<u8> {
    let n = json::emit::emitted_len(v);
    let mut out = Vec::with_capacity(n);
    assert!(json::emit::emit_value(&mut out, v).is_ok());
    assert_eq!(out.len(), n, "emitted_len is exact");
    let mut exact = vec![0u8; n];
    let mut w = SliceWriter::new(&mut exact);
    assert!(json::emit::emit_value(&mut w, v).is_ok());
    assert_eq!(w.written(), &out[..]);
    if n > 0 {
        let mut short = vec![0u8; n - 1];
        let mut w = SliceWriter::new(&mut short);
        assert!(json::emit::emit_value(&mut w, v).is_err(), "one byte short must fail");
        assert!(out.starts_with(w.written()), "a failed emit wrote something else");
    }
    out
}

/// String views agree with each other: `latin1_len`, `to_latin1`, `eq_latin1`, `as_plain`.
pub(super) fn check_json_str(s: JsonStr<'_>) {
    let chars: Vec<u32> = s.chars().collect();
    let latin1: Option<Vec<u8>> = chars.iter().map(|&c| u8::try_from(c).ok()).collect();
    assert_eq!(s.latin1_len(), latin1.as_ref().map(Vec::len));
    let mut scratch = [0u8; 64];
    match (&latin1, s.to_latin1(&mut scratch)) {
        (Some(l), Ok(got)) => assert_eq!(got, &l[..]),
        (Some(l), Err(e)) => assert!(l.len() > 64 && e == json::Latin1Error::TooLong),
        (None, r) => assert!(r.is_err() && (s.has_escapes())),
    }
    if let Some(l) = &latin1 {
        assert!(s.eq_latin1(l));
        let mut other = l.clone();
        other.push(b'x');
        assert!(!s.eq_latin1(&other));
    }
    if let Some(p) = s.as_plain() {
        assert!(!s.has_escapes());
        assert_eq!(latin1.as_deref(), Some(p), "a plain string is its raw bytes");
    }
}

/// Walk every value: navigation and views agree; returns the number of values visited.
pub(super) fn walk_json(v: Value<'_>, depth: usize) -> usize {
    assert!(depth <= json::MAX_DEPTH + 1);
    let mut n = 1;
    assert_eq!(v.raw().len(), v.range().len());
    match v.kind() {
        Kind::String => {
            if let Some(s) = v.as_str() {
                check_json_str(s);
            }
        }
        Kind::Number => {
            let num = v.as_number();
            assert!(num.is_some());
            if let Some(num) = num
                && let Some(u) = num.as_u64()
            {
                assert_eq!(num.kind(), NumberKind::Integer);
                assert_eq!(u.to_string().as_bytes(), num.raw(), "as_u64 of non-canonical text");
            }
        }
        Kind::Array => {
            for item in v.items() {
                assert!(item.range().start > v.range().start && item.range().end < v.range().end);
                n += walk_json(item, depth + 1);
            }
        }
        Kind::Object => {
            let members: Vec<_> = v.members().collect();
            for (i, (k, val)) in members.iter().enumerate() {
                check_json_str(*k);
                n += walk_json(*val, depth + 1);
                // `get` is the last member with that key.
                if i < 8
                    && let Some(l) = latin1_of_str(*k)
                {
                    let last = members.iter().rev().find(|(k2, _)| k2.eq_latin1(&l)).map(|(_, v)| v.range());
                    assert_eq!(v.get(&l).map(|g| g.range()), last, "get returns the last duplicate");
                }
            }
        }
        Kind::Null | Kind::Bool => {}
    }
    n
}

pub(super) fn latin1_of_str(s: JsonStr<'_>) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c).ok()).collect()
}

/// `json::parse_picking` agrees with `json::parse` and `Value::get` (the pubsub publish path
/// picks `bus`, `headers` and `message` in the validating pass).
fn check_picking(data: &[u8]) {
    const KEYS: [&[u8]; 4] = [b"bus", b"headers", b"message", b"\xe9"];
    match (json::parse(data), json::parse_picking(data, &KEYS)) {
        (Ok(v), Ok((w, picked))) => {
            assert_eq!((v.range(), v.kind()), (w.range(), w.kind()));
            for (key, got) in KEYS.iter().zip(picked) {
                let want = v.get(key);
                assert_eq!(want.map(|x| (x.range(), x.kind())), got.map(|x| (x.range(), x.kind())), "key {key:?}");
            }
        }
        (Err(a), Err(b)) => assert_eq!((a.kind, a.pos), (b.kind, b.pos)),
        (a, b) => panic!("parse and parse_picking disagree: {a:?} vs {:?}", b.map(|(v, _)| v)),
    }
}

/// `json::parse` on arbitrary bytes. A valid document is re-emitted (`json::emit`): the
/// output is printable ASCII, measured exactly, parses back to the same structure and
/// re-emits to itself; a document the validator finds in Python's form is what the emitter
/// writes for it. Errors come with a position inside the input; the strict prefixes of a
/// valid container or string fail with `UnexpectedEnd`. Navigation (`get`, `members`,
/// `items`) and the string views agree with each other. A publish body's copy-only delivery
/// pieces (`DeliveryBody::verbatim_pieces`) are what `emit` writes.
pub fn fuzz_json_scan(data: &[u8]) {
    check_picking(data);
    let v = match json::parse(data) {
        Err(e) => {
            assert!(e.pos <= data.len(), "error position {} past the end {}", e.pos, data.len());
            if e.kind == JsonErrorKind::UnexpectedEnd {
                assert_eq!(e.pos, data.len(), "UnexpectedEnd is at the end");
            }
            return;
        }
        Ok(v) => v,
    };
    let r = v.range();
    assert!(r.end <= data.len());
    assert!(data.get(..r.start).unwrap_or(&[]).iter().all(|b| b" \t\r\n".contains(b)));
    assert!(data.get(r.end..).unwrap_or(&[]).iter().all(|b| b" \t\r\n".contains(b)));
    assert_eq!(data.get(r.clone()), Some(v.raw()));
    walk_json(v, 1);
    if matches!(v.kind(), Kind::Array | Kind::Object | Kind::String) {
        let len = r.end;
        for cut in [r.start, r.start + 1, (r.start + len) / 2, len.saturating_sub(2), len - 1] {
            if cut < len && cut > 0 {
                let e = json::parse(data.get(..cut).unwrap_or(&[]));
                assert!(
                    matches!(e, Err(JsonError { kind: JsonErrorKind::UnexpectedEnd, .. })),
                    "prefix {cut} of a valid document: {e:?}"
                );
            }
        }
    }
    let out = emit_checked(v);
    if v.in_python_form() {
        // The copy stands for the emission: the value reached by navigation (never "in
        // Python's form") is emitted piece by piece to the same bytes.
        // (Not at the depth limit: the wrapping array would be one level too deep.)
        let wrapped = [b"[ ", v.raw(), b"]"].concat();
        match json::parse(&wrapped) {
            Err(e) => assert_eq!(e.kind, JsonErrorKind::TooDeep, "the wrapped document: {e:?}"),
            Ok(w) => {
                let item = w.items().next();
                assert!(item.is_some_and(|i| !i.in_python_form() && emit_checked(i) == v.raw()), "not Python's form");
            }
        }
    }
    assert!(out.iter().all(|b| (0x20..0x7f).contains(b)), "emitted JSON is not printable ASCII");
    let back = json::parse(&out);
    assert!(back.is_ok(), "emitted JSON does not parse: {back:?}");
    if let Ok(back) = back {
        assert_eq!(back.range(), 0..out.len(), "no whitespace around emitted JSON");
        assert!(same_json(v, back), "re-parsed structure differs");
        assert_eq!(emit_checked(back), out, "emitting is idempotent");
    }
    if v.kind() == Kind::Object
        && let Some(d) = DeliveryBody::from_publish(b"agent.\xe9", v)
    {
        let mut body = Vec::with_capacity(d.emitted_len());
        assert!(d.emit(&mut body).is_ok());
        assert_eq!(body.len(), d.emitted_len());
        check_delivery_body(&body);
    }
    // The publish path's copy-only form of the delivery body is what `emit` writes.
    if let Ok((whole, [bus, headers, message])) = json::parse_picking(data, &[b"bus", b"headers", b"message"])
        && whole.kind() == Kind::Object
        && let (Some(bus), Some(headers), Some(message)) = (bus, headers, message)
    {
        let d = DeliveryBody { sender: b"agent.a", bus, headers, message };
        if let Some(pieces) = d.verbatim_pieces() {
            let mut body = Vec::new();
            assert!(d.emit(&mut body).is_ok());
            assert_eq!(pieces.concat(), body, "verbatim pieces differ from the emitted body");
        }
    }
}
