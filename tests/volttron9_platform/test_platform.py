"""`viprouter-volttron`: a VOLTTRON 9.0.4 platform on viprouter, through `vctl` and unmodified
VOLTTRON agents (issue #10, deliverables 3 and 5(b)). The tests of this module share one
platform and run in file order; the last one shuts it down with `vctl shutdown --platform`.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from harness import HERE, PY, SRC, alive, children, exe_name, wait_for

SERVICES = {"config.store", "control", "platform.auth", "platform.health", "keydiscovery"}


def peers(platform):
    return set(platform.vctl("peerlist").stdout.split())


def test_status_peerlist_and_every_service_admitted(platform):
    """Every built-in service reaches the router over ipc with CURVE, none refused
    (platform.health and the others admitted without hand edits)."""
    assert SERVICES <= peers(platform)
    platform.vctl("status")
    router = platform.router_pid()
    assert alive(router)
    log = platform.read("viprouter.log")
    assert "ready" in log and "(CURVE)" in log
    assert "refused" not in log, log
    assert "platform.health" not in platform.read("auth.json"), "admitted from its keystore, no auth.json edit"


def test_listener_install_start_stop_remove(platform):
    platform.vctl("install", str(SRC / "examples" / "ListenerAgent"), "--tag", "listener", "--vip-identity",
                  "listener", timeout=180)
    assert "listener" in platform.vctl("status").stdout
    platform.vctl("start", "--tag", "listener")
    wait_for(lambda: "listener" in peers(platform), 30, "the listener in the peer list")
    # The listener subscribes to everything and logs what it receives: its own heartbeats.
    wait_for(lambda: "Topic: heartbeat/listener" in platform.read("platform.log"), 30, "a heartbeat delivery")
    status = platform.vctl("status").stdout
    assert re.search(r"listener.*running", status), status
    health = platform.vctl("health", "listener").stdout
    assert "GOOD" in health, health
    platform.vctl("stop", "--tag", "listener")
    wait_for(lambda: "listener" not in peers(platform), 30, "the listener to leave the peer list")
    assert not re.search(r"listener.*running", platform.vctl("status").stdout)
    platform.vctl("remove", "--tag", "listener", "--force")
    assert "listener" not in platform.vctl("status").stdout


def test_config_store_and_get(platform, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"setting": 42, "name": "vt9"}))
    platform.vctl("config", "store", "some.agent", "settings", str(cfg), "--json")
    got = platform.vctl("config", "get", "some.agent", "settings").stdout
    assert json.loads(got) == {"setting": 42, "name": "vt9"}
    assert "settings" in platform.vctl("config", "list", "some.agent").stdout


def test_auth_add_admits_a_new_agent_live(platform):
    keys = platform.keypair()
    assert not platform.probe("newcomer", keys), "an unknown key is refused"
    platform.vctl("auth", "add", "--credentials", keys["public"], "--user_id", "newcomer", "--identity",
                  "newcomer")
    assert wait_for(lambda: platform.probe("newcomer", keys), 30, "the new key to be admitted"), \
        "admitted without a restart"


def pending(platform):
    return platform.rpc("platform.auth", "get_pending_authorizations")


def test_refused_key_is_pending_and_approve_admits_it(platform):
    keys = platform.keypair()
    assert not platform.probe("remote.agent", keys)
    entries = wait_for(lambda: [e for e in pending(platform) if e["credentials"] == keys["public"]], 15,
                       "the refused key among platform.auth's pending authorizations")
    (e,) = entries
    assert (e["domain"], e["address"], e["mechanism"]) == ("vip", "127.0.0.1", "CURVE"), e
    # VOLTTRON's own record: a uuid user_id and a retry counter (auth_zmq.py _update_auth_pending).
    assert re.fullmatch(r"[0-9a-f-]{36}", e["user_id"]) and e["retries"] >= 1, e
    platform.vctl("auth", "remote", "approve", e["user_id"])
    assert wait_for(lambda: platform.probe("remote.agent", keys), 30, "the approved key to be admitted")
    assert not [x for x in pending(platform) if x["credentials"] == keys["public"]]
    approved = platform.rpc("platform.auth", "get_approved_authorizations")
    assert any(a["credentials"] == keys["public"] for a in approved), approved


def test_deny_keeps_a_key_out(platform):
    keys = platform.keypair()
    assert not platform.probe("unwanted", keys)
    (e,) = wait_for(lambda: [x for x in pending(platform) if x["credentials"] == keys["public"]], 15, "pending")
    platform.vctl("auth", "remote", "deny", e["user_id"])
    denied = wait_for(lambda: [x for x in platform.rpc("platform.auth", "get_denied_authorizations")
                               if x["credentials"] == keys["public"]], 15, "the key in the denied list")
    assert denied
    assert not platform.probe("unwanted", keys, seconds=3)
    assert not [x for x in pending(platform) if x["credentials"] == keys["public"]]


@pytest.mark.xfail(strict=True, reason="VOLTTRON 9.0.4 bug, on its own router too: `vctl auth remote list` "
                   "renames every key of a ZMQ pending entry to 'address' (control/control_auth.py:183) and "
                   "then fails with KeyError: 'user_id'; the entries themselves are right "
                   "(test_refused_key_is_pending_and_approve_admits_it)")
def test_vctl_auth_remote_list_shows_pending(platform):
    keys = platform.keypair()
    assert not platform.probe("listed", keys, seconds=3)
    wait_for(lambda: [x for x in pending(platform) if x["credentials"] == keys["public"]], 15, "pending")
    r = platform.vctl("auth", "remote", "list", check=False)
    assert r.returncode == 0 and "PENDING" in r.stdout, r.stderr[-500:]


def test_vctl_stats_serves_viprouters_counters(platform):
    assert platform.vctl("stats", "status").stdout.strip() == "disabled"
    assert platform.vctl("stats", "enable").stdout.strip() == "enabled"  # 9.0.4's own router dies here
    dump = platform.vctl("stats", "dump").stdout
    assert "'router': 'viprouter'" in dump and "'msgs_in':" in dump and "'rejected_auth':" in dump, dump
    counters = platform.rpc("control", "stats.get")["counters"]
    assert counters["handshakes_completed"] > 0 and counters["auth_reports_sent"] >= 3, counters
    assert platform.vctl("stats", "disable").stdout.strip() == "disabled"
    platform.vctl("status")


def test_health_learns_connects_and_disconnects(platform):
    """A peer that never sends a heartbeat still appears in platform.health while connected."""
    keys = platform.keypair()
    platform.vctl("auth", "add", "--credentials", keys["public"], "--user_id", "visitor", "--identity", "visitor")
    env = platform.env
    visitor = subprocess.Popen([PY, str(HERE / "vt9_client.py"), "probe", platform.address, "visitor", keys["public"],
                                keys["secret"], platform.keystore["public"], "20", "8"], env=env,
                               stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "visitor" in platform.rpc("platform.health", "get_platform_health"), 25,
                 "the visitor in get_platform_health")
        h = platform.rpc("platform.health", "get_platform_health")["visitor"]
        assert h["peer"] == "visitor" and not h["service_agent"] and "connected" in h, h
    finally:
        visitor.wait(60)
    wait_for(lambda: "visitor" not in platform.rpc("platform.health", "get_platform_health"), 15,
             "the visitor to leave get_platform_health")
    health = platform.rpc("platform.health", "get_platform_health")
    assert {"config.store", "control", "platform.auth"} <= set(health), health


def test_router_crash_is_survived(platform):
    """kill -9 the router: the supervisor restarts it at once, the services and a running agent
    reconnect (the agent's deliveries continue), vctl works; the platform keeps its pid."""
    platform.vctl("install", str(SRC / "examples" / "ListenerAgent"), "--tag", "listener2", "--vip-identity",
                  "listener2", "--start", timeout=180)
    wait_for(lambda: "Topic: heartbeat/listener2" in platform.read("platform.log"), 40, "listener2's heartbeat")
    old = platform.router_pid()
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: [p for p in children(platform.proc.pid) if exe_name(p) == "viprouter" and p != old],
                   10, "a new viprouter")[0]
    assert platform.proc.poll() is None
    assert "killed by SIGKILL" in platform.read("platform.log")
    wait_for(lambda: SERVICES | {"listener2"} <= peers(platform), 30, "every peer back")
    seen = platform.read("platform.log").count("Topic: heartbeat/listener2")
    wait_for(lambda: platform.read("platform.log").count("Topic: heartbeat/listener2") > seen + 1, 40,
             "new heartbeat deliveries to listener2 after the restart")
    assert platform.router_pid() == new
    platform.vctl("status")
    assert "listener2" in platform.rpc("platform.health", "get_platform_health")


def test_shutdown_platform_stops_everything(platform):
    router = platform.router_pid()
    agents = [p for p in children(platform.proc.pid) if exe_name(p) != "viprouter"]
    platform.vctl("shutdown", "--platform")
    assert platform.proc.wait(60) == 0, platform.tail()
    wait_for(lambda: not alive(router), 10, "viprouter to exit")
    assert not any(alive(p) for p in agents), "agents left behind"
    log = platform.read("viprouter.log")
    assert "stopped (quit from control)" in log
    assert not [line for line in log.splitlines() if "refused" in line and 'identity "aip"' in line], \
        "control.shutdown's aip agent is admitted (from its keystore)"
    assert "exited cleanly" in platform.read("platform.log")
    assert not os.path.exists(os.path.join(platform.home, "VOLTTRON_PID"))
