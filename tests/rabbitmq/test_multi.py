"""Two viprouter gateways through one broker, and through two federated broker nodes (memo
multiplatform.md §5.5, §9.2 item 8): external RPC both ways (`external_platform='X'`), pubsub
both ways with `all_platforms`, and a ZMTP link to a platform winning over the broker."""

from __future__ import annotations

import json

from broker import Broker, federate, wait_federated
from conftest import VIP, rpc_request, send_platform


def subscribe_all(agent, prefix: str) -> None:
    agent.send(b"", b"pubsub", b"subscribe",
               json.dumps({"prefix": prefix, "bus": "", "all_platforms": True}).encode(), msgid=b"sub")
    agent.recv_matching(lambda f: f[4] == b"pubsub", 5)


def rpc_both_ways(a, b, a_name: str, b_name: str, timeout: float = 5.0) -> None:
    """a (on platform a_name) calls b (on b_name) and b answers, as the agent library does."""
    req = rpc_request("echo", ["hi"], "c1")
    send_platform(a, b_name, b.identity.decode(), [req], msgid=b"11.1")
    f = b.recv_matching(lambda f: f[4] == b"external_rpc", timeout)[0]
    assert f[:6] == [b"", VIP, f"{a_name}.{a.identity.decode()}".encode(), b"11.1", b"external_rpc",
                     b"send_peer"], f
    body = json.loads(f[6])
    assert (body["from_platform"], body["from_peer"], body["args"]) == (a_name, a.identity.decode(), [req])
    resp = json.dumps({"jsonrpc": "2.0", "id": "c1", "result": "hi"})
    send_platform(b, a_name, a.identity.decode(), [resp], msgid=b"11.1")
    f = a.recv_matching(lambda f: f[4] == b"external_rpc", timeout)[0]
    body = json.loads(f[6])
    assert (body["from_platform"], body["from_peer"], body["to_peer"]) == (b_name, b.identity.decode(),
                                                                           a.identity.decode()), body
    assert json.loads(body["args"][0])["result"] == "hi"


def publish_reaches(pub, sub, topic: bytes, timeout: float = 5.0) -> None:
    pub.send(b"", b"pubsub", b"publish", topic, json.dumps({"bus": "", "headers": {}, "message": 7}).encode(),
             msgid=b"pm")
    f = sub.recv_matching(lambda f: f[4] == b"pubsub" and f[5] == b"publish" and f[6] == topic, timeout)[0]
    assert json.loads(f[7])["sender"] == pub.identity.decode(), f


def test_two_gateways_through_one_broker(broker, gateways):
    ga = gateways("gwa", broker.url(), export="devices/")
    gb = gateways("gwb", broker.url(), export="devices/")
    a, b = ga.agent("a"), gb.agent("b")
    subscribe_all(b, "devices")
    subscribe_all(a, "devices")
    ga.wait_bridge("up", bound=3)
    gb.wait_bridge("up", bound=3)
    rpc_both_ways(a, b, "gwa", "gwb")
    rpc_both_ways(b, a, "gwb", "gwa")
    publish_reaches(a, b, b"devices/a/1")
    seen = []
    while (f := a.poll_recv(1.0)) is not None:
        seen.append(f[5:7])
    # The local delivery once (the export's echo through a's own binding is dropped), the count 1.
    assert seen.count([b"publish", b"devices/a/1"]) == 1, seen
    assert [b"request_response", b"\x01\x00\x00\x00"] in seen, seen
    publish_reaches(b, a, b"devices/b/1")
    # The publisher's count is its local subscribers only.
    st_a, st_b = ga.stats(), gb.stats()
    assert st_a["amqp_rpc_out"] == 2 and st_b["amqp_rpc_out"] == 2, (st_a, st_b)
    assert st_a["amqp_self_echo"] == 1 and st_b["amqp_publish_in"] == 1, (st_a, st_b)


def test_two_gateways_through_two_federated_broker_nodes(gateways):
    n1 = Broker("f1", plugins=("rabbitmq_federation",)).start()
    n2 = None
    try:
        n2 = Broker("f2", plugins=("rabbitmq_federation",)).start()
        for n in (n1, n2):
            n.setup_vhost()
        ga = gateways("gwf1", n1.url(), export="devices/")
        gb = gateways("gwf2", n2.url(), export="devices/")
        a, b = ga.agent("a"), gb.agent("b")
        subscribe_all(a, "devices")
        subscribe_all(b, "devices")
        ga.wait_bridge("up", bound=3)
        gb.wait_bridge("up", bound=3)
        federate(n1, n2)
        federate(n2, n1)
        wait_federated(n1, n2)
        rpc_both_ways(a, b, "gwf1", "gwf2", timeout=10)
        rpc_both_ways(b, a, "gwf2", "gwf1", timeout=10)
        publish_reaches(a, b, b"devices/a/2", timeout=10)
        publish_reaches(b, a, b"devices/b/2", timeout=10)
    finally:
        n1.close()
        if n2:
            n2.close()
