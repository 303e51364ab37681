"""
C{show running-config} and table output, both derived from declarations.

The running configuration is written by walking the command tree from the
config mode: each setting command's C{render(obj)} gives the values to
write it with (C{render(obj, root)} for a setting that names another
top-level object, such as a product's tariff), each command that enters a sub-mode gives the keys of its
objects (C{children}), and L{Command.format} writes the line, so what is
written parses back through the same declarations.
"""
from __future__ import annotations

from typing import Any

from appliance.shell.grammar import Command, CommandTree, Mode
# The table formatter is neutral (services format their own status with it);
# re-exported for the shell commands.
from appliance.text_table import table  # noqa: F401


def _write(tree: CommandTree, mode: Mode, root: Any, obj: Any, depth: int,
           lines: list[str], mask: bool) -> None:
    pad = " " * depth
    for command in tree.commands:
        if command.mode is not mode:
            continue
        if command.render is not None:
            # The config mode's own settings render from the root.
            target = root if obj is None else obj
            rendered = (command.render(target, root) if command.render_root
                        else command.render(target))
            for values in rendered:
                lines.append(pad + command.format(values, mask))
        if command.enters is not None and command.children is not None:
            for key in command.children(root, obj):
                _write_object(tree, command, root, obj, key, depth, lines,
                              mask)


def _write_object(tree: CommandTree, command: Command, root: Any, parent: Any,
                  key: Any, depth: int, lines: list[str], mask: bool) -> None:
    child_mode = command.enters
    child = child_mode.resolve(root, parent, key)
    if child is None:
        return
    pad = " " * depth
    lines.append(pad + command.format([key]))
    _write(tree, child_mode, root, child, depth + 1, lines, mask)
    lines.append(pad + "exit")


def running_config(tree: CommandTree, config: Mode, root: Any,
                   only: tuple[str, Any] | None = None,
                   mask: bool = False) -> list[str]:
    """
    The configuration as commands that rebuild it.

    @param tree: the declared commands.
    @param config: the config mode (entered by C{configure terminal}).
    @param root: the C{ApplianceRoot}.
    @param only: C{(kind, key)} to write one top-level object only.
    @param mask: write secret values masked (for role view).
    @return: lines, from C{configure terminal} to C{end}, children indented
        one space per level.
    @raise KeyError: if C{only} names no object.
    """
    lines = ["configure terminal"]
    if only is None:
        _write(tree, config, root, None, 1, lines, mask)
    else:
        kind, key = only
        for command in tree.commands:
            if (command.mode is config and command.enters is not None
                    and command.enters.kind == kind):
                if command.enters.resolve(root, None, key) is None:
                    raise KeyError(key)
                _write_object(tree, command, root, None, key, 1, lines,
                              mask)
                break
        else:
            raise KeyError(kind)
    lines.append("end")
    return lines
