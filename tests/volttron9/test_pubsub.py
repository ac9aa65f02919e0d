"""PubSub with VOLTTRON 9.0.4 agents (VIP.md §7): decorator and runtime subscriptions, prefix
matching, publish counts, unsubscribe, list; protected topics with capabilities, whose refusal
is VOLTTRON's -32001 text (BUG-1 of the platform-services memo). CURVE and NULL, tcp and ipc."""
from __future__ import annotations

from typing import Any

import pytest
from volttron.platform.vip.agent import Agent, PubSub
from volttron.platform.vip.agent.errors import VIPError

from conftest import Platform, wait_for

Delivery = tuple[str, str, str, Any]  # sender, topic, message, headers


class Listener(Agent):
    """A decorator subscription to `devices/`, as agents declare them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.got: list[Delivery] = []

    @PubSub.subscribe("pubsub", "devices/")
    def on_devices(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        self.got.append((sender, topic, message, headers))


def collector() -> tuple[list[Delivery], Any]:
    got: list[Delivery] = []

    def callback(peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        got.append((sender, topic, message, headers))

    return got, callback


def topics(got: list[Delivery]) -> list[str]:
    return [d[1] for d in got]


def test_decorator_and_runtime_subscriptions_prefixes_and_counts(platform: Platform, transport: str) -> None:
    t = transport
    dec = platform.agent(f"ps-dec-{t}", t, agent_class=Listener)
    run = platform.agent(f"ps-run-{t}", t)
    pub = platform.agent(f"ps-pub-{t}", t)
    run_got, callback = collector()
    # `subscribe` is @spawn'd (pubsub.py:284): its greenlet returns the request's AsyncResult,
    # whose value is the router's `01` (read by the library as the bool True).
    assert run.vip.pubsub.subscribe("pubsub", "devices/campus", callback).get(timeout=5).get(timeout=5) is True
    every_got, every = collector()
    assert run.vip.pubsub.subscribe("pubsub", "", every).get(timeout=5).get(timeout=5) is True  # '' matches all

    def publish(topic: str, message: Any) -> int:
        return int(pub.vip.pubsub.publish("pubsub", topic, headers={"h": 1}, message=message).get(timeout=5))

    # The count is the number of subscribers the publish was delivered to — every matching one
    # here, none is full (VIP.md §7.6, README "PubSub"); `run` counts once even with two
    # matching subscriptions (one copy per subscriber).
    assert publish("devices/campus/b1/temp", {"value": 21.5}) == 2
    assert publish("devices/other", [1, 2]) == 2
    assert publish("dev", "no device prefix") == 1  # only the '' subscription
    assert publish("devices/campus", "exact prefix") == 2
    # Each subscriber gets its copy in its own time: wait for both (waiting for either let the
    # assertion below read `dec` before its last delivery, on a loaded machine with CURVE).
    wait_for("the last publish at `dec`", lambda: "devices/campus" in topics(dec.got))
    wait_for("the last publish at `run`", lambda: "devices/campus" in topics(run_got))
    wait_for("the last publish at ''", lambda: "devices/campus" in topics(every_got))
    assert topics(dec.got) == ["devices/campus/b1/temp", "devices/other", "devices/campus"]
    assert topics(run_got) == ["devices/campus/b1/temp", "devices/campus"]
    assert topics(every_got) == ["devices/campus/b1/temp", "devices/other", "dev", "devices/campus"]
    sender, topic, message, headers = dec.got[0]
    assert (sender, message, headers["h"]) == (pub.core.identity, {"value": 21.5}, 1)
    assert "min_compatible_version" in headers  # the library's own headers travel through

    # list: what `run` subscribed to, as the router reports it.
    listed = run.vip.pubsub.list("pubsub", prefix="devices", subscribed=True).get(timeout=5)
    assert ["", "devices/campus", True] in listed

    # Unsubscribe the runtime prefix: counts drop, the other subscriptions stay.
    assert run.vip.pubsub.unsubscribe("pubsub", "devices/campus", callback).get(timeout=5) is True
    assert publish("devices/campus/b2", "after unsubscribe") == 2
    wait_for("the publish after unsubscribe", lambda: "devices/campus/b2" in topics(every_got))
    wait_for("the publish after unsubscribe at dec", lambda: "devices/campus/b2" in topics(dec.got))
    assert "devices/campus/b2" not in topics(run_got)


def test_a_stopped_subscriber_is_no_longer_counted(platform: Platform, transport: str) -> None:
    t = transport
    dec = platform.agent(f"ps-stop-dec-{t}", t, agent_class=Listener)
    pub = platform.agent(f"ps-stop-pub-{t}", t)
    assert pub.vip.pubsub.publish("pubsub", "devices/x", message=1).get(timeout=5) >= 1
    before = pub.vip.pubsub.publish("pubsub", "devices/x", message=2).get(timeout=5)
    platform.stop_agent(dec)  # agentstop: the router removes its subscriptions (VIP.md §7.12)
    wait_for("the count to drop", lambda: pub.vip.pubsub.publish("pubsub", "devices/x", message=3).get(timeout=5) == before - 1)


PROTECTED = {
    "write-protect": [
        {"topic": "foo", "capabilities": ["can_publish_to_my_topic"]},
        {"topic": "/reg.*x/", "capabilities": "can_publish_to_my_topic"},
    ]
}


def test_protected_topics(platform: Platform, transport: str) -> None:
    """protected_topics.json + auth.json capabilities, the steps of the memo's BUG-1 reproduction
    (`volttrontesting/platform/auth_tests/test_auth.py::test_pubsub_unauthorized`): an agent whose
    only capability has an argument publishes to a protected topic and gets VOLTTRON's exact
    -32001 text, argument included."""
    t = transport
    # As PlatformWrapper.build_agent gives every agent (platformwrapper.py:505-513).
    agent2 = platform.agent(f"agent2-{t}", t, capabilities={"edit_config_store": {"identity": f"agent2-{t}"}})
    allowed = platform.agent(f"allowed-{t}", t, capabilities=["can_publish_to_my_topic"])
    listener = platform.agent(f"prot-listen-{t}", t)
    got, callback = collector()
    listener.vip.pubsub.subscribe("pubsub", "", callback).get(timeout=5).get(timeout=5)
    platform.write_protected_topics(PROTECTED)
    if platform.auth:
        for topic in ("foo", "foo/bar", "regax"):
            with pytest.raises(VIPError) as err:
                agent2.vip.pubsub.publish("pubsub", topic, message="refused").get(timeout=5)
            assert err.value.errno == -32001
            assert err.value.msg == (
                f'to publish to topic "{topic}" requires capabilities [\'can_publish_to_my_topic\'], but capability '
                f"list {{'edit_config_store': {{'identity': 'agent2-{t}'}}}} was provided"
            )
    else:
        # allow-auth = False: no capabilities anywhere, so nothing is protected (as VOLTTRON,
        # whose platform.auth is not running then and never sends auth_update).
        assert agent2.vip.pubsub.publish("pubsub", "foo", message="open").get(timeout=5) == 1
    # Unprotected topics and holders of the capability publish normally.
    assert agent2.vip.pubsub.publish("pubsub", "bar", message="free").get(timeout=5) == 1
    assert allowed.vip.pubsub.publish("pubsub", "foo", message="capable").get(timeout=5) == 1
    wait_for("the capable publish", lambda: "capable" in [d[2] for d in got])
    assert [d[2] for d in got if d[2] == "refused"] == []
    platform.write_protected_topics({})
