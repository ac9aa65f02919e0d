"""Core VIP with VOLTTRON 9.0.4 agents: hello, ping, peerlist add/drop, agentstop, RPC both ways
with 1 MiB arguments and remote exceptions, Unreachable. CURVE and NULL, tcp and ipc."""
from __future__ import annotations

from typing import Any

import gevent
import pytest
from volttron.platform.jsonrpc import MethodNotFound, RemoteError
from volttron.platform.vip.agent import RPC, Agent
from volttron.platform.vip.agent.errors import UnknownSubsystem, Unreachable

from conftest import Platform, wait_for

MIB = 1024 * 1024


class Echo(Agent):
    """Exports what the RPC tests call."""

    @RPC.export
    def echo(self, value: Any) -> Any:
        return value

    @RPC.export
    def whoami(self) -> str:
        # USER_ID of the request, which the router stamps with the caller's identity (VIP.md §3.5).
        return str(self.vip.rpc.context.vip_message.user)

    @RPC.export
    def fail(self, text: str) -> None:
        raise ValueError(text)


def test_hello_welcome(platform: Platform, transport: str) -> None:
    a = platform.agent(f"hello-{transport}", transport)
    assert a.core.connected
    # [version, router id, identity]: the router's uuid4 id, as viprouter logged it at start. The
    # version frame is `1.0`, which the library JSON-parses into a float (VIP.md §3.7).
    assert a.vip.hello().get(timeout=5) == [1.0, platform.router_id, f"hello-{transport}"]


def test_ping_router_and_peer(platform: Platform, transport: str) -> None:
    a = platform.agent(f"ping-a-{transport}", transport)
    b = platform.agent(f"ping-b-{transport}", transport)
    # VOLTTRON's own `vip.ping(peer, *args)` always sends ['drop', peer] to the router and drops
    # its arguments (subsystems/ping.py:49-58, a 9.0.4 agent-library bug): the router answers
    # ['pong', peer], so the result is [peer], whichever peer is named.
    assert a.vip.ping(b.core.identity, "x").get(timeout=5) == [b.core.identity]
    # A ping that reaches the peer: the library's own result and send path, with the args the
    # broken wrapper loses. The peer's library answers 'pong'; the router forwards both ways.
    result = next(a.vip.ping._results)
    a.core.connection.send_vip(b.core.identity, "ping", args=["ping", "hi", "1 MiB? no"], msg_id=result.ident)
    assert result.get(timeout=5) == ["hi", "1 MiB? no"]


def test_peerlist_add_drop_agentstop_and_crash(platform: Platform, transport: str) -> None:
    a = platform.agent(f"peers-a-{transport}", transport)
    added: list[str] = []
    dropped: list[str] = []
    a.vip.peerlist.onadd.connect(lambda sender, peer, **kw: added.append(peer))
    a.vip.peerlist.ondrop.connect(lambda sender, peer, **kw: dropped.append(peer))
    b = platform.agent(f"peers-b-{transport}", transport)
    c = f"peers-c-{transport}"
    crash = platform.agent_process(c, transport)
    wait_for("peerlist add of b and c", lambda: {b.core.identity, c} <= set(added), timeout=15)
    listed = a.vip.peerlist().get(timeout=5)
    assert {a.core.identity, b.core.identity, c} <= set(listed)
    # b stops cleanly: Core.stop sends agentstop (core.py:538-541) -> peerlist drop.
    platform.stop_agent(b)
    wait_for("peerlist drop of b (agentstop)", lambda: b.core.identity in dropped)
    # c's process is killed: no agentstop, the kernel closes its socket and the router drops it
    # on disconnect (README "Choices": VOLTTRON's router keeps such a peer listed).
    crash.kill()
    wait_for("peerlist drop of c (killed)", lambda: c in dropped)
    assert dropped.count(b.core.identity) == 1 and dropped.count(c) == 1
    listed = a.vip.peerlist().get(timeout=5)
    assert a.core.identity in listed and b.core.identity not in listed and c not in listed


def test_rpc_both_ways_with_1mib_arguments(platform: Platform, transport: str) -> None:
    a = platform.agent(f"rpc-a-{transport}", transport, agent_class=Echo)
    b = platform.agent(f"rpc-b-{transport}", transport, agent_class=Echo)
    big = "x" * MIB + "\u00e9\u2603"  # JSON-escaped by the library: more than 1 MiB on the wire
    nested = {"values": list(range(1000)), "text": big[:1000], "nan": None}
    assert b.vip.rpc.call(a.core.identity, "echo", big).get(timeout=20) == big
    assert a.vip.rpc.call(b.core.identity, "echo", big).get(timeout=20) == big
    assert a.vip.rpc.call(b.core.identity, "echo", nested).get(timeout=5) == nested
    # The callee sees the caller's identity as USER_ID, whatever the caller wrote there.
    assert a.vip.rpc.call(b.core.identity, "whoami").get(timeout=5) == a.core.identity
    assert b.vip.rpc.call(a.core.identity, "whoami").get(timeout=5) == b.core.identity


def test_rpc_remote_exceptions(platform: Platform, transport: str) -> None:
    a = platform.agent(f"rexc-a-{transport}", transport, agent_class=Echo)
    b = platform.agent(f"rexc-b-{transport}", transport)
    with pytest.raises(RemoteError) as err:
        b.vip.rpc.call(a.core.identity, "fail", "boom").get(timeout=5)
    assert err.value.exc_info["exc_type"] == "builtins.ValueError"
    assert err.value.exc_info["exc_args"] == ["boom"]
    with pytest.raises(MethodNotFound):
        b.vip.rpc.call(a.core.identity, "no_such_method").get(timeout=5)


def test_rpc_to_a_missing_peer_raises_unreachable(platform: Platform, transport: str) -> None:
    """Deliverable 4 (VOLTTRON #2117, #2789): the 113 error comes back with RPC's JSON-number
    MSG_ID written as a JSON string (`[viprouter] error-msg-id`, default), which the agent library
    maps back to its call. (With `verbatim` it times out: test_errors.py.)"""
    a = platform.agent(f"unreach-a-{transport}", transport)
    b = f"unreach-b-{transport}"
    b_process = platform.agent_process(b, transport)
    hub = gevent.get_hub().loop
    start = hub.now()
    with pytest.raises(Unreachable) as err:
        a.vip.rpc.call("no.such.peer", "echo", 1).get(timeout=10)
    assert hub.now() - start < 2.0, "Unreachable must come at once, not at a timeout"
    assert (err.value.errno, err.value.peer, err.value.subsystem) == (113, "no.such.peer", "RPC")
    # The classic case: the peer was there (its library answers MethodNotFound) and its process
    # ended. (An in-process agent cannot stand in for it on ipc: the library's stop leaves its
    # ipc socket connected, see test_peerlist_add_drop_agentstop_and_crash.)
    wait_for("b to join", lambda: b in a.vip.peerlist().get(timeout=5), timeout=15)
    with pytest.raises(MethodNotFound):
        a.vip.rpc.call(b, "echo", 2).get(timeout=5)
    b_process.kill()
    wait_for("b to leave", lambda: b not in a.vip.peerlist().get(timeout=5))
    with pytest.raises(Unreachable):
        a.vip.rpc.call(b, "echo", 3).get(timeout=10)
    # RPC addressed to the router itself: error 93, UnknownSubsystem, also at once.
    with pytest.raises(UnknownSubsystem) as err93:
        a.vip.rpc.call("", "echo", 4).get(timeout=10)
    assert err93.value.errno == 93
    stats = platform.query_stats(a)
    assert stats["errors_unreachable"] >= 2 and stats["errors_unsupported"] >= 1
