"""Fixtures for the black-box interop suite: start viprouter, talk to it with pyzmq.

Environment:
  VIPROUTER_INTEROP=skip   skip the whole suite (reported as skipped, not passed)
  VIPROUTER_BIN=PATH       router binary (default: <repo>/target/release/viprouter)
  VIPROUTER_CMD=TEMPLATE   run this shell command instead of the binary (harness sanity checks
                           against another router).  Placeholders: {tcp} {ipc} {home} {port} {bin}.
                           e.g. '/work/shared/bench/zmqrouter --peerlist -e {tcp} -e {ipc}'
  VIPROUTER_VERBOSE=1      pass -v to the router in every test (hostile tests always do)
  VIPROUTER_LOGCHECK=0     do not assert that hostile events were logged on stderr
"""
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from vipclient import PROBE_PREFIX, VIP, Agent

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _raise_nofile():
    """The router inherits this limit; the 10k-connection test needs it on both ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


_raise_nofile()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("VIPROUTER_INTEROP", "").lower() == "skip":
        here = Path(__file__).resolve().parent
        mark = pytest.mark.skip(reason="VIPROUTER_INTEROP=skip")
        for item in items:
            if here in Path(str(item.fspath)).resolve().parents:
                item.add_marker(mark)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def router_bin():
    return os.environ.get("VIPROUTER_BIN") or str(REPO / "target" / "release" / "viprouter")


class Router:
    """A running router process.  .tcp/.ipc endpoints, .proc, .home, stderr helpers."""

    _probe_seq = 0

    def __init__(self, extra_tcp=0, verbose=False, extra_config=""):
        # Short home path: the abstract ipc name must fit in sun_path (107 bytes).
        self.home = tempfile.mkdtemp(prefix="vipit-", dir="/tmp")
        with open(os.path.join(self.home, "config"), "w") as f:
            f.write("[volttron]\nallow-auth = False\ninstance-name = itest\n" + extra_config)
        self.port = free_port()
        self.tcp = f"tcp://127.0.0.1:{self.port}"
        self.extra_tcp = [f"tcp://127.0.0.1:{free_port()}" for _ in range(extra_tcp)]
        self.ipc = f"ipc://@{self.home}/run/vip.socket"
        self.addresses = [self.tcp] + self.extra_tcp
        self.log_path = os.path.join(self.home, "router.stderr")
        self._log = open(self.log_path, "wb")
        self.verbose = verbose or os.environ.get("VIPROUTER_VERBOSE") == "1"
        cmd_tpl = os.environ.get("VIPROUTER_CMD")
        if cmd_tpl:
            cmd = cmd_tpl.format(tcp=self.tcp, ipc=self.ipc, home=self.home, port=self.port, bin=router_bin())
            argv = ["bash", "-c", "exec " + cmd]
            self.external = True
        else:
            exe = router_bin()
            if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
                self._log.close()
                shutil.rmtree(self.home, ignore_errors=True)
                pytest.fail(
                    f"router binary not found or not executable: {exe}\n"
                    "build it with `cargo build --release`, or set VIPROUTER_BIN=PATH, "
                    "or VIPROUTER_INTEROP=skip to skip this suite",
                    pytrace=False,
                )
            argv = [exe, "--volttron-home", self.home]
            for a in self.addresses:
                argv += ["--vip-address", a]
            if self.verbose:
                argv.append("-v")
            self.external = False
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, start_new_session=True
        )
        self.pid = self.proc.pid
        self.stopped = False

    # ------------------------------------------------------------ stderr
    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_mark(self):
        return os.path.getsize(self.log_path)

    def log_since(self, mark):
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, since=0, timeout=3.0):
        """First match of regex `pattern` in stderr written after `since`, or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_since(since))
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    # ------------------------------------------------------------ process
    def alive(self):
        return self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), f"router died (rc={self.proc.returncode}); stderr tail:\n{self.log_tail()}"

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def wait_ready(self, ctx):
        deadline = time.monotonic() + READY_TIMEOUT
        for ep in (self.tcp, self.ipc):
            Router._probe_seq += 1
            ident = PROBE_PREFIX + b"%d-%d" % (os.getpid(), Router._probe_seq)
            probe = Agent(ctx, ep, ident)
            try:
                probe.send(b"", b"hello", b"hello", msgid=b"probe")
                while True:
                    if not self.alive():
                        pytest.fail(
                            f"router exited during start-up (rc={self.proc.returncode}); argv={self.argv}\n"
                            f"stderr:\n{self.log_tail()}",
                            pytrace=False,
                        )
                    left = deadline - time.monotonic()
                    if left <= 0:
                        pytest.fail(
                            f"router not ready on {ep}: no hello welcome within {READY_TIMEOUT} s; "
                            f"argv={self.argv}\nstderr:\n{self.log_tail()}",
                            pytrace=False,
                        )
                    f = probe.poll_recv(min(left, 0.2), keep_noise=True)
                    if f and len(f) >= 6 and f[4] == b"hello" and f[5] == b"welcome":
                        break
                # leave cleanly so the probe does not linger in the peer set
                probe.sock.setsockopt(zmq.LINGER, 500)
                probe.send(b"", b"agentstop", ident)
            finally:
                probe.sock.close(linger=500)
                probe.closed = True

    def stop(self):
        """SIGTERM; returns (rc, error-text or None)."""
        if self.stopped:
            return self.proc.returncode, None
        self.stopped = True
        err = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                err = f"router did not exit within {STOP_TIMEOUT} s of SIGTERM"
        self._log.close()
        rc = self.proc.returncode
        if err is None and rc != 0:
            err = f"router exit code {rc} (expected 0)"
        return rc, err

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def router_factory(ctx):
    """start(extra_tcp=0, verbose=False, extra_config="") -> ready Router; all are SIGTERMed at
    teardown (exit 0). `extra_config` is appended to the config file (e.g. a `[viprouter]` section)."""
    started = []

    def start(extra_tcp=0, verbose=False, extra_config=""):
        r = Router(extra_tcp=extra_tcp, verbose=verbose, extra_config=extra_config)
        started.append(r)
        r.wait_ready(ctx)
        return r

    yield start
    errors = []
    for r in started:
        rc, err = r.stop()
        if err:
            errors.append(f"{err}; stderr tail:\n{r.log_tail(20)}")
        else:
            r.cleanup()
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def router(router_factory):
    return router_factory()


@pytest.fixture
def agents(ctx, router):
    """make(identity, endpoint=router.tcp, **sockopts) -> Agent; closed before the router stops."""
    made = []

    def make(identity, endpoint=None, sockopts=None, sock_type=zmq.DEALER):
        a = Agent(ctx, endpoint or router.tcp, identity, sockopts=sockopts, sock_type=sock_type)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


@pytest.fixture(params=["tcp", "ipc"])
def ep(request, router):
    """The endpoint under test: the TCP vip-address or the abstract ipc local address."""
    return getattr(router, request.param)
