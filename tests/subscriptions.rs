//! Tests for `viprouter::vip::subscriptions` (VIP.md §7.1–§7.7, §7.12, §16.2).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use viprouter::vip::subscriptions::{LimitsError, ReplaceSummary, SubscribeError, SubscriptionLimits, Subscriptions};

fn lim(subs: usize, per_peer: usize, prefix: usize, bus: usize, peers: usize) -> SubscriptionLimits {
    SubscriptionLimits {
        max_subscriptions: subs,
        max_per_peer: per_peer,
        max_prefix_bytes: prefix,
        max_bus_bytes: bus,
        max_peers: peers,
    }
}

fn matches(t: &mut Subscriptions, bus: &[u8], topic: &[u8]) -> Vec<u16> {
    let mut v = Vec::new();
    let n = t.for_each_subscriber(bus, topic, |p| v.push(p));
    assert_eq!(n, v.len());
    let mut sorted = v.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), v.len(), "a peer was visited twice");
    sorted
}

// ---------------------------------------------------------------------------------------------
// Semantics of VIP.md §7.2

#[test]
fn e3_subscribe_then_publish() {
    let mut t = Subscriptions::new(lim(16, 16, 64, 8, 4)).unwrap();
    assert_eq!(t.subscribe(1, b"", b"devices/campus", false), Ok(true));
    assert_eq!(t.subscribe(1, b"", b"devices/campus", false), Ok(false));
    assert_eq!(matches(&mut t, b"", b"devices/campus/b1/all"), [1]);
    assert_eq!(matches(&mut t, b"", b"devices/camp"), Vec::<u16>::new());
}

#[test]
fn plain_byte_prefix_bus_exact_one_copy_union_of_platforms() {
    let mut t = Subscriptions::new(lim(16, 16, 64, 8, 8)).unwrap();
    t.subscribe(0, b"", b"devices", false).unwrap();
    t.subscribe(1, b"", b"", false).unwrap(); // matches everything on bus ''
    t.subscribe(2, b"other", b"", false).unwrap();
    // several matching prefixes of one peer -> one visit
    t.subscribe(3, b"", b"d", false).unwrap();
    t.subscribe(3, b"", b"devices/", false).unwrap();
    t.subscribe(3, b"", b"devicesX", true).unwrap();
    // internal and all for the same prefix: union (VIP.md §16.2 C), one copy
    t.subscribe(4, b"", b"q/", false).unwrap();
    t.subscribe(5, b"", b"q/", true).unwrap();
    t.subscribe(4, b"", b"q/", true).unwrap();

    assert_eq!(matches(&mut t, b"", b"devicesX/1"), [0, 1, 3]); // no '/' boundary
    assert_eq!(matches(&mut t, b"", b"devices/a"), [0, 1, 3]);
    assert_eq!(matches(&mut t, b"", b""), [1]);
    assert_eq!(matches(&mut t, b"other", b"devices/a"), [2]);
    assert_eq!(matches(&mut t, b"nobus", b"devices/a"), Vec::<u16>::new());
    assert_eq!(matches(&mut t, b"", b"q/1"), [1, 4, 5]);
    assert_eq!(matches(&mut t, b"", b"\xe9"), [1]);
    // bytes are compared exactly: latin-1 é is one byte
    t.subscribe(6, b"", b"caf\xe9", false).unwrap();
    assert_eq!(matches(&mut t, b"", b"caf\xe9/x"), [1, 6]);
    assert_eq!(matches(&mut t, b"", b"caf\xc3\xa9"), [1]);
}

#[test]
fn unsubscribe_is_per_platform_and_bus() {
    let mut t = Subscriptions::new(lim(16, 16, 64, 8, 4)).unwrap();
    t.subscribe(0, b"", b"a", false).unwrap();
    t.subscribe(0, b"", b"a", true).unwrap();
    t.subscribe(0, b"", b"b", false).unwrap();
    t.subscribe(0, b"x", b"c", false).unwrap();
    assert_eq!(t.len(), 4);
    assert!(!t.unsubscribe(0, b"", b"zz", false));
    assert!(!t.unsubscribe(1, b"", b"a", false));
    assert!(t.unsubscribe(0, b"", b"a", true));
    assert!(t.contains(0, b"", b"a", false) && !t.contains(0, b"", b"a", true));
    assert_eq!(matches(&mut t, b"", b"a1"), [0]);
    // "prefix": null on bus '' for internal
    assert_eq!(t.unsubscribe_bus(0, b"", false), 2);
    assert_eq!(t.peer_len(0), 1);
    assert!(t.contains(0, b"x", b"c", false));
    assert_eq!(t.remove_peer(0), 1);
    assert!(t.is_empty());
    assert_eq!(matches(&mut t, b"x", b"c"), Vec::<u16>::new());
}

#[test]
fn list_rows_and_entries() {
    let mut t = Subscriptions::new(lim(16, 16, 64, 8, 4)).unwrap();
    t.subscribe(0, b"", b"test/topic", false).unwrap();
    t.subscribe(1, b"", b"test/topic", false).unwrap();
    t.subscribe(1, b"", b"x", true).unwrap();
    let rows = |t: &Subscriptions, all, member| {
        let mut v = Vec::new();
        t.for_each_prefix(all, member, |b, p, m| v.push((b.to_vec(), p.to_vec(), m)));
        v.sort();
        v
    };
    assert_eq!(rows(&t, false, Some(0)), [(b"".to_vec(), b"test/topic".to_vec(), true)]);
    assert_eq!(rows(&t, true, Some(0)), [(b"".to_vec(), b"x".to_vec(), false)]);
    assert_eq!(rows(&t, true, Some(1)), [(b"".to_vec(), b"x".to_vec(), true)]);
    let mut entries = Vec::new();
    t.for_each_entry(|p, b, pre, all| entries.push((p, b.to_vec(), pre.to_vec(), all)));
    entries.sort();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2], (1, b"".to_vec(), b"x".to_vec(), true));
}

// ---------------------------------------------------------------------------------------------
// Limits: N accepted, N+1 refused, table unchanged (DESIGN.md §2.5)

#[test]
fn limit_total_subscriptions() {
    let mut t = Subscriptions::new(lim(3, 10, 8, 4, 4)).unwrap();
    for i in 0..3u8 {
        assert_eq!(t.subscribe(u16::from(i), b"", &[b'a' + i], false), Ok(true));
    }
    assert_eq!(t.subscribe(3, b"", b"z", false), Err(SubscribeError::TableFull));
    assert_eq!(t.subscribe(0, b"", b"a", false), Ok(false), "existing entry is still fine");
    // sharing a key still needs an entry slot
    assert_eq!(t.subscribe(3, b"", b"a", false), Err(SubscribeError::TableFull));
    assert_eq!(t.len(), 3);
    assert!(t.unsubscribe(1, b"", b"b", false));
    assert_eq!(t.subscribe(3, b"", b"z", false), Ok(true));
}

#[test]
fn limit_per_peer() {
    let mut t = Subscriptions::new(lim(100, 2, 8, 4, 4)).unwrap();
    assert_eq!(t.subscribe(0, b"", b"a", false), Ok(true));
    assert_eq!(t.subscribe(0, b"", b"a", true), Ok(true), "platforms count separately");
    assert_eq!(t.subscribe(0, b"", b"b", false), Err(SubscribeError::PeerLimit));
    assert_eq!(t.subscribe(0, b"", b"a", false), Ok(false));
    assert_eq!(t.subscribe(1, b"", b"b", false), Ok(true), "other peers unaffected");
    assert_eq!(t.peer_len(0), 2);
}

#[test]
fn limit_prefix_and_bus_bytes() {
    let mut t = Subscriptions::new(lim(10, 10, 4, 2, 4)).unwrap();
    assert_eq!(t.subscribe(0, b"", b"abcd", false), Ok(true));
    assert_eq!(t.subscribe(0, b"", b"abcde", false), Err(SubscribeError::PrefixTooLong));
    assert_eq!(t.subscribe(0, b"xy", b"a", false), Ok(true));
    assert_eq!(t.subscribe(0, b"xyz", b"a", false), Err(SubscribeError::BusTooLong));
    assert!(!t.unsubscribe(0, b"", b"abcde", false));
    assert_eq!(matches(&mut t, b"", b"abcdefgh"), [0]);
    assert_eq!(matches(&mut t, b"xyz", b"a"), Vec::<u16>::new());
    assert_eq!(t.len(), 2);
}

#[test]
fn limit_peers() {
    let mut t = Subscriptions::new(lim(10, 10, 4, 2, 3)).unwrap();
    assert_eq!(t.subscribe(2, b"", b"a", false), Ok(true));
    assert_eq!(t.subscribe(3, b"", b"a", false), Err(SubscribeError::PeerOutOfRange));
    assert_eq!(t.peer_len(3), 0);
    assert_eq!(t.remove_peer(3), 0);
    assert!(t.begin_replace(3).is_err());
    assert!(matches!(t.replace_peer(3, []), Err(SubscribeError::PeerOutOfRange)));
}

#[test]
fn limits_validated_at_construction() {
    assert!(Subscriptions::new(lim(0, 0, 0, 0, 0)).is_ok());
    assert_eq!(Subscriptions::new(lim(1, 1, 1, 1, 65537)).unwrap_err(), LimitsError::TooManyPeers);
    assert!(Subscriptions::new(lim(1, 1, 1, 1, 65536)).is_ok());
    assert_eq!(Subscriptions::new(lim(1, 1, 65536, 1, 1)).unwrap_err(), LimitsError::NameTooLong);
    assert_eq!(Subscriptions::new(lim(usize::MAX, 1, 1, 1, 1)).unwrap_err(), LimitsError::TooManySubscriptions);
    let mut empty = Subscriptions::new(lim(0, 0, 0, 0, 1)).unwrap();
    assert_eq!(empty.subscribe(0, b"", b"", false), Err(SubscribeError::PeerLimit));
    assert!(lim(10_000, 256, 256, 64, 1024).memory_bytes().unwrap() < 8 << 20);
}

// ---------------------------------------------------------------------------------------------
// synchronize (VIP.md §7.5)

#[test]
fn replace_swaps_set_and_is_idempotent() {
    let mut t = Subscriptions::new(lim(10, 3, 8, 4, 4)).unwrap();
    t.subscribe(0, b"", b"a", false).unwrap();
    t.subscribe(0, b"", b"b", false).unwrap();
    t.subscribe(1, b"", b"a", false).unwrap();
    let new: [(&[u8], &[u8], bool); 3] = [(b"", b"c", false), (b"", b"a", false), (b"", b"c", false)];
    assert_eq!(t.replace_peer(0, new), Ok(ReplaceSummary { added: 1, removed: 1 }));
    // agents send it twice in a row
    assert_eq!(t.replace_peer(0, new), Ok(ReplaceSummary { added: 0, removed: 0 }));
    assert!(t.contains(0, b"", b"c", false) && t.contains(0, b"", b"a", false));
    assert!(!t.contains(0, b"", b"b", false));
    assert_eq!(matches(&mut t, b"", b"a"), [0, 1]);
    // at the per-peer limit, a completely different set of the same size fits
    t.subscribe(0, b"", b"d", false).unwrap();
    assert_eq!(t.peer_len(0), 3);
    let other: [(&[u8], &[u8], bool); 3] = [(b"", b"x", false), (b"", b"y", false), (b"", b"z", true)];
    assert_eq!(t.replace_peer(0, other), Ok(ReplaceSummary { added: 3, removed: 3 }));
    assert_eq!(t.peer_len(0), 3);
    // empty set = drop everything
    assert_eq!(t.replace_peer(0, []), Ok(ReplaceSummary { added: 0, removed: 3 }));
    assert_eq!(t.len(), 1);
}

#[test]
fn replace_is_all_or_nothing() {
    let mut t = Subscriptions::new(lim(10, 2, 4, 4, 4)).unwrap();
    t.subscribe(0, b"", b"a", false).unwrap();
    t.subscribe(0, b"", b"b", true).unwrap();
    let snapshot = |t: &Subscriptions| {
        let mut v = Vec::new();
        t.for_each_entry(|p, b, pre, all| v.push((p, b.to_vec(), pre.to_vec(), all)));
        v.sort();
        v
    };
    let before = snapshot(&t);
    let too_many: [(&[u8], &[u8], bool); 3] = [(b"", b"a", false), (b"", b"x", false), (b"", b"y", false)];
    assert_eq!(t.replace_peer(0, too_many), Err(SubscribeError::PeerLimit));
    assert_eq!(snapshot(&t), before);
    let too_long: [(&[u8], &[u8], bool); 2] = [(b"", b"q", false), (b"", b"toolong", false)];
    assert_eq!(t.replace_peer(0, too_long), Err(SubscribeError::PrefixTooLong));
    assert_eq!(snapshot(&t), before);
    assert_eq!(matches(&mut t, b"", b"b"), [0]);

    // best effort: commit after an error keeps what fitted
    let mut txn = t.begin_replace(0).unwrap();
    assert_eq!(txn.add(b"", b"q", false), Ok(true));
    assert_eq!(txn.add(b"", b"toolong", false), Err(SubscribeError::PrefixTooLong));
    assert_eq!(txn.add(b"", b"a", false), Ok(false));
    assert_eq!(txn.commit(), ReplaceSummary { added: 1, removed: 1 });
    assert!(t.contains(0, b"", b"q", false) && t.contains(0, b"", b"a", false));
    assert_eq!(t.peer_len(0), 2);
}

#[test]
fn replace_needs_physical_slots_in_a_full_table() {
    // Documented limitation: new entries need free slots before old ones are released.
    let mut t = Subscriptions::new(lim(2, 2, 4, 4, 4)).unwrap();
    t.subscribe(0, b"", b"a", false).unwrap();
    t.subscribe(1, b"", b"b", false).unwrap();
    let swap: [(&[u8], &[u8], bool); 1] = [(b"", b"c", false)];
    assert_eq!(t.replace_peer(0, swap), Err(SubscribeError::TableFull));
    assert!(t.contains(0, b"", b"a", false));
}

// ---------------------------------------------------------------------------------------------
// Scale

fn topic_for(i: usize) -> Vec<u8> {
    format!("devices/campus{}/building{}/point{}/", i % 7, i % 13, i).into_bytes()
}

#[test]
fn ten_thousand_subscriptions() {
    let n = 10_000;
    let mut t = Subscriptions::new(lim(n, 101, 64, 8, 100)).unwrap();
    for i in 0..n {
        assert_eq!(t.subscribe((i % 100) as u16, b"", &topic_for(i), i % 2 == 0), Ok(true));
    }
    assert_eq!(t.len(), n);
    assert_eq!(t.subscribe(0, b"", b"one/more", false), Err(SubscribeError::TableFull));
    for i in (0..n).step_by(37) {
        let mut topic = topic_for(i);
        topic.extend_from_slice(b"sub");
        assert_eq!(matches(&mut t, b"", &topic), [(i % 100) as u16]);
    }
    assert_eq!(matches(&mut t, b"", b"devices/campus1/building"), Vec::<u16>::new());
    for p in 0..50u16 {
        assert_eq!(t.remove_peer(p), 100);
    }
    assert_eq!(t.len(), n / 2);
    for i in 0..n {
        let p = (i % 100) as u16;
        assert_eq!(t.unsubscribe(p, b"", &topic_for(i), i % 2 == 0), p >= 50);
    }
    assert!(t.is_empty());
    // and it fills up again after the churn
    for i in 0..n {
        assert_eq!(t.subscribe((i % 100) as u16, b"", &topic_for(i), false), Ok(true));
    }
}

/// Prints the match cost with 10 and with 10 000 subscriptions (run with `--ignored --nocapture`,
/// preferably `--release`). Must be flat: the cost depends on the topic, not on the table.
#[test]
#[ignore]
fn match_cost_10_vs_10000() {
    use std::time::Instant;
    let topic = b"devices/campus3/building5/point12345/all";
    for n in [10usize, 10_000] {
        let mut t = Subscriptions::new(lim(n + 1, n + 1, 64, 8, 200)).unwrap();
        for i in 0..n {
            t.subscribe((i % 200) as u16, b"", &topic_for(i + 100_000), false).unwrap();
        }
        t.subscribe(7, b"", b"devices/campus3/", false).unwrap();
        let iters = 500_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let mut hits = 0;
            for _ in 0..iters {
                hits += t.for_each_subscriber(b"", std::hint::black_box(topic), |p| {
                    std::hint::black_box(p);
                });
            }
            best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
            assert_eq!(hits, iters);
        }
        let ns = best;
        println!("{n:>6} subscriptions: {ns:.1} ns per match of a {}-byte topic", topic.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Property test against a naive model

type Entry = (u16, Vec<u8>, Vec<u8>, bool);

#[derive(Clone, Debug)]
enum Op {
    Sub(Entry),
    Unsub(Entry),
    UnsubBus(u16, Vec<u8>, bool),
    RemovePeer(u16),
    Replace(u16, Vec<(Vec<u8>, Vec<u8>, bool)>, bool),
}

const L: SubscriptionLimits =
    SubscriptionLimits { max_subscriptions: 12, max_per_peer: 5, max_prefix_bytes: 3, max_bus_bytes: 1, max_peers: 4 };

struct Model(Vec<Entry>);

impl Model {
    fn check(&self, peer: u16, bus: &[u8], prefix: &[u8]) -> Result<(), SubscribeError> {
        if usize::from(peer) >= L.max_peers {
            Err(SubscribeError::PeerOutOfRange)
        } else if bus.len() > L.max_bus_bytes {
            Err(SubscribeError::BusTooLong)
        } else if prefix.len() > L.max_prefix_bytes {
            Err(SubscribeError::PrefixTooLong)
        } else {
            Ok(())
        }
    }
    fn count(&self, peer: u16) -> usize {
        self.0.iter().filter(|e| e.0 == peer).count()
    }
    fn subscribe(&mut self, e: Entry) -> Result<bool, SubscribeError> {
        self.check(e.0, &e.1, &e.2)?;
        if self.0.contains(&e) {
            return Ok(false);
        }
        if self.count(e.0) >= L.max_per_peer {
            return Err(SubscribeError::PeerLimit);
        }
        if self.0.len() >= L.max_subscriptions {
            return Err(SubscribeError::TableFull);
        }
        self.0.push(e);
        Ok(true)
    }
    /// Sequential semantics of `Replace`: returns per-item results and the final state.
    fn replace(
        &mut self,
        peer: u16,
        items: &[(Vec<u8>, Vec<u8>, bool)],
        best_effort: bool,
    ) -> Result<(), SubscribeError> {
        if usize::from(peer) >= L.max_peers {
            return Err(SubscribeError::PeerOutOfRange);
        }
        let old: Vec<Entry> = self.0.iter().filter(|e| e.0 == peer).cloned().collect();
        let mut confirmed: BTreeSet<Entry> = BTreeSet::new();
        let mut new: Vec<Entry> = Vec::new();
        let mut first_err = None;
        for (bus, prefix, all) in items {
            let e = (peer, bus.clone(), prefix.clone(), *all);
            let r = (|| {
                self.check(peer, bus, prefix)?;
                if old.contains(&e) {
                    confirmed.insert(e.clone());
                    return Ok(());
                }
                if new.contains(&e) {
                    return Ok(());
                }
                if confirmed.len() + new.len() >= L.max_per_peer {
                    return Err(SubscribeError::PeerLimit);
                }
                if self.0.len() + new.len() >= L.max_subscriptions {
                    return Err(SubscribeError::TableFull);
                }
                new.push(e.clone());
                Ok(())
            })();
            if let Err(err) = r {
                first_err.get_or_insert(err);
                if !best_effort {
                    return Err(err);
                }
            }
        }
        self.0.retain(|e| e.0 != peer || confirmed.contains(e));
        self.0.extend(new);
        match first_err {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
    fn matching(&self, bus: &[u8], topic: &[u8]) -> Vec<u16> {
        let set: BTreeSet<u16> = self.0.iter().filter(|e| e.1 == bus && topic.starts_with(&e.2)).map(|e| e.0).collect();
        set.into_iter().collect()
    }
}

fn bytes(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), 0..=max)
}

fn entry() -> impl Strategy<Value = Entry> {
    (0u16..5, bytes(b"xy", 2), bytes(b"ab/", 4), any::<bool>())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => entry().prop_map(Op::Sub),
        3 => entry().prop_map(Op::Unsub),
        1 => (0u16..5, bytes(b"xy", 1), any::<bool>()).prop_map(|(p, b, a)| Op::UnsubBus(p, b, a)),
        1 => (0u16..5).prop_map(Op::RemovePeer),
        2 => (0u16..5, prop::collection::vec((bytes(b"xy", 1), bytes(b"ab/", 4), any::<bool>()), 0..7), any::<bool>())
            .prop_map(|(p, items, best)| Op::Replace(p, items, best)),
    ]
}

fn assert_same(t: &mut Subscriptions, m: &Model) {
    assert_eq!(t.len(), m.0.len());
    for p in 0..5u16 {
        assert_eq!(t.peer_len(p), m.count(p), "peer_len({p})");
    }
    let mut entries = Vec::new();
    t.for_each_entry(|p, b, pre, all| entries.push((p, b.to_vec(), pre.to_vec(), all)));
    entries.sort();
    let mut want = m.0.clone();
    want.sort();
    assert_eq!(entries, want);
    for bus in [&b""[..], b"x", b"y"] {
        for topic in [&b""[..], b"a", b"ab", b"a/b", b"ab/a", b"b/", b"bbbb", b"aba/b"] {
            assert_eq!(matches(t, bus, topic), m.matching(bus, topic), "bus {bus:?} topic {topic:?}");
        }
    }
    for all in [false, true] {
        let mut rows = BTreeMap::new();
        t.for_each_prefix(all, Some(1), |b, p, member| {
            assert!(rows.insert((b.to_vec(), p.to_vec()), member).is_none(), "row repeated");
        });
        let mut want = BTreeMap::new();
        for e in m.0.iter().filter(|e| e.3 == all) {
            *want.entry((e.1.clone(), e.2.clone())).or_insert(false) |= e.0 == 1;
        }
        assert_eq!(rows, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_the_naive_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut t = Subscriptions::new(L).unwrap();
        let mut m = Model(Vec::new());
        for op in ops {
            match op {
                Op::Sub(e) => {
                    let got = t.subscribe(e.0, &e.1, &e.2, e.3);
                    prop_assert_eq!(got, m.subscribe(e));
                }
                Op::Unsub(e) => {
                    let had = m.0.contains(&e);
                    m.0.retain(|x| *x != e);
                    prop_assert_eq!(t.unsubscribe(e.0, &e.1, &e.2, e.3), had);
                }
                Op::UnsubBus(p, b, all) => {
                    let before = m.0.len();
                    m.0.retain(|x| !(x.0 == p && x.1 == b && x.3 == all));
                    prop_assert_eq!(t.unsubscribe_bus(p, &b, all), before - m.0.len());
                }
                Op::RemovePeer(p) => {
                    let before = m.0.len();
                    m.0.retain(|x| x.0 != p);
                    prop_assert_eq!(t.remove_peer(p), before - m.0.len());
                }
                Op::Replace(p, items, best_effort) => {
                    let want = m.replace(p, &items, best_effort);
                    let got = if best_effort {
                        match t.begin_replace(p) {
                            Err(e) => Err(e),
                            Ok(mut txn) => {
                                let mut first = None;
                                for (b, pre, all) in &items {
                                    if let Err(e) = txn.add(b, pre, *all) {
                                        first.get_or_insert(e);
                                    }
                                }
                                txn.commit();
                                first.map_or(Ok(()), Err)
                            }
                        }
                    } else {
                        t.replace_peer(p, items.iter().map(|(b, pre, all)| (&b[..], &pre[..], *all))).map(|_| ())
                    };
                    prop_assert_eq!(got, want);
                }
            }
            assert_same(&mut t, &m);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// No allocation after `new`

#[path = "common/alloc_counter.rs"]
mod alloc_counter;

#[test]
fn no_allocation_after_new() {
    let mut t = Subscriptions::new(lim(64, 16, 32, 4, 8)).unwrap();
    let prefixes: [&[u8]; 6] = [b"", b"devices", b"devices/", b"devices/campus", b"record", b"x"];
    let n = alloc_counter::allocations_in(|| {
        for round in 0..50u16 {
            for (i, p) in prefixes.iter().enumerate() {
                let _ = t.subscribe((round + i as u16) % 8, b"", p, i % 2 == 0);
            }
            let mut seen = 0;
            t.for_each_subscriber(b"", b"devices/campus/b1/all", |_| seen += 1);
            let items: [(&[u8], &[u8], bool); 2] = [(b"", b"devices", false), (b"", b"zz", true)];
            let _ = t.replace_peer(round % 8, items);
            t.for_each_prefix(false, Some(1), |_, _, _| {});
            t.for_each_entry(|_, _, _, _| {});
            t.unsubscribe(round % 8, b"", b"x", true);
            t.unsubscribe_bus(round % 8, b"", false);
            if round % 7 == 0 {
                t.remove_peer(round % 8);
            }
        }
    });
    assert_eq!(n, 0);
}
