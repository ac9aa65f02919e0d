"""Real VOLTTRON 9.0.4 ``Agent`` objects on either platform, run in this process under gevent
(as ``volttrontesting``'s ``PlatformWrapper.build_agent`` does), and what they see."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import gevent
import gevent.event
from volttron.platform.vip.agent import RPC, Agent, PubSub

from platforms import AgentAuth, KeyPair, Platform


class Callee(Agent):
    """The agent called from the other platform; ``calls`` records who called ``whoami``."""

    calls: List[Dict[str, str]] = []

    @RPC.export
    def echo(self, data: Any) -> Any:
        return data

    @RPC.export
    def fail(self, text: str) -> None:
        raise ValueError(text)

    @RPC.export
    def whoami(self) -> Dict[str, str]:
        msg = self.vip.rpc.context.vip_message
        who = {"peer": str(msg.peer), "user": str(msg.user)}
        self.calls.append(who)
        return who

    @RPC.export
    @RPC.allow("can_call_secret")
    def secret(self) -> str:
        return "granted"


class DecoratedSubscriber(Agent):
    """Subscribes with the decorator (sent as ``synchronize``, not ``subscribe``: VIP.md §7.3)."""

    got: "Received"

    @PubSub.subscribe("pubsub", "devices/deco/", all_platforms=True)
    def on_publish(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        self.got.callback(peer, sender, bus, topic, headers, message)


@dataclass
class Received:
    """Publishes a subscriber got: (sender, topic, message)."""

    items: List[Tuple[str, str, Any]] = field(default_factory=list)

    def callback(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        self.items.append((sender, topic, message))

    def messages(self, topic_prefix: str = "") -> List[Any]:
        return [m for (_, t, m) in self.items if t.startswith(topic_prefix)]


def auth_for(identity: str, keys: KeyPair, capabilities: Optional[Dict[str, object]] = None) -> AgentAuth:
    return AgentAuth(identity, keys, identity=identity, capabilities=capabilities or {})


def start_agent(platform: Platform, identity: str, keys: KeyPair, client_home: Path, cls: type = Agent) -> Agent:
    """An agent of class ``cls`` connected to ``platform`` over tcp with CURVE, running."""
    client_home.mkdir(parents=True, exist_ok=True)
    agent = cls(
        identity=identity,
        address=platform.address,
        serverkey=platform.keys.public,
        publickey=keys.public,
        secretkey=keys.secret,
        enable_store=False,
        heartbeat_autostart=False,
        volttron_home=str(client_home),
        message_bus="zmq",
        enable_auth=True,
    )
    started = gevent.event.Event()
    gevent.spawn(agent.core.run, started)
    if not started.wait(timeout=10):
        raise RuntimeError(f"{identity} did not start on {platform.name}")
    # The hello round trip: the agent is usable once its peer list answers.
    agent.vip.peerlist().get(timeout=10)
    return agent


def stop_agent(agent: Agent) -> None:
    try:
        agent.core.stop(timeout=3)
    except BaseException:  # noqa: BLE001 - a dead platform makes stop time out; nothing to do
        pass


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Poll ``cond`` under gevent until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        gevent.sleep(step)


def link_peers(agent: Agent) -> List[str]:
    """The remote platforms' links among the peers ``agent``'s router announces."""
    return [p for p in agent.vip.peerlist().get(timeout=5) if str(p).startswith("instance.")]


def publish(agent: Agent, topic: str, message: Any) -> int:
    """Publish and return the count the router answered (local subscribers + remote platforms)."""
    return int(agent.vip.pubsub.publish("pubsub", topic, headers={}, message=message).get(timeout=10))


def subscribe_all(agent: Agent, prefix: str, into: Received) -> None:
    agent.vip.pubsub.subscribe("pubsub", prefix, into.callback, all_platforms=True).get(timeout=10)


def publish_until_delivered(pub: Agent, topic: str, into: Received, timeout: float = 15.0) -> Optional[int]:
    """Publish distinct messages on ``topic`` until one arrives in ``into`` (a remote
    subscription takes a moment to propagate); return the count of the one that arrived."""
    n = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n += 1
        marker = f"probe-{n}"
        count = publish(pub, topic, marker)
        if wait_for(lambda: marker in into.messages(topic), 1.0):
            return count
    return None
