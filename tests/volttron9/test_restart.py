"""A router killed with SIGKILL and started again while VOLTTRON 9.0.4 agents run (issue #13,
VIP.md §13.5): the agents' DEALERs reconnect, each sends a new `hello` (`connect.hello.1`) on its
socket monitor's CONNECTED event and, on the welcome, runs its onconnected handlers again — the
pubsub subsystem re-sends its subscriptions (`synchronize`). Every agent is welcomed again and
receives publishes again; none stops itself (the library stops an agent at its 50th failed
reconnect, counted over its whole life: core.py `Core.monitor`)."""
from __future__ import annotations

import time
from typing import Any

from volttron.platform.vip.agent import Agent

from conftest import Platform, wait_for
from test_pubsub import Listener, topics

AGENTS = 12


def test_agents_welcomed_again_and_resubscribed_after_kill9(platform: Platform, transport: str) -> None:
    t = transport
    listeners = [platform.agent(f"rs-{t}-{i}", t, agent_class=Listener) for i in range(AGENTS)]
    pub = platform.agent(f"rs-pub-{t}", t)
    welcomes: dict[str, int] = {}

    def count(sender: Any, **kwargs: Any) -> None:
        welcomes[sender.identity] = welcomes.get(sender.identity, 0) + 1

    for a in [*listeners, pub]:
        a.core.onconnected.connect(count)
    assert int(pub.vip.pubsub.publish("pubsub", "devices/before", message=1).get(timeout=5)) == AGENTS

    platform.kill9_and_restart()
    ready = time.monotonic()
    everyone = [*listeners, pub]
    wait_for("every agent welcomed by the new router", lambda: all(welcomes.get(a.core.identity) for a in everyone), 20)
    elapsed = time.monotonic() - ready
    # Re-subscription follows the welcome (synchronize); a publish reaches every listener again.
    wait_for(
        "every listener subscribed again",
        lambda: pub.vip.pubsub.publish("pubsub", "devices/probe", message=0).get(timeout=5) == AGENTS,
        10,
    )
    assert int(pub.vip.pubsub.publish("pubsub", "devices/after", message=2).get(timeout=5)) == AGENTS
    wait_for("the publish after the restart at every listener", lambda: all("devices/after" in topics(a.got) for a in listeners))
    assert all(not a.vt9_greenlet.dead for a in everyone), "an agent stopped itself"
    print(f"\n{len(everyone)} VOLTTRON agents over {t}: all welcomed again {elapsed:.2f} s after the new router was ready")


def test_the_welcome_names_the_new_router(platform: Platform, transport: str) -> None:
    a: Agent = platform.agent(f"rs-plain-{transport}", transport)
    routers: list[str] = []

    def connected(sender: Any, **kwargs: Any) -> None:
        routers.append(str(kwargs.get("router", "")))

    a.core.onconnected.connect(connected)
    old = platform.router_id
    platform.kill9_and_restart()
    assert platform.router_id != old, "a new router id on every start, as VOLTTRON's"
    wait_for("the welcome of the new router", lambda: platform.router_id in routers, 20)
