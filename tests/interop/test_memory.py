"""Memory after a burst (limits.rs IDLE_SHRINK_MS): buffers that grew to hold a backlog are
given back once the connection has been idle for 5 s, so a burst leaves no lasting cost."""
import json
import time

import zmq


def stats(agent):
    agent.send(b"", b"query", b"stats", msgid=b"st")
    f, _ = agent.recv_matching(lambda f: f[3] == b"st", 5.0, "query stats reply")
    return json.loads(f[6])


def test_buffers_shrink_back_after_a_burst(router, agents):
    # The backlog must sit in the router, not in b's libzmq pipe or kernel buffers: b reads
    # nothing until the measurement (RCVHWM 10, SO_RCVBUF 64 KiB), so the router's queue for b
    # fills (tx-queue-bytes, 1 MiB) and a is paused. b starts reading well within send-stall-ms
    # (2 s), so the paused sender gets no error 11; the stats query comes from a third agent,
    # because a's own query would wait behind its paused RPCs. (A fast CI machine let b's libzmq
    # thread drain the whole burst into a 100000-message pipe: the router then held 200 KiB.)
    a = agents("agent.a", sockopts={zmq.SNDHWM: 100000})  # the burst waits in a, never blocks it
    b = agents("agent.b", sockopts={zmq.RCVHWM: 10, zmq.RCVBUF: 64 * 1024})
    c = agents("agent.c")
    a.hello()
    b.hello()
    c.hello()
    for i in range(3000):
        a.send(b"agent.b", b"RPC", b"x" * 4000, msgid=b"m%d" % i)
    time.sleep(0.3)
    during = stats(c)["buffer_bytes"]
    got = 0
    while got < 3000:
        f = b.poll_recv(5.0)
        assert f is not None, f"only {got} of 3000 delivered"
        if f[4] == b"RPC":
            got += 1
    time.sleep(6.5)
    after = stats(c)["buffer_bytes"]
    assert during > 512 * 1024, during
    assert after <= 64 * 1024, f"buffers after 6.5 s idle: {after} bytes (during the burst: {during})"


def test_the_shared_pool_is_given_back_after_a_fan_out_burst(router, agents):
    """A pubsub fan-out to NULL subscribers is encoded once into the shared transmit pool
    (limits.rs SHARED_CHUNK_BYTES, 256 KiB a chunk, taken from the buffer budget): once no queue
    refers to a chunk and it has not been written to for IDLE_SHRINK_MS, it is freed too."""
    pub = agents("agent.pub", sockopts={zmq.RCVHWM: 100000})
    subs = [agents(f"agent.sub{i}", sockopts={zmq.RCVHWM: 100000}) for i in range(3)]
    for a in [pub, *subs]:
        a.hello()
    for i, s in enumerate(subs):
        body = json.dumps({"prefix": "devices/burst", "bus": "", "all_platforms": False}).encode()
        s.send(b"", b"pubsub", b"subscribe", body, msgid=b"s%d" % i)
        s.recv_matching(lambda f: f[3] == b"s%d" % i, 5.0, "subscribe result")
    body = json.dumps({"bus": "", "headers": {}, "message": "x" * 1000}).encode()
    for i in range(2000):
        pub.send(b"", b"pubsub", b"publish", b"devices/burst/t", body, msgid=b"p%d" % i)
    for s in subs:
        got = 0
        while got < 2000:
            f = s.poll_recv(5.0)
            assert f is not None, f"{s.identity!r}: only {got} of 2000 delivered"
            got += len(f) > 4 and f[4] == b"pubsub"
    time.sleep(1.2)  # the buffer_bytes gauge is brought up to date once a second
    during = stats(pub)
    time.sleep(6.5)  # idle since the query too
    after = stats(pub)["buffer_bytes"]
    assert during["fanout_shared"] >= 3 * 2000 // 2, during
    assert during["buffer_bytes"] >= 256 * 1024, during
    assert after <= 64 * 1024, f"buffers after 6.5 s idle: {after} bytes (after the burst: {during['buffer_bytes']})"
