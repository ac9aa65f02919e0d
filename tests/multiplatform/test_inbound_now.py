"""One direction only: a real VOLTTRON 9.0.4 platform's link *into* a viprouter that has no link
back (its discovery file names nobody; written so phase 1 of issue #14 could be tested before
viprouter dialled, kept as the one-way case). p1 is VOLTTRON with a discovery entry for p2; p2 is
the bare viprouter (no VOLTTRON services). p1's link connects to viprouter as a CURVE client with
p1's platform key (admitted by p2's ``auth.json``), says ``routing_table hello`` and sends its
``external_list``; a call from p1's agent reaches the callee on viprouter as ``send_peer`` with
the caller's ``<platform>.<peer>`` user. The answer cannot go back (viprouter has no link to p1:
the callee's ``send_platform`` is answered 113), so the caller times out. Both directions:
``test_links.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import zmq.green as zmq
from volttron.platform.vip.agent import Agent
from volttron.platform.vip.agent.errors import Unreachable

from agents import Callee, auth_for, link_peers, start_agent, stop_agent, wait_for
from platforms import ROOT, KeyPair, Platform, make_pair, z85_key

BIN = Path(os.environ.get("VIPROUTER_BIN", str(ROOT / "target" / "release" / "viprouter")))


@pytest.fixture(scope="module")
def inbound() -> Iterator[Dict[str, Any]]:
    if not BIN.is_file():
        pytest.skip(f"no viprouter binary at {BIN} (cargo build --release)")
    tmp = Path(tempfile.mkdtemp(prefix="multiplat-inbound-"))
    keys = {"caller1": KeyPair.new(), "callee2": KeyPair.new()}
    p1, p2 = make_pair(
        ("volttron", "viprouter"),
        tmp,
        {"p1": [auth_for("caller1", keys["caller1"])], "p2": [auth_for("callee2", keys["callee2"])]},
    )
    (p2.home / "external_platform_discovery.json").write_text("{}")  # no link back to p1
    agents: Dict[str, Agent] = {}
    try:
        p2.launch(tmp)
        p1.launch(tmp)
        p2.wait_ready()
        p1.wait_ready()
        agents["callee2"] = start_agent(p2, "callee2", keys["callee2"], tmp / "c2", Callee)
        agents["caller1"] = start_agent(p1, "caller1", keys["caller1"], tmp / "c1")
        yield {"p1": p1, "p2": p2, "agents": agents, "keys": keys, "tmp": tmp}
    finally:
        for a in agents.values():
            stop_agent(a)
        p1.stop()
        p2.stop()
        shutil.rmtree(tmp, ignore_errors=True)


_probe = itertools.count()


def stats(p2: Platform, keys: KeyPair) -> Dict[str, Any]:
    """viprouter's ``query stats``, asked by a raw DEALER with ``keys`` (the agent library's
    ``Query`` cannot match the reply: it parses its own MSG_ID as a float, VIP.md §3.7)."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    try:
        s.curve_serverkey = z85_key(p2.keys.public)
        s.curve_publickey = z85_key(keys.public)
        s.curve_secretkey = z85_key(keys.secret)
        # A fresh identity each time: a closed probe's identity may still be attached (first wins).
        s.setsockopt(zmq.IDENTITY, f"stats.probe.{next(_probe)}".encode())
        s.setsockopt(zmq.LINGER, 0)
        s.connect(p2.address)
        s.send_multipart([b"", b"VIP1", b"", b"q1", b"query", b"stats"])
        if not s.poll(5000):
            raise TimeoutError("no answer to query stats")
        return dict(json.loads(s.recv_multipart()[-1]))
    finally:
        s.close()


def test_a_volttron_link_into_viprouter_is_admitted_and_says_hello(inbound: Dict[str, Any]) -> None:
    callee, p2, keys = inbound["agents"]["callee2"], inbound["p2"], inbound["keys"]["callee2"]
    assert wait_for(lambda: any(p.startswith("instance.p2.") for p in link_peers(callee)), 20), "p1's link"
    # p1 announces its (empty) subscription list for p1; viprouter has no link named p1 (its
    # discovery file names nobody): counted, not silently lost.
    assert wait_for(lambda: stats(p2, keys)["external_list_unknown_platform"] >= 1, 10)
    assert stats(p2, keys)["rejected_external_not_link"] == 0


def test_a_call_from_volttron_reaches_the_callee_with_its_user(inbound: Dict[str, Any]) -> None:
    caller, p2, keys = inbound["agents"]["caller1"], inbound["p2"], inbound["keys"]["callee2"]
    Callee.calls.clear()
    caller.vip.rpc.call("callee2", "whoami", external_platform="p2")  # its answer cannot come back yet
    assert wait_for(lambda: len(Callee.calls) == 1, 15), "the send_peer never reached the callee"
    assert Callee.calls[0] == {"peer": "", "user": "p1.caller1"}
    assert stats(p2, keys)["external_rpc_in"] == 1
    # The answer goes back by send_platform to p1: no link yet, so 113 to the callee.
    assert wait_for(lambda: stats(p2, keys)["external_rpc_unreachable"] >= 1, 10)


def test_send_platform_without_a_link_is_unreachable_naming_the_platform(inbound: Dict[str, Any]) -> None:
    # viprouter answers 113 naming the platform, with a MSG_ID the agent library reads back
    # (error-msg-id = agent-readable): the stock 9.0.4 agent raises Unreachable at once
    # instead of timing out (VOLTTRON's own router drops the call).
    agent = inbound["agents"]["callee2"]
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as e:
        agent.vip.rpc.call("anyone", "echo", 1, external_platform="nowhere").get(timeout=10)
    assert time.monotonic() - t0 < 2
    assert e.value.peer == "nowhere" and e.value.subsystem == "external_rpc"
