"""Agent level: modular VOLTTRON's own ``Agent`` (and raw libzmq peers for what an agent would
not send) against the release viprouter — NULL and CURVE, tcp and abstract ipc — and, on the
same checks, against modular's own platform (its Python router; CURVE only). One client run
per target (``modular_client.py run``); each test asserts one observation.

Where the two routers differ the test says which is right and why; failures that come from
modular's agent library itself are asserted as such (they happen on both routers).
"""

from typing import Any, Callable, Dict

import pytest

VIPROUTER = [("viprouter", s, t) for s in ("curve", "null") for t in ("tcp", "ipc")]
STOCK = [("modular", "curve", t) for t in ("tcp", "ipc")]
ALL = VIPROUTER + STOCK


def ids(t: Any) -> str:
    return "-".join(t)


@pytest.fixture(params=ALL, ids=ids)
def target(request: Any) -> Any:
    return request.param


@pytest.fixture
def obs(target: Any, observed: Callable[..., Dict[str, Any]]) -> Dict[str, Any]:
    return observed(*target)


def on_viprouter(target: Any) -> bool:
    return bool(target[0] == "viprouter")


# --- the same on both routers -------------------------------------------------------------


def test_hello_ping_peerlist(obs: Dict[str, Any]) -> None:
    assert obs["hello"][0] == 1.0 and obs["hello"][2] == "agent.a", obs["hello"]
    # modular's Ping sends ["drop", peer] whatever it is given: the router echoes the peer ''.
    assert obs["ping"] == [""]
    assert obs["peerlist has a and b"] is True


def test_rpc_both_ways_with_platform_auth(obs: Dict[str, Any]) -> None:
    """Both RPCs go through platform.auth's get_protected_rpcs first (rpc.py:437)."""
    assert obs["rpc a->b"] == 7
    assert obs["rpc b->a"] == [1, "x"]


def test_agent_version_rpc_fails_in_the_agent_library(obs: Dict[str, Any]) -> None:
    """Library bug, any router: ``agent.version`` reads ``ZmqCore._version``, which no code sets
    (``client/vip/agent/__init__.py`` exports ``core.version``)."""
    assert "'ZmqCore' object has no attribute '_version'" in obs["rpc agent.version (library)"]


def test_rpc_to_a_missing_peer(obs: Dict[str, Any], target: Any) -> None:
    """modular's agent JSON-parses every frame, its own MSG_ID too (a float), and so never
    matches an error that echoes the id as it sent it (research memo §1.3). viprouter writes
    such an id as a JSON string (``error-msg-id = agent-readable``, the default): the agent
    raises Unreachable. modular's router re-packs it as an 8-byte double: the agent times out."""
    assert obs["router reply to a missing peer"] == ["error", "113", "No route to host", "agent.missing", "RPC"]
    if on_viprouter(target):
        assert obs["rpc to a missing peer"].startswith("Unreachable"), obs["rpc to a missing peer"]
        assert obs["router reply to a missing peer: MSG_ID"] == repr(b'"1796588451.873989"')
    else:
        assert obs["rpc to a missing peer"].startswith("Timeout"), obs["rpc to a missing peer"]


def test_pubsub(obs: Dict[str, Any]) -> None:
    """subscribe/publish results are the raw binary replies: modular's agent does not decode
    them (``'\\x01'``, count ``01 00 00 00``), on both routers."""
    assert obs["subscribe"] == "\x01"
    assert obs["publish"] == "\x01\x00\x00\x00"
    assert obs["delivery"] == [["agent.a", "", "test/topic", {"v": [1, 2.5, "é"]}]]
    assert obs["pubsub list"] == [["", "test/", True]]


def test_protected_publish_refused_by_the_agents_own_check(obs: Dict[str, Any]) -> None:
    """``stranger`` has no capability: its agent asks platform.auth, gets False and sends
    nothing (``pubsub.py:701``); its publish never completes."""
    assert obs["protected: publish without it (refused by the agent's own check)"].startswith("Timeout")


def test_raw_protected_publish_refused_with_modulars_error(obs: Dict[str, Any], target: Any) -> None:
    """A client that skips the agent-side check: the router refuses with modular's -32001
    text. modular names the publisher from the unverified USER_ID frame (empty here);
    viprouter names the sender."""
    who = "raw.stranger" if on_viprouter(target) else ""
    assert obs["raw protected publish (no capability)"] == [
        "error", "-32001", f"Peer: {who} not authorized to publish to secret/x", "", "pubsub",
    ]


def test_third_party_agentstop(obs: Dict[str, Any], target: Any) -> None:
    """Only the control identity (platform.control) may stop another peer on viprouter;
    modular's router lets anyone drop anyone from the peer list (as 9.0.4, VIP.md §5.6)."""
    assert obs["third-party agentstop by agent.a"] == ("ignored" if on_viprouter(target) else "honoured")


# --- where modular's router is wrong ------------------------------------------------------


def test_protected_topics_with_capabilities(obs: Dict[str, Any], target: Any) -> None:
    """agent.pub may publish and agent.sub may subscribe to `secret`, agent.both may do both
    (authz.json). Publishing works on both routers (modular's agents put their identity in the
    USER_ID frame its router checks). modular's router refuses agent.sub's subscribe: it checks
    subscribes as "publish" (``pubsub_service.py:749``); viprouter checks the real access."""
    # A pubsub capability passes modular's subscribe check too ("pubsub" allows "publish").
    assert obs["protected: subscribe with a pubsub capability"] == "\x01"
    assert obs["protected: publish with the capability"] == "\x01\x00\x00\x00"
    assert obs["protected: delivered topics"] == ["secret/x"]
    if on_viprouter(target):
        assert obs["protected: subscribe with the capability"] == "\x01"
    else:
        # The -32001 error reaches modular's agent as a SystemExit (its VIPError handling), and
        # ends that agent's loop.
        assert "-32001" in obs["protected: subscribe with the capability"]


def test_user_id_spoofing(obs: Dict[str, Any], target: Any) -> None:
    """A publish to a protected topic whose USER_ID frame claims ``platform.control``:
    modular's router believes the frame (``pubsub_service.py:402-403``); viprouter checks the
    sender."""
    assert obs["raw USER_ID spoof publish"] == ("refused" if on_viprouter(target) else "accepted")


def test_subscribe_capability(obs: Dict[str, Any], target: Any) -> None:
    assert obs["raw subscribe with a subscribe capability"] == ("accepted" if on_viprouter(target) else "error -32001")


def test_unknown_key_and_identity_binding(obs: Dict[str, Any], target: Any) -> None:
    """modular's ZAP handler is bound in another libzmq context than its router socket, so
    every key that knows the server key is admitted under any identity (research memo §1.6).
    viprouter admits the keys of credentials_store, each under its own identity."""
    if target[1] == "null":
        pytest.skip("NULL: no keys")
    want = "no welcome (refused)" if on_viprouter(target) else "welcome"
    assert obs["unknown CURVE key"] == want
    assert obs["a known key under another identity"] == want


def test_queries(obs: Dict[str, Any], target: Any) -> None:
    """``query serverkey`` and ``platform-version`` crash modular's router (``router.py:319``
    NameError KeyStore, ``:330`` NotImplementedError) and with it the platform."""
    assert obs["query instance-name"] == [obs.get("query instance-name", [""])[0]] and obs["query instance-name"][0]
    if on_viprouter(target):
        assert len(obs["query serverkey"][0]) == (43 if target[1] == "curve" else 0)
        assert obs["router alive after query serverkey"] is True
        assert obs["router alive after query platform-version"] is True
    else:
        assert obs["query serverkey"] == "no reply"
        # The platform shut down; the client's agents may even block for good (checkpoint()).
        assert obs.get("router alive after query serverkey") is not True
