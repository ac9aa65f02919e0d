"""``viprouter-volttron``: the ``volttron`` command with viprouter as the message bus.

Dispatches on the VOLTTRON installed in this Python: VOLTTRON 9.x (``volttron.platform.main``)
runs through ``volttron9.py``; modular VOLTTRON (``volttron.server``, 10+: volttron 11 /
volttron-core 2.x) through ``modular.py``. Arguments are VOLTTRON's own.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import List, Optional, Sequence

VOLTTRON9 = "volttron9"
MODULAR = "modular"


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def detect_flavour() -> Optional[str]:
    """Which VOLTTRON this Python can import: ``"volttron9"``, ``"modular"`` or None."""
    if _has("volttron.platform.main"):
        return VOLTTRON9
    if _has("volttron.server"):
        return MODULAR
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv if argv is None else argv)
    flavour = detect_flavour()
    if flavour == VOLTTRON9:
        from . import volttron9

        return volttron9.run(args)
    if flavour == MODULAR:
        from . import modular

        return modular.run(args)
    sys.stderr.write(
        f"viprouter-volttron: no VOLTTRON installed for {sys.executable} (see README: make volttron9, make volttron11)\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
