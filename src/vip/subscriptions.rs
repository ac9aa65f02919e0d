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
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )
)]

use core::fmt;

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

/// Capacity limits, fixed at construction (normally from `limits.rs` / config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionLimits {
    /// Total entries `(peer, bus, prefix, platform)` in the table (`MAX_SUBSCRIPTIONS`).
    pub max_subscriptions: usize,
    /// Entries one peer may hold (`MAX_SUBS_PER_PEER`).
    pub max_per_peer: usize,
    /// Longest prefix in bytes (`MAX_PREFIX_BYTES`); at most 65535.
    pub max_prefix_bytes: usize,
    /// Longest bus name in bytes; at most 65535.
    pub max_bus_bytes: usize,
    /// Peer indices accepted are `0..max_peers` (`MAX_PEERS`); at most 65536.
    pub max_peers: usize,
}

impl SubscriptionLimits {
    /// Bytes [`Subscriptions::new`] allocates for these limits, or `None` if that overflows.
    pub fn memory_bytes(&self) -> Option<usize> {
        let n = self.max_subscriptions;
        let stride = self.max_bus_bytes.checked_add(self.max_prefix_bytes)?;
        let keys = n.checked_mul(stride.checked_add(size_of::<KeySlot>())?)?;
        let subs = n.checked_mul(size_of::<SubSlot>())?;
        let index = index_len(n)?.checked_mul(size_of::<u64>())?;
        let lens = self.max_prefix_bytes.checked_add(1)?.checked_mul(4)?;
        let peers = self.max_peers.checked_mul(12)?;
        keys.checked_add(subs)?
            .checked_add(index)?
            .checked_add(lens)?
            .checked_add(peers)
    }
}

/// Why [`Subscriptions::new`] refused a set of limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsError {
    /// `max_subscriptions` above [`MAX_SUPPORTED_SUBSCRIPTIONS`].
    TooManySubscriptions,
    /// `max_peers` above 65536 (peer indices are `u16`).
    TooManyPeers,
    /// `max_prefix_bytes` or `max_bus_bytes` above 65535.
    NameTooLong,
    /// The memory size overflows `usize`.
    TooLarge,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooManySubscriptions => "max_subscriptions too large",
            Self::TooManyPeers => "max_peers above 65536",
            Self::NameTooLong => "max_prefix_bytes or max_bus_bytes above 65535",
            Self::TooLarge => "subscription table size overflows",
        })
    }
}

impl std::error::Error for LimitsError {}

/// Why an entry was not added. The table is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// `peer ≥ max_peers`.
    PeerOutOfRange,
    /// The bus is longer than `max_bus_bytes`.
    BusTooLong,
    /// The prefix is longer than `max_prefix_bytes`.
    PrefixTooLong,
    /// The peer already holds `max_per_peer` entries.
    PeerLimit,
    /// The table holds `max_subscriptions` entries.
    TableFull,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PeerOutOfRange => "peer index out of range",
            Self::BusTooLong => "bus name too long",
            Self::PrefixTooLong => "subscription prefix too long",
            Self::PeerLimit => "too many subscriptions for this peer",
            Self::TableFull => "subscription table full",
        })
    }
}

impl std::error::Error for SubscribeError {}

/// What a committed [`Replace`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaceSummary {
    /// Entries the peer did not hold before.
    pub added: usize,
    /// Entries the peer held before and no longer holds.
    pub removed: usize,
}

#[derive(Clone, Copy, Debug)]
struct KeySlot {
    hash: u64,
    /// First subscription of this key; next free key while the slot is free.
    head: u32,
    /// Number of subscriptions on this key (0 = slot free).
    subs: u32,
    bus_len: u16,
    prefix_len: u16,
}

const FREE_KEY: KeySlot = KeySlot {
    hash: 0,
    head: NIL,
    subs: 0,
    bus_len: 0,
    prefix_len: 0,
};

#[derive(Clone, Copy, Debug)]
struct SubSlot {
    key: u32,
    next_k: u32,
    prev_k: u32,
    /// Next entry of the same peer; next free slot while the slot is free.
    next_p: u32,
    prev_p: u32,
    peer: u16,
    flags: u8,
}

const FREE_SUB: SubSlot = SubSlot {
    key: NIL,
    next_k: NIL,
    prev_k: NIL,
    next_p: NIL,
    prev_p: NIL,
    peer: 0,
    flags: 0,
};

fn index_len(max_subscriptions: usize) -> Option<usize> {
    max_subscriptions
        .checked_mul(2)?
        .max(2)
        .checked_next_power_of_two()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

fn bus_state(bus: &[u8]) -> u64 {
    let len = bus.len() as u64;
    let mut h = len
        .to_le_bytes()
        .iter()
        .fold(FNV_OFFSET, |h, &b| step(h, b));
    for &b in bus {
        h = step(h, b);
    }
    h
}

/// murmur3 `fmix64`: spreads FNV's weak low bits over the whole word.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn key_hash(bus: &[u8], prefix: &[u8]) -> u64 {
    finish(prefix.iter().fold(bus_state(bus), |h, &b| step(h, b)))
}

/// Index entry: high 32 bits = hash tag, low 32 bits = key slot + 1 (0 = empty).
fn index_entry(hash: u64, k: u32) -> u64 {
    (hash & 0xffff_ffff_0000_0000) | (u64::from(k) + 1)
}

fn entry_key(e: u64) -> u32 {
    u32::try_from((e & 0xffff_ffff).saturating_sub(1)).unwrap_or(NIL)
}

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
}

impl fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriptions")
            .field("limits", &self.limits)
            .field("len", &self.len)
            .finish_non_exhaustive()
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
        if limits.max_prefix_bytes > usize::from(u16::MAX)
            || limits.max_bus_bytes > usize::from(u16::MAX)
        {
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

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of entries `peer` holds (both platforms); 0 for an out-of-range peer.
    pub fn peer_len(&self, peer: u16) -> usize {
        self.peer_count
            .get(usize::from(peer))
            .map_or(0, |&c| c as usize)
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
    pub fn unsubscribe(
        &mut self,
        peer: u16,
        bus: &[u8],
        prefix: &[u8],
        all_platforms: bool,
    ) -> bool {
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
            if slot.flags & FLAG_ALL == want && bytes_eq(self.key_bus(slot.key), bus) {
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

    /// Starts replacing `peer`'s whole set (VIP.md §7.5 `synchronize`); see [`Replace`].
    pub fn begin_replace(&mut self, peer: u16) -> Result<Replace<'_>, SubscribeError> {
        if usize::from(peer) >= self.limits.max_peers {
            return Err(SubscribeError::PeerOutOfRange);
        }
        let mut old = 0;
        let mut s = self.peer_first(peer);
        while let Some(slot) = self.sub_mut(s) {
            slot.flags |= FLAG_OLD;
            old += 1;
            s = slot.next_p;
        }
        Ok(Replace {
            table: self,
            peer,
            old_left: old,
            added: 0,
            done: false,
        })
    }

    /// Replaces `peer`'s whole set by `items` `(bus, prefix, all_platforms)` (VIP.md §7.5),
    /// **all or nothing**: on the first item that fails, the table is left exactly as before.
    /// Duplicate items are harmless. For best-effort (skip failing items) or for items that must
    /// be decoded from JSON one at a time, drive a [`Replace`] directly.
    pub fn replace_peer<'x, I>(
        &mut self,
        peer: u16,
        items: I,
    ) -> Result<ReplaceSummary, SubscribeError>
    where
        I: IntoIterator<Item = (&'x [u8], &'x [u8], bool)>,
    {
        let mut txn = self.begin_replace(peer)?;
        for (bus, prefix, all_platforms) in items {
            txn.add(bus, prefix, all_platforms)?;
        }
        Ok(txn.commit())
    }

    /// Whether `peer` holds `(bus, prefix)` under the given platform.
    pub fn contains(&self, peer: u16, bus: &[u8], prefix: &[u8], all_platforms: bool) -> bool {
        self.check(peer, bus, prefix).is_ok()
            && self.find(peer, bus, prefix, all_platforms).2.is_some()
    }

    /// Calls `f` once for every peer subscribed to a prefix of `topic` on `bus` (VIP.md §7.2),
    /// however many of its entries match, and returns how many peers that was (the local part of
    /// the publish COUNT, VIP.md §7.6). Order unspecified. No allocation; see the module doc for
    /// the cost. `f` cannot touch the table: collect failed deliveries and remove them afterwards.
    pub fn for_each_subscriber(
        &mut self,
        bus: &[u8],
        topic: &[u8],
        mut f: impl FnMut(u16),
    ) -> usize {
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

    // -----------------------------------------------------------------------------------------

    fn check(&self, peer: u16, bus: &[u8], prefix: &[u8]) -> Result<(), SubscribeError> {
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

    fn sub(&self, s: u32) -> Option<SubSlot> {
        self.subs.get(s as usize).copied()
    }

    fn sub_mut(&mut self, s: u32) -> Option<&mut SubSlot> {
        self.subs.get_mut(s as usize)
    }

    fn peer_first(&self, peer: u16) -> u32 {
        self.peer_head
            .get(usize::from(peer))
            .copied()
            .unwrap_or(NIL)
    }

    fn key_bus(&self, k: u32) -> &[u8] {
        let Some(key) = self.keys.get(k as usize) else {
            return &[];
        };
        let start = k as usize * self.stride;
        self.key_bytes
            .get(start..start + usize::from(key.bus_len))
            .unwrap_or_default()
    }

    fn key_prefix(&self, k: u32) -> &[u8] {
        let Some(key) = self.keys.get(k as usize) else {
            return &[];
        };
        let start = k as usize * self.stride + self.limits.max_bus_bytes;
        self.key_bytes
            .get(start..start + usize::from(key.prefix_len))
            .unwrap_or_default()
    }

    fn home(&self, hash: u64) -> usize {
        usize::try_from(hash & self.index_mask as u64).unwrap_or(0)
    }

    fn lookup(&self, hash: u64, bus: &[u8], prefix: &[u8]) -> Option<u32> {
        let tag = hash >> 32;
        let mut pos = self.home(hash);
        for _ in 0..self.index.len() {
            let e = *self.index.get(pos)?;
            if e == 0 {
                return None;
            }
            if e >> 32 == tag {
                let k = entry_key(e);
                if bytes_eq(self.key_prefix(k), prefix) && bytes_eq(self.key_bus(k), bus) {
                    return Some(k);
                }
            }
            pos = (pos + 1) & self.index_mask;
        }
        None
    }

    /// (hash, existing key, existing entry of `peer` on that key and platform).
    fn find(
        &self,
        peer: u16,
        bus: &[u8],
        prefix: &[u8],
        all: bool,
    ) -> (u64, Option<u32>, Option<u32>) {
        let hash = key_hash(bus, prefix);
        let Some(k) = self.lookup(hash, bus, prefix) else {
            return (hash, None, None);
        };
        let want = flag(all);
        let key_subs = self.keys.get(k as usize).map_or(0, |key| key.subs as usize);
        let by_key = key_subs <= self.peer_len(peer);
        let mut s = if by_key {
            self.keys.get(k as usize).map_or(NIL, |key| key.head)
        } else {
            self.peer_first(peer)
        };
        while let Some(slot) = self.sub(s) {
            if slot.peer == peer && slot.key == k && slot.flags & FLAG_ALL == want {
                return (hash, Some(k), Some(s));
            }
            s = if by_key { slot.next_k } else { slot.next_p };
        }
        (hash, Some(k), None)
    }

    /// Adds an entry known not to exist. `in_use` = the peer's entries counted against
    /// `max_per_peer` (differs from `peer_len` during a [`Replace`]).
    #[allow(clippy::too_many_arguments)]
    fn insert_new(
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
            None => self
                .new_key(hash, bus, prefix)
                .ok_or(SubscribeError::TableFull)?,
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
        *slot = SubSlot {
            key: k,
            next_k: old_key_head,
            prev_k: NIL,
            next_p: old_peer_head,
            prev_p: NIL,
            peer,
            flags,
        };
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
        Ok(())
    }

    fn new_key(&mut self, hash: u64, bus: &[u8], prefix: &[u8]) -> Option<u32> {
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
        *key = KeySlot {
            hash,
            head: NIL,
            subs: 0,
            bus_len,
            prefix_len,
        };
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

    fn free_key(&mut self, k: u32) {
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
                let home = self
                    .keys
                    .get(entry_key(e) as usize)
                    .map_or(j, |other| self.home(other.hash));
                // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
                let stays = if hole <= j {
                    hole < home && home <= j
                } else {
                    hole < home || home <= j
                };
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
            *slot = KeySlot {
                head: free_head,
                ..FREE_KEY
            };
        }
        self.key_free = k;
    }

    /// Removes entry `s` from both lists, frees it, and frees its key if it was the last.
    fn unlink(&mut self, s: u32) {
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
            *freed = SubSlot {
                next_p: free_head,
                ..FREE_SUB
            };
        }
        self.sub_free = s;
        self.len -= 1;
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

/// Byte equality that never calls `memcmp` for empty slices. An empty slice may carry a dangling
/// pointer (e.g. address 1 for `b""`), and glibc's AVX-512 `memcmp` does a zero-mask load there,
/// which costs a ~100 ns fault-suppression assist on every call (measured: 180 ns per match of a
/// `''` subscription instead of 20 ns).
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

fn flag(all_platforms: bool) -> u8 {
    if all_platforms { FLAG_ALL } else { 0 }
}

/// A replacement of one peer's whole set (VIP.md §7.5), applied in place without allocating.
///
/// [`Subscriptions::begin_replace`] marks the peer's current entries *old*; each [`add`](Self::add)
/// either confirms an old entry or inserts a new one; [`commit`](Self::commit) removes the old
/// entries that were not confirmed. Dropping a `Replace` without committing **rolls back**: the
/// new entries are removed and the old ones kept, so the table is exactly as before.
///
/// Limits during a replacement: the per-peer limit counts confirmed + new entries only (an
/// old set of N can be swapped for a different set of N at the limit). The table limit is
/// physical: new entries need free slots while unconfirmed old ones still occupy theirs, so a
/// replacement that changes many prefixes of a peer in a nearly full table can fail with
/// `TableFull` although the final set would fit.
///
/// After an `Err` from `add` the caller may still `commit` (best effort: the failed item is
/// skipped) or drop (all or nothing). [`Subscriptions::replace_peer`] does the latter.
#[derive(Debug)]
pub struct Replace<'t> {
    table: &'t mut Subscriptions,
    peer: u16,
    old_left: usize,
    added: usize,
    done: bool,
}

impl Replace<'_> {
    /// Adds `(bus, prefix, all_platforms)` to the new set. `Ok(true)` if the peer did not hold it
    /// before the replacement started. Same checks as [`Subscriptions::subscribe`].
    pub fn add(
        &mut self,
        bus: &[u8],
        prefix: &[u8],
        all_platforms: bool,
    ) -> Result<bool, SubscribeError> {
        let peer = self.peer;
        let t = &mut *self.table;
        t.check(peer, bus, prefix)?;
        let (hash, key, sub) = t.find(peer, bus, prefix, all_platforms);
        if let Some(s) = sub {
            if let Some(slot) = t.sub_mut(s)
                && slot.flags & FLAG_OLD != 0
            {
                slot.flags &= !FLAG_OLD;
                self.old_left -= 1;
            }
            return Ok(false);
        }
        let in_use = t.peer_len(peer) - self.old_left;
        t.insert_new(
            peer,
            hash,
            key,
            bus,
            prefix,
            flag(all_platforms) | FLAG_NEW,
            in_use,
        )?;
        self.added += 1;
        Ok(true)
    }

    /// Makes the new set the peer's set: removes old entries that were not added again.
    pub fn commit(mut self) -> ReplaceSummary {
        let t = &mut *self.table;
        let mut removed = 0;
        let mut s = t.peer_first(self.peer);
        while let Some(slot) = t.sub(s) {
            let next = slot.next_p;
            if slot.flags & FLAG_OLD != 0 {
                t.unlink(s);
                removed += 1;
            } else if let Some(m) = t.sub_mut(s) {
                m.flags &= !FLAG_NEW;
            }
            s = next;
        }
        self.done = true;
        ReplaceSummary {
            added: self.added,
            removed,
        }
    }
}

impl Drop for Replace<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let t = &mut *self.table;
        let mut s = t.peer_first(self.peer);
        while let Some(slot) = t.sub(s) {
            let next = slot.next_p;
            if slot.flags & FLAG_NEW != 0 {
                t.unlink(s);
            } else if let Some(m) = t.sub_mut(s) {
                m.flags &= !FLAG_OLD;
            }
            s = next;
        }
    }
}

#[cfg(test)]
mod tests;
