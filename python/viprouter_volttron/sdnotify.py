"""systemd's readiness protocol (sd_notify(3)) for a ``Type=notify`` unit, standard library only.

:func:`take_socket` removes ``NOTIFY_SOCKET`` (and the watchdog variables) from the environment
so that no child — the router, VOLTTRON's agents — speaks for the unit (systemd would ignore
them with ``NotifyAccess=main`` and log a warning for each); :func:`notify` sends one state
string (``READY=1``, ``STATUS=…``, ``STOPPING=1``) to the socket it returned.
"""

from __future__ import annotations

import os
import socket
from typing import MutableMapping, Optional


def take_socket(env: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """Pop ``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC``/``WATCHDOG_PID``) from ``env``; return it."""
    env = os.environ if env is None else env
    addr = env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    return addr or None


def notify(addr: Optional[str], state: str) -> bool:
    """Send ``state`` to the notification socket ``addr`` (``@`` = abstract); False if unset or
    it failed (never raises: readiness is advisory)."""
    if not addr:
        return False
    target = "\0" + addr[1:] if addr.startswith("@") else addr
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(target)
            s.sendall(state.encode())
        return True
    except OSError:
        return False
