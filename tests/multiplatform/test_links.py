"""Multi-platform routing between two real platforms (issue #14 deliverable 4), with real
VOLTTRON 9.0.4 agents on both sides. Every test asserts the behaviour viprouter gives; where a
VOLTTRON 9.0.4 platform is involved and is known to behave worse (the defects measured in
``../shared/research/multiplatform.md`` §2.7), the test is an expected failure naming the
defect (strict: a VOLTTRON that behaves makes it fail). Tests run in file order against one
federation per combination of kinds; the link-cut tests restart p2 and come last.
"""

from __future__ import annotations

import time
from typing import Any, Dict

import gevent
import pytest
from volttron.platform.jsonrpc import RemoteError
from volttron.platform.vip.agent.errors import Unreachable

from agents import Received, link_peers, publish, publish_until_delivered, subscribe_all, wait_for
from conftest import Federation, volttron_defect

MIB = 1 << 20


def call(fed: Federation, method: str, *args: Any, platform: str = "p2", timeout: float = 30) -> Any:
    return fed.agents["caller1"].vip.rpc.call("callee2", method, *args, external_platform=platform).get(timeout=timeout)


def test_each_router_announces_the_other_platforms_link(fed: Federation) -> None:
    assert any(p.startswith("instance.p1.") for p in link_peers(fed.agents["pub1"]))
    assert any(p.startswith("instance.p2.") for p in link_peers(fed.agents["pub2"]))


@pytest.mark.parametrize("src,dst", [("p1", "p2"), ("p2", "p1")])
def test_all_platforms_pubsub_with_true_counts(fed: Federation, src: str, dst: str) -> None:
    pub, sub = fed.agents[f"pub{src[1]}"], fed.agents[f"sub{dst[1]}"]
    topic = f"devices/{src}/"
    got = fed.received.setdefault(f"sub{dst[1]}", Received())
    subscribe_all(sub, topic, got)
    assert publish_until_delivered(pub, topic + "probe", got) is not None, "the subscription never reached " + src
    count = publish(pub, topic + "x", {"v": 42})
    assert wait_for(lambda: {"v": 42} in got.messages(topic + "x"), 5)
    assert count == 1, "no local subscriber + one remote platform"
    assert [s for (s, t, _) in got.items if t == topic + "x"] == [f"pub{src[1]}"], "sender as published"


def test_decorator_all_platforms_subscription_is_propagated(fed: Federation) -> None:
    # VOLTTRON issue #1506 (fixed by PR #1507, still open): @PubSub.subscribe(all_platforms=True)
    # travels in `synchronize`; the router must push it to the other platform too.
    got = fed.received["deco2"]
    assert publish_until_delivered(fed.agents["pub1"], "devices/deco/x", got) == 1


def test_external_rpc_with_a_1_mib_argument(fed: Federation) -> None:
    data = "x" * MIB
    t0 = time.monotonic()
    assert call(fed, "echo", data) == data
    assert call(fed, "echo", [1, "two", {"three": 3.5}]) == [1, "two", {"three": 3.5}]
    assert time.monotonic() - t0 < 30


def test_external_rpc_remote_exception(fed: Federation) -> None:
    with pytest.raises(RemoteError) as e:
        call(fed, "fail", "boom")
    assert "ValueError" in str(e.value.exc_info) and "boom" in str(e.value)


def test_remote_callee_sees_who_calls(request: pytest.FixtureRequest, fed: Federation) -> None:
    volttron_defect(request, fed, "p2", "the callee sees user '' for remote calls (multiplatform.md §2.5)")
    who: Dict[str, str] = call(fed, "whoami")
    assert who["user"] == "p1.caller1", who


def test_capability_protected_rpc_from_the_other_platform(request: pytest.FixtureRequest, fed: Federation) -> None:
    volttron_defect(request, fed, "p2", "remote calls carry user '', so protected methods refuse them (-32001)")
    assert call(fed, "secret") == "granted"


def test_unknown_platform_is_an_error_not_a_timeout(request: pytest.FixtureRequest, fed: Federation) -> None:
    volttron_defect(request, fed, "p1", "send_platform to an unknown platform is dropped: the caller times out")
    t0 = time.monotonic()
    with pytest.raises(Unreachable):
        call(fed, "echo", 1, platform="nowhere", timeout=10)
    assert time.monotonic() - t0 < 5


# --- link cut: p2 stopped for 10 s, then started again ------------------------------------

OUTAGE_S = 10.0
# The log line of an external publish arriving at p2's router: VOLTTRON's
# (``pubsubservice.py`` ``_external_to_local_publish``, at -vv) and viprouter's (at -v).
RECEIVED_MARKERS = ("external_to_local_publish", "external_publish from")


@pytest.fixture(scope="module")
def cut(fed: Federation) -> Dict[str, Any]:
    """Stop p2 for 10 s while p1 publishes, restart it with fresh agents; what happened."""
    got2, got1 = Received(), Received()
    subscribe_all(fed.agents["sub2"], "devices/cut/", got2)
    subscribe_all(fed.agents["sub1"], "devices/back/", got1)
    before = publish_until_delivered(fed.agents["pub1"], "devices/cut/before", got2)
    fed.p2.stop()
    t_down = time.monotonic()
    fed.stop_agents(["pub2", "sub2", "callee2", "deco2"])  # VOLTTRON agents give up after ~5 s anyway
    gevent.sleep(2)
    during = [publish(fed.agents["pub1"], f"devices/cut/stale-{i}", f"stale-{i}") for i in range(3)]
    t0 = time.monotonic()
    try:
        rpc_during: Any = call(fed, "echo", "down", timeout=5)
    except BaseException as e:  # noqa: BLE001 - gevent.Timeout is not an Exception
        rpc_during = e
    rpc_during_s = time.monotonic() - t0
    gevent.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))
    fed.p2.start(fed.tmp)
    for n in ("pub2", "sub2", "callee2", "deco2"):
        fed.start_agent(n)
    fed.wait_linked()
    got2b = Received()
    subscribe_all(fed.agents["sub2"], "devices/cut/", got2b)
    after = publish_until_delivered(fed.agents["pub1"], "devices/cut/after", got2b)
    back = publish_until_delivered(fed.agents["pub2"], "devices/back/x", got1)
    gevent.sleep(2)  # late arrivals
    log = fed.p2.log.read_text(errors="replace") if fed.p2.log else ""
    return {
        "before": before,
        "during": during,
        "rpc_during": rpc_during,
        "rpc_during_s": rpc_during_s,
        "after": after,
        "back": back,
        "stale_seen_by_agent": [m for m in got2b.messages() if str(m).startswith("stale-")],
        # What p2's router received (VOLTTRON's -vv log line, viprouter's -v one), whoever listened.
        "stale_in_p2_log": [l for l in log.splitlines() if any(m in l for m in RECEIVED_MARKERS) and "stale-" in l],
    }


def test_cut_publisher_counts_are_true_during_the_outage(request: pytest.FixtureRequest, fed: Federation, cut: Dict[str, Any]) -> None:
    volttron_defect(request, fed, "p1", "the remote stays counted while its link is down (stale ext_subscriptions)")
    assert cut["before"] == 1
    assert cut["during"] == [0, 0, 0]


def test_cut_nothing_stale_is_replayed(request: pytest.FixtureRequest, fed: Federation, cut: Dict[str, Any]) -> None:
    volttron_defect(request, fed, "p1", "publishes queue in the dead link and are replayed to the restarted platform")
    assert cut["stale_seen_by_agent"] == [] and cut["stale_in_p2_log"] == []


def test_cut_subscriptions_are_re_established_both_ways(fed: Federation, cut: Dict[str, Any]) -> None:
    assert cut["after"] == 1, "p1 → p2 after the restart, counted once"
    assert cut["back"] == 1, "p2 → p1: p1's subscription list was sent again on the new link"


def test_cut_rpc_to_the_stopped_platform_is_an_error(request: pytest.FixtureRequest, fed: Federation, cut: Dict[str, Any]) -> None:
    volttron_defect(request, fed, "p1", "send_platform over a down link is queued or dropped: the caller times out")
    assert isinstance(cut["rpc_during"], Unreachable) and cut["rpc_during_s"] < 2, cut["rpc_during"]


def test_cut_external_rpc_works_again(fed: Federation, cut: Dict[str, Any]) -> None:
    assert call(fed, "echo", "again") == "again"
