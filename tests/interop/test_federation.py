"""Modular VOLTTRON's federation handshake against viprouter (issue #14; ../shared/research/
modular-volttron.md §6), with pyzmq (libzmq) playing the modular platform ``m2`` frame for frame as
its ``RoutingService`` sends them (``volttron/messagebus/zmq/routing/routing_service.py`` of
volttron 11.0.0rc3: ``add_external_route`` / ``_build_connection``, ``handle_subsystem``'s
``hello`` branch). Not yet against the real modular platform: that needs its venv in CI
(``make volttron11``, another branch).

* m2's link into viprouter (platform ``ctest``): a CURVE DEALER with m2's platform key, routing id
  ``instance.ctest.<random>``, that says ``['', 'VIP1', '', '', 'routing_table', 'hello',
  'hello', 'm2']``. Modular answers it with ``welcome`` over its own link and treats the other
  platform as connected only once a ``welcome`` came back (its status stays CONNECTING and it
  caches everything for us otherwise).
* viprouter's link to m2 (from ``external_platform_discovery.json``): it must arrive at m2's
  ROUTER as ``instance.m2.*``, say ``hello``, answer m2's ``hello`` with ``['', 'VIP1', U, M,
  'routing_table', 'hello', 'welcome', 'ctest']`` (U and M of the hello: what modular's
  ``frames.pop(0); frames[6] = "welcome"; frames[7] = name`` produces), and send its
  ``external_list``; then external publishes and ``send_peer`` flow on it.
"""
import json
import time

import zmq

from test_curve import CurveRouter, b64, entry, z85  # noqa: F401 (z85 for readers)
from vipclient import VIP, Agent

WAIT = 5.0


def recv_until(sock, pred, timeout=WAIT):
    """Messages from ``sock`` until one satisfies ``pred`` (returned with all seen), or None."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(int(max(0.0, deadline - time.monotonic()) * 1000) or 1):
            f = sock.recv_multipart()
            seen.append(f)
            if pred(f):
                return f, seen
    return None, seen


def test_modular_federation_handshake_and_traffic():
    ctx = zmq.Context()
    m2_pub, m2_sec = zmq.curve_keypair()
    agent_pub, agent_sec = zmq.curve_keypair()
    # m2's router: a CURVE ROUTER with m2's platform key (no ZAP handler: it admits any client).
    m2 = ctx.socket(zmq.ROUTER)
    m2.curve_server = True
    m2.curve_secretkey = m2_sec
    m2.setsockopt(zmq.LINGER, 0)
    port = m2.bind_to_random_port("tcp://127.0.0.1")
    discovery = {"m2": {"instance-name": "m2", "vip-address": f"tcp://127.0.0.1:{port}", "serverkey": b64(m2_pub)}}
    r = CurveRouter(
        [entry(m2_pub, "platform-m2", identity=None), entry(agent_pub, "agent.a")],
        files={"external_platform_discovery.json": json.dumps(discovery)},
    )
    try:
        # m2's link into viprouter, as modular opens it, and its hello.
        link_in = ctx.socket(zmq.DEALER)
        link_in.setsockopt(zmq.LINGER, 0)
        link_in.setsockopt(zmq.ROUTING_ID, b"instance.ctest.0.6142503857211906")
        link_in.curve_serverkey = r.serverkey
        link_in.curve_publickey = m2_pub
        link_in.curve_secretkey = m2_sec
        link_in.connect(r.tcp)
        link_in.send_multipart([b"", VIP, b"", b"", b"routing_table", b"hello", b"hello", b"m2"])

        # viprouter's link to m2: hello, the welcome m2's hello is owed (at once, or as soon as the
        # link is up), and the list — in that order on a link that came up after m2's hello.
        def kind(f):
            return (f[5], f[6], f[7] if f[5] == b"routing_table" else b"")

        want = {(b"routing_table", b"hello", b"hello"), (b"routing_table", b"hello", b"welcome"), (b"pubsub", b"external_list", b"")}
        kinds = set()
        _, seen = recv_until(m2, lambda f: kinds.add(kind(f)) or want <= kinds)
        assert want <= {kind(f) for f in seen}, f"at m2: {seen}\n{r.log()[-3000:]}"
        link_id = seen[0][0]
        assert link_id.startswith(b"instance.m2.0."), link_id
        assert all(f[0] == link_id for f in seen), "one link"
        by_kind = {kind(f): f[1:] for f in seen}
        assert by_kind[(b"routing_table", b"hello", b"hello")] == [b"", VIP, b"", b"", b"routing_table", b"hello", b"hello", b"ctest"]
        assert by_kind[(b"routing_table", b"hello", b"welcome")] == [b"", VIP, b"", b"", b"routing_table", b"hello", b"welcome", b"ctest"]
        assert json.loads(by_kind[(b"pubsub", b"external_list", b"")][6]) == {"ctest": []}
        assert kind(seen[0]) == (b"routing_table", b"hello", b"hello"), "hello first"
        assert len(seen) == 3, f"nothing else: {seen}"

        # m2 announces its subscriptions on its link; viprouter answers request_response 01.
        link_in.send_multipart([b"", VIP, b"", b"", b"pubsub", b"external_list", json.dumps({"m2": ["devices"]}).encode()])
        assert link_in.poll(int(WAIT * 1000)), "no reply to m2's external_list"
        assert link_in.recv_multipart()[4:] == [b"pubsub", b"request_response", b"\x01"]

        # An agent of ctest publishes: the publish goes to m2 on the link, counted once.
        a = Agent(ctx, r.tcp, b"agent.a", sockopts={zmq.CURVE_SERVERKEY: r.serverkey,
                                                     zmq.CURVE_PUBLICKEY: agent_pub, zmq.CURVE_SECRETKEY: agent_sec})
        body = json.dumps({"bus": "", "headers": {}, "message": {"v": 1}}).encode()
        a.send(b"", b"pubsub", b"publish", b"devices/x", body, msgid=b"p1")
        count, _ = a.recv_matching(lambda f: f[4:6] == [b"pubsub", b"request_response"])
        assert count[6] == (1).to_bytes(4, "little")
        pub, _ = recv_until(m2, lambda f: f[5:7] == [b"pubsub", b"external_publish"])
        assert pub is not None and pub[0] == link_id and pub[7] == b"devices/x"
        assert json.loads(pub[8]) == {"sender": "agent.a", "bus": "", "headers": {}, "message": {"v": 1}}

        # ...and calls an agent of m2: send_peer with from_platform/from_peer set by the router.
        req = {"to_platform": "m2", "to_peer": "callee", "from_platform": "", "from_peer": "", "args": ["{}"]}
        a.send(b"", b"external_rpc", b"send_platform", json.dumps(req).encode(), msgid=b"r1")
        rpc, _ = recv_until(m2, lambda f: f[5:7] == [b"external_rpc", b"send_peer"])
        assert rpc is not None and rpc[4] == b"r1"
        assert json.loads(rpc[7])["from_platform"] == "ctest" and json.loads(rpc[7])["from_peer"] == "agent.a"
        a.close()
        link_in.close()
    finally:
        m2.close()
        assert r.stop() == 0
        ctx.destroy(linger=0)
