//! [`Number`]: a JSON number's exact text and its [`NumberKind`] (integer, float, or one of
//! Python's non-finite tokens `NaN`, `Infinity`, `-Infinity`, VIP.md §3.8).
//!
//! Contract: the text is kept exactly (integers of any size survive); conversion happens only
//! on request, as Python's `int`/`float` would do it.

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
    pub(super) raw: &'a [u8],
    pub(super) kind: NumberKind,
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
            NumberKind::Integer | NumberKind::Float => {
                core::str::from_utf8(self.raw).ok().and_then(|t| t.parse().ok()).unwrap_or(f64::NAN)
            }
        }
    }
}
