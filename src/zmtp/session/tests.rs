//! Session tests: the server's driving loop simulated over an in-memory buffer.

use super::*;
use crate::zmtp::{command, greeting};

pub(crate) use crate::fuzzing::DEALER_READY_AGENT1;

fn client_greeting() -> [u8; 64] {
    greeting::emit(Mechanism::Null, false)
}

/// Drive a session the way the server does, feeding `stream` in chunks of `chunk` bytes;
/// return the events as strings and everything the session wrote.
fn drive(stream: &[u8], chunk: usize) -> Result<(Vec<String>, Vec<u8>), SessionError> {
    drive_with(stream, chunk, &Limits::COMPILED)
}

fn drive_with(stream: &[u8], chunk: usize, limits: &Limits) -> Result<(Vec<String>, Vec<u8>), SessionError> {
    let cfg = SessionConfig { identity: b"rid", limits, curve: None };
    let mut out = Vec::new();
    let mut s = Session::new(Mechanism::Null, &mut out);
    let mut rx: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        rx.extend_from_slice(piece);
        loop {
            match s.handle_input(&cfg, &mut rx, &mut out, &mut rand_core::OsRng)? {
                Input::NeedMore { consumed, need } => {
                    rx.drain(..consumed);
                    assert!(need > rx.len(), "need {need} must exceed held {}", rx.len());
                    break;
                }
                Input::Verify { .. } => unreachable!("NULL has no verify step"),
                Input::Ready { consumed } => {
                    events.push(format!("ready {}", String::from_utf8_lossy(s.identity())));
                    rx.drain(..consumed);
                }
                Input::Message => {
                    let m = s.message(&rx);
                    let frames: Vec<String> =
                        (0..m.len()).map(|i| String::from_utf8_lossy(m.frame(i)).into_owned()).collect();
                    events.push(format!("msg {}", frames.join("|")));
                    let consumed = s.release();
                    rx.drain(..consumed);
                }
            }
        }
    }
    Ok((events, out))
}

fn stream_with(extra: &[u8]) -> Vec<u8> {
    let mut s = client_greeting().to_vec();
    s.extend_from_slice(DEALER_READY_AGENT1);
    s.extend_from_slice(extra);
    s
}

#[test]
fn handshake_then_messages_with_a_ping_between_frames() {
    // [ "", "VIP1" ] with a PING (ctx "hi") between the two frames, then a 300-byte frame.
    let mut extra = vec![0x01, 0x00];
    extra.extend_from_slice(b"\x04\x09\x04PING\x00\x00hi");
    extra.extend_from_slice(b"\x00\x04VIP1");
    extra.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 1, 0x2c]);
    extra.extend_from_slice(&[b'z'; 300]);
    let stream = stream_with(&extra);
    let (events, out) = drive(&stream, usize::MAX).unwrap();
    assert_eq!(events[0], "ready agent1");
    assert_eq!(events[1], "msg |VIP1");
    assert_eq!(events[2], format!("msg {}", "z".repeat(300)));
    // greeting, READY(ROUTER, rid), PONG "hi" — once.
    let mut expect = greeting::emit(Mechanism::Null, true).to_vec();
    command::emit_ready(b"ROUTER", b"rid", &mut expect);
    command::emit_pong(b"hi", &mut expect);
    assert_eq!(out, expect);
}

#[test]
fn byte_by_byte_equals_whole() {
    let mut extra = Vec::new();
    for i in 0..20u8 {
        extra.extend_from_slice(&[0x01, 1, i, 0x04, 0x07, 0x04, b'P', b'I', b'N', b'G', 0, 0, 0x00, 0]);
    }
    let stream = stream_with(&extra);
    let whole = drive(&stream, usize::MAX).unwrap();
    for chunk in [1, 2, 3, 7, 64, 65, 100] {
        assert_eq!(drive(&stream, chunk).unwrap(), whole, "chunk {chunk}");
    }
    assert_eq!(whole.0.len(), 21);
}

#[test]
fn every_prefix_is_need_more() {
    let stream = stream_with(b"\x01\x00\x00\x04VIP1");
    for n in 0..stream.len() {
        let r = drive(&stream[..n], usize::MAX);
        assert!(r.is_ok(), "prefix {n}: {r:?}");
    }
}

#[test]
fn hostile_sizes_are_refused_at_the_header() {
    let huge = stream_with(&[0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(drive(&huge, usize::MAX), Err(SessionError::FrameTooLarge { .. })));
    let top = stream_with(&[0x02, 0x80, 0, 0, 0, 0, 0, 0, 1]);
    assert!(matches!(drive(&top, usize::MAX), Err(SessionError::FrameTooLarge { .. })));
    // message limit: two frames of 9 MiB each (each under the 16 MiB frame limit)
    let mut two = Vec::new();
    two.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, 0x90, 0, 0]);
    let mut s = stream_with(&two);
    s.extend_from_slice(&vec![0u8; 0x90_0000]);
    s.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0x90, 0, 0]);
    assert_eq!(drive(&s, usize::MAX), Err(SessionError::MessageTooLarge));
    // a big command after the handshake
    let cmd = stream_with(&[0x06, 0, 0, 0, 0, 0, 0, 0x20, 0]);
    assert!(matches!(drive(&cmd, usize::MAX), Err(SessionError::FrameTooLarge { .. })));
}

/// Found by the `frame_stream` fuzz target: commands between the frames of a message are
/// kept in the receive buffer until the message completes, so they must count against the
/// message limit, or `need` grows forever (here: 2-byte empty commands after a MORE frame).
#[test]
fn commands_between_frames_count_against_the_message_limit() {
    let mut limits = Limits::COMPILED;
    limits.lower("max-msg-bytes", 256).unwrap();
    let held = |commands: usize| {
        let mut extra = vec![0x01, 0x00];
        for _ in 0..commands {
            extra.extend_from_slice(&[0x04, 0x00]);
        }
        extra.extend_from_slice(b"\x00\x04VIP1");
        drive_with(&stream_with(&extra), usize::MAX, &limits)
    };
    let (events, _) = held(126).unwrap();
    assert_eq!(events, vec!["ready agent1".to_string(), "msg |VIP1".to_string()], "252 + 4 bytes fit");
    assert_eq!(held(127), Err(SessionError::MessageTooLarge), "254 + 4 bytes do not");
    let mut extra = vec![0x01, 0x00];
    for _ in 0..5000 {
        extra.extend_from_slice(&[0x04, 0x00]);
    }
    for chunk in [1, 7, usize::MAX] {
        assert_eq!(drive_with(&stream_with(&extra), chunk, &limits), Err(SessionError::MessageTooLarge));
    }
    // Between messages, commands are consumed at once and cost nothing.
    let mut extra = Vec::new();
    for _ in 0..5000 {
        extra.extend_from_slice(&[0x04, 0x00]);
    }
    extra.extend_from_slice(b"\x00\x04VIP1");
    assert_eq!(drive_with(&stream_with(&extra), 64, &limits).unwrap().0.len(), 2);
}

#[test]
fn too_many_parts() {
    let mut extra = Vec::new();
    for _ in 0..65 {
        extra.extend_from_slice(&[0x01, 0x00]);
    }
    assert_eq!(drive(&stream_with(&extra), usize::MAX), Err(SessionError::TooManyParts));
}

#[test]
fn handshake_failures() {
    let mut s = client_greeting().to_vec();
    s.extend_from_slice(b"\x00\x01x");
    assert_eq!(drive(&s, usize::MAX), Err(SessionError::UnexpectedCommand), "data before READY");
    let mut s = client_greeting().to_vec();
    s.extend_from_slice(b"\x04\x0a\x05ERROR\x03400");
    assert_eq!(drive(&s, usize::MAX), Err(SessionError::PeerError));
    let mut s = client_greeting().to_vec();
    s.extend_from_slice(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB");
    assert_eq!(drive(&s, usize::MAX), Err(SessionError::IncompatibleSocketType));
    let mut s = client_greeting().to_vec();
    s.extend_from_slice(b"\x04\x0a\x05READY\x0bSock");
    assert_eq!(drive(&s, usize::MAX), Err(SessionError::TruncatedProperty));
    let mut g = client_greeting();
    g[12..17].copy_from_slice(b"CURVE");
    assert_eq!(drive(&g, usize::MAX), Err(SessionError::MechanismMismatch));
}

#[test]
fn req_delimiter_is_stripped_and_restored() {
    let mut s = client_greeting().to_vec();
    s.extend_from_slice(b"\x04\x26\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ\x08Identity\x00\x00\x00\x00");
    s.extend_from_slice(&[0x01, 0x00, 0x00, 0x04, b'r', b'e', b'q', b'1']);
    let (events, _) = drive(&s, usize::MAX).unwrap();
    assert_eq!(events, vec!["ready ".to_string(), "msg req1".to_string()]);
}

/// NULL with `verify_null` (auth on, VIP.md §9.4): our READY waits for the decision; a refusal
/// is an ERROR `400` and no READY ever goes out.
#[test]
fn null_verify_holds_ready_until_allowed() {
    let limits = Limits::COMPILED;
    let cfg = SessionConfig { identity: b"rid", limits: &limits, curve: None };
    for allow in [true, false] {
        let mut out = Vec::new();
        let mut s = Session::new(Mechanism::Null, &mut out);
        s.verify_null();
        let mut rx = client_greeting().to_vec();
        let r = s.handle_input(&cfg, &mut rx, &mut out, &mut rand_core::OsRng).unwrap();
        let Input::NeedMore { consumed, .. } = r else { panic!("expected NeedMore, got {r:?}") };
        rx.drain(..consumed);
        assert!(!out.windows(5).any(|w| w == b"READY"), "READY sent before the decision");
        rx.extend_from_slice(DEALER_READY_AGENT1);
        let r = s.handle_input(&cfg, &mut rx, &mut out, &mut rand_core::OsRng).unwrap();
        let Input::Verify { consumed } = r else { panic!("expected Verify, got {r:?}") };
        rx.drain(..consumed);
        assert_eq!(s.credentials(), Credentials::Null);
        let r = s.authorize(&cfg, allow, &mut out);
        if allow {
            r.unwrap();
            assert!(out.windows(5).any(|w| w == b"READY"));
            let r = s.handle_input(&cfg, &mut rx, &mut out, &mut rand_core::OsRng).unwrap();
            assert!(matches!(r, Input::Ready { .. }), "{r:?}");
            assert_eq!(s.identity(), b"agent1");
        } else {
            assert_eq!(r, Err(SessionError::AuthDenied));
            assert!(!out.windows(5).any(|w| w == b"READY"));
            assert!(out.windows(3).any(|w| w == b"400"));
        }
    }
}
