"""Unit tests of ``viprouter_volttron.modular`` (the platform end to end is
``tests/volttron11/test_platform.py``). The redirections are checked against the installed
volttron-core (``make volttron11``), in fresh interpreters where import order matters."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from viprouter_volttron import modular
from viprouter_volttron.supervisor import parse_check_config

volttron = pytest.importorskip("volttron.server.server_options", reason="modular VOLTTRON is not installed")


def test_router_argv_adds_only_addresses_the_config_file_lacks() -> None:
    argv = modular.router_argv("/bin/vr", "/vh", ["tcp://1.2.3.4:1", "tcp://1.2.3.4:2", "tcp://1.2.3.4:2"],
                               ["tcp://1.2.3.4:1"])
    assert argv == ["/bin/vr", "--volttron-home", "/vh", "--vip-address", "tcp://1.2.3.4:2"]


def test_parse_check_config() -> None:
    out = "volttron-home: /vh\nlocal address: ipc://@/vh/run/vip.socket\nvip-address:   tcp://a:1 tcp://b:2\n"
    assert parse_check_config(out) == ["tcp://a:1", "tcp://b:2"]
    assert parse_check_config("nothing") == []


def test_tcp_bind_address() -> None:
    assert modular.tcp_bind_address("tcp://127.0.0.1:22916") == (socket.AF_INET, ("127.0.0.1", 22916))
    assert modular.tcp_bind_address("tcp://*:1") == (socket.AF_INET, ("0.0.0.0", 1))
    assert modular.tcp_bind_address("tcp://[::1]:2") == (socket.AF_INET6, ("::1", 2, 0, 0))
    for unusable in ("tcp://localhost:1", "tcp://1.2.3.4", "tcp://1.2.3.4:1?server=NULL", "ipc:///x", "tcp://:1"):
        assert modular.tcp_bind_address(unusable) is None, unusable


def test_router_env() -> None:
    env = modular.router_env({"A": "1", "NOTIFY_SOCKET": "/run/x", "LISTEN_FDS": "9", "WATCHDOG_USEC": "5"}, "@n", 2)
    assert env == {"A": "1", "NOTIFY_SOCKET": "@n", "LISTEN_FDS": "2"}
    assert "LISTEN_FDS" not in modular.router_env({}, "@n", 0)


def test_ready_datagram() -> None:
    assert modular.is_ready(b"READY=1\nSTATUS=routing")
    assert not modular.is_ready(b"RELOADING=1\nMONOTONIC_USEC=1")
    assert not modular.is_ready(b"NOTREADY=1")


CHILD = textwrap.dedent(
    """
    import json, os, socket
    out = {"pid_ok": os.environ.get("LISTEN_PID") == str(os.getpid()), "n": os.environ.get("LISTEN_FDS"), "fds": []}
    for fd in range(3, 3 + int(out["n"])):
        s = socket.socket(fileno=os.dup(fd))
        out["fds"].append([s.family.name, s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), str(s.getsockname())])
    print(json.dumps(out))
    """
)


def test_held_listeners_reach_the_child_as_sd_listen_fds(tmp_path: Path) -> None:
    """What viprouter gets: fds 3, 4 listening (abstract ipc, then tcp), LISTEN_PID = its pid
    (set by the sh exec wrapper), LISTEN_FDS = 2."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    held = modular.HeldListeners.bind(str(tmp_path), [f"tcp://127.0.0.1:{port}"])
    assert held is not None
    try:
        spawn = modular.listen_fds_spawn(held.fds(), subprocess.Popen)
        log = open(tmp_path / "out", "wb")
        child = spawn([sys.executable, "-c", CHILD], dict(os.environ, LISTEN_FDS="2"), log)
        assert child.wait(30) == 0
        log.close()
        got = json.loads((tmp_path / "out").read_text())
        assert got["pid_ok"] and got["n"] == "2"
        assert [f[:2] for f in got["fds"]] == [["AF_UNIX", 1], ["AF_INET", 1]]
        assert f"{tmp_path}/run/vip.socket" in got["fds"][0][2]
        assert str(port) in got["fds"][1][2]
        # The sockets stay with the launcher: a second router start gets them again.
        with pytest.raises(OSError):
            modular.HeldListeners.bind(str(tmp_path), [f"tcp://127.0.0.1:{port}"])
    finally:
        held.close()
    assert modular.HeldListeners.bind(str(tmp_path), ["tcp://example.org:1"]) is None


def run_fresh(code: str, tmp_path: Path) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, VOLTTRON_HOME=str(tmp_path / "vh"), HOME=str(tmp_path))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_service_address_becomes_the_ipc_address(tmp_path: Path) -> None:
    r = run_fresh(
        """
        from pathlib import Path
        import os
        from viprouter_volttron import modular
        modular.redirect_service_address()
        modular.redirect_service_address()  # idempotent
        from volttron.server.server_options import ServerOptions
        home = Path(os.environ["VOLTTRON_HOME"])
        print(ServerOptions(volttron_home=home).service_address)
        print(ServerOptions(volttron_home=home, service_address="inproc://other").service_address)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines == [f"ipc://@{tmp_path}/vh/run/vip.socket", "inproc://other"]


def test_the_platform_resolves_the_viprouter_bus_even_after_lib_zmq_registers(tmp_path: Path) -> None:
    """Resolving MessageBus builds ours (which refuses a home without platform.json before
    starting anything), also once lib-zmq's ZmqMessageBus is registered too."""
    r = run_fresh(
        """
        import os
        from pathlib import Path
        from viprouter_volttron import modular
        bus = modular.register_bus()
        from volttron.server.containers import service_repo
        from volttron.server.server_options import ServerOptions
        from volttron.types import MessageBus
        service_repo.add_instance(ServerOptions, ServerOptions(volttron_home=Path(os.environ["VOLTTRON_HOME"])))
        import volttron.messagebus.zmq  # lib-zmq registers ZmqMessageBus
        try:
            service_repo.resolve(MessageBus)
        except Exception as e:
            print("ERROR", e)
        try:
            modular.register_bus()
        except RuntimeError as e:
            print("LATE", e)
        """,
        tmp_path,
    )
    assert "platform.json missing: viprouter would not see a modular home" in r.stdout, (r.stdout, r.stderr[-2000:])
    assert "LATE lib-zmq's message bus is already registered" in r.stdout
