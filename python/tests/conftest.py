"""Unit tests of viprouter_volttron. Tests that need VOLTTRON 9 skip without it; run them with
the `make volttron9` venv (`make python-test`)."""
import os
import stat
import sys
import textwrap

import pytest


@pytest.fixture
def fake_router(tmp_path):
    """Write an executable Python script standing in for viprouter; returns a factory
    make(body) -> path. The body runs with `sys`, `os`, `signal`, `time` imported and
    `state` = a counter file that survives restarts (`bump()` returns the start number)."""

    def make(body: str) -> str:
        path = tmp_path / "viprouter"
        counter = tmp_path / "starts"
        path.write_text(
            f"#!{sys.executable}\n"
            "import os, signal, sys, time\n"
            f"COUNTER = {str(counter)!r}\n"
            "def bump():\n"
            "    n = int(open(COUNTER).read()) + 1 if os.path.exists(COUNTER) else 1\n"
            "    open(COUNTER, 'w').write(str(n))\n"
            "    return n\n" + textwrap.dedent(body)
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    return make
