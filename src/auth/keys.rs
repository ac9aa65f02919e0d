//! CURVE key text forms (VIP.md §9.2, ZMTP.md §11.3).
//!
//! A CURVE key is 32 raw bytes. VOLTTRON stores and prints it as **URL-safe base64 without the
//! `=` pad: 43 characters** ([`encode_key`]); keystores, `auth.json`, `known_hosts`, `query
//! serverkey` and VIP address URLs all use that form, and the ZAP decision compares CURVE
//! credentials in it (VIP.md §9.6).
//!
//! [`decode_key`] accepts every form VOLTTRON's `decode_key` (`volttron/platform/vip/socket.py`)
//! accepts, chosen by length exactly as Python does:
//!
//! | length | form |
//! |---|---|
//! | 40 | Z85 (libzmq's socket-option form) |
//! | 43 | URL-safe base64, no pad (the VOLTTRON form) |
//! | 44 | URL-safe base64 with the single `=` |
//! | 54 / 56 | URL-safe base64 (without / with `==`) *of the 40-character Z85 text* |
//! | 64 | hex of the raw key |
//! | 80 | hex of the Z85 text |
//!
//! Differences from Python, all on input Python would turn into a broken key or accept only by
//! accident: Python returns a 40-character input unchecked (libzmq rejects it later), we decode
//! it; Python's non-validating `b64decode` silently drops characters outside the alphabet and
//! also accepts `+` and `/`, we reject both (an error names the form). Non-zero unused bits in the
//! last base64 character are accepted, as Python does. Hex is case-insensitive like
//! `binascii.unhexlify`.
//!
//! Base64 is done by the `base64` crate; Z85 by [`crate::zmtp::z85`].

use core::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use crate::zmtp::z85::{self, Z85Error};

/// Length of the VOLTTRON key text (URL-safe base64 of 32 bytes without the `=` pad).
pub const KEY_TEXT_LEN: usize = 43;

/// Length of a raw CURVE key.
pub const KEY_LEN: usize = 32;

/// Encoder: URL-safe alphabet, no padding (VOLTTRON's `encode_key` strips the one `=`).
const ENCODER: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, GeneralPurposeConfig::new().with_encode_padding(false));

/// Decoder: URL-safe alphabet; the caller has already chosen padded or unpadded by length, so
/// padding is accepted either way; trailing bits are tolerated as Python's `b64decode` does.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a key text could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The length is none of 40, 43, 44, 54, 56, 64, 80 (Python: "unknown key encoding").
    UnknownEncoding {
        /// The length that was given.
        len: usize,
    },
    /// Not valid URL-safe base64 (for the 43/44/54/56 forms).
    BadBase64,
    /// Not valid hex (for the 64/80 forms).
    BadHex,
    /// The Z85 text (given directly or inside base64/hex) is invalid.
    BadZ85(Z85Error),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::UnknownEncoding { len } => {
                write!(f, "unknown key encoding: {len} characters (expected 40, 43, 44, 54, 56, 64 or 80)")
            }
            KeyError::BadBase64 => f.write_str("key is not valid URL-safe base64"),
            KeyError::BadHex => f.write_str("key is not valid hex"),
            KeyError::BadZ85(e) => write!(f, "key is not valid Z85 ({e})"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A key in VOLTTRON text form (43 ASCII characters), held inline without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyText([u8; KEY_TEXT_LEN]);

impl KeyText {
    /// The VOLTTRON text form of `key` ([`encode_key`] without allocating).
    #[must_use]
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut text = [0u8; KEY_TEXT_LEN];
        // 32 bytes always encode to exactly 43 unpadded characters; on the impossible error the
        // text stays all-zero bytes, which matches no entry.
        let _ = ENCODER.encode_slice(key, &mut text);
        KeyText(text)
    }

    /// The 43 characters.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // The base64 alphabet is ASCII; the fallback is unreachable.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The 43 characters as bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_TEXT_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyText({})", self.as_str())
    }
}

/// Encodes a raw key in the VOLTTRON form: URL-safe base64, no pad, 43 characters
/// (`encode_key` in `volttron/platform/vip/socket.py`).
#[must_use]
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    KeyText::new(key).as_str().to_owned()
}

/// Decodes any key text form VOLTTRON's `decode_key` accepts (see the module doc) into the
/// 32 raw bytes. Surrounding whitespace is not stripped (Python does not either).
///
/// # Errors
/// [`KeyError::UnknownEncoding`] for any other length; otherwise the error of the form chosen
/// by the length.
pub fn decode_key(text: impl AsRef<[u8]>) -> Result<[u8; KEY_LEN], KeyError> {
    let text = text.as_ref();
    match text.len() {
        40 => z85::decode_key(text).map_err(KeyError::BadZ85),
        43 | 44 => {
            let mut buf = [0u8; 33];
            let n = DECODER.decode_slice(text, &mut buf).map_err(|_| KeyError::BadBase64)?;
            buf.get(..n).and_then(|raw| <[u8; KEY_LEN]>::try_from(raw).ok()).ok_or(KeyError::BadBase64)
        }
        54 | 56 => {
            let mut buf = [0u8; 42];
            let n = DECODER.decode_slice(text, &mut buf).map_err(|_| KeyError::BadBase64)?;
            let z = buf.get(..n).ok_or(KeyError::BadBase64)?;
            z85::decode_key(z).map_err(KeyError::BadZ85)
        }
        64 => {
            let mut raw = [0u8; KEY_LEN];
            unhex(text, &mut raw)?;
            Ok(raw)
        }
        80 => {
            let mut z = [0u8; z85::KEY_TEXT_LEN];
            unhex(text, &mut z)?;
            z85::decode_key(&z).map_err(KeyError::BadZ85)
        }
        len => Err(KeyError::UnknownEncoding { len }),
    }
}

/// Hex → bytes, `text.len() == 2 * out.len()` (checked by the caller's length match).
fn unhex(text: &[u8], out: &mut [u8]) -> Result<(), KeyError> {
    if text.len() != out.len() * 2 {
        return Err(KeyError::BadHex);
    }
    for (pair, byte) in text.chunks_exact(2).zip(out.iter_mut()) {
        let mut v = 0u8;
        for &c in pair {
            let d = char::from(c).to_digit(16).ok_or(KeyError::BadHex)?;
            // d < 16, so the cast is lossless.
            v = (v << 4) | d as u8;
        }
        *byte = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: [u8; 32] = [
        0xbb, 0x88, 0x47, 0x1d, 0x65, 0xe2, 0x65, 0x9b, 0x30, 0xc5, 0x5a, 0x53, 0x21, 0xce, 0xbb, 0x5a, 0xab, 0x2b,
        0x70, 0xa3, 0x98, 0x64, 0x5c, 0x26, 0xdc, 0xa2, 0xb2, 0xfc, 0xb4, 0x3f, 0xc5, 0x18,
    ];

    /// VIP.md §9.2 worked conversion.
    #[test]
    fn worked_conversion() {
        assert_eq!(encode_key(&RAW), "u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg");
        assert_eq!(decode_key("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID").unwrap(), RAW);
    }

    #[test]
    fn rejects_standard_alphabet_and_wrong_lengths() {
        // '+' and '/' belong to the standard alphabet, not the URL-safe one.
        let mut t = *b"u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg";
        t[36] = b'/';
        assert_eq!(decode_key(t), Err(KeyError::BadBase64));
        assert_eq!(decode_key("abc"), Err(KeyError::UnknownEncoding { len: 3 }));
        assert_eq!(decode_key(&[b'g'; 64][..]), Err(KeyError::BadHex));
    }
}
