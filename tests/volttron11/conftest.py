"""Fixtures of the modular VOLTTRON tests (README there). Observations of the agent-level
client are kept per target and written to ``target/volttron11/observations.json`` at the end,
for the comparison table (``table.py``)."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

import harness

OBSERVATIONS: Dict[str, Dict[str, Any]] = {}


def pytest_sessionstart(session: Any) -> None:
    if not harness.PYTHON.exists():
        raise pytest.UsageError(f"{harness.PYTHON} missing: run `make volttron11` first")
    if not harness.BIN.exists():
        raise pytest.UsageError(f"{harness.BIN} missing: run `make release` (or set VIPROUTER_BIN)")
    if os.geteuid() != 0:
        raise pytest.UsageError("these tests create an unprivileged user for the platform: run them as root (CI does)")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if OBSERVATIONS:
        out = harness.REPO / "target" / "volttron11" / "observations.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(out.read_text()) if out.exists() else {}
        old.update(OBSERVATIONS)
        out.write_text(json.dumps(old, indent=1, default=repr))


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory the unprivileged user can own (pytest's own tmp is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="viprouter-v11-"))
    yield d
    harness.rmtree(d)


PARTS = ("basic", "protected", "raw", "query")  # "query" last: it crashes modular's router


def run_parts(home: Path, address: str, security: str, auth: str) -> Dict[str, Any]:
    obs: Dict[str, Any] = {}
    for part in PARTS:
        obs.update(harness.client("run", home, "--address", address, "--security", security, "--auth", auth,
                                  "--part", part, timeout=90))
    return obs


def observe_viprouter(security: str, transport: str) -> Dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="viprouter-v11-"))
    try:
        port = harness.free_port()
        home = harness.make_home(d / "home", f"tcp://127.0.0.1:{port}", auth=security == "curve")
        address = f"tcp://127.0.0.1:{port}" if transport == "tcp" else f"ipc://@{home}/run/vip.socket"
        router = harness.Router(home).start()
        try:
            return run_parts(home, address, security, "inprocess")
        finally:
            router.stop()
    finally:
        harness.rmtree(d)


def observe_stock(transport: str) -> Dict[str, Any]:
    """The same client against modular's own platform (its router, its platform.auth); CURVE
    only: the platform does not start with auth-enabled = False (research memo §1.6)."""
    harness.ensure_user()
    harness.check_user_can_run_venv()
    d = Path(tempfile.mkdtemp(prefix="viprouter-v11-"))
    try:
        port = harness.free_port()
        home = harness.make_home(d / "home", f"tcp://127.0.0.1:{port}")
        address = f"tcp://127.0.0.1:{port}" if transport == "tcp" else f"ipc://@{home}/run/vip.socket"
        platform = harness.Platform(d, home, on_viprouter=False).start()
        try:
            return run_parts(home, address, "curve", "platform")
        finally:
            platform.stop()
    finally:
        harness.rmtree(d)


@pytest.fixture(scope="session")
def observed() -> Any:
    """``observed(router, security, transport)``: the client's observations, measured once."""

    def get(router: str, security: str, transport: str) -> Dict[str, Any]:
        key = f"{router} {security} {transport}"
        if key not in OBSERVATIONS:
            OBSERVATIONS[key] = (
                observe_viprouter(security, transport) if router == "viprouter" else observe_stock(transport)
            )
        return OBSERVATIONS[key]

    return get


Target = Tuple[str, str, str]
