"""One gateway on one broker, with VOLTTRON RabbitMQ agents emulated on the wire (rmq_agent.py):
the topology as VOLTTRON declares it, bindings of local peers, RPC both ways, pubsub both ways,
error 113, self-echo (memo multiplatform.md §9.2 items 1-5)."""

from __future__ import annotations

import json
import time

from conftest import VIP, rpc_request, send_platform


def bindings(broker, queue):
    return sorted(r[1] for r in broker.rows("list_bindings", "-p", "volttron", "destination_name", "routing_key")
                  if r[0] == queue and r[1] != queue)


def test_topology_is_volttrons_and_peers_are_bound_while_connected(broker, gateways):
    gw = gateways("gwt", broker.url())
    gw.wait_bridge("up")
    ex = {r[0]: r for r in broker.rows("list_exchanges", "-p", "volttron", "name", "type", "durable", "arguments")}
    assert ex["volttron"][1:3] == ["topic", "true"], ex["volttron"]
    assert "alternate-exchange" in ex["volttron"][3] and "undeliverable" in ex["volttron"][3], ex["volttron"]
    assert ex["undeliverable"][1:3] == ["fanout", "true"], ex["undeliverable"]
    queues = {r[0]: r for r in broker.rows("list_queues", "-p", "volttron", "name", "exclusive", "auto_delete")}
    assert queues["gwt.viprouter"][1:] == ["true", "true"], queues
    a = gw.agent("alice")
    gw.wait_bridge("up", bound=2)  # _stats and alice
    assert bindings(broker, "gwt.viprouter") == ["gwt._stats", "gwt.alice"]
    a.send(b"", b"agentstop", b"alice")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "gwt.alice" in bindings(broker, "gwt.viprouter"):
        time.sleep(0.1)
    assert bindings(broker, "gwt.viprouter") == ["gwt._stats"]
    # A VOLTTRON redeclare with VOLTTRON's arguments is accepted (the topology matches).
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port, "volttron"))
    conn.channel().exchange_declare(
        "volttron", "topic", durable=True, arguments={"alternate-exchange": "undeliverable"}
    )
    conn.close()


def test_rpc_from_a_local_agent_to_a_rabbitmq_agent_and_back(broker, gateways, rmq_agents):
    gw = gateways("gwr", broker.url())
    caller = gw.agent("caller")
    gw.wait_bridge("up", bound=2)
    callee = rmq_agents("v1", "callee")
    req = rpc_request("echo", [1, "two"], "r1")
    send_platform(caller, "v1", "callee", [req], msgid=b"17.5")
    d = callee.expect(5)
    assert d.routing_key == "v1.callee" and d.kind == "RPC" and d.app_id == "gwr.caller", d
    assert d.message_id == "17.5" and d.content_type == "application/json", d
    assert d.headers == {"recipient": "v1.callee", "proto": "VIP", "user": "gwr.caller"}, d.headers
    assert d.json() == [req]
    callee.answer(d, {"echo": [1, "two"]})
    f = caller.recv_matching(lambda f: f[4] == b"external_rpc", 5)[0]
    assert f[:7] == [b"", VIP, b"v1.callee", b"17.5", b"external_rpc", b"send_peer", f[6]], f
    body = json.loads(f[6])
    assert (body["to_platform"], body["to_peer"], body["from_platform"], body["from_peer"]) == (
        "gwr", "caller", "v1", "callee"), body
    assert json.loads(body["args"][0]) == {"jsonrpc": "2.0", "id": "r1", "result": {"echo": [1, "two"]}}
    st = gw.stats()
    assert (st["amqp_rpc_out"], st["amqp_rpc_in"]) == (1, 1), st


def test_rpc_from_a_rabbitmq_agent_to_a_local_agent_and_back(broker, gateways, rmq_agents):
    gw = gateways("gwi", broker.url())
    callee = gw.agent("callee")
    gw.wait_bridge("up", bound=2)
    caller = rmq_agents("v1", "caller")
    req = rpc_request("add", [2, 3], "q7")
    caller.send_vip("callee", "RPC", [req], "m.9", platform="gwi")
    f = callee.recv_matching(lambda f: f[4] == b"external_rpc", 5)[0]
    assert f[:6] == [b"", VIP, b"v1.caller", b"m.9", b"external_rpc", b"send_peer"], f
    body = json.loads(f[6])
    assert body == {"to_platform": "gwi", "to_peer": "callee", "from_platform": "v1", "from_peer": "caller",
                    "args": [req]}, body
    # The agent library answers with send_platform back to the caller's platform.
    resp = json.dumps({"jsonrpc": "2.0", "id": "q7", "result": 5})
    send_platform(callee, "v1", "caller", [resp], msgid=b"m.9")
    d = caller.expect(5)
    assert (d.routing_key, d.kind, d.app_id, d.message_id) == ("v1.caller", "RPC", "gwi.callee", "m.9"), d
    assert d.json() == [resp]


def test_rpc_to_a_peer_nobody_bound_is_error_113_at_once(broker, gateways):
    gw = gateways("gwu", broker.url())
    caller = gw.agent("caller")
    gw.wait_bridge("up", bound=2)
    t0 = time.monotonic()
    send_platform(caller, "nowhere", "nobody", [rpc_request("x", [])], msgid=b"1.5")
    f = caller.recv_matching(lambda f: f[4] == b"error", 5)[0]
    assert f == [b"", VIP, b"caller", b'"1.5"', b"error", b"113", b"No route to host", b"nowhere.nobody",
                 b"external_rpc"], f
    assert time.monotonic() - t0 < 2
    assert gw.stats()["amqp_rpc_returned"] == 1


def test_exported_publishes_reach_rabbitmq_subscribers_as_volttron_publishes_them(broker, gateways, rmq_agents):
    gw = gateways("gwp", broker.url(), export="devices/ alerts/")
    pub = gw.agent("pub")
    gw.wait_bridge("up", bound=2)
    sub = rmq_agents("v1", "listener")
    q = sub.subscribe("devices")
    body = {"bus": "", "headers": {"h": 1}, "message": {"v": 42}}
    pub.send(b"", b"pubsub", b"publish", b"devices/hvac1/temp", json.dumps(body).encode(), msgid=b"p1")
    count = pub.recv_matching(lambda f: f[4] == b"pubsub", 5)[0]
    assert count[5:] == [b"request_response", b"\x00\x00\x00\x00"], count  # no local subscriber
    d = sub.expect(5, q)
    assert d.routing_key == "__pubsub__.gwp.devices.hvac1.temp.#" and d.kind == "pubsub", d
    assert d.app_id == "gwp.pub" and d.message_id == "p1", d
    assert d.headers == {"recipient": "", "proto": "VIP", "user": "pub"}, d.headers
    assert d.json() == {"sender": "pub", "bus": "", "headers": {"h": 1}, "message": {"v": 42}}
    # A topic outside rabbitmq-export never leaves the gateway.
    pub.send(b"", b"pubsub", b"publish", b"devicesX/y", json.dumps(body).encode(), msgid=b"p2")
    pub.recv_matching(lambda f: f[4] == b"pubsub", 5)
    all_q = sub.subscribe("")
    pub.send(b"", b"pubsub", b"publish", b"analysis/z", json.dumps(body).encode(), msgid=b"p3")
    pub.recv_matching(lambda f: f[4] == b"pubsub", 5)
    assert sub.recv(1, all_q) is None
    assert gw.stats()["amqp_export_out"] == 1


def test_remote_publishes_reach_all_platforms_subscribers_without_self_echo(broker, gateways, rmq_agents):
    gw = gateways("gws", broker.url(), export="devices/")
    sub = gw.agent("sub")
    sub.send(b"", b"pubsub", b"subscribe",
             json.dumps({"prefix": "devices", "bus": "", "all_platforms": True}).encode(), msgid=b"s1")
    sub.recv_matching(lambda f: f[4] == b"pubsub", 5)
    gw.wait_bridge("up", bound=3)  # _stats, sub, __pubsub__.*.devices.#
    remote = rmq_agents("v1", "pub")
    remote.publish("devices/y", {"v": 1}, msg_id="r1")
    f = sub.recv_matching(lambda f: f[4] == b"pubsub", 5)[0]
    assert f[:7] == [b"", VIP, b"", b"r1", b"pubsub", b"publish", b"devices/y"], f
    assert json.loads(f[7]) == {"sender": "pub", "bus": "",
                                "headers": {"min_compatible_version": "3.0", "max_compatible_version": ""},
                                "message": {"v": 1}}
    # Our own export comes back through our own binding: delivered locally once, not twice.
    local = gw.agent("localpub")
    local.send(b"", b"pubsub", b"publish", b"devices/z",
               json.dumps({"bus": "", "headers": {}, "message": 2}).encode(), msgid=b"l1")
    f = sub.recv_matching(lambda f: f[4] == b"pubsub", 5)[0]
    assert f[6] == b"devices/z"
    sub.expect_silence(1.0, "self-echo")
    st = gw.stats()
    assert st["amqp_self_echo"] == 1 and st["amqp_publish_in"] == 1, st
