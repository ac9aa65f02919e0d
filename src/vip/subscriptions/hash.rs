//! The key hash of the subscription index: FNV-1a over `len(bus) ‖ bus ‖ prefix`, finalised
//! with murmur3's `fmix64`, and the packing of index entries (see the parent module's doc,
//! "Data structure and complexity").
//!
//! Contract: FNV-1a is incremental per byte, so [`step`] extends the state of `bus ‖ topic[..l]`
//! to `l + 1` and `finish` of every intermediate state equals [`key_hash`] of that prefix —
//! what lets a publish probe every prefix length of its topic in one walk (VIP.md §7.2). The
//! hash is not keyed (accepted: peers are authenticated agents of the same platform).

use super::NIL;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(super) fn step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

pub(super) fn bus_state(bus: &[u8]) -> u64 {
    let len = bus.len() as u64;
    let mut h = len.to_le_bytes().iter().fold(FNV_OFFSET, |h, &b| step(h, b));
    for &b in bus {
        h = step(h, b);
    }
    h
}

/// murmur3 `fmix64`: spreads FNV's weak low bits over the whole word.
pub(super) fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

pub(super) fn key_hash(bus: &[u8], prefix: &[u8]) -> u64 {
    finish(prefix.iter().fold(bus_state(bus), |h, &b| step(h, b)))
}

/// Index entry: high 32 bits = hash tag, low 32 bits = key slot + 1 (0 = empty).
pub(super) fn index_entry(hash: u64, k: u32) -> u64 {
    (hash & 0xffff_ffff_0000_0000) | (u64::from(k) + 1)
}

pub(super) fn entry_key(e: u64) -> u32 {
    u32::try_from((e & 0xffff_ffff).saturating_sub(1)).unwrap_or(NIL)
}
