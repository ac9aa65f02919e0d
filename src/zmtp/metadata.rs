//! Metadata property lists (ZMTP.md §4.2; RFC 23 "metadata").
//!
//! ```text
//! metadata = *property
//! property = name-len:1 name:name-len value-len:4 (u32 BE) value:value-len
//! ```
//! Parsed as an iterator over borrowed bytes: nothing is copied or allocated. As in libzmq's
//! `parse_metadata`, a truncated property or trailing bytes make the whole list malformed.
//! Names are matched case-insensitively (the RFC says so; libzmq peers always send `Socket-Type`
//! and `Identity` spelled exactly so).

use super::SessionError;

/// Iterator over `(name, value)` pairs; yields one `Err` and then stops on malformed input.
#[derive(Clone, Debug)]
pub struct Properties<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Properties<'a> {
    /// Iterate the properties in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Properties { rest: buf, failed: false }
    }
}

impl<'a> Iterator for Properties<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), SessionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let (&name_len, rest) = self.rest.split_first()?;
            let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
            let (len, rest) = rest.split_at_checked(4)?;
            let len = u32::from_be_bytes([*len.first()?, *len.get(1)?, *len.get(2)?, *len.get(3)?]);
            let (value, rest) = rest.split_at_checked(usize::try_from(len).ok()?)?;
            Some((name, value, rest))
        })();
        match parsed {
            Some((name, value, rest)) => {
                self.rest = rest;
                Some(Ok((name, value)))
            }
            None => {
                self.failed = true;
                Some(Err(SessionError::TruncatedProperty))
            }
        }
    }
}

/// Check that `buf` is a well-formed property list.
///
/// # Errors
/// [`SessionError::TruncatedProperty`].
pub fn validate(buf: &[u8]) -> Result<(), SessionError> {
    Properties::new(buf).try_for_each(|p| p.map(|_| ()))
}

/// The value of property `name` (case-insensitive), after validating the whole list.
///
/// # Errors
/// [`SessionError::TruncatedProperty`].
pub fn find<'a>(buf: &'a [u8], name: &[u8]) -> Result<Option<&'a [u8]>, SessionError> {
    let mut found = None;
    for p in Properties::new(buf) {
        let (n, v) = p?;
        if found.is_none() && n.eq_ignore_ascii_case(name) {
            found = Some(v);
        }
    }
    Ok(found)
}

/// Bytes [`emit`] appends for one property.
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    1 + name.len() + 4 + value.len()
}

/// Append one property. Names longer than 255 bytes are a programming error and are cut to 255.
pub fn emit(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let name = name.get(..255).unwrap_or(name);
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX)); // at most 255: cut above
    out.extend_from_slice(name);
    // The values we send are socket types and identities (≤ 255 bytes), far below 4 GiB.
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    // READY body of a libzmq DEALER with identity agent1, after "\x05READY" (ZMTP.md §12.4).
    const DEALER_PROPS: &[u8] = b"\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x06agent1";

    #[test]
    fn finds_properties_case_insensitively() {
        assert_eq!(find(DEALER_PROPS, b"Socket-Type"), Ok(Some(&b"DEALER"[..])));
        assert_eq!(find(DEALER_PROPS, b"identity"), Ok(Some(&b"agent1"[..])));
        assert_eq!(find(DEALER_PROPS, b"X-Other"), Ok(None));
        assert_eq!(find(b"", b"Identity"), Ok(None));
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let first_property_end = 1 + 11 + 4 + 6;
        for n in (1..DEALER_PROPS.len()).filter(|&n| n != first_property_end) {
            assert_eq!(validate(&DEALER_PROPS[..n]), Err(SessionError::TruncatedProperty), "{n}");
        }
        assert_eq!(validate(DEALER_PROPS), Ok(()));
        // a value length of 4 GiB does not allocate or panic
        assert_eq!(validate(b"\x01a\xff\xff\xff\xff"), Err(SessionError::TruncatedProperty));
    }

    #[test]
    fn emit_round_trips() {
        let mut out = Vec::new();
        emit(b"Socket-Type", b"ROUTER", &mut out);
        emit(b"Identity", b"", &mut out);
        assert_eq!(out.len(), encoded_len(b"Socket-Type", b"ROUTER") + encoded_len(b"Identity", b""));
        assert_eq!(find(&out, b"socket-type"), Ok(Some(&b"ROUTER"[..])));
    }
}
