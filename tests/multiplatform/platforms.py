"""Two platforms on loopback that link to each other (``../shared/research/multiplatform.md``
Appendix A): a home per platform with its config, keystore, discovery file naming the other and
``auth.json`` entries for the other's platform key and for the test agents.

A platform is either VOLTTRON 9.0.4's own (``volttron`` run by ``launch_volttron.py``) or a
viprouter (``viprouter-volttron`` when installed, else the ``viprouter`` binary with
``--volttron-home``: the router alone, without VOLTTRON's services).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import gevent
import zmq
import zmq.utils.z85

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def volttron_key(z85: bytes) -> str:
    """A Z85 CURVE key in VOLTTRON's text form: URL-safe base64 without padding (43 chars)."""
    return base64.urlsafe_b64encode(zmq.utils.z85.decode(z85)).decode().rstrip("=")


def z85_key(key: str) -> bytes:
    """VOLTTRON's 43-char key text as the Z85 form pyzmq's CURVE options take."""
    return zmq.utils.z85.encode(base64.urlsafe_b64decode(key + "="))


@dataclass
class KeyPair:
    public: str
    secret: str

    @staticmethod
    def new() -> "KeyPair":
        """A fresh pair whose texts do not start with ``-``: both routers replace such a
        platform keystore at start (VOLTTRON's ``KeyStore``; viprouter ``src/auth/keystore.rs``),
        which changed the server key behind the harness's back about once in 32 starts."""
        while True:
            pub, sec = zmq.curve_keypair()
            k = KeyPair(volttron_key(pub), volttron_key(sec))
            if not (k.public.startswith("-") or k.secret.startswith("-")):
                return k


@dataclass
class AgentAuth:
    """One auth.json entry for a test agent (identity = user_id) or another platform."""

    user_id: str
    keys: KeyPair
    identity: Optional[str] = None
    capabilities: Dict[str, object] = field(default_factory=dict)


@dataclass
class Platform:
    """One platform: its name, kind (``volttron`` or ``viprouter``), home, port and keys."""

    name: str
    kind: str
    home: Path
    port: int
    keys: KeyPair = field(default_factory=KeyPair.new)
    proc: Optional["subprocess.Popen[bytes]"] = None
    log: Optional[Path] = None
    # VOLTTRON's own platform.auth, run for a bare viprouter (auth_service.py).
    auth_proc: Optional["subprocess.Popen[bytes]"] = None

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def discovery_entry(self) -> Dict[str, str]:
        return {"vip-address": self.address, "instance-name": self.name, "serverkey": self.keys.public}

    def write_home(self, remotes: List["Platform"], agents: List[AgentAuth]) -> None:
        (self.home / "userhome").mkdir(parents=True, exist_ok=True)
        (self.home / "config").write_text(
            f"[volttron]\nmessage-bus = zmq\nvip-address = {self.address}\ninstance-name = {self.name}\n"
        )
        ks = self.home / "keystore"
        ks.write_text(json.dumps({"public": self.keys.public, "secret": self.keys.secret}))
        ks.chmod(0o600)
        discovery = {r.name: r.discovery_entry() for r in remotes}
        (self.home / "external_platform_discovery.json").write_text(json.dumps(discovery))
        entries = [AgentAuth(f"platform-{r.name}", r.keys) for r in remotes] + agents
        write_auth(self.home, entries)
        if self.bare_viprouter:
            # viprouter admits this key as platform.auth, as VOLTTRON's platform admits its
            # built-in services (VIP.md §9.7); auth_service.py connects with it.
            ks = self.home / "keystores" / "platform.auth" / "keystore.json"
            ks.parent.mkdir(parents=True, exist_ok=True)
            k = KeyPair.new()
            ks.write_text(json.dumps({"public": k.public, "secret": k.secret}))

    @property
    def bare_viprouter(self) -> bool:
        """The router alone (no ``viprouter-volttron`` launcher): the tests start VOLTTRON's
        ``platform.auth`` next to it (``auth_service.py``)."""
        return self.kind == "viprouter" and not os.environ.get("VIPROUTER_VOLTTRON")

    def start(self, tmp: Path) -> None:
        self.launch(tmp)
        self.wait_ready()

    def launch(self, tmp: Path) -> None:
        """Start the process (returns at once; see :meth:`wait_ready`)."""
        env = dict(os.environ, VOLTTRON_HOME=str(self.home), HOME=str(self.home / "userhome"))
        self.log = tmp / f"{self.name}-{int(time.time() * 1000)}.log"
        pid_file = self.home / "VOLTTRON_PID"
        if pid_file.exists():
            pid_file.unlink()
        if self.kind == "volttron":
            cmd = [sys.executable, str(HERE / "launch_volttron.py"), "-l", str(self.log), "-vv"]
            out = subprocess.DEVNULL
        else:
            cmd = viprouter_command(self.home)
            out = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        """Until the platform's VOLTTRON_PID exists (VOLTTRON) and its port accepts."""
        assert self.proc is not None
        pid_file = self.home / "VOLTTRON_PID"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log {self.log}")
            ready = pid_file.exists() or self.kind != "volttron"
            if ready and port_accepts(self.port):
                if self.bare_viprouter:
                    self.start_auth_service()
                return
            gevent.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {START_TIMEOUT_S} s; log {self.log}")

    def start_auth_service(self) -> None:
        """VOLTTRON's ``platform.auth`` as an agent of this bare viprouter (``auth_service.py``)."""
        assert self.log is not None
        log = self.log.with_suffix(".auth.log")
        cmd = [sys.executable, str(HERE / "auth_service.py"), str(self.home), self.address, self.keys.public, str(log)]
        env = dict(os.environ, VOLTTRON_HOME=str(self.home), HOME=str(self.home / "userhome"))
        self.auth_proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.with_suffix(".err").open("wb"))
        # Ready when it logs that it runs (after its hello to the router): a protected call made
        # before that gets 113 for platform.auth (importing VOLTTRON takes seconds on a busy host).
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (log.exists() and "platform.auth running on" in log.read_text(errors="replace")):
            if self.auth_proc.poll() is not None:
                raise RuntimeError(f"{self.name}: platform.auth exited with {self.auth_proc.returncode}; {log}.err")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: platform.auth not running in {START_TIMEOUT_S} s; {log}")
            gevent.sleep(0.1)

    def stop(self) -> None:
        """SIGINT (VOLTTRON's clean stop), then SIGKILL after 20 s; waits for the process (and
        for the ``platform.auth`` started next to a bare viprouter)."""
        p, self.proc = self.proc, None
        a, self.auth_proc = self.auth_proc, None
        for proc in (a, p):
            stop_process(proc)


def stop_process(p: Optional["subprocess.Popen[bytes]"]) -> None:
    """SIGINT, then SIGKILL after 20 s; waits for the process."""
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    while p.poll() is None and time.monotonic() < deadline:
        gevent.sleep(0.1)
    if p.poll() is None:
        p.kill()
        p.wait(timeout=10)


def viprouter_command(home: Path) -> List[str]:
    """How a viprouter platform is started: the launcher if installed, else the bare router."""
    launcher = os.environ.get("VIPROUTER_VOLTTRON")
    if launcher:
        return [launcher, "-l", str(home / "volttron.log")]
    binary = os.environ.get("VIPROUTER_BIN", str(ROOT / "target" / "release" / "viprouter"))
    # -v: debug lines, among them each external publish received (what the link-cut test reads).
    return [binary, "--volttron-home", str(home), "-v"]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def write_auth(home: Path, entries: List[AgentAuth]) -> None:
    """``auth.json`` written by VOLTTRON's own ``AuthFile``/``AuthEntry`` (its format and
    version), all entries in one write (``AuthFile.add`` sleeps 1 s per entry)."""
    from volttron.platform.auth.auth_entry import AuthEntry
    from volttron.platform.auth.auth_file import AuthFile

    af = AuthFile(str(home / "auth.json"))
    allow, deny, groups, roles = af.read()
    for e in entries:
        allow.append(
            AuthEntry(
                credentials=e.keys.public,
                user_id=e.user_id,
                identity=e.identity,
                capabilities=e.capabilities or None,
                comments="multiplatform test",
            )
        )
    af._write(allow, deny, groups, roles)


def make_pair(kinds: Tuple[str, str], tmp: Path, agents: Dict[str, List[AgentAuth]]) -> Tuple[Platform, Platform]:
    """p1 and p2 of the given kinds, homes written (not started)."""
    p1 = Platform("p1", kinds[0], tmp / "p1", free_port())
    p2 = Platform("p2", kinds[1], tmp / "p2", free_port())
    p1.write_home([p2], agents.get("p1", []))
    p2.write_home([p1], agents.get("p2", []))
    return p1, p2
