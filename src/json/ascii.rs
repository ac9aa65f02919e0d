//! Word-at-a-time (SWAR) scans over string contents: how many leading bytes need no attention.
//!
//! The validator, the navigator and the emitter each walk every byte of every string they see;
//! for a `publish`, whose body is mostly one long string (`"message"`), those byte loops were a
//! tenth of the router's CPU. These functions skip 8 bytes per step while none of them is
//! special; the word that holds one gives its position from its flags, and only the last < 8
//! bytes are looked at byte by byte, so the answer is exact: the position of the first special
//! byte, or the length. (Leaving that word to the caller's loop cost a word test per byte before
//! each closing quote: most of a publish's strings are short keys.) Safe code only: the word is
//! read with `u64::from_le_bytes`, the tests are the classic bit tricks (Warren, *Hacker's
//! Delight* §6-1; "Bit Twiddling Hacks": `haszero`, `hasless`). Their "some byte matches"
//! answer is exact, and so is the *lowest* flagged byte: a borrow or carry that could flag a
//! byte wrongly only runs upward from a byte that really matches, and every byte below the
//! first match neither is flagged nor passes a borrow or carry on.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero iff some byte of `v` is below `n` (`n` ≤ 0x80).
#[inline]
fn any_below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS
}

/// Non-zero iff some byte of `v` equals `b`.
#[inline]
fn any_eq(v: u64, b: u8) -> u64 {
    any_below(v ^ (ONES * u64::from(b)), 1)
}

/// Non-zero iff some byte of `v` is 0x7F or above.
#[inline]
fn any_del_or_high(v: u64) -> u64 {
    (v | v.wrapping_add(ONES)) & HIGHS
}

/// Leading bytes of `bytes` that are not `special`: whole clean words, then, in the word that
/// stopped them, the lowest flagged byte (see the module doc: the lowest flag is exact); byte by
/// byte only through the last < 8 bytes.
#[inline]
fn clean_len(bytes: &[u8], special_word: impl Fn(u64) -> u64, special: impl Fn(u8) -> bool) -> usize {
    let mut n = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        let flags = special_word(u64::from_le_bytes(word));
        if flags != 0 {
            // Little-endian: the first byte is the lowest; its flag is bit 7 of that byte.
            return n + (flags.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    let rest = chunks.remainder();
    n + rest.iter().position(|&b| special(b)).unwrap_or(rest.len())
}

/// Is `b` a byte that ASCII-only JSON output does not copy as it is (see [`printable_len`])?
#[inline]
fn needs_escape(b: u8) -> bool {
    !(0x20..=0x7e).contains(&b) || b == b'"' || b == b'\\'
}

/// Bytes at the start of `bytes` that hold neither `"` nor `\` (walking a validated string):
/// the position of the first of them, or the length.
#[inline]
pub fn unquoted_len(bytes: &[u8]) -> usize {
    clean_len(bytes, |v| any_eq(v, b'"') | any_eq(v, b'\\'), |b| b == b'"' || b == b'\\')
}

/// Bytes at the start of `bytes` that ASCII-only JSON output copies as they are: printable
/// ASCII (0x20–0x7E) other than `"` and `\`. The position of the first other byte, or the length.
#[inline]
pub fn printable_len(bytes: &[u8]) -> usize {
    clean_len(bytes, |v| any_eq(v, b'"') | any_eq(v, b'\\') | any_below(v, 0x20) | any_del_or_high(v), needs_escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8], special: impl Fn(u8) -> bool) -> usize {
        bytes.iter().position(|&b| special(b)).unwrap_or(bytes.len())
    }

    /// Exactly the first special byte's position (or the length).
    fn check(bytes: &[u8]) {
        let quote = |b: u8| b == b'"' || b == b'\\';
        let print = |b: u8| !(0x20..=0x7e).contains(&b) || b == b'"' || b == b'\\';
        for (got, want) in [(unquoted_len(bytes), naive(bytes, quote)), (printable_len(bytes), naive(bytes, print))] {
            assert_eq!(got, want, "{bytes:?}");
        }
    }

    #[test]
    fn every_byte_value_at_every_position_of_two_words() {
        for special in 0..=255u8 {
            for at in 0..16 {
                for fill in [b'a', b'~', b' ', 0x7f, 0x80, 0xff] {
                    let mut v = vec![fill; 16];
                    v[at] = special;
                    check(&v);
                    check(&v[..at + 1]);
                }
            }
        }
    }

    #[test]
    fn random_inputs_against_the_byte_loop() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400usize {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // mostly printable, sometimes anything
                    if x.is_multiple_of(29) { (x >> 8) as u8 } else { 0x20 + (x >> 16) as u8 % 0x5f }
                })
                .collect();
            check(&v);
        }
    }
}
