//! PLAIN, server side (ZMTP.md §6; RFC 24). Clear-text user name and password: only for
//! trusted networks, as VOLTTRON documents. Accepted where an endpoint is bound with
//! `?server=PLAIN`.
//!
//! ```text
//! C: HELLO    = %d5 "HELLO" user-len:1 user pass-len:1 pass     (nothing after pass)
//! S: WELCOME  = %d7 "WELCOME"                                    or ERROR
//! C: INITIATE = %d8 "INITIATE" metadata
//! S: READY    = %d5 "READY" metadata                             or ERROR
//! ```

use super::super::SessionError;
use super::super::command;
use super::super::metadata;

/// Command names.
pub const HELLO: &[u8] = b"HELLO";
/// WELCOME.
pub const WELCOME: &[u8] = b"WELCOME";
/// INITIATE.
pub const INITIATE: &[u8] = b"INITIATE";

/// Split a HELLO's data into (user, password); the password must end the body exactly
/// (libzmq `plain_server.cpp`).
///
/// # Errors
/// [`SessionError::MalformedCommand`].
pub fn parse_hello(data: &[u8]) -> Result<(&[u8], &[u8]), SessionError> {
    let (&ulen, rest) = data.split_first().ok_or(SessionError::MalformedCommand)?;
    let (user, rest) = rest.split_at_checked(usize::from(ulen)).ok_or(SessionError::MalformedCommand)?;
    let (&plen, rest) = rest.split_first().ok_or(SessionError::MalformedCommand)?;
    if rest.len() != usize::from(plen) {
        return Err(SessionError::MalformedCommand);
    }
    Ok((user, rest))
}

/// Append the WELCOME frame (exactly 8 body bytes; libzmq clients check the size).
pub fn emit_welcome(out: &mut Vec<u8>) {
    command::emit_header(WELCOME, 0, out);
}

/// Append a READY frame carrying `metadata` (already encoded).
pub fn emit_ready(metadata_bytes: &[u8], out: &mut Vec<u8>) {
    command::emit_header(command::READY, metadata_bytes.len(), out);
    out.extend_from_slice(metadata_bytes);
}

/// Validate INITIATE data as a metadata list.
///
/// # Errors
/// [`SessionError::TruncatedProperty`].
pub fn check_initiate(data: &[u8]) -> Result<(), SessionError> {
    metadata::validate(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_of_zmtp_md_section_6() {
        // 04 13 05 HELLO 05 admin 06 secret
        let body = b"\x05HELLO\x05admin\x06secret";
        let cmd = crate::zmtp::command::Command::parse(body).unwrap();
        assert_eq!(parse_hello(cmd.data), Ok((&b"admin"[..], &b"secret"[..])));
        assert_eq!(parse_hello(b"\x05admin\x06secretX"), Err(SessionError::MalformedCommand));
        assert_eq!(parse_hello(b"\x05adm"), Err(SessionError::MalformedCommand));
        assert_eq!(parse_hello(b""), Err(SessionError::MalformedCommand));
        let mut out = Vec::new();
        emit_welcome(&mut out);
        assert_eq!(out, b"\x04\x08\x07WELCOME");
    }
}
