"""Fixtures of the VOLTTRON 9 platform tests (harness.py: the Platform class)."""
import pytest

from harness import Platform


@pytest.fixture(scope="module")
def platform():
    p = Platform()
    yield p
    p.stop()
