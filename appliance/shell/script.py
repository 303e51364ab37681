"""
Sessions on the standard command tree, and scripts: many lines run in
order through L{execute}, stopping at the first error.

Scripts on SSH standard input and start-up provisioning (C{shell/demo.cli})
both use L{run_lines}.
"""
from __future__ import annotations

from typing import Any, Iterable

from appliance.shell.commands import EXEC, TREE
from appliance.shell.session import AuditLog, Result, Session, execute


def open_session(storage: Any, operator: str, role: str, source: str = "",
                 live: Any = None, audit: AuditLog | None = None,
                 hostname: str = "appliance",
                 realm: str = "appliance") -> Session:
    """
    A session on the standard command tree, at the top mode.

    @param storage: the L{appliance.store.interfaces.IStorage}.
    @param operator: who (transaction user and audit).
    @param role: C{admin} or C{view}.
    @param source: the client address.
    @param live: the L{appliance.shell.live.LiveState} (live C{show}
        commands).
    @param audit: where accepted changes are recorded.
    @param hostname: the prompt's node name.
    @param realm: the SIP digest realm.
    @return: the session.
    """
    return Session(storage, TREE, EXEC, operator, role, source=source,
                   live=live, audit=audit, hostname=hostname, realm=realm)


def run_lines(session: Session, lines: Iterable[str]) -> Result:
    """
    Run lines in order; stop at the first refused one.

    @param session: the session.
    @param lines: the script's lines.
    @return: all output; on an error C{ok} is C{False} and the text ends
        with C{% line N: reason} (N counts from 1). An C{exit} at the top
        ends the script successfully.
    """
    out: list[str] = []
    for number, line in enumerate(lines, 1):
        result = execute(session, line)
        if not result.ok:
            reason = result.text[2:] if result.text.startswith("% ") \
                else result.text
            out.append(f"% line {number}: {reason}")
            return Result("\n".join(out), False)
        if result.read():
            out.append(result.text)
        if result.ended:
            break
    return Result("\n".join(out), True)


def run_script(storage: Any, text: str, user: str = "provision",
               source: str = "startup", audit: AuditLog | None = None,
               live: Any = None, realm: str = "appliance") -> Result:
    """
    Run a configuration script (start-up provisioning) as an admin.

    @param storage: the storage.
    @param text: the script.
    @param user: the operator name recorded in transactions and audit.
    @param source: recorded as the source address.
    @param audit: where accepted changes are recorded.
    @param live: the L{appliance.shell.live.LiveState}.
    @param realm: the SIP digest realm.
    @return: see L{run_lines}.
    """
    session = open_session(storage, user, "admin", source=source, live=live,
                           audit=audit, realm=realm)
    return run_lines(session, text.splitlines())
