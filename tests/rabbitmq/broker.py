"""A private RabbitMQ node on loopback for the bridge's tests (research memo multiplatform.md
§8): its own data dir, cookie (HOME), ports and epmd; started as a child, stopped with
`rabbitmqctl stop`, killed by the pid in its pid file. The same node can be killed and started
again (its data dir is kept), as a broker restart under load needs.

`Broker.available()` is False when Debian's rabbitmq-server is not installed (`.ci/run`
installs it: `apt-get install -y --no-install-recommends rabbitmq-server`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
VHOST = "volttron"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Broker:
    """One node. `plugins`: e.g. ["rabbitmq_federation"]; `tls`: (ca, cert, key) paths for an
    amqps listener with EXTERNAL."""

    def __init__(self, tag: str, plugins: tuple[str, ...] = (), tls: tuple[Path, Path, Path] | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix=f"viprouter-bridge-{tag}-", dir="/tmp"))
        self.port, self.dist, self.epmd_port = free_port(), free_port(), free_port()
        self.tls_port = free_port() if tls else None
        self.mgmt_port = free_port() if "rabbitmq_management" in plugins else None
        self.mgmt_tls_port = free_port() if self.mgmt_port and tls else None
        self.node = f"vb{tag}{self.port}@localhost"
        conf = f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        if self.mgmt_port:
            conf += f"management.tcp.port = {self.mgmt_port}\nmanagement.tcp.ip = 127.0.0.1\n"
        if tls:
            ca, cert, key = tls
            conf += (
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\nssl_options.cacertfile = {ca}\n"
                f"ssl_options.certfile = {cert}\nssl_options.keyfile = {key}\nssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = false\nauth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = EXTERNAL\n"
                "ssl_cert_login_from = common_name\n"
            )
            plugins = tuple(plugins) + ("rabbitmq_auth_mechanism_ssl",)
            if self.mgmt_tls_port:
                conf += (
                    f"management.ssl.port = {self.mgmt_tls_port}\nmanagement.ssl.ip = 127.0.0.1\n"
                    f"management.ssl.cacertfile = {ca}\nmanagement.ssl.certfile = {cert}\n"
                    f"management.ssl.keyfile = {key}\n"
                )
        (self.dir / "rabbitmq.conf").write_text(conf)
        (self.dir / "enabled_plugins").write_text("[" + ",".join(plugins) + "].\n")
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.child: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return os.path.exists(SERVER) and os.path.exists(CTL)

    def env(self) -> dict[str, str]:
        d = self.dir
        e = dict(os.environ)
        e.update(
            HOME=str(d),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_PID_FILE=str(d / "node.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        return e

    def start(self, timeout: float = 90.0) -> "Broker":
        """Start (or start again) and wait until AMQP connections are accepted."""
        log = open(self.dir / "server.out", "ab")
        self.child = subprocess.Popen([SERVER], env=self.env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if listening(self.port):
                return self
            if self.child.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited early:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq-server did not listen within {timeout} s:\n{self.log_tail()}")

    def beam_pid(self) -> int | None:
        try:
            return int((self.dir / "node.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """SIGKILL the Erlang VM (by the pid it wrote): a broker crash; the data dir stays."""
        pid = self.beam_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.child:
            self.child.wait(30)
            self.child = None
        (self.dir / "node.pid").unlink(missing_ok=True)

    def ctl(self, *args: str, check: bool = True) -> str:
        r = subprocess.run([CTL, "-n", self.node, *args], env=self.env(), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args}: {r.stdout}{r.stderr}")
        return r.stdout

    def setup_vhost(self, vhost: str = VHOST) -> None:
        """VOLTTRON's vhost (the topology is declared by whoever connects first)."""
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def url(self, vhost: str = VHOST) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def stop(self) -> None:
        if self.child:
            self.ctl("stop", check=False)
            try:
                self.child.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
            self.child = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            pid = self.beam_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.epmd.kill()
            self.epmd.wait()
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        text = ""
        for p in [self.dir / "server.out", *sorted((self.dir / "log").glob("*.log"))]:
            try:
                text += p.read_text(errors="replace")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-n:])

    def rows(self, *args: str) -> list[list[str]]:
        """`rabbitmqctl list_* -q --no-table-headers` as rows of tab-separated fields."""
        out = self.ctl(*args, "-q", "--no-table-headers")
        return [line.split("\t") for line in out.splitlines() if line.strip()]


def federate(downstream: Broker, upstream: Broker, vhost: str = VHOST) -> None:
    """Exchange federation of `volttron` from `upstream` into `downstream` (memo §5.5, §9.2):
    what is published on the upstream's exchange and matches a binding on the downstream is
    copied down."""
    uri = f"amqp://guest:guest@127.0.0.1:{upstream.port}/{vhost}"
    downstream.ctl("set_parameter", "-p", vhost, "federation-upstream", f"up-{upstream.port}", f'{{"uri": "{uri}"}}')
    downstream.ctl(
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "exchanges",
        "volttron-federation",
        "^volttron$",
        '{"federation-upstream-set": "all"}',
    )


def _exchange_keys(node: Broker, vhost: str) -> tuple[set[str], set[str]]:
    """(routing keys bound from `volttron` to queues, every routing key bound from `volttron`)."""
    rows = node.rows("list_bindings", "-p", vhost, "source_name", "destination_kind", "routing_key")
    mine = {r[2] for r in rows if len(r) == 3 and r[0] == "volttron" and r[1] == "queue"}
    return mine, {r[2] for r in rows if len(r) == 3 and r[0] == "volttron"}


def wait_federated(a: Broker, b: Broker, timeout: float = 60.0, vhost: str = VHOST) -> None:
    """Wait until the federation links between `a` and `b` (`federate` both ways) carry every
    routing key bound to a queue on either node's `volttron` exchange to the other node (the links
    start, then copy the downstream's bindings upstream, asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        (qa, all_a), (qb, all_b) = _exchange_keys(a, vhost), _exchange_keys(b, vhost)
        missing = sorted((qa - all_b) | (qb - all_a))
        if not missing:
            return
        assert time.monotonic() < deadline, f"federation bindings not propagated in {timeout} s: {missing}"
        time.sleep(0.3)
