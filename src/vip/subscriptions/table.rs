//! The slots behind [`Subscriptions`]: the key table (distinct `(bus, prefix)` pairs, bytes
//! inline) with its open-addressing hash index, and the subscription records on their two
//! intrusive lists (per key, per peer), with the free lists of both.
//!
//! Contract: every method here keeps the invariants the parent's public methods rely on — a
//! live key is found through the index (linear probing, load ≤ 1/2, backward-shift deletion, no
//! tombstones), `len_count`/`longest` count the keys per prefix length, a key is freed with its
//! last subscription — and allocates nothing: slots come from the capacity reserved in
//! [`Subscriptions::new`], then from the free lists.

use super::hash::{entry_key, index_entry, key_hash};
use super::{FLAG_ALL, NIL, SubscribeError, Subscriptions};

#[derive(Clone, Copy, Debug)]
pub(super) struct KeySlot {
    pub(super) hash: u64,
    /// First subscription of this key; next free key while the slot is free.
    pub(super) head: u32,
    /// Number of subscriptions on this key (0 = slot free).
    pub(super) subs: u32,
    pub(super) bus_len: u16,
    pub(super) prefix_len: u16,
}

pub(super) const FREE_KEY: KeySlot = KeySlot { hash: 0, head: NIL, subs: 0, bus_len: 0, prefix_len: 0 };

#[derive(Clone, Copy, Debug)]
pub(super) struct SubSlot {
    pub(super) key: u32,
    pub(super) next_k: u32,
    pub(super) prev_k: u32,
    /// Next entry of the same peer; next free slot while the slot is free.
    pub(super) next_p: u32,
    pub(super) prev_p: u32,
    pub(super) peer: u16,
    pub(super) flags: u8,
}

pub(super) const FREE_SUB: SubSlot =
    SubSlot { key: NIL, next_k: NIL, prev_k: NIL, next_p: NIL, prev_p: NIL, peer: 0, flags: 0 };

pub(super) fn index_len(max_subscriptions: usize) -> Option<usize> {
    max_subscriptions.checked_mul(2)?.max(2).checked_next_power_of_two()
}

impl Subscriptions {
    pub(super) fn check(&self, peer: u16, bus: &[u8], prefix: &[u8]) -> Result<(), SubscribeError> {
        if usize::from(peer) >= self.limits.max_peers {
            Err(SubscribeError::PeerOutOfRange)
        } else if bus.len() > self.limits.max_bus_bytes {
            Err(SubscribeError::BusTooLong)
        } else if prefix.len() > self.limits.max_prefix_bytes {
            Err(SubscribeError::PrefixTooLong)
        } else {
            Ok(())
        }
    }

    pub(super) fn sub(&self, s: u32) -> Option<SubSlot> {
        self.subs.get(s as usize).copied()
    }

    pub(super) fn sub_mut(&mut self, s: u32) -> Option<&mut SubSlot> {
        self.subs.get_mut(s as usize)
    }

    pub(super) fn peer_first(&self, peer: u16) -> u32 {
        self.peer_head.get(usize::from(peer)).copied().unwrap_or(NIL)
    }

    pub(super) fn key_bus(&self, k: u32) -> &[u8] {
        let Some(key) = self.keys.get(k as usize) else {
            return &[];
        };
        let start = k as usize * self.stride;
        self.key_bytes.get(start..start + usize::from(key.bus_len)).unwrap_or_default()
    }

    pub(super) fn key_prefix(&self, k: u32) -> &[u8] {
        let Some(key) = self.keys.get(k as usize) else {
            return &[];
        };
        let start = k as usize * self.stride + self.limits.max_bus_bytes;
        self.key_bytes.get(start..start + usize::from(key.prefix_len)).unwrap_or_default()
    }

    pub(super) fn home(&self, hash: u64) -> usize {
        usize::try_from(hash & self.index_mask as u64).unwrap_or(0)
    }

    pub(super) fn lookup(&self, hash: u64, bus: &[u8], prefix: &[u8]) -> Option<u32> {
        let tag = hash >> 32;
        let mut pos = self.home(hash);
        for _ in 0..self.index.len() {
            let e = *self.index.get(pos)?;
            if e == 0 {
                return None;
            }
            if e >> 32 == tag {
                let k = entry_key(e);
                if crate::bytes::eq(self.key_prefix(k), prefix) && crate::bytes::eq(self.key_bus(k), bus) {
                    return Some(k);
                }
            }
            pos = (pos + 1) & self.index_mask;
        }
        None
    }

    /// (hash, existing key, existing entry of `peer` on that key and platform).
    pub(super) fn find(&self, peer: u16, bus: &[u8], prefix: &[u8], all: bool) -> (u64, Option<u32>, Option<u32>) {
        let hash = key_hash(bus, prefix);
        let Some(k) = self.lookup(hash, bus, prefix) else {
            return (hash, None, None);
        };
        let want = flag(all);
        let key_subs = self.keys.get(k as usize).map_or(0, |key| key.subs as usize);
        let by_key = key_subs <= self.peer_len(peer);
        let mut s = if by_key { self.keys.get(k as usize).map_or(NIL, |key| key.head) } else { self.peer_first(peer) };
        while let Some(slot) = self.sub(s) {
            if slot.peer == peer && slot.key == k && slot.flags & FLAG_ALL == want {
                return (hash, Some(k), Some(s));
            }
            s = if by_key { slot.next_k } else { slot.next_p };
        }
        (hash, Some(k), None)
    }

    /// Adds an entry known not to exist. `in_use` = the peer's entries counted against
    /// `max_per_peer` (differs from `peer_len` during a [`Replace`](super::Replace)).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_new(
        &mut self,
        peer: u16,
        hash: u64,
        key: Option<u32>,
        bus: &[u8],
        prefix: &[u8],
        flags: u8,
        in_use: usize,
    ) -> Result<(), SubscribeError> {
        if in_use >= self.limits.max_per_peer {
            return Err(SubscribeError::PeerLimit);
        }
        if self.sub_free == NIL && self.subs.len() >= self.limits.max_subscriptions {
            return Err(SubscribeError::TableFull);
        }
        let k = match key {
            Some(k) => k,
            None => self.new_key(hash, bus, prefix).ok_or(SubscribeError::TableFull)?,
        };
        if self.sub_free == NIL {
            // Fresh slot at the high-water mark (capacity reserved in `new`).
            self.sub_free = u32::try_from(self.subs.len()).map_err(|_| SubscribeError::TableFull)?;
            self.subs.push(FREE_SUB);
        }
        let s = self.sub_free;
        let old_key_head = self.keys.get(k as usize).map_or(NIL, |key| key.head);
        let old_peer_head = self.peer_first(peer);
        let Some(slot) = self.sub_mut(s) else {
            return Err(SubscribeError::TableFull);
        };
        let next_free = slot.next_p;
        *slot = SubSlot { key: k, next_k: old_key_head, prev_k: NIL, next_p: old_peer_head, prev_p: NIL, peer, flags };
        self.sub_free = next_free;
        if let Some(next) = self.sub_mut(old_key_head) {
            next.prev_k = s;
        }
        if let Some(next) = self.sub_mut(old_peer_head) {
            next.prev_p = s;
        }
        if let Some(key) = self.keys.get_mut(k as usize) {
            key.head = s;
            key.subs += 1;
        }
        if let Some(head) = self.peer_head.get_mut(usize::from(peer)) {
            *head = s;
        }
        if let Some(c) = self.peer_count.get_mut(usize::from(peer)) {
            *c += 1;
        }
        self.len += 1;
        if flags & FLAG_ALL != 0 {
            self.all_generation = self.all_generation.wrapping_add(1);
        }
        Ok(())
    }

    pub(super) fn new_key(&mut self, hash: u64, bus: &[u8], prefix: &[u8]) -> Option<u32> {
        if self.key_free == NIL {
            if self.keys.len() >= self.limits.max_subscriptions {
                return None;
            }
            // Fresh slot at the high-water mark (capacity reserved in `new`).
            self.key_free = u32::try_from(self.keys.len()).ok()?;
            self.keys.push(FREE_KEY);
        }
        let k = self.key_free;
        let start = k as usize * self.stride;
        let bus_len = u16::try_from(bus.len()).ok()?;
        let prefix_len = u16::try_from(prefix.len()).ok()?;
        let key = self.keys.get_mut(k as usize)?;
        let next_free = key.head;
        *key = KeySlot { hash, head: NIL, subs: 0, bus_len, prefix_len };
        self.key_free = next_free;
        if let Some(dst) = self.key_bytes.get_mut(start..start + bus.len()) {
            dst.copy_from_slice(bus);
        }
        let p = start + self.limits.max_bus_bytes;
        if let Some(dst) = self.key_bytes.get_mut(p..p + prefix.len()) {
            dst.copy_from_slice(prefix);
        }
        if let Some(c) = self.len_count.get_mut(prefix.len()) {
            *c += 1;
        }
        self.longest = self.longest.max(prefix.len());
        // Insert into the index (load ≤ 1/2, so an empty position exists).
        let mut pos = self.home(hash);
        for _ in 0..self.index.len() {
            match self.index.get_mut(pos) {
                Some(e) if *e == 0 => {
                    *e = index_entry(hash, k);
                    break;
                }
                _ => pos = (pos + 1) & self.index_mask,
            }
        }
        Some(k)
    }

    pub(super) fn free_key(&mut self, k: u32) {
        let Some(&key) = self.keys.get(k as usize) else {
            return;
        };
        // Find the index position, then backward-shift delete.
        let want = index_entry(key.hash, k);
        let mut pos = self.home(key.hash);
        let mut found = false;
        for _ in 0..self.index.len() {
            match self.index.get(pos) {
                Some(&e) if e == want => {
                    found = true;
                    break;
                }
                Some(&0) | None => break,
                Some(_) => pos = (pos + 1) & self.index_mask,
            }
        }
        if found {
            let mut hole = pos;
            let mut j = pos;
            for _ in 0..self.index.len() {
                j = (j + 1) & self.index_mask;
                let e = self.index.get(j).copied().unwrap_or(0);
                if e == 0 {
                    break;
                }
                let home = self.keys.get(entry_key(e) as usize).map_or(j, |other| self.home(other.hash));
                // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
                let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
                if !stays {
                    if let Some(h) = self.index.get_mut(hole) {
                        *h = e;
                    }
                    hole = j;
                }
            }
            if let Some(h) = self.index.get_mut(hole) {
                *h = 0;
            }
        }
        let plen = usize::from(key.prefix_len);
        if let Some(c) = self.len_count.get_mut(plen) {
            *c = c.saturating_sub(1);
        }
        while self.longest > 0 && self.len_count.get(self.longest).copied().unwrap_or(0) == 0 {
            self.longest -= 1;
        }
        let free_head = self.key_free;
        if let Some(slot) = self.keys.get_mut(k as usize) {
            *slot = KeySlot { head: free_head, ..FREE_KEY };
        }
        self.key_free = k;
    }

    /// Removes entry `s` from both lists, frees it, and frees its key if it was the last.
    pub(super) fn unlink(&mut self, s: u32) {
        let Some(slot) = self.sub(s) else {
            return;
        };
        // key list
        match self.sub_mut(slot.prev_k) {
            Some(prev) => prev.next_k = slot.next_k,
            None => {
                if let Some(key) = self.keys.get_mut(slot.key as usize) {
                    key.head = slot.next_k;
                }
            }
        }
        if let Some(next) = self.sub_mut(slot.next_k) {
            next.prev_k = slot.prev_k;
        }
        // peer list
        match self.sub_mut(slot.prev_p) {
            Some(prev) => prev.next_p = slot.next_p,
            None => {
                if let Some(head) = self.peer_head.get_mut(usize::from(slot.peer)) {
                    *head = slot.next_p;
                }
            }
        }
        if let Some(next) = self.sub_mut(slot.next_p) {
            next.prev_p = slot.prev_p;
        }
        if let Some(c) = self.peer_count.get_mut(usize::from(slot.peer)) {
            *c = c.saturating_sub(1);
        }
        let free_head = self.sub_free;
        if let Some(freed) = self.sub_mut(s) {
            *freed = SubSlot { next_p: free_head, ..FREE_SUB };
        }
        self.sub_free = s;
        self.len -= 1;
        if slot.flags & FLAG_ALL != 0 {
            self.all_generation = self.all_generation.wrapping_add(1);
        }
        let key_empty = match self.keys.get_mut(slot.key as usize) {
            Some(key) => {
                key.subs = key.subs.saturating_sub(1);
                key.subs == 0
            }
            None => false,
        };
        if key_empty {
            self.free_key(slot.key);
        }
    }
}

pub(super) fn flag(all_platforms: bool) -> u8 {
    if all_platforms { FLAG_ALL } else { 0 }
}
