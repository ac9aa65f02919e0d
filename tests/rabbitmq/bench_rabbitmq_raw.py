"""The raw columns of ``make bench-rabbitmq``: the same RPC round trip and publish throughput
without VOLTTRON's agent library, to show what the routers and the broker cost.

* ``viprouter``: raw VIP clients on libzmq (tests/interop/vipclient.py) on gateways ``ga`` and
  ``gb``: ``external_rpc send_platform`` answered by the callee as the agent library answers it;
  publishes on an exported topic to an ``all_platforms`` subscriber on the other gateway, at most
  ``window`` sent and not yet delivered to it. The window is end to end because the router
  answers a publish (its count) once it is routed locally and queued for the broker, not when
  the broker confirms it: a publisher paced by those answers alone outruns the broker's confirms
  under load, fills the bridge's confirm window (``amqp-unconfirmed``) and the excess is dropped
  and counted (``amqp_dropped_unconfirmed``, reported as ``dropped``; about half of 20 000 at a
  window of 200 answers in this benchmark's first version).
* ``volttron``: pika 1.2.0 clients speaking VOLTTRON 9.0.4's RabbitMQ wire format (rmq_agent.py:
  the properties of ``rmq_connection.send_vip_object`` and ``rmq_pubsub.publish``), each with its
  own broker connection, consuming as VOLTTRON's agents consume (basic.consume, one ack per
  delivery); publishes are sent without a window, as VOLTTRON's are (no confirms).

One thread each; RPC one call at a time. Figures are in the units of bench_rabbitmq.py.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import zmq
from broker import Broker
from conftest import Gateway, rpc_request, send_platform
from rmq_agent import RmqAgent


def wait_bound(broker: Broker, key: str, timeout: float = 20.0) -> None:
    """Until the broker has a binding with routing key `key` on exchange `volttron`."""
    deadline = time.monotonic() + timeout
    while not any(r[-1] == key for r in broker.rows("list_bindings", "-p", "volttron", "source_name", "routing_key")
                  if r[0] == "volttron"):
        assert time.monotonic() < deadline, f"{key} not bound within {timeout} s"
        time.sleep(0.1)


def raw_rpc_viprouter(broker: Broker, ga: Gateway, gb: Gateway, n: int) -> list[float]:
    caller, callee = ga.agent("rawcaller"), gb.agent("rawcallee")
    wait_bound(broker, f"{gb.name}.rawcallee")
    rtt = []
    for i in range(n):
        t0 = time.perf_counter()
        send_platform(caller, gb.name, "rawcallee", [rpc_request("echo", ["x"], str(i))], msgid=str(i).encode())
        f = callee.recv_matching(lambda f: f[4] == b"external_rpc", 10)[0]
        body = json.loads(f[6])
        resp = json.dumps({"jsonrpc": "2.0", "id": str(i), "result": "x"})
        send_platform(callee, body["from_platform"], body["from_peer"], [resp], msgid=f[3])
        caller.recv_matching(lambda f: f[4] == b"external_rpc", 10)
        rtt.append(time.perf_counter() - t0)
    return rtt


def raw_pub_viprouter(broker: Broker, ga: Gateway, gb: Gateway, topic: str, n: int, window: int) -> dict[str, float]:
    pub, sub = ga.agent("rawpub"), gb.agent("rawsub")
    sub.send(b"", b"pubsub", b"subscribe", json.dumps({"prefix": topic, "bus": "", "all_platforms": True}).encode(),
             msgid=b"s")
    sub.recv_matching(lambda f: f[4] == b"pubsub", 10)
    wait_bound(broker, "__pubsub__.*." + topic.replace("/", ".") + ".#")
    body = json.dumps({"bus": "", "headers": {}, "message": {"v": 1.5, "units": "degF"}}).encode()
    poller = zmq.Poller()
    poller.register(pub.sock, zmq.POLLIN)
    poller.register(sub.sock, zmq.POLLIN)
    sent = got = count = 0
    t0 = last = time.perf_counter()
    quiet = time.monotonic()
    while got < n and time.monotonic() - quiet < 2.0:
        while sent < n and sent - got < window:
            pub.send(b"", b"pubsub", b"publish", topic.encode() + b"/data", body, msgid=b"p")
            sent += 1
        for sock, _ in poller.poll(50):
            frames = sock.recv_multipart()
            if sock is pub.sock and frames[4:6] == [b"pubsub", b"request_response"]:
                count += int.from_bytes(frames[6][:4], "little") if len(frames) > 6 else 0
            elif sock is sub.sock and frames[4:6] == [b"pubsub", b"publish"]:
                got += 1
                last = time.perf_counter()
                quiet = time.monotonic()
    secs = last - t0
    dropped = {k: v for k, v in ga.stats().items() if k.startswith("amqp_dropped") and v}
    return {"sent": n, "delivered": got, "publisher_count": count, "msgs_per_s": got / secs if got and secs > 0 else 0.0,
            "dropped": dropped}


def _consumer(port: int, instance: str, identity: str) -> tuple[RmqAgent, list[Any]]:
    a = RmqAgent(port, instance, identity)
    box: list[Any] = []

    def on(ch: Any, method: Any, props: Any, body: bytes) -> None:
        box.append((props, body, time.perf_counter()))
        ch.basic_ack(method.delivery_tag)

    a.ch.basic_consume(a.me, on)
    return a, box


def _wait(a: RmqAgent, box: list[Any], until: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"{a.me}: nothing within {timeout} s"
        a.conn.process_data_events(time_limit=1)


def raw_rpc_volttron(port: int, n: int) -> list[float]:
    caller, cbox = _consumer(port, "rv1", "rawcaller")
    callee, ebox = _consumer(port, "rv2", "rawcallee")
    rtt = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            caller.send_vip("rawcallee", "RPC", [rpc_request("echo", ["x"], str(i))], str(i), platform="rv2")
            _wait(callee, ebox, lambda: bool(ebox))
            props, _, _ = ebox.pop()
            platform, peer = props.app_id.split(".", 1)
            resp = json.dumps({"jsonrpc": "2.0", "id": str(i), "result": "x"})
            callee.send_vip(peer, "RPC", [resp], props.message_id, platform=platform)
            _wait(caller, cbox, lambda: bool(cbox))
            cbox.pop()
            rtt.append(time.perf_counter() - t0)
    finally:
        caller.close()
        callee.close()
    return rtt


def raw_pub_volttron(port: int, topic: str, n: int) -> dict[str, float]:
    sub = RmqAgent(port, "rv2", "rawsub")
    q = sub.subscribe(topic)
    got: list[float] = []

    def on(ch: Any, method: Any, props: Any, body: bytes) -> None:
        got.append(time.perf_counter())
        ch.basic_ack(method.delivery_tag)

    sub.ch.basic_consume(q, on)
    pub = RmqAgent(port, "rv1", "rawpub")

    published = threading.Event()

    def consume() -> None:
        """Until all arrived, or none for 2 s after the last was published."""
        quiet = time.monotonic()
        while len(got) < n and (not published.is_set() or time.monotonic() - quiet < 2.0):
            before = len(got)
            sub.conn.process_data_events(time_limit=0.1)
            if len(got) > before or not published.is_set():
                quiet = time.monotonic()

    th = threading.Thread(target=consume)
    th.start()
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            pub.publish(topic + "/data", {"v": 1.5, "units": "degF"})
    finally:
        published.set()
        th.join(120)
        pub.close()
        sub.close()
    secs = (got[-1] - t0) if got else 0.0
    return {"sent": n, "delivered": len(got), "publisher_count": 0, "msgs_per_s": len(got) / secs if secs > 0 else 0.0}


__all__ = ["raw_rpc_viprouter", "raw_pub_viprouter", "raw_rpc_volttron", "raw_pub_volttron"]
