"""
The import graph: no domain reaches into another domain's internals.

Every module under C{appliance/} is parsed with C{ast} (nothing is
imported). A module of a domain package may import another domain only
through that domain's C{interfaces}, C{vocabulary} or C{generations}
modules, or the neutral shared modules; anything else must be on the
commented allow-list below. The wiring modules (C{appliance.application},
C{appliance.tap}, C{appliance.node}) import everything and are not checked.
"""
from __future__ import annotations

import ast
from pathlib import Path

import appliance

ROOT = Path(appliance.__file__).parent

#: The domain packages whose imports are checked.
DOMAINS = ("smpp", "sip", "http", "sigtran", "notify", "billing",
           "messaging", "model", "store", "alarms", "shell",
           "cluster")
#: Modules any domain may import from another domain.
PUBLIC = ("interfaces", "vocabulary", "generations")
#: Neutral shared packages and modules: pure, owned by no protocol.
#: C{appliance.model} is the shared configuration model (accounts,
#: carriers, tariffs, numbering) that every domain reads.
NEUTRAL = ("appliance.sms", "appliance.model", "appliance.config",
           "appliance.logs", "appliance.metrics", "appliance.text_table")

#: What remains, as (importing module or package prefix, imported module).
ALLOWED = {
    # The shell's command modules configure and show each domain's
    # persistent model: reading and writing it is their job.
    ("appliance.shell.commands.alarms", "appliance.alarms.model"),
    ("appliance.shell.commands.billing", "appliance.billing.model"),
    ("appliance.shell.commands.notification", "appliance.notify.model"),
    ("appliance.shell.commands.ss7", "appliance.sigtran.model"),
    ("appliance.shell.commands.tcap", "appliance.sigtran.model"),
    ("appliance.shell.commands.tenants", "appliance.http.model"),
    # ... and validate with the domain's pure rules and formats, so that a
    # failed command changes nothing: dates of billing records, the charge
    # and origin kinds of authorization rules, settlement periods,
    # notification text templates, SNMP user checks.
    ("appliance.shell.commands.billing", "appliance.billing.rating"),
    ("appliance.shell.commands.billing", "appliance.billing.rules"),
    ("appliance.shell.commands.billing", "appliance.billing.settlement"),
    ("appliance.shell.commands.notification", "appliance.notify.texts"),
    ("appliance.shell.commands.alarms", "appliance.alarms.snmp"),
    # "test route" shows the rule that would apply: it builds the charger's
    # rule book from the database (pure, no charging).
    ("appliance.shell.commands.billing", "appliance.billing.charger"),
    # Still to untangle (not a shell reading a model): notify builds SIP
    # requests and MAP TPDUs itself instead of being handed senders by the
    # wiring.
    ("appliance.notify.service", "appliance.sigtran.tpdu"),
    ("appliance.notify.service", "appliance.sip.headers"),
    ("appliance.notify.service", "appliance.sip.message"),
}


def _module_name(path: Path) -> str:
    parts = ("appliance",) + path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = ROOT.joinpath(*name.split(".")[1:])
    return rel.with_suffix(".py").exists() or (rel / "__init__.py").exists()


def imported(source: str) -> set[str]:
    """
    @return: the C{appliance} modules a source imports, anywhere in it (a
        C{from package import module} names the module).
    """
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 \
                and node.module:
            for a in node.names:
                if _is_module(f"{node.module}.{a.name}"):
                    out.add(f"{node.module}.{a.name}")
                else:
                    out.add(node.module)
    return {m for m in out if m.startswith("appliance.")}


def _domain(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in DOMAINS else None


def violations(module: str, targets: set[str]) -> set[tuple[str, str]]:
    """
    @return: the (module, target) imports that reach into another domain's
        internals and are not allowed.
    """
    mine = _domain(module)
    if mine is None:
        return set()
    bad = set()
    for target in targets:
        theirs = target.split(".")[1] if target.count(".") else None
        if theirs is None or theirs == mine or theirs not in DOMAINS \
                and not ROOT.joinpath(theirs).is_dir():
            continue
        if any(target == n or target.startswith(n + ".") for n in NEUTRAL):
            continue
        if target.split(".")[-1] in PUBLIC and target.count(".") == 2:
            continue
        if (module, target) in ALLOWED:
            continue
        bad.add((module, target))
    return bad


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): imported(p.read_text(encoding="utf-8"))
            for p in sorted(ROOT.rglob("*.py"))}


def test_no_domain_imports_another_domains_internals():
    """Every cross-domain import of a domain module goes through the other
    domain's interfaces, vocabulary or generations, a neutral shared module,
    or the commented allow-list."""
    bad = set()
    for module, targets in _graph().items():
        bad |= violations(module, targets)
    assert sorted(bad) == []


def test_allow_list_has_no_stale_entries():
    """Each allowed import still exists: an entry whose import was removed
    is deleted, so the list shows exactly what remains."""
    graph = _graph()
    stale = {(m, t) for m, t in ALLOWED if t not in graph.get(m, ())}
    assert sorted(stale) == []


def test_new_cross_domain_import_is_caught():
    """A domain module importing another domain's internal module (the SMPP
    server reaching into the message store, SIGTRAN into the shell's
    renderer, a package-style import of SIP's registrar) is reported, while
    the same domains' vocabulary and the neutral codecs are not."""
    source = ("from appliance.messaging.store import MessageStore\n"
              "from appliance.sip import registrar\n"
              "def f():\n"
              "    import appliance.shell.render\n"
              "from appliance.messaging.vocabulary import Submission\n"
              "from appliance.sms.text import gsm7_encode\n")
    assert violations("appliance.smpp.server", imported(source)) == {
        ("appliance.smpp.server", "appliance.messaging.store"),
        ("appliance.smpp.server", "appliance.sip.registrar"),
        ("appliance.smpp.server", "appliance.shell.render"),
    }
