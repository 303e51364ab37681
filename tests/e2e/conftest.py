"""End-to-end fixtures: no node outlives its test."""
import pytest

from tests.e2e.harness import kill_all


@pytest.fixture(autouse=True)
def _no_node_left_behind():
    yield
    kill_all()
