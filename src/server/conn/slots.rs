//! Fixed connection slots (DESIGN.md §2.5 "Token and slot rule").
//!
//! `MAX_CONNECTIONS` slots are allocated at start-up ([`Slots::table_bytes`]); a connection's
//! state is boxed on accept and freed on close. The table also keeps the counts of unfinished
//! and of half-open handshakes of accepted connections, which only change here
//! ([`Slots::set_phase`]), and chooses the half-open connection the handshake limit evicts
//! ([`Slots::eviction_victim`]). A connection whose message is being routed is checked out of
//! its slot ([`Slots::check_out`]) and back in ([`Slots::check_in`]): the slot stays its own
//! meanwhile. A slot's index is the peer's [`crate::vip::peers::PeerId`].
//! The mio token packs `index | generation << 16`, so an event still queued for a slot that
//! was closed and reused in the same turn is recognised as stale and ignored. Tokens below
//! 2^16 (generation 0) are reserved for listeners and signals.

use mio::Token;

use super::{Conn, Origin, Phase};
use crate::zmtp::session::HandshakeProgress;

/// A slot index with the generation it had when the token was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId {
    /// Index into the slot table.
    pub index: u16,
    /// Generation (1..=0x7FFF; 0 is never used by a live slot).
    pub generation: u16,
}

impl SlotId {
    /// The mio token for this slot.
    pub fn token(self) -> Token {
        Token(usize::from(self.index) | (usize::from(self.generation) << 16))
    }

    /// The slot a token names, or `None` for reserved tokens.
    pub fn from_token(t: Token) -> Option<SlotId> {
        // Both fields are masked to 16 bits first: the conversions cannot fail.
        let generation = u16::try_from((t.0 >> 16) & 0x7FFF).ok()?;
        if generation == 0 {
            return None;
        }
        Some(SlotId { index: u16::try_from(t.0 & 0xFFFF).ok()?, generation })
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u16,
    conn: Option<Box<Conn>>,
}

/// Upper bound of one slot and its free-list entry, on any target (checked by a test).
pub const SLOT_BYTES: usize = 24;

/// Upper bound of one connection's boxed state outside its buffers (the ZMTP session inline,
/// whose message frames table is most of it), on any target (checked by a test).
pub const CONN_STATE_BYTES: usize = 1536;

/// The slot table.
#[derive(Debug)]
pub struct Slots {
    slots: Vec<Slot>,
    free: Vec<u16>,
    live: usize,
    /// Accepted connections still in their handshake.
    handshaking: usize,
    /// Of those, the half-open ones ([`Phase::Handshaking`]).
    half_open: usize,
}

/// An accepted connection in its handshake (dialled ones are ours and never evicted):
/// `(unfinished, half-open)`, half-open counting towards the handshake limit.
fn handshake_counts(conn: &Conn) -> (usize, usize) {
    if !matches!(conn.origin, Origin::Accepted { .. }) {
        return (0, 0);
    }
    match conn.phase {
        Phase::Handshaking { .. } => (1, 1),
        Phase::AwaitingPeer { .. } => (1, 0),
        Phase::Connecting { .. } | Phase::Attached | Phase::Duplicate | Phase::Linked => (0, 0),
    }
}

impl Slots {
    /// `capacity` empty slots (at most 2^16: a slot index is a u16, limits.rs).
    pub fn new(capacity: usize) -> Slots {
        let capacity = capacity.min(usize::from(u16::MAX) + 1);
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, Slot::default);
        // Pop from the end: low indexes first.
        let free = (0..=u16::MAX).take(capacity).rev().collect();
        Slots { slots, free, live: 0, handshaking: 0, half_open: 0 }
    }

    /// Bytes the table of `capacity` slots takes at start-up, with the connection state each
    /// live slot boxes: an upper bound, the same on every target (buffers are counted in the
    /// budget).
    pub fn table_bytes(capacity: usize) -> usize {
        capacity * (SLOT_BYTES + CONN_STATE_BYTES)
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Accepted connections still in their handshake.
    pub fn handshaking(&self) -> usize {
        self.handshaking
    }

    /// Accepted connections in their handshake with our side of it not done (the handshake
    /// limit counts these).
    pub fn half_open(&self) -> usize {
        self.half_open
    }

    /// Move connection `id` to `phase`, keeping the handshake counts.
    pub fn set_phase(&mut self, id: SlotId, phase: Phase) {
        let Some(conn) = self.get_mut(id) else { return };
        let before = handshake_counts(conn);
        conn.phase = phase;
        let after = handshake_counts(conn);
        self.count(after, before);
    }

    /// Add `add` to the handshake counts and take `sub` off.
    fn count(&mut self, add: (usize, usize), sub: (usize, usize)) {
        self.handshaking = self.handshaking + add.0 - sub.0;
        self.half_open = self.half_open + add.1 - sub.1;
    }

    /// After input: a half-open connection whose side of the handshake is now done (its NULL
    /// READY went out) is [`Phase::AwaitingPeer`] from now on — no longer half-open, never
    /// evicted for a newer connection.
    #[inline]
    pub fn note_handshake_progress(&mut self, id: SlotId) {
        let Some(conn) = self.get_mut(id) else { return };
        if let Phase::Handshaking { since } = conn.phase
            && conn.driver.handshake_progress() == Some(HandshakeProgress::OurSideDone)
        {
            self.set_phase(id, Phase::AwaitingPeer { since });
        }
    }

    /// The half-open connection to close when the handshake limit is reached: the one with the
    /// least progress, the oldest among equals ([`Conn::eviction_rank`]).
    pub fn eviction_victim(&self) -> Option<SlotId> {
        self.ids()
            .filter_map(|id| Some((self.peek(id.index)?.eviction_rank()?, id)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, id)| id)
    }

    /// True when no slot is free.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Put `conn` into a free slot.
    ///
    /// # Errors
    /// Gives `conn` back when every slot is taken.
    pub fn insert(&mut self, conn: Box<Conn>) -> Result<SlotId, Box<Conn>> {
        let Some(index) = self.free.pop() else { return Err(conn) };
        let Some(slot) = self.slots.get_mut(usize::from(index)) else { return Err(conn) };
        slot.generation = if slot.generation >= 0x7FFF { 1 } else { slot.generation + 1 };
        let counts = handshake_counts(&conn);
        slot.conn = Some(conn);
        let generation = slot.generation;
        self.count(counts, (0, 0));
        self.live += 1;
        Ok(SlotId { index, generation })
    }

    /// The connection of `id`, if that slot still holds the same generation.
    pub fn get_mut(&mut self, id: SlotId) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(usize::from(id.index))?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_deref_mut()
    }

    /// The connection in slot `index`, whatever its generation.
    pub fn by_index(&mut self, index: u16) -> Option<&mut Conn> {
        self.slots.get_mut(usize::from(index))?.conn.as_deref_mut()
    }

    /// Shared access to the connection in slot `index`.
    pub fn peek(&self, index: u16) -> Option<&Conn> {
        self.slots.get(usize::from(index))?.conn.as_deref()
    }

    /// The connection in slot `index` with its live id: [`id_of`](Self::id_of) and
    /// [`get_mut`](Self::get_mut) in one look.
    #[inline]
    pub fn live_mut(&mut self, index: u16) -> Option<(SlotId, &mut Conn)> {
        let slot = self.slots.get_mut(usize::from(index))?;
        let id = SlotId { index, generation: slot.generation };
        slot.conn.as_deref_mut().map(|c| (id, c))
    }

    /// The live id of slot `index`.
    pub fn id_of(&self, index: u16) -> Option<SlotId> {
        let slot = self.slots.get(usize::from(index))?;
        slot.conn.as_ref().map(|_| SlotId { index, generation: slot.generation })
    }

    /// Take the connection out of `id`'s slot and free the slot.
    pub fn remove(&mut self, id: SlotId) -> Option<Box<Conn>> {
        let slot = self.slots.get_mut(usize::from(id.index))?;
        if slot.generation != id.generation {
            return None;
        }
        let conn = slot.conn.take()?;
        self.free.push(id.index);
        self.live -= 1;
        self.count((0, 0), handshake_counts(&conn));
        Some(conn)
    }

    /// Take connection `id` out of its slot while its message is routed; the slot stays its
    /// own (not free, same generation) until [`Slots::check_in`].
    pub fn check_out(&mut self, id: SlotId) -> Option<Box<Conn>> {
        let slot = self.slots.get_mut(usize::from(id.index))?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.take()
    }

    /// Put a checked-out connection back.
    pub fn check_in(&mut self, id: SlotId, conn: Box<Conn>) {
        if let Some(slot) = self.slots.get_mut(usize::from(id.index))
            && slot.generation == id.generation
            && slot.conn.is_none()
        {
            slot.conn = Some(conn);
        }
    }

    /// Ids of every live connection.
    pub fn ids(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            // Every index fits u16 (`new` caps the table at 2^16 slots).
            .filter_map(|(i, s)| Some(SlotId { index: u16::try_from(i).ok()?, generation: s.generation }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_bounds_hold_on_this_target() {
        assert!(core::mem::size_of::<Slot>() + core::mem::size_of::<u16>() <= SLOT_BYTES);
        assert!(core::mem::size_of::<Conn>() <= CONN_STATE_BYTES, "Conn is {} bytes", core::mem::size_of::<Conn>());
    }

    #[test]
    fn tokens_round_trip_and_reserved_tokens_are_not_slots() {
        let id = SlotId { index: 4095, generation: 0x7FFF };
        assert_eq!(SlotId::from_token(id.token()), Some(id));
        assert_eq!(SlotId::from_token(Token(0)), None);
        assert_eq!(SlotId::from_token(Token(17)), None);
    }
}
