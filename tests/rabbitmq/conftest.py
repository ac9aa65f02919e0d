"""Fixtures of the RabbitMQ bridge suite: a private RabbitMQ 3.10 node (broker.py), viprouter
gateways (the release binary) bridged to it, raw VIP agents on real libzmq (pyzmq, the interop
suite's vipclient.py) and VOLTTRON RabbitMQ agents on the wire (pika, rmq_agent.py).

Environment:
  VIPROUTER_BIN=PATH   router binary (default: <repo>/target/release/viprouter)
  VIPROUTER_BRIDGE=skip  skip the suite (reported as skipped)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
sys.path.insert(0, str(HERE))

from broker import Broker, free_port, wait_federated  # noqa: E402
from vipclient import VIP, Agent  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_rabbitmq_server: needs no rabbitmq-server (runs without one; VIPROUTER_BRIDGE=skip still skips)")


def pytest_collection_modifyitems(config, items):
    skip_all = "VIPROUTER_BRIDGE=skip" if os.environ.get("VIPROUTER_BRIDGE", "").lower() == "skip" else None
    no_server = None if Broker.available() else (
        "rabbitmq-server is not installed (apt-get install -y --no-install-recommends rabbitmq-server)")
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        reason = skip_all or (None if item.get_closest_marker("no_rabbitmq_server") else no_server)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def router_bin() -> str:
    return os.environ.get("VIPROUTER_BIN") or str(REPO / "target" / "release" / "viprouter")


class Gateway:
    """A viprouter process that is VOLTTRON instance `name` on the broker at `url`."""

    def __init__(self, name: str, url: str | None, export: str = "devices/ alerts/", extra: str = "", verbose=True,
                 federation: tuple[Broker, Broker] | None = None):
        """`url` None: the same gateway without the bridge (no `rabbitmq-*` keys). `federation`:
        (its node, the node federated with it); `wait_bridge` then also waits until the
        federation links carry the gateway's bindings (and the other node's) across."""
        self.name = name
        self.federation = federation
        self.home = tempfile.mkdtemp(prefix=f"vbr-{name}-", dir="/tmp")
        self.port = free_port()
        self.tcp = f"tcp://127.0.0.1:{self.port}"
        cfg = (
            f"[volttron]\ninstance-name = {name}\nvip-address = {self.tcp}\nallow-auth = False\n"
            "[viprouter]\n" + (f"rabbitmq-url = {url}\nrabbitmq-export = {export}\n" if url else "") + extra
        )
        Path(self.home, "config").write_text(cfg)
        self.log_path = Path(self.home, "router.log")
        self._log = open(self.log_path, "wb")
        argv = [router_bin(), "--volttron-home", self.home] + (["-v"] if verbose else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.ctx = zmq.Context()
        self.agents: list[Agent] = []
        self._stats_agent: Agent | None = None

    def agent(self, identity: str, hello: bool = True) -> Agent:
        a = Agent(self.ctx, self.tcp, identity.encode())
        self.agents.append(a)
        if hello:
            a.hello(timeout=10)
        return a

    def stats(self) -> dict:
        if self._stats_agent is None:
            self._stats_agent = self.agent("_stats", hello=True)
        a = self._stats_agent
        a.send(b"", b"query", b"stats", msgid=b"stats")
        f = a.recv_matching(lambda f: f[4] == b"query" and f[3] == b"stats", 5, "query stats reply")[0]
        return json.loads(f[6])

    def bridge(self) -> dict:
        return self.stats().get("rabbitmq", {})

    def wait_bridge(self, state: str = "up", timeout: float = 30.0, bound: int | None = None) -> dict:
        """Wait until the bridge is in `state` (and, if given, `bound` bindings are confirmed)."""
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gateway {self.name} died:\n{self.log_tail()}"
            last = self.bridge()
            if last.get("state") == state and (bound is None or last.get("bound") == bound):
                if self.federation and state == "up":
                    wait_federated(*self.federation)  # its own 60 s: links start slowly under load
                return last
            time.sleep(0.1)
        raise AssertionError(f"gateway {self.name}: bridge not {state} (bound={bound}) in {timeout} s: {last}\n"
                             f"{self.log_tail()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        for a in self.agents:
            a.close()
        self.agents.clear()
        self._stats_agent = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.ctx.term()
        self._log.close()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def broker():
    b = Broker("s", plugins=("rabbitmq_federation",)).start()
    try:
        b.setup_vhost()
        yield b
    finally:
        b.close()


@pytest.fixture
def gateways():
    """gateways(name, url, ...) starts a gateway; all are stopped at the end of the test."""
    made: list[Gateway] = []

    def make(name: str, url: str, **kw) -> Gateway:
        g = Gateway(name, url, **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


@pytest.fixture
def rmq_agents(broker):
    made = []

    def make(instance: str, identity: str, port: int | None = None):
        from rmq_agent import RmqAgent

        a = RmqAgent(port or broker.port, instance, identity)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def rpc_request(method: str, params, rid: str = "1") -> str:
    """A JSON-RPC request as VOLTTRON's dispatcher serialises it (a JSON text)."""
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rid})


def send_platform(agent: Agent, platform: str, peer: str, args: list, msgid: bytes) -> None:
    """`external_rpc send_platform` as the agent library writes it (rpc.py)."""
    body = {"to_platform": platform, "to_peer": peer, "from_platform": "", "from_peer": "", "args": args}
    agent.send(b"", b"external_rpc", b"send_platform", json.dumps(body).encode(), msgid=msgid)


def answer_external_rpc(agent: Agent, result) -> dict:
    """`agent` answers an incoming external RPC as the agent library does."""
    f = agent.recv_matching(lambda f: f[4] == b"external_rpc" and f[5] == b"send_peer", 15)[0]
    body = json.loads(f[6])
    req = json.loads(body["args"][0])
    resp = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result(req)})
    send_platform(agent, body["from_platform"], body["from_peer"], [resp], msgid=f[3])
    return {"frames": f, "body": body, "request": req}


__all__ = ["VIP", "Gateway", "answer_external_rpc", "rpc_request", "send_platform"]
