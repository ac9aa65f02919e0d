//! The text of VOLTTRON's JSON files (`auth.json`, `keystore`, `known_hosts`): comment
//! stripping (VIP.md §9.5), UTF-8 strings and error positions. Strings are written with
//! [`crate::json::emit::push_str`].
//!
//! Python opens these files as text (UTF-8), strips comments from `auth.json` with
//! `volttron.platform.agent.utils.strip_comments`, and parses with `json.loads`. The router's
//! scanner ([`crate::json`]) reads bytes as latin-1 (the rule for *frames*, VIP.md §3.8); for
//! files we first require valid UTF-8 and then rebuild strings from the raw bytes
//! ([`to_string`]), so a non-ASCII `user_id` comes out as Python reads it.
//!
//! `strip_comments` is a hand translation of VOLTTRON's regular expression
//! `(([\"'])(?:\\?.)*?\2)|(/\*.*?\*/)|((?:#|//).*?(?=\n|$))` (DOTALL): a `"…"` or `'…'` string
//! (backslash escapes skipped) is kept as is; `/* … */` is removed; `#` or `//` up to (not
//! including) the next newline is removed. Removal joins the text on either side, as Python's
//! `re.sub(…, '')` does. One deliberate difference: an unterminated quote is kept as an
//! ordinary character, where Python's backtracking may end it at an escaped quote; such input is
//! not valid JSON either way.

use crate::json::JsonStr;

/// Text with comments removed, plus the map back to positions in the original text.
pub(crate) struct Stripped {
    /// The text without comments.
    pub text: Vec<u8>,
    /// `(position in text, position in original)` at the start of each kept run, ascending.
    runs: Vec<(usize, usize)>,
}

impl Stripped {
    /// The original byte offset of byte `pos` of the stripped text.
    pub fn original_offset(&self, pos: usize) -> usize {
        let i = self.runs.partition_point(|&(out, _)| out <= pos);
        match i.checked_sub(1).and_then(|i| self.runs.get(i)) {
            Some(&(out, orig)) => orig + (pos - out),
            None => pos,
        }
    }
}

/// Removes `#`, `//` and `/* */` comments outside quoted strings (see the module doc).
pub(crate) fn strip_comments(src: &[u8]) -> Stripped {
    let mut out = Stripped { text: Vec::with_capacity(src.len()), runs: Vec::new() };
    let mut run_start = 0;
    let mut i = 0;
    while let Some(&c) = src.get(i) {
        let next = src.get(i + 1).copied();
        let comment_end = match (c, next) {
            (b'"' | b'\'', _) => {
                // A quoted string is kept whole if terminated; otherwise the quote is plain.
                i = string_end(src, i, c).unwrap_or(i + 1);
                continue;
            }
            (b'/', Some(b'*')) => find(src, i + 2, b"*/").map(|e| e + 2),
            (b'#', _) | (b'/', Some(b'/')) => Some(find(src, i, b"\n").unwrap_or(src.len())),
            _ => None,
        };
        match comment_end {
            Some(end) => {
                out.keep(src, run_start, i);
                i = end;
                run_start = end;
            }
            None => i += 1,
        }
    }
    out.keep(src, run_start, src.len());
    out
}

impl Stripped {
    fn keep(&mut self, src: &[u8], from: usize, to: usize) {
        if let Some(bytes) = src.get(from..to)
            && !bytes.is_empty()
        {
            self.runs.push((self.text.len(), from));
            self.text.extend_from_slice(bytes);
        }
    }
}

/// End (exclusive) of the quoted string starting at `start` with quote `q`, if terminated.
fn string_end(src: &[u8], start: usize, q: u8) -> Option<usize> {
    let mut j = start + 1;
    loop {
        match src.get(j)? {
            &b if b == q => return Some(j + 1),
            b'\\' if j + 1 < src.len() => j += 2,
            _ => j += 1,
        }
    }
}

fn find(src: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    src.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// 1-based line and column (in bytes) of byte `offset` of `text`.
pub(crate) fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// The decoded value of a JSON string from a file that is valid UTF-8: raw bytes are copied
/// (they are UTF-8), escapes are decoded; a lone surrogate escape becomes U+FFFD (Rust strings
/// cannot hold it; Python would keep it).
pub(crate) fn to_string(s: JsonStr<'_>) -> String {
    let raw = s.raw();
    if let Some(plain) = s.as_plain() {
        return String::from_utf8_lossy(plain).into_owned();
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut pos = 0usize;
    let mut utf8 = [0u8; 4];
    for c in s.chars() {
        if raw.get(pos) == Some(&b'\\') {
            let ch = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
            bytes.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
            pos += match raw.get(pos + 1) {
                Some(b'u') if c >= 0x1_0000 => 12,
                Some(b'u') => 6,
                _ => 2,
            };
        } else {
            // A raw byte: the scanner yields it as one code point < 0x100.
            if let Some(&b) = raw.get(pos) {
                bytes.push(b);
            }
            pos += 1;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &str) -> String {
        String::from_utf8(strip_comments(s.as_bytes()).text).unwrap()
    }

    #[test]
    fn strips_like_volttron() {
        assert_eq!(strip("{# c\n\"a\": 1}"), "{\n\"a\": 1}");
        assert_eq!(strip("{\"a#b\": \"//x\"} // tail"), "{\"a#b\": \"//x\"} ");
        assert_eq!(strip("[1, /* two\nlines */ 2]"), "[1,  2]");
        assert_eq!(strip("\"esc \\\" # still string\" #gone"), "\"esc \\\" # still string\" ");
        assert_eq!(strip("'single # quoted' # c"), "'single # quoted' ");
        assert_eq!(strip("a /* unterminated"), "a /* unterminated");
        assert_eq!(strip("1/*x*/2"), "12");
    }

    #[test]
    fn maps_offsets_back() {
        let s = strip_comments(b"# comment\n{\"a\": x}");
        let bad = s.text.iter().position(|&b| b == b'x').unwrap();
        let orig = s.original_offset(bad);
        assert_eq!(orig, 16);
        assert_eq!(line_column(b"# comment\n{\"a\": x}", orig), (2, 7));
    }

    #[test]
    fn decodes_utf8_and_escapes() {
        let text = "[\"caf\u{e9} \\u00e9 \\ud83d\\ude00 \\n\"]";
        let v = crate::json::parse(text.as_bytes()).unwrap();
        let s = v.items().next().unwrap().as_str().unwrap();
        assert_eq!(to_string(s), "caf\u{e9} \u{e9} \u{1f600} \n");
        let mut out = String::new();
        crate::json::emit::push_str(&mut out, "caf\u{e9} \u{1f600}\"");
        assert_eq!(out, "\"caf\\u00e9 \\ud83d\\ude00\\\"\"");
    }
}
