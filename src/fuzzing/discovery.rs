//! `fuzz_discovery`: the multi-platform parsers and the `send_platform` rewriter on arbitrary
//! bytes (`vip::discovery`, `vip::external_pubsub`, `vip::external_rpc`).

use super::*;
use crate::vip::discovery::{parse_discovery, parse_entry_json};
use crate::vip::external_pubsub::{ExtSubs, parse_list_body};
use crate::vip::external_rpc::rewrite_body;
use crate::vip::links::{valid_instance_name, valid_link_address};

/// The same input taken as: an `external_platform_discovery.json` (every accepted entry has a
/// valid name, a `tcp://`/`ipc://` address and a key that re-encodes; nothing panics), a
/// `normalmode_platform_connection` entry, an `external_list` body (accepted only if it is an
/// object of arrays of strings; the arena keeps at most its capacity, every kept prefix is one
/// of the input strings, and a topic equal to a kept prefix matches), and a `send_platform`
/// body (the rewrite parses back, `from_platform`/`from_peer` hold the given values, every other
/// member is byte-identical and in the same order).
pub fn fuzz_discovery(data: &[u8]) {
    if let Ok(d) = parse_discovery(data) {
        for e in &d.entries {
            assert!(valid_instance_name(&e.instance_name), "entry name {:?}", e.instance_name);
            assert!(valid_link_address(&e.vip_address), "entry address {:?}", e.vip_address);
            assert_eq!(decode_key(encode_key(&e.serverkey)).ok(), Some(e.serverkey));
        }
    }
    if let Ok(c) = parse_entry_json(data) {
        assert!(valid_instance_name(&c.instance_name) && valid_link_address(&c.vip_address));
    }
    if let Some(v) = parse_list_body(data) {
        let mut ext = ExtSubs::new(256, 8);
        for (_, list) in v.members() {
            let left_out = ext.replace_from(list);
            assert!(ext.len() <= 8 && ext.len() + left_out <= list.items().count());
            let strings: Vec<Vec<u8>> = list.items().filter_map(latin1_of).collect();
            for p in ext.iter() {
                assert!(strings.iter().any(|s| s == p), "kept prefix {p:?} is not an input string");
                assert!(ext.matches(p));
            }
        }
    }
    if let Ok(v) = json::parse(data)
        && v.kind() == Kind::Object
    {
        check_rewrite(v, data);
    }
}

fn check_rewrite(v: Value<'_>, data: &[u8]) {
    let mut out = Vec::new();
    assert!(rewrite_body(v, data, b"p1", b"caller\xe9", &mut out).is_ok());
    let back = json::parse(&out);
    assert!(back.is_ok_and(|b| b.kind() == Kind::Object), "rewrite does not parse back");
    let Ok(back) = back else { return };
    let is_from = |k: JsonStr<'_>| k.eq_latin1(b"from_platform") || k.eq_latin1(b"from_peer");
    let others = |o: Value<'_>| -> Vec<(Vec<u8>, Vec<u8>)> {
        o.members().filter(|(k, _)| !is_from(*k)).map(|(k, v)| (k.raw().to_vec(), v.raw().to_vec())).collect()
    };
    assert_eq!(others(v), others(back), "members other than from_* changed");
    for (k, val) in back.members().filter(|(k, _)| is_from(*k)) {
        let want: &[u8] = if k.eq_latin1(b"from_platform") { b"p1" } else { b"caller\xe9" };
        assert!(val.as_str().is_some_and(|s| s.eq_latin1(want)), "{} not rewritten", k.raw().escape_ascii());
    }
    assert!(back.get(b"from_platform").is_some() && back.get(b"from_peer").is_some());
}
