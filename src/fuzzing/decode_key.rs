//! `fuzz_decode_key`: every key text form VOLTTRON accepts (VIP.md §9.2).

use super::*;

/// Every text form VOLTTRON's `decode_key` accepts, for `raw` (VIP.md §9.2).
pub(super) fn key_forms(raw: &[u8; 32]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let z85 = crate::zmtp::z85::encode_key(raw);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>().into_bytes();
    let b64 = base64::engine::general_purpose::URL_SAFE;
    let b64n = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        z85.to_vec(),
        encode_key(raw).into_bytes(),
        b64.encode(raw).into_bytes(),
        b64n.encode(z85).into_bytes(),
        b64.encode(z85).into_bytes(),
        hex(raw),
        hex(raw).to_ascii_uppercase(),
        hex(&z85),
    ]
}

/// `decode_key` on arbitrary bytes: only the seven lengths decode; hex is any-case hex and
/// URL-safe base64 uses only its alphabet; a decoded key re-encodes to the input (up to hex
/// case and the unused bits of the last base64 character) and decodes from every other form.
/// A 32-byte input is also taken as a raw key: all its forms decode to it.
pub fn fuzz_decode_key(data: &[u8]) {
    pub(super) const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let r = decode_key(data);
    let b64ok = |t: &[u8]| t.iter().all(|b| URL_SAFE.contains(b));
    match data.len() {
        40 | 54 | 56 | 80 => {}
        43 => assert_eq!(r.is_ok(), b64ok(data), "43: {r:?}"),
        44 => assert_eq!(r.is_ok(), b64ok(&data[..43]) && data.get(43) == Some(&b'='), "44: {r:?}"),
        64 => assert_eq!(r.is_ok(), data.iter().all(u8::is_ascii_hexdigit), "64: {r:?}"),
        n => assert_eq!(r, Err(KeyError::UnknownEncoding { len: n })),
    }
    if let Ok(raw) = r {
        let forms = key_forms(&raw);
        for f in &forms {
            assert_eq!(decode_key(f), Ok(raw), "form {:?}", String::from_utf8_lossy(f));
        }
        let canonical = match data.len() {
            40 => Some(&forms[0]),
            64 => Some(&forms[5]),
            80 => Some(&forms[7]),
            _ => None,
        };
        if let Some(c) = canonical {
            assert!(data.eq_ignore_ascii_case(c), "non-canonical {} accepted", String::from_utf8_lossy(data));
        }
        if matches!(data.len(), 43 | 44) {
            assert_eq!(data.get(..42), forms[1].get(..42), "base64 text differs beyond the unused bits");
        }
        assert_eq!(KeyText::new(&raw).as_str().as_bytes(), &forms[1][..]);
    }
    if let Ok(raw) = <[u8; 32]>::try_from(data) {
        for f in key_forms(&raw) {
            assert_eq!(decode_key(&f), Ok(raw), "form {:?}", String::from_utf8_lossy(&f));
        }
    }
}
