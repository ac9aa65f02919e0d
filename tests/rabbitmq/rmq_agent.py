"""A VOLTTRON 9.0.4 RabbitMQ-bus agent on the wire, with pika 1.2.0 (VOLTTRON's pin): the queue
and bindings of `vip/agent/core.py` (RMQCore) and `vip/agent/subsystems/rmq_pubsub.py`, the
properties of `vip/rmq_connection.py` `send_vip_object` (memo multiplatform.md §5.2-§5.4).

Used where a real VOLTTRON RMQ agent cannot run here (tests/rabbitmq/README.md says why) and
as the measuring peer of the RabbitMQ benchmarks (both sides of a round trip in one process).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import pika


@dataclass
class Delivery:
    routing_key: str
    kind: str | None
    app_id: str | None
    message_id: str | None
    headers: dict
    body: bytes
    content_type: str | None = None
    received: float = field(default_factory=time.monotonic)

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class RmqAgent:
    """Agent `identity` of VOLTTRON RabbitMQ instance `instance`: its VIP queue `<i>.<id>` bound
    to `<i>.<id>` (exclusive, auto-delete, as RMQCore declares it), plus pubsub queues."""

    def __init__(self, port: int, instance: str, identity: str, vhost: str = "volttron"):
        self.instance, self.identity = instance, identity
        self.me = f"{instance}.{identity}"
        params = pika.ConnectionParameters(
            host="127.0.0.1",
            port=port,
            virtual_host=vhost,
            credentials=pika.PlainCredentials("guest", "guest"),
            heartbeat=20,
        )
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()
        # VOLTTRON's exchanges, declared with its arguments (rmq_mgmt.py init_rabbitmq_setup).
        self.ch.exchange_declare("volttron", "topic", durable=True, arguments={"alternate-exchange": "undeliverable"})
        self.ch.exchange_declare("undeliverable", "fanout", durable=True)
        self.ch.queue_declare(self.me, durable=False, exclusive=True, auto_delete=True)
        self.ch.queue_bind(self.me, "volttron", routing_key=self.me)
        self.queues = [self.me]

    def subscribe(self, prefix: str, all_platforms: bool = True) -> str:
        """rmq_pubsub.py subscribe: queue `<i>.<id>.pubsub.<n>` bound `__pubsub__.*.<prefix>.#`."""
        q = f"{self.me}.pubsub.{len(self.queues)}"
        self.ch.queue_declare(q, durable=False, exclusive=False, auto_delete=True)
        platform = "*" if all_platforms else self.instance
        t = "#" if prefix == "" else prefix + ".#"
        self.ch.queue_bind(q, "volttron", routing_key=f"__pubsub__.{platform}.{t}".replace("/", "."))
        self.queues.append(q)
        return q

    def send_vip(self, peer: str, subsystem: str, args, msg_id: str, platform: str | None = None) -> None:
        """rmq_connection.py send_vip_object: routing key `<platform>.<peer>`, app_id = ours."""
        rk = f"{platform or self.instance}.{peer}"
        props = pika.BasicProperties(
            app_id=self.me,
            headers=dict(recipient=rk, proto="VIP", user=self.me),
            message_id=msg_id,
            type=subsystem,
            content_type="application/json",
        )
        self.ch.basic_publish("volttron", rk, json.dumps(args, ensure_ascii=False), props)

    def publish(self, topic: str, message, headers: dict | None = None, msg_id: str = "m1") -> None:
        """rmq_pubsub.py publish: key `__pubsub__.<i>.<topic>.#`, body {sender, bus, headers, message}."""
        t = "#" if topic == "" else topic + ".#"
        rk = f"__pubsub__.{self.instance}.{t}".replace("/", ".")
        h = dict(headers or {})
        h.setdefault("min_compatible_version", "3.0")
        h.setdefault("max_compatible_version", "")
        body = {"sender": self.identity, "bus": "", "headers": h, "message": message}
        props = pika.BasicProperties(
            app_id=self.me,
            headers=dict(recipient="", proto="VIP", user=self.identity),
            message_id=msg_id,
            type="pubsub",
            content_type="application/json",
        )
        self.ch.basic_publish("volttron", rk, json.dumps(body, ensure_ascii=False), props)

    def recv(self, timeout: float = 5.0, queue: str | None = None) -> Delivery | None:
        """The next message on `queue` (default: the VIP queue), or None."""
        q = queue or self.me
        deadline = time.monotonic() + timeout
        while True:
            method, props, body = self.ch.basic_get(q, auto_ack=True)
            if method is not None:
                return Delivery(
                    method.routing_key,
                    props.type,
                    props.app_id,
                    props.message_id,
                    dict(props.headers or {}),
                    body,
                    props.content_type,
                )
            if time.monotonic() > deadline:
                return None
            self.conn.process_data_events(0.01)

    def expect(self, timeout: float = 5.0, queue: str | None = None) -> Delivery:
        d = self.recv(timeout, queue)
        assert d is not None, f"{self.me}: nothing on {queue or self.me} within {timeout} s"
        return d

    def answer(self, request: Delivery, result) -> None:
        """Answer a JSON-RPC request as VOLTTRON's dispatcher does: body [<response as a string>]
        to the caller's `app_id` (instance and peer split at the first '.')."""
        req = json.loads(request.json()[0])
        platform, peer = request.app_id.split(".", 1)
        resp = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result})
        self.send_vip(peer, "RPC", [resp], request.message_id, platform=platform)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the broker may be gone already
            pass
