"""
The view role changes nothing, through any command of the shell.

The sweep is built from the declarations the shell registers
(C{TREE.commands}): a command added tomorrow is swept too, and a command
whose arguments the sample table below cannot fill fails the sweep until
a sample is added.  Each command runs in its own mode, on an existing
object of that mode, as an operator of role C{view}.
"""
from __future__ import annotations

from typing import Any

import pytest

from appliance.shell.commands import TREE
from appliance.shell.grammar import (ANY, Argument, Choice, Command,
                                     GrammarError, Keyword, Mode, Range,
                                     Rest)
from appliance.shell.script import open_session
from appliance.shell.session import execute
from tests.shell_helpers import run

#: Candidate texts tried, in order, for an argument of a type: the first
#: the type converts is used.  Types not listed try every candidate.
SAMPLES: dict[str, tuple[str, ...]] = {
    "NAME": ("v1",), "WORD": ("v1",), "PASSWORD": ("pass1234",),
    "NUMBER": ("964111222444",), "DID": ("964111222444",),
    "ACCOUNT": ("111222444",), "PREFIX": ("964",), "PATTERN": ("964%",),
    "NETWORK": ("10.0.0.0/8",), "DECIMAL": ("0.5",), "HOST": ("127.0.0.1",),
    "IP": ("127.0.0.1",), "CURRENCY": ("USD",), "HEX": ("ab" * 16,),
    "DATE": ("2027-01-15",), "PC": ("0.23.1",), "DIGITS": ("964",),
}
_ANY_TYPE = ("v1", "964111222444", "964", "10.0.0.0/8", "127.0.0.1", "0.5",
             "USD", "2027-01-15", "0.23.1", "ab" * 16, "1")


def sample_value(element: Any) -> str:
    """A text the element accepts."""
    if isinstance(element, Keyword):
        return element.word
    if isinstance(element, Choice):
        return element.options[0]
    if isinstance(element, Range):
        return str(max(element.low, min(1, element.high)))
    if isinstance(element, Rest):
        return "v1"
    assert isinstance(element, Argument), element
    for text in SAMPLES.get(element.type.name, ()) + _ANY_TYPE:
        try:
            element.type.convert(text)
            return text
        except Exception:
            continue
    raise AssertionError(f"no sample for argument type {element.type.name}: "
                         "add one to SAMPLES")


def sample_line(command: Command) -> str:
    """A line that parses to C{command} in its mode."""
    return " ".join(sample_value(e) for e in command.elements)


def _enter(admin: Any, mode: Mode, made: dict) -> list:
    """
    Put the admin session in C{mode} (creating one object per mode on
    the way, with sample lines of the commands that enter them).

    @return: the session's stack then.
    """
    if mode in made:
        admin.stack = list(made[mode])
        return admin.stack
    if mode.parent is None:
        admin.stack = []
        return []
    parent = _enter(admin, mode.parent, made)
    enters = [c for c in TREE.commands if c.enters is mode
              and c.mode in (mode.parent, ANY)]
    assert enters, f"no command enters {mode.name}"
    errors = []
    for command in enters:
        admin.stack = list(parent)
        result = execute(admin, sample_line(command))
        if result.ok and admin.mode is mode:
            made[mode] = list(admin.stack)
            return admin.stack
        errors.append((sample_line(command), result.text))
    raise AssertionError(f"cannot enter {mode.name}: {errors}")


@pytest.fixture
def provisioned(admin, storage):
    """A database with one object of every mode and an operator."""
    run(admin, "configure terminal", "operator bob", "role view", "end")
    made: dict = {}
    modes = {c.mode for c in TREE.commands if c.mode is not ANY}
    for mode in sorted(modes, key=lambda m: m.name):
        _enter(admin, mode, made)
    admin.stack = []
    return made


def _state(storage, admin) -> tuple:
    """What must not change: the last transaction id and the rendered
    configuration."""
    admin.stack = []
    return (storage.db.lastTransaction(),
            execute(admin, "show running-config").read())


def test_sample_lines_parse_to_their_command():
    """Every declared command has a sample line that parses back to it in
    its mode (so the sweep below really runs each one)."""
    from appliance.shell.commands import EXEC
    wrong = []
    for command in TREE.commands:
        mode = EXEC if command.mode is ANY else command.mode
        line = sample_line(command)
        try:
            match = TREE.parse(mode, line)
        except (GrammarError, Exception) as e:
            wrong.append((command, line, str(e)))
            continue
        if match.command is not command:
            wrong.append((command, line, match.command))
    assert not wrong, wrong
    assert len(TREE.commands) > 300


def test_view_role_changes_nothing_through_any_command(admin, storage, audit,
                                                       provisioned):
    """Every command of every mode, run by a view operator in that mode on
    an existing object: each privileged one is refused with
    "% permission denied" and nothing is changed by any (same last
    transaction, same running-config, no audit line)."""
    before = _state(storage, admin)
    audit_lines = len(audit.lines)
    view = open_session(storage, "bob", "view", source="192.0.2.9",
                        audit=audit)
    refused = allowed = 0
    wrong = []
    for command in TREE.commands:
        modes = [m for m in provisioned] if command.mode is ANY \
            else [command.mode]
        if command.mode is ANY:
            modes = [view.top] + sorted(modes, key=lambda m: m.name)[:3]
        for mode in modes:
            view.stack = list(provisioned.get(mode, []))
            line = sample_line(command)
            result = execute(view, line)
            if command.privileged:
                if result.ok or not result.text.startswith(
                        "% permission denied"):
                    wrong.append((mode.name, line, result.text[:80]))
                refused += 1
            else:
                if not result.ok:
                    assert result.text.startswith("% "), (line, result.text)
                allowed += 1
    assert not wrong, wrong
    assert refused >= 280 and allowed >= 40
    assert _state(storage, admin) == before
    assert len(audit.lines) == audit_lines


def test_view_role_cannot_reach_config_mode(storage):
    """A view operator at its own prompt cannot enter configuration mode by
    any spelling, and '?' and list show it no configuration command."""
    view = open_session(storage, "bob", "view")
    for line in ("configure terminal", "conf t", "configure"):
        result = execute(view, line)
        assert not result.ok and result.text.startswith("% "), line
    assert view.mode is view.top
    assert "configure" not in execute(view, "?").read()


def _set_secrets(admin, storage) -> dict[str, str]:
    """Configure one of every kind of secret; return them by name (the
    clear ones and the password-equivalent stored forms)."""
    run(admin, "configure terminal",
        "connection vendor1", "host 127.0.0.1", "system-id vend1",
        "password Zq7Kp2Lm", "exit",
        "carrier carrierA", "system-id carA", "password Cp4ssw0r", "exit",
        "tenant shop", "password tenant-pass-9876",
        "dlr-secret dlrSigningKey4242", "exit",
        "customer Cust", "account 111222555", "password acct-pass-5555",
        "exit", "exit",
        "operator carol", "password oper-pass-7777", "exit",
        "snmp-manager nms", "address 127.0.0.1", "community commS3cr3t",
        "user trapper", "auth sha auth-pass-1111", "priv aes priv-pass-2222",
        "end")
    run(admin, "configure terminal", "tenant shop")
    token = run(admin, "token").split()[1]
    run(admin, "end")
    text = execute(admin, "show running-config").read()
    stored = {}
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["auth-key", "sha"]:
            stored["snmp auth key"] = words[2]
        if words[:2] == ["priv-key", "aes"]:
            stored["snmp priv key"] = words[2]
        if words[:1] == ["password-hash"] and "md5" in words:
            stored["HA1 md5"] = words[words.index("md5") + 1]
            stored["HA1 sha256"] = words[words.index("sha256") + 1]
    assert len(stored) == 4, text
    return {"connection password": "Zq7Kp2Lm", "carrier password": "Cp4ssw0r",
            "tenant password": "tenant-pass-9876",
            "dlr-secret": "dlrSigningKey4242",
            "account password": "acct-pass-5555",
            "operator password": "oper-pass-7777",
            "snmp community": "commS3cr3t", "snmp auth": "auth-pass-1111",
            "snmp priv": "priv-pass-2222", "tenant token": token, **stored}


def test_view_role_sees_no_secret_in_any_show(admin, storage, provisioned):
    """With one of every secret configured (an outbound SMPP password in
    clear, a dlr-secret, SNMP community and v3 keys, account HA1s, and the
    passwords and token that are only kept hashed), no show command run by
    a view operator, show running-config included, prints any of them:
    the clear ones are masked (********), the hashes of scrypt passwords
    and tokens stay.  The admin's running-config still has them all, so it
    round-trips."""
    secrets = _set_secrets(admin, storage)
    view = open_session(storage, "bob", "view")
    outputs = []
    for command in TREE.commands:
        if command.privileged or command.action != "show":
            continue
        view.stack = [] if command.mode is ANY else \
            list(provisioned.get(command.mode, []))
        for line in {sample_line(command)} | (
                {"show running-config tenant shop",
                 "show running-config connection vendor1",
                 "show running-config snmp-manager nms",
                 "show running-config customer Cust"}
                if command.spec.startswith("show running-config") else set()):
            outputs.append((line, execute(view, line).read()))
    leaks = [(name, line) for line, text in outputs
             for name, value in secrets.items() if value in text]
    assert not leaks, leaks
    masked = execute(view, "show running-config").read()
    assert "password ********" in masked
    assert "dlr-secret ********" in masked
    assert "community ********" in masked
    assert "auth-key sha ********" in masked
    assert "priv-key aes ********" in masked
    assert "password-hash realm ******** md5 ********" in masked
    assert "token-hash " in masked and "password-hash " in masked
    full = execute(admin, "show running-config").read()
    for name in ("connection password", "dlr-secret", "snmp community",
                 "snmp auth key", "snmp priv key", "HA1 md5"):
        assert secrets[name] in full, name
    for name in ("carrier password", "tenant password", "account password",
                 "operator password", "snmp auth", "snmp priv",
                 "tenant token"):
        assert secrets[name] not in full, name


def test_audit_and_transaction_notes_hold_no_secret(admin, storage, audit):
    """Commands carrying a secret (any PASSWORD argument, the clear
    secrets of running-config) are audited and noted in the database's
    transaction log with the secret masked; others verbatim."""
    secrets = _set_secrets(admin, storage)
    text = "\n".join(audit.lines)
    notes = "\n".join(str(t["description"]) for t in
                      storage.db.undoLog(0, 10_000))
    for name, value in secrets.items():
        assert value not in text, name
        assert value not in notes, name
    assert "[connection vendor1] password ********" in text
    assert "[snmp-manager nms] auth sha ********" in text
    assert "[snmp-manager nms] community ********" in text
    assert "[connection vendor1] host 127.0.0.1" in text


def test_failed_command_log_masks_secrets(admin, storage, monkeypatch):
    """A command whose handler fails unexpectedly is logged with its
    secret masked."""
    from twisted.logger import globalLogPublisher
    from appliance.shell.commands import carriers  # noqa: F401
    events: list = []
    globalLogPublisher.addObserver(events.append)
    try:
        run(admin, "configure terminal", "connection vendor2")
        import appliance.model.carriers as model
        monkeypatch.setattr(model.Connection, "password",
                            property(lambda s: None,
                                     lambda s, v: 1 / 0))
        result = execute(admin, "password Zq7Kp2Lm")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert result.text == "% internal error: ZeroDivisionError"
    from twisted.logger import formatEvent
    logged = "\n".join(formatEvent(e) for e in events)
    assert "password ********" in logged and "Zq7Kp2Lm" not in logged


def test_pinned_ca_commands(admin, storage, tmp_path):
    """tls-ca (connection) and callback-ca (tenant) take an absolute path
    of a PEM file, refuse anything else with % and change nothing then,
    round-trip through running-config and reset with no."""
    from tests.test_tls import _self_signed
    _, ca, *_ = _self_signed(tmp_path, "ca", "Test CA")
    run(admin, "configure terminal", "connection c1", "tls")
    for bad in ("ca.pem", str(tmp_path / "missing.pem"), __file__):
        result = execute(admin, f"tls-ca {bad}")
        assert not result.ok and result.text.startswith("% "), bad
    assert storage.root().connections["c1"].tls_ca is None
    run(admin, f"tls-ca {ca}", "exit", "tenant t1")
    assert not execute(admin, "callback-ca relative.pem").ok
    run(admin, f"callback-ca {ca}", "end")
    text = execute(admin, "show running-config").read()
    assert f"  tls-ca {ca}" in text and f"  callback-ca {ca}" in text
    from appliance.http.model import tenant_of
    assert tenant_of(storage.root(), "t1").callback_ca == str(ca)
    run(admin, "configure terminal", "connection c1", "no tls-ca", "exit",
        "tenant t1", "no callback-ca", "end")
    text = execute(admin, "show running-config").read()
    assert "tls-ca" not in text and "callback-ca" not in text
