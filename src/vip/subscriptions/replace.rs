//! `synchronize` (VIP.md §7.5): replacing one peer's whole subscription set in place, all or
//! nothing, without allocating — [`Subscriptions::begin_replace`] and the [`Replace`]
//! transaction it returns, [`Subscriptions::replace_peer`], and the [`ReplaceSummary`] of a
//! commit.

use super::table::flag;
use super::{FLAG_NEW, FLAG_OLD, SubscribeError, Subscriptions};

/// What a committed [`Replace`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaceSummary {
    /// Entries the peer did not hold before.
    pub added: usize,
    /// Entries the peer held before and no longer holds.
    pub removed: usize,
}

impl Subscriptions {
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
        Ok(Replace { table: self, peer, old_left: old, added: 0, done: false })
    }

    /// Replaces `peer`'s whole set by `items` `(bus, prefix, all_platforms)` (VIP.md §7.5),
    /// **all or nothing**: on the first item that fails, the table is left exactly as before.
    /// Duplicate items are harmless. For best-effort (skip failing items) or for items that must
    /// be decoded from JSON one at a time, drive a [`Replace`] directly.
    pub fn replace_peer<'x, I>(&mut self, peer: u16, items: I) -> Result<ReplaceSummary, SubscribeError>
    where
        I: IntoIterator<Item = (&'x [u8], &'x [u8], bool)>,
    {
        let mut txn = self.begin_replace(peer)?;
        for (bus, prefix, all_platforms) in items {
            txn.add(bus, prefix, all_platforms)?;
        }
        Ok(txn.commit())
    }
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
    pub fn add(&mut self, bus: &[u8], prefix: &[u8], all_platforms: bool) -> Result<bool, SubscribeError> {
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
        t.insert_new(peer, hash, key, bus, prefix, flag(all_platforms) | FLAG_NEW, in_use)?;
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
        ReplaceSummary { added: self.added, removed }
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
