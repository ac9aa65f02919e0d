"""VOLTTRON 9.0.4's own RabbitMQ bus, run as VOLTTRON runs it, for the bridge's tests: the
`RMQRouter` (vip/rmq_router.py) alone in one process, and unmodified `Agent(message_bus='rmq')`
instances (RMQCore, rmq_connection.py, the rpc and rmq_pubsub subsystems) in another, both
importing VOLTTRON first so that its gevent patches (ssl, socket, os: platform/main.py:25-39,
utils/__init__.py monkey_patch) are in place before pika is loaded. Nothing is copied from VOLTTRON
and nothing of it is replaced: this file only writes the `VOLTTRON_HOME` VOLTTRON reads and calls
its classes.

Run with the VOLTTRON 9.0.4 venv (`make volttron9`) plus pika 1.2.0 (VOLTTRON's pin,
requirements.py 'rabbitmq' extra) on PYTHONPATH (vt9_harness.py says why not in the venv):

  vt9_rmq.py certs HOME INSTANCE [CLIENT_CERT_NAME ...]
  vt9_rmq.py setup HOME INSTANCE
  vt9_rmq.py router HOME INSTANCE
  vt9_rmq.py agents HOME INSTANCE
  vt9_rmq.py zmqagents HOME INSTANCE VIP_ADDRESS      (the same agents on a ZMQ router)

`HOME` is written by `write_home()` (called by the test, which also owns the broker):
`$VOLTTRON_HOME/config` (instance-name, message-bus = rmq), `rabbitmq_config.yml` as `vcfg
--rabbitmq single` writes it, and `~/.volttron_rmq_home` (HOME = VOLTTRON_HOME), which
utils/rmq_config_params.py:72-79 asserts is a directory: Debian's /usr/lib/rabbitmq, since the
broker is the test's private node, not one that VOLTTRON installed under ~/rabbitmq_server.

The router process prints nothing; it is ready when the broker has its queue `<INSTANCE>.router`.
The agents process starts `callee` (exports `echo`, remembers who called), `caller` and
`listener` (subscribed to `devices` with all_platforms=True), prints {"ready": true}, then answers
one JSON command per stdin line with one JSON line:
  {"cmd": "call", "platform", "peer", "method", "args", "timeout"?} -> {"result"} | {"error"}
  {"cmd": "publish", "topic", "message"} -> {"count"}
  {"cmd": "received"} -> {"items": [{sender, topic, message}]}
  {"cmd": "callers"} -> {"items": [{peer, platform}]}
  {"cmd": "bench_rpc", "platform", "peer", "n"} -> {"rtt_s": [...]} (echo("x"), one at a time)
  {"cmd": "bench_pub", "topic", "n", "window"} -> {"t0", "answered"}
  {"cmd": "counted", "topic"} -> {"n", "last"} (listener: publishes on BENCH_TOPIC... and when
  the last arrived, perf_counter)
  {"cmd": "quit"}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RMQ_HOME = "/usr/lib/rabbitmq"
BENCH_TOPIC = "devices/bench/"  # counted, not kept, by the listener (bench_rabbitmq.py)


ADMIN_PASSWORD = "default_passwd"  # utils/rmq_config_params.py:84, what init_rabbitmq_setup gives the admin


def write_home(home: Path, instance: str, amqp_port: int, mgmt_port: int, ssl: bool = False,
               amqps_port: int = 5671, mgmts_port: int = 15671) -> None:
    """The VOLTTRON_HOME of instance `instance` on the broker at 127.0.0.1 (vhost `volttron`), with
    the admin user `vcfg --rabbitmq single` configures: `<instance>-admin`, `default_passwd`."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config").write_text(f"[volttron]\ninstance-name = {instance}\nmessage-bus = rmq\n")
    # With TLS the host is the name in the broker certificate VOLTTRON makes (a DNS name: certs.py
    # puts `fqdn` in a DNSName SAN, and pika checks it, auth_rmq.py:257-261).
    host = "localhost" if ssl else "127.0.0.1"
    cert_data = (
        "certificate-data:\n  country: US\n  state: WA\n  location: Richland\n  organization: test\n"
        f"  organization-unit: viprouter\n  common-name: {instance}-root-ca\n" if ssl else ""
    )
    (home / "rabbitmq_config.yml").write_text(
        cert_data + f"host: {host}\nssl: '{str(ssl).lower()}'\namqp-port: {amqp_port}\namqp-port-ssl: {amqps_port}\n"
        f"mgmt-port: {mgmt_port}\nmgmt-port-ssl: {mgmts_port}\nvirtual-host: volttron\n"
        f"user: {instance}-admin\npass: {ADMIN_PASSWORD}\nreconnect-delay: 2\nrmq-home: {RMQ_HOME}\n"
    )
    (home / ".volttron_rmq_home").write_text(RMQ_HOME + "\n")


def _enter(home: str) -> None:
    os.environ["VOLTTRON_HOME"] = home
    os.environ["HOME"] = home  # ~/.volttron_rmq_home


def run_setup() -> None:
    """What `vcfg --rabbitmq single` does on the running broker (utils/rmq_setup.py:802-804):
    VOLTTRON's `init_rabbitmq_setup` (rmq_mgmt.py:742-781) over the management API as guest: the
    vhost, the admin user, the exchanges `volttron` (topic, alternate-exchange `undeliverable`)
    and `undeliverable` (fanout)."""
    from volttron.utils import monkey_patch

    monkey_patch()
    from volttron.utils.rmq_mgmt import RabbitMQMgmt

    if RabbitMQMgmt().init_rabbitmq_setup() is not True:
        raise SystemExit("init_rabbitmq_setup failed")


def run_certs(instance: str, clients: list[str]) -> None:
    """With `ssl: true`, what `vcfg --rabbitmq single` does before it restarts the broker with TLS
    (utils/rmq_setup.py:508-520): VOLTTRON's own `_create_certs` makes the instance's root CA (and
    its `-trusted-cas` copy), the broker's server certificate and the admin's client certificate
    under `$VOLTTRON_HOME/certificates`; then one client certificate per name in `clients`
    (certs.py `create_signed_cert_files`, as for an agent), e.g. for a viprouter gateway."""
    from volttron.platform.auth import certs
    from volttron.utils.rmq_config_params import RMQConfig
    from volttron.utils.rmq_setup import _create_certs

    cfg = RMQConfig()
    _, server, admin = certs.Certs.get_admin_cert_names(instance)
    _create_certs(cfg, admin, server)
    for name in clients:
        cfg.crts.create_signed_cert_files(name, cert_type="client")


def run_router(instance: str) -> None:
    """platform/main.py:928-942 `rmq_router`, in the main thread of its own process: the platform
    runs it in a thread beside the ZMQ side; with no ZMQ side here it needs no thread.
    `enable_auth` follows `ssl` in rabbitmq_config.yml (main.py passes opts.allow_auth)."""
    import volttron.platform.main  # noqa: F401 - its gevent patches first; rmq_router imports main
    from volttron.platform.vip.rmq_router import RMQRouter
    from volttron.platform.vip.servicepeer import ServicePeerNotifier
    from volttron.utils.rmq_mgmt import RabbitMQMgmt

    ssl = RabbitMQMgmt().is_ssl
    RMQRouter("", "", instance, [], enable_auth=ssl, service_notifier=ServicePeerNotifier()).run()


def run_agents(instance: str, address: str | None) -> None:
    """The agents of instance `instance` on its RabbitMQ bus, or, with `address` (the benchmark's
    other kind), the same agents on the ZMQ bus of the router at `address` (a viprouter gateway's
    ipc socket; auth off)."""
    import gevent
    import gevent.event
    from gevent.fileobject import FileObject
    from volttron.platform.vip.agent import RPC, Agent

    if address is None:
        from volttron.utils.rmq_mgmt import RabbitMQMgmt

        bus = dict(message_bus="rmq", enable_auth=RabbitMQMgmt().is_ssl)
    else:
        bus = dict(message_bus="zmq", enable_auth=False, address=address)
    callers: list[dict[str, str]] = []
    received: list[dict[str, Any]] = []
    counts: dict[str, list[float]] = {}

    class Callee(Agent):  # type: ignore[misc]
        @RPC.export  # type: ignore[misc]
        def echo(self, data: Any) -> Any:
            msg = self.vip.rpc.context.vip_message
            callers.append({"peer": str(msg.peer), "platform": str(getattr(msg, "platform", ""))})
            return data

    def start(cls: type, identity: str) -> Any:
        agent = cls(identity=identity, enable_store=False, heartbeat_autostart=False, instance_name=instance, **bus)
        started = gevent.event.Event()
        gevent.spawn(agent.core.run, started)
        if not started.wait(timeout=60):
            raise RuntimeError(f"{identity} did not start")
        return agent

    callee = start(Callee, "callee")
    caller = start(Agent, "caller")
    listener = start(Agent, "listener")

    def on_publish(peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        if topic.startswith(BENCH_TOPIC):
            c = counts.setdefault(topic, [0, 0.0])
            c[0] += 1
            c[1] = time.perf_counter()
        else:
            received.append({"sender": sender, "topic": topic, "message": message})

    listener.vip.pubsub.subscribe("pubsub", "devices", on_publish, all_platforms=True).get(timeout=30)
    print(json.dumps({"ready": True}), flush=True)
    state = {"received": received, "callers": callers, "counts": counts}

    for line in FileObject(sys.stdin, "r"):
        c = json.loads(line)
        if c["cmd"] == "quit":
            break
        try:
            out = _command(c, caller, state)
        except (Exception, gevent.Timeout) as e:  # noqa: BLE001 - the test reads what went wrong
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out, default=str), flush=True)
    for a in (callee, caller, listener):
        a.core.stop(timeout=3)


def _command(c: dict[str, Any], caller: Any, state: dict[str, Any]) -> dict[str, Any]:
    if c["cmd"] == "call":
        r = caller.vip.rpc.call(c["peer"], c["method"], *c["args"], external_platform=c["platform"])
        return {"result": r.get(timeout=c.get("timeout", 10))}
    if c["cmd"] == "bench_rpc":
        rtt = []
        for i in range(int(c["n"])):
            t0 = time.perf_counter()
            caller.vip.rpc.call(c["peer"], "echo", "x", external_platform=c["platform"]).get(timeout=30)
            rtt.append(time.perf_counter() - t0)
        return {"rtt_s": rtt}
    if c["cmd"] == "bench_pub":
        return _bench_pub(caller, c["topic"], int(c["n"]), int(c["window"]))
    if c["cmd"] == "publish":
        n = caller.vip.pubsub.publish("pubsub", c["topic"], headers={}, message=c["message"])
        return {"count": n.get(timeout=10)}
    if c["cmd"] == "counted":
        n, last = state["counts"].get(c["topic"], [0, 0.0])
        return {"n": n, "last": last}
    if c["cmd"] in ("received", "callers"):
        return {"items": state[c["cmd"]]}
    return {"error": f"unknown command {c['cmd']}"}


def _bench_pub(agent: Any, topic: str, n: int, window: int) -> dict[str, Any]:
    """`n` publishes of a small message on `topic`, at most `window` unanswered (as
    tests/multiplatform/bench_link.py publishes): the start time (perf_counter, CLOCK_MONOTONIC,
    the same clock in every process) and the sum of the publisher's counts."""
    pending: list[Any] = []
    answered = 0
    payload = {"v": 1.5, "units": "degF"}
    t0 = time.perf_counter()
    for _ in range(n):
        pending.append(agent.vip.pubsub.publish("pubsub", topic, headers={}, message=payload))
        if len(pending) >= window:
            answered += int(pending.pop(0).get(timeout=30))
    for r in pending:
        answered += int(r.get(timeout=30))
    return {"t0": t0, "answered": answered}


def main() -> None:
    mode, home, instance = sys.argv[1], sys.argv[2], sys.argv[3]
    _enter(home)
    if mode == "certs":
        run_certs(instance, sys.argv[4:])
    elif mode == "setup":
        run_setup()
    elif mode == "router":
        run_router(instance)
    elif mode == "agents":
        run_agents(instance, None)
    elif mode == "zmqagents":
        run_agents(instance, sys.argv[4])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
