"""
The numbering plan: the node's (C{numbering-plan} mode under C{configure
terminal}) and the per-carrier and per-connection overrides (C{numbering-plan
FIELD VALUE} lines inside C{carrier NAME} and C{connection NAME}, and for
the HTTP API's C{tenant NAME}), and C{show numbering-plan}.

    configure terminal
     numbering-plan
      country-code 964
      national-prefix 0
      international-prefix 00
     exit
     carrier TATA
      numbering-plan unknown-digits national
     exit
     connection env4
      numbering-plan number-format national
     exit

An override left unset inherits the node's value; C{no numbering-plan
FIELD} goes back to inheriting it.  C{show numbering-plan} lists every
origin with an override: carriers and connections, and the kinds other
domains register with L{override_origin} (the HTTP API's tenants).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from appliance.model.numbering import OVERRIDES, PLAN_FIELDS, node_plan
from appliance.shell.commands.helpers import setting
from appliance.shell.commands.modes import CARRIER, CONFIG, CONNECTION, \
    command
from appliance.shell.grammar import ANY, NO_STR, Mode
from appliance.shell.render import table
from appliance.shell.types import ArgumentError, ArgumentType, register_type


def _digits(text: str) -> str:
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise ArgumentError("expected 1 to 6 digits")
    return text


register_type(ArgumentType("DIGITS", "digits", _digits))

#: C{configure terminal / numbering-plan}: the node's plan.
NUMBERING = Mode("config-numbering-plan", CONFIG, "numbering-plan",
                 lambda root, parent, key: root.numbering)

_PLAN = "The numbering plan numbers are read and written with"
_WHO = "Numbering plan override (else the node's plan)"

#: Shell word, argument, plan field, help, argument help.
FIELDS = (
    ("country-code", "DIGITS", "country_code",
     "Country code added to national numbers", "1 to 3 digits, e.g. 964"),
    ("national-prefix", "DIGITS", "national_prefix",
     "Trunk prefix of national numbers", "Digits, e.g. 0"),
    ("international-prefix", "DIGITS", "international_prefix",
     "Prefix of international numbers (default 00)", "Digits, e.g. 00"),
    ("area-code", "DIGITS", "area_code",
     "Area code (national destination code) of subscriber numbers",
     "Digits"),
    ("unknown-digits", "(international|national|subscriber)",
     "unknown_digits", "How bare digits of unknown type are read",
     "As E.164, as a national number, as a subscriber number"),
    ("number-format", "(international|national)", "number_format",
     "Form of numbers sent over SMPP connections",
     "TON 1 with the country code, or TON 2 with the trunk prefix"),
)


def _has_settings(root) -> bool:
    plan = getattr(root, "numbering", None)
    return plan is not None and any(True for _ in plan.changed_settings())


@command(CONFIG, "numbering-plan", help=(_PLAN,), enters=NUMBERING,
         children=lambda root, parent: [""] if _has_settings(root) else [])
def numbering_plan(ctx):
    ctx.enter("")


@command(CONFIG, "no numbering-plan", help=(NO_STR, _PLAN))
def no_numbering_plan(ctx):
    for name in PLAN_FIELDS:
        delattr(ctx.root.numbering, name)


for _word, _arg, _attr, _help, _arg_help in FIELDS:
    setting(NUMBERING, _word, _arg, _attr, _help, _arg_help)


def _override(mode: Mode, word: str, arg: str, attr: str, help: str,
              arg_help: str) -> None:
    slot = OVERRIDES[attr]

    @command(mode, f"numbering-plan {word} {arg}",
             help=(_WHO, help, arg_help),
             render=lambda o: [] if getattr(o, slot) is None
             else [(getattr(o, slot),)])
    def set_override(ctx, value):
        setattr(ctx.obj, slot, value)

    @command(mode, f"no numbering-plan {word}", help=(NO_STR, _WHO, help))
    def unset_override(ctx):
        delattr(ctx.obj, slot)


def override_commands(mode: Mode, sends: bool) -> None:
    """
    Declare the C{numbering-plan FIELD VALUE} overrides in C{mode}.

    @param sends: whether the object sends numbers too (else it has no
        C{number-format}: its numbers are only read).
    """
    for word, arg, attr, help, arg_help in FIELDS:
        if attr == "number_format" and not sends:
            continue
        _override(mode, word, arg, attr, help, arg_help)


override_commands(CARRIER, sends=False)
override_commands(CONNECTION, sends=True)

#: Kinds of origin with overrides, in the order C{show numbering-plan}
#: lists them: C{(kind, objects(root) -> name to object, sends)}.
ORIGINS: list[tuple[str, Callable[[Any], Mapping[str, Any]], bool]] = [
    ("carrier", lambda root: root.carriers, False),
    ("connection", lambda root: root.connections, True),
]


def override_origin(kind: str, objects: Callable[[Any], Mapping[str, Any]],
                    sends: bool = False) -> None:
    """
    Have C{show numbering-plan} list the overrides of another kind of
    origin (declare its commands with L{override_commands}).

    @param kind: the word shown before each name (C{tenant}).
    @param objects: C{objects(root)} gives its objects by name, each with
        C{plan_overrides()}.
    @param sends: whether it sends numbers (else no number format).
    """
    ORIGINS.append((kind, objects, sends))


def _cell(value) -> str:
    return "-" if value is None else str(value)


@command(ANY, "show numbering-plan",
         help=("Show running system information", _PLAN), action="show")
def show_numbering_plan(ctx):
    """The node's plan, then each carrier, connection and tenant with
    overrides: its effective values, C{*} on those it sets (carriers and
    tenants send nothing, so they have no number format)."""
    root = ctx.root
    plan = node_plan(root)
    lines = ["Node"]
    for word, _, attr, _, _ in FIELDS:
        lines.append(f"  {word:<21} {_cell(getattr(plan, attr))}")
    rows = []
    for kind, objects, sends in ORIGINS:
        for name, obj in objects(root).items():
            own = obj.plan_overrides()
            if not any(v is not None for v in own.values()):
                continue
            effective = plan.overlaid(own)
            rows.append((f"{kind} {name}",) + tuple(
                "-" if not sends and attr == "number_format"
                else _cell(getattr(effective, attr))
                + ("*" if own[attr] is not None else "")
                for _, _, attr, _, _ in FIELDS))
    lines.append("")
    lines.append("Overrides (* set here, else the node's)")
    lines.append(table(("Origin", "CC", "Trunk", "Intl", "Area", "Unknown",
                        "Format"), rows))
    return "\n".join(lines)
