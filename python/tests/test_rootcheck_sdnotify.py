"""rootcheck.py (opt-in only) and sdnotify.py."""
import os
import socket

import pytest

from viprouter_volttron import rootcheck, sdnotify


def test_root_answer_is_opt_in(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert not rootcheck.allowed({})
    assert not rootcheck.apply_if_allowed({})
    assert os.getuid() == 0, "nothing changes without the opt-in"
    assert not rootcheck.apply_if_allowed({rootcheck.ENV: "yes"}), "only the exact value 1 opts in"
    assert rootcheck.apply_if_allowed({rootcheck.ENV: "1"})
    assert os.getuid() == rootcheck.UNPRIVILEGED_UID, "the next call is answered"
    assert os.getuid() == 0, "and only that one"


def test_root_answer_does_nothing_for_other_users(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    assert not rootcheck.apply_if_allowed({rootcheck.ENV: "1"})
    assert os.getuid() == 1000


def test_console_script_runner_needs_a_known_script(capsys):
    assert rootcheck.run_console_script([]) == 2
    assert rootcheck.run_console_script(["no-such-script-here"]) == 2


@pytest.mark.parametrize("abstract", [False, True])
def test_notify(tmp_path, abstract):
    name = f"@vt9-notify-{os.getpid()}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name[1:] if abstract else name)
        env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1", "OTHER": "x"}
        addr = sdnotify.take_socket(env)
        assert addr == name and env == {"OTHER": "x"}
        assert sdnotify.notify(addr, "READY=1")
        assert s.recv(100) == b"READY=1"
    assert not sdnotify.notify(None, "READY=1")
    assert not sdnotify.notify(str(tmp_path / "absent"), "READY=1")
