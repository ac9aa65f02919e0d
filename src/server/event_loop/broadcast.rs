//! Deferred broadcasts: the router's `peerlist add/drop` notifications (VIP.md §4 step 4, §8),
//! written into each registered peer's queue as it has room, in order, instead of all at once.
//!
//! VOLTTRON tells every registered peer about every newcomer: n agents connecting at once
//! (a router restart) cost n²/2 messages. Written eagerly, as VOLTTRON does, they compete with
//! the handshakes and `hello` welcomes of the storm itself, and they pile up in the transmit
//! queues faster than the agents read them: 1000 CURVE agents held 114 MB of queues and lost
//! 65 000 notifications to the buffer budget (`dropped_notify_full`). Here a broadcast is one
//! entry in a ring ([`Broadcasts`]); each member has a cursor, the sequence number of the next
//! entry it must receive. The entries are written into a member's queue:
//!
//! * before anything else is queued to it (`ConnSink::catch_up`, `sink.rs`): every peer receives exactly
//!   what VOLTTRON would send it, in the same order relative to every other message — if they
//!   do not all fit, the other message does not go either (its queue is full);
//! * at the end of each loop turn, up to `BROADCAST_BUDGET` messages in all, round robin over
//!   the members, each only while its queue admits them (the sink's admission rule) — during a
//!   storm of connections (several entries pending, and handshakes under way or new entries
//!   within `BROADCAST_QUIET_MS`),
//!   none until the oldest has waited `BROADCAST_DEFER_MS` or half the ring is unwritten, then
//!   `BROADCAST_BUDGET_BUSY` (limits.rs): a storm's handshakes and welcomes go first, and a slow
//!   reader holds entries in the ring, not megabytes in its queue;
//! * before it leaves the registered set (`agentstop`): what was broadcast while it was a member
//!   reaches it.
//!
//! The ring holds `max-connections` entries (one per peer that can register at once); an entry
//! a member has not received when the ring wraps over it is lost for that member and counted
//! in `dropped_notify_full`, as a notification to a full queue always was. Entries are stored
//! frame by frame (count, lengths, bytes) in a fixed arena allocated at start-up; a broadcast
//! too large for an entry (never a `peerlist` one) is written eagerly instead.

use super::*;
use crate::limits::{
    BROADCAST_BUDGET, BROADCAST_BUDGET_BUSY, BROADCAST_DEFER_MS, BROADCAST_ENTRY_BYTES as ENTRY_BYTES,
    BROADCAST_QUIET_MS,
};

/// Frames of one ring entry at most (`peerlist` notifications have 7).
pub(super) const MAX_ENTRY_FRAMES: usize = 16;

/// Cursor of a slot that is not a member.
const NOT_MEMBER: u64 = u64::MAX;

/// The ring of broadcast entries and the members' cursors (see the module doc).
#[derive(Debug)]
pub(in crate::server) struct Broadcasts {
    arena: Box<[u8]>,
    lens: Box<[u16]>,
    /// Sequence number of the next entry.
    head: u64,
    /// Per connection slot: the next entry it must receive, or `NOT_MEMBER`.
    cursor: Box<[u64]>,
    /// Every member had every entry before this one, as of the last full pass.
    done: u64,
    /// Where the next end-of-turn pass starts (round robin).
    next_slot: usize,
    /// The last pass stopped on its budget: the next turn must not wait.
    more: bool,
    /// Since when some member has been behind (the age of the oldest unwritten entry, roughly).
    behind_since: Option<Instant>,
    /// `head` as the last end-of-turn pass saw it, and when it last changed (a new entry).
    seen_head: u64,
    last_push: Instant,
}

impl Broadcasts {
    /// A ring for `slots` connection slots (as many entries).
    pub(super) fn new(slots: usize) -> Broadcasts {
        let entries = slots.max(1);
        Broadcasts {
            arena: vec![0u8; entries * ENTRY_BYTES].into_boxed_slice(),
            lens: vec![0u16; entries].into_boxed_slice(),
            head: 0,
            cursor: vec![NOT_MEMBER; slots].into_boxed_slice(),
            done: 0,
            next_slot: 0,
            more: false,
            behind_since: None,
            seen_head: 0,
            last_push: Instant(0),
        }
    }

    /// Bytes the ring for `slots` connection slots allocates at start-up (entries, their
    /// lengths, the cursors), for the memory ceiling (`server::memory`).
    pub(in crate::server) fn table_bytes(slots: usize) -> usize {
        slots.max(1).saturating_mul(ENTRY_BYTES + 2 + 8)
    }

    fn capacity(&self) -> u64 {
        self.lens.len() as u64
    }

    /// Append `frames` as the next entry; `false` (nothing stored) when they do not fit one.
    pub(super) fn push(&mut self, frames: &[&[u8]]) -> bool {
        let need = 1 + frames.iter().map(|f| 2 + f.len()).sum::<usize>();
        if need > ENTRY_BYTES
            || frames.len() > MAX_ENTRY_FRAMES
            || frames.iter().any(|f| f.len() > usize::from(u16::MAX))
        {
            return false;
        }
        let i = (self.head % self.capacity()) as usize;
        let Some(entry) = self.arena.get_mut(i * ENTRY_BYTES..(i + 1) * ENTRY_BYTES) else { return false };
        let mut at = 1;
        if let Some(n) = entry.first_mut() {
            *n = frames.len() as u8;
        }
        for f in frames {
            let (len, rest) = entry.split_at_mut(at).1.split_at_mut(2);
            len.copy_from_slice(&(f.len() as u16).to_le_bytes());
            if let Some(dst) = rest.get_mut(..f.len()) {
                dst.copy_from_slice(f);
            }
            at += 2 + f.len();
        }
        if let Some(l) = self.lens.get_mut(i) {
            *l = need as u16;
        }
        self.head += 1;
        true
    }

    /// The frames of entry `seq`, if it is still in the ring.
    pub(super) fn get<'s>(&'s self, seq: u64, out: &mut heapless::Vec<&'s [u8], MAX_ENTRY_FRAMES>) -> bool {
        out.clear();
        if seq >= self.head || self.head - seq > self.capacity() {
            return false;
        }
        let i = (seq % self.capacity()) as usize;
        let Some(entry) = self.arena.get(i * ENTRY_BYTES..(i + 1) * ENTRY_BYTES) else { return false };
        let n = usize::from(entry.first().copied().unwrap_or(0));
        let mut at = 1;
        for _ in 0..n {
            let len = entry.get(at..at + 2).map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            let Some(f) = entry.get(at + 2..at + 2 + len) else { return false };
            let _ = out.push(f);
            at += 2 + len;
        }
        true
    }

    /// Slot `index` becomes a member: it receives the entries pushed from now on.
    pub(super) fn join(&mut self, index: u16) {
        if let Some(c) = self.cursor.get_mut(usize::from(index)) {
            *c = self.head;
        }
    }

    /// Slot `index` is no longer a member.
    pub(super) fn leave(&mut self, index: u16) {
        if let Some(c) = self.cursor.get_mut(usize::from(index)) {
            *c = NOT_MEMBER;
        }
    }

    /// The next entry slot `index` must receive, if any.
    pub(super) fn pending(&self, index: u16) -> Option<u64> {
        self.cursor.get(usize::from(index)).copied().filter(|&c| c < self.head)
    }

    /// Slot `index` is a member with entries to receive (the hot path's one check).
    #[inline]
    pub(super) fn is_behind(&self, index: u16) -> bool {
        // Once every member had every entry (the steady state), one comparison.
        self.done < self.head && self.cursor.get(usize::from(index)).is_some_and(|&c| c < self.head)
    }

    /// Entry `seq` reached slot `index` (or was given up: see `skip_lost`).
    pub(super) fn advance(&mut self, index: u16, seq: u64) {
        if let Some(c) = self.cursor.get_mut(usize::from(index)) {
            *c = seq + 1;
        }
    }

    /// Move slot `index` past entries the ring has overwritten; returns how many it lost.
    pub(super) fn skip_lost(&mut self, index: u16) -> u64 {
        let oldest = self.head.saturating_sub(self.capacity());
        match self.cursor.get_mut(usize::from(index)) {
            Some(c) if *c < oldest => {
                let lost = oldest - *c;
                *c = oldest;
                lost
            }
            _ => 0,
        }
    }

    /// Give up the next entry slot `index` has pending (its queue cannot take it while it
    /// leaves); `false` when nothing is pending.
    pub(super) fn give_up_one(&mut self, index: u16) -> bool {
        match self.pending(index) {
            Some(seq) => {
                self.advance(index, seq);
                true
            }
            None => false,
        }
    }

    /// True while some member may still be behind (the end-of-turn pass has work).
    #[inline]
    pub(super) fn behind(&self) -> bool {
        self.done < self.head
    }

    /// The last pass stopped on its budget with members still behind.
    pub(super) fn more_now(&self) -> bool {
        self.more
    }
}

impl Broadcasts {
    /// How many entries the end-of-turn pass may write now (see [`Server::write_broadcasts`]);
    /// `None`: none this turn.
    fn turn_budget(&mut self, handshaking: bool, now: Instant) -> Option<usize> {
        let since = *self.behind_since.get_or_insert(now);
        if self.head != self.seen_head {
            self.seen_head = self.head;
            self.last_push = now;
        }
        // One agent joining is no storm: its notification goes at once.
        let unwritten = self.head - self.done;
        let storm = (handshaking || now.since(self.last_push) < BROADCAST_QUIET_MS) && unwritten > 1;
        let waited = now.since(since) >= BROADCAST_DEFER_MS || unwritten > self.capacity() / 2;
        match (storm, waited) {
            (false, _) => Some(BROADCAST_BUDGET),
            (true, true) => Some(BROADCAST_BUDGET_BUSY),
            (true, false) => {
                self.more = false;
                None
            }
        }
    }
}

impl Server {
    /// End of turn: write pending broadcast entries into the members' queues, round robin, at
    /// most `BROADCAST_BUDGET` messages. During a storm of connections — more than one entry
    /// pending, and `handshaking` or new entries within the last `BROADCAST_QUIET_MS` — none,
    /// until the oldest has waited `BROADCAST_DEFER_MS` or half the ring is unwritten; then
    /// `BROADCAST_BUDGET_BUSY` (see the module doc).
    #[inline]
    pub(super) fn write_broadcasts(&mut self, handshaking: bool, now: Instant) {
        // Nobody behind: nothing to do (and `more`, `behind_since` were cleared when the last
        // pass got everyone through). The common case, once per turn.
        if self.broadcasts.behind() {
            self.write_pending_broadcasts(handshaking, now);
        }
    }

    fn write_pending_broadcasts(&mut self, handshaking: bool, now: Instant) {
        let Some(mut budget) = self.broadcasts.turn_budget(handshaking, now) else { return };
        let n = self.broadcasts.cursor.len();
        let start = self.broadcasts.next_slot.min(n.saturating_sub(1));
        let head = self.broadcasts.head;
        let mut all_done = true;
        let mut stopped_at = None;
        let (_, _, mut sink) = self.routing(None);
        for k in 0..n {
            // Slot indexes are u16 (the slot table holds at most 2^16).
            let Ok(index) = u16::try_from((start + k) % n) else { break };
            if sink.broadcasts.pending(index).is_none() {
                continue;
            }
            if !sink.is_connected(PeerId(index)) {
                sink.broadcasts.leave(index);
                continue;
            }
            let (written, _) = sink.catch_up_at_most(PeerId(index), budget);
            budget -= written;
            if sink.broadcasts.pending(index).is_some() {
                all_done = false;
            }
            if budget == 0 {
                stopped_at = Some(usize::from(index));
                break;
            }
        }
        let totals = sink.totals();
        self.account(totals);
        let b = &mut self.broadcasts;
        if all_done && stopped_at.is_none() {
            b.done = head;
            b.behind_since = None;
        }
        b.more = stopped_at.is_some();
        b.next_slot = stopped_at.unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: &Broadcasts, seq: u64) -> Option<Vec<Vec<u8>>> {
        let mut out = heapless::Vec::new();
        b.get(seq, &mut out).then(|| out.iter().map(|f| f.to_vec()).collect())
    }

    #[test]
    fn entries_round_trip_and_members_start_at_the_head() {
        let mut b = Broadcasts::new(4);
        b.join(1);
        assert!(b.push(&[b"", b"VIP1", b"", b"", b"peerlist", b"add", &[b'x'; 255]]), "the largest peerlist add fits");
        b.join(2);
        assert!(b.push(&[b"a", b""]));
        assert_eq!(b.pending(1), Some(0));
        assert_eq!(b.pending(2), Some(1), "a member gets only what was broadcast after it joined");
        assert_eq!(b.pending(3), None, "not a member");
        assert_eq!(entry(&b, 0).unwrap()[6], vec![b'x'; 255]);
        assert_eq!(entry(&b, 1).unwrap(), vec![b"a".to_vec(), vec![]]);
        assert!(!b.push(&[&[0u8; ENTRY_BYTES]]), "too large for an entry: not stored");
        assert_eq!(b.head, 2);
    }

    #[test]
    fn a_member_that_lags_past_the_ring_loses_exactly_the_overwritten_entries() {
        let mut b = Broadcasts::new(4);
        b.join(0);
        for i in 0..10u8 {
            assert!(b.push(&[&[i]]));
        }
        assert_eq!(entry(&b, 5), None, "overwritten");
        assert_eq!(entry(&b, 6).unwrap(), vec![vec![6]]);
        assert_eq!(b.skip_lost(0), 6, "entries 0..6 are gone");
        assert_eq!(b.pending(0), Some(6));
        assert_eq!(b.skip_lost(0), 0);
        b.leave(0);
        assert_eq!(b.pending(0), None);
        assert!(!b.give_up_one(0));
    }
}
