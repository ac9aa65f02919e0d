//! [`Value`]: a borrowed view of one validated JSON value, and the iterators over an object's
//! members ([`Members`]) and an array's items ([`Items`]).
//!
//! Contract: a `Value` is obtained only from [`parse`](super::parse) or by navigating another
//! `Value`, so it always covers well-formed JSON; navigation re-scans the validated bytes
//! without re-validating (the helpers here trust the validator and return `None` instead of
//! panicking if that trust were ever broken). Nothing is allocated. With duplicate keys
//! [`Value::get`] returns the last (VIP.md §3.8, as Python).

use core::ops::Range;

use super::Kind;
use super::number::{Number, NumberKind};
use super::string::JsonStr;

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
        i += crate::json::ascii::unquoted_len(s.get(i..)?);
        // unquoted_len stops only at a quote or a backslash (or the end: `?`).
        if *s.get(i)? == b'"' {
            return Some((i + 1, escapes));
        }
        escapes = true;
        i += 2; // the escaped byte is never a quote that ends the string
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

/// A borrowed view of one validated JSON value. `Copy`; obtained only from
/// [`parse`](super::parse) or from navigating another `Value`, so it always covers well-formed
/// JSON.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    pub(super) raw: &'a [u8],
    pub(super) offset: usize,
    pub(super) kind: Kind,
    /// The validator saw that [`raw`](Self::raw) is already what Python's `json.dumps` writes
    /// for it ([`Value::in_python_form`]); false when not known (values found by navigation).
    pub(super) python_form: bool,
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

    /// True when [`raw`](Self::raw) is known to be byte for byte what Python's `json.dumps`
    /// writes for this value (separators `", "`/`": "` and no other whitespace, printable-ASCII
    /// strings with only short escapes, integers other than `-0`, floats already in `repr`
    /// form, see [`parse_picking`](super::parse_picking)): emitting it is copying it. Only the
    /// values [`parse_picking`](super::parse_picking) returns can be; false says "not known".
    pub fn in_python_form(&self) -> bool {
        self.python_form
    }

    /// Where [`raw`](Self::raw) lies in the document given to [`parse`](super::parse).
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
        Members { raw: self.raw, offset: self.offset, pos: if self.kind == Kind::Object { 1 } else { self.raw.len() } }
    }

    /// Iterates the items of an array; empty if this is not an array.
    pub fn items(&self) -> Items<'a> {
        Items { raw: self.raw, offset: self.offset, pos: if self.kind == Kind::Array { 1 } else { self.raw.len() } }
    }

    /// This value as a string view, if it is a string.
    pub fn as_str(&self) -> Option<JsonStr<'a>> {
        if self.kind != Kind::String {
            return None;
        }
        let inner = self.raw.get(1..self.raw.len().checked_sub(1)?)?;
        Some(JsonStr { raw: inner, escapes: inner.contains(&b'\\') })
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
        Some(Number { raw: self.raw, kind })
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
        let key = JsonStr { raw: s.get(p + 1..key_end.checked_sub(1)?)?, escapes };
        p = skip_ws(s, key_end);
        if s.get(p) != Some(&b':') {
            self.pos = s.len();
            return None;
        }
        p = skip_ws(s, p + 1);
        let (kind, end) = scan_value(s, p)?;
        self.pos = end;
        Some((key, Value { raw: s.get(p..end)?, offset: self.offset + p, kind, python_form: false }))
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
        Some(Value { raw: s.get(p..end)?, offset: self.offset + p, kind, python_form: false })
    }
}
