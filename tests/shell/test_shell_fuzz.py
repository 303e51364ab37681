"""Property tests: execute() never raises and answers '% ...' on errors."""
from appliance.application import memory_storage
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from appliance.shell.commands import TREE
from appliance.shell.script import open_session
from appliance.shell.session import execute
from appliance.store.database import Storage

SPECS = [c.spec for c in TREE.commands]
WORDS = sorted({w for s in SPECS for w in s.split()} | {
    '"', '"Call & Chat"', "?", "0", "-1", "1.5", "999999999999999999", "%",
    "127.0.0.0/8", "::1", "\\", "\t", "é", "\x00"})

lines = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(WORDS), max_size=7).map(" ".join),
    st.tuples(st.sampled_from(SPECS), st.text(max_size=12),
              st.integers(0, 40)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:]),
)


@pytest.fixture(scope="module")
def shared():
    storage = memory_storage()
    yield storage
    storage.close()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, min_size=1, max_size=6))
def test_execute_never_raises(shared, batch):
    """Random and mutated lines never raise; a refusal starts with '% '."""
    session = open_session(shared, "fuzz", "admin")
    for line in ["configure terminal"] + batch:
        result = execute(session, line)
        assert isinstance(result.text, str)
        if not result.ok:
            assert result.text.startswith("% "), (line, result.text)
            assert "internal error" not in result.text, (line, result.text)


@settings(max_examples=300, deadline=None)
@given(lines, st.sampled_from(["exec", "config"]))
def test_help_and_complete_never_raise(line, where):
    """Help and completion accept any text in any mode."""
    from appliance.shell.commands import CONFIG, EXEC
    from appliance.shell.grammar import GrammarError
    mode = CONFIG if where == "config" else EXEC
    TREE.complete(mode, line)
    try:
        TREE.help(mode, line)
    except GrammarError:
        pass
