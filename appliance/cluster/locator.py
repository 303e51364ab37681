# -*- test-case-name: tests.cluster.test_service -*-
"""
Where an account's app is registered, across nodes: the SIP registrar's
bindings carry the node that holds each one (this node's from memory, the
others' from the database as of the last poll), and
C{BindingStore.holders} orders those nodes latest first.  L{RegistrarLocator}
gives the cluster that answer through its own narrow interface.
"""
from __future__ import annotations

from typing import Callable

from zope.interface import implementer

from appliance.cluster.interfaces import IRegistrationLocator


@implementer(IRegistrationLocator)
class RegistrarLocator:
    """The registrar's answer, as the cluster asks it."""

    def __init__(self, holders: Callable[[str], tuple[str, ...]]) -> None:
        """
        @param holders: username to the names of the nodes holding its
            live registrations, best first (the SIP service's
            C{store.holders}).
        """
        self._holders = holders

    def holders(self, username: str) -> tuple[str, ...]:
        """@return: what the registrar says, as a tuple."""
        return tuple(self._holders(username))

    def registered(self, username: str) -> None:
        """Nothing to record: the registrar writes its bindings, with this
        node's name, itself."""
