//! The bindings of the bridge's queue (memo §6.1): `N.<identity>` for each local peer,
//! `__pubsub__.*.<prefix>.#` for each local `all_platforms` prefix. The client keeps the set
//! the caller wants across reconnects and brings the broker in line with it one synchronous
//! `queue.bind`/`queue.unbind` at a time; after a reconnect (a new, empty exclusive queue)
//! every wanted key is bound again.
//!
//! Capacity is fixed at start-up ([`crate::limits::AMQP_MAX_BINDINGS`]): the table is reserved
//! once; adding a key copies it into a slot (a control-path allocation per key, never on the
//! message path).

use core::fmt;

/// Where one key stands with the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not bound (never, or not since the last reconnect).
    Unbound,
    /// A request is in flight: queue.bind (`true`) or queue.unbind (`false`).
    Sent(bool),
    /// Bound.
    Bound,
}

#[derive(Clone, Debug)]
struct Entry {
    key: Box<[u8]>,
    /// The caller wants it bound.
    want: bool,
    state: State,
}

/// Why a binding was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindError {
    /// [`crate::limits::AMQP_MAX_BINDINGS`] keys are held already.
    Full,
    /// A routing key is a short string: at most 255 bytes.
    TooLong,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Full => write!(f, "binding table full"),
            BindError::TooLong => write!(f, "routing key over 255 bytes"),
        }
    }
}

/// A request the client must send next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// queue.bind with this key.
    Bind(&'a [u8]),
    /// queue.unbind with this key.
    Unbind(&'a [u8]),
}

/// The wanted bindings and their state.
#[derive(Clone, Debug)]
pub struct Bindings {
    entries: Vec<Entry>,
    cap: usize,
    /// Index of the entry whose request is outstanding.
    in_flight: Option<usize>,
}

/// Bytes of a routing key at most (an AMQP short string).
const MAX_KEY_BYTES: usize = 255;

/// Upper bound of one [`Entry`] on any target (its size on a 64-bit one), so that the bound
/// `--print-limits` prints is the same on every build (checked at compile time).
const ENTRY_BYTES: usize = 24;
const _: () = assert!(core::mem::size_of::<Entry>() <= ENTRY_BYTES);

/// What the C library's `malloc` adds to a small block: its header and the rounding to 16 bytes
/// (glibc: a 255-byte key takes a 272-byte chunk).
const MALLOC_OVERHEAD: usize = 16;

impl Bindings {
    /// Bytes of a table of `cap` keys when it is full: the entries, reserved at [`Bindings::new`]
    /// (`ENTRY_BYTES` each), and one boxed key per entry, at most 255 bytes plus the allocator's
    /// overhead. Reached once `cap` peers and `all_platforms` prefixes with the longest names
    /// are bound.
    pub fn table_bytes(cap: usize) -> usize {
        cap.saturating_mul(ENTRY_BYTES + MAX_KEY_BYTES + MALLOC_OVERHEAD)
    }

    /// An empty set holding at most `cap` keys.
    pub fn new(cap: usize) -> Bindings {
        Bindings { entries: Vec::with_capacity(cap), cap, in_flight: None }
    }

    /// Keys wanted (bound or about to be).
    pub fn wanted(&self) -> usize {
        self.entries.iter().filter(|e| e.want).count()
    }

    /// Keys the broker has confirmed bound.
    pub fn bound(&self) -> usize {
        self.entries.iter().filter(|e| e.state == State::Bound).count()
    }

    /// Whether `key` is wanted.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.entries.iter().any(|e| &*e.key == key && e.want)
    }

    /// Want `key` bound (idempotent).
    ///
    /// # Errors
    /// [`BindError`] when the table is full or the key too long.
    pub fn add(&mut self, key: &[u8]) -> Result<(), BindError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(BindError::TooLong);
        }
        if let Some(e) = self.entries.iter_mut().find(|e| &*e.key == key) {
            e.want = true;
            return Ok(());
        }
        if self.entries.len() >= self.cap {
            return Err(BindError::Full);
        }
        self.entries.push(Entry { key: key.into(), want: true, state: State::Unbound });
        Ok(())
    }

    /// Want `key` unbound (no-op when it is not held).
    pub fn remove(&mut self, key: &[u8]) {
        let Some(i) = self.entries.iter().position(|e| &*e.key == key) else { return };
        if let Some(e) = self.entries.get_mut(i) {
            e.want = false;
        }
        self.forget_if_done(i);
    }

    /// Drop entry `i` when it is neither wanted nor bound nor in flight.
    fn forget_if_done(&mut self, i: usize) {
        if self.entries.get(i).is_some_and(|e| !e.want && e.state == State::Unbound) {
            self.entries.swap_remove(i);
            if self.in_flight == Some(self.entries.len()) {
                self.in_flight = Some(i);
            }
        }
    }

    /// The next request to send, marking it in flight; `None` when one is already in flight or
    /// the broker is in line with the wanted set.
    pub fn next_op(&mut self) -> Option<Op<'_>> {
        if self.in_flight.is_some() {
            return None;
        }
        let i = self
            .entries
            .iter()
            .position(|e| (e.want && e.state == State::Unbound) || (!e.want && e.state == State::Bound))?;
        self.in_flight = Some(i);
        let e = self.entries.get_mut(i)?;
        e.state = State::Sent(e.want);
        Some(if e.want { Op::Bind(&e.key) } else { Op::Unbind(&e.key) })
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The broker answered the request in flight (bind-ok or unbind-ok). Returns false when
    /// nothing was in flight (an unexpected reply).
    pub fn done(&mut self) -> bool {
        let Some(i) = self.in_flight.take() else { return false };
        let Some(e) = self.entries.get_mut(i) else { return false };
        e.state = match e.state {
            State::Sent(true) => State::Bound,
            State::Sent(false) => State::Unbound,
            _ => return false,
        };
        self.forget_if_done(i);
        true
    }

    /// A new connection (new, empty queue): every wanted key must be bound again; keys not
    /// wanted are simply gone.
    pub fn reconnect(&mut self) {
        self.in_flight = None;
        self.entries.retain(|e| e.want);
        for e in &mut self.entries {
            e.state = State::Unbound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_at_a_time_and_rebound_after_reconnect() {
        let mut b = Bindings::new(3);
        b.add(b"v1.a").unwrap();
        b.add(b"v1.b").unwrap();
        b.add(b"v1.a").unwrap();
        assert_eq!(b.wanted(), 2);
        assert_eq!(b.next_op(), Some(Op::Bind(b"v1.a")));
        assert_eq!(b.next_op(), None, "one in flight");
        assert!(b.done());
        assert_eq!(b.next_op(), Some(Op::Bind(b"v1.b")));
        b.remove(b"v1.b"); // while its bind is in flight
        assert!(b.done());
        assert_eq!(b.next_op(), Some(Op::Unbind(b"v1.b")));
        assert!(b.done());
        assert_eq!(b.next_op(), None);
        assert_eq!((b.wanted(), b.bound()), (1, 1));
        b.add(b"v1.c").unwrap();
        b.add(b"v1.d").unwrap();
        assert_eq!(b.add(b"v1.e"), Err(BindError::Full));
        assert_eq!(b.add(&[b'x'; 256]), Err(BindError::TooLong));
        b.remove(b"v1.d");
        b.reconnect();
        let mut ops = Vec::new();
        while let Some(op) = b.next_op() {
            ops.push(format!("{op:?}"));
            b.done();
        }
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(b.bound(), 2);
        assert!(!b.done(), "nothing in flight");
    }
}
