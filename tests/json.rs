//! Tests for `viprouter::json` (VIP.md §3.8, §7.6, §15 E3).

use viprouter::json::emit::{emit_json_str, emit_latin1_str, emit_value, emitted_len};
use viprouter::json::{
    JsonErrorKind, Kind, Latin1Error, LenCounter, MAX_DEPTH, NumberKind, SinkFull, SliceWriter, parse,
};
use viprouter::vip::pubsub::DeliveryBody;

/// Deterministic xorshift64* so failures reproduce without extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// [`canon`] without the copy of a value the validator found in Python's form: `input` inside an
/// array whose `[ ` is not Python's, so the top value is not in Python's form and its item is
/// reached by navigation (which never says "in Python's form"), hence emitted piece by piece.
fn canon_emitted(input: &[u8]) -> Vec<u8> {
    let mut wrapped = b"[ ".to_vec();
    wrapped.extend_from_slice(input);
    wrapped.push(b']');
    let v = parse(&wrapped).unwrap();
    assert!(!v.in_python_form());
    let item = v.items().next().unwrap();
    assert!(!item.in_python_form());
    let mut out = Vec::new();
    emit_value(&mut out, item).unwrap();
    assert_eq!(out.len(), emitted_len(item));
    out
}

fn canon(input: &[u8]) -> Vec<u8> {
    let v = parse(input).unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(input)));
    let mut out = Vec::with_capacity(emitted_len(v));
    emit_value(&mut out, v).unwrap();
    assert_eq!(out.len(), emitted_len(v), "emitted_len must be exact");
    out
}

#[test]
fn valid_documents() {
    let table: &[(&[u8], Kind)] = &[
        (b"{}", Kind::Object),
        (b" \t\r\n[ ] \n", Kind::Array),
        (b"\"\"", Kind::String),
        (b"0", Kind::Number),
        (b"-0", Kind::Number),
        (b"-12.5e+3", Kind::Number),
        (b"1E-2", Kind::Number),
        (b"123456789012345678901234567890123456789", Kind::Number),
        (b"NaN", Kind::Number),
        (b"Infinity", Kind::Number),
        (b"-Infinity", Kind::Number),
        (b"true", Kind::Bool),
        (b"false", Kind::Bool),
        (b"null", Kind::Null),
        (b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00E9\\ud800\"", Kind::String),
        (b"\"caf\xc3\xa9 \x7f\x80\xff\"", Kind::String),
        (b"{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", Kind::Object),
        (b"[NaN,-Infinity,Infinity,1e999]", Kind::Array),
    ];
    for (input, kind) in table {
        let v = parse(input).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(input)));
        assert_eq!(v.kind(), *kind, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn invalid_documents() {
    use JsonErrorKind::*;
    let table: &[(&[u8], JsonErrorKind, usize)] = &[
        (b"", UnexpectedEnd, 0),
        (b"   ", UnexpectedEnd, 3),
        (b"{", UnexpectedEnd, 1),
        (b"{\"a\"}", UnexpectedByte, 4),
        (b"{\"a\":1,}", UnexpectedByte, 7),
        (b"[1,]", UnexpectedByte, 3),
        (b"[1 2]", UnexpectedByte, 3),
        (b"{1:2}", UnexpectedByte, 1),
        (b"{'a':1}", UnexpectedByte, 1),
        (b"01", TrailingData, 1),
        (b"[01]", UnexpectedByte, 2),
        (b"1.", UnexpectedEnd, 2),
        (b"1.x", BadNumber, 2),
        (b"1e", UnexpectedEnd, 2),
        (b"1e+x", BadNumber, 3),
        (b"-", UnexpectedEnd, 1),
        (b"-x", BadNumber, 1),
        (b"-NaN", BadNumber, 1),
        (b"+1", UnexpectedByte, 0),
        (b".5", UnexpectedByte, 0),
        (b"nan", UnexpectedByte, 1), // read as `null`
        (b"infinity", UnexpectedByte, 0),
        (b"Infinit", UnexpectedEnd, 7),
        (b"tru", UnexpectedEnd, 3),
        (b"truE", UnexpectedByte, 3),
        (b"true false", TrailingData, 5),
        (b"\"a", UnexpectedEnd, 2),
        (b"\"\\x\"", BadEscape, 2),
        (b"\"\\u12g4\"", BadEscape, 5),
        (b"\"a\nb\"", ControlInString, 2),
        (b"\"\x00\"", ControlInString, 1),
        (b"\xef\xbb\xbf{}", UnexpectedByte, 0), // a UTF-8 BOM is latin-1 text, not whitespace
        (b"[\xe9]", UnexpectedByte, 1),
        (b"{} {}", TrailingData, 3),
        (b"\x0b1", UnexpectedByte, 0), // vertical tab is not JSON whitespace
    ];
    for &(input, kind, pos) in table {
        let e = parse(input).expect_err(&String::from_utf8_lossy(input));
        assert_eq!((e.kind, e.pos), (kind, pos), "{:?}", String::from_utf8_lossy(input));
        assert!(!e.to_string().is_empty());
    }
}

const E3_PUBLISH: &[u8] = br#"{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": [1, 2.5, "\u00e9"]}}"#;
const E3_DELIVERY: &[u8] = br#"{"sender": "agent.a", "bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": [1, 2.5, "\u00e9"]}}"#;
const E3_SUBSCRIBE: &[u8] = br#"{"prefix": "devices/campus", "bus": "", "all_platforms": false}"#;

#[test]
fn every_prefix_of_a_valid_document_fails_cleanly() {
    let docs: &[&[u8]] = &[
        E3_PUBLISH,
        E3_SUBSCRIBE,
        b"[NaN, -Infinity, Infinity, -1.5e-3, true, false, null, \"\\ud83d\\ude00\", {}]",
        b"\"abc\\u00e9\"",
        b" { \"a\" : [ 1 , 2 ] } ",
    ];
    for doc in docs {
        assert!(parse(doc).is_ok());
        let trimmed_end = doc.len() - doc.iter().rev().take_while(|b| **b == b' ').count();
        for cut in 0..trimmed_end {
            let e = parse(&doc[..cut]).expect_err("prefix must fail");
            assert_eq!(e.kind, JsonErrorKind::UnexpectedEnd, "cut {cut} of {:?}", String::from_utf8_lossy(doc));
            assert_eq!(e.pos, cut);
        }
    }
}

#[test]
fn nesting_depth_is_bounded() {
    for (open, close) in [(b'[', b']'), (b'{', b'}')] {
        let build = |depth: usize| -> Vec<u8> {
            let mut v = Vec::new();
            for _ in 0..depth {
                v.push(open);
                if open == b'{' {
                    v.extend_from_slice(b"\"k\":");
                }
            }
            v.extend_from_slice(b"1");
            v.extend(std::iter::repeat_n(close, depth));
            v
        };
        let ok = build(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        assert_eq!(canon(&ok).len(), emitted_len(parse(&ok).unwrap()));
        let e = parse(&build(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::TooDeep);
    }
    // A hostile 1 MB of '[' is rejected after MAX_DEPTH bytes, without deep recursion.
    let e = parse(&vec![b'['; 1 << 20]).unwrap_err();
    assert_eq!((e.kind, e.pos), (JsonErrorKind::TooDeep, MAX_DEPTH));
}

#[test]
fn e3_delivery_body_is_byte_exact() {
    // VIP.md §15 E3.3 -> E3.4
    assert_eq!(E3_PUBLISH.len(), 133);
    let body = parse(E3_PUBLISH).unwrap();
    let d = DeliveryBody::from_publish(b"agent.a", body).unwrap();
    assert_eq!(d.emitted_len(), 154);
    let mut out = Vec::with_capacity(d.emitted_len());
    let cap = out.capacity();
    d.emit(&mut out).unwrap();
    assert_eq!(out, E3_DELIVERY);
    assert_eq!(out.capacity(), cap, "no reallocation after reserving emitted_len");

    // Same into a fixed buffer; one byte short fails.
    let mut buf = [0u8; 154];
    let mut w = SliceWriter::new(&mut buf);
    d.emit(&mut w).unwrap();
    assert_eq!(w.written(), E3_DELIVERY);
    let mut small = [0u8; 153];
    assert_eq!(d.emit(&mut SliceWriter::new(&mut small)), Err(SinkFull));
}

#[test]
fn delivery_body_drops_extra_keys_and_uses_last_duplicate() {
    let body = parse(br#"{"extra":1,"message":0,"bus":"b","headers":{},"message":[NaN],"x":{}}"#).unwrap();
    let d = DeliveryBody::from_publish(b"a\xe9", body).unwrap();
    let mut out = Vec::new();
    d.emit(&mut out).unwrap();
    assert_eq!(out, br#"{"sender": "a\u00e9", "bus": "b", "headers": {}, "message": [NaN]}"#);
    // Missing key or not an object -> None (VIP.md §7.6 "count 0").
    for bad in [&br#"{"bus":"","headers":{}}"#[..], b"[1]", b"\"x\"", br#"{"bus":"","message":1}"#] {
        assert!(DeliveryBody::from_publish(b"a", parse(bad).unwrap()).is_none());
    }
}

/// The publish path copies the delivery body piece by piece when `DeliveryBody::verbatim_pieces`
/// says it may: those pieces must be exactly what `emit` writes, and anything needing a change
/// (a sender to escape, a value not in Python's form) must take `emit`.
#[test]
fn verbatim_pieces_are_what_emit_writes() {
    let cases: [(&[u8], &[u8], bool); 8] = [
        (b"agent.a", br#"{"bus": "", "headers": {}, "message": "x"}"#, true),
        (b"pub", br#"{"bus":"","headers":{},"message":"xxxx"}"#, true),
        (b"a", br#"{"message": [1, 2.5, "q\"t"], "headers": {"k": null}, "bus": "b", "x": 0}"#, true),
        (b"a\xe9", br#"{"bus": "", "headers": {}, "message": 1}"#, false),
        (b"a\"b", br#"{"bus": "", "headers": {}, "message": 1}"#, false),
        (b"a", br#"{"bus": "", "headers": {}, "message": [1,2]}"#, false),
        (b"a", br#"{"bus": "", "headers": {}, "message": "\u00e9"}"#, false),
        (b"a", br#"{"bus": "", "headers": {}, "message": 1e5}"#, false),
    ];
    for (sender, body, copied) in cases {
        let d = DeliveryBody::parse(sender, body).unwrap();
        let mut want = Vec::new();
        d.emit(&mut want).unwrap();
        match d.verbatim_pieces() {
            Some(pieces) => {
                assert!(copied, "{}", body.escape_ascii());
                assert_eq!(pieces.concat(), want, "{}", body.escape_ascii());
            }
            None => assert!(!copied, "{}", body.escape_ascii()),
        }
    }
}

#[test]
fn e3_subscribe_body_navigation() {
    let v = parse(E3_SUBSCRIBE).unwrap();
    let prefix = v.get(b"prefix").unwrap().as_str().unwrap();
    assert!(prefix.eq_latin1(b"devices/campus"));
    assert_eq!(prefix.as_plain(), Some(&b"devices/campus"[..]));
    assert!(v.get(b"bus").unwrap().as_str().unwrap().eq_latin1(b""));
    assert_eq!(v.get(b"all_platforms").unwrap().as_bool(), Some(false));
    assert!(v.get(b"missing").is_none());
    let keys: Vec<_> = v.members().map(|(k, _)| k.raw().to_vec()).collect();
    assert_eq!(keys, [&b"prefix"[..], b"bus", b"all_platforms"]);
    let r = v.get(b"bus").unwrap().range();
    assert_eq!(&E3_SUBSCRIBE[r], b"\"\"");
}

#[test]
fn lookup_semantics() {
    let v = parse(b" {\"a\": 1, \"b\": [true, null, \"x\"], \"a\": 2, \"\\u0061\": 3 } ").unwrap();
    // last duplicate wins, keys compared after decoding
    assert_eq!(v.get(b"a").unwrap().raw(), b"3");
    let items: Vec<_> = v.get(b"b").unwrap().items().collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_bool(), Some(true));
    assert!(items[1].is_null());
    assert!(items[2].as_str().unwrap().eq_latin1(b"x"));
    // navigation on the wrong kind is empty, not an error
    assert_eq!(items[0].members().count(), 0);
    assert_eq!(v.items().count(), 0);
    assert!(items[0].as_str().is_none() && items[0].as_number().is_none());
    assert_eq!(parse(b"[]").unwrap().items().count(), 0);
    assert_eq!(parse(b"{ }").unwrap().members().count(), 0);
}

#[test]
fn numbers_are_raw_text() {
    let v = parse(b"[123456789012345678901234567890, -0, 7, 1.5, 1e3, NaN, Infinity, -Infinity]").unwrap();
    let n: Vec<_> = v.items().map(|i| i.as_number().unwrap()).collect();
    assert_eq!(n[0].raw(), b"123456789012345678901234567890");
    assert_eq!(n[0].kind(), NumberKind::Integer);
    assert_eq!(n[0].as_u64(), None);
    assert_eq!(n[2].as_u64(), Some(7));
    assert_eq!(n[3].kind(), NumberKind::Float);
    assert_eq!(n[4].kind(), NumberKind::Float);
    assert_eq!(n[4].as_f64(), 1000.0);
    assert_eq!(n[5].kind(), NumberKind::NaN);
    assert!(n[5].as_f64().is_nan());
    assert_eq!(n[6].kind(), NumberKind::Infinity);
    assert_eq!(n[7].kind(), NumberKind::NegInfinity);
}

#[test]
fn strings_latin1_semantics() {
    let v = parse(b"[\"caf\\u00e9\", \"caf\xe9\", \"\\u20ac\", \"\\ud83d\\ude00\", \"\\ud800\", \"a\\/b\"]").unwrap();
    let s: Vec<_> = v.items().map(|i| i.as_str().unwrap()).collect();
    // escaped and raw latin-1 are the same string
    assert!(s[0].eq_latin1(b"caf\xe9") && s[1].eq_latin1(b"caf\xe9"));
    assert!(!s[0].eq_latin1(b"caf") && !s[0].eq_latin1(b"caf\xe9\xe9"));
    // a char > U+00FF never equals a byte
    assert!(!s[2].eq_latin1(b"\xac") && !s[2].eq_latin1(b"\x20") && !s[2].eq_latin1(b"\x20\xac"));
    assert_eq!(s[2].latin1_len(), None);
    let mut scratch = [0u8; 8];
    assert_eq!(s[2].to_latin1(&mut scratch), Err(Latin1Error::NotLatin1));
    assert_eq!(s[0].to_latin1(&mut scratch).unwrap(), b"caf\xe9");
    assert_eq!(s[0].to_latin1(&mut [0u8; 3]), Err(Latin1Error::TooLong));
    assert_eq!(s[1].to_latin1(&mut [0u8; 0]).unwrap(), b"caf\xe9"); // plain: zero-copy
    assert_eq!(s[3].chars().collect::<Vec<_>>(), [0x1f600]);
    assert_eq!(s[4].chars().collect::<Vec<_>>(), [0xd800]);
    assert_eq!(s[5].chars().collect::<Vec<_>>(), [0x61, 0x2f, 0x62]);
    assert_eq!(s[5].latin1_len(), Some(3));
}

#[test]
fn emitter_escapes_like_python() {
    let mut out = Vec::new();
    emit_latin1_str(&mut out, b"a\"\\\x00\x1f\x7f\x80\xe9\xff\n\t\x08\x0c\r/").unwrap();
    assert_eq!(out, br#""a\"\\\u0000\u001f\u007f\u0080\u00e9\u00ff\n\t\b\f\r/""#);
    let v = parse(b"\"\\ud83d\\ude00\\u20ac\\uDBFF\\uDFFF\\udc00\"").unwrap();
    let mut out = Vec::new();
    emit_json_str(&mut out, v.as_str().unwrap()).unwrap();
    assert_eq!(out, br#""\ud83d\ude00\u20ac\udbff\udfff\udc00""#);
    let mut c = LenCounter::new();
    emit_json_str(&mut c, v.as_str().unwrap()).unwrap();
    assert_eq!(c.len(), out.len());
}

/// Generated with CPython 3.11: `json.dumps(json.loads(INPUT.decode('latin-1')))`.
const PYTHON_GOLDEN: &[(&[u8], &str)] = &[
    (b"{\"a\":1,\"b\" : [1,2]}", r#"{"a": 1, "b": [1, 2]}"#),
    (b"{\"x\": \"caf\xc3\xa9\"}", r#"{"x": "caf\u00c3\u00a9"}"#),
    (br#""\u00e9\ud83d\ude00\ud800x\udc00""#, r#""\u00e9\ud83d\ude00\ud800x\udc00""#),
    (
        b"[1.0, 1e3, 1E+2, 1.5e16, 1e16, 1e15, 9999999999999998.0, 0.0001, 0.00001, 1e-7, -0.0, -0, 0, 1e400, -1e400, 1e-400, -1e-400]",
        "[1.0, 1000.0, 100.0, 1.5e+16, 1e+16, 1000000000000000.0, 9999999999999998.0, 0.0001, 1e-05, 1e-07, -0.0, 0, 0, Infinity, -Infinity, 0.0, -0.0]",
    ),
    (
        b"[123456789012345678901234567890, -5, 2.5, 1795550813.8764837066011, 0.1, 1e22, 1.7976931348623157e308, 5e-324, 123.456e-10]",
        "[123456789012345678901234567890, -5, 2.5, 1795550813.8764837, 0.1, 1e+22, 1.7976931348623157e+308, 5e-324, 1.23456e-08]",
    ),
    (b"[NaN, Infinity, -Infinity]", "[NaN, Infinity, -Infinity]"),
    (
        b"{\"k\\u0000\\u001f\\u007f\\u0080\\\"\\\\\\/\\b\\f\\n\\r\\t\": \"\x7f\x80\xff\"}",
        r#"{"k\u0000\u001f\u007f\u0080\"\\/\b\f\n\r\t": "\u007f\u0080\u00ff"}"#,
    ),
    (b" { } ", "{}"),
    (b"[[], {}, [[]], {\"a\": {}}]", r#"[[], {}, [[]], {"a": {}}]"#),
    (b"[true, false, null]", "[true, false, null]"),
    (br#""\uD83D\uDE00""#, r#""\ud83d\ude00""#),
    (br#""\ud83d\u0041""#, r#""\ud83dA""#),
    (b"{\"\xe9\": \"\\u20ac\"}", r#"{"\u00e9": "\u20ac"}"#),
    (b"[1E400, 12e-1, 100e0, 0e0, -0e5, 3.14159265358979323846]", "[Infinity, 1.2, 100.0, 0.0, -0.0, 3.141592653589793]"),
    (b"[1e-5, 1.5e-5, 123456789.123, 1e+16, 1.2345678901234567e+19]", "[1e-05, 1.5e-05, 123456789.123, 1e+16, 1.2345678901234567e+19]"),
    // A tie between two shortest candidates: Python rounds half to even.
    (
        b"[87837073113192.125, 0.3, 2.675, 1e23, 9007199254740993, 9007199254740993.0, 5e-324, 2.2250738585072014e-308]",
        "[87837073113192.12, 0.3, 2.675, 1e+23, 9007199254740993, 9007199254740992.0, 5e-324, 2.2250738585072014e-308]",
    ),
];

#[test]
fn emitter_matches_python_golden() {
    for (input, want) in PYTHON_GOLDEN {
        assert_eq!(String::from_utf8(canon(input)).unwrap(), *want, "input {:?}", String::from_utf8_lossy(input));
    }
}

// ---------------------------------------------------------------------------------------------
// Random documents: generator, round trip, fuzz, and a live differential test against CPython.

fn gen_ws(r: &mut Rng, out: &mut Vec<u8>) {
    if r.below(4) == 0 {
        for _ in 0..r.below(3) {
            out.push([b' ', b'\t', b'\n', b'\r'][r.below(4)]);
        }
    }
}

fn gen_string(r: &mut Rng, out: &mut Vec<u8>) {
    out.push(b'"');
    for _ in 0..r.below(8) {
        match r.below(10) {
            0 => out.push(0x80 + r.below(128) as u8), // raw latin-1
            1 => out.extend_from_slice(format!("\\u{:04x}", r.below(0x10000)).as_bytes()),
            2 => out.extend_from_slice(b"\\ud83d\\ude00"),
            3 => out.extend_from_slice([&b"\\n"[..], b"\\\"", b"\\\\", b"\\/", b"\\t", b"\\b"][r.below(6)]),
            _ => out.push(b"abc/XYZ 09_-.~"[r.below(14)]),
        }
    }
    out.push(b'"');
}

fn gen_number(r: &mut Rng, out: &mut Vec<u8>) {
    let forms: [&str; 10] =
        ["0", "-0", "7", "-12", "123456789012345678901234567890", "2.5", "-0.001", "1e300", "6.02E+23", "1.5e-7"];
    match r.below(14) {
        10 => out.extend_from_slice(b"NaN"),
        11 => out.extend_from_slice(b"Infinity"),
        12 => out.extend_from_slice(b"-Infinity"),
        13 => out.extend_from_slice(format!("{:?}", f64::from_bits(r.next()).abs() % 1e20).as_bytes()),
        i => out.extend_from_slice(forms[i].as_bytes()),
    }
}

fn gen_value(r: &mut Rng, out: &mut Vec<u8>, depth: usize) {
    gen_ws(r, out);
    let pick = if depth >= 5 { r.below(5) } else { r.below(7) };
    match pick {
        0 => gen_string(r, out),
        1 => gen_number(r, out),
        2 => out.extend_from_slice(b"true"),
        3 => out.extend_from_slice(b"null"),
        4 => out.extend_from_slice(b"false"),
        5 => {
            out.push(b'[');
            let n = r.below(4);
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                gen_value(r, out, depth + 1);
            }
            gen_ws(r, out);
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            let n = r.below(4);
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                gen_ws(r, out);
                gen_string(r, out);
                gen_ws(r, out);
                out.push(b':');
                gen_value(r, out, depth + 1);
            }
            gen_ws(r, out);
            out.push(b'}');
        }
    }
    gen_ws(r, out);
}

fn gen_doc(r: &mut Rng) -> Vec<u8> {
    let mut d = Vec::new();
    gen_value(r, &mut d, 0);
    d
}

#[test]
fn python_form_is_recognised_exactly_where_it_holds() {
    let yes: &[&[u8]] = &[
        b"{}",
        b"[]",
        b"{\"a\": 1, \"b\": [1.5, \"x\", null, true, false], \"c\": {\"d\": -2}}",
        b"\"tab\\t quote\\\" backslash\\\\ / ~\"",
        b"[0.0, -0.0, 1.0, 10.0, 0.0001, 0.00012, 123456789012345.0, 0.123456789012345, 71.5, -3.25]",
        b"[NaN, Infinity, -Infinity, 123456789012345678901234567890, -7]",
        b"{\"a\": 1, \"a\": 2}",
    ];
    let no: &[&[u8]] = &[
        b"{\"a\":1}",
        b"{\"a\" : 1}",
        b"{\"a\":  1}",
        b"[1,2]",
        b"[ 1]",
        b"[1 ]",
        b"{ }",
        b"[1,\t2]",
        b"\"\\/\"",
        b"\"\\u0041\"",
        b"\"caf\xe9\"",
        b"\"\x7f\"",
        b"-0",
        b"1e5",
        b"1.50",
        b"0.00001",
        b"0.10000000000000001",
        b"1234567890123456.7",
        b"[1.0E2]",
    ];
    for d in yes {
        let v = parse(d).unwrap();
        assert!(v.in_python_form(), "{:?}", String::from_utf8_lossy(d));
        assert_eq!(canon_emitted(d), *d, "{:?}", String::from_utf8_lossy(d));
    }
    for d in no {
        assert!(!parse(d).unwrap().in_python_form(), "{:?}", String::from_utf8_lossy(d));
        assert_ne!(canon_emitted(d), *d, "{:?} is Python's form after all", String::from_utf8_lossy(d));
    }
    // Python's form, not recognised (every `\u` escape is re-emitted): emitted, never wrong.
    // So is a float of 16 significant digits that happens to be its own shortest form.
    for d in [&b"\"\\u00e9\""[..], b"\"\\u0000\"", b"1234567890123456.0", b"0.1234567890123456"] {
        assert!(!parse(d).unwrap().in_python_form());
        assert_eq!(canon_emitted(d), d);
    }
    // The members `parse_picking` returns carry their own answer.
    let body = b"{\"bus\":\"\", \"headers\": {\"Date\": \"x\"}, \"message\": [1,2]}";
    let (top, [bus, headers, message]) =
        viprouter::json::parse_picking(body, &[b"bus", b"headers", b"message"]).unwrap();
    assert!(!top.in_python_form());
    assert!(bus.unwrap().in_python_form() && headers.unwrap().in_python_form());
    assert!(!message.unwrap().in_python_form());
}

/// Whatever the validator calls Python's form, emitting it piece by piece writes it unchanged:
/// random documents in every formatting, and their canonical forms (mostly Python's form).
#[test]
fn python_form_copies_are_what_the_emitter_writes() {
    let mut r = Rng(0x5eed_1234_abcd_0002);
    let (mut recognised, mut canonical) = (0, 0);
    for _ in 0..3000 {
        let doc = gen_doc(&mut r);
        let once = canon_emitted(&doc);
        assert_eq!(canon(&doc), once, "the copy and the emission agree");
        for d in [&doc, &once] {
            let v = parse(d).unwrap();
            if v.in_python_form() {
                assert_eq!(canon_emitted(d), v.raw(), "{:?}", String::from_utf8_lossy(d));
                recognised += 1;
            }
        }
        canonical += 1;
    }
    // Not vacuous: many canonical forms (no `\u` escape, floats in repr form) are recognised.
    assert!(recognised > canonical / 4, "{recognised} of {canonical}");
}

#[test]
fn random_documents_round_trip() {
    let mut r = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let doc = gen_doc(&mut r);
        let once = canon(&doc);
        assert!(once.is_ascii(), "output must be ASCII: {:?}", String::from_utf8_lossy(&once));
        assert!(!once.windows(2).any(|w| w == b",\"" || w == b":\""), "Python separators");
        assert_eq!(canon(&once), once, "canonical form is a fixed point");
    }
}

#[test]
fn fuzz_random_bytes_and_mutations_never_panic() {
    let mut r = Rng(0xdead_beef_cafe_f00d);
    let alphabet = b"{}[]\",:\\u0123456789abcdefEe+-.NaIfinity tnrl \x00\x1f\x7f\x80\xff";
    let mut buf = Vec::new();
    for round in 0..20_000 {
        buf.clear();
        if round % 2 == 0 {
            for _ in 0..r.below(40) {
                buf.push(if r.below(3) == 0 { r.next() as u8 } else { alphabet[r.below(alphabet.len())] });
            }
        } else {
            buf = gen_doc(&mut r);
            for _ in 0..=r.below(3) {
                if buf.is_empty() {
                    break;
                }
                let i = r.below(buf.len());
                match r.below(3) {
                    0 => buf[i] = alphabet[r.below(alphabet.len())],
                    1 => {
                        buf.remove(i);
                    }
                    _ => buf.insert(i, alphabet[r.below(alphabet.len())]),
                }
            }
        }
        match parse(&buf) {
            Ok(v) => {
                // everything reachable must work on whatever was accepted
                let mut out = Vec::new();
                emit_value(&mut out, v).unwrap();
                assert!(out.is_ascii());
                assert!(parse(&out).is_ok(), "emitted output reparses");
                let _ = v.get(b"a");
                for (k, x) in v.members() {
                    let _ = (k.chars().count(), k.latin1_len(), x.as_number().map(|n| n.as_f64()));
                }
            }
            Err(e) => assert!(e.pos <= buf.len()),
        }
    }
}

/// Differential test against the real `json` module, when `python3` is on PATH (skipped loudly
/// otherwise; the embedded [`PYTHON_GOLDEN`] table covers CI machines without Python).
#[test]
fn python_differential_when_available() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = "import sys, json\n\
        data = sys.stdin.buffer.read().split(b'\\x00\\x01\\x02')[:-1]\n\
        sys.stdout.write('\\n'.join(json.dumps(json.loads(d.decode('latin-1'))) for d in data))\n";
    let mut r = Rng(0x0123_4567_89ab_cdef);
    let mut docs: Vec<Vec<u8>> = (0..2000).map(|_| gen_doc(&mut r)).collect();
    // Float formatting: random bit patterns written in several textual forms.
    for _ in 0..300 {
        let mut d = String::from("[");
        for i in 0..10 {
            let x = f64::from_bits(r.next());
            let x = if x.is_finite() { x } else { 1.0 };
            let text = match i % 4 {
                0 => format!("{x:e}"),
                1 => format!("{x:?}"),
                2 => format!("{:.3}", x % 1e6),
                _ => format!("{x:.20e}"),
            };
            d.push_str(if i > 0 { ", " } else { "" });
            d.push_str(&text);
        }
        d.push(']');
        docs.push(d.into_bytes());
    }
    // Documents the validator may find in Python's form (then copied, not emitted): our own
    // output for the documents above, and floats in the forms `repr` and `{:.3}` write.
    let ours: Vec<Vec<u8>> = docs.iter().take(1000).map(|d| canon_emitted(d)).collect();
    docs.extend(ours);
    for _ in 0..300 {
        let xs: Vec<String> = (0..8)
            .map(|i| {
                let x = f64::from_bits(r.next());
                let x = if x.is_finite() { x % 1e7 } else { 0.5 };
                if i % 2 == 0 { format!("{x:?}") } else { format!("{x:.3}") }
            })
            .collect();
        docs.push(format!("{{\"message\": [{}]}}", xs.join(", ")).into_bytes());
    }
    let recognised = docs.iter().filter(|d| parse(d).unwrap().in_python_form()).count();
    assert!(recognised > docs.len() / 5, "only {recognised} of {} documents in Python's form", docs.len());
    let child = Command::new("python3").arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED python_differential_when_available: python3 not found");
        return;
    };
    {
        let mut stdin = child.stdin.take().unwrap();
        for d in &docs {
            stdin.write_all(d).unwrap();
            stdin.write_all(b"\x00\x01\x02").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), docs.len());
    let mut mismatches = 0;
    for (d, want) in docs.iter().zip(lines) {
        let got = String::from_utf8(canon(d)).unwrap();
        if got != want {
            // Only allowed difference: Python collapses duplicate keys (documented deviation).
            let parsed_equal_after_python = {
                let v = parse(d).unwrap();
                has_duplicate_keys(v)
            };
            assert!(parsed_equal_after_python, "input {:?}\n ours {got}\n py   {want}", String::from_utf8_lossy(d));
            mismatches += 1;
        }
    }
    assert!(mismatches < docs.len() / 20, "{mismatches} duplicate-key differences");
}

fn has_duplicate_keys(v: viprouter::json::Value<'_>) -> bool {
    let keys: Vec<Vec<u32>> = v.members().map(|(k, _)| k.chars().collect()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    sorted.len() != keys.len() || v.members().any(|(_, x)| has_duplicate_keys(x)) || v.items().any(has_duplicate_keys)
}

// ---------------------------------------------------------------------------------------------
// Zero allocation on the hot path: a counting allocator that only counts on the testing thread.

#[path = "common/alloc_counter.rs"]
mod alloc_counter;

#[test]
fn scanning_and_emitting_do_not_allocate() {
    let mut out = Vec::with_capacity(4096);
    let mut fixed = [0u8; 4096];
    let doc = br#"{"bus": "", "headers": {"h": 1.5e300, "x": "\ud83d\ude00\u00e9"}, "message": [NaN, -0, 0.1, {"k": [true, null]}]}"#;
    let n = alloc_counter::allocations_in(|| {
        for _ in 0..100 {
            let v = parse(doc).unwrap();
            let d = DeliveryBody::from_publish(b"agent.\xe9", v).unwrap();
            let len = d.emitted_len();
            out.clear();
            d.emit(&mut out).unwrap();
            assert_eq!(out.len(), len);
            d.emit(&mut SliceWriter::new(&mut fixed)).unwrap();
            let h = v.get(b"headers").unwrap();
            assert!(h.get(b"x").unwrap().as_str().unwrap().chars().count() == 2);
            let mut scratch = [0u8; 16];
            let _ = h.get(b"x").unwrap().as_str().unwrap().to_latin1(&mut scratch);
        }
    });
    assert_eq!(n, 0, "allocations on the hot path");
    assert!(alloc_counter::allocations_in(|| drop(vec![1u8])) >= 1, "the counter works");
}
