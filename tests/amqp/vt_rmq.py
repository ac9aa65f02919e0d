"""Emulates VOLTTRON 9.0.4 RabbitMQ-bus agents on the wire with pika (VOLTTRON's pin, 1.2.0),
for tests/amqp_broker.rs. The properties and routing keys are those of
volttron/platform/vip/rmq_connection.py (send_vip_object) and
vip/agent/subsystems/rmq_pubsub.py (publish, _form_routing_key), measured in memo §5.3-5.4.

Usage (one line of JSON per received message on stdout; "READY" once consuming):
  vt_rmq.py redeclare PORT
  vt_rmq.py consume PORT BINDING COUNT TIMEOUT_S
  vt_rmq.py publish PORT ROUTING_KEY TYPE APP_ID MESSAGE_ID USER RECIPIENT BODY
"""

from __future__ import annotations

import json
import sys
import time

import pika


def connect(port: int) -> pika.BlockingConnection:
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=port, credentials=pika.PlainCredentials("guest", "guest"), heartbeat=20
    )
    return pika.BlockingConnection(params)


def redeclare(port: int) -> None:
    """VOLTTRON's declare (rmq_mgmt.py init_rabbitmq_setup) succeeds; one without the
    alternate-exchange argument is refused with 406."""
    conn = connect(port)
    ch = conn.channel()
    ch.exchange_declare("volttron", "topic", durable=True, arguments={"alternate-exchange": "undeliverable"})
    ch.exchange_declare("undeliverable", "fanout", durable=True)
    print("ok volttron-args", flush=True)
    try:
        ch.exchange_declare("volttron", "topic", durable=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        print(f"refused {e.reply_code}", flush=True)
    conn.close()


def consume(port: int, binding: str, count: int, timeout: float) -> None:
    conn = connect(port)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(q, "volttron", routing_key=binding)
    print("READY", flush=True)
    got = 0
    deadline = time.time() + timeout
    while got < count and time.time() < deadline:
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            conn.process_data_events(0.05)
            continue
        got += 1
        print(
            json.dumps(
                {
                    "routing_key": method.routing_key,
                    "app_id": props.app_id,
                    "type": props.type,
                    "message_id": props.message_id,
                    "content_type": props.content_type,
                    "headers": props.headers,
                    "body": body.decode("utf-8"),
                }
            ),
            flush=True,
        )
    conn.close()


def publish(port: int, rk: str, kind: str, app_id: str, msg_id: str, user: str, recipient: str, body: str) -> None:
    conn = connect(port)
    ch = conn.channel()
    props = pika.BasicProperties(
        app_id=app_id,
        headers=dict(recipient=recipient, proto="VIP", user=user),
        message_id=msg_id,
        type=kind,
        content_type="application/json",
    )
    ch.basic_publish("volttron", rk, body.encode("utf-8"), properties=props)
    conn.close()
    print("published", flush=True)


def main(argv: list[str]) -> None:
    cmd, port = argv[1], int(argv[2])
    if cmd == "redeclare":
        redeclare(port)
    elif cmd == "consume":
        consume(port, argv[3], int(argv[4]), float(argv[5]))
    elif cmd == "publish":
        publish(port, *argv[3:10])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
