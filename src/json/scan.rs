//! Validating JSON scanner and borrowed views over the validated bytes (VIP.md §3.8).
//!
//! [`parse`] checks a whole document once, in one pass, with recursion bounded by
//! [`MAX_DEPTH`], and returns a [`Value`] for its top-level value. A `Value` is a
//! `Copy` view (`&[u8]`, offset, [`Kind`]) that can only be obtained from validated bytes, so the
//! navigation methods ([`Value::get`], [`Value::members`], [`Value::items`], [`JsonStr::chars`], …)
//! re-scan without re-validating: each step is a tight byte loop, nothing is allocated, and on
//! (impossible) inconsistent input they end early instead of panicking.
//!
//! Cost: `parse` is O(n); `members`/`items` are O(size of the container) for a full iteration;
//! `get` is one full iteration (the last duplicate wins, VIP.md §3.8).
//!
//! # Layout
//!
//! This file holds the validator ([`parse`], [`Kind`], [`JsonError`]); `value` the [`Value`] view
//! and its iterators; `string` [`JsonStr`] and its decoding; `number` [`Number`].

mod number;
mod string;
mod value;

use core::fmt;

use super::MAX_DEPTH;
pub use number::{Number, NumberKind};
pub use string::{JsonStr, Latin1Error, StrChars};
pub use value::{Items, Members, Value};

/// Why a document was rejected by [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// The input ended inside a value. Every strict prefix of a document whose top-level value is a
    /// container or a string fails with this kind (and so does the empty input).
    UnexpectedEnd,
    /// A byte that cannot start or continue the expected token (including raw bytes ≥ 0x80 outside
    /// strings, missing `,`/`:`, trailing commas, non-string keys).
    UnexpectedByte,
    /// A backslash escape other than `\" \\ \/ \b \f \n \r \t \uXXXX`.
    BadEscape,
    /// A raw control character (byte < 0x20) inside a string (Python's `strict=True`).
    ControlInString,
    /// A malformed number: `-` without digits, `.` or exponent without digits.
    BadNumber,
    /// Arrays/objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something other than whitespace after the top-level value.
    TrailingData,
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnexpectedEnd => "unexpected end of input",
            Self::UnexpectedByte => "unexpected byte",
            Self::BadEscape => "invalid escape in string",
            Self::ControlInString => "control character in string",
            Self::BadNumber => "malformed number",
            Self::TooDeep => "nesting too deep",
            Self::TrailingData => "data after the JSON value",
        })
    }
}

/// A rejected document: what was wrong and the byte offset where it was detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// What was wrong.
    pub kind: JsonErrorKind,
    /// Byte offset in the input where the problem was detected (= input length for `UnexpectedEnd`).
    pub pos: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON: {} at byte {}", self.kind, self.pos)
    }
}

impl std::error::Error for JsonError {}

/// The JSON type of a [`Value`]. `NaN`, `Infinity` and `-Infinity` are [`Kind::Number`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// An integer, a float, `NaN`, `Infinity` or `-Infinity` (see [`NumberKind`]).
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// Validates `input` as one JSON document (Python dialect, VIP.md §3.8) and returns a view of its
/// top-level value. Leading and trailing whitespace is allowed. Never panics; no allocation.
pub fn parse(input: &[u8]) -> Result<Value<'_>, JsonError> {
    parse_picking(input, &[]).map(|(v, [])| v)
}

/// [`parse`], and in the same pass, if the document is an object, the values of its members
/// named `keys` (compared as [`Value::get`] does, the last duplicate winning): what
/// `Value::get` for each key would return, without scanning the document again.
///
/// The same pass notes whether each returned value (the document and the picked members) is
/// already in the form Python's `json.dumps` writes ([`Value::in_python_form`]), so that the
/// `publish` path copies such a value instead of re-emitting it. The test is conservative — a
/// value it passes is exactly what [`emit::emit_value`](super::emit::emit_value) writes (a
/// property test and the fuzz target check it); a value it fails is emitted as before:
/// * whitespace: none, except one space after each `,` and `:` inside containers;
/// * strings (keys too): bytes 0x20–0x7E, escapes only `\"` `\\` `\b` `\f` `\n` `\r` `\t`
///   (`\u` and `\/` are re-emitted, as are raw bytes 0x7F and above);
/// * integers: anything but `-0`; `NaN`, `Infinity`, `-Infinity`, `true`, `false`, `null`;
/// * floats: no exponent, at most 15 significant digits, no trailing zero in the fraction but
///   for `.0`, and at least 0.0001 unless zero (what `repr` writes without an exponent:
///   15 significant digits or fewer are recovered exactly from the nearest double, so its
///   shortest round-trip digits are these).
pub fn parse_picking<'a, const N: usize>(
    input: &'a [u8],
    keys: &[&[u8]; N],
) -> Result<(Value<'a>, [Option<Value<'a>>; N]), JsonError> {
    let mut picked = [None; N];
    let mut v = Validator { s: input, pos: 0, keys, picked: &mut picked, recast: 0 };
    v.skip_ws();
    let start = v.pos;
    let kind = v.value(0)?;
    let end = v.pos;
    v.skip_ws();
    if v.pos != input.len() {
        return Err(v.err(JsonErrorKind::TrailingData));
    }
    let raw = input.get(start..end).ok_or(JsonError { kind: JsonErrorKind::UnexpectedEnd, pos: end })?;
    let value = |&(from, to, kind, python_form): &(usize, usize, Kind, bool)| {
        input.get(from..to).map(|raw| Value { raw, offset: from, kind, python_form })
    };
    let python_form = v.recast == 0;
    Ok((Value { raw, offset: start, kind, python_form }, picked.map(|p| p.as_ref().and_then(value))))
}

struct Validator<'a, 'k> {
    s: &'a [u8],
    pos: usize,
    /// Top-level members to pick ([`parse_picking`]), and where their values lie.
    keys: &'k [&'k [u8]],
    /// Where each picked value lies, its kind, and whether it is in Python's form.
    picked: &'k mut [Option<(usize, usize, Kind, bool)>],
    /// How many places so far Python's `json.dumps` would write differently ([`parse_picking`]):
    /// a value is in Python's form when this did not move while it was scanned.
    recast: u32,
}

impl Validator<'_, '_> {
    /// A member of the top-level object: its key (quotes included) at `key`, its value at
    /// `value`, of `kind`. Recorded if it is one of the keys to pick. `escapes`: the key has a
    /// backslash (what [`Self::string`] saw).
    #[inline]
    fn pick(&mut self, key: (usize, usize), escapes: bool, value: (usize, usize), kind: Kind, python_form: bool) {
        let Some(raw) = self.s.get(key.0 + 1..key.1.saturating_sub(1)) else { return };
        let name = JsonStr { raw, escapes };
        for (want, slot) in self.keys.iter().zip(self.picked.iter_mut()) {
            if name.eq_latin1(want) {
                *slot = Some((value.0, value.1, kind, python_form));
            }
        }
    }

    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError { kind, pos: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// The error for "the byte at `pos` is not what was expected" (end of input or wrong byte).
    fn unexpected(&self) -> JsonError {
        match self.peek() {
            None => self.err(JsonErrorKind::UnexpectedEnd),
            Some(_) => self.err(JsonErrorKind::UnexpectedByte),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Whitespace inside a container where Python writes none.
    #[inline]
    fn skip_ws_none(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.recast += 1;
            self.skip_ws();
        }
    }

    /// Whitespace after a `,` or `:`, where Python writes one space.
    #[inline]
    fn skip_ws_one(&mut self) {
        if self.peek() == Some(b' ') {
            self.pos += 1;
            if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
                self.recast += 1;
                self.skip_ws();
            }
        } else {
            self.recast += 1;
            self.skip_ws();
        }
    }

    /// `depth` = number of containers enclosing this value.
    fn value(&mut self, depth: usize) -> Result<Kind, JsonError> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| Kind::String),
            Some(b't') => self.literal(b"true", Kind::Bool),
            Some(b'f') => self.literal(b"false", Kind::Bool),
            Some(b'n') => self.literal(b"null", Kind::Null),
            Some(b'N') => self.literal(b"NaN", Kind::Number),
            Some(b'I') => self.literal(b"Infinity", Kind::Number),
            Some(b'-') if self.s.get(self.pos + 1) == Some(&b'I') => self.literal(b"-Infinity", Kind::Number),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err(JsonErrorKind::UnexpectedByte)),
        }
    }

    fn literal(&mut self, text: &[u8], kind: Kind) -> Result<Kind, JsonError> {
        for &want in text {
            match self.peek() {
                Some(b) if b == want => self.pos += 1,
                _ => return Err(self.unexpected()),
            }
        }
        Ok(kind)
    }

    fn object(&mut self, depth: usize) -> Result<Kind, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1; // '{'
        self.skip_ws_none();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Kind::Object);
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let key = self.pos;
            let escapes = self.string()?;
            let key = (key, self.pos);
            self.skip_ws_none();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            self.skip_ws_one();
            let (value, recast) = (self.pos, self.recast);
            let kind = self.value(depth)?;
            if depth == 1 && !self.keys.is_empty() {
                self.pick(key, escapes, (value, self.pos), kind, self.recast == recast);
            }
            if self.next_item(b'}')? {
                return Ok(Kind::Object);
            }
        }
    }

    /// After a member or item: `,` (another follows: false) or `close` (the container ends:
    /// true), with the whitespace around them.
    fn next_item(&mut self, close: u8) -> Result<bool, JsonError> {
        self.skip_ws_none();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws_one();
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Kind, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1; // '['
        self.skip_ws_none();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Kind::Array);
        }
        loop {
            self.value(depth)?;
            if self.next_item(b']')? {
                return Ok(Kind::Array);
            }
        }
    }

    /// At the opening quote; leaves `pos` after the closing quote. True if it has an escape.
    fn string(&mut self) -> Result<bool, JsonError> {
        self.pos += 1;
        let mut escapes = false;
        loop {
            self.pos += super::ascii::printable_len(self.s.get(self.pos..).unwrap_or_default());
            match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escapes);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    escapes = true;
                    match self.peek() {
                        None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'/') => {
                            self.recast += 1; // Python writes a plain `/`
                            self.pos += 1;
                        }
                        Some(b'u') => {
                            self.recast += 1; // Python writes the character, or `\u` in lowercase
                            self.pos += 1;
                            for _ in 0..4 {
                                match self.peek() {
                                    None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                                    Some(h) if h.is_ascii_hexdigit() => self.pos += 1,
                                    Some(_) => return Err(self.err(JsonErrorKind::BadEscape)),
                                }
                            }
                        }
                        Some(_) => return Err(self.err(JsonErrorKind::BadEscape)),
                    }
                }
                Some(0..=0x1f) => return Err(self.err(JsonErrorKind::ControlInString)),
                Some(_) => {
                    // 0x7F and above: printable_len stops only at these, quotes, backslashes
                    // and control bytes.
                    self.recast += 1; // Python writes `\u007f`–`\u00ff`
                    self.pos += 1;
                }
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` — Python's `NUMBER_RE`.
    fn number(&mut self) -> Result<Kind, JsonError> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(_) => return Err(self.err(JsonErrorKind::BadNumber)),
        }
        let (int_digits, fraction) = (self.pos - int, self.pos + 1);
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
            float = true;
        }
        let fraction = self.s.get(fraction..self.pos).filter(|_| float);
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits()?;
            self.recast += 1; // Python's repr chooses its own exponent
        } else if let Some(fraction) = fraction {
            let zero_int = int_digits == 1 && self.s.get(int) == Some(&b'0');
            if !float_in_repr_form(zero_int, int_digits, fraction) {
                self.recast += 1;
            }
        } else if negative && int_digits == 1 && self.s.get(int) == Some(&b'0') {
            self.recast += 1; // `-0` is the int 0
        }
        Ok(Kind::Number)
    }

    /// One or more ASCII digits (advancing `pos` past them).
    fn digits(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'0'..=b'9') => self.pos += 1,
            None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(_) => return Err(self.err(JsonErrorKind::BadNumber)),
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        Ok(())
    }
}

/// Whether a float literal without exponent — `int_digits` digits before the point (`zero_int`:
/// just `0`), then `fraction` — is what Python's `repr` writes for its value ([`parse_picking`]).
fn float_in_repr_form(zero_int: bool, int_digits: usize, fraction: &[u8]) -> bool {
    if fraction.len() > 1 && fraction.last() == Some(&b'0') {
        return false; // `1.50` is written `1.5` (only `.0` keeps a trailing zero)
    }
    if zero_int {
        let zeros = fraction.iter().take_while(|&&d| d == b'0').count();
        // 0.0 is `0.0`; below 0.0001 repr uses an exponent (`1e-05`).
        zeros == fraction.len() || (zeros <= 3 && fraction.len() - zeros <= 15)
    } else {
        let significant = int_digits + if fraction == b"0" { 0 } else { fraction.len() };
        significant <= 15
    }
}

#[cfg(test)]
mod picking_tests {
    use super::*;

    fn picked(doc: &str) -> [Option<String>; 3] {
        let (_, p) = parse_picking(doc.as_bytes(), &[b"bus", b"headers", b"message"]).unwrap();
        p.map(|v| v.map(|v| String::from_utf8(v.raw().to_vec()).unwrap()))
    }

    #[test]
    fn top_level_members_are_picked_as_get_would() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(picked(r#"{"bus":"","headers":{},"message":"x"}"#), [s(r#""""#), s("{}"), s(r#""x""#)]);
        // The last duplicate wins; nested members of the same name are not top-level; escaped keys
        // compare decoded; extra keys are ignored.
        let doc = r#" {"message": 1, "headers": {"bus": 2}, "b\u0075s": [3], "x": 0, "message" : null } "#;
        assert_eq!(picked(doc), [s("[3]"), s(r#"{"bus": 2}"#), s("null")]);
        assert_eq!(picked(r#"[{"bus": 1}]"#), [None, None, None], "not an object");
        assert_eq!(picked("{}"), [None, None, None]);
        assert!(parse_picking(br#"{"bus": 1"#, &[b"bus"]).is_err(), "still validates");
    }
}
