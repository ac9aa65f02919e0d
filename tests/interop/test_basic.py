"""Router-handled subsystems: hello, ping, query, error, quit, unknown subsystems, silent drops.

VIP.md §3, §4, §5, §6, E1, E4.3/E4.4, E5.  Parametrized over TCP and abstract ipc (`ep`).
"""
import json
import re
import time
import uuid

import zmq

from vipclient import VIP, fmt, peerlist_note, roundtrip

UUID_RX = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ----------------------------------------------------------------- hello (E1)

def test_hello_welcome_exact(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"hello", b"hello", msgid=b"connect.hello.0")
    f = a.recv(what="welcome")
    assert len(f) == 9, fmt(f)
    assert f[:7] == [b"", VIP, b"agent.a", b"connect.hello.0", b"hello", b"welcome", b"1.0"], fmt(f)
    rid = f[7]
    assert len(rid) == 36 and UUID_RX.match(rid), f"router id must be 36-byte uuid text (§2.1): {rid!r}"
    assert uuid.UUID(rid.decode()).version == 4, f"router id should be a uuid4: {rid!r}"
    assert f[8] == b"agent.a", fmt(f)
    a.expect_silence(0.3, "nothing but the welcome")


def test_hello_any_args_and_user_id_ignored(ep, agents):
    """§5.1: hello accepts any args (even none); USER_ID on input is ignored, reply carries identity."""
    a = agents("agent.a", ep)
    a.send(b"", b"hello", msgid=b"h0", user=b"forged")
    f = a.recv(what="welcome (no args)")
    assert f[:7] == [b"", VIP, b"agent.a", b"h0", b"hello", b"welcome", b"1.0"] and f[8:] == [b"agent.a"], fmt(f)
    a.send(b"", b"hello", b"x", b"y", b"z", msgid=b"h1")
    f = a.recv(what="welcome (3 args)")
    assert f[:7] == [b"", VIP, b"agent.a", b"h1", b"hello", b"welcome", b"1.0"] and f[8:] == [b"agent.a"], fmt(f)


def test_router_id_same_for_all_peers_and_transports(router, agents):
    a = agents("agent.a", router.tcp)
    ra = a.hello()
    rb = agents("agent.b", router.ipc).hello()
    assert a.recv() == peerlist_note("add", "agent.b")
    ra2 = a.hello(msgid=b"connect.hello.1")
    assert ra == rb == ra2, (ra, rb, ra2)


def test_empty_msgid_echoed(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"hello", b"hello", msgid=b"")
    f = a.recv()
    assert f[:6] == [b"", VIP, b"agent.a", b"", b"hello", b"welcome"], fmt(f)


# ----------------------------------------------------------------- ping (§5.2, E5)

def test_ping_pong_copies_args(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"ping", b"ping", b"x", b"y", msgid=b"p2")
    assert a.recv() == [b"", VIP, b"agent.a", b"p2", b"ping", b"pong", b"x", b"y"]
    a.send(b"", b"ping", b"anything", b"\xff\x00", b"", msgid=b"p3", user=b"forged")
    f = a.recv()
    assert f == [b"", VIP, b"agent.a", b"p3", b"ping", b"pong", b"\xff\x00", b""], fmt(f)


def test_ping_without_args(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"ping", msgid=b"p0")
    f = a.recv()
    assert f == [b"", VIP, b"agent.a", b"p0", b"ping", b"pong"], fmt(f)


def test_vip_ping_library_form(ep, agents):
    """The agent library's vip.ping sends ['drop', peer] to the router: reply is pong, peer (§5.2)."""
    a = agents("agent.a", ep)
    a.send(b"", b"ping", b"drop", b"agent.b", msgid=b"p4")
    assert a.recv() == [b"", VIP, b"agent.a", b"p4", b"ping", b"pong", b"agent.b"]


# ----------------------------------------------------------------- query (§5.4, E5)

def test_query_instance_name(ep, agents):
    assert agents("agent.a", ep).query(b"instance-name") == b"itest"


def test_query_addresses(router, ep, agents):
    v = agents("agent.a", ep).query(b"addresses")
    assert json.loads(v) == [router.tcp], v


def test_query_addresses_multiple_vip_addresses(router_factory, ctx):
    from vipclient import Agent

    r = router_factory(extra_tcp=1)
    a = Agent(ctx, r.extra_tcp[0], "agent.a")
    try:
        v = a.query(b"addresses")
        assert sorted(json.loads(v)) == sorted(r.addresses), v
        other = Agent(ctx, r.tcp, "agent.b")
        other.hello()
        roundtrip(a, other, skip_peerlist=True)
        other.close()
    finally:
        a.close()


def test_query_local_address(router, ep, agents):
    v = agents("agent.a", ep).query(b"local_address")
    assert v == router.ipc.encode(), v


def test_query_platform_version(ep, agents):
    v = agents("agent.a", ep).query(b"platform-version")
    # §5.4: "9.0.4 (report the VOLTTRON version the deployment emulates)"
    assert re.fullmatch(rb"9\.\d+(\.\d+)?", v), f"expected a VOLTTRON 9.x version string, got {v!r}"


def test_query_message_bus(ep, agents):
    assert agents("agent.a", ep).query(b"message-bus") == b"zmq"


def test_query_agent_monitor_frequency_packed(ep, agents):
    assert agents("agent.a", ep).query(b"agent-monitor-frequency") == b"\x58\x02\x00\x00"


def test_query_unknown_and_missing_key(ep, agents):
    a = agents("agent.a", ep)
    assert a.query(b"nonexistent", msgid=b"q1") == b""
    assert a.query(None, msgid=b"q2") == b""
    assert a.query(b"", msgid=b"q3") == b""


def test_query_unconfigured_keys_empty(ep, agents):
    a = agents("agent.a", ep)
    for i, k in enumerate([b"volttron-central-address", b"volttron-central-serverkey", b"bind-web-address"]):
        assert a.query(k, msgid=b"qq%d" % i) == b"", k


def test_query_extra_args_ignored(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"query", b"instance-name", b"extra", b"more", msgid=b"qx")
    assert a.recv() == [b"", VIP, b"", b"qx", b"query", b"", b"itest"]


def test_query_stats_json_object(ep, agents):
    a = agents("agent.a", ep)
    b_ = agents("agent.b", ep)
    a.hello()
    b_.hello()
    assert a.recv() == peerlist_note("add", "agent.b")
    roundtrip(a, b_)
    v = a.query(b"stats")
    obj = json.loads(v)
    assert isinstance(obj, dict) and obj, f"stats must be a non-empty JSON object: {v[:200]!r}"

    def numbers(o):
        if isinstance(o, bool):
            return
        if isinstance(o, (int, float)):
            yield o
        elif isinstance(o, dict):
            for x in o.values():
                yield from numbers(x)
        elif isinstance(o, list):
            for x in o:
                yield from numbers(x)

    nums = list(numbers(obj))
    assert nums and any(n > 0 for n in nums), f"stats has no non-zero counters after traffic: {v[:300]!r}"


# ----------------------------------------------------------------- errors (§5.5, §5.7, §5.10, E4)

def test_unknown_subsystem_93_exact(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"foo", b"bar", msgid=b"u1")
    f = a.recv(what="error 93")
    assert f == [b"", VIP, b"", b"u1", b"error", b"93", b"Protocol not supported", b"", b"foo"], fmt(f)


def test_empty_subsystem_93(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"", msgid=b"u2")
    f = a.recv(what="error 93")
    assert f == [b"", VIP, b"", b"u2", b"error", b"93", b"Protocol not supported", b"", b""], fmt(f)


def test_quit_from_non_control_93(ep, router, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"quit", msgid=b"u3")
    f = a.recv(what="error 93")
    assert f == [b"", VIP, b"", b"u3", b"error", b"93", b"Protocol not supported", b"", b"quit"], fmt(f)
    router.assert_alive()
    a.hello()


def test_quit_from_control_stops_router(router, agents):
    """§5.7: quit from identity `control` stops routing; a standalone router exits (cleanly)."""
    c = agents("control")
    c.hello()
    c.send(b"", b"quit")
    try:
        rc = router.proc.wait(5)
    except Exception:
        rc = None
    assert rc is not None, "router still running 5 s after `quit` from control"
    assert rc == 0, f"router exit code after quit: {rc}"


def test_error_subsystem_to_router_silent(ep, router, agents):
    a = agents("agent.a", ep)
    a.hello()
    a.send(b"", b"error", b"93", b"Protocol not supported", b"", b"foo", msgid=b"e1")
    a.expect_silence(0.5, "error to the router is discarded")
    a.send(b"", b"ping", b"ping", b"alive", msgid=b"p")
    assert a.recv() == [b"", VIP, b"agent.a", b"p", b"ping", b"pong", b"alive"]


def test_send_to_router_own_id_is_113(ep, agents):
    """§4 step 5, E5: the router's routing id is not an alias for the router."""
    a = agents("agent.a", ep)
    rid = a.hello()
    a.send(rid, b"ping", b"ping", msgid=b"r1")
    f = a.recv(what="error 113")
    assert f == [b"", VIP, b"agent.a", b"r1", b"error", b"113", b"No route to host", rid, b"ping"], fmt(f)


def test_bad_signature_silent_and_router_keeps_working(ep, router, agents):
    a = agents("agent.a", ep)
    a.hello()
    for proto in (b"VIP2", b"VIP", b"vip1", b"VIP1\x00", b""):
        a.send(b"", b"hello", b"hello", msgid=b"bad", proto=proto)
        a.send(b"", b"ping", msgid=b"bad2", proto=proto)
        a.send(b"agent.a", b"RPC", b"x", msgid=b"bad3", proto=proto)
    a.expect_silence(0.5, "bad VIP signature is dropped silently")
    router.assert_alive()
    a.send(b"", b"ping", b"ping", b"alive", msgid=b"ok")
    assert a.recv() == [b"", VIP, b"agent.a", b"ok", b"ping", b"pong", b"alive"]


def test_short_messages_silent(ep, router, agents):
    """Fewer than 5 DEALER frames (< 6 ROUTER-side) → dropped silently (§4 step 1, E5)."""
    a = agents("agent.a", ep)
    a.hello()
    for frames in ([b"", VIP, b"", b"m"], [b"", VIP, b""], [b"", VIP], [b"x"], [b"", b""], [b"agent.a", VIP, b"", b"m"]):
        a.send_raw(frames)
    a.expect_silence(0.5, "short messages are dropped")
    router.assert_alive()
    a.send(b"", b"ping", b"ping", b"alive", msgid=b"ok")
    assert a.recv() == [b"", VIP, b"agent.a", b"ok", b"ping", b"pong", b"alive"]


def test_bad_signature_does_not_register(ep, agents):
    """§3.3: a message with a bad signature does not register the sender."""
    b_ = agents("agent.b", ep)
    b_.hello()
    x = agents("ghost", ep)
    x.send(b"", b"hello", b"hello", proto=b"VIP2")
    x.send_raw([b"", VIP, b""])
    b_.expect_silence(0.5, "no peerlist add for an unregistered sender")
    assert b"ghost" not in b_.peerlist()


def test_router_probe_registers(ep, agents):
    """§4 step 1: a 2-frame [identity, ''] message (one empty DEALER frame) registers the peer."""
    b_ = agents("agent.b", ep)
    b_.hello()
    p = agents("prober", ep)
    p.send_raw([b""])
    f = b_.recv(what="peerlist add for router probe")
    assert f == peerlist_note("add", "prober"), fmt(f)
    p.expect_silence(0.3, "router probe gets no reply")
    assert b"prober" in b_.peerlist()


def test_many_requests_in_one_burst(ep, agents):
    """Pipelined router requests are answered in order, each MSG_ID echoed."""
    a = agents("agent.a", ep)
    n = 500
    for i in range(n):
        a.send(b"", b"ping", b"ping", b"%d" % i, msgid=b"m%d" % i)
    for i in range(n):
        f = a.recv()
        assert f == [b"", VIP, b"agent.a", b"m%d" % i, b"ping", b"pong", b"%d" % i], fmt(f)
