//! `fuzz_command_metadata`: commands, PING/PONG and metadata parsers (ZMTP.md §4).

use super::*;

/// `Command::parse`, `parse_ping` and the metadata parsers on `data` (and on the command's
/// data), checked against each other and against the emitters.
pub fn fuzz_command_metadata(data: &[u8]) {
    match Command::parse(data) {
        Ok(c) => {
            let n = usize::from(data.first().copied().unwrap_or(0));
            assert!(n > 0 && c.name.len() == n);
            assert_eq!(1 + c.name.len() + c.data.len(), data.len());
            assert_eq!([c.name, c.data].concat(), data.get(1..).unwrap_or(&[]));
            check_metadata(c.data);
            if c.is(command::PING) {
                check_ping(c.data);
            }
        }
        Err(e) => {
            assert_eq!(e, SessionError::MalformedCommand);
            let n = usize::from(data.first().copied().unwrap_or(0));
            assert!(data.is_empty() || n == 0 || n > data.len() - 1);
        }
    }
    check_ping(data);
    check_metadata(data);
}

pub(super) fn check_ping(data: &[u8]) {
    match command::parse_ping(data) {
        Ok((ttl, ctx)) => {
            assert!(data.len() >= 2);
            assert_eq!(ttl.to_be_bytes(), [data[0], data[1]]);
            assert_eq!(ctx, &data[2..]);
            // The PONG we answer parses back to the (truncated) context.
            let mut out = Vec::new();
            command::emit_pong(ctx, &mut out);
            let h = FrameHeader::parse(&out);
            assert!(
                matches!(h, Ok(Some(h)) if h.command() && !h.more() && h.header_len + h.size as usize == out.len())
            );
            let c = Command::parse(out.get(2..).unwrap_or(&[]));
            let keep = ctx.len().min(crate::limits::MAX_PING_CONTEXT_BYTES);
            assert_eq!(c, Ok(Command { name: command::PONG, data: &ctx[..keep] }));
            out.clear();
            command::emit_ping(ttl, &mut out);
            let c = Command::parse(out.get(2..).unwrap_or(&[]));
            assert!(matches!(c, Ok(c) if c.is(command::PING) && command::parse_ping(c.data) == Ok((ttl, &[][..]))));
        }
        Err(e) => {
            assert_eq!(e, SessionError::MalformedPing);
            assert!(data.len() < 2);
        }
    }
}

pub(super) fn check_metadata(buf: &[u8]) {
    let items: Vec<_> = metadata::Properties::new(buf).collect();
    let errors = items.iter().filter(|i| i.is_err()).count();
    assert!(errors <= 1, "the iterator stops after its first error");
    if errors == 1 {
        assert_eq!(items.last(), Some(&Err(SessionError::TruncatedProperty)));
    }
    let valid = errors == 0;
    assert_eq!(metadata::validate(buf).is_ok(), valid, "validate agrees with the iterator");
    // The iterator is fused once it is done or failed.
    let mut it = metadata::Properties::new(buf);
    for _ in it.by_ref() {}
    assert!(it.next().is_none());
    let pairs: Vec<(&[u8], &[u8])> = items.iter().filter_map(|i| i.ok()).collect();
    if valid {
        // A valid list re-encodes to the same bytes.
        let mut again = Vec::with_capacity(buf.len());
        let mut len = 0;
        for (n, v) in &pairs {
            metadata::emit(n, v, &mut again);
            len += metadata::encoded_len(n, v);
        }
        assert_eq!(again, buf);
        assert_eq!(len, buf.len());
    }
    // find = the first case-insensitive match, after validating the whole list.
    let mut names: Vec<Vec<u8>> = vec![b"Socket-Type".to_vec(), b"identity".to_vec(), b"X".to_vec()];
    for (n, _) in pairs.iter().take(4) {
        names.push(n.to_vec());
        names.push(n.to_ascii_uppercase());
    }
    for name in &names {
        let expect = if valid {
            Ok(pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v))
        } else {
            Err(SessionError::TruncatedProperty)
        };
        assert_eq!(metadata::find(buf, name), expect);
    }
}
