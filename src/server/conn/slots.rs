//! Fixed connection slots (DESIGN.md §2.5 "Token and slot rule").
//!
//! `MAX_CONNECTIONS` slots are allocated at start-up (16 bytes each); a connection's state is
//! boxed on accept and freed on close. A slot's index is the peer's [`crate::vip::peers::PeerId`].
//! The mio token packs `index | generation << 16`, so an event still queued for a slot that
//! was closed and reused in the same turn is recognised as stale and ignored. Tokens below
//! 2^16 (generation 0) are reserved for listeners and signals.

use mio::Token;

use super::Conn;

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
        let generation = (t.0 >> 16) as u16 & 0x7FFF;
        if generation == 0 {
            return None;
        }
        Some(SlotId { index: (t.0 & 0xFFFF) as u16, generation })
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u16,
    conn: Option<Box<Conn>>,
}

/// The slot table.
#[derive(Debug)]
pub struct Slots {
    slots: Vec<Slot>,
    free: Vec<u16>,
    live: usize,
}

impl Slots {
    /// `capacity` empty slots.
    pub fn new(capacity: usize) -> Slots {
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, Slot::default);
        // Pop from the end: low indexes first.
        let free = (0..capacity as u16).rev().collect();
        Slots { slots, free, live: 0 }
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.live
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
        slot.conn = Some(conn);
        self.live += 1;
        Ok(SlotId { index, generation: slot.generation })
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
        Some(conn)
    }

    /// Ids of every live connection.
    pub fn ids(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(i, s)| SlotId { index: i as u16, generation: s.generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reserved_tokens_are_not_slots() {
        let id = SlotId { index: 4095, generation: 0x7FFF };
        assert_eq!(SlotId::from_token(id.token()), Some(id));
        assert_eq!(SlotId::from_token(Token(0)), None);
        assert_eq!(SlotId::from_token(Token(17)), None);
    }
}
