"""``viprouter-volttron``: the ``volttron`` command with viprouter as the message bus.

Dispatches on the VOLTTRON installed in this Python: modular VOLTTRON (``volttron.server``,
volttron 10+) runs through ``modular.py``. Arguments are VOLTTRON's own.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import List, Optional, Sequence


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv if argv is None else argv)
    if _has("volttron.server.run_server"):
        from . import modular

        return modular.run(args)
    sys.stderr.write(f"viprouter-volttron: no modular VOLTTRON installed for {sys.executable} (see README)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
