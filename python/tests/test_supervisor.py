"""supervisor.py: finding the binary, clean exit vs crash, back-off, giving up, stop,
PR_SET_PDEATHSIG, the log file."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from viprouter_volttron.supervisor import (
    Outcome,
    RestartPolicy,
    Supervisor,
    describe,
    find_binary,
)


def executable(path):
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def test_find_binary_order(tmp_path):
    a, b, c = (tmp_path / d for d in ("a", "b", "c"))
    for d in (a, b, c):
        d.mkdir()
    in_a, in_b, in_c = (executable(d / "viprouter") for d in (a, b, c))
    env = {"PATH": str(c)}
    # Next to the script first, then next to the interpreter, then PATH.
    assert find_binary(env, str(a / "script"), str(b / "python")) == in_a
    assert find_binary(env, "script", str(b / "python")) == in_b
    assert find_binary(env, "script", "python") == in_c
    # A symlinked script finds the binary next to its target too.
    (tmp_path / "links").mkdir()
    os.symlink(str(a / "script"), str(tmp_path / "links" / "volttron"))
    assert find_binary({"PATH": ""}, str(tmp_path / "links" / "volttron"), "python") == in_a
    # VIPROUTER_BIN wins, and must be executable.
    assert find_binary(dict(env, VIPROUTER_BIN=in_b), str(a / "script"), "python") == in_b
    with pytest.raises(FileNotFoundError, match="VIPROUTER_BIN"):
        find_binary(dict(env, VIPROUTER_BIN=str(tmp_path / "nope")), "s", "p")
    with pytest.raises(FileNotFoundError, match="viprouter not found"):
        find_binary({"PATH": ""}, "script", "python")


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_clean_exit_stops_without_restart(fake_router, tmp_path):
    log = tmp_path / "router.log"
    r = Supervisor([fake_router("print('hello from the router'); sys.exit(0)\n")], os.environ, str(log)).run()
    assert (r.outcome, r.returncode, r.restarts) == (Outcome.CLEAN_EXIT, 0, 0)
    text = log.read_text()
    assert "--- viprouter-volttron: starting" in text and "hello from the router" in text


def test_crash_is_restarted_then_clean_exit_ends(fake_router):
    # start 1: SIGKILL itself; start 2: SIGSEGV; start 3: exits 1; start 4: clean.
    body = """
    n = bump()
    if n == 1: os.kill(os.getpid(), signal.SIGKILL)
    if n == 2: os.kill(os.getpid(), signal.SIGSEGV)
    if n == 3: sys.exit(1)
    sys.exit(0)
    """
    fc = FakeClock()
    sup = Supervisor([fake_router(body)], os.environ, None, sleep=fc.sleep, clock=fc.clock)
    r = sup.run()
    assert r.outcome is Outcome.CLEAN_EXIT
    assert r.statuses == [-signal.SIGKILL, -signal.SIGSEGV, 1, 0]
    assert r.restarts == 3 and sup.starts == 4
    # Back-off: at once, then 0.25 s, 0.5 s (all were quick failures: the fake clock stood still).
    assert fc.sleeps == [0.25, 0.5]


def test_quick_failures_give_up(fake_router):
    fc = FakeClock()
    policy = RestartPolicy(max_quick_failures=3)
    r = Supervisor([fake_router("bump(); sys.exit(1)\n")], os.environ, None, policy, sleep=fc.sleep,
                   clock=fc.clock).run()
    assert r.outcome is Outcome.GAVE_UP
    assert r.statuses == [1, 1, 1, 1]  # the first start and 3 restarts
    assert fc.sleeps == [0.25, 0.5]


def test_long_runs_reset_the_back_off(fake_router):
    fc = FakeClock()

    # Each run "lasts" 30 s on the fake clock: crashes are never quick, so never given up.
    def clock():
        fc.now += 30.0
        return fc.now

    body = "n = bump()\nsys.exit(1 if n < 8 else 0)\n"
    r = Supervisor([fake_router(body)], os.environ, None, RestartPolicy(max_quick_failures=2), sleep=fc.sleep,
                   clock=clock).run()
    assert r.outcome is Outcome.CLEAN_EXIT and r.restarts == 7
    assert fc.sleeps == []  # every restart at once


def test_configuration_error_is_not_retried(fake_router):
    r = Supervisor([fake_router("bump(); sys.exit(2)\n")], os.environ, None).run()
    assert (r.outcome, r.statuses) == (Outcome.GAVE_UP, [2])


def test_missing_binary_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        Supervisor([str(tmp_path / "nothing")], os.environ, None).run()


def test_stop_terminates_and_run_reports_stopped(fake_router):
    import threading

    body = """
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    open(COUNTER + '.up', 'w').close()
    time.sleep(60)
    """
    path = fake_router(body)
    sup = Supervisor([path], os.environ, None)
    result = []
    t = threading.Thread(target=lambda: result.append(sup.run()))
    t.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(os.path.dirname(path), "starts.up")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sup.pid is not None
    sup.request_stop()
    t.join(10)
    assert result and result[0].outcome is Outcome.STOPPED and result[0].returncode == 0


def test_stop_kills_a_router_that_ignores_sigterm(fake_router):
    body = """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
    """
    sup = Supervisor([fake_router(body)], os.environ, None)
    child = sup._start()
    sup._child = child
    time.sleep(0.5)
    assert sup.stop(timeout=0.5) == -signal.SIGKILL


def test_router_dies_with_its_parent(fake_router, tmp_path):
    """PR_SET_PDEATHSIG: a parent killed with SIGKILL (no atexit) takes the router with it."""
    pidfile = tmp_path / "router.pid"
    router = fake_router(f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        from viprouter_volttron.supervisor import popen_spawn
        popen_spawn([{router!r}], dict(os.environ), None)
        time.sleep(60)
        """)], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "router did not start"
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # a zombie reparented to init is reaped by it; to be sure, look at its state
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        assert time.monotonic() < deadline, "the router outlived its parent"
        time.sleep(0.05)


def test_describe():
    assert describe(0) == "exit status 0"
    assert describe(-9) == "killed by SIGKILL"
    assert describe(-200) == "killed by signal 200"
