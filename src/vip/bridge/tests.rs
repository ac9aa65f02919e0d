use super::*;

#[test]
fn off_until_configured_then_dialled_with_a_bounded_backoff() {
    let mut stats = Stats::default();
    let mut b = Bridge::new(7);
    assert!(!b.is_on() && !b.take_dial(Instant(0)) && b.next_deadline().is_none());
    b.configure("127.0.0.1:5672/volttron");
    assert_eq!(b.next_deadline(), Some(Instant(0)));
    assert!(b.take_dial(Instant(0)));
    assert!(!b.take_dial(Instant(0)), "one dial at a time");
    b.mark_up(&mut stats);
    assert_eq!((b.state(), stats.amqp_ups), (BridgeState::Up, 1));
    let mut now = Instant(1000);
    let mut waits = Vec::new();
    for _ in 0..10 {
        b.mark_down(&mut stats, now, BridgeDown::ConnectFailed);
        let at = b.next_deadline().unwrap();
        waits.push(at.0 - now.0);
        assert!(!b.take_dial(Instant(at.0 - 1)), "not before its time");
        assert!(b.take_dial(at));
        now = at;
    }
    assert_eq!(stats.amqp_downs, 10);
    assert!(waits[0] >= BRIDGE_RETRY_MIN_MS && waits[0] <= BRIDGE_RETRY_MIN_MS * 5 / 4, "{waits:?}");
    assert!(waits.iter().all(|&w| w <= BRIDGE_RETRY_MAX_MS * 5 / 4), "{waits:?}");
    assert!(waits[9] >= BRIDGE_RETRY_MAX_MS, "{waits:?}");
    b.mark_up(&mut stats);
    b.mark_down(&mut stats, now, BridgeDown::Closed);
    assert!(b.next_deadline().unwrap().0 - now.0 <= BRIDGE_RETRY_MIN_MS * 5 / 4, "an up resets the backoff");
    // Reports for a bridge that is not connecting or up are ignored.
    b.mark_down(&mut stats, now, BridgeDown::Closed);
    b.mark_up(&mut stats);
    assert_eq!((stats.amqp_downs, stats.amqp_ups), (11, 2));
}
