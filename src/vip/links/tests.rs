use super::*;
use crate::json::ByteSink;

fn cfg(name: &str, port: u16) -> LinkConfig {
    LinkConfig {
        instance_name: name.as_bytes().to_vec(),
        vip_address: format!("tcp://127.0.0.1:{port}"),
        serverkey: [7; 32],
    }
}

const OWN: OwnPlatform<'static> = OwnPlatform { instance_name: b"p1", addresses_json: br#"["tcp://127.0.0.1:22916"]"# };

fn dial(links: &mut Links, now: u64) -> LinkId {
    match links.next_action(Instant(now)) {
        Some(LinkAction::Dial(id)) => id,
        other => panic!("expected a dial, got {other:?}"),
    }
}

#[test]
fn a_configured_link_is_dialled_comes_up_and_is_redialled_with_backoff() {
    let mut links = Links::new(4, 1);
    let mut stats = Stats::default();
    let id = links.configure(cfg("p2", 1), Source::File, OWN).unwrap();
    assert_eq!(links.get(id).unwrap().state(), LinkState::Down);
    assert_eq!(dial(&mut links, 0), id);
    assert_eq!(links.get(id).unwrap().state(), LinkState::Connecting);
    assert_eq!(links.next_action(Instant(0)), None, "one dial at a time");
    assert!(links.mark_up(id, &mut stats));
    assert!(!links.mark_up(id, &mut stats), "already up");
    assert_eq!((links.up_count(), stats.link_ups), (1, 1));
    links.mark_down(id, Instant(1000), DownReason::Closed, &mut stats);
    assert_eq!((links.up_count(), stats.link_downs), (0, 1));
    let l = links.get(id).unwrap();
    assert_eq!((l.state(), l.last_down()), (LinkState::Down, Some(DownReason::Closed)));
    let first = l.retry_at().since(Instant(1000));
    assert!((LINK_RETRY_MIN_MS..=LINK_RETRY_MIN_MS * 5 / 4).contains(&first), "{first}");
    assert_eq!(links.next_deadline(), Some(l.retry_at()));
    assert_eq!(links.next_action(Instant(1000 + first - 1)), None, "not before the retry time");
    let mut now = 1000 + first;
    let mut delays = Vec::new();
    for _ in 0..10 {
        assert_eq!(dial(&mut links, now), id);
        links.mark_down(id, Instant(now), DownReason::ConnectFailed, &mut stats);
        let d = links.get(id).unwrap().retry_at().since(Instant(now));
        delays.push(d);
        now += d;
    }
    assert!(delays.windows(2).take(5).all(|w| w[1] > w[0]), "doubling: {delays:?}");
    assert!(delays.iter().all(|&d| d <= LINK_RETRY_MAX_MS * 5 / 4), "capped: {delays:?}");
    assert!(*delays.last().unwrap() >= LINK_RETRY_MAX_MS, "{delays:?}");
    let again = dial(&mut links, now);
    assert!(links.mark_up(again, &mut stats));
    links.mark_down(id, Instant(now), DownReason::Refused, &mut stats);
    assert!(links.get(id).unwrap().retry_at().since(Instant(now)) <= LINK_RETRY_MIN_MS * 5 / 4, "reset after up");
    assert_eq!((stats.link_refused, links.get(id).unwrap().counters.refused), (1, 1));
}

#[test]
fn the_routing_id_is_instance_name_random() {
    let mut links = Links::new(2, 9);
    let id = links.configure(cfg("bldg-2", 1), Source::File, OWN).unwrap();
    let ident = links.get(id).unwrap().identity().to_vec();
    let text = std::str::from_utf8(&ident).unwrap();
    let digits = text.strip_prefix("instance.bldg-2.0.").unwrap();
    assert_eq!(digits.len(), 16);
    assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    let long = "n".repeat(crate::limits::MAX_INSTANCE_NAME_BYTES);
    let id = links.configure(cfg(&long, 2), Source::File, OWN).unwrap();
    assert!(links.get(id).unwrap().identity().len() <= 255, "fits a ZMTP identity");
}

#[test]
fn reconfiguring_closes_the_old_connection_and_stale_ids_are_ignored() {
    let mut links = Links::new(4, 1);
    let mut stats = Stats::default();
    let old = links.configure(cfg("p2", 1), Source::File, OWN).unwrap();
    assert_eq!(dial(&mut links, 0), old);
    assert!(links.mark_up(old, &mut stats));
    // the same entry again (keydiscovery repeats the file): nothing happens
    assert_eq!(links.configure(cfg("p2", 1), Source::Keydiscovery, OWN), Ok(old));
    assert_eq!(links.next_action(Instant(0)), None);
    // another address: the old connection is closed, the new one dialled under a new id
    let new = links.configure(cfg("p2", 2), Source::File, OWN).unwrap();
    assert_ne!(new, old);
    assert_eq!(links.up_count(), 0);
    assert_eq!(links.next_action(Instant(0)), Some(LinkAction::Close(old)));
    assert_eq!(dial(&mut links, 0), new);
    // events for the old id change nothing
    links.mark_down(old, Instant(0), DownReason::Closed, &mut stats);
    assert!(!links.mark_up(old, &mut stats));
    assert_eq!(links.get(new).unwrap().state(), LinkState::Connecting);
    assert!(links.get(old).is_none());
}

#[test]
fn file_reload_removes_what_it_no_longer_names_but_keeps_keydiscovery_links() {
    let mut links = Links::new(4, 1);
    let mut stats = Stats::default();
    links.set_file_links(&[cfg("p2", 1), cfg("p3", 2)], OWN, &mut stats);
    let kd = links.configure(cfg("p4", 3), Source::Keydiscovery, OWN).unwrap();
    let p2 = links.by_name(b"p2").unwrap().id();
    assert_eq!(dial(&mut links, 0), p2);
    links.set_file_links(&[cfg("p3", 2)], OWN, &mut stats);
    assert!(links.by_name(b"p2").is_none());
    assert!(links.by_name(b"p3").is_some() && links.get(kd).is_some());
    assert_eq!(links.next_action(Instant(0)), Some(LinkAction::Close(p2)), "p2 was dialled: close it");
    // a removed link that was never dialled needs no close
    links.set_file_links(&[], OWN, &mut stats);
    assert_eq!(links.len(), 1);
    assert!(matches!(links.next_action(Instant(0)), Some(LinkAction::Dial(id)) if id == kd));
    assert_eq!(links.next_action(Instant(0)), None);
}

#[test]
fn own_platform_full_table_and_stats_json() {
    let mut links = Links::new(2, 1);
    let mut stats = Stats::default();
    assert_eq!(links.configure(cfg("p1", 5), Source::File, OWN), Err(ConfigureError::OwnPlatform));
    assert_eq!(links.configure(cfg("x", 22916), Source::File, OWN), Err(ConfigureError::OwnPlatform));
    links.set_file_links(&[cfg("p2", 1), cfg("p3", 2), cfg("p4", 3)], OWN, &mut stats);
    assert_eq!(links.len(), 2);
    assert_eq!(stats.rejected_link_table_full, 1);
    let write = |buf: &mut [u8]| {
        let mut w = crate::json::SliceWriter::new(buf);
        w.put(b"{").unwrap();
        assert!(links.write_stats_fields(&mut w, 1).is_ok());
        w.put(b"}").unwrap();
        String::from_utf8(w.written().to_vec()).unwrap()
    };
    let text = write(&mut [0u8; 4096]);
    assert!(
        text.starts_with(r#"{, "links": {"p2": {"state": "down", "address": "tcp://127.0.0.1:1", "ups": 0"#),
        "{text}"
    );
    assert!(crate::json::parse(text.replacen("{, ", "{", 1).as_bytes()).is_ok(), "{text}");
    // too small a buffer: links omitted, JSON still closed
    let text = write(&mut [0u8; 200]);
    assert!(text.contains("\"links_omitted\": "), "{text}");
    assert!(text.ends_with('}'));
}

#[test]
fn addresses_and_names_are_checked() {
    assert!(valid_link_address("tcp://10.0.0.1:22916") && valid_link_address("ipc://@/x"));
    assert!(!valid_link_address("tcp://") && !valid_link_address("http://x") && !valid_link_address(""));
    assert!(valid_instance_name(b"p") && !valid_instance_name(b""));
}
