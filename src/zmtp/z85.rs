//! Z85 (RFC 32), the text encoding libzmq and pyzmq use for CURVE keys
//! (ZMTP.md §11.1, §11.2).
//!
//! Every 4 input bytes, read as a big-endian `u32`, become 5 base-85 digits,
//! most significant first, from the alphabet of [`ALPHABET`]. A 32-byte key is
//! 40 characters.
//!
//! The decoder applies libzmq's rejection rules (`zmq_z85_decode`, ZMTP.md
//! §11.1): input shorter than 5 or not a multiple of 5 ([`Z85Error::BadLength`]),
//! a character outside the alphabet ([`Z85Error::BadChar`]) and a 5-character
//! group whose value exceeds `0xFFFF_FFFF`, e.g. `%nSc1`
//! ([`Z85Error::Overflow`]); all arithmetic is checked. The encoder, like
//! libzmq's `zmq_z85_encode`, rejects input whose length is not a multiple of 4
//! and encodes the empty input as the empty string.
//!
//! The `*_into` functions write into caller buffers and never allocate; the
//! allocating [`encode`] and [`decode`] are for configuration time.

use core::fmt;

/// The 85 characters of RFC 32, in digit order (value 0 first).
pub const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Z85 text length of a 32-byte CURVE key (ZMTP.md §11.2).
pub const KEY_TEXT_LEN: usize = 40;

/// Marks a byte that is not in [`ALPHABET`] in [`DECODE_TABLE`].
const INVALID: u8 = 0xFF;

/// Byte → digit value, or [`INVALID`].
// Evaluated at compile time: an out-of-bounds index fails the build, it
// cannot panic at run time.
// `i as u8`: i < 85.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const DECODE_TABLE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why Z85 encoding or decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Z85Error {
    /// Encoder: input length is not a multiple of 4. Decoder: input is shorter
    /// than 5 characters or its length is not a multiple of 5.
    BadLength,
    /// A character outside the Z85 alphabet, at this byte offset.
    BadChar {
        /// Byte offset of the offending character in the input.
        offset: usize,
    },
    /// A 5-character group encodes a value above `0xFFFF_FFFF`.
    Overflow,
    /// The output buffer is too small for the result.
    OutputTooSmall,
}

impl fmt::Display for Z85Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Z85Error::BadLength => f.write_str("Z85: bad input length"),
            Z85Error::BadChar { offset } => {
                write!(f, "Z85: character outside the alphabet at offset {offset}")
            }
            Z85Error::Overflow => f.write_str("Z85: group value exceeds 2^32-1"),
            Z85Error::OutputTooSmall => f.write_str("Z85: output buffer too small"),
        }
    }
}

impl std::error::Error for Z85Error {}

/// Length of the Z85 text for `binary_len` input bytes, or `None` if
/// `binary_len` is not a multiple of 4.
#[must_use]
pub fn encoded_len(binary_len: usize) -> Option<usize> {
    if !binary_len.is_multiple_of(4) {
        return None;
    }
    (binary_len / 4).checked_mul(5)
}

/// Length of the binary decoded from `text_len` Z85 characters, or `None` if
/// libzmq would reject that length (less than 5, or not a multiple of 5).
#[must_use]
pub fn decoded_len(text_len: usize) -> Option<usize> {
    if text_len < 5 || !text_len.is_multiple_of(5) {
        return None;
    }
    Some(text_len / 5 * 4)
}

/// Encodes `data` into `out`, returning the number of characters written.
///
/// # Errors
/// [`Z85Error::BadLength`] if `data.len()` is not a multiple of 4;
/// [`Z85Error::OutputTooSmall`] if `out` is shorter than [`encoded_len`].
pub fn encode_into(data: &[u8], out: &mut [u8]) -> Result<usize, Z85Error> {
    let len = encoded_len(data.len()).ok_or(Z85Error::BadLength)?;
    let out = out.get_mut(..len).ok_or(Z85Error::OutputTooSmall)?;
    for (chunk, digits) in data.chunks_exact(4).zip(out.chunks_exact_mut(5)) {
        let word: [u8; 4] = chunk.try_into().map_err(|_| Z85Error::BadLength)?;
        let mut value = u32::from_be_bytes(word);
        // Least significant digit last: fill the group from the end.
        for digit in digits.iter_mut().rev() {
            let index = (value % 85) as usize;
            *digit = *ALPHABET.get(index).ok_or(Z85Error::Overflow)?;
            value /= 85;
        }
    }
    Ok(len)
}

/// Decodes Z85 `text` into `out`, returning the number of bytes written.
///
/// # Errors
/// [`Z85Error::BadLength`], [`Z85Error::BadChar`] and [`Z85Error::Overflow`]
/// as libzmq's `zmq_z85_decode`; [`Z85Error::OutputTooSmall`] if `out` is
/// shorter than [`decoded_len`].
pub fn decode_into(text: &[u8], out: &mut [u8]) -> Result<usize, Z85Error> {
    let len = decoded_len(text.len()).ok_or(Z85Error::BadLength)?;
    let out = out.get_mut(..len).ok_or(Z85Error::OutputTooSmall)?;
    for (group_index, (group, word)) in text.chunks_exact(5).zip(out.chunks_exact_mut(4)).enumerate() {
        let mut value: u32 = 0;
        for (i, &ch) in group.iter().enumerate() {
            let digit = DECODE_TABLE.get(usize::from(ch)).copied().unwrap_or(INVALID);
            if digit == INVALID {
                return Err(Z85Error::BadChar { offset: group_index.saturating_mul(5).saturating_add(i) });
            }
            value = value.checked_mul(85).and_then(|v| v.checked_add(u32::from(digit))).ok_or(Z85Error::Overflow)?;
        }
        word.copy_from_slice(&value.to_be_bytes());
    }
    Ok(len)
}

/// Encodes `data` as a new `String` (configuration-time convenience).
///
/// # Errors
/// [`Z85Error::BadLength`] if `data.len()` is not a multiple of 4.
pub fn encode(data: &[u8]) -> Result<String, Z85Error> {
    let len = encoded_len(data.len()).ok_or(Z85Error::BadLength)?;
    let mut out = vec![0u8; len];
    encode_into(data, &mut out)?;
    // The alphabet is ASCII, so this cannot fail; map defensively anyway.
    String::from_utf8(out).map_err(|_| Z85Error::Overflow)
}

/// Decodes Z85 `text` into a new `Vec` (configuration-time convenience).
///
/// # Errors
/// As [`decode_into`].
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Z85Error> {
    let len = decoded_len(text.len()).ok_or(Z85Error::BadLength)?;
    let mut out = vec![0u8; len];
    decode_into(text, &mut out)?;
    Ok(out)
}

/// Decodes a 40-character Z85 CURVE key into its 32 bytes.
///
/// # Errors
/// [`Z85Error::BadLength`] unless `text` is exactly 40 characters; otherwise
/// as [`decode_into`].
pub fn decode_key(text: &[u8]) -> Result<[u8; 32], Z85Error> {
    if text.len() != KEY_TEXT_LEN {
        return Err(Z85Error::BadLength);
    }
    let mut key = [0u8; 32];
    decode_into(text, &mut key)?;
    Ok(key)
}

/// Encodes a 32-byte CURVE key as its 40 Z85 characters (ASCII).
#[must_use]
pub fn encode_key(key: &[u8; 32]) -> [u8; KEY_TEXT_LEN] {
    let mut text = [0u8; KEY_TEXT_LEN];
    // 32 is a multiple of 4 and the buffer is exactly encoded_len(32): cannot fail.
    let _ = encode_into(key, &mut text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ZMTP.md §12.1 positive vectors (binary hex, Z85).
    const VECTORS: &[(&str, &str)] = &[
        ("864fd26fb559f75b", "HelloWorld"),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000",
        ),
        ("ffffffff", "%nSc0"),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "009c61o!#m2NH?C3>iWS5d]J*6CRx17-skh9337x",
        ),
        (
            "8e0bdd697628b91d8f245587ee95c5b04d48963f79259877b49cd9063aead3b7",
            "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
        ),
        // Standard libzmq test keys (ZMTP.md §12.1, second table).
        (
            "bb88471d65e2659b30c55a5321cebb5aab2b70a398645c26dca2b2fcb43fc518",
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
        ),
        (
            "7bb864b489afa3671fbe69101f94b38972f24816dfb01b51656b3fec8dfd0888",
            "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
        ),
        (
            "54fcba24e93249969316fb617c872bb0c1d1ff14800427c594cbfacf1bc2d652",
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        ),
    ];

    #[test]
    fn z85_vectors_encode() {
        for (hex_in, text) in VECTORS {
            let bin = hex::decode(hex_in).unwrap();
            assert_eq!(encode(&bin).unwrap(), *text, "encode {hex_in}");
        }
    }

    #[test]
    fn z85_vectors_decode() {
        for (hex_in, text) in VECTORS {
            assert_eq!(hex::encode(decode(text.as_bytes()).unwrap()), *hex_in, "decode {text}");
        }
    }

    #[test]
    fn z85_key_helpers_roundtrip() {
        let key = decode_key(b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7").unwrap();
        assert_eq!(&encode_key(&key), b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
        assert_eq!(decode_key(b"HelloWorld"), Err(Z85Error::BadLength));
    }

    #[test]
    fn z85_rejects_libzmq_negatives() {
        assert_eq!(decode(b"HelloWorl"), Err(Z85Error::BadLength));
        assert_eq!(decode(b""), Err(Z85Error::BadLength));
        assert_eq!(decode(b"abcd"), Err(Z85Error::BadLength));
        assert_eq!(decode(b"%nSc1"), Err(Z85Error::Overflow));
        assert_eq!(decode(b"#####"), Err(Z85Error::Overflow));
        assert_eq!(decode(b"~~~~~"), Err(Z85Error::BadChar { offset: 0 }));
        assert_eq!(decode(b"Hello World"[..10].as_ref()), Err(Z85Error::BadChar { offset: 5 }));
        assert_eq!(decode(b"HelloWor\x00d"), Err(Z85Error::BadChar { offset: 8 }));
        assert_eq!(decode(b"Hello\xffWorl"[..10].as_ref()), Err(Z85Error::BadChar { offset: 5 }));
    }

    #[test]
    fn z85_encode_rejects_bad_length_and_small_output() {
        assert_eq!(encode(&[1, 2, 3]), Err(Z85Error::BadLength));
        assert_eq!(encode(&[]).unwrap(), "");
        let mut small = [0u8; 4];
        assert_eq!(encode_into(&[0; 4], &mut small), Err(Z85Error::OutputTooSmall));
        assert_eq!(decode_into(b"HelloWorld", &mut small), Err(Z85Error::OutputTooSmall));
    }

    #[test]
    fn z85_roundtrip_all_byte_values() {
        let data: Vec<u8> = (0..=255u8).collect();
        let text = encode(&data).unwrap();
        assert_eq!(decode(text.as_bytes()).unwrap(), data);
    }
}
