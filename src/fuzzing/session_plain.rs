//! `fuzz_session_plain`: PLAIN server sessions (ZMTP.md §6).

use super::*;

/// Byte 0 of a `session_plain` input: top bit set = the rest follows a PLAIN greeting as is.
pub const SESSION_PLAIN_RAW: u8 = 0x80;

/// A PLAIN server [`Session`]: greeting, HELLO (user and password from the input), the
/// decision of `session_auth_json` on Verify, INITIATE, then arbitrary traffic; whole and in
/// chunks, both must agree exactly.
///
/// Layout: byte 0 = `raw:1 metadata:2 chunk_mode:2 limits:3`, byte 1 = chunk parameter. Raw:
/// the rest follows a PLAIN client greeting. Otherwise a user and a password (length byte +
/// bytes; a length byte `≥ 0xF0` is `admin`/`secret`/`guest`/`x` by its low 2 bits), then the
/// traffic bytes, sent after an INITIATE whose metadata is DEALER `agent1`, REQ, PUB (refused)
/// or a truncated list.
pub fn fuzz_session_plain(data: &[u8]) {
    let mut c = Cursor { data };
    let (b0, b1) = (c.byte(), c.byte());
    let limits = stream_limits(b0 & 7);
    let chunks = Chunks::from_input(b0, b1);
    let ep = Endpoint { mechanism: Mechanism::Plain, limits: &limits, seed: 0 };
    let mut stream = greeting::emit(Mechanism::Plain, false).to_vec();
    let mut expect: Option<(Vec<u8>, Vec<u8>)> = None;
    if b0 & SESSION_PLAIN_RAW == 0 {
        let mut field = || -> Vec<u8> {
            let l = c.byte();
            if l >= 0xF0 {
                [&b"admin"[..], b"secret", b"guest", b"x"][usize::from(l & 3)].to_vec()
            } else {
                c.take(usize::from(l)).to_vec()
            }
        };
        let (user, password) = (field(), field());
        let mut hello = vec![5];
        hello.extend_from_slice(plain::HELLO);
        hello.push(user.len() as u8);
        hello.extend_from_slice(&user);
        hello.push(password.len() as u8);
        hello.extend_from_slice(&password);
        FrameHeader::emit_frame(FLAG_COMMAND, &hello, &mut stream);
        let mut initiate = vec![8];
        initiate.extend_from_slice(plain::INITIATE);
        match (b0 >> 5) & 3 {
            0 => command::socket_metadata(b"DEALER", b"agent1", &mut initiate),
            1 => command::socket_metadata(b"REQ", b"", &mut initiate),
            2 => command::socket_metadata(b"PUB", b"p", &mut initiate),
            _ => initiate.extend_from_slice(b"\x0bSocket-Type\x00\x00"),
        }
        FrameHeader::emit_frame(FLAG_COMMAND, &initiate, &mut stream);
        expect = Some((user, password));
    }
    stream.extend_from_slice(c.data);
    let mut verify = |s: &Session| {
        let creds = s.credentials();
        assert!(matches!(creds, Credentials::Plain { .. }));
        if let Some((u, p)) = &expect {
            assert_eq!(creds, Credentials::Plain { user: u, password: p }, "credentials as sent");
        }
        session_decide(s)
    };
    let whole = drive_session(&ep, &mut FixedFeed(Some(&stream)), Chunks::Whole, &mut verify);
    let cut = drive_session(&ep, &mut FixedFeed(Some(&stream)), chunks, &mut verify);
    same_run(&whole, &cut, chunks);
    if let Some((u, p)) = &expect {
        // `admin:secret` and `/guest:.*/` are admitted (`.` is not a newline); everyone else
        // gets ERROR 400.
        let text = [&u[..], b":", &p[..]].concat();
        let utf8 = core::str::from_utf8(&text).ok();
        let admitted = text == b"admin:secret" || utf8.is_some_and(|t| t.starts_with("guest:") && !t.contains('\n'));
        let verdict = whole.events.iter().find(|e| e.first().is_some_and(|f| f == b"verify"));
        if let Some(v) = verdict {
            assert_eq!(v.get(1), Some(&vec![u8::from(admitted)]), "decision for {u:?}:{p:?}");
        }
    }
}
