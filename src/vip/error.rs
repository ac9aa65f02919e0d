//! VIP error replies (VIP.md §6): the one place where routing failures become wire frames.
//!
//! Layout (DEALER-side, what the failing sender reads):
//! `['', 'VIP1', USER, MSG_ID, 'error', ERRNUM, ERRTEXT, ORIG_RECIPIENT, ORIG_SUBSYSTEM]`.
//!
//! # MSG_ID in the errors the router generates ([`ErrorMsgId`], README "Choices")
//!
//! VIP.md §6.3 says MSG_ID must come back byte-exact for the sender to find its pending request.
//! Byte-exact is not enough for VOLTTRON's own agent library: it decodes every received frame
//! as latin-1 and then tries `json.loads` on it (`volttron/utils/frame_serialization.py:40-69`,
//! VIP.md §3.7), so a MSG_ID that is valid JSON comes back as the parsed value, not as the text
//! it sent. RPC's MSG_ID is `f"{counter}.{hash(result)}"` (`vip/agent/subsystems/rpc.py:556`),
//! e.g. `1795550813.8764837066011`, a JSON number: the error reaches `RPC._handle_error`
//! (`rpc.py:499-505`) with the float `1795550813.8764837`, `self._outstanding.pop(...)` misses
//! the string key, and the caller waits for its timeout instead of getting `Unreachable`
//! (VOLTTRON issues #2117, #2789). (The ids of `ResultsDictionary`, `'%f.%f'`, used by pubsub,
//! peerlist, ping, query and hello, are never JSON and are not affected.)
//!
//! With [`ErrorMsgId::AgentReadable`] (the default), the router writes such a MSG_ID — one its
//! JSON reader ([`crate::json::parse`], Python's `json.loads` dialect) accepts — in the errors it
//! generates itself (113, 11, 93, -32001) as a JSON **string** whose value is that text:
//! `"1795550813.8764837066011"`, which `json.loads` turns back into exactly the agent's key.
//! Everything else is unchanged: forwarded frames are never touched, replies other than errors
//! keep MSG_ID byte-exact, and a MSG_ID that is not JSON (every id the agent library makes
//! except RPC's, and every id a non-Python client is likely to use) is echoed byte-exact; a JSON
//! MSG_ID whose quoted form would exceed [`MAX_QUOTED_MSG_ID`] bytes is echoed as is.
//! [`ErrorMsgId::Verbatim`] (`[viprouter] error-msg-id = verbatim`) echoes every MSG_ID
//! byte-exact, for clients that compare the frame bytes.

/// A router-generated VIP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VipErrno {
    /// 113: the destination is not connected.
    HostUnreachable,
    /// 11: the destination's queue is full.
    Again,
    /// 93: unknown router subsystem (also `quit` from anyone but `control`).
    ProtoNotSupported,
}

impl VipErrno {
    /// ERRNUM frame (decimal ASCII, Linux errno).
    pub fn number(self) -> &'static [u8] {
        match self {
            VipErrno::HostUnreachable => b"113",
            VipErrno::Again => b"11",
            VipErrno::ProtoNotSupported => b"93",
        }
    }

    /// ERRTEXT frame (Linux `strerror`).
    pub fn text(self) -> &'static [u8] {
        match self {
            VipErrno::HostUnreachable => b"No route to host",
            VipErrno::Again => b"Resource temporarily unavailable",
            VipErrno::ProtoNotSupported => b"Protocol not supported",
        }
    }
}

/// How MSG_ID is written in the errors the router generates (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorMsgId {
    /// A MSG_ID that is valid JSON is written as a JSON string of its text, so that VOLTTRON's
    /// agent library (which JSON-parses every frame) reads back its own id (default).
    #[default]
    AgentReadable,
    /// Every MSG_ID is echoed byte-exact.
    Verbatim,
}

/// Longest quoted MSG_ID written by [`ErrorMsgId::AgentReadable`] (see `limits`).
pub use crate::limits::MAX_QUOTED_MSG_ID;

impl ErrorMsgId {
    /// The config value of `[viprouter] error-msg-id`: `agent-readable` or `verbatim`.
    #[must_use]
    pub fn from_config(value: &str) -> Option<Self> {
        match value {
            "agent-readable" => Some(ErrorMsgId::AgentReadable),
            "verbatim" => Some(ErrorMsgId::Verbatim),
            _ => None,
        }
    }

    /// The MSG_ID frame for an error answering a message whose MSG_ID was `msg_id`: `msg_id`
    /// itself, or its quoted form written into `buf`. Allocates nothing.
    pub fn msg_id<'a>(self, msg_id: &'a [u8], buf: &'a mut [u8; MAX_QUOTED_MSG_ID]) -> &'a [u8] {
        if self == ErrorMsgId::Verbatim || msg_id.len() + 2 > MAX_QUOTED_MSG_ID || crate::json::parse(msg_id).is_err() {
            return msg_id;
        }
        quote(msg_id, buf).unwrap_or(msg_id)
    }
}

/// `bytes` (latin-1 text) as a JSON string literal, ASCII only: `"` and `\` escaped, every byte
/// outside 0x20..=0x7E as `\u00XX`; `None` if it does not fit `buf`.
fn quote<'a>(bytes: &[u8], buf: &'a mut [u8; MAX_QUOTED_MSG_ID]) -> Option<&'a [u8]> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = |n: u8| HEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'0');
    let mut len = 0usize;
    let mut put = |chunk: &[u8]| -> Option<()> {
        let end = len.checked_add(chunk.len())?;
        buf.get_mut(len..end)?.copy_from_slice(chunk);
        len = end;
        Some(())
    };
    put(b"\"")?;
    for &b in bytes {
        match b {
            b'"' | b'\\' => put(&[b'\\', b])?,
            0x20..=0x7e => put(&[b])?,
            _ => put(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b)])?,
        }
    }
    put(b"\"")?;
    buf.get(..len)
}

/// The frames of an error reply, ready for a `Sink`.
pub fn error_frames<'a>(
    user: &'a [u8],
    msg_id: &'a [u8],
    errno: VipErrno,
    orig_recipient: &'a [u8],
    orig_subsystem: &'a [u8],
) -> [&'a [u8]; 9] {
    [b"", super::SIGNATURE, user, msg_id, b"error", errno.number(), errno.text(), orig_recipient, orig_subsystem]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4_2_frames() {
        let f = error_frames(b"agent.a", b"n1", VipErrno::HostUnreachable, b"nobody", b"RPC");
        let expect: [&[u8]; 9] =
            [b"", b"VIP1", b"agent.a", b"n1", b"error", b"113", b"No route to host", b"nobody", b"RPC"];
        assert_eq!(f, expect);
        assert_eq!(VipErrno::ProtoNotSupported.text().len(), 22);
        assert_eq!(VipErrno::Again.text().len(), 32);
    }

    fn readable(id: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; MAX_QUOTED_MSG_ID];
        ErrorMsgId::AgentReadable.msg_id(id, &mut buf).to_vec()
    }

    /// Only ids the agent library would not read back as their own text are quoted; the quoted
    /// form is a JSON string whose value is exactly the original latin-1 text.
    #[test]
    fn json_msg_ids_are_quoted_for_the_agent_library() {
        // RPC's id (VIP.md §3.4) and every other JSON value.
        for (id, want) in [
            (&b"1795550813.8764837066011"[..], &br#""1795550813.8764837066011""#[..]),
            (b"7", br#""7""#),
            (b" 7 ", br#"" 7 ""#),
            (b"-1e400", br#""-1e400""#),
            (b"NaN", br#""NaN""#),
            (b"true", br#""true""#),
            (b"null", br#""null""#),
            (b"[1, 2]", br#""[1, 2]""#),
            (br#"{"a": "\\"}"#, br#""{\"a\": \"\\\\\"}""#),
            (br#""x""#, br#""\"x\"""#),
            (b"\"caf\xe9\"", br#""\"caf\u00e9\"""#),
        ] {
            assert_eq!(readable(id), want, "{}", id.escape_ascii());
        }
        // Not JSON: the agent library reads the text itself, so it is echoed byte-exact.
        for id in [
            &b""[..],
            b"connect.hello.0",
            b"1795550810.000000.8727080168650.000000",
            b"1795550813.-8764837066011",
            b"n1",
            b"1 2",
            b"\xff\xfe",
            b"\"a\nb\"",
        ] {
            assert_eq!(readable(id), id, "{}", id.escape_ascii());
        }
        let mut buf = [0u8; MAX_QUOTED_MSG_ID];
        assert_eq!(ErrorMsgId::Verbatim.msg_id(b"1.5", &mut buf), b"1.5");
        // Too long to quote: unchanged.
        let long = [b'1'; MAX_QUOTED_MSG_ID - 1];
        assert_eq!(readable(&long), long);
        let fits = [b'1'; MAX_QUOTED_MSG_ID - 2];
        assert_eq!(readable(&fits).len(), MAX_QUOTED_MSG_ID);
        let wide = [&b"\""[..], &[0xe9u8; 60][..], b"\""].concat();
        assert_eq!(readable(&wide), wide, "60 escapes of 6 bytes do not fit: unchanged");
        assert_eq!(ErrorMsgId::from_config("verbatim"), Some(ErrorMsgId::Verbatim));
        assert_eq!(ErrorMsgId::from_config("agent-readable"), Some(ErrorMsgId::AgentReadable));
        assert_eq!(ErrorMsgId::from_config("Verbatim"), None);
    }
}
