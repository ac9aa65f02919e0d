//! Unit tests of `subscriptions` (kept apart so the module file shows the code).

use super::*;

fn limits(n: usize) -> SubscriptionLimits {
    SubscriptionLimits { max_subscriptions: n, max_per_peer: n, max_prefix_bytes: 16, max_bus_bytes: 4, max_peers: 8 }
}

/// The index stays consistent: every live key is found through the hash index and the
/// per-length counts match.
fn check_invariants(t: &Subscriptions) {
    let mut live = 0;
    let mut lens = vec![0u32; t.len_count.len()];
    let mut subs = 0;
    for (k, key) in t.keys.iter().enumerate() {
        if key.subs == 0 {
            continue;
        }
        live += 1;
        lens[usize::from(key.prefix_len)] += 1;
        subs += key.subs as usize;
        let k = k as u32;
        assert_eq!(t.lookup(key.hash, t.key_bus(k), t.key_prefix(k)), Some(k));
    }
    assert_eq!(t.index.iter().filter(|&&e| e != 0).count(), live);
    assert_eq!(&lens[..], &t.len_count[..]);
    assert_eq!(subs, t.len);
    assert_eq!(t.peer_count.iter().map(|&c| c as usize).sum::<usize>(), t.len);
    let longest = lens.iter().rposition(|&c| c > 0).unwrap_or(0);
    assert_eq!(t.longest, longest);
}

#[test]
fn index_survives_churn() {
    let mut t = Subscriptions::new(limits(64)).unwrap();
    let mut x = 7u64;
    for round in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let prefix = format!("p{}", x % 97);
        let peer = (x >> 20) as u16 % 8;
        if round % 3 == 0 {
            t.unsubscribe(peer, b"", prefix.as_bytes(), false);
        } else {
            let _ = t.subscribe(peer, b"", prefix.as_bytes(), x & 1 == 0);
        }
        if round % 97 == 0 {
            check_invariants(&t);
        }
    }
    check_invariants(&t);
}

#[test]
fn generation_wrap_resets_seen() {
    let mut t = Subscriptions::new(limits(4)).unwrap();
    t.subscribe(3, b"", b"", false).unwrap();
    t.generation = u32::MAX - 1;
    for _ in 0..4 {
        assert_eq!(t.for_each_subscriber(b"", b"x", |_| {}), 1);
    }
}
