"""
Tests for the generated command reference (L{appliance.shell.reference},
C{docs/SHELL.md}).
"""
from __future__ import annotations

from pathlib import Path

from appliance.shell.commands import EXEC, TREE
from appliance.shell.grammar import ANY
from appliance.shell.reference import current, reference

SHELL_MD = Path(__file__).parents[2] / "docs" / "SHELL.md"


def test_docs_shell_md_is_current() -> None:
    """
    docs/SHELL.md is what the command declarations generate: a command
    added, removed or whose help changed without C{make docs} fails here.
    """
    assert SHELL_MD.read_text(encoding="utf-8") == current(), \
        "docs/SHELL.md is stale: run `make docs` and commit it"


def test_every_mode_command_and_word_is_documented() -> None:
    """
    The reference names every mode, every command's spec and every word's
    help text, and tells which commands role view may use.
    """
    text = reference(TREE, EXEC)
    for command in TREE.commands:
        assert f"### `{command.spec}`" in text
        for element in command.elements:
            assert element.help.replace("|", "\\\\|") in text
        if command.mode is not ANY:
            assert f'<a id="mode-{command.mode.name}"></a>' in text
    assert "roles admin and view" in text and "roles admin*" in text
    assert "| Ctrl-W |" in text
