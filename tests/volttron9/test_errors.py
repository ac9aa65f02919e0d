"""Errors the router generates, as VOLTTRON 9.0.4's agent library receives them, under both
settings of `[viprouter] error-msg-id` (README "Choices", `src/vip/error.rs`).

The library JSON-parses every frame it receives, MSG_ID included (VIP.md §3.7), and RPC's MSG_ID
(`counter.hash`) is a JSON number: echoed byte-exact (`verbatim`, what VIP.md §6.3 asks), the
error comes back as a float, misses the pending call, and the caller times out; written as a
JSON string (`agent-readable`, the default) it raises at once. Error 11 (a recipient that stays
full) is checked the same way. Error 93 and -32001 are in test_agents.py / test_pubsub.py."""
from __future__ import annotations

import os
from typing import Iterator

import gevent
import pytest
import zmq
from volttron.platform.keystore import KeyStore
from volttron.platform.vip.agent.errors import Again
from volttron.platform.vip.socket import decode_key

from conftest import Platform, platform_fixture, wait_for

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def verbatim() -> Iterator[Platform]:
    yield from platform_fixture("curve", {"error-msg-id": "verbatim"})


# A recipient that stays full: a 4 KiB transmit queue and a 100 ms stall before error 11.
@pytest.fixture(scope="module", params=["agent-readable", "verbatim"])
def stalling(request: pytest.FixtureRequest) -> Iterator[tuple[Platform, str]]:
    settings = {"error-msg-id": request.param, "tx-queue-bytes": "4096", "send-stall-ms": "100"}
    for p in platform_fixture("curve", settings):
        yield p, request.param


def test_verbatim_msg_id_makes_unreachable_a_timeout(verbatim: Platform, transport: str) -> None:
    """The agent-library bug the default setting works around (VOLTTRON #2117, #2789)."""
    a = verbatim.agent(f"verb-{transport}", transport)
    before = verbatim.query_stats(a)["errors_unreachable"]
    with pytest.raises(gevent.Timeout):
        a.vip.rpc.call("no.such.peer", "echo", 1).get(timeout=1.5)
    # The router did answer 113 at once; the library dropped it (float MSG_ID, no such call).
    # (>=: on ipc the library also RPCs platform.auth at start, which this router does not have.)
    assert verbatim.query_stats(a)["errors_unreachable"] >= before + 1


def _deaf_peer(platform: Platform, identity: str, transport: str) -> "zmq.Socket[bytes]":
    """A peer that never reads: a libzmq DEALER with VOLTTRON's keys for `identity`, a receive
    high-water mark of 1 and small kernel buffers, so the router's queue to it fills at once."""
    platform.allow(identity)
    ks = KeyStore(os.path.join(platform.home, "keystores", identity, "keystore.json"))
    server = KeyStore(os.path.join(platform.home, "keystore")).public
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, identity.encode())
    s.setsockopt(zmq.RCVHWM, 1)
    s.setsockopt(zmq.RCVBUF, 4096)
    # VOLTTRON's decode_key turns its base64 key text into the Z85 form libzmq takes.
    s.setsockopt(zmq.CURVE_SERVERKEY, decode_key(server))
    s.setsockopt(zmq.CURVE_PUBLICKEY, decode_key(ks.public))
    s.setsockopt(zmq.CURVE_SECRETKEY, decode_key(ks.secret))
    s.connect(platform.address(transport))
    s.send_multipart([b"", b"VIP1", b"", b"deaf.hello", b"hello", b"hello"])
    return s


def test_error_11_for_a_recipient_that_stays_full(stalling: tuple[Platform, str], transport: str) -> None:
    platform, mode = stalling
    a = platform.agent(f"stall-a-{transport}", transport)
    deaf_id = f"deaf-{transport}"
    deaf = _deaf_peer(platform, deaf_id, transport)
    try:
        wait_for("the deaf peer to join", lambda: deaf_id in a.vip.peerlist().get(timeout=5))
        big = "x" * MIB
        calls = [a.vip.rpc.call(deaf_id, "sink", big) for _ in range(12)]
        # A request sent after the calls is answered after all of them were handled (the router
        # reads a's messages in order, pausing a while the deaf peer is full), and its reply
        # comes after every error 11 on a's socket: once it is back, the library has seen them.
        assert deaf_id in a.vip.peerlist().get(timeout=20)
        assert platform.query_stats(a)["errors_again"] > 0
        raised = [c for c in calls if c.ready() and isinstance(c.exception, Again)]
        if mode == "verbatim":
            # Same library bug as above: the Again errors arrive and are dropped.
            assert raised == [] and not any(c.ready() for c in calls)
        else:
            assert raised, "the caller gets Again for the calls the router answered with error 11"
            with pytest.raises(Again) as err:
                raised[0].get(timeout=0)
            assert (err.value.errno, err.value.peer, err.value.subsystem) == (11, deaf_id, "RPC")
            # Every call is either delivered (and waits for a reply that never comes) or refused.
            assert all(not c.ready() or isinstance(c.exception, Again) for c in calls)
    finally:
        deaf.close(linger=0)
