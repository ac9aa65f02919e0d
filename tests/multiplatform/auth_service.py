"""VOLTTRON 9.0.4's own ``platform.auth`` service (``volttron.platform.auth.auth.AuthService``,
unmodified) run as an agent of a bare viprouter platform, for these tests only.

A VOLTTRON agent checks a capability-protected RPC by asking ``platform.auth`` for the caller's
capabilities (``vip/agent/subsystems/rpc.py:290-313`` → ``subsystems/auth.py:106-118``,
``get_user_to_capabilities``). VOLTTRON's platform starts that service itself
(``platform/main.py:1240-1252``, in-process over inproc); the bare ``viprouter --volttron-home``
is only the router, so a test that calls a protected method on a viprouter platform starts the
service here, connected over tcp with CURVE under the keys of
``$VOLTTRON_HOME/keystores/platform.auth/keystore.json`` (which viprouter admits as
``platform.auth``, as VOLTTRON's platform admits its built-in services: VIP.md §9.7). It reads the
platform's ``auth.json`` as VOLTTRON's does. (The ``viprouter-volttron`` launcher, when it is
installed, runs VOLTTRON's services itself: ``platforms.py`` then starts none of this.)

Usage: ``auth_service.py VOLTTRON_HOME ADDRESS SERVERKEY LOGFILE``; runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import gevent
import gevent.event
from volttron.platform.auth.auth import AuthService


def main(home: Path, address: str, serverkey: str, log: Path) -> None:
    logging.basicConfig(filename=str(log), level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    keys = json.loads((home / "keystores" / "platform.auth" / "keystore.json").read_text())
    service = AuthService(
        str(home / "auth.json"),
        str(home / "protected_topics.json"),
        False,  # setup mode
        None,  # aip: only used by VOLTTRON's setup mode and pending-agent approval
        identity="platform.auth",
        address=address,
        serverkey=serverkey,
        publickey=keys["public"],
        secretkey=keys["secret"],
        volttron_home=str(home),
        enable_store=False,
        heartbeat_autostart=False,
        message_bus="zmq",
        enable_auth=True,
    )
    started = gevent.event.Event()
    task = gevent.spawn(service.core.run, started)
    stop = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    if not started.wait(timeout=20):
        raise SystemExit("platform.auth did not start")
    logging.getLogger("auth_service").info("platform.auth running on %s", address)
    while not stop.is_set() and not task.dead:
        stop.wait(timeout=0.5)
    service.core.stop(timeout=3)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
