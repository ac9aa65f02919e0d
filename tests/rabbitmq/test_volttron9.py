"""A viprouter gateway and VOLTTRON 9.0.4's own RabbitMQ bus on one private broker (issue #15
deliverable 3): VOLTTRON's RMQRouter and unmodified `Agent(message_bus='rmq')` agents
(vt9_rmq.py, run with the VOLTTRON 9.0.4 venv) exchange external RPC both ways and pubsub both
ways with raw VIP agents (libzmq) on the gateway. `ssl: false` here; TLS in test_volttron9_tls.py.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import VIP, rpc_request, send_platform
from vt9_harness import Vt9Instance, add_agent_users, management_broker, vt9_missing

pytestmark = pytest.mark.skipif(vt9_missing() is not None, reason=str(vt9_missing()))


@pytest.fixture(scope="module")
def vt9():
    """Broker (management plugin) + VOLTTRON instance `v9` with `ssl: false`."""
    b = management_broker("v")
    inst = None
    try:
        add_agent_users(b, "v9")
        inst = Vt9Instance(b, "v9").start()
        yield inst
    finally:
        if inst:
            inst.close()
        b.close()


def answer_external_rpc(agent, result) -> dict:
    """The gateway agent answers an incoming external RPC as the agent library does."""
    f = agent.recv_matching(lambda f: f[4] == b"external_rpc" and f[5] == b"send_peer", 15)[0]
    body = json.loads(f[6])
    req = json.loads(body["args"][0])
    resp = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result(req)})
    send_platform(agent, body["from_platform"], body["from_peer"], [resp], msgid=f[3])
    return {"frames": f, "body": body, "request": req}


def test_volttron_rmq_agent_calls_a_gateway_agent(vt9, gateways):
    gw = gateways("gw9a", vt9.broker.url())
    callee = gw.agent("callee")
    gw.wait_bridge("up", bound=2)
    vt9.send(cmd="call", platform="gw9a", peer="callee", method="add", args=[2, 3], timeout=15)
    seen = answer_external_rpc(callee, lambda req: sum(req["params"]))
    assert seen["frames"][2] == b"v9.caller", seen
    assert (seen["body"]["from_platform"], seen["body"]["from_peer"], seen["body"]["to_peer"]) == (
        "v9", "caller", "callee"), seen
    assert seen["request"]["method"] == "add" and seen["request"]["params"] == [2, 3], seen
    assert vt9.answer(20) == {"result": 5}
    st = gw.stats()
    assert (st["amqp_rpc_in"], st["amqp_rpc_out"]) == (1, 1), st


def test_gateway_agent_calls_a_volttron_rmq_agent(vt9, gateways):
    gw = gateways("gw9b", vt9.broker.url())
    caller = gw.agent("caller")
    gw.wait_bridge("up", bound=2)
    req = rpc_request("echo", [{"n": 1, "s": "zwei"}], "r9")
    send_platform(caller, "v9", "callee", [req], msgid=b"9.1")
    f = caller.recv_matching(lambda f: f[4] == b"external_rpc", 20)[0]
    assert f[:6] == [b"", VIP, b"v9.callee", b"9.1", b"external_rpc", b"send_peer"], f
    body = json.loads(f[6])
    assert (body["to_platform"], body["to_peer"], body["from_platform"], body["from_peer"]) == (
        "gw9b", "caller", "v9", "callee"), body
    assert json.loads(body["args"][0]) == {"jsonrpc": "2.0", "id": "r9", "result": {"n": 1, "s": "zwei"}}
    # VOLTTRON's dispatcher saw the call coming from instance gw9b, peer caller.
    assert {"peer": "caller", "platform": "gw9b"} in vt9.cmd(cmd="callers")["items"]


def test_volttron_rmq_publish_reaches_an_all_platforms_subscriber_on_the_gateway(vt9, gateways):
    gw = gateways("gw9c", vt9.broker.url(), export="devices/")
    sub = gw.agent("sub")
    sub.send(b"", b"pubsub", b"subscribe",
             json.dumps({"prefix": "devices", "bus": "", "all_platforms": True}).encode(), msgid=b"s1")
    sub.recv_matching(lambda f: f[4] == b"pubsub", 5)
    gw.wait_bridge("up", bound=3)
    assert vt9.cmd(cmd="publish", topic="devices/v9/temp", message={"t": 21.5}) == {"count": 1}
    f = sub.recv_matching(lambda f: f[4] == b"pubsub" and f[5] == b"publish", 15)[0]
    assert f[6] == b"devices/v9/temp", f
    body = json.loads(f[7])
    assert body["sender"] == "caller" and body["message"] == {"t": 21.5}, body
    # rmq_pubsub.py stamps the version headers of its publish (5.0 in 9.0.4; memo §5.4 saw 3.0).
    assert body["headers"]["min_compatible_version"] == "5.0", body


def test_gateway_publish_reaches_a_volttron_rmq_all_platforms_subscriber(vt9, gateways):
    gw = gateways("gw9d", vt9.broker.url(), export="devices/")
    pub = gw.agent("pub")
    gw.wait_bridge("up", bound=2)
    body = {"bus": "", "headers": {"h": 1}, "message": {"v": 42}}
    pub.send(b"", b"pubsub", b"publish", b"devices/gw9d/hvac", json.dumps(body).encode(), msgid=b"p1")
    pub.recv_matching(lambda f: f[4] == b"pubsub", 5)
    deadline = time.monotonic() + 15
    items: list = []
    while time.monotonic() < deadline:
        items = [i for i in vt9.cmd(cmd="received")["items"] if i["topic"] == "devices/gw9d/hvac"]
        if items:
            break
        time.sleep(0.2)
    assert items == [{"sender": "pub", "topic": "devices/gw9d/hvac", "message": {"v": 42}}], items
    assert gw.stats()["amqp_export_out"] == 1
