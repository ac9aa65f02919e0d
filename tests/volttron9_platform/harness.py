"""A whole VOLTTRON 9.0.4 platform on viprouter, driven with VOLTTRON's own `vctl` and agent
library (issue #10, deliverable 5(b)): the `Platform` harness.

Environment (set by `make volttron9-platform`):
  VT9_VENV       the `make volttron9` venv (VOLTTRON 9.0.4 + viprouter-volttron)
  VT9_SRC        the unpacked VOLTTRON tree (examples/ListenerAgent)
  VIPROUTER_BIN  the release binary
As root (CI), `VIPROUTER_VOLTTRON_ALLOW_ROOT=1` is given to the platform and to vctl: the
opt-in answer to VOLTTRON's root check (python/viprouter_volttron/rootcheck.py).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = Path(os.environ.get("VT9_VENV", REPO / ".venv-volttron9"))
SRC = Path(os.environ.get("VT9_SRC", REPO / "volttron-9.0.4"))
PY = str(VENV / "bin" / "python")
START_TIMEOUT = 60.0


def wait_for(pred, timeout, what, interval=0.5):
    """Poll `pred` until it returns something true (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out ({timeout} s) waiting for {what}"
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """Direct children of `pid` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def exe_name(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Platform:
    """`viprouter-volttron` on a fresh VOLTTRON_HOME."""

    def __init__(self, *extra_args, config_extra="", env=None):
        if not Path(PY).exists():
            pytest.skip(f"no VOLTTRON 9 venv at {VENV}: run `make volttron9`")
        # Short path: the abstract ipc name must fit in sun_path.
        self.home = tempfile.mkdtemp(prefix="vt9p-", dir="/tmp")
        os.chmod(self.home, 0o700)
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        with open(os.path.join(self.home, "config"), "w") as f:
            f.write(f"[volttron]\nmessage-bus = zmq\nvip-address = {self.address}\ninstance-name = vt9test\n"
                    + config_extra)
        self.log = os.path.join(self.home, "platform.log")
        self.env = dict(os.environ, VOLTTRON_HOME=self.home, HOME=self.home)
        if os.getuid() == 0:
            self.env["VIPROUTER_VOLTTRON_ALLOW_ROOT"] = "1"
        self.env.pop("NOTIFY_SOCKET", None)
        self.out = open(os.path.join(self.home, "platform.out"), "wb")
        self.proc = subprocess.Popen([str(VENV / "bin" / "viprouter-volttron"), "-v", "-l", self.log, *extra_args],
                                     env=dict(self.env, **(env or {})), stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
                                     start_new_session=True)
        pid_file = os.path.join(self.home, "VOLTTRON_PID")
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(pid_file):
            assert self.proc.poll() is None, f"platform exited {self.proc.returncode}: {self.tail()}"
            assert time.monotonic() < deadline, f"no VOLTTRON_PID after {START_TIMEOUT} s: {self.tail()}"
            time.sleep(0.2)
        with open(os.path.join(self.home, "keystore")) as f:
            self.keystore = json.load(f)

    def router_pid(self):
        pids = [p for p in children(self.proc.pid) if exe_name(p) == "viprouter"]
        assert len(pids) == 1, f"expected one viprouter child of {self.proc.pid}, got {pids}"
        return pids[0]

    def vctl(self, *args, timeout=90, check=True):
        r = subprocess.run([PY, "-m", "viprouter_volttron.rootcheck", "vctl", *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"vctl {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def client(self, *args, timeout=60):
        return subprocess.run([PY, str(HERE / "vt9_client.py"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def rpc(self, peer, method, *args):
        r = self.client("rpc", self.address, peer, method, json.dumps(list(args)))
        assert r.returncode == 0, f"rpc {peer}.{method}: {r.stdout}\n{r.stderr[-3000:]}"
        return json.loads(r.stdout.strip().splitlines()[-1])

    def probe(self, identity, keys, seconds=4.0, stay=0.0):
        """Connect an unmodified VOLTTRON agent with `keys` ({public, secret}); True if welcomed."""
        r = self.client("probe", self.address, identity, keys["public"], keys["secret"], self.keystore["public"],
                        str(seconds), str(stay))
        assert r.stdout.strip() in ("CONNECTED", "REFUSED"), f"probe: {r.stdout}\n{r.stderr[-3000:]}"
        return r.stdout.strip() == "CONNECTED"

    def keypair(self):
        r = self.vctl("auth", "keypair")
        return json.loads(r.stdout)

    def tail(self, n=4000):
        parts = []
        for name in ("platform.out", "platform.log", "viprouter.log"):
            p = os.path.join(self.home, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    parts.append(f"--- {name}\n" + f.read()[-n:])
        return "\n".join(parts)

    def read(self, name):
        with open(os.path.join(self.home, name), errors="replace") as f:
            return f.read()

    def stop(self):
        """Whatever happened, leave no process behind (the launcher's group holds the router and
        the agents)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()
        if os.environ.get("VT9_KEEP") != "1":
            shutil.rmtree(self.home, ignore_errors=True)
