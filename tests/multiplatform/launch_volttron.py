"""Start VOLTTRON 9.0.4's platform (``volttron``) as root, for these tests only.

``volttron/platform/main.py:1300-1304`` refuses to run when ``os.getuid()`` is 0, and CI runs as
root. As the vendor README says, this answers only that first ``os.getuid()`` call with a
non-zero uid and restores the real function at once, then runs VOLTTRON's own entry point
(``volttron.platform.main:_main``) unchanged. Arguments are ``volttron``'s.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import volttron.platform.main as platform_main


def answer_root_check_once() -> None:
    """Make the next ``os.getuid()`` return 65534 when running as root; later calls are real."""
    real: Callable[[], int] = os.getuid
    if real() != 0:
        return

    def once() -> int:
        os.getuid = real
        return 65534

    os.getuid = once


if __name__ == "__main__":
    sys.argv[0] = "volttron"
    answer_root_check_once()
    platform_main._main()
