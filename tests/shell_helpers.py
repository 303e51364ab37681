"""Helpers shared by tests that drive the shell's command path."""
from appliance.shell.session import execute


def run(session, *lines):
    """Run lines that must all be accepted; return the last output."""
    text = ""
    for line in lines:
        result = execute(session, line)
        assert result.ok, (line, result.text)
        text = result.read()
    return text
