"""
The operators' command reference, generated from the command declarations
(as Osmocom generates its VTY reference from DEFUNs): every mode, how it is
entered, each command with every word and argument and its help.

C{python -m appliance.shell.reference > docs/SHELL.md} (C{make docs})
writes it; C{tests/shell/test_shell_reference.py} fails when the committed
file is not what the declarations give.
"""
from __future__ import annotations

import sys
from typing import Iterable

from appliance.shell.grammar import ANY, Argument, Choice, Command, CommandTree, Mode, Range, Rest
from appliance.shell.types import ARGUMENT_TYPES

__all__ = ["reference", "main"]

HEADER = """\
<!--
  Generated from the shell's command declarations by
  `python -m appliance.shell.reference > docs/SHELL.md` (`make docs`):
  do not edit by hand.  tests/shell/test_shell_reference.py regenerates it
  and fails when this file differs, so whoever adds or changes a command
  regenerates it; when several branches add commands at once, the one
  that lands last regenerates it after rebasing.
-->
# Shell command reference

Operators configure the node over SSH (`ssh -p 2022 admin@node`): an
interactive shell with a pty, one command (`ssh node 'show carriers'`) or
a script on standard input.  Words may be shortened to a unique prefix
(`sh run`); `?` lists what may come next and TAB completes.  A command
marked *admin* is refused to role `view`.  Configuration commands take
effect at once, each in its own transaction.
"""

_KEYS = """\
## Line editing

| key | does |
|---|---|
| Ctrl-A, Home | to the start of the line |
| Ctrl-E, End | to the end of the line |
| Ctrl-U | delete from the start of the line to the cursor |
| Ctrl-W | delete the word before the cursor |
| Ctrl-K | delete from the cursor to the end of the line |
| Ctrl-C | abandon the line (or stop an output being written): new prompt |
| Ctrl-D | leave, at an empty line; else delete the character under the cursor |
| Up, Down | history |
| TAB, `?` | complete, help |
"""


def _prompt(mode: Mode) -> str:
    return "appliance#" if mode.parent is None else f"appliance({mode.name})#"


def _modes(tree: CommandTree, top: Mode) -> list[Mode]:
    """
    Modes as an operator meets them: the top, then each mode followed by
    the modes below it (by C{parent}), in the order they are declared.
    """
    seen: list[Mode] = []
    for c in tree.commands:
        for mode in (c.mode, c.enters):
            if mode is not None and mode is not ANY and mode not in seen:
                seen.append(mode)
    order: list[Mode] = []

    def visit(mode: Mode) -> None:
        order.append(mode)
        for child in seen:
            if child.parent is mode and child not in order:
                visit(child)
    visit(top)
    order.extend(m for m in seen if m not in order)
    return order


def _word(element) -> str:
    if isinstance(element, Choice):
        return " \\| ".join(f"`{o}`" for o in element.options)
    if isinstance(element, Range):
        return f"`{element.word}` (integer)"
    if isinstance(element, Argument):
        return f"`{element.word}` ({element.type.description})"
    if isinstance(element, Rest):
        return "`LINE` (the rest of the line)"
    return f"`{element.word}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _command(command: Command) -> Iterable[str]:
    tags = ["roles admin" if command.privileged else "roles admin and view"]
    if command.enters is not None:
        tags.append(f"enters [{command.enters.name}](#mode-{command.enters.name})")
    yield f"### `{command.spec}`"
    yield ""
    yield "*" + "; ".join(tags) + "*"
    yield ""
    yield "| word | help |"
    yield "|---|---|"
    for element in command.elements:
        yield f"| {_cell(_word(element))} | {_cell(element.help)} |"
    yield ""


def reference(tree: CommandTree, top: Mode) -> str:
    """
    @param tree: the declared commands.
    @param top: the top (exec) mode.
    @return: the reference as Markdown.
    """
    out = [HEADER, _KEYS]
    modes = _modes(tree, top)
    out.append("## Modes\n")
    out.append("| mode | prompt | edits | entered by |")
    out.append("|---|---|---|---|")
    for mode in modes:
        entered = ", ".join(sorted({f"`{c.spec}` ({c.mode.name})" for c in tree.commands
                                    if c.enters is mode})) or "login"
        out.append(f"| [{mode.name}](#mode-{mode.name}) | `{_prompt(mode)}` | "
                   f"{mode.kind or '-'} | {_cell(entered)} |")
    out.append("")
    common = [c for c in tree.commands if c.mode is ANY]
    out.append('<a id="mode-any"></a>\n## Every mode\n')
    out.append("These work in every mode.\n")
    for command in common:
        out.extend(_command(command))
    for mode in modes:
        own = [c for c in tree.commands if c.mode is mode]
        out.append(f'<a id="mode-{mode.name}"></a>\n## Mode {mode.name}\n')
        where = f"Prompt `{_prompt(mode)}`"
        if mode.parent is not None:
            where += f"; `exit` goes back to `{mode.parent.name}`, `end` to the top"
        out.append(where + ".\n")
        for command in own:
            out.extend(_command(command))
    out.append("## Argument types\n")
    out.append("| argument | value |")
    out.append("|---|---|")
    for name in sorted(ARGUMENT_TYPES):
        out.append(f"| `{name}` | {_cell(ARGUMENT_TYPES[name].description)} |")
    return "\n".join(out).rstrip("\n") + "\n"


def current() -> str:
    """@return: the reference of the node's command tree."""
    from appliance.shell.commands import EXEC, TREE
    return reference(TREE, EXEC)


def main() -> None:
    """Write the reference to standard output."""
    sys.stdout.write(current())


if __name__ == "__main__":
    main()
