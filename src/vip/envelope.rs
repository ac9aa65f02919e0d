//! The VIP envelope: a view over the frames of one message (VIP.md §3.1, §4 steps 1–3).

use super::SIGNATURE;
use crate::zmtp::Message;

/// A message that passed the envelope checks of VIP.md §4.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// Destination identity; empty = the router.
    pub recipient: &'a [u8],
    /// USER_ID as the peer sent it (ignored except where pubsub passes it on, §3.5).
    pub user_id: &'a [u8],
    /// Opaque request id, echoed byte-exact (§3.4).
    pub msg_id: &'a [u8],
    /// Subsystem name.
    pub subsystem: &'a [u8],
    msg: Message<'a>,
}

/// Why a message is not a VIP envelope. All are dropped silently (§4 step 1, §16.2 A13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// A single empty frame: a ZMQ_PROBE_ROUTER probe; the sender is registered (§2.4 item 4).
    Probe,
    /// Fewer than five frames from the peer (six in the router-side view).
    TooFewFrames,
    /// Frame 1 is not `VIP1`; the sender is not registered.
    BadSignature,
}

impl<'a> Envelope<'a> {
    /// Check and split `msg`.
    ///
    /// # Errors
    /// [`EnvelopeError`] as documented on its variants.
    pub fn parse(msg: Message<'a>) -> Result<Envelope<'a>, EnvelopeError> {
        if msg.len() < 5 {
            if msg.len() == 1 && msg.frame(0).is_empty() {
                return Err(EnvelopeError::Probe);
            }
            return Err(EnvelopeError::TooFewFrames);
        }
        if msg.frame(1) != SIGNATURE {
            return Err(EnvelopeError::BadSignature);
        }
        Ok(Envelope {
            recipient: msg.frame(0),
            user_id: msg.frame(2),
            msg_id: msg.frame(3),
            subsystem: msg.frame(4),
            msg,
        })
    }

    /// Number of argument frames.
    pub fn arg_count(&self) -> usize {
        self.msg.len().saturating_sub(5)
    }

    /// Argument `i` (frame 5 + i), empty past the end.
    pub fn arg(&self, i: usize) -> &'a [u8] {
        self.msg.frame(5 + i)
    }

    /// Argument `i`, or `None` past the end.
    pub fn get_arg(&self, i: usize) -> Option<&'a [u8]> {
        self.msg.get(5 + i)
    }

    /// Every frame from `first` on.
    pub fn frames_from(&self, first: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        let msg = self.msg;
        (first..msg.len()).map(move |i| msg.frame(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::{Part, Parts};

    fn message(frames: &[&[u8]]) -> (Vec<u8>, Parts) {
        let mut buf = Vec::new();
        let mut parts = Parts::new();
        for f in frames {
            parts.push(Part { start: buf.len() as u32, len: f.len() as u32 }).unwrap();
            buf.extend_from_slice(f);
        }
        (buf, parts)
    }

    #[test]
    fn parses_hello_of_vip_e1() {
        let (buf, parts) = message(&[b"", b"VIP1", b"", b"connect.hello.0", b"hello", b"hello"]);
        let e = Envelope::parse(Message::new(&buf, &parts)).unwrap();
        assert_eq!(e.recipient, b"");
        assert_eq!(e.msg_id, b"connect.hello.0");
        assert_eq!(e.subsystem, b"hello");
        assert_eq!(e.arg_count(), 1);
        assert_eq!(e.arg(0), b"hello");
        assert_eq!(e.arg(5), b"");
    }

    #[test]
    fn short_bad_and_probe() {
        let (buf, parts) = message(&[b""]);
        assert_eq!(Envelope::parse(Message::new(&buf, &parts)).err(), Some(EnvelopeError::Probe));
        let (buf, parts) = message(&[b"x"]);
        assert_eq!(Envelope::parse(Message::new(&buf, &parts)).err(), Some(EnvelopeError::TooFewFrames));
        let (buf, parts) = message(&[b"", b"VIP1", b"", b""]);
        assert_eq!(Envelope::parse(Message::new(&buf, &parts)).err(), Some(EnvelopeError::TooFewFrames));
        let (buf, parts) = message(&[b"", b"VIP2", b"", b"", b"hello"]);
        assert_eq!(Envelope::parse(Message::new(&buf, &parts)).err(), Some(EnvelopeError::BadSignature));
    }
}
