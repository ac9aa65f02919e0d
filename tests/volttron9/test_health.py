"""The router's health on the bus (`[viprouter] stats-topic`, `stats-interval`, `stats-sender`):
an unmodified VOLTTRON 9.0.4 agent subscribed to the topic gets viprouter's counters every
interval, as it gets any publish, and VOLTTRON's own historian code stores them: a
`BaseHistorianAgent` (unmodified but for where its data goes) takes the time from the headers and
each counter as a point of `analysis/...`. CURVE and NULL, tcp and ipc."""
from __future__ import annotations

import datetime
from typing import Any, Iterator

import pytest
from volttron.platform.agent import utils
from volttron.platform.agent.base_historian import BaseHistorianAgent

from conftest import Platform, platform_fixture, wait_for

TOPIC = "analysis/viprouter/vt9agents"
SENDER = "platform.viprouter"

Delivery = tuple[str, str, str, Any, Any]  # sender, bus, topic, headers, message


@pytest.fixture(scope="module", params=["curve", "null"])
def health(request: pytest.FixtureRequest) -> Iterator[Platform]:
    """A router publishing its counters every second as `platform.viprouter`."""
    yield from platform_fixture(
        request.param, {"stats-topic": TOPIC, "stats-interval": "1", "stats-sender": SENDER}
    )


def subscribe(platform: Platform, identity: str, transport: str, prefix: str) -> list[Delivery]:
    a = platform.agent(identity, transport)
    got: list[Delivery] = []

    def callback(peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        got.append((sender, bus, topic, headers, message))

    assert a.vip.pubsub.subscribe("pubsub", prefix, callback).get(timeout=5).get(timeout=5) is True
    return got


def test_an_agent_gets_the_counters_every_interval(health: Platform, transport: str) -> None:
    got = subscribe(health, f"health-{transport}", transport, "analysis/viprouter")
    wait_for("two publishes of the router's counters", lambda: len(got) >= 2, timeout=5)
    (sender, bus, topic, headers, first), second = got[0], got[1][4]
    assert (sender, bus, topic) == (SENDER, "", TOPIC)
    # VOLTTRON's headers, as its agents publish them; the time in its own format, now.
    assert headers["min_compatible_version"] == "3.0" and headers["max_compatible_version"] == ""
    date = utils.parse_timestamp_string(headers["Date"])
    assert headers["TimeStamp"] == headers["Date"] == utils.format_timestamp(date)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - date).total_seconds()) < 10, (headers, now)
    # The message is the `query stats` object: the same members the router answers to a query.
    assert isinstance(first, dict)
    query = health.query_stats(health.agents[0])
    assert set(first) == set(query)
    assert 500 <= second["uptime_ms"] - first["uptime_ms"] <= 5000, (first["uptime_ms"], second["uptime_ms"])
    assert second["router_publishes"] == first["router_publishes"] + 1
    assert first["limits"]["max-connections"] == query["limits"]["max-connections"]
    talkers = {t["identity"]: t for t in second["top_talkers"]}
    assert f"health-{transport}" in talkers, second["top_talkers"]


class RecordingHistorian(BaseHistorianAgent):
    """VOLTTRON's historian base class, whose storage is a list: what `publish_to_historian`
    is given is what a SQL or InfluxDB historian would write."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["enable_store"] = True  # the historian needs its configuration subsystem
        super().__init__(process_loop_in_greenlet=True, capture_device_data=False, capture_log_data=False,
                         capture_record_data=False, **kwargs)
        self.stored: list[dict[str, Any]] = []

    def publish_to_historian(self, to_publish_list: list[dict[str, Any]]) -> None:
        self.stored.extend(to_publish_list)
        self.report_all_handled()


def test_a_historian_stores_each_counter_as_a_point(
    health: Platform, transport: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # its backup database (backup.sqlite) is made in the working directory
    h = health.agent(f"historian-{transport}", transport, agent_class=RecordingHistorian)
    assert isinstance(h, RecordingHistorian)
    # The configuration store would call this with the agent's configuration (configstore.py
    # `_onconfig` → `_process_callbacks`); the platform here has no `config.store`, so the
    # default configuration is applied as the store applies it when the agent has none.
    h._configure("config", "NEW", {})

    def stored() -> list[dict[str, Any]]:
        return [r for r in h.stored if r["topic"].startswith("viprouter/vt9agents/")]

    wait_for("the counters in the historian", lambda: any(r["topic"].endswith("/msgs_in") for r in stored()), 10)
    points = {r["topic"]: r for r in stored()}
    for name in ("msgs_in", "msgs_out", "peers", "connections", "uptime_ms", "dropped_slow_subscriber"):
        record = points[f"viprouter/vt9agents/{name}"]
        assert record["source"] == "analysis"
        assert isinstance(record["value"], int), (name, record)
        # The time is the publish's own (the Date header), not the historian's clock.
        assert record["timestamp"] == utils.parse_timestamp_string(record["headers"]["Date"])
    assert isinstance(points["viprouter/vt9agents/limits"]["value"], dict)
