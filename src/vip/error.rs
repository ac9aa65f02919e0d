//! VIP error replies (VIP.md §6): the one place where routing failures become wire frames.
//!
//! Layout (DEALER-side, what the failing sender reads):
//! `['', 'VIP1', USER, MSG_ID, 'error', ERRNUM, ERRTEXT, ORIG_RECIPIENT, ORIG_SUBSYSTEM]`.

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
}
