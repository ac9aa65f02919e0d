//! Python-compatible JSON output (VIP.md §3.8, §7.6) into a caller-provided sink.
//!
//! Output is what CPython's `json.dumps(obj)` writes with its defaults (`ensure_ascii=True`,
//! `allow_nan=True`, separators `", "` / `": "`) for the object that `json.loads` would have built
//! from the input, so that the delivery body of a `publish` (VIP.md §7.6, §15 E3.4) is byte-exact:
//!
//! * strings: printable ASCII (0x20–0x7E) as is, `"`/`\` and `\b \f \n \r \t` as short escapes,
//!   everything else as lowercase `\u00XX`/`\uXXXX`, code points above U+FFFF as a UTF-16
//!   surrogate pair; raw input bytes ≥ 0x80 are latin-1 characters and come out as `\u0080`–`\u00ff`;
//! * integers: copied exactly (any length); `-0` becomes `0` (Python `int`);
//! * floats: re-formatted like Python's `repr(float)` (shortest round-trip digits, `1.0`, `1e+16`,
//!   `1e-05`), values that overflow to infinity become `Infinity`/`-Infinity`;
//! * `NaN`, `Infinity`, `-Infinity`: passed through;
//! * objects and arrays: members/items in input order, `{}`/`[]` when empty. Duplicate keys are
//!   kept (see the deviation note in [`crate::json`]).
//!
//! Nothing here allocates: the sink decides where bytes go ([`Vec<u8>`] with capacity reserved
//! from [`emitted_len`]/`vip::pubsub::DeliveryBody::emitted_len`, a fixed [`SliceWriter`], or a
//! [`LenCounter`] that only measures). Recursion is bounded by the depth the scanner accepted
//! ([`MAX_DEPTH`](super::MAX_DEPTH)).

use core::fmt::{self, Write as _};

use super::scan::{JsonStr, Kind, Number, NumberKind, Value};

/// The sink ran out of space. Nothing after the failing write was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkFull;

impl fmt::Display for SinkFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer full")
    }
}

impl std::error::Error for SinkFull {}

/// Where emitted bytes go.
pub trait ByteSink {
    /// Appends `bytes`, or fails without a partial write if they do not fit.
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull>;
}

/// Appends; never fails. Reserve [`emitted_len`] bytes first and it never reallocates either.
impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// A sink that only counts bytes (the "measure" pass).
#[derive(Clone, Copy, Debug, Default)]
pub struct LenCounter {
    len: usize,
}

impl LenCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes "written" so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been counted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl ByteSink for LenCounter {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.len = self.len.saturating_add(bytes.len());
        Ok(())
    }
}

/// A sink over a fixed byte slice (e.g. a connection's tx space); fails with [`SinkFull`].
#[derive(Debug)]
pub struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> SliceWriter<'b> {
    /// Writes from the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Bytes that still fit.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Forget what was written after the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Formatted text (`write!`) into the slice, failing like [`ByteSink::put`] when it is full.
impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

impl ByteSink for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        let end = self.len.checked_add(bytes.len()).ok_or(SinkFull)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(SinkFull)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

/// Writes `v` re-serialised canonically (Python separators, ASCII only; see the module doc).
pub fn emit_value<S: ByteSink + ?Sized>(out: &mut S, v: Value<'_>) -> Result<(), SinkFull> {
    if v.in_python_form() {
        // The validator saw these bytes are what the match below would write (`parse_picking`).
        return out.put(v.raw());
    }
    match v.kind() {
        Kind::Null => out.put(b"null"),
        Kind::Bool => out.put(if v.as_bool() == Some(true) { b"true" } else { b"false" }),
        Kind::Number => match v.as_number() {
            Some(n) => emit_number(out, n),
            None => out.put(v.raw()),
        },
        Kind::String => match v.as_str() {
            Some(s) => emit_json_str(out, s),
            None => out.put(v.raw()),
        },
        Kind::Array => {
            out.put(b"[")?;
            for (i, item) in v.items().enumerate() {
                if i > 0 {
                    out.put(b", ")?;
                }
                emit_value(out, item)?;
            }
            out.put(b"]")
        }
        Kind::Object => {
            out.put(b"{")?;
            for (i, (key, val)) in v.members().enumerate() {
                if i > 0 {
                    out.put(b", ")?;
                }
                emit_json_str(out, key)?;
                out.put(b": ")?;
                emit_value(out, val)?;
            }
            out.put(b"}")
        }
    }
}

/// Exact number of bytes [`emit_value`] writes for `v`.
pub fn emitted_len(v: Value<'_>) -> usize {
    let mut c = LenCounter::new();
    // A LenCounter never fails.
    let _ = emit_value(&mut c, v);
    c.len()
}

/// Writes a JSON string value (with quotes), ASCII-escaped like `json.dumps`.
pub fn emit_json_str<S: ByteSink + ?Sized>(out: &mut S, s: JsonStr<'_>) -> Result<(), SinkFull> {
    out.put(b"\"")?;
    match s.as_plain() {
        Some(bytes) => put_latin1_escaped(out, bytes)?,
        None => {
            let mut buf = CharBuf::new();
            for c in s.chars() {
                if buf.len + 12 > buf.bytes.len() {
                    out.put(buf.as_slice())?;
                    buf.len = 0;
                }
                buf.push_char(c);
            }
            out.put(buf.as_slice())?;
        }
    }
    out.put(b"\"")
}

/// Writes `bytes`, read as a latin-1 Python `str` (e.g. an identity or topic frame), as a JSON
/// string (with quotes), ASCII-escaped: byte 0xE9 becomes `\u00e9`.
pub fn emit_latin1_str<S: ByteSink + ?Sized>(out: &mut S, bytes: &[u8]) -> Result<(), SinkFull> {
    out.put(b"\"")?;
    put_latin1_escaped(out, bytes)?;
    out.put(b"\"")
}

/// Writes `n` in decimal.
pub fn emit_u64<S: ByteSink + ?Sized>(out: &mut S, mut n: u64) -> Result<(), SinkFull> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b"0123456789".get((n % 10) as usize).copied().unwrap_or(b'0');
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.put(digits.get(i..).unwrap_or_default())
}

/// Writes `s` (Unicode text) as a JSON string (with quotes), ASCII-escaped exactly as Python's
/// `json.dumps` writes a `str` (code points above U+FFFF as a surrogate pair). The one escaper
/// of the crate: the frames' latin-1 strings ([`emit_latin1_str`]), the scanner's strings
/// ([`emit_json_str`]) and Rust text all go through the same per-character escape.
pub fn emit_str<S: ByteSink + ?Sized>(out: &mut S, s: &str) -> Result<(), SinkFull> {
    out.put(b"\"")?;
    let mut buf = CharBuf::new();
    for c in s.chars() {
        if buf.len + 12 > buf.bytes.len() {
            out.put(buf.as_slice())?;
            buf.len = 0;
        }
        buf.push_char(u32::from(c));
    }
    out.put(buf.as_slice())?;
    out.put(b"\"")
}

/// Appends `s` to `out` as [`emit_str`] writes it (for text built as a `String`: files, reports).
pub fn push_str(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    let _ = emit_str(&mut bytes, s); // a Vec never refuses
    // Only ASCII was written.
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// Writes a number in Python's canonical form (see the module doc).
pub fn emit_number<S: ByteSink + ?Sized>(out: &mut S, n: Number<'_>) -> Result<(), SinkFull> {
    match n.kind() {
        NumberKind::NaN | NumberKind::Infinity | NumberKind::NegInfinity => out.put(n.raw()),
        NumberKind::Integer if n.raw() == b"-0" => out.put(b"0"),
        NumberKind::Integer => out.put(n.raw()),
        NumberKind::Float => {
            let x = n.as_f64();
            if x.is_nan() {
                out.put(n.raw()) // cannot happen for validated text
            } else if x == f64::INFINITY {
                out.put(b"Infinity")
            } else if x == f64::NEG_INFINITY {
                out.put(b"-Infinity")
            } else {
                put_python_float_repr(out, x)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Writes latin-1 bytes as string contents, copying runs that need no escaping in one `put`.
fn put_latin1_escaped<S: ByteSink + ?Sized>(out: &mut S, bytes: &[u8]) -> Result<(), SinkFull> {
    let mut rest = bytes;
    while let Some(i) = Some(super::ascii::printable_len(rest)).filter(|&i| i < rest.len()) {
        let (run, tail) = rest.split_at(i);
        out.put(run)?;
        let Some((&b, after)) = tail.split_first() else {
            break;
        };
        let mut buf = CharBuf::new();
        buf.push_char(u32::from(b));
        out.put(buf.as_slice())?;
        rest = after;
    }
    out.put(rest)
}

/// A small stack buffer for escaped characters (12 bytes is the longest: a surrogate pair).
struct CharBuf {
    bytes: [u8; 64],
    len: usize,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl CharBuf {
    fn new() -> Self {
        Self { bytes: [0; 64], len: 0 }
    }

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_u_escape(&mut self, unit: u32) {
        self.push(b'\\');
        self.push(b'u');
        for shift in [12u32, 8, 4, 0] {
            let nibble = (unit >> shift) & 0xf;
            self.push(HEX.get(nibble as usize).copied().unwrap_or(b'0'));
        }
    }

    /// One character, escaped exactly like CPython's `c_encode_basestring_ascii`.
    fn push_char(&mut self, c: u32) {
        match c {
            0x22 => self.push_two(b'"'),
            0x5c => self.push_two(b'\\'),
            0x08 => self.push_two(b'b'),
            0x0c => self.push_two(b'f'),
            0x0a => self.push_two(b'n'),
            0x0d => self.push_two(b'r'),
            0x09 => self.push_two(b't'),
            0x20..=0x7e => self.push(u8::try_from(c).unwrap_or(b'?')),
            0..=0xffff => self.push_u_escape(c),
            _ => {
                let v = c - 0x10000;
                self.push_u_escape(0xd800 | ((v >> 10) & 0x3ff));
                self.push_u_escape(0xdc00 | (v & 0x3ff));
            }
        }
    }

    fn push_two(&mut self, b: u8) {
        self.push(b'\\');
        self.push(b);
    }
}

/// `fmt::Write` into a fixed stack buffer (for `{:e}` of an `f64`, at most ~25 bytes).
struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

const ZEROS: &[u8; 32] = b"00000000000000000000000000000000";

fn put_zeros<S: ByteSink + ?Sized>(out: &mut S, mut n: usize) -> Result<(), SinkFull> {
    while n > 0 {
        let k = n.min(ZEROS.len());
        out.put(ZEROS.get(..k).unwrap_or_default())?;
        n -= k;
    }
    Ok(())
}

/// Python's `repr(float)` for a finite `x`, laid out by CPython's rule (`format_float_short`,
/// mode `'r'`): scientific when the decimal exponent is < -4 or ≥ 16, else positional with at
/// least `.0`.
///
/// Digits: CPython (David Gay's `dtoa` mode 0) yields the shortest digit string that round-trips
/// and, when two such strings are equally close to `x`, the even one. Rust's shortest `{:e}` gives
/// the right *length* n but breaks such ties upwards (`87837073113192.125` → `…192.13`, Python
/// `…192.12`), so the digits are taken from Rust's exact formatting to n significant digits,
/// which rounds half to even. The nearest n-digit decimal always round-trips when some n-digit
/// decimal does, so this is exactly Gay's answer.
fn put_python_float_repr<S: ByteSink + ?Sized>(out: &mut S, x: f64) -> Result<(), SinkFull> {
    let mut shortest = StackText { bytes: [0; 40], len: 0 };
    if write!(shortest, "{:e}", x.abs()).is_err() {
        return Err(SinkFull); // cannot happen: an f64 in {:e} is at most 25 bytes
    }
    let short = shortest.bytes.get(..shortest.len).unwrap_or_default();
    let n_digits = short.iter().take_while(|&&b| b != b'e').filter(|b| b.is_ascii_digit()).count();
    let mut text = StackText { bytes: [0; 40], len: 0 };
    if write!(text, "{:.*e}", n_digits.saturating_sub(1), x.abs()).is_err() {
        return Err(SinkFull); // cannot happen: at most 17 digits
    }
    let t = text.bytes.get(..text.len).unwrap_or_default();
    let e_at = t.iter().position(|&b| b == b'e').unwrap_or(t.len());
    let (mantissa, exp_part) = t.split_at(e_at);
    // Digits without the '.'.
    let mut digits = [0u8; 24];
    let mut n = 0usize;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if let Some(slot) = digits.get_mut(n) {
            *slot = b;
            n += 1;
        }
    }
    // Never needed for a shortest length, but keep the invariant "no trailing zeros" explicit.
    while n > 1 && digits.get(n - 1) == Some(&b'0') {
        n -= 1;
    }
    let digits = digits.get(..n).unwrap_or_default();
    let exp: i32 =
        exp_part.get(1..).and_then(|e| core::str::from_utf8(e).ok()).and_then(|e| e.parse().ok()).unwrap_or(0);
    let decpt = exp + 1; // value = 0.DIGITS × 10^decpt

    if x.is_sign_negative() {
        out.put(b"-")?;
    }
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(digits.len().min(1));
        out.put(first)?;
        if !rest.is_empty() {
            out.put(b".")?;
            out.put(rest)?;
        }
        let e = decpt - 1;
        out.put(if e < 0 { b"e-" } else { b"e+" })?;
        let mag = e.unsigned_abs();
        let mut buf = StackText { bytes: [0; 40], len: 0 };
        if write!(buf, "{mag:02}").is_err() {
            return Err(SinkFull);
        }
        out.put(buf.bytes.get(..buf.len).unwrap_or_default())
    } else if decpt <= 0 {
        out.put(b"0.")?;
        put_zeros(out, decpt.unsigned_abs() as usize)?;
        out.put(digits)
    } else {
        let point = decpt.unsigned_abs() as usize;
        if point >= digits.len() {
            out.put(digits)?;
            put_zeros(out, point - digits.len())?;
            out.put(b".0")
        } else {
            let (int_part, frac) = digits.split_at(point);
            out.put(int_part)?;
            out.put(b".")?;
            out.put(frac)
        }
    }
}
