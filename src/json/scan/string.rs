//! [`JsonStr`]: a borrowed JSON string, escapes undecoded, and its decoded code points
//! ([`StrChars`]); [`Latin1Error`] when it cannot become frame bytes.
//!
//! Contract (VIP.md §3.8): a string's characters are compared with and converted to frame bytes
//! as latin-1, one byte per character; a character above U+00FF never equals a byte and cannot
//! be converted. `\uD83D\uDE00`-style surrogate pairs are combined and lone surrogates yielded as
//! they are, as Python does. A string without escapes is its own latin-1 encoding (zero copy).

use core::fmt;

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

/// A borrowed JSON string (the bytes between the quotes, escapes not yet decoded).
///
/// Characters are latin-1 bytes or escapes; [`chars`](Self::chars) yields decoded code points.
#[derive(Clone, Copy, Debug)]
pub struct JsonStr<'a> {
    pub(super) raw: &'a [u8],
    pub(super) escapes: bool,
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
        StrChars { raw: self.raw, pos: 0 }
    }

    /// Whether the decoded string equals `bytes` read as latin-1 (each byte one character). A
    /// character above U+00FF never equals a byte (VIP.md §3.8). No allocation.
    pub fn eq_latin1(&self, bytes: &[u8]) -> bool {
        if !self.escapes {
            // The first byte before memcmp: keys of one length (`headers`, `message`) differ
            // there. (`crate::bytes::eq` here measured +2% instructions per publish: inlined
            // into the validator's object loop, it costs more than the memcmp it saves.)
            return self.raw.len() == bytes.len()
                && (bytes.is_empty() || (self.raw.first() == bytes.first() && self.raw == bytes));
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
