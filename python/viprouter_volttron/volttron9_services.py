"""The VOLTTRON 9.x classes that ``volttron9.py`` substitutes in ``volttron.platform.main``.

Each class subclasses (or stands in for) the VOLTTRON class of the same role and adds only what
a router in another process needs; VOLTTRON's own code does the rest. Line numbers are
VOLTTRON 9.0.4's (``volttron/platform/…``).

* :class:`ExternalRouter` — for ``main.Router`` (``main.py:290``): its ``run()`` runs viprouter
  under the launcher's supervisor and returns when the router has exited cleanly (``quit`` from
  ``control``), so ``zmq_router``'s ``finally`` (``main.py:921-925``) stops the platform exactly
  as when VOLTTRON's router thread ends.
* :class:`PeerlistHealthService` — for ``main.HealthService`` (``main.py:1006``): VOLTTRON's
  router thread called ``peer_added``/``peer_dropped`` directly (``ServicePeerNotifier``,
  ``vip/router.py:196-225``); here the service learns them from the ``peerlist add/drop``
  notifications every peer receives (``vip/agent/subsystems/peerlist.py:119-136``), and re-reads
  ``peerlist list`` whenever it (re)connects — after a router restart included.
* :class:`ReportingAuthService` — for ``main.AuthService`` (``main.py:1245``): turns the
  router's ``viprouter.auth`` reports (``src/server/auth_report.rs``) into what VOLTTRON's ZAP loop
  did with a refused peer (``auth/auth_protocols/auth_zmq.py:274-293``): a pending
  authorization (``_update_auth_pending``), or with ``--setup-mode`` an auth.json entry
  (``_update_auth_entry``). Reports are accepted only from the router itself (empty sender).
* :class:`RouterStatsTracker` and :class:`StatsControlService` — for ``main.Tracker``
  (``main.py:879``) and ``main.ControlService`` (``main.py:985``): ``control``'s ``stats.*`` RPCs
  (``control/control.py:107-114``, what ``vctl stats`` calls) read the router's counters from
  ``query stats`` instead of a ``Tracker`` that VOLTTRON's router filled in-process (and whose
  ``enable`` crashes 9.0.4's router thread). They never raise: a router that does not answer
  gives ``{"error": …}``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from volttron.platform.auth.auth import AuthService
from volttron.platform.control.control import ControlService
from volttron.platform.vip.agent.subsystems.query import Query
from volttron.platform.vip.healthservice import HealthService

_log = logging.getLogger("viprouter_volttron")

# Reports from the router (src/server/auth_report.rs).
REPORT_SUBSYSTEM = "viprouter.auth"
# Bound on the pending list this service grows from reports (the router sends at most 20/s).
MAX_PENDING = 1000


class ExternalRouter:
    """Stands in for ``volttron.platform.main.Router``: same constructor, ``run()`` serves the
    platform with viprouter (see the module doc). ``serve`` is set by ``volttron9.py``."""

    serve: Callable[["ExternalRouter"], None]

    def __init__(self, local_address: str, addresses: Sequence[str] = (), **kwargs: Any) -> None:
        self.local_address = local_address
        self.addresses = list(addresses)
        self.instance_name: Optional[str] = kwargs.get("instance_name")
        # VOLTTRON hands its router a key pair exactly when auth is on (main.py:829-858).
        self.allow_auth = kwargs.get("secretkey") is not None and kwargs.get("publickey") is not None

    def run(self) -> None:
        """Block until the router exits cleanly (or the supervisor gives up)."""
        type(self).serve(self)


class PeerlistHealthService(HealthService):
    """``platform.health`` fed from peerlist notifications (see the module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vip.peerlist.onadd.connect(self._on_peer_add)
        self.vip.peerlist.ondrop.connect(self._on_peer_drop)
        self.core.onconnected.connect(self._on_connected)

    def _on_peer_add(self, sender: Any, peer: str, **kwargs: Any) -> None:
        self.peer_added(peer)

    def _on_peer_drop(self, sender: Any, peer: str, **kwargs: Any) -> None:
        if peer in self._health_dict:
            self.peer_dropped(peer)

    def _on_connected(self, sender: Any, **kwargs: Any) -> None:
        self.core.spawn(self._resync)

    def _resync(self) -> None:
        """Make the peer dictionary match ``peerlist list`` (at start, after a reconnection)."""
        try:
            peers = set(self.vip.peerlist().get(timeout=10))
        except Exception as e:  # a router restart in between: the next connection resyncs
            _log.warning("platform.health: peerlist list failed: %r", e)
            return
        for peer in peers:
            if peer not in self._health_dict:
                self.peer_added(peer)
        for peer in list(self._health_dict):
            if peer not in peers:
                self.peer_dropped(peer)


class ReportingAuthService(AuthService):
    """``platform.auth`` with the router's admission reports (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core.register(REPORT_SUBSYSTEM, self._on_router_report)

    def _on_router_report(self, message: Any) -> None:
        if message.peer != "":
            _log.warning("ignored a %s message from peer %r (only the router sends them)", REPORT_SUBSYSTEM, message.peer)
            return
        report = parse_report(message.args)
        server = self.authentication_server
        if report is None or server is None:
            _log.warning("ignored a malformed %s message: %r", REPORT_SUBSYSTEM, message.args)
            return
        verdict, fields = report
        user_id = str(uuid.uuid4())  # as VOLTTRON's ZAP loop names a refused peer (auth_zmq.py:255)
        if verdict == "refused":
            if len(self._auth_pending) >= MAX_PENDING:
                _log.warning("pending authorizations full (%d): %r not recorded", MAX_PENDING, fields)
                return
            server._update_auth_pending(
                fields["domain"], fields["address"], fields["mechanism"], fields["credentials"], user_id
            )
        else:
            server.authorization._update_auth_entry(
                fields["domain"], fields["address"], fields["mechanism"], fields["credentials"], user_id
            )
            _log.info("new authentication entry added in setup mode: %r, user_id=%r", fields, user_id)


def parse_report(args: Any) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``[verdict, {domain, address, mechanism, credentials, identity}]`` from a report's args
    (the agent library has JSON-decoded what it could), or None when malformed."""
    if not isinstance(args, list) or len(args) != 2 or args[0] not in ("refused", "admitted"):
        return None
    body = args[1]
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    keys = ("domain", "address", "mechanism", "credentials")
    if not isinstance(body, dict) or not all(k in body for k in keys):
        return None
    return str(args[0]), body


class RouterStatsTracker:
    """Stands in for ``volttron.platform.vip.tracking.Tracker`` (see the module doc)."""

    def __init__(self) -> None:
        self.enabled = False
        self._query: Optional[Callable[[], Any]] = None
        self._since: Optional[float] = None
        self._until: Optional[float] = None

    def bind(self, query: Callable[[], Any]) -> None:
        """``query()`` returns the router's ``query stats`` answer (``control`` binds it)."""
        self._query = query

    def enable(self) -> None:
        if not self.enabled:
            self.enabled = True
            self._since, self._until = time.time(), None

    def disable(self) -> None:
        if self.enabled:
            self.enabled = False
            self._until = time.time()

    def reset(self) -> None:
        self._since, self._until = time.time(), None

    def hit(self, topic: Any, frames: Any, extra: Any) -> None:
        """Called per message by VOLTTRON's in-process router only; the counting is viprouter's."""

    @property
    def stats(self) -> Dict[str, Any]:
        """viprouter's counters (cumulative since it started), ``{"error": …}`` if unavailable."""
        if self._query is None:
            return {"error": "control is not connected yet"}
        try:
            counters = self._query()
            if isinstance(counters, (str, bytes)):
                counters = json.loads(counters)
        except Exception as e:
            return {"error": f"router statistics unavailable: {e!r}"}
        if not isinstance(counters, dict):
            return {"error": f"unexpected query stats answer: {counters!r}"}
        out: Dict[str, Any] = {"router": "viprouter", "counters": counters}
        if self._since is not None:
            out["start"] = self._since
        if self._until is not None:
            out["end"] = self._until
        return out


class StatsControlService(ControlService):
    """``control`` whose :class:`RouterStatsTracker` asks the router for its counters."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tracker = kwargs.get("tracker")
        if isinstance(tracker, RouterStatsTracker):
            tracker.bind(self._router_stats)

    def _router_stats(self) -> Any:
        """``query stats`` to the router (a fresh ``Query`` per call, as ``control.py:195`` does)."""
        return Query(self.core).query("stats").get(timeout=5)
