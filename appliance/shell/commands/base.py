"""
Commands of every mode: navigation (C{configure terminal}, C{exit},
C{end}), C{list}, C{help}, C{show version} and C{show running-config}.
"""
from __future__ import annotations

import platform

import twisted

import appliance
from appliance.shell.commands.modes import CONFIG, EXEC, TREE, command
from appliance.shell.grammar import ANY, Keyword
from appliance.shell.render import running_config
from appliance.shell.session import END_SESSION, CommandError


@command(EXEC, "configure terminal",
         help=("Enter configuration mode", "From this terminal"),
         action="session", enters=CONFIG)
def configure_terminal(ctx):
    ctx.session.stack[:] = [(CONFIG, None)]


@command(ANY, "exit", help=("Leave this mode (at the top: end the session)",),
         action="session", privileged=False)
def exit_(ctx):
    if not ctx.session.stack:
        return END_SESSION
    ctx.session.stack.pop()


@command(ANY, "end", help=("Back to the top mode",), action="session",
         privileged=False)
def end(ctx):
    ctx.session.stack.clear()


@command(ANY, "list", help=("List the commands of this mode",),
         action="session", privileged=False)
def list_(ctx):
    s = ctx.session
    return "\n".join(f"  {c.spec}" for c in TREE.in_mode(s.mode, s.admin))


@command(ANY, "help", help=("How to use this shell",), action="session",
         privileged=False)
def help_(ctx):
    return ("  Type ? for the commands or words that may come next, TAB to\n"
            "  complete a word; any unique prefix of a word works (sh run).\n"
            "  Quote names with spaces: \"Call & Chat\". 'no' undoes a\n"
            "  setting; 'exit' leaves a mode, 'end' goes to the top.\n"
            "  Every accepted configuration command is saved at once.")


@command(ANY, "show version", help=("Show running system information",
                                    "Software and node version"),
         action="show")
def show_version(ctx):
    s = ctx.session
    return (f"appliance {appliance.__version__} (Twisted {twisted.__version__}"
            f", Python {platform.python_version()})\n"
            f"node {s.hostname}, operator {s.operator} (role {s.role})")


@command(ANY, "show running-config",
         help=("Show running system information",
               "The configuration as commands"), action="show")
def show_running_config(ctx):
    return "\n".join(running_config(TREE, CONFIG, ctx.root,
                                    mask=not ctx.session.admin))


def declare_object_running_config() -> None:
    """
    Declare C{show running-config KIND NAME} for every command of the
    config mode that enters an object's mode. Called once all command
    modules are imported.
    """
    for c in list(TREE.commands):
        if c.mode is not CONFIG or c.enters is None or c.children is None \
                or len(c.elements) < 2:
            continue
        kind = c.enters.kind
        arg = c.elements[1]

        def show_one(ctx, key, kind=kind):
            try:
                lines = running_config(TREE, CONFIG, ctx.root, (kind, key),
                                       mask=not ctx.session.admin)
            except KeyError:
                raise CommandError(f"no {kind} named {key!r}") from None
            return "\n".join(lines)
        assert isinstance(c.elements[0], Keyword)
        TREE.command(ANY, f"show running-config {kind} {arg.word}",
                     help=("Show running system information",
                           "The configuration as commands",
                           c.elements[0].help, arg.help),
                     action="show")(show_one)
