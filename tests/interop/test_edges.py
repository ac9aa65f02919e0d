"""Edges of the limits with real libzmq peers (issue #13): a publish larger than the per-peer
transmit queue, connections fired faster than the router accepts, and a NULL handshake whose
router side is done while newer connections crowd in.

Each test is the deterministic reproduction from the issue; README's limits table says what
happens at each edge.
"""
import json
import socket
import struct
import time

import zmq

from test_pubsub import BODY, count_of, publish, recv_vip, subscribe
from vipclient import VIP, Agent, fmt
from zmtpraw import NULL_GREETING, RawConn, check_router_greeting, message, ready

MIB = 1 << 20


def stats(agent):
    return json.loads(agent.query(b"stats", msgid=b"stats"))


# ----------------------------------------------------------------- 1. a publish larger than tx-queue-bytes

def test_publish_larger_than_the_transmit_queue_reaches_an_idle_subscriber(router, agents):
    """Issue #13.1: subscribe an idle peer to TTTT, publish topics of 1 040 000, 1 048 576 and
    3 MiB bytes (the queue limit is 1 MiB): each is delivered, and the count says 1."""
    sub = agents("sub", router.tcp)
    pub = agents("pub", router.tcp)
    sub.hello()
    pub.hello()
    subscribe(sub, "TTTT")
    for n in (1_040_000, MIB, 3 * MIB):
        topic = b"TTTT" + b"x" * (n - 4)
        assert publish(pub, topic, msgid=b"p%d" % n) == 1, f"count for a {n}-byte topic"
        f = recv_vip(sub, f"delivery of the {n}-byte topic")
        assert f[4:6] == [b"pubsub", b"publish"] and f[6] == topic, fmt(f)
    s = stats(pub)
    assert s["dropped_slow_subscriber"] == 0 and s["dropped_subscriber_budget"] == 0, s


def test_big_publish_as_first_message_is_not_dropped_behind_its_own_peerlist_add(router, agents):
    """The publisher's first message is the publish: registering it queues `peerlist add pub` to
    the idle subscriber just before the fan-out. That 40-byte notification must not make the
    1 MiB delivery count as a slow-subscriber drop (it did: count 1, nothing delivered)."""
    sub = agents("sub", router.tcp)
    sub.hello()
    subscribe(sub, "TTTT")
    pub = agents("pub", router.tcp)
    topic = b"TTTT" + b"y" * (MIB - 4)
    assert publish(pub, topic, msgid=b"first") == 1
    add, _ = sub.recv_matching(lambda f: f[4:6] == [b"peerlist", b"add"], what="peerlist add pub")
    assert add[6] == b"pub", fmt(add)
    f = recv_vip(sub, "the delivery")
    assert f[6] == topic, fmt(f)
    s = stats(sub)
    assert s["dropped_slow_subscriber"] == 0 and s["pubsub_deliveries"] == 1, s


def test_count_is_what_was_delivered_when_a_subscriber_is_full(router, agents):
    """A subscriber that never reads fills its queue: its deliveries are dropped, counted as a
    slow subscriber, and the publisher's count leaves it out (never claims a delivery that did
    not happen). Over all publishes: sum(counts) = deliveries made = what the subscribers got."""
    pub = agents("pub", router.tcp)
    stalled = agents("stalled", router.tcp, sockopts={zmq.RCVHWM: 1, zmq.RCVBUF: 4096})
    fast = agents("fast", router.tcp)
    for a in (pub, stalled, fast):
        a.hello()
    subscribe(stalled, "big")
    subscribe(fast, "big")
    body = b'{"bus": "", "headers": {}, "message": "%s"}' % (b"z" * 200_000)
    n = 40  # 8 MB: far past the stalled one's 1 MiB queue and socket buffers
    counts = []
    for i in range(n):
        pub.send(b"", b"pubsub", b"publish", b"big/x", body, msgid=b"%d" % i)
        assert recv_vip(fast, f"delivery {i}")[3] == b"%d" % i
        f = recv_vip(pub, f"count {i}")
        assert f[3] == b"%d" % i, fmt(f)
        counts.append(count_of(f))
    s = stats(pub)
    dropped = s["dropped_slow_subscriber"]
    assert dropped > 0 and s["slow_subscribers"] == {"stalled": dropped}, s
    assert set(counts) <= {1, 2} and counts.count(1) == dropped, (counts, s)
    # the stalled one now reads: it gets exactly the deliveries its counts claimed
    got = 0
    while True:
        f = stalled.poll_recv(2.0)
        if f is None:
            break
        if f[4:6] == [b"pubsub", b"publish"]:
            got += 1
    assert got == counts.count(2) == n - dropped, (got, counts)


# ----------------------------------------------------------------- 2. the listen backlog

def test_2000_connects_at_once_are_all_accepted_or_closed(router, agents):
    """Issue #13.2: 2000 connects fired at once. Every one the kernel completes gets the
    router's greeting (accepted) or a close (evicted or refused): none is left in the backlog."""
    n = 2000
    conns = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", router.port))
            conns.append(s)
        deadline = time.monotonic() + 10
        pending = set(range(n))
        answered = {"greeting": 0, "closed": 0}
        while pending and time.monotonic() < deadline:
            for i in list(pending):
                try:
                    data = conns[i].recv(64, socket.MSG_PEEK)
                except BlockingIOError:
                    continue
                except OSError:
                    answered["closed"] += 1
                    pending.discard(i)
                    continue
                answered["greeting" if data else "closed"] += 1
                pending.discard(i)
            time.sleep(0.05)
        assert not pending, f"{len(pending)} of {n} connections never accepted nor closed ({answered})"
        print(f"2000 connects: {answered}")
    finally:
        for s in conns:
            s.close()
    a = agents("after", router.tcp)
    a.hello()


# ----------------------------------------------------------------- 3. eviction of half-open handshakes

def test_null_handshake_done_on_our_side_is_not_evicted_by_newer_half_open_connections(router_factory):
    """Issue #13.3: complete a NULL greeting, read the router's READY, open 256 more connections
    that send nothing (past the handshake limit, here lowered to 64), then send READY + hello on
    the first: it is welcomed. The silent ones are what gets evicted."""
    router = router_factory(extra_config="[viprouter]\nmax-handshakes = 64\n")
    first = RawConn(router.tcp)
    silent = []
    try:
        first.send(NULL_GREETING)
        check_router_greeting(first.recv_exact(64))
        name, _ = first.read_command()
        assert name == b"READY", name
        for _ in range(256):
            silent.append(socket.create_connection(("127.0.0.1", router.port)))
        time.sleep(0.5)
        first.send(ready(b"DEALER", b"first") + message([b"", VIP, b"", b"h1", b"hello", b"hello"]))
        f = first.read_message()
        assert f[3:6] == [b"h1", b"hello", b"welcome"], f
        first.send(message([b"", VIP, b"", b"s", b"query", b"stats"]))
        s = json.loads(first.read_message()[6])
        assert s["rejected_handshake_evicted"] >= 256 - 64, s
    finally:
        for c in silent:
            c.close()
        first.close()
