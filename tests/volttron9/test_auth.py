"""auth.json edits taking effect live, with VOLTTRON 9.0.4 agents and VOLTTRON's own AuthFile
(README "Security"): a key not in auth.json is refused; adding its entry admits it without a
restart; removing an entry refuses new connections with that key while established peers stay.
CURVE only (with allow-auth off nobody is refused), tcp and ipc."""
from __future__ import annotations

import re
from typing import Iterator

import pytest
from volttron.platform.auth.auth_entry import AuthEntry
from volttron.platform.auth.auth_file import AuthFile

from conftest import Platform, platform_fixture


@pytest.fixture(scope="module")
def curve() -> Iterator[Platform]:
    yield from platform_fixture("curve")


def refused_line(platform: Platform, public: str, since: int) -> re.Match[str]:
    """viprouter logs each refused key once per address (README "Security")."""
    return platform.wait_log(rf"refused CURVE key {re.escape(public)} from ", since=since)


def test_new_key_refused_then_admitted_live(curve: Platform, transport: str) -> None:
    identity = f"newcomer-{transport}"
    public = curve.keystore(identity).public  # the pair the agent library will load
    mark = curve.log_mark()
    refused = curve.agent(identity, transport, allow=False, wait=False)
    refused_line(curve, public, mark)
    # Refused with a ZMTP ERROR: libzmq 4.3.5 treats that as a protocol error and does not
    # reconnect, so the agent is never welcomed (its Core gives up after 10 s, core.py:593-605).
    assert not refused.vt9_started.wait(0.5)
    assert not refused.core.connected
    curve.stop_agent(refused)
    # VOLTTRON's own AuthFile.add (what `vctl auth add` runs): the next connection is admitted,
    # without a restart.
    mark = curve.log_mark()
    AuthFile(curve.auth_path).add(AuthEntry(user_id=identity, identity=identity, credentials=public))
    curve.wait_auth_reload(mark)
    admitted = curve.agent(identity, transport, allow=False)
    assert admitted.vip.hello().get(timeout=5)[2] == identity


def test_removed_key_refused_for_new_connections_only(curve: Platform, transport: str) -> None:
    staying = curve.agent(f"staying-{transport}", transport)
    leaving_id = f"leaving-{transport}"
    leaving = curve.agent(leaving_id, transport)
    public = curve.keystore(leaving_id).public
    curve.stop_agent(leaving)
    mark = curve.log_mark()
    AuthFile(curve.auth_path).remove_by_credentials(public)
    curve.wait_auth_reload(mark)
    # A new connection with the removed key is refused ...
    mark = curve.log_mark()
    again = curve.agent(leaving_id, transport, allow=False, wait=False)
    refused_line(curve, public, mark)
    assert not again.vt9_started.wait(0.5)
    # ... while established peers are never dropped by a reload (README "Security").
    staying_public = curve.keystore(staying.core.identity).public
    mark = curve.log_mark()
    AuthFile(curve.auth_path).remove_by_credentials(staying_public)
    curve.wait_auth_reload(mark)
    assert staying.vip.hello().get(timeout=5)[2] == staying.core.identity
    assert staying.core.identity in staying.vip.peerlist().get(timeout=5)


def test_disabled_entry_and_broken_file(curve: Platform, transport: str) -> None:
    """A disabled entry admits nobody; a broken auth.json keeps the previous rules in force."""
    identity = f"toggle-{transport}"
    public = curve.keystore(identity).public

    def add_disabled(allow: list[AuthEntry]) -> None:
        allow.append(AuthEntry(user_id=identity, identity=identity, credentials=public, enabled=False))

    curve.edit_auth(add_disabled)
    mark = curve.log_mark()
    refused = curve.agent(identity, transport, allow=False, wait=False)
    refused_line(curve, public, mark)
    curve.stop_agent(refused)

    def enable(allow: list[AuthEntry]) -> None:
        for e in allow:
            if e.user_id == identity:
                e.enabled = True

    curve.edit_auth(enable)
    curve.agent(identity, transport, allow=False)
    # A broken file: reported, and the previous rules stay in force (not "nobody", not "anybody").
    kept = f"{identity}-kept"
    curve.allow(kept)
    text = open(curve.auth_path).read()
    mark = curve.log_mark()
    with open(curve.auth_path, "w") as f:
        f.write(text + "\n}}} not json")
    curve.wait_log(r"keeping the previous rules", since=mark)
    stranger = curve.agent(f"{identity}-stranger", transport, allow=False, wait=False)
    refused_line(curve, curve.keystore(f"{identity}-stranger").public, mark)
    curve.stop_agent(stranger)
    curve.agent(kept, transport, allow=False)
    mark = curve.log_mark()
    with open(curve.auth_path, "w") as f:
        f.write(text)
    curve.wait_auth_reload(mark)
