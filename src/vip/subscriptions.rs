//! Fixed-capacity subscription index of the pubsub service (VIP.md §7.1–§7.5, §7.7, §7.12, §11.5).
//!
//! # Contract
//!
//! An entry is `(peer, bus, prefix, all_platforms)`: `peer` is a small peer index (`u16`, below
//! [`SubscriptionLimits::max_peers`]), `bus` and `prefix` are latin-1 bytes as they appear in frames
//! (VIP.md §3.8: a JSON string must be turned back into bytes first; one with a character above
//! U+00FF can never match and need not be stored). `all_platforms` is the platform key of VIP.md
//! §7.1 (`false` = `internal`, `true` = `all`): the same `(peer, bus, prefix)` may be held under
//! both, as in Python.
//!
//! Matching (VIP.md §7.2): a publish of `topic` on `bus` reaches every peer holding an entry whose
//! bus equals `bus` exactly and whose prefix is a plain byte prefix of `topic` (no `/` boundary;
//! the empty prefix matches every topic). Each peer is visited **once** however many of its entries
//! match. Both platforms count (the union recommended by VIP.md §16.2 C, instead of Python's
//! "`internal` masks `all` for the same prefix").
//!
//! # Capacity (DESIGN.md §2.5)
//!
//! All memory is allocated in [`Subscriptions::new`] from [`SubscriptionLimits`]; no method
//! allocates afterwards. Over a limit, [`Subscriptions::subscribe`] returns a [`SubscribeError`]
//! and changes nothing (reject, never evict). Memory cost:
//! `max_subscriptions × (max_bus_bytes + max_prefix_bytes + ~64) + 12 × max_peers` bytes
//! ([`SubscriptionLimits::memory_bytes`]).
//!
//! # Data structure and complexity
//!
//! * A **key table** of distinct `(bus, prefix)` pairs, in fixed slots (bytes stored inline, slot
//!   size `max_bus_bytes + max_prefix_bytes`), found through an open-addressing hash index
//!   (linear probing, load ≤ 1/2, backward-shift deletion so there are no tombstones). The hash is
//!   FNV-1a over `len(bus) ‖ bus ‖ prefix`, finalised with murmur3's `fmix64`. FNV-1a is
//!   incremental per byte, so the hash of every prefix of a topic is available after one step each.
//! * A **subscription table** of `(key, peer, flags)` records in fixed slots, each on two
//!   intrusive doubly-linked lists: its key's subscribers and its peer's entries.
//! * A count of keys per prefix length, so only lengths that some key has are probed.
//!
//! Matching a topic of length T walks the topic once: for each length `l ≤ min(T, longest prefix)`
//! it advances the hash by one byte and, if some key has length `l`, probes the index once (O(1)
//! expected; the stored 32-bit hash tag makes false byte comparisons rare). Cost:
//! **O(T + Σ over matching keys of (prefix length + subscribers))** — independent of the number of
//! subscriptions in the table. Duplicate suppression uses a generation-stamped `seen` array of
//! `max_peers` entries (reset only when the 32-bit generation wraps).
//!
//! `subscribe`/`unsubscribe` cost O(prefix length + min(key's subscribers, peer's entries));
//! `remove_peer`/`unsubscribe_bus`/replacement cost O(peer's entries); `for_each_entry` and
//! `for_each_prefix` (for `list`, VIP.md §7.7) cost O(capacity).
//!
//! The hash is not keyed: a peer can choose prefixes that collide, which lengthens probe chains
//! (bounded by the table size and by that peer's `max_per_peer`). Peers are authenticated agents
//! of the same platform, so this is accepted and written down here rather than paid for.
//!
//! # Layout
//!
//! This file holds [`Subscriptions`] and its public operations; `limits` the capacity and the
//! errors at a limit; `table` the key and subscription slots, the hash index and the list
//! surgery; `hash` the key hash; `replace` `synchronize`'s in-place replacement ([`Replace`]).

mod capacity;
mod hash;
mod replace;
mod table;

use core::fmt;

pub use capacity::{LimitsError, SubscribeError, SubscriptionLimits};
use hash::{bus_state, finish, step};
pub use replace::{Replace, ReplaceSummary};
use table::{KeySlot, SubSlot, flag, index_len};

/// "No slot" in the intrusive lists and free lists.
const NIL: u32 = u32::MAX;

/// Entry flag: held under platform `all` (VIP.md §7.1); clear = `internal`.
const FLAG_ALL: u8 = 1;
/// Entry flag, only during a [`Replace`]: held before, not (yet) confirmed.
const FLAG_OLD: u8 = 2;
/// Entry flag, only during a [`Replace`]: added by it.
const FLAG_NEW: u8 = 4;

/// Largest accepted `max_subscriptions` (slot indices are `u32`, index entries pack them).
pub const MAX_SUPPORTED_SUBSCRIPTIONS: usize = 1 << 28;

/// The subscription index. See the module documentation for semantics and costs.
pub struct Subscriptions {
    limits: SubscriptionLimits,
    stride: usize,
    keys: Vec<KeySlot>,
    key_bytes: Box<[u8]>,
    key_free: u32,
    index: Box<[u64]>,
    index_mask: usize,
    /// Number of keys per prefix length (`max_prefix_bytes + 1` entries).
    len_count: Box<[u32]>,
    /// Longest prefix length that has a key.
    longest: usize,
    subs: Vec<SubSlot>,
    sub_free: u32,
    len: usize,
    peer_head: Box<[u32]>,
    peer_count: Box<[u32]>,
    seen: Box<[u32]>,
    generation: u32,
    /// Bumped whenever an `all_platforms` entry is added or removed.
    all_generation: u64,
}

impl fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriptions").field("limits", &self.limits).field("len", &self.len).finish_non_exhaustive()
    }
}

impl Subscriptions {
    /// Allocates every table for `limits` (the only allocation this type ever makes).
    pub fn new(limits: SubscriptionLimits) -> Result<Self, LimitsError> {
        if limits.max_subscriptions > MAX_SUPPORTED_SUBSCRIPTIONS {
            return Err(LimitsError::TooManySubscriptions);
        }
        if limits.max_peers > usize::from(u16::MAX) + 1 {
            return Err(LimitsError::TooManyPeers);
        }
        if limits.max_prefix_bytes > usize::from(u16::MAX) || limits.max_bus_bytes > usize::from(u16::MAX) {
            return Err(LimitsError::NameTooLong);
        }
        limits.memory_bytes().ok_or(LimitsError::TooLarge)?;
        let n = limits.max_subscriptions;
        let stride = limits.max_bus_bytes + limits.max_prefix_bytes;
        let key_bytes_len = n.checked_mul(stride).ok_or(LimitsError::TooLarge)?;
        let index_len = index_len(n).ok_or(LimitsError::TooLarge)?;

        // Slots are handed out from a high-water mark first (pushed within the reserved
        // capacity: no reallocation), then from the free lists. Nothing is written to a slot
        // before it is used, so an idle router's index costs no resident memory.
        let keys: Vec<KeySlot> = Vec::with_capacity(n);
        let subs: Vec<SubSlot> = Vec::with_capacity(n);
        Ok(Self {
            limits,
            stride,
            keys,
            key_bytes: vec![0; key_bytes_len].into_boxed_slice(),
            key_free: NIL,
            index: vec![0; index_len].into_boxed_slice(),
            index_mask: index_len - 1,
            len_count: vec![0; limits.max_prefix_bytes + 1].into_boxed_slice(),
            longest: 0,
            subs,
            sub_free: NIL,
            len: 0,
            peer_head: vec![NIL; limits.max_peers].into_boxed_slice(),
            peer_count: vec![0; limits.max_peers].into_boxed_slice(),
            seen: vec![0; limits.max_peers].into_boxed_slice(),
            generation: 0,
            all_generation: 0,
        })
    }

    /// The limits this table was built with.
    pub fn limits(&self) -> SubscriptionLimits {
        self.limits
    }

    /// Total number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// A counter bumped whenever an `all_platforms` entry is added or removed: when it has not
    /// moved, the set of `all` prefixes (our `external_list`, VIP.md §11.5) has not changed.
    pub fn all_generation(&self) -> u64 {
        self.all_generation
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of entries `peer` holds (both platforms); 0 for an out-of-range peer.
    pub fn peer_len(&self, peer: u16) -> usize {
        self.peer_count.get(usize::from(peer)).map_or(0, |&c| c as usize)
    }

    /// Adds `(peer, bus, prefix, all_platforms)` (VIP.md §7.3). `Ok(true)` if it is new,
    /// `Ok(false)` if the peer already held it (re-subscribing at a limit is therefore fine).
    /// On `Err` nothing changed. Checks, in order: peer range, bus length, prefix length,
    /// then (only for a new entry) the per-peer limit and the table size.
    pub fn subscribe(
        &mut self,
        peer: u16,
        bus: &[u8],
        prefix: &[u8],
        all_platforms: bool,
    ) -> Result<bool, SubscribeError> {
        self.check(peer, bus, prefix)?;
        let (hash, key, sub) = self.find(peer, bus, prefix, all_platforms);
        if sub.is_some() {
            return Ok(false);
        }
        let in_use = self.peer_len(peer);
        self.insert_new(peer, hash, key, bus, prefix, flag(all_platforms), in_use)?;
        Ok(true)
    }

    /// Removes one entry (VIP.md §7.4, one named prefix). Returns whether it existed.
    pub fn unsubscribe(&mut self, peer: u16, bus: &[u8], prefix: &[u8], all_platforms: bool) -> bool {
        if self.check(peer, bus, prefix).is_err() {
            return false;
        }
        match self.find(peer, bus, prefix, all_platforms).2 {
            Some(s) => {
                self.unlink(s);
                true
            }
            None => false,
        }
    }

    /// Removes every prefix `peer` holds on `bus` under the given platform (VIP.md §7.4,
    /// `"prefix": null`). Returns how many entries were removed.
    pub fn unsubscribe_bus(&mut self, peer: u16, bus: &[u8], all_platforms: bool) -> usize {
        let want = flag(all_platforms);
        let mut removed = 0;
        let mut s = self.peer_first(peer);
        while let Some(slot) = self.sub(s) {
            let next = slot.next_p;
            if slot.flags & FLAG_ALL == want && crate::bytes::eq(self.key_bus(slot.key), bus) {
                self.unlink(s);
                removed += 1;
            }
            s = next;
        }
        removed
    }

    /// Removes every entry of `peer` (VIP.md §7.12, and on `EHOSTUNREACH` in §7.6). Returns how
    /// many were removed.
    pub fn remove_peer(&mut self, peer: u16) -> usize {
        let mut removed = 0;
        let mut s = self.peer_first(peer);
        while let Some(slot) = self.sub(s) {
            let next = slot.next_p;
            self.unlink(s);
            removed += 1;
            s = next;
        }
        removed
    }

    /// Whether `peer` holds `(bus, prefix)` under the given platform.
    pub fn contains(&self, peer: u16, bus: &[u8], prefix: &[u8], all_platforms: bool) -> bool {
        self.check(peer, bus, prefix).is_ok() && self.find(peer, bus, prefix, all_platforms).2.is_some()
    }

    /// Calls `f` once for every peer subscribed to a prefix of `topic` on `bus` (VIP.md §7.2),
    /// however many of its entries match, and returns how many peers that was (the local part of
    /// the publish COUNT, VIP.md §7.6). Order unspecified. No allocation; see the module doc for
    /// the cost. `f` cannot touch the table: collect failed deliveries and remove them afterwards.
    pub fn for_each_subscriber(&mut self, bus: &[u8], topic: &[u8], mut f: impl FnMut(u16)) -> usize {
        if self.len == 0 || bus.len() > self.limits.max_bus_bytes {
            return 0;
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.seen.fill(0);
            self.generation = 1;
        }
        let generation = self.generation;
        let mut count = 0;
        let mut h = bus_state(bus);
        let max_len = topic.len().min(self.longest);
        for l in 0..=max_len {
            if l > 0 {
                h = step(h, topic.get(l - 1).copied().unwrap_or(0));
            }
            if self.len_count.get(l).copied().unwrap_or(0) == 0 {
                continue;
            }
            let prefix = topic.get(..l).unwrap_or_default();
            let Some(k) = self.lookup(finish(h), bus, prefix) else {
                continue;
            };
            let mut s = self.keys.get(k as usize).map_or(NIL, |key| key.head);
            while let Some(slot) = self.subs.get(s as usize) {
                if let Some(mark) = self.seen.get_mut(usize::from(slot.peer))
                    && *mark != generation
                {
                    *mark = generation;
                    count += 1;
                    f(slot.peer);
                }
                s = slot.next_k;
            }
        }
        count
    }

    /// Calls `f(peer, bus, prefix, all_platforms)` for every entry, grouped by `(bus, prefix)`.
    /// O(capacity).
    pub fn for_each_entry(&self, mut f: impl FnMut(u16, &[u8], &[u8], bool)) {
        for (k, key) in self.keys.iter().enumerate() {
            if key.subs == 0 {
                continue;
            }
            let k = u32::try_from(k).unwrap_or(NIL);
            let (bus, prefix) = (self.key_bus(k), self.key_prefix(k));
            let mut s = key.head;
            while let Some(slot) = self.sub(s) {
                f(slot.peer, bus, prefix, slot.flags & FLAG_ALL != 0);
                s = slot.next_k;
            }
        }
    }

    /// The rows of `list` (VIP.md §7.7): calls `f(bus, prefix, member)` once for every
    /// `(bus, prefix)` that has at least one entry under the given platform, with `member` = whether
    /// `member_peer` is among those subscribers. Filtering by `P` (prefix/reverse/bus) is the
    /// caller's. The same walk gives the `all` prefix list of `external_list` (VIP.md §11.5).
    /// O(capacity).
    pub fn for_each_prefix(
        &self,
        all_platforms: bool,
        member_peer: Option<u16>,
        mut f: impl FnMut(&[u8], &[u8], bool),
    ) {
        let want = flag(all_platforms);
        for (k, key) in self.keys.iter().enumerate() {
            let (mut any, mut member) = (false, false);
            let mut s = if key.subs == 0 { NIL } else { key.head };
            while let Some(slot) = self.sub(s) {
                if slot.flags & FLAG_ALL == want {
                    any = true;
                    member |= Some(slot.peer) == member_peer;
                }
                s = slot.next_k;
            }
            if any {
                let k = u32::try_from(k).unwrap_or(NIL);
                f(self.key_bus(k), self.key_prefix(k), member);
            }
        }
    }
}

#[cfg(test)]
mod tests;
