"""Peer-to-peer forwarding, errors 113, peer lifecycle (peerlist), duplicates, ordering, heartbeats.

VIP.md §2.4, §3.5, §3.6, §4, §5.3, §5.6, §8, E2, E4.1/E4.2, E5; ZMTP.md §4.6, §9.2.
"""
import time

import pytest
import zmq

from vipclient import VIP, Agent, fmt, peerlist_note, roundtrip

MIB = 1024 * 1024


def pair(agents, ep):
    a = agents("agent.a", ep)
    b_ = agents("agent.b", ep)
    a.hello()
    b_.hello()
    # b sees a? a said hello first, so a sees `add agent.b`; drain it.
    f = a.recv(what="peerlist add agent.b")
    assert f == peerlist_note("add", "agent.b"), fmt(f)
    return a, b_


# ----------------------------------------------------------------- forwarding (§4 step 5)

def test_route_byte_exact(ep, agents):
    a, b_ = pair(agents, ep)
    a.send(b"agent.b", b"RPC", b'{"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "x"}', b"tail",
           msgid=b"m1")
    f = b_.recv()
    assert f == [b"agent.a", VIP, b"agent.a", b"m1", b"RPC",
                 b'{"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "x"}', b"tail"], fmt(f)


def test_route_no_args(ep, agents):
    a, b_ = pair(agents, ep)
    a.send(b"agent.b", b"custom", msgid=b"m0")
    assert b_.recv() == [b"agent.a", VIP, b"agent.a", b"m0", b"custom"]


def test_user_id_overwritten_with_sender_identity(ep, agents):
    a, b_ = pair(agents, ep)
    a.send(b"agent.b", b"RPC", b"{}", msgid=b"m2", user=b"admin")
    f = b_.recv()
    assert f == [b"agent.a", VIP, b"agent.a", b"m2", b"RPC", b"{}"], f"USER_ID must be the sender identity: {fmt(f)}"


def test_numeric_msgid_byte_exact(ep, agents):
    """§3.7: forward byte-for-byte; a JSON-number-looking MSG_ID must not be re-packed."""
    a, b_ = pair(agents, ep)
    mid = b"1795550813.8764837066011"
    a.send(b"agent.b", b"RPC", b"12345", b"1e40", b"-1", msgid=mid)
    f = b_.recv()
    assert f == [b"agent.a", VIP, b"agent.a", mid, b"RPC", b"12345", b"1e40", b"-1"], fmt(f)
    b_.send(b"agent.a", b"RPC", b"{}", msgid=mid)
    assert a.recv() == [b"agent.b", VIP, b"agent.b", mid, b"RPC", b"{}"]


def test_large_and_empty_frames(ep, agents):
    a, b_ = pair(agents, ep)
    big = bytes(range(256)) * (MIB // 256)
    a.send(b"agent.b", b"RPC", big, b"", b"x", msgid=b"big")
    f = b_.recv(10, "1 MiB message")
    assert len(f) == 8, fmt(f)
    assert f[:5] == [b"agent.a", VIP, b"agent.a", b"big", b"RPC"], fmt(f)
    assert len(f[5]) == MIB and f[5] == big, "1 MiB frame corrupted"
    assert f[6] == b"" and f[7] == b"x", fmt(f)
    # and back, with only an empty arg
    b_.send(b"agent.a", b"RPC", b"", msgid=b"")
    assert a.recv() == [b"agent.b", VIP, b"agent.b", b"", b"RPC", b""]


def test_short_long_frame_boundaries(ep, agents):
    """Frame sizes around the ZMTP short/long boundary (255/256) and 64 KiB."""
    a, b_ = pair(agents, ep)
    sizes = [0, 1, 254, 255, 256, 257, 65535, 65536, 65537]
    for s in sizes:
        a.send(b"agent.b", b"RPC", b"\xab" * s, msgid=b"s%d" % s)
    for s in sizes:
        f = b_.recv()
        assert f[3] == b"s%d" % s and f[5] == b"\xab" * s, f"size {s}: {fmt(f)}"


def test_binary_frames(ep, agents):
    a, b_ = pair(agents, ep)
    blob = b"\xff\x00\x01\x7f\x80\xfe" + bytes(range(256))
    a.send(b"agent.b", b"\xff\x00sub", blob, b"\x00", msgid=b"\x00\xffid", user=b"\xff")
    f = b_.recv()
    assert f == [b"agent.a", VIP, b"agent.a", b"\x00\xffid", b"\xff\x00sub", blob, b"\x00"], fmt(f)


def test_binary_identity(ep, agents):
    """Identities are opaque bytes (§2.4): non-ASCII and a leading 0x00 byte route like any other."""
    a = agents(b"\xc3\xa9t\xff", ep)
    b_ = agents(b"\x00abc", ep)
    a.hello()
    b_.hello()
    a.poll_recv(0.5)  # add notification
    a.send(b"\x00abc", b"RPC", b"x", msgid=b"bi")
    assert b_.recv() == [b"\xc3\xa9t\xff", VIP, b"\xc3\xa9t\xff", b"bi", b"RPC", b"x"]


def test_message_to_self(ep, agents):
    a = agents("agent.a", ep)
    a.hello()
    a.send(b"agent.a", b"RPC", b"me", msgid=b"self")
    assert a.recv() == [b"agent.a", VIP, b"agent.a", b"self", b"RPC", b"me"]


def test_forward_to_connected_peer_that_never_spoke(ep, agents):
    """Delivery depends on the transport (live pipe), not on registration (§2.4, §8.1)."""
    b_ = agents("silent.b", ep)
    a = agents("agent.a", ep)
    a.hello()
    deadline = time.monotonic() + 5
    while True:
        a.send(b"silent.b", b"RPC", b"x", msgid=b"f1")
        f = b_.poll_recv(0.2)
        if f is not None:
            break
        err = a.poll_recv(0)
        assert err is None or err[4:6] == [b"error", b"113"], fmt(err)
        assert time.monotonic() < deadline, "never delivered to a connected (silent) DEALER"
    assert f == [b"agent.a", VIP, b"agent.a", b"f1", b"RPC", b"x"], fmt(f)


def test_multi_frame_message_many_parts(ep, agents):
    a, b_ = pair(agents, ep)
    args = [b"%d" % i for i in range(50)]
    a.send(b"agent.b", b"RPC", *args, msgid=b"mp")
    assert b_.recv() == [b"agent.a", VIP, b"agent.a", b"mp", b"RPC"] + args


def test_cross_transport_routing(router, agents):
    a = agents("agent.a", router.tcp)
    b_ = agents("agent.b", router.ipc)
    a.hello()
    b_.hello()
    a.recv()
    roundtrip(a, b_)


# ----------------------------------------------------------------- 113 (E4.1/E4.2)

def test_unknown_recipient_113_exact(ep, agents):
    a = agents("agent.a", ep)
    a.hello()
    a.send(b"nobody", b"RPC", b"{}", msgid=b"n1")
    f = a.recv(what="error 113")
    assert f == [b"", VIP, b"agent.a", b"n1", b"error", b"113", b"No route to host", b"nobody", b"RPC"], fmt(f)


def test_unknown_recipient_113_with_forged_user_and_rpc_msgid(ep, agents):
    """USER in the error is the rewritten USER_ID (= sender identity). RPC's MSG_ID is a JSON
    number, which VOLTTRON's agent library would read back as a float and so never match: by
    default (`[viprouter] error-msg-id = agent-readable`, README "Choices") the router writes it
    in its errors as a JSON string of the same text. Byte-exact (§6.3) with `verbatim`: below."""
    a = agents("agent.a", ep)
    a.hello()
    mid = b"1795550813.8764837066011"
    a.send(b"nobody", b"RPC", b"{}", msgid=mid, user=b"mallory")
    f = a.recv(what="error 113")
    quoted = b'"' + mid + b'"'
    assert f == [b"", VIP, b"agent.a", quoted, b"error", b"113", b"No route to host", b"nobody", b"RPC"], fmt(f)


@pytest.mark.parametrize("which", ["tcp", "ipc"])
def test_verbatim_error_msg_id_is_byte_exact(router_factory, ctx, which):
    """`[viprouter] error-msg-id = verbatim`: MSG_ID byte-exact in router errors (§6.3)."""
    r = router_factory(extra_config="[viprouter]\nerror-msg-id = verbatim\n")
    a = Agent(ctx, getattr(r, which), b"agent.a")
    try:
        a.hello()
        mid = b"1795550813.8764837066011"
        a.send(b"nobody", b"RPC", b"{}", msgid=mid, user=b"mallory")
        f = a.recv(what="error 113")
        assert f == [b"", VIP, b"agent.a", mid, b"error", b"113", b"No route to host", b"nobody", b"RPC"], fmt(f)
        a.send(b"", b"no-such-subsystem", msgid=mid)
        f = a.recv(what="error 93")
        assert f == [b"", VIP, b"", mid, b"error", b"93", b"Protocol not supported", b"", b"no-such-subsystem"], fmt(f)
    finally:
        a.close()


# ----------------------------------------------------------------- peerlist (§5.3, §8)

def test_peerlist_list_contains_registered(ep, agents):
    a, b_ = pair(agents, ep)
    c = agents("agent.c", ep)
    c.hello()
    for x in (a, b_):
        assert x.recv() == peerlist_note("add", "agent.c")
    lst = a.peerlist()
    assert {b"agent.a", b"agent.b", b"agent.c"} <= set(lst), lst
    assert len(lst) == len(set(lst)), f"duplicates in listing: {lst}"


def test_peerlist_missing_operation(ep, agents):
    a = agents("agent.a", ep)
    a.send(b"", b"peerlist", msgid=b"l1")
    assert a.recv() == [b"", VIP, b"", b"l1", b"peerlist", b"error", b"missing operation"]
    a.send(b"", b"peerlist", b"", msgid=b"l0")
    assert a.recv() == [b"", VIP, b"", b"l0", b"peerlist", b"error", b"missing operation"]


def test_peerlist_unknown_operation(ep, agents):
    a = agents("agent.a", ep)
    for i, op in enumerate([b"add", b"drop", b"list_with_messagebus", b"LIST"]):
        a.send(b"", b"peerlist", op, b"zzz", msgid=b"l2-%d" % i)
        f = a.recv()
        assert f == [b"", VIP, b"", b"l2-%d" % i, b"peerlist", b"error", b"unknown operation"], (op, fmt(f))
    assert b"zzz" not in a.peerlist()


def test_peerlist_add_notification_exact(ep, agents):
    b_ = agents("agent.b", ep)
    b_.hello()
    a = agents("agent.a", ep)
    a.hello()
    f = b_.recv(what="peerlist add")
    assert f == [b"", VIP, b"", b"", b"peerlist", b"add", b"agent.a"], fmt(f)
    b_.expect_silence(0.3)
    a.expect_silence(0.3, "the newcomer gets no notification about itself")


def test_peerlist_add_before_newcomers_first_message(ep, agents):
    """§4 step 4 / E1.3: `add X` reaches existing peers before anything X sends after its welcome."""
    b_ = agents("agent.b", ep)
    b_.hello()
    a = agents("agent.a", ep)
    a.hello()  # waits for the welcome
    a.send(b"agent.b", b"RPC", b"after-welcome", msgid=b"aw")
    f1 = b_.recv()
    f2 = b_.recv()
    assert f1 == peerlist_note("add", "agent.a"), f"first message must be `peerlist add`: {fmt(f1)}"
    assert f2 == [b"agent.a", VIP, b"agent.a", b"aw", b"RPC", b"after-welcome"], fmt(f2)


def test_first_message_registers_without_hello(ep, agents):
    """§8.1: any valid message registers the sender; `add` precedes the message itself."""
    b_ = agents("agent.b", ep)
    b_.hello()
    a = agents("agent.a", ep)
    a.send(b"agent.b", b"RPC", b"first", msgid=b"f")
    f1 = b_.recv()
    f2 = b_.recv()
    assert f1 == peerlist_note("add", "agent.a"), fmt(f1)
    assert f2 == [b"agent.a", VIP, b"agent.a", b"f", b"RPC", b"first"], fmt(f2)


def test_add_sent_once(ep, agents):
    b_ = agents("agent.b", ep)
    b_.hello()
    a = agents("agent.a", ep)
    for i in range(3):
        a.hello(msgid=b"h%d" % i)
    assert b_.recv() == peerlist_note("add", "agent.a")
    b_.expect_silence(0.4, "only one add per registration")


def test_agentstop_self_drops(ep, agents):
    a, b_ = pair(agents, ep)
    b_.send(b"", b"agentstop", b"agent.b")
    f = a.recv(what="peerlist drop")
    assert f == [b"", VIP, b"", b"", b"peerlist", b"drop", b"agent.b"], fmt(f)
    b_.expect_silence(0.4, "agentstop gets no reply")
    assert b"agent.b" not in a.peerlist()


def test_agentstop_then_message_reregisters(ep, agents):
    a, b_ = pair(agents, ep)
    b_.send(b"", b"agentstop", b"agent.b")
    assert a.recv() == peerlist_note("drop", "agent.b")
    b_.send(b"", b"ping", b"ping", b"alive", msgid=b"again")
    assert b_.recv()[4:6] == [b"ping", b"pong"]
    assert a.recv(what="re-registration add") == peerlist_note("add", "agent.b")


def test_agentstop_unknown_identity_ignored(ep, agents):
    a, b_ = pair(agents, ep)
    a.send(b"", b"agentstop", b"nobody")
    a.send(b"", b"agentstop")
    a.expect_silence(0.4)
    b_.expect_silence(0.1)


def test_agentstop_by_third_party_ignored(ep, agents):
    """By design (VIP.md §16.2 C): agentstop X honoured only from X itself or from `control`."""
    a, b_ = pair(agents, ep)
    m = agents("mallory", ep)
    m.hello()
    for x in (a, b_):
        assert x.recv() == peerlist_note("add", "mallory")
    m.send(b"", b"agentstop", b"agent.b")
    a.expect_silence(0.5, "agentstop of someone else from a non-control peer must be ignored")
    assert b"agent.b" in a.peerlist()


def test_agentstop_by_control_honoured(ep, agents):
    a, b_ = pair(agents, ep)
    c = agents("control", ep)
    c.hello()
    for x in (a, b_):
        assert x.recv() == peerlist_note("add", "control")
    c.send(b"", b"agentstop", b"agent.b")
    assert a.recv() == peerlist_note("drop", "agent.b")
    f = c.recv()
    assert f == peerlist_note("drop", "agent.b"), fmt(f)


def test_drop_on_disconnect(ep, agents):
    """By design (VIP.md §8.3 Compat): a closed transport gives the same `drop` as agentstop."""
    a, b_ = pair(agents, ep)
    b_.close()
    f = a.recv(5, "peerlist drop after close")
    assert f == peerlist_note("drop", "agent.b"), fmt(f)
    assert b"agent.b" not in a.peerlist()
    a.send(b"agent.b", b"RPC", b"x", msgid=b"gone")
    f = a.recv()
    assert f == [b"", VIP, b"agent.a", b"gone", b"error", b"113", b"No route to host", b"agent.b", b"RPC"], fmt(f)


def test_drop_on_disconnect_unregistered_is_silent(ep, agents):
    """A connection that never sent a valid message was never added: no drop on close."""
    a = agents("agent.a", ep)
    a.hello()
    s = agents("silent", ep)
    time.sleep(0.3)
    s.close()
    a.expect_silence(1.0, "no drop for a peer that was never registered")


def test_reconnect_same_identity_after_close(ep, agents):
    a, b_ = pair(agents, ep)
    b_.close()
    assert a.recv() == peerlist_note("drop", "agent.b")
    b2 = agents("agent.b", ep)
    b2.hello()
    assert a.recv() == peerlist_note("add", "agent.b")
    roundtrip(a, b2)


# ----------------------------------------------------------------- duplicates (§2.4.3, §8.4)

def test_duplicate_identity_first_wins(ep, agents):
    a, b_ = pair(agents, ep)
    dup = agents("agent.b", ep)
    dup.send(b"", b"hello", b"hello", msgid=b"connect.hello.0")
    dup.expect_silence(1.5, "the duplicate must get no welcome")
    a.expect_silence(0.1, "no peerlist traffic for the duplicate")
    b_.send(b"", b"ping", b"ping", b"alive", msgid=b"still")
    assert b_.recv() == [b"", VIP, b"agent.b", b"still", b"ping", b"pong", b"alive"]
    roundtrip(a, b_)
    dup.expect_silence(0.2, "traffic for agent.b goes to the first connection")


def test_duplicate_identity_close_does_not_drop_first(ep, agents):
    """§8.3 Compat: must not drop an identity whose (first) connection is still alive."""
    a, b_ = pair(agents, ep)
    dup = agents("agent.b", ep)
    dup.send(b"", b"hello", b"hello", msgid=b"d")
    time.sleep(0.5)
    dup.close()
    a.expect_silence(1.0, "closing the duplicate must not drop agent.b")
    roundtrip(a, b_)
    assert b"agent.b" in a.peerlist()



def test_duplicate_takes_over_freed_identity_with_its_next_message(ep, agents):
    """§2.4.3: once the first connection is gone, the duplicate's next message attaches it and
    is delivered (libzmq attaches the pipe and delivers what it holds): its hello is welcomed."""
    a, b_ = pair(agents, ep)
    dup = agents("agent.b", ep)
    dup.send(b"", b"hello", b"hello", msgid=b"early")
    dup.expect_silence(1.0, "no welcome while the first agent.b lives")
    b_.close()
    assert a.recv(5, "peerlist drop") == peerlist_note("drop", "agent.b")
    dup.hello(msgid=b"later")
    assert a.recv(5, "peerlist add for the new holder") == peerlist_note("add", "agent.b")
    roundtrip(a, dup)


# ----------------------------------------------------------------- ordering

def test_ordering_10000(ep, agents):
    a, b_ = pair(agents, ep)
    n, window = 10000, 500
    sent = got = 0
    deadline = time.monotonic() + 60
    while got < n:
        while sent < n and sent - got < window:
            a.send(b"agent.b", b"RPC", b"payload-%d" % sent, msgid=b"%d" % sent)
            sent += 1
        f = b_.recv(5, f"message #{got}")
        assert f[3] == b"%d" % got and f[5] == b"payload-%d" % got, f"out of order at {got}: {fmt(f)}"
        assert f[:3] == [b"agent.a", VIP, b"agent.a"], fmt(f)
        got += 1
        assert time.monotonic() < deadline, "ordering test took > 60 s"
    a.expect_silence(0.3, "no errors for a windowed stream")
    b_.expect_silence(0.1, "exactly n messages")


def test_interleaved_senders_keep_per_sender_order(ep, agents):
    b_ = agents("sink", ep)
    b_.hello()
    senders = [agents("s%d" % i, ep) for i in range(4)]
    for s in senders:
        s.hello()
    while b_.poll_recv(0.3) is not None:  # peerlist adds
        pass
    n = 500
    for k in range(n):
        for s in senders:
            s.send(b"sink", b"RPC", b"%d" % k, msgid=b"%d" % k)
    seen = {s.identity: 0 for s in senders}
    for _ in range(n * len(senders)):
        f = b_.recv()
        assert f[5] == b"%d" % seen[f[0]], f"order broken for {f[0]!r}: {fmt(f)}"
        seen[f[0]] += 1
    assert all(v == n for v in seen.values()), seen


# ----------------------------------------------------------------- heartbeats (ZMTP §4.6)

def test_heartbeat_client_stays_connected(ep, ctx, agents):
    a = agents("hb.agent", ep, sockopts={zmq.HEARTBEAT_IVL: 100, zmq.HEARTBEAT_TIMEOUT: 300})
    mon = a.sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED)
    try:
        a.hello()
        b_ = agents("agent.b", ep)
        b_.hello()
        assert a.recv() == peerlist_note("add", "agent.b")
        time.sleep(2.0)
        events = []
        while mon.poll(0):
            from zmq.utils.monitor import recv_monitor_message

            events.append(recv_monitor_message(mon)["event"])
        disc = [e for e in events if e in (zmq.EVENT_DISCONNECTED, zmq.EVENT_CLOSED)]
        assert not disc, f"heartbeating client was disconnected (router does not answer PING?): {events}"
        b_.expect_silence(0.1, "no peerlist drop for a heartbeating client")
        roundtrip(a, b_)
    finally:
        a.sock.disable_monitor()
        mon.close(linger=0)


def test_router_with_heartbeat_ttl_client(ep, agents):
    """A client announcing a TTL in its PINGs (HEARTBEAT_TTL) keeps working while it heartbeats."""
    a = agents("ttl.agent", ep, sockopts={zmq.HEARTBEAT_IVL: 200, zmq.HEARTBEAT_TTL: 1000,
                                           zmq.HEARTBEAT_TIMEOUT: 1000})
    a.hello()
    time.sleep(1.5)
    a.send(b"", b"ping", b"ping", b"alive", msgid=b"t")
    assert a.recv() == [b"", VIP, b"ttl.agent", b"t", b"ping", b"pong", b"alive"]


# ----------------------------------------------------------------- ROUTER peer (§3.6)

def test_router_socket_peer_via(ep, agents):
    """A libzmq ROUTER peer (VIP `via`) reaches the router by its routing id, which it learns from
    the ZMTP Identity property of the router's READY; it then works like a DEALER."""
    d = agents("agent.d", ep)
    rid = d.hello()
    r = agents("via.peer", ep, sock_type=zmq.ROUTER, sockopts={zmq.ROUTER_MANDATORY: 1})
    deadline = time.monotonic() + 5
    while True:
        try:
            r.sock.send_multipart([rid, b"", VIP, b"", b"v1", b"hello", b"hello"])
            break
        except zmq.error.ZMQError as e:
            assert e.errno == zmq.EHOSTUNREACH, e
            assert time.monotonic() < deadline, (
                "ROUTER peer never saw the router's routing id (router READY must carry Identity = router id)")
            time.sleep(0.05)
    f = r.recv(what="welcome via ROUTER socket")
    assert f == [rid, b"", VIP, b"via.peer", b"v1", b"hello", b"welcome", b"1.0", rid, b"via.peer"], fmt(f)
    assert d.recv() == peerlist_note("add", "via.peer")
    r.sock.send_multipart([rid, b"agent.d", VIP, b"", b"v2", b"RPC", b"x"])
    assert d.recv() == [b"via.peer", VIP, b"via.peer", b"v2", b"RPC", b"x"]
    d.send(b"via.peer", b"RPC", b"y", msgid=b"v3")
    assert r.recv() == [rid, b"agent.d", VIP, b"agent.d", b"v3", b"RPC", b"y"]
