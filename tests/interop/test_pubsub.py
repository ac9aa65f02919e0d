"""The pubsub service over real libzmq DEALERs (pyzmq): VIP.md §7, E3, E4.5, E5, §16.2.

Exact frames for subscribe/publish/unsubscribe/list (tcp and abstract ipc), bulk in-order
delivery, slow-subscriber isolation, protected topics (driven by `protected_update`/`auth_update`
from an agent named `platform.auth`), cleanup on disconnect, malformed input.
"""
import json
import struct
import time

import zmq

from vipclient import VIP, fmt

E3_SUB = b'{"prefix": "devices/campus", "bus": "", "all_platforms": false}'
E3_PUB = (b'{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, '
          b'"message": {"v": [1, 2.5, "\\u00e9"]}}')
E3_DELIVERY = (b'{"sender": "agent.a", "bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", '
               b'"max_compatible_version": ""}, "message": {"v": [1, 2.5, "\\u00e9"]}}')
BODY = b'{"bus": "", "headers": {"min_compatible_version": "3.0", "max_compatible_version": ""}, "message": 1}'


def not_peerlist(f):
    return len(f) > 4 and f[4] != b"peerlist"


def recv_vip(agent, what, timeout=5.0):
    """Next message that is not a peerlist notification."""
    f, _ = agent.recv_matching(not_peerlist, timeout=timeout, what=what)
    return f


def expect_no_vip(agent, timeout=0.3, why=""):
    """No message other than peerlist notifications for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        f = agent.poll_recv(max(left, 0))
        if f is None:
            return
        assert not not_peerlist(f), f"{agent.identity!r}: expected no message ({why}), got {fmt(f)}"


def hello_all(*agents):
    for a in agents:
        a.hello()


def subscribe(agent, prefix, msgid=b"s1", bus=""):
    body = json.dumps({"prefix": prefix, "bus": bus, "all_platforms": False}).encode()
    agent.send(b"", b"pubsub", b"subscribe", body, msgid=msgid)
    f = recv_vip(agent, "subscribe result")
    assert f == [b"", VIP, agent.identity, msgid, b"pubsub", b"request_response", b"\x01"], fmt(f)


def count_of(f):
    assert f[4:6] == [b"pubsub", b"request_response"] and len(f) == 7 and len(f[6]) == 4, fmt(f)
    return struct.unpack("<I", f[6])[0]


def publish(agent, topic, body=BODY, msgid=b"p1"):
    """Publish and return the count (skipping deliveries to the publisher itself)."""
    agent.send(b"", b"pubsub", b"publish", topic, body, msgid=msgid)
    f, _ = agent.recv_matching(lambda f: len(f) > 5 and f[5] == b"request_response", what="publish count")
    return count_of(f)


# ----------------------------------------------------------------- E3 / E5, exact frames

def test_e3_subscribe_publish_delivery_exact(ep, agents):
    a = agents("agent.a", ep)
    b_ = agents("agent.b", ep)
    hello_all(a, b_)
    sub_id = b"1795550810.000000.8727080168650.000000"
    b_.send(b"", b"pubsub", b"subscribe", E3_SUB, msgid=sub_id)
    f = recv_vip(b_, "E3.2")
    assert f == [b"", VIP, b"agent.b", sub_id, b"pubsub", b"request_response", b"\x01"], fmt(f)

    pub_id = b"1795550811.000000.8727080168749.000000"
    a.send(b"", b"pubsub", b"publish", b"devices/campus/b1/all", E3_PUB, msgid=pub_id)
    f = recv_vip(b_, "E3.4 delivery")
    assert f == [b"", VIP, b"", pub_id, b"pubsub", b"publish", b"devices/campus/b1/all", E3_DELIVERY], fmt(f)
    assert len(f[7]) == 154
    f = recv_vip(a, "E3.5 count")
    assert f == [b"", VIP, b"agent.a", pub_id, b"pubsub", b"request_response", b"\x01\x00\x00\x00"], fmt(f)
    expect_no_vip(b_, 0.2, "one copy")


def test_e5_list_unsubscribe_and_counts(ep, agents):
    a = agents("agent.a", ep)
    b_ = agents("agent.b", ep)
    hello_all(a, b_)
    subscribe(b_, "heartbeat")
    subscribe(a, "x/")
    subscribe(a, "y/", msgid=b"s2")
    subscribe(b_, "x/", msgid=b"s3", bus="other")
    a.send(b"", b"pubsub", b"list", b'{"prefix": "", "bus": null, "subscribed": false, "reverse": false}', msgid=b"pl")
    f = recv_vip(a, "list_response")
    assert f[:6] == [b"", VIP, b"agent.a", b"pl", b"pubsub", b"list_response"] and len(f) == 7, fmt(f)
    rows = sorted(tuple(r) for r in json.loads(f[6]))
    assert rows == [("", "heartbeat", False), ("", "x/", True), ("", "y/", True), ("other", "x/", False)], rows

    assert publish(b_, b"x/1") == 1
    assert recv_vip(a, "delivery of x/1")[5:7] == [b"publish", b"x/1"]
    assert publish(b_, b"nothing") == 0
    a.send(b"", b"pubsub", b"unsubscribe", b'{"internal": {"prefix": ["x/"], "bus": ""}}', msgid=b"us")
    f = recv_vip(a, "unsubscribe result")
    assert f == [b"", VIP, b"agent.a", b"us", b"pubsub", b"request_response", b"\x01"], fmt(f)
    assert publish(b_, b"x/1", msgid=b"p2") == 0
    a.send(b"", b"pubsub", b"unsubscribe", b'{"prefix": "y/", "bus": ""}', msgid=b"ul")
    assert recv_vip(a, "legacy unsubscribe")[6] == b"\x01"
    assert publish(b_, b"y/1", msgid=b"p3") == 0
    # subscribe without prefix → 00 (E5)
    a.send(b"", b"pubsub", b"subscribe", b'{"bus": ""}', msgid=b"s0")
    assert recv_vip(a, "subscribe without prefix")[6] == b"\x00"


def test_count_two_and_publisher_gets_its_own(router, agents):
    a = agents("agent.a", router.tcp)
    b_ = agents("agent.b", router.ipc)
    hello_all(a, b_)
    subscribe(a, "")
    subscribe(b_, "dev")
    a.send(b"", b"pubsub", b"publish", b"devices/x", BODY, msgid=b"p2")
    mine = recv_vip(a, "own delivery")
    assert mine[5:7] == [b"publish", b"devices/x"], fmt(mine)
    assert json.loads(mine[7])["sender"] == "agent.a"
    assert recv_vip(a, "count")[6] == b"\x02\x00\x00\x00"
    assert recv_vip(b_, "delivery")[5] == b"publish"


# ----------------------------------------------------------------- bulk and order

def test_10000_publishes_to_3_subscribers_in_order(router, agents):
    pub = agents("pub", router.tcp)
    subs = [agents(f"sub{i}", router.tcp if i % 2 else router.ipc) for i in range(3)]
    hello_all(pub, *subs)
    for i, s in enumerate(subs):
        subscribe(s, "" if i == 0 else "devices")
    n, window = 10_000, 500
    t0 = time.monotonic()
    for start in range(0, n, window):
        for i in range(start, start + window):
            pub.send(b"", b"pubsub", b"publish", b"devices/all", b'{"bus": "", "headers": {}, "message": %d}' % i,
                     msgid=b"%d" % i)
        for s in subs:
            for i in range(start, start + window):
                f = recv_vip(s, f"publish {i}")
                assert f[3] == b"%d" % i and f[7].endswith(b'"message": %d}' % i), f"out of order: {fmt(f)}"
        for i in range(start, start + window):
            f = recv_vip(pub, f"count {i}")
            assert f[3] == b"%d" % i and count_of(f) == 3, fmt(f)
    elapsed = time.monotonic() - t0
    assert elapsed < 60, f"10 000 publishes x 3 took {elapsed:.1f} s"
    stats = json.loads(pub.query(b"stats"))
    assert stats["dropped_slow_subscriber"] == 0 and stats["pubsub_deliveries"] >= 3 * n, stats


def test_stalled_subscriber_does_not_hold_back_the_others(router, agents):
    """One subscriber never reads (small RCVHWM and kernel buffer); the others get everything,
    the publisher gets every count (3 while the stalled one's queue has room, then 2: the count
    is what was delivered, never a delivery that did not happen), the drops show in query stats."""
    pub = agents("pub", router.tcp)
    stalled = agents("stalled", router.tcp, sockopts={zmq.RCVHWM: 10, zmq.RCVBUF: 4096})
    fast = [agents(f"fast{i}", router.tcp) for i in range(2)]
    hello_all(pub, stalled, *fast)
    for s in [stalled, *fast]:
        subscribe(s, "devices")
    payload = b"x" * 2000
    body = b'{"bus": "", "headers": {}, "message": "%s"}' % payload
    n, window = 10_000, 500  # ~20 MB for the stalled one: far past its queue and socket buffers
    t0 = time.monotonic()
    counts = []
    for start in range(0, n, window):
        for i in range(start, start + window):
            pub.send(b"", b"pubsub", b"publish", b"devices/big", body, msgid=b"%d" % i)
        for s in fast:
            for i in range(start, start + window):
                f = recv_vip(s, f"publish {i} to {s.identity!r}")
                assert f[3] == b"%d" % i, fmt(f)
        for i in range(start, start + window):
            f = recv_vip(pub, f"count {i}")
            assert f[3] == b"%d" % i and count_of(f) in (2, 3), fmt(f)
            counts.append(count_of(f))
    elapsed = time.monotonic() - t0
    assert elapsed < 60, f"took {elapsed:.1f} s"
    expect_no_vip(pub, 0.2, "no error 11 for fan-out drops")
    stats = json.loads(pub.query(b"stats"))
    dropped = stats["dropped_slow_subscriber"]
    assert dropped > 0, stats
    assert counts.count(2) == dropped, f"{counts.count(2)} counts of 2 for {dropped} drops"
    assert stats["slow_subscribers"] == {"stalled": dropped}, stats
    router.assert_alive()
    assert router.wait_log(r"slow subscriber stalled: queue full", timeout=2.0), router.log_tail()


# ----------------------------------------------------------------- protected topics (E4.5)

def test_e4_5_protected_topic_refused(router, agents):
    auth = agents("platform.auth", router.tcp)
    a = agents("agent.a", router.tcp)
    b_ = agents("agent.b", router.tcp)
    d = agents("agent.d", router.tcp)
    sub = agents("listener", router.tcp)
    hello_all(auth, a, b_, d, sub)
    subscribe(sub, "")
    protected = b'{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}]}'
    auth.send(b"", b"pubsub", b"protected_update", protected)
    auth.send(b"", b"pubsub", b"auth_update",
              b'{"capabilities": {"agent.a": {"raw_cap": null}, "agent.b": {"can_publish": null}}}')
    expect_no_vip(auth, 0.3, "policy updates are never answered")

    a.send(b"", b"pubsub", b"publish", b"secret/x", BODY, msgid=b"pp1")
    f = recv_vip(a, "E4.5 error")
    text = (b"to publish to topic \"secret/x\" requires capabilities ['can_publish'], "
            b"but capability list {'raw_cap': None} was provided")
    assert len(text) == 120
    assert f == [b"", VIP, b"agent.a", b"pp1", b"error", b"-32001", text, b"", b"pubsub"], fmt(f)
    f = recv_vip(a, "count 0 after the error")
    assert f == [b"", VIP, b"agent.a", b"pp1", b"pubsub", b"request_response", b"\x00\x00\x00\x00"], fmt(f)
    # the literal `secret` protects `secretive` (plain prefix)
    a.send(b"", b"pubsub", b"publish", b"secretive", BODY, msgid=b"pp2")
    assert recv_vip(a, "error")[4:6] == [b"error", b"-32001"]
    assert count_of(recv_vip(a, "count")) == 0
    expect_no_vip(sub, 0.3, "refused publishes are not delivered")
    # with the capability / without any capability entry: delivered
    assert publish(b_, b"secret/y") == 1
    assert publish(d, b"secret/z") == 1
    got = [recv_vip(sub, "delivery")[6] for _ in range(2)]
    assert got == [b"secret/y", b"secret/z"], got
    # nobody else can lift the protection
    a.send(b"", b"pubsub", b"protected_update", b"{}")
    a.send(b"", b"pubsub", b"publish", b"secret", BODY, msgid=b"pp3")
    assert recv_vip(a, "still refused")[4] == b"error"


# ----------------------------------------------------------------- synchronize, cleanup

def test_synchronize_twice_is_once_and_disconnect_removes_subscriptions(router, agents, ctx):
    pub = agents("pub", router.tcp)
    lis = agents("listener", router.tcp)
    hello_all(pub, lis)
    body = b'{"subscriptions": {"internal": {"": [""]}}}'
    for _ in range(2):
        lis.send(b"", b"pubsub", b"synchronize", b"connected", body, msgid=b"sync")
    expect_no_vip(lis, 0.3, "synchronize is never answered")
    assert publish(pub, b"anything") == 1
    assert recv_vip(lis, "delivery")[6] == b"anything"
    lis.send(b"", b"pubsub", b"synchronize", b"connected", b'{"subscriptions": {}}', msgid=b"sync")
    time.sleep(0.2)
    assert publish(pub, b"anything", msgid=b"p2") == 0
    lis.send(b"", b"pubsub", b"synchronize", b"connected", body, msgid=b"sync")
    time.sleep(0.2)
    assert publish(pub, b"anything", msgid=b"p3") == 1
    lis.close()  # disconnect without agentstop
    deadline = time.monotonic() + 5
    n = 1
    while n and time.monotonic() < deadline:
        time.sleep(0.1)
        n = publish(pub, b"anything", msgid=b"p4")
    assert n == 0, "a disconnected peer's subscriptions are removed"


def test_malformed_pubsub_never_kills_the_router(router, agents):
    a = agents("agent.a", router.tcp)
    a.hello()
    cases = [
        ([b"subscribe", b"hello"], b"\x00"),
        ([b"subscribe", b"[1]"], b"\x00"),
        ([b"subscribe", b'{"prefix": 5, "bus": ""}'], b"\x00"),
        ([b"unsubscribe", b'{"internal": {"bus": ""}}'], b"\x00"),
        ([b"unsubscribe", b"x"], b"\x00"),
        ([b"publish", b"t", b"not json"], b"\x00\x00\x00\x00"),
        ([b"publish", b"t", b"[]"], b"\x00\x00\x00\x00"),
        ([b"list", b"x"], b"[]"),
        ([b"list"], b"[]"),
    ]
    for args, want in cases:
        a.send(b"", b"pubsub", *args, msgid=b"bad")
        f = recv_vip(a, f"answer to {args!r}")
        assert f[6] == want, f"{args!r}: {fmt(f)}"
    for args in ([b"frobnicate"], [], [b"synchronize", b"connected", b"[]"], [b"publish", b"t"],
                 [b"auth_update", b"{}"], [b"external_list", b"{}"]):
        a.send(b"", b"pubsub", *args, msgid=b"silent")
    expect_no_vip(a, 0.5, "unknown ops and short publishes get no reply")
    router.assert_alive()
    assert publish(a, b"t") == 0
