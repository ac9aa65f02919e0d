"""A VOLTTRON 9.0.4 RabbitMQ-bus instance on a private broker, seen from the test process: the
`VOLTTRON_HOME` and broker users it needs, its router and agents processes (vt9_rmq.py, run with
the VOLTTRON 9.0.4 venv), JSON commands to its agents. See tests/rabbitmq/README.md.

Environment: VT9_VENV=PATH (default <repo>/.venv-volttron9, `make volttron9`), VT9_PIKA=DIR
(default <repo>/.vt9-pika: pika 1.2.0, VOLTTRON's pin, installed by `make test-rabbitmq` with
`pip install --target`, put on the driver's PYTHONPATH only. It stays out of the VOLTTRON 9 venv
because VOLTTRON's own test fixtures add RabbitMQ variants of their tests when pika imports
(volttron/platform/__init__.py:192-202 is_rabbitmq_available), which would change the
volttron9-suite run.)
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from broker import Broker, listening

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "vt9_rmq.py"
# The agents vt9_rmq.py starts (their broker users are made by `add_agent_users`).
AGENTS = ("callee", "caller", "listener")


def vt9_python() -> Path:
    return Path(os.environ.get("VT9_VENV") or REPO / ".venv-volttron9") / "bin" / "python"


def vt9_env() -> dict[str, str]:
    pika = os.environ.get("VT9_PIKA") or str(REPO / ".vt9-pika")
    return dict(os.environ, PYTHONPATH=pika)


def vt9_missing() -> str | None:
    """Why VOLTTRON 9.0.4's RMQ bus cannot run here, or None."""
    py = vt9_python()
    if not py.exists():
        return f"{py} is missing (make volttron9)"
    r = subprocess.run([str(py), "-c", "import pika, volttron"], capture_output=True, text=True, env=vt9_env())
    if r.returncode != 0:
        return f"{py} cannot import pika and volttron (make test-rabbitmq installs pika==1.2.0): {r.stderr[-300:]}"
    return None


def write_home(home: Path, instance: str, broker: Broker, ssl: bool) -> None:
    """vt9_rmq.write_home, imported from the driver file (it has no VOLTTRON import at top level)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vt9_rmq", DRIVER)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kw = dict(ssl=True, amqps_port=broker.tls_port, mgmts_port=broker.mgmt_tls_port) if ssl else {}
    mod.write_home(home, instance, broker.port, broker.mgmt_port, **kw)


def tls_files(home: Path, instance: str) -> tuple[Path, Path, Path]:
    """(CA, server certificate, server key) where VOLTTRON's certs.py puts them (certs.py:250-270,
    307-322), for the broker's TLS listeners: what `vcfg` writes into rabbitmq.conf
    (rmq_setup.py:523-557)."""
    c = home / "certificates"
    return (c / "certs" / f"{instance}-trusted-cas.crt", c / "certs" / f"{instance}-server.crt",
            c / "private" / f"{instance}-server.pem")


def client_cert(home: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) of a client certificate made by `Vt9Instance.make_certs`."""
    c = home / "certificates"
    return c / "certs" / f"{name}.crt", c / "private" / f"{name}.pem"


def add_agent_users(broker: Broker, instance: str, password: str = "default_passwd") -> None:
    """With `ssl: false` VOLTTRON 9.0.4's agents log in PLAIN as `<instance>.<identity>` with the
    *admin* password of rabbitmq_config.yml (auth_rmq.py:60-74 builds the credentials from
    `rmq_user` and `admin_pwd`), but the only code that creates that user gives it the password
    `<instance>.<identity>` (rmq_mgmt.py:887 `create_user(user, user)`), and then only when the
    admin's TLS key is readable (auth_rmq.py:181-185), i.e. never with `ssl: false`. An operator
    therefore adds the agents' users by hand (`vctl rabbitmq add-user`), with the permissions
    VOLTTRON gives agents (rmq_mgmt.py:894-901); the test does the same with rabbitmqctl."""
    for ident in AGENTS:
        user = f"{instance}.{ident}"
        access = f"{user}|{user}.pubsub.*|{user}.zmq.*|amq.*"
        broker.ctl("add_user", user, password)
        broker.ctl("set_permissions", "-p", "volttron", user, access, f"volttron|{access}", f"volttron|{access}")


class Vt9Instance:
    """VOLTTRON instance `instance` with the RMQ message bus on `broker`: VOLTTRON's RMQRouter in
    one process, its agents callee/caller/listener in another."""

    def __init__(self, broker: Broker, instance: str, ssl: bool = False, home: Path | None = None):
        self.broker, self.instance, self.ssl = broker, instance, ssl
        # The node gateways talk to this instance through: `broker`, or a node federated with it.
        self.gateway_node = broker
        self.home = home or Path(tempfile.mkdtemp(prefix=f"vt9rmq-{instance}-", dir="/tmp"))
        write_home(self.home, instance, broker, ssl)
        self.procs: list[subprocess.Popen] = []
        self.lines: queue.Queue[str] = queue.Queue()
        self.agents: subprocess.Popen | None = None

    def _spawn(self, mode: str, log: str, pipe: bool, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        out = open(self.home / log, "wb")
        p = subprocess.Popen(
            [str(vt9_python()), str(DRIVER), mode, str(self.home), self.instance, *extra],
            stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else out,
            stderr=out,
            cwd=str(self.home),
            env=vt9_env(),
            text=pipe,
        )
        self.procs.append(p)
        return p

    def make_certs(self, clients: list[str], timeout: float = 120.0) -> None:
        """VOLTTRON's CA, broker and admin certificates, plus client certificates `clients`."""
        p = self._spawn("certs", "certs.log", pipe=False, extra=tuple(clients))
        assert p.wait(timeout) == 0, f"certificates not made:\n{self.log_tail('certs.log')}"

    def start(self, timeout: float = 120.0) -> "Vt9Instance":
        deadline = time.monotonic() + timeout
        setup = self._spawn("setup", "setup.log", pipe=False)
        assert setup.wait(timeout) == 0, f"init_rabbitmq_setup failed:\n{self.log_tail('setup.log')}"
        router = self._spawn("router", "router.log", pipe=False)
        while not self._queue_exists(f"{self.instance}.router"):
            assert router.poll() is None, f"VOLTTRON RMQ router exited:\n{self.log_tail('router.log')}"
            assert time.monotonic() < deadline, f"router queue not declared:\n{self.log_tail('router.log')}"
            time.sleep(0.3)
        self._start_agents("agents", (), deadline)
        return self

    def _start_agents(self, mode: str, extra: tuple[str, ...], deadline: float) -> None:
        self.agents = self._spawn(mode, "agents.log", pipe=True, extra=extra)
        threading.Thread(target=self._read, args=(self.agents,), daemon=True).start()
        ready = self._line(deadline - time.monotonic())
        assert ready == {"ready": True}, ready

    def _queue_exists(self, name: str) -> bool:
        return any(r and r[0] == name for r in self.broker.rows("list_queues", "-p", "volttron", "name"))

    def _read(self, p: subprocess.Popen) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            self.lines.put(line)

    def _line(self, timeout: float) -> Any:
        try:
            return json.loads(self.lines.get(timeout=max(timeout, 0.1)))
        except queue.Empty:
            raise AssertionError(f"VOLTTRON agents: no answer in {timeout:.0f} s:\n{self.log_tail('agents.log')}")

    def send(self, **cmd: Any) -> None:
        """Send a command; read its answer with `answer()` (the agents process answers in order)."""
        assert self.agents is not None and self.agents.stdin is not None
        self.agents.stdin.write(json.dumps(cmd) + "\n")
        self.agents.stdin.flush()

    def answer(self, timeout: float = 30.0) -> Any:
        return self._line(timeout)

    def cmd(self, timeout: float = 30.0, **cmd: Any) -> Any:
        self.send(**cmd)
        return self.answer(timeout)

    def log_tail(self, name: str, n: int = 40) -> str:
        try:
            return "\n".join((self.home / name).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def close(self) -> None:
        if self.agents and self.agents.poll() is None:
            try:
                self.send(cmd="quit")
                self.agents.wait(10)
            except (OSError, subprocess.TimeoutExpired, AssertionError):
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        shutil.rmtree(self.home, ignore_errors=True)


class Vt9ZmqAgents(Vt9Instance):
    """The same VOLTTRON 9.0.4 agents (vt9_rmq.py `zmqagents`) on the ZMQ bus of the router at
    `address` (a viprouter gateway's ipc socket, auth off): the benchmark's other kind."""

    def __init__(self, instance: str, address: str):
        self.broker, self.instance, self.ssl, self.address = None, instance, False, address  # type: ignore[assignment]
        self.home = Path(tempfile.mkdtemp(prefix=f"vt9zmq-{instance}-", dir="/tmp"))
        (self.home / "config").write_text(f"[volttron]\ninstance-name = {instance}\n")
        self.procs = []
        self.lines = queue.Queue()
        self.agents = None

    def start(self, timeout: float = 120.0) -> "Vt9ZmqAgents":
        self._start_agents("zmqagents", (self.address,), time.monotonic() + timeout)
        return self


def management_broker(tag: str, plugins: tuple[str, ...] = (), **kw: Any) -> Broker:
    """A private node with the management plugin (VOLTTRON's router and agents call its HTTP API:
    users, permissions, bindings; research memo §5.1) and `plugins`, not started
    (`start_management`)."""
    return Broker(tag, plugins=("rabbitmq_management", *plugins), **kw)


def start_management(b: Broker) -> Broker:
    """Start `b`, add the vhost `volttron`, wait for the management API(s)."""
    b.start()
    b.setup_vhost()
    deadline = time.monotonic() + 60
    for port in (b.mgmt_port, b.mgmt_tls_port):
        while port and not listening(port):
            assert time.monotonic() < deadline, f"management API not listening:\n{b.log_tail()}"
            time.sleep(0.2)
    return b
