# -*- test-case-name: tests.shell.test_shell_commands -*-
"""
What the shell may ask of the running node, handed to it by
L{appliance.application}: instead of a dictionary of services it could
reach into, the shell gets the few collaborators its live commands use.

  - C{core}: the L{appliance.messaging.interfaces.IMessagingCore}
    (C{test route}); C{None} on a node without messaging.
  - C{balances}: something with C{held(payer)} (C{show balance}).
  - C{carriers}: something with C{disconnect_carrier(name)} (C{smpp
    disconnect carrier}).
  - sources by name (L{ILiveSource}): each offers C{statistics()} for
    C{show statistics} and, if it has live tables, C{shell_table(topic,
    **filters)} returning C{(headers, rows)} (C{show smpp binds}, C{show
    sip registrations}, C{show connections}...).

A node without a service shows empty tables: absent collaborators are
C{None} and absent sources give nothing.
"""
from __future__ import annotations

from typing import Any, Iterator

from zope.interface import Interface


class ILiveSource(Interface):
    """A running service the shell shows live state of."""

    def statistics():
        """@return: a mapping of counter name to value."""

    def shell_table(topic, **filters):
        """
        Optional: a live table.

        @return: C{(headers, rows)}.
        @raise KeyError: the source has no such table.
        """


class LiveState:
    """
    The shell's collaborators for live state (see the module docstring).

    @ivar core: the messaging core, or C{None}.
    @ivar balances: the billing service's C{held}, or C{None}.
    @ivar carriers: the SMPP server's carrier operations, or C{None}.
    """

    def __init__(self, core: Any = None, balances: Any = None,
                 carriers: Any = None) -> None:
        """
        @param core: the L{IMessagingCore}, or C{None}.
        @param balances: offers C{held(payer)}, or C{None}.
        @param carriers: offers C{disconnect_carrier(name)}, or C{None}.
        """
        self.core = core
        self.balances = balances
        self.carriers = carriers
        self._sources: dict[str, Any] = {}

    def add_source(self, name: str, source: Any) -> None:
        """
        Show C{source} (an L{ILiveSource}) under C{name}.

        @raise ValueError: the name is taken.
        """
        if name in self._sources:
            raise ValueError(f"live source {name!r} already added")
        self._sources[name] = source

    def source(self, name: str) -> Any:
        """@return: the source called C{name}, or C{None}."""
        return self._sources.get(name)

    def names(self) -> list[str]:
        """@return: the sources' names, sorted."""
        return sorted(self._sources)

    def statistics(self) -> Iterator[tuple[str, str, Any]]:
        """@return: C{(source, counter, value)} of every source, sorted."""
        for name in self.names():
            stats = getattr(self._sources[name], "statistics", None)
            if stats is None:
                continue
            for key, value in sorted(dict(stats()).items()):
                yield name, key, value

    def table(self, name: str, topic: str, **filters: Any
              ) -> tuple[tuple[str, ...], list] | None:
        """
        @return: the source's table C{(headers, rows)}, or C{None} when
            there is no such source or it has no tables.
        """
        fn = getattr(self._sources.get(name), "shell_table", None)
        if fn is None:
            return None
        headers, rows = fn(topic, **filters)
        return tuple(headers), list(rows)
