"""volttron9.py / volttron9_services.py: the command line, the redirections, the reports and
the statistics, at unit level (the platform itself: tests/volttron9/ in the project)."""
import json
import sys

import pytest

from viprouter_volttron import cli
from viprouter_volttron.supervisor import parse_check_config
from viprouter_volttron.volttron9 import router_argv, router_env


def test_router_argv_passes_what_the_file_does_not_give():
    argv = router_argv("/bin/viprouter", "/h", "ipc://@/h/run/vip.socket",
                       ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:2"], ["tcp://127.0.0.1:1"],
                       "inst", True, False)
    assert argv == ["/bin/viprouter", "--volttron-home", "/h", "--vip-local-address", "ipc://@/h/run/vip.socket",
                    "--vip-address", "tcp://127.0.0.1:2", "--instance-name", "inst", "--allow-auth", "true",
                    "--auth-reports"]
    argv = router_argv("v", "/h", "ipc://x", [], [], None, False, True)
    assert argv[-3:] == ["--allow-auth", "false", "--setup-mode"]
    assert "--auth-reports" not in argv and "--instance-name" not in argv


def test_check_config_parsing():
    out = "volttron-home: /h\nvip-address:   tcp://a:1 tcp://b:2\ninstance-name: x\n"
    assert parse_check_config(out) == ["tcp://a:1", "tcp://b:2"]
    assert parse_check_config("vip-address:\n") == []
    assert parse_check_config("") == []


def test_router_env_hides_systemd_variables():
    env = router_env({"NOTIFY_SOCKET": "/x", "LISTEN_FDS": "1", "WATCHDOG_USEC": "5", "VOLTTRON_HOME": "/h"})
    assert env == {"VOLTTRON_HOME": "/h"}


def test_cli_without_volttron(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_has", lambda m: False)
    assert cli.detect_flavour() is None
    assert cli.main(["viprouter-volttron"]) == 1
    assert "no VOLTTRON installed" in capsys.readouterr().err


def test_cli_modular_goes_to_the_modular_launcher(monkeypatch):
    from viprouter_volttron import modular

    monkeypatch.setattr(cli, "_has", lambda m: m == "volttron.server")
    assert cli.detect_flavour() == cli.MODULAR
    seen = []
    monkeypatch.setattr(modular, "run", lambda argv: seen.append(list(argv)) or 7)
    assert cli.main(["viprouter-volttron", "-vv"]) == 7
    assert seen == [["viprouter-volttron", "-vv"]]


# --- with VOLTTRON 9 installed ----------------------------------------------------------------


@pytest.fixture
def vmain():
    return pytest.importorskip("volttron.platform.main")


def test_flavour_is_volttron9(vmain):
    assert cli.detect_flavour() == cli.VOLTTRON9


def test_install_redirects_what_it_names(vmain, monkeypatch):
    """Every name a redirection replaces exists in VOLTTRON 9 and is replaced; the inproc
    address becomes the platform's ipc address."""
    from volttron.platform.vip.agent.core import ZMQCore

    from viprouter_volttron import volttron9, volttron9_services as svc

    for name in ("start_volttron_process", "Router", "HealthService", "AuthService", "Tracker", "ControlService"):
        monkeypatch.setattr(vmain, name, getattr(vmain, name))
    monkeypatch.setattr(ZMQCore, "__init__", ZMQCore.__init__)
    launcher = volttron9.Launcher()
    volttron9.install(vmain, launcher)
    assert vmain.Router is svc.ExternalRouter
    assert vmain.HealthService is svc.PeerlistHealthService
    assert vmain.AuthService is svc.ReportingAuthService
    assert vmain.Tracker is svc.RouterStatsTracker
    assert vmain.ControlService is svc.StatsControlService

    seen = {}

    def fake_init(self, owner, address=None, *a, **kw):
        seen["address"] = address

    monkeypatch.setattr(ZMQCore, "__init__", fake_init)
    volttron9.redirect_inproc_address(launcher)
    launcher.opts = type("Opts", (), {"vip_local_address": "ipc://@/h/run/vip.socket"})()
    ZMQCore.__init__(object(), None, "inproc://vip")
    assert seen["address"] == "ipc://@/h/run/vip.socket"
    ZMQCore.__init__(object(), None, "tcp://127.0.0.1:9")
    assert seen["address"] == "tcp://127.0.0.1:9"


def test_external_router_takes_routers_arguments(vmain):
    from viprouter_volttron.volttron9_services import ExternalRouter

    served = []
    ExternalRouter.serve = lambda self: served.append(self)
    r = ExternalRouter("ipc://@/h/run/vip.socket", ["tcp://1.2.3.4:5"], secretkey=b"s", publickey=b"p",
                       instance_name="i", tracker=None, service_notifier=None, msgdebug=None)
    r.run()
    assert served == [r] and r.allow_auth and r.instance_name == "i" and r.addresses == ["tcp://1.2.3.4:5"]
    assert not ExternalRouter("ipc://x").allow_auth


def test_parse_report(vmain):
    from viprouter_volttron.volttron9_services import parse_report

    body = {"domain": "vip", "address": "127.0.0.1", "mechanism": "CURVE", "credentials": "k", "identity": "a"}
    assert parse_report(["refused", body]) == ("refused", body)
    assert parse_report(["admitted", json.dumps(body)]) == ("admitted", body)
    assert parse_report(["other", body]) is None
    assert parse_report(["refused", "{not json"]) is None
    assert parse_report(["refused", {"domain": "vip"}]) is None
    assert parse_report("refused") is None


def test_stats_tracker_never_raises(vmain):
    from viprouter_volttron.volttron9_services import RouterStatsTracker

    t = RouterStatsTracker()
    assert "error" in t.stats
    t.bind(lambda: {"msgs_in": 3})
    assert t.stats == {"router": "viprouter", "counters": {"msgs_in": 3}}
    t.enable()
    assert t.enabled and "start" in t.stats
    t.disable()
    assert not t.enabled and "end" in t.stats
    t.bind(lambda: json.dumps({"msgs_in": 4}))
    assert t.stats["counters"] == {"msgs_in": 4}

    def boom():
        raise TimeoutError("no answer")

    t.bind(boom)
    assert "no answer" in t.stats["error"]
    t.bind(lambda: ["not", "a", "dict"])
    assert "unexpected" in t.stats["error"]
    t.hit("incoming", [], None)  # VOLTTRON's router API: a no-op here
