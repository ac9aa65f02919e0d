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
    a = agents("agent.a")
    b = agents("agent.b", sockopts={zmq.RCVHWM: 100000})
    a.hello()
    b.hello()
    for i in range(3000):
        a.send(b"agent.b", b"RPC", b"x" * 4000, msgid=b"m%d" % i)
    time.sleep(1.0)
    during = stats(a)["buffer_bytes"]
    got = 0
    while got < 3000:
        f = b.poll_recv(5.0)
        assert f is not None, f"only {got} of 3000 delivered"
        if f[4] == b"RPC":
            got += 1
    time.sleep(6.5)
    after = stats(a)["buffer_bytes"]
    assert during > 512 * 1024, during
    assert after <= 64 * 1024, f"buffers after 6.5 s idle: {after} bytes (during the burst: {during})"
