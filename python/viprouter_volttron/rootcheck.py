"""The opt-in answer to VOLTTRON's "refusing to run as root" check, for tests and CI only.

VOLTTRON's ``volttron`` (``volttron/platform/main.py:1300-1304``) and ``vctl``
(``volttron/platform/control/control_parser.py``) exit with status 77 when ``os.getuid()`` is 0.
CI containers run as root. With ``VIPROUTER_VOLTTRON_ALLOW_ROOT=1`` in the environment (and only
then), :func:`answer_next_getuid_unprivileged` makes the *next* ``os.getuid()`` call return
65534 (``nobody``) and restores the real function at once, so only that check is answered and
everything after it (file ownership, VOLTTRON's NULL-ipc rule comparing uids) sees the real uid.
By default nothing changes: as root, ``viprouter-volttron`` refuses exactly as ``volttron`` does.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, List, Mapping, Optional

ENV = "VIPROUTER_VOLTTRON_ALLOW_ROOT"
UNPRIVILEGED_UID = 65534


def allowed(env: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the environment opts in (``VIPROUTER_VOLTTRON_ALLOW_ROOT=1``)."""
    return (os.environ if env is None else env).get(ENV) == "1"


def answer_next_getuid_unprivileged() -> None:
    """Make the next ``os.getuid()`` return 65534 if the real uid is 0; later calls are real."""
    real: Callable[[], int] = os.getuid
    if real() != 0:
        return

    def once() -> int:
        os.getuid = real
        return UNPRIVILEGED_UID

    os.getuid = once


def apply_if_allowed(env: Optional[Mapping[str, str]] = None) -> bool:
    """:func:`answer_next_getuid_unprivileged` when :func:`allowed`; returns whether applied."""
    if allowed(env) and os.getuid() == 0:
        answer_next_getuid_unprivileged()
        return True
    return False


def run_console_script(argv: List[str]) -> int:
    """``python -m viprouter_volttron.rootcheck NAME ARGS…``: run the console script ``NAME``
    (e.g. ``vctl``, ``volttron`` — VOLTTRON's own, with its own router) with the opt-in answer
    applied; refused without ``VIPROUTER_VOLTTRON_ALLOW_ROOT=1`` as the script itself would."""
    from importlib.metadata import entry_points

    if not argv:
        sys.stderr.write("usage: python -m viprouter_volttron.rootcheck SCRIPT [ARGS...]\n")
        return 2
    try:
        scripts = list(entry_points(group="console_scripts"))
    except TypeError:  # Python < 3.10: a dict of groups
        groups: Any = entry_points()
        scripts = list(groups.get("console_scripts", []))
    found = [e for e in scripts if e.name == argv[0]]
    if not found:
        sys.stderr.write(f"no console script named {argv[0]!r} in this Python\n")
        return 2
    apply_if_allowed()
    sys.argv = list(argv)
    result = found[0].load()()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(run_console_script(sys.argv[1:]))
