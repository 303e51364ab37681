"""
Declaration helpers for the common shapes: an object that has a sub-mode,
a setting with its C{no} form, an on/off flag.

Each helper declares ordinary commands in L{TREE}; the running-config
writer reads their C{render} and C{children} like any other command.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from appliance.shell.commands.modes import CONFIG, command
from appliance.shell.grammar import NO_STR, Mode


def is_default(obj: Any, attr: str) -> bool:
    """
    @param obj: a model object whose class declares C{attr} as a Setting.
    @param attr: the setting.
    @return: whether it holds its class default.
    """
    return getattr(obj, attr) == getattr(type(obj), attr).default


def object_commands(keyword: str, argtype: str, enters: Mode, help: str,
                    arg_help: str, add: Callable[[Any, str], Any],
                    remove: Callable[[Any, str], None],
                    children: Callable[[Any, Any], Iterable[str]],
                    mode: Mode = CONFIG) -> None:
    """
    Declare C{KEYWORD NAME} (create if absent, enter its mode) and
    C{no KEYWORD NAME} (remove).

    @param keyword: the command word (C{carrier}).
    @param argtype: the argument type (C{CARRIER}, for name completion).
    @param enters: the object's mode.
    @param help: help for the keyword.
    @param arg_help: help for the name.
    @param add: C{add(ctx, name)} creates the object and returns it.
    @param remove: C{remove(ctx, name)} deletes it.
    @param children: C{children(root, parent)} lists names, in write order.
    @param mode: where the commands live.
    """
    @command(mode, f"{keyword} {argtype}", help=(help, arg_help),
             enters=enters, children=children)
    def enter(ctx, name):
        obj = enters.resolve(ctx.root, ctx.obj, name)
        if obj is None:
            obj = add(ctx, name)
        ctx.enter(obj.name)

    @command(mode, f"no {keyword} {argtype}", help=(NO_STR, help, arg_help))
    def no_enter(ctx, name):
        remove(ctx, name)


def setting(mode: Mode, keyword: str, arg: str, attr: str, help: str,
            arg_help: str, secret: bool = False) -> None:
    """
    Declare C{KEYWORD ARG} (set C{obj.attr}) and C{no KEYWORD} (back to
    the class default), written to running-config when not the default.

    @param mode: the object's mode.
    @param keyword: the command word.
    @param arg: the argument's spec word (C{<1-100>}, C{HOST}...).
    @param attr: the model setting.
    @param help: help for the keyword.
    @param arg_help: help for the argument.
    @param secret: the value is a secret (masked for role view).
    """
    @command(mode, f"{keyword} {arg}", help=(help, arg_help),
             render=lambda o: [] if is_default(o, attr) else [(getattr(o, attr),)],
             secret=secret)
    def set_value(ctx, value):
        setattr(ctx.obj, attr, value)

    @command(mode, f"no {keyword}", help=(NO_STR, help))
    def unset_value(ctx):
        delattr(ctx.obj, attr)


def flag(mode: Mode, keyword: str, attr: str, value: bool,
         help: str | tuple[str, ...]) -> None:
    """
    Declare C{KEYWORD} (set C{obj.attr = value}) and C{no KEYWORD} (back
    to the default, which must be C{not value}).

    @param mode: the object's mode.
    @param keyword: the command word (C{shutdown}, C{tls}).
    @param attr: the boolean model setting.
    @param value: what C{KEYWORD} sets.
    @param help: help for the keyword, or one per word of C{keyword}.
    """
    helps = (help,) if isinstance(help, str) else tuple(help)
    @command(mode, keyword, help=helps,
             render=lambda o: [()] if getattr(o, attr) == value else [])
    def set_flag(ctx):
        setattr(ctx.obj, attr, value)

    @command(mode, f"no {keyword}", help=(NO_STR,) + helps)
    def unset_flag(ctx):
        delattr(ctx.obj, attr)
