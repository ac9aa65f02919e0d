"""Platform level: modular VOLTTRON's own platform with viprouter as its bus
(``viprouter-volttron``, ``python/viprouter_volttron/modular.py``), as an unprivileged user
(the platform refuses root), in ``--dev`` mode from a folder holding a ``pyproject.toml`` (no
poetry run against the network at start). Everything is driven with modular's ``vctl``.

The tests of this module share one platform and run in order.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness


@pytest.fixture(scope="module")
def platform() -> Iterator[harness.Platform]:
    harness.ensure_user()
    harness.check_user_can_run_venv()
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="viprouter-v11-"))
    port = harness.free_port()
    home = root / "home"
    # A fresh home, as a new user has: the platform creates its credentials and authz.json.
    harness.write_config(home, ["instance-name = v11", f"address = tcp://127.0.0.1:{port}"])
    p = harness.Platform(root, home, on_viprouter=True)
    p.port = port  # type: ignore[attr-defined]
    try:
        p.start()
        yield p
    finally:
        p.stop()
        harness.rmtree(root)


def router_log(p: harness.Platform) -> str:
    return (p.home / "viprouter.log").read_text(errors="replace")


def router_pid(p: harness.Platform) -> int:
    r = subprocess.run(["pgrep", "-u", harness.USER, "-x", "viprouter"], capture_output=True, text=True)
    pids = [int(x) for x in r.stdout.split()]
    assert len(pids) == 1, (pids, p.tail())
    return pids[0]


def test_the_router_serves_the_modular_home_with_held_sockets(platform: harness.Platform) -> None:
    log = router_log(platform)
    assert "modular VOLTTRON (credentials_store, authz.json)" in log
    assert "identity binding on" in log
    assert "socket activation: 2 listeners" in log, log[-2000:]
    # The four services connected over ipc with their own keys.
    assert "Connected to platform: identity: platform.control" in platform.log.read_text(errors="replace")


def test_vctl_status(platform: harness.Platform) -> None:
    r = platform.vctl("status")
    assert r.returncode == 0 and "No installed Agents found" in r.stdout + r.stderr, (r.stdout, r.stderr)


def test_viprouter_stats_reads_the_modular_home(platform: harness.Platform) -> None:
    # No --serverkey or --key-file: platform.json's server key and vctl's control.connection.json,
    # under that file's identity (the router binds it), as modular's own vctl finds them.
    argv = platform._as_user([str(harness.BIN), "--volttron-home", str(platform.home), "stats", "--json"])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    stats = json.loads(r.stdout)
    assert stats["peers"] >= 4, stats  # the four services, and us
    assert "control.connection" in [t["identity"] for t in stats["top_talkers"]], stats


def test_vctl_auth_add_is_admitted_live(platform: harness.Platform) -> None:
    r = platform.vctl("auth", "add", "agent.c")
    assert r.returncode == 0 and "added credentials for agent.c" in r.stdout.lower(), (r.stdout, r.stderr)
    obs = harness.client("hello", platform.home, "--identity", "agent.c",
                         "--address", f"tcp://127.0.0.1:{platform.port}")  # type: ignore[attr-defined]
    assert obs["hello"][2] == "agent.c", obs


def test_vctl_config_store_and_get(platform: harness.Platform) -> None:
    cfg = platform.root / "cfg1.json"
    cfg.write_text('{"x": 1, "y": [2, "z"]}')
    os.chmod(cfg, 0o644)
    r = platform.vctl("config", "store", "agent.c", "cfg1", str(cfg), "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = platform.vctl("config", "get", "agent.c", "cfg1")
    assert r.returncode == 0 and '"x": 1' in r.stdout and '"z"' in r.stdout, (r.stdout, r.stderr)


def heartbeats(p: harness.Platform) -> int:
    return p.log.read_text(errors="replace").count("Topic: heartbeat/listener1")


def test_install_and_start_the_pinned_listener(platform: harness.Platform) -> None:
    """``vctl install`` runs ``poetry add`` in the platform's project (``aip.py:758``); the
    project pins the venv, so nothing is installed — the pinned volttron-listener is used.
    poetry still resolves against PyPI, and vctl gives each remote call 20 s whatever
    ``--timeout`` says (``client/commands/connection.py`` ``call``): when the resolution takes
    longer than vctl's ``--timeout``, vctl gives up (status 75) while the platform finishes the
    install; the test then waits for it and starts the agent itself."""
    r = platform.vctl("install", "volttron-listener==2.0.0rc3", "--vip-identity", "listener1", "--start",
                      "--agent-start-time", "60", "--timeout", "600", timeout=620)
    if r.returncode == 75 and "operation timed out" in r.stderr:
        row = harness.wait_for(lambda: next((line for line in platform.vctl("status").stdout.splitlines()
                                             if "listener1" in line), None), 300, "the install to finish", every=2)
        r = platform.vctl("start", row.split()[0])  # the agent's UUID prefix
        assert r.returncode == 0, (r.stdout, r.stderr)
    else:
        assert r.returncode == 0 and "installed and started" in r.stdout, (r.stdout, r.stderr, platform.tail())
    last = {"status": ""}

    def running() -> bool:
        r = platform.vctl("status")
        last["status"] = r.stdout + r.stderr
        return any("listener1" in line and "running" in line and "GOOD" in line for line in r.stdout.splitlines())

    try:
        harness.wait_for(running, 240, "listener1 running GOOD", every=2)
    except AssertionError as e:
        raise AssertionError(f"{e}; last vctl status: {last['status']!r}\n{platform.tail()}") from None
    harness.wait_for(lambda: heartbeats(platform) >= 1, 30, "the listener receiving its own heartbeat")


def test_the_platform_and_its_agents_survive_a_router_crash(platform: harness.Platform) -> None:
    """The launcher holds the listening sockets: a viprouter killed with SIGKILL is restarted
    at once and every connection attempt meanwhile waits in the kernel's queue, so modular's
    services and agents (which give up after ~0.5 s of refused connects) stay."""
    old = router_pid(platform)
    before = heartbeats(platform)
    os.kill(old, signal.SIGKILL)
    harness.wait_for(lambda: router_log(platform).count("viprouter 0.1.0 ready") >= 2, 20, "a restarted viprouter")
    assert router_pid(platform) != old
    r = platform.vctl("status")
    assert r.returncode == 0 and "listener1" in r.stdout and "running" in r.stdout, (r.stdout, r.stderr)
    harness.wait_for(lambda: heartbeats(platform) > before, 30, "a heartbeat through the new router")


def test_vctl_shutdown_platform_stops_everything(platform: harness.Platform) -> None:
    """``quit`` from platform.control is honoured (it hung on error 93 before): viprouter exits
    0, the platform stops its services and agents and exits 0."""
    t0 = time.monotonic()
    r = platform.vctl("shutdown", "--platform", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert platform.proc is not None
    assert platform.proc.wait(30) == 0, platform.tail()
    elapsed = time.monotonic() - t0
    assert "quit from control" in router_log(platform)
    harness.wait_for(lambda: not platform.user_pids(), 15, "no process of the test user left")
    print(f"vctl shutdown --platform: platform gone after {elapsed:.1f} s")


def test_sigint_stops_the_platform_and_the_router(scratch: Path) -> None:
    """Ctrl-C: the platform sends quit as platform.control (run_server.py:541) and waits for
    the bus; with modular's own bus on viprouter before this work, it hung."""
    harness.ensure_user()
    home = scratch / "home"
    harness.write_config(home, ["instance-name = v11b"])
    p = harness.Platform(scratch, home, on_viprouter=True).start()
    try:
        assert p.proc is not None
        os.killpg(p.proc.pid, signal.SIGINT)
        assert p.proc.wait(30) == 0, p.tail()
        harness.wait_for(lambda: not p.user_pids(), 15, "no process of the test user left")
    finally:
        p.stop()


def test_the_platform_refuses_root(scratch: Path) -> None:
    """modular's own check (run_server.py:615), kept by the launcher."""
    env = dict(os.environ, VOLTTRON_HOME=str(scratch / "home"), VIPROUTER_BIN=str(harness.BIN))
    r = subprocess.run([str(harness.VENV / "bin" / "viprouter-volttron"), "--dev"], cwd=scratch, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 77 and "refusing to run as root" in r.stderr, (r.returncode, r.stderr[-500:])
