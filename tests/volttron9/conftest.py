"""Fixtures for the real-agent suite: VOLTTRON 9.0.4's agent library (unmodified) against the
release viprouter.

Every test module gets fresh platforms: a new VOLTTRON_HOME (short, under /tmp, so the
abstract ipc name fits), a `config` naming a tcp vip-address, and `viprouter --volttron-home`
started from here. Files are laid out by VOLTTRON's own code, as a platform lays them out:
viprouter creates `keystore` and `known_hosts`; each agent's pair is VOLTTRON's
`KeyStore($VOLTTRON_HOME/keystores/<identity>/keystore.json)`; `auth.json` entries are
VOLTTRON's `AuthEntry` objects written by its `AuthFile`. Agents are built with the address only
(no keys passed): the library finds its own pair and the server key in those files.

Waiting is deterministic: never a fixed sleep where an event can be awaited. An auth.json or
protected_topics.json write waits for the router's log line saying it was loaded (with the
expected entry count); a delivery waits for the message itself. Every wait yields to gevent
(`gevent.sleep`), so the agents' greenlets keep running.

Environment:
  VIPROUTER_BIN=PATH          router binary (default: <repo>/target/release/viprouter)
  VIPROUTER_VOLTTRON9=skip    skip the suite (reported as skipped, not passed)
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

try:
    import gevent
    import gevent.event
    from volttron.platform.auth.auth_entry import AuthEntry
    from volttron.platform.auth.auth_file import AuthFile
    from volttron.platform.keystore import KeyStore
    from volttron.platform.vip.agent import Agent
    from volttron.platform.vip.agent.subsystems.query import Query
except ImportError as exc:  # pragma: no cover - a setup problem, reported as such
    raise pytest.UsageError(
        f"VOLTTRON 9.0.4 is not importable ({exc}): run this suite with .venv-volttron9/bin/python "
        "(`make volttron9` creates it)"
    ) from exc

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
WAIT_TIMEOUT = 5.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("VIPROUTER_VOLTTRON9", "").lower() == "skip":
        mark = pytest.mark.skip(reason="VIPROUTER_VOLTTRON9=skip")
        for item in items:
            item.add_marker(mark)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (prctl PR_SET_PDEATHSIG), so a
    killed pytest never leaves a router or an agent process behind."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def router_bin() -> str:
    return os.environ.get("VIPROUTER_BIN") or str(REPO / "target" / "release" / "viprouter")


def wait_for(what: str, cond: Callable[[], Any], timeout: float = WAIT_TIMEOUT) -> Any:
    """Poll `cond` (yielding to gevent) until it is truthy; fail with `what` after `timeout`."""
    deadline = gevent.get_hub().loop.now() + timeout
    while True:
        value = cond()
        if value:
            return value
        if gevent.get_hub().loop.now() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        gevent.sleep(0.01)


class Platform:
    """A viprouter process on a fresh VOLTTRON_HOME, and the agents the test built on it."""

    def __init__(self, security: str, viprouter: Optional[dict[str, str]] = None) -> None:
        assert security in ("curve", "null")
        self.security = security
        self.auth = security == "curve"
        self.home = tempfile.mkdtemp(prefix="vt9a-", dir="/tmp")
        self.tcp = f"tcp://127.0.0.1:{free_port()}"
        self.ipc = f"ipc://@{self.home}/run/vip.socket"
        config = f"[volttron]\nvip-address = {self.tcp}\ninstance-name = vt9agents\n"
        if not self.auth:
            config += "allow-auth = False\n"
        if viprouter:
            config += "[viprouter]\n" + "".join(f"{k} = {v}\n" for k, v in viprouter.items())
        Path(self.home, "config").write_text(config)
        self.log_path = Path(self.home, "viprouter.log")
        self._log = open(self.log_path, "wb")
        exe = router_bin()
        if not os.access(exe, os.X_OK):
            pytest.fail(f"router binary not found: {exe} (`make release`, or set VIPROUTER_BIN)", pytrace=False)
        self.proc = self._start_router(exe)
        ready = self.wait_log(r"ready: router id (\S+),", since=0, timeout=READY_TIMEOUT)
        self.router_id = ready.group(1)
        self.agents: list[Agent] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start_router(self, exe: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [exe, "--volttron-home", self.home],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def kill9_and_restart(self) -> int:
        """SIGKILL the router and start it again on the same VOLTTRON_HOME (keystore, config,
        port); returns the log mark of the new process's start, once it is ready."""
        self.proc.kill()
        self.proc.wait(5)
        mark = self.log_mark()
        self.proc = self._start_router(router_bin())
        self.router_id = self.wait_log(r"ready: router id (\S+),", since=mark, timeout=READY_TIMEOUT).group(1)
        return mark

    # -------------------------------------------------------------- router log
    def log(self, since: int = 0) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def log_mark(self) -> int:
        return self.log_path.stat().st_size

    def wait_log(self, pattern: str, since: int, timeout: float = WAIT_TIMEOUT) -> re.Match[str]:
        rx = re.compile(pattern)

        def found() -> Optional[re.Match[str]]:
            if self.proc.poll() is not None:
                pytest.fail(f"viprouter exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            return rx.search(self.log(since))

        return wait_for(f"/{pattern}/ in the viprouter log", found, timeout)

    # -------------------------------------------------------------- files
    def address(self, transport: str) -> str:
        return {"tcp": self.tcp, "ipc": self.ipc}[transport]

    def keystore(self, identity: str) -> KeyStore:
        """The agent's pair, where VOLTTRON keeps it (created on first use, as VOLTTRON does)."""
        return KeyStore(os.path.join(self.home, "keystores", identity, "keystore.json"))

    @property
    def auth_path(self) -> str:
        return os.path.join(self.home, "auth.json")

    def edit_auth(self, edit: Callable[[list[AuthEntry]], None]) -> None:
        """Apply `edit` to the allow entries with VOLTTRON's AuthFile and wait until viprouter
        has loaded the result (its `reloaded, N allow entries` line, N = the file's enabled
        entries + the platform's own)."""
        mark = self.log_mark()
        af = AuthFile(self.auth_path)
        allow, deny, groups, roles = af.read()
        edit(allow)
        af._write(allow, deny, groups, roles)  # AuthFile.add/remove write with this, then sleep 1 s
        self.wait_auth_reload(mark)

    def wait_auth_reload(self, mark: int) -> None:
        want = sum(1 for e in AuthFile(self.auth_path).read()[0] if e.enabled) + 1
        self.wait_log(rf"auth\.json: reloaded, {want} allow entries", since=mark)

    def allow(self, identity: str, capabilities: Any = None) -> str:
        """Add an auth.json entry for `identity`'s key (as PlatformWrapper.build_agent does);
        returns the public key."""
        public = self.keystore(identity).public
        entry = AuthEntry(
            user_id=identity,
            identity=identity,
            credentials=public,
            capabilities=capabilities,
            comments="tests/volttron9",
        )
        self.edit_auth(lambda allow: allow.append(entry))
        return str(public)

    def write_protected_topics(self, content: dict[str, Any]) -> None:
        import json

        mark = self.log_mark()
        Path(self.home, "protected_topics.json").write_text(json.dumps(content))
        n = len(content.get("write-protect", []))
        self.wait_log(rf"protected topics loaded: {n} entries", since=mark)

    # -------------------------------------------------------------- agents
    def agent(
        self,
        identity: str,
        transport: str = "tcp",
        agent_class: type = Agent,
        allow: bool = True,
        capabilities: Any = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> Agent:
        """An unmodified VOLTTRON agent connected over `transport`; with auth on, its key is
        first added to auth.json unless `allow` is false."""
        if self.auth and allow:
            self.allow(identity, capabilities)
        a = agent_class(
            identity=identity,
            address=self.address(transport),
            volttron_home=self.home,
            enable_store=False,
            enable_auth=self.auth,
            message_bus="zmq",
            **kwargs,
        )
        started = gevent.event.Event()
        a.vt9_started = started
        a.vt9_greenlet = gevent.spawn(a.core.run, started)
        self.agents.append(a)
        if wait:
            assert started.wait(CONNECT_TIMEOUT), f"{identity} not welcomed over {transport}:\n{self.log()[-2000:]}"
        return a

    def agent_process(self, identity: str, transport: str) -> subprocess.Popen[bytes]:
        """An unmodified agent in a process of its own (`agent_process.py`), to be killed."""
        if self.auth:
            self.allow(identity)
        script = Path(__file__).with_name("agent_process.py")
        argv = [sys.executable, str(script), identity, self.address(transport), self.home, "1" if self.auth else "0"]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.processes.append(proc)
        return proc

    def stop_agent(self, a: Agent) -> None:
        if not a.vt9_greenlet.dead:
            a.core.stop(timeout=5)
            a.vt9_greenlet.join(5)

    def query_stats(self, a: Agent) -> dict[str, Any]:
        """viprouter's counters (`query stats`), read with the agent library's own query."""
        if not hasattr(a, "vt9_query"):
            a.vt9_query = Query(a.core)  # how VOLTTRON's own services query the router (control.py:195)
        stats = a.vt9_query.query("stats").get(timeout=WAIT_TIMEOUT)
        assert isinstance(stats, dict), stats
        return stats

    # -------------------------------------------------------------- teardown
    def stop_agents(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        self.processes.clear()
        for a in self.agents:
            try:
                self.stop_agent(a)
            except Exception:  # a failed test may leave an agent half-started
                a.vt9_greenlet.kill(block=True, timeout=2)
        self.agents.clear()

    def close(self) -> None:
        self.stop_agents()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def platform_fixture(security: str, viprouter: Optional[dict[str, str]] = None) -> Iterator[Platform]:
    """A Platform for a module, with VOLTTRON_HOME pointing at it while it runs."""
    old_home = os.environ.get("VOLTTRON_HOME")
    p = Platform(security, viprouter)
    os.environ["VOLTTRON_HOME"] = p.home
    try:
        yield p
    finally:
        p.close()
        if old_home is None:
            os.environ.pop("VOLTTRON_HOME", None)
        else:
            os.environ["VOLTTRON_HOME"] = old_home


@pytest.fixture(scope="module", params=["curve", "null"])
def platform(request: pytest.FixtureRequest) -> Iterator[Platform]:
    """One router per module and security mode (CURVE with auth.json; NULL with allow-auth off)."""
    yield from platform_fixture(request.param)


@pytest.fixture(params=["tcp", "ipc"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _stop_agents(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop every agent a test built, whichever platform it used."""
    yield
    for value in request.node.funcargs.values():
        if isinstance(value, Platform):
            value.stop_agents()
