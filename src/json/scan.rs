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
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use core::fmt;
use core::ops::Range;

use super::MAX_DEPTH;

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

/// Why a JSON string could not be turned into latin-1 bytes ([`JsonStr::to_latin1`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latin1Error {
    /// The string contains a character above U+00FF: it can never equal or prefix a frame.
    NotLatin1,
    /// The decoded string does not fit in the scratch buffer.
    TooLong,
}

impl fmt::Display for Latin1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotLatin1 => "string has a character above U+00FF",
            Self::TooLong => "string too long for the buffer",
        })
    }
}

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
    let mut v = Validator { s: input, pos: 0 };
    v.skip_ws();
    let start = v.pos;
    let kind = v.value(0)?;
    let end = v.pos;
    v.skip_ws();
    if v.pos != input.len() {
        return Err(v.err(JsonErrorKind::TrailingData));
    }
    let raw = input.get(start..end).ok_or(JsonError {
        kind: JsonErrorKind::UnexpectedEnd,
        pos: end,
    })?;
    Ok(Value {
        raw,
        offset: start,
        kind,
    })
}

struct Validator<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Validator<'_> {
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            kind,
            pos: self.pos,
        }
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
            Some(b'-') if self.s.get(self.pos + 1) == Some(&b'I') => {
                self.literal(b"-Infinity", Kind::Number)
            }
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
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Kind::Object);
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            self.skip_ws();
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Kind::Object);
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Kind, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1; // '['
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Kind::Array);
        }
        loop {
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Kind::Array);
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    /// At the opening quote; leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<(), JsonError> {
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'u') => {
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
                Some(_) => self.pos += 1,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` — Python's `NUMBER_RE`.
    fn number(&mut self) -> Result<Kind, JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(_) => return Err(self.err(JsonErrorKind::BadNumber)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits()?;
        }
        Ok(Kind::Number)
    }

    /// One or more ASCII digits.
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

// ---------------------------------------------------------------------------------------------
// Navigation over validated bytes. These helpers trust the validator and return `None` instead of
// panicking if that trust were ever broken.

fn skip_ws(s: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = s.get(pos) {
        pos += 1;
    }
    pos
}

/// `pos` at an opening quote: returns (position after the closing quote, has escapes).
fn string_end(s: &[u8], pos: usize) -> Option<(usize, bool)> {
    let mut i = pos + 1;
    let mut escapes = false;
    loop {
        match *s.get(i)? {
            b'"' => return Some((i + 1, escapes)),
            b'\\' => {
                escapes = true;
                i += 2; // the escaped byte is never a quote that ends the string
            }
            _ => i += 1,
        }
    }
}

/// `pos` at `{` or `[`: returns the position after the matching closer.
fn container_end(s: &[u8], pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = pos;
    loop {
        match *s.get(i)? {
            b'"' => {
                i = string_end(s, i)?.0;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// `pos` at the first byte of a value: its kind and end position.
fn scan_value(s: &[u8], pos: usize) -> Option<(Kind, usize)> {
    let first = *s.get(pos)?;
    let (kind, len) = match first {
        b'{' => return Some((Kind::Object, container_end(s, pos)?)),
        b'[' => return Some((Kind::Array, container_end(s, pos)?)),
        b'"' => return Some((Kind::String, string_end(s, pos)?.0)),
        b't' => (Kind::Bool, 4),
        b'f' => (Kind::Bool, 5),
        b'n' => (Kind::Null, 4),
        b'N' => (Kind::Number, 3),
        b'I' => (Kind::Number, 8),
        b'-' if s.get(pos + 1) == Some(&b'I') => (Kind::Number, 9),
        b'-' | b'0'..=b'9' => {
            let mut i = pos + 1;
            while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = s.get(i) {
                i += 1;
            }
            return Some((Kind::Number, i));
        }
        _ => return None,
    };
    let end = pos + len;
    (end <= s.len()).then_some((kind, end))
}

// ---------------------------------------------------------------------------------------------

/// A borrowed view of one validated JSON value. `Copy`; obtained only from [`parse`] or from
/// navigating another `Value`, so it always covers well-formed JSON.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    raw: &'a [u8],
    offset: usize,
    kind: Kind,
}

impl<'a> Value<'a> {
    /// The JSON type of this value.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The exact input bytes of this value (no surrounding whitespace).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Where [`raw`](Self::raw) lies in the document given to [`parse`].
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.raw.len()
    }

    /// The value of member `key` (compared as latin-1, see [`JsonStr::eq_latin1`]) if this is an
    /// object that has it; with duplicate keys the **last** one wins, as in Python. O(object size).
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        let mut found = None;
        for (k, v) in self.members() {
            if k.eq_latin1(key) {
                found = Some(v);
            }
        }
        found
    }

    /// Iterates the members of an object in input order (duplicates included); empty if this is
    /// not an object.
    pub fn members(&self) -> Members<'a> {
        Members {
            raw: self.raw,
            offset: self.offset,
            pos: if self.kind == Kind::Object {
                1
            } else {
                self.raw.len()
            },
        }
    }

    /// Iterates the items of an array; empty if this is not an array.
    pub fn items(&self) -> Items<'a> {
        Items {
            raw: self.raw,
            offset: self.offset,
            pos: if self.kind == Kind::Array {
                1
            } else {
                self.raw.len()
            },
        }
    }

    /// This value as a string view, if it is a string.
    pub fn as_str(&self) -> Option<JsonStr<'a>> {
        if self.kind != Kind::String {
            return None;
        }
        let inner = self.raw.get(1..self.raw.len().checked_sub(1)?)?;
        Some(JsonStr {
            raw: inner,
            escapes: inner.contains(&b'\\'),
        })
    }

    /// `Some(true/false)` if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match (self.kind, self.raw.first()) {
            (Kind::Bool, Some(b't')) => Some(true),
            (Kind::Bool, _) => Some(false),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        self.kind == Kind::Null
    }

    /// This value as a number (raw text + kind), if it is one.
    pub fn as_number(&self) -> Option<Number<'a>> {
        if self.kind != Kind::Number {
            return None;
        }
        let kind = match self.raw {
            [b'N', ..] => NumberKind::NaN,
            [b'I', ..] => NumberKind::Infinity,
            [b'-', b'I', ..] => NumberKind::NegInfinity,
            r if r.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) => NumberKind::Float,
            _ => NumberKind::Integer,
        };
        Some(Number {
            raw: self.raw,
            kind,
        })
    }
}

/// Iterator over `(key, value)` members of an object ([`Value::members`]).
#[derive(Clone, Debug)]
pub struct Members<'a> {
    raw: &'a [u8],
    offset: usize,
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (JsonStr<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.raw;
        let mut p = skip_ws(s, self.pos);
        if s.get(p) == Some(&b',') {
            p = skip_ws(s, p + 1);
        }
        if s.get(p) != Some(&b'"') {
            self.pos = s.len();
            return None;
        }
        let (key_end, escapes) = string_end(s, p)?;
        let key = JsonStr {
            raw: s.get(p + 1..key_end.checked_sub(1)?)?,
            escapes,
        };
        p = skip_ws(s, key_end);
        if s.get(p) != Some(&b':') {
            self.pos = s.len();
            return None;
        }
        p = skip_ws(s, p + 1);
        let (kind, end) = scan_value(s, p)?;
        self.pos = end;
        Some((
            key,
            Value {
                raw: s.get(p..end)?,
                offset: self.offset + p,
                kind,
            },
        ))
    }
}

/// Iterator over the items of an array ([`Value::items`]).
#[derive(Clone, Debug)]
pub struct Items<'a> {
    raw: &'a [u8],
    offset: usize,
    pos: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.raw;
        let mut p = skip_ws(s, self.pos);
        if s.get(p) == Some(&b',') {
            p = skip_ws(s, p + 1);
        }
        match s.get(p) {
            None | Some(b']') => {
                self.pos = s.len();
                return None;
            }
            Some(_) => {}
        }
        let (kind, end) = scan_value(s, p)?;
        self.pos = end;
        Some(Value {
            raw: s.get(p..end)?,
            offset: self.offset + p,
            kind,
        })
    }
}

/// A borrowed JSON string (the bytes between the quotes, escapes not yet decoded).
///
/// Characters are latin-1 bytes or escapes; [`chars`](Self::chars) yields decoded code points.
#[derive(Clone, Copy, Debug)]
pub struct JsonStr<'a> {
    raw: &'a [u8],
    escapes: bool,
}

impl<'a> JsonStr<'a> {
    /// The bytes between the quotes, escapes undecoded.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the string contains at least one backslash escape.
    pub fn has_escapes(&self) -> bool {
        self.escapes
    }

    /// Zero-copy fast path: if the string has no escapes its raw bytes *are* its latin-1 encoding.
    pub fn as_plain(&self) -> Option<&'a [u8]> {
        (!self.escapes).then_some(self.raw)
    }

    /// The decoded characters as code points (latin-1 bytes, escapes decoded, `\uD83D\uDE00`-style
    /// pairs combined, lone surrogates yielded as they are — as Python does).
    pub fn chars(&self) -> StrChars<'a> {
        StrChars {
            raw: self.raw,
            pos: 0,
        }
    }

    /// Whether the decoded string equals `bytes` read as latin-1 (each byte one character). A
    /// character above U+00FF never equals a byte (VIP.md §3.8). No allocation.
    pub fn eq_latin1(&self, bytes: &[u8]) -> bool {
        if !self.escapes {
            // Length first: never hand glibc's memcmp an empty slice (it may be dangling, and the
            // AVX-512 variant pays a ~100 ns fault-suppression assist for that; see
            // `vip::subscriptions`).
            return self.raw.len() == bytes.len() && (bytes.is_empty() || self.raw == bytes);
        }
        let mut rest = bytes.iter();
        for c in self.chars() {
            match rest.next() {
                Some(&b) if u32::from(b) == c => {}
                _ => return false,
            }
        }
        rest.next().is_none()
    }

    /// Number of latin-1 bytes of the decoded string, or `None` if it has a character > U+00FF.
    pub fn latin1_len(&self) -> Option<usize> {
        if !self.escapes {
            return Some(self.raw.len());
        }
        let mut n = 0usize;
        for c in self.chars() {
            if c > 0xff {
                return None;
            }
            n += 1;
        }
        Some(n)
    }

    /// The decoded string as latin-1 bytes: the raw bytes themselves when there are no escapes,
    /// else decoded into `scratch`. This is how a prefix/bus taken from JSON is turned back into
    /// frame bytes (VIP.md §3.8).
    pub fn to_latin1<'s>(&self, scratch: &'s mut [u8]) -> Result<&'s [u8], Latin1Error>
    where
        'a: 's,
    {
        if !self.escapes {
            return Ok(self.raw);
        }
        let mut n = 0usize;
        for c in self.chars() {
            let b = u8::try_from(c).map_err(|_| Latin1Error::NotLatin1)?;
            *scratch.get_mut(n).ok_or(Latin1Error::TooLong)? = b;
            n += 1;
        }
        scratch.get(..n).ok_or(Latin1Error::TooLong)
    }
}

/// Iterator over the decoded code points of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct StrChars<'a> {
    raw: &'a [u8],
    pos: usize,
}

fn hex4(s: &[u8], pos: usize) -> Option<u32> {
    let mut v = 0u32;
    for i in 0..4 {
        let d = char::from(*s.get(pos + i)?).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

impl Iterator for StrChars<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let s = self.raw;
        let b = *s.get(self.pos)?;
        if b != b'\\' {
            self.pos += 1;
            return Some(u32::from(b));
        }
        let e = *s.get(self.pos + 1)?;
        self.pos += 2;
        let c = match e {
            b'"' => 0x22,
            b'\\' => 0x5c,
            b'/' => 0x2f,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => 0x0a,
            b'r' => 0x0d,
            b't' => 0x09,
            b'u' => {
                let Some(hi) = hex4(s, self.pos) else {
                    self.pos = s.len();
                    return None;
                };
                self.pos += 4;
                if (0xd800..=0xdbff).contains(&hi)
                    && s.get(self.pos) == Some(&b'\\')
                    && s.get(self.pos + 1) == Some(&b'u')
                    && let Some(lo) = hex4(s, self.pos + 2)
                    && (0xdc00..=0xdfff).contains(&lo)
                {
                    self.pos += 6;
                    return Some(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                }
                hi
            }
            _ => {
                self.pos = s.len();
                return None;
            }
        };
        Some(c)
    }
}

/// The flavour of a JSON number, as Python's `json.loads` would type it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberKind {
    /// No fraction and no exponent: a Python `int` of any size.
    Integer,
    /// Has a fraction or an exponent: a Python `float`.
    Float,
    /// `NaN`.
    NaN,
    /// `Infinity`.
    Infinity,
    /// `-Infinity`.
    NegInfinity,
}

/// A JSON number: its raw text (exact, any length) and its [`NumberKind`].
#[derive(Clone, Copy, Debug)]
pub struct Number<'a> {
    raw: &'a [u8],
    kind: NumberKind,
}

impl<'a> Number<'a> {
    /// The exact input text (e.g. `12345678901234567890`, `1E3`, `NaN`).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Integer, float or one of the non-finite tokens.
    pub fn kind(&self) -> NumberKind {
        self.kind
    }

    /// The value if it is an [`NumberKind::Integer`] that fits in a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        if self.kind != NumberKind::Integer {
            return None;
        }
        core::str::from_utf8(self.raw).ok()?.parse().ok()
    }

    /// The value as the nearest `f64` (what Python's `float()` gives; huge values become ±inf).
    pub fn as_f64(&self) -> f64 {
        match self.kind {
            NumberKind::NaN => f64::NAN,
            NumberKind::Infinity => f64::INFINITY,
            NumberKind::NegInfinity => f64::NEG_INFINITY,
            NumberKind::Integer | NumberKind::Float => core::str::from_utf8(self.raw)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(f64::NAN),
        }
    }
}
