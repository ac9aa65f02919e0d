//! The peer table: routing identity ↔ [`PeerId`], and the VIP peer set (VIP.md §2.4, §8).
//!
//! Two notions, as in VOLTTRON:
//! * **attached** — a live connection owns this routing identity (libzmq ROUTER pipe). Only
//!   attached identities can be routed to. First wins: a second connection presenting an
//!   attached identity is refused ([`AttachError::Duplicate`]), as libzmq does without
//!   `ROUTER_HANDOVER` (§2.4 item 3).
//! * **registered** — member of the VIP peer set (`peerlist list`), joined by the peer's first
//!   valid VIP message and left by `agentstop` or disconnect (§8). Registered ⊆ attached.
//!
//! A [`PeerId`] is the connection's slot index, so the table needs no allocation per peer.
//!
//! Storage is fixed at construction for `capacity` peers: identity bytes in one zeroed arena
//! of `capacity × 256` bytes (zero-filled pages cost no resident memory until a peer uses
//! them, which keeps the idle router small), and an open-addressing index of `u16` with
//! linear probing and backward-shift deletion, sized to a power of two ≥ 2 × capacity so it is
//! at most half full. Keys are hashed with CRC-32 (`crc32fast`, hardware-accelerated on x86-64
//! and ARMv8). CRC is not collision-resistant, but the table is bounded: a hostile set of
//! identities can at worst make lookups scan the (half-empty) index.

/// A connected peer: the index of its connection slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u16);

impl PeerId {
    /// As an index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Why an identity could not be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Another live connection holds this identity (first wins).
    Duplicate(PeerId),
    /// The peer id is outside the table, or the identity is empty or over 255 bytes.
    Invalid,
}

const SLOT_BYTES: usize = 256;
const FREE: u8 = 0;
const ATTACHED: u8 = 1;

/// Fixed-capacity identity table and peer set.
pub struct PeerTable {
    capacity: usize,
    /// `capacity × 256` identity bytes.
    ids: Vec<u8>,
    lens: Vec<u8>,
    hashes: Vec<u32>,
    state: Vec<u8>,
    /// Open-addressing index: 0 = empty, else peer index + 1.
    index: Vec<u16>,
    mask: usize,
    /// Registered peers, dense, in join order (swap-remove on leave).
    registered: Vec<u16>,
    /// Position in `registered` + 1 per peer (0 = not registered).
    reg_pos: Vec<u16>,
    next_generated: u32,
    attached: usize,
}

fn hash(identity: &[u8]) -> u32 {
    crc32fast::hash(identity)
}

impl PeerTable {
    /// A table for `capacity` peers (≤ 65 535). `seed` starts the generated-id counter, as
    /// libzmq starts it at a random value (ZMTP.md §9.1).
    pub fn new(capacity: usize, seed: u32) -> PeerTable {
        let capacity = capacity.min(u16::MAX as usize - 1);
        let slots = (capacity * 2).next_power_of_two().max(4);
        PeerTable {
            capacity,
            ids: vec![0u8; capacity * SLOT_BYTES],
            lens: vec![0u8; capacity],
            hashes: vec![0u32; capacity],
            state: vec![FREE; capacity],
            index: vec![0u16; slots],
            mask: slots - 1,
            registered: Vec::with_capacity(capacity),
            reg_pos: vec![0u16; capacity],
            next_generated: seed,
            attached: 0,
        }
    }

    /// Bytes a table for `capacity` peers allocates (see [`PeerTable::new`]).
    pub fn table_bytes(capacity: usize) -> usize {
        let capacity = capacity.min(u16::MAX as usize - 1);
        let slots = (capacity * 2).next_power_of_two().max(4);
        // identity bytes, length, hash, state, registered list and position, index
        capacity * (SLOT_BYTES + 1 + 4 + 1 + 2 + 2) + slots * 2
    }

    /// Maximum number of peers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of attached identities.
    pub fn attached_len(&self) -> usize {
        self.attached
    }

    /// The peer attached under `identity`, if any.
    pub fn lookup(&self, identity: &[u8]) -> Option<PeerId> {
        if identity.is_empty() || identity.len() >= SLOT_BYTES {
            return None;
        }
        let mut i = hash(identity) as usize & self.mask;
        loop {
            let v = *self.index.get(i)?;
            if v == 0 {
                return None;
            }
            let peer = PeerId(v - 1);
            if self.identity(peer) == identity {
                return Some(peer);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Attach `identity` (1..=255 bytes) to `peer`.
    ///
    /// # Errors
    /// [`AttachError::Duplicate`] when another peer holds it; [`AttachError::Invalid`] for an
    /// empty or oversized identity, a peer id outside the table, or a peer already attached.
    pub fn attach(&mut self, peer: PeerId, identity: &[u8]) -> Result<(), AttachError> {
        let p = peer.index();
        if identity.is_empty() || identity.len() >= SLOT_BYTES || p >= self.capacity {
            return Err(AttachError::Invalid);
        }
        if self.state.get(p) != Some(&FREE) {
            return Err(AttachError::Invalid);
        }
        if let Some(holder) = self.lookup(identity) {
            return Err(AttachError::Duplicate(holder));
        }
        let h = hash(identity);
        let len = u8::try_from(identity.len()).map_err(|_| AttachError::Invalid)?;
        let base = p * SLOT_BYTES;
        let dst = self.ids.get_mut(base..base + identity.len()).ok_or(AttachError::Invalid)?;
        dst.copy_from_slice(identity);
        if let (Some(l), Some(hh), Some(s)) = (self.lens.get_mut(p), self.hashes.get_mut(p), self.state.get_mut(p)) {
            *l = len;
            *hh = h;
            *s = ATTACHED;
        }
        let mut i = h as usize & self.mask;
        // The index is at most half full, so an empty slot exists.
        while let Some(v) = self.index.get_mut(i) {
            if *v == 0 {
                *v = peer.0 + 1;
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.attached += 1;
        Ok(())
    }

    /// A fresh 5-byte identity `00 ‖ u32 BE` not in use (ZMTP.md §9.1), for peers that sent
    /// an empty `Identity`.
    pub fn generate_identity(&mut self) -> [u8; 5] {
        loop {
            self.next_generated = self.next_generated.wrapping_add(1);
            let c = self.next_generated.to_be_bytes();
            let id = [0, c[0], c[1], c[2], c[3]];
            if self.lookup(&id).is_none() {
                return id;
            }
        }
    }

    /// Detach `peer` (its connection closed), leaving the peer set too. Returns whether it was
    /// registered (the caller then announces `peerlist drop`).
    pub fn detach(&mut self, peer: PeerId) -> bool {
        let p = peer.index();
        if self.state.get(p) != Some(&ATTACHED) {
            return false;
        }
        let was_registered = self.unregister(peer);
        // Find the index slot holding `peer`.
        let Some(&h) = self.hashes.get(p) else { return was_registered };
        let mut i = h as usize & self.mask;
        loop {
            match self.index.get(i) {
                Some(&v) if v == peer.0 + 1 => break,
                Some(&0) | None => return was_registered, // not found: cannot happen
                Some(_) => i = (i + 1) & self.mask,
            }
        }
        // Backward-shift deletion keeps every probe chain unbroken.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let v = self.index.get(j).copied().unwrap_or(0);
            if v == 0 {
                break;
            }
            let home = self.hashes.get(usize::from(v - 1)).copied().unwrap_or(0) as usize & self.mask;
            // Move the entry at j into the hole at i if its home is not in (i, j] cyclically.
            let in_range = if i <= j { i < home && home <= j } else { i < home || home <= j };
            if !in_range {
                if let Some(slot) = self.index.get_mut(i) {
                    *slot = v;
                }
                i = j;
            }
        }
        if let Some(slot) = self.index.get_mut(i) {
            *slot = 0;
        }
        if let (Some(s), Some(l)) = (self.state.get_mut(p), self.lens.get_mut(p)) {
            *s = FREE;
            *l = 0;
        }
        self.attached -= 1;
        was_registered
    }

    /// The identity attached to `peer` (empty if none).
    pub fn identity(&self, peer: PeerId) -> &[u8] {
        let p = peer.index();
        let len = usize::from(self.lens.get(p).copied().unwrap_or(0));
        let base = p * SLOT_BYTES;
        self.ids.get(base..base + len).unwrap_or(&[])
    }

    /// Is `peer` attached?
    pub fn is_attached(&self, peer: PeerId) -> bool {
        self.state.get(peer.index()) == Some(&ATTACHED)
    }

    /// Is `peer` in the VIP peer set?
    pub fn is_registered(&self, peer: PeerId) -> bool {
        self.reg_pos.get(peer.index()).is_some_and(|&p| p != 0)
    }

    /// Add an attached `peer` to the peer set; true if it was not a member.
    pub fn register(&mut self, peer: PeerId) -> bool {
        if !self.is_attached(peer) || self.is_registered(peer) {
            return false;
        }
        self.registered.push(peer.0);
        if let Some(pos) = self.reg_pos.get_mut(peer.index()) {
            // At most `capacity` (< u16::MAX) peers are registered.
            *pos = u16::try_from(self.registered.len()).unwrap_or(u16::MAX);
        }
        true
    }

    /// Remove `peer` from the peer set; true if it was a member.
    pub fn unregister(&mut self, peer: PeerId) -> bool {
        let Some(pos) = self.reg_pos.get_mut(peer.index()) else { return false };
        if *pos == 0 {
            return false;
        }
        let at = usize::from(*pos - 1);
        *pos = 0;
        self.registered.swap_remove(at);
        if let Some(&moved) = self.registered.get(at)
            && let Some(mp) = self.reg_pos.get_mut(usize::from(moved))
        {
            *mp = u16::try_from(at + 1).unwrap_or(u16::MAX); // at < registered.len() ≤ capacity
        }
        true
    }

    /// The peer set, in no particular order (VIP.md §5.3: agents do not depend on it).
    pub fn registered(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.registered.iter().map(|&p| PeerId(p))
    }

    /// Size of the peer set.
    pub fn registered_len(&self) -> usize {
        self.registered.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_lookup_detach() {
        let mut t = PeerTable::new(8, 0);
        assert_eq!(t.attach(PeerId(3), b"agent.a"), Ok(()));
        assert_eq!(t.attach(PeerId(4), b"agent.a"), Err(AttachError::Duplicate(PeerId(3))));
        assert_eq!(t.attach(PeerId(4), b""), Err(AttachError::Invalid));
        assert_eq!(t.attach(PeerId(8), b"x"), Err(AttachError::Invalid));
        assert_eq!(t.lookup(b"agent.a"), Some(PeerId(3)));
        assert_eq!(t.identity(PeerId(3)), b"agent.a");
        assert!(t.register(PeerId(3)));
        assert!(!t.register(PeerId(3)));
        assert!(t.detach(PeerId(3)));
        assert_eq!(t.lookup(b"agent.a"), None);
        assert_eq!(t.registered_len(), 0);
        assert_eq!(t.attach(PeerId(4), b"agent.a"), Ok(()), "identity free again");
    }

    #[test]
    fn generated_ids_skip_used_ones() {
        let mut t = PeerTable::new(8, 0x6b8b4566);
        let a = t.generate_identity();
        assert_eq!(a, [0, 0x6b, 0x8b, 0x45, 0x67]);
        t.attach(PeerId(0), &a).unwrap();
        t.attach(PeerId(1), &[0, 0x6b, 0x8b, 0x45, 0x68]).unwrap();
        assert_eq!(t.generate_identity(), [0, 0x6b, 0x8b, 0x45, 0x69]);
    }

    /// Random attach/detach against a naive model, including colliding probe chains.
    #[test]
    fn matches_a_naive_model() {
        let cap = 64;
        let mut t = PeerTable::new(cap, 1);
        let mut model: Vec<Option<Vec<u8>>> = vec![None; cap];
        let mut rng = 0x1234_5678u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..20_000 {
            let p = (next() % cap as u64) as usize;
            let name = format!("id{}", next() % 100).into_bytes();
            if next() % 2 == 0 {
                let holder = model.iter().position(|m| m.as_deref() == Some(&name[..]));
                let r = t.attach(PeerId(p as u16), &name);
                match (model[p].is_some(), holder) {
                    (true, _) => assert_eq!(r, Err(AttachError::Invalid)),
                    (false, Some(h)) => assert_eq!(r, Err(AttachError::Duplicate(PeerId(h as u16)))),
                    (false, None) => {
                        assert_eq!(r, Ok(()));
                        model[p] = Some(name);
                    }
                }
            } else {
                t.detach(PeerId(p as u16));
                model[p] = None;
            }
            for (i, m) in model.iter().enumerate() {
                if let Some(n) = m {
                    assert_eq!(t.lookup(n), Some(PeerId(i as u16)));
                }
            }
        }
    }

    #[test]
    fn registered_set_swap_remove_keeps_positions() {
        let mut t = PeerTable::new(8, 0);
        for i in 0..5u16 {
            t.attach(PeerId(i), format!("p{i}").as_bytes()).unwrap();
            t.register(PeerId(i));
        }
        assert!(t.unregister(PeerId(1)));
        assert!(t.unregister(PeerId(4)));
        let mut left: Vec<u16> = t.registered().map(|p| p.0).collect();
        left.sort();
        assert_eq!(left, vec![0, 2, 3]);
        assert!(t.unregister(PeerId(0)) && t.unregister(PeerId(2)) && t.unregister(PeerId(3)));
        assert_eq!(t.registered_len(), 0);
    }
}
