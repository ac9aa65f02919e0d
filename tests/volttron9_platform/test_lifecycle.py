"""`viprouter-volttron`'s process lifecycle and switches, each on its own platform: setup mode,
the platform stopping first (SIGINT, SIGKILL), a router that cannot start, the root check."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import VENV, Platform, alive, wait_for


def test_setup_mode_admits_and_records_new_keys():
    """`volttron --setup-mode`: a key auth.json does not know is admitted, and platform.auth
    records it in auth.json as VOLTTRON's ZAP handler does (auth_zmq.py:274-288)."""
    p = Platform("--setup-mode")
    try:
        keys = p.keypair()
        assert p.probe("stranger", keys), "setup mode admits an unknown key"

        def recorded():
            allow = json.loads(p.read("auth.json"))["allow"]
            return [e for e in allow if e.get("credentials") == keys["public"]]

        (e,) = wait_for(recorded, 15, "the setup-mode entry in auth.json")
        assert e["comments"] == "Auth entry added in setup mode" and e["address"] == "127.0.0.1", e
        assert "--setup-mode" in p.read("viprouter.log") or "setup mode" in p.read("viprouter.log")
        assert p.probe("stranger", keys), "and admitted again"
    finally:
        p.stop()


def test_sigint_to_the_platform_stops_the_router():
    p = Platform()
    try:
        router = p.router_pid()
        p.proc.send_signal(signal.SIGINT)
        assert p.proc.wait(60) == 0, p.tail()
        wait_for(lambda: not alive(router), 10, "viprouter to exit with the platform")
        assert "stopped (signal)" in p.read("viprouter.log")
    finally:
        p.stop()


def test_killed_platform_takes_the_router_with_it():
    """SIGKILL leaves no atexit: PR_SET_PDEATHSIG stops the router."""
    p = Platform()
    try:
        router = p.router_pid()
        p.proc.kill()
        p.proc.wait(10)
        wait_for(lambda: not alive(router), 10, "viprouter to exit after the platform was killed")
    finally:
        p.stop()


def test_router_that_cannot_start_stops_the_platform_with_status_1():
    """A configuration viprouter refuses (exit 2, never retried): the platform stops and the
    command exits 1 (VOLTTRON's own exits 0 when its router thread dies), the reason in the
    logs."""
    home = tempfile.mkdtemp(prefix="vt9p-", dir="/tmp")
    os.chmod(home, 0o700)
    with open(os.path.join(home, "config"), "w") as f:
        f.write("[volttron]\nmessage-bus = zmq\ninstance-name = broken\n[viprouter]\nmax-connections = lots\n")
    env = dict(os.environ, VOLTTRON_HOME=home, HOME=home)
    if os.getuid() == 0:
        env["VIPROUTER_VOLTTRON_ALLOW_ROOT"] = "1"
    log = os.path.join(home, "platform.log")
    r = subprocess.run([str(VENV / "bin" / "viprouter-volttron"), "-l", log], env=env, capture_output=True,
                       timeout=120)
    assert r.returncode == 1, r
    with open(log) as f:
        text = f.read()
    assert "configuration error" in text and "not restarted" in text, text[-2000:]
    with open(os.path.join(home, "viprouter.log")) as f:
        assert "max-connections: expected a whole number" in f.read()


@pytest.mark.skipif(os.getuid() != 0, reason="the root check needs uid 0")
def test_root_is_refused_like_volttron_without_the_opt_in():
    env = {k: v for k, v in os.environ.items() if k != "VIPROUTER_VOLTTRON_ALLOW_ROOT"}
    env["VOLTTRON_HOME"] = tempfile.mkdtemp(prefix="vt9p-", dir="/tmp")
    ours = subprocess.run([str(VENV / "bin" / "viprouter-volttron")], env=env, capture_output=True, text=True,
                          timeout=60)
    theirs = subprocess.run([str(VENV / "bin" / "volttron")], env=env, capture_output=True, text=True, timeout=60)
    assert ours.returncode == theirs.returncode == 77
    assert "refusing to run as root" in ours.stderr
    assert ours.stderr.replace("viprouter-volttron", "volttron") == theirs.stderr


def test_systemd_notify_ready_and_stopping(tmp_path):
    """Type=notify (systemd/viprouter-volttron.service): READY=1 only once VOLTTRON_PID exists,
    STOPPING=1 at the end; the router and the agents never get NOTIFY_SOCKET."""
    import socket

    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    p = Platform(env={"NOTIFY_SOCKET": path})
    try:
        msgs = [sock.recv(4096).decode()]
        assert msgs[0].startswith("READY=1"), msgs
        assert os.path.exists(os.path.join(p.home, "VOLTTRON_PID"))
        with open(f"/proc/{p.router_pid()}/environ", "rb") as f:
            assert b"NOTIFY_SOCKET" not in f.read()
        p.vctl("shutdown", "--platform")
        assert p.proc.wait(60) == 0
        msgs.append(sock.recv(4096).decode())
        assert msgs[1] == "STOPPING=1", msgs
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            msgs.append(sock.recv(4096).decode())  # nobody else spoke for the unit
    finally:
        sock.close()
        p.stop()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    unit = (Path(__file__).resolve().parents[2] / "systemd" / "viprouter-volttron.service").read_text()
    (tmp_path / "viprouter-volttron.service").write_text(unit.replace("/opt/volttron/.venv-volttron9", str(VENV)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "viprouter-volttron.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
