# -*- test-case-name: tests.sigtran.test_mtp -*-
"""
The M3UA layer as the node's MTP (L{IMTPProvider}): which association a
DATA goes out on, which destinations are available, and what the MTP
users (SCCP, ISUP) are told.

A destination point code is available when at least one active
association may carry it: the association's peer did not say DUNA for it
and, on a responder association whose ASP registered routing keys, it is
one of the registered DPCs.  Among the associations that may carry a
message, those in traffic mode C{override} are used one at a time (the
first in configuration order while it is active), those in C{loadshare}
share the traffic by SLS, so one dialogue or circuit keeps one path.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from appliance.sigtran.interfaces import (
    STATUS_CONGESTED, STATUS_USER_INACCESSIBLE, STATUS_USER_UNAVAILABLE,
    STATUS_USER_UNEQUIPPED, DestinationUnavailable, IMTPProvider,
    ProtocolData)


@implementer(IMTPProvider)
class M3UALayer:
    """
    The associations of the node and the users they serve.

    @ivar associations: name to L{Association}, in configuration order.
    @ivar counters: node-wide counters (C{"no route"}, C{"rx other DPC"}).
    """

    log = Logger()

    def __init__(self, point_code: int = 0, network_indicator: int = 0):
        self.point_code = point_code
        self.network_indicator = network_indicator
        self.associations: dict[str, Any] = {}
        self.users: dict[int, Any] = {}
        self.counters: Counter = Counter()
        self._down: set[int] = set()     # DPCs users were told are paused
        self.watched: set[int] = set()   # DPCs of the routes (always shown)

    def watch(self, pcs) -> None:
        """Follow these DPCs (the routes' point codes) from now on."""
        self.watched = set(pcs)
        self._refresh()

    # IMTPProvider

    def register_user(self, si: int, user: Any) -> None:
        """Make C{user} the user part of service indicator C{si}."""
        self.users[si] = user

    def carriers(self, dpc: int, via: str | None = None) -> list[Any]:
        """@return: the active associations that may carry C{dpc}."""
        out = []
        for a in self.associations.values():
            if via is not None and a.name != via:
                continue
            if a.active and dpc not in a.unavailable and (
                    not a.served or dpc in a.served):
                out.append(a)
        return out

    def available(self, dpc: int) -> bool:
        """@return: whether some active association may carry C{dpc}."""
        return bool(self.carriers(dpc))

    def transfer(self, pd: ProtocolData, via: str | None = None) -> None:
        """
        Send C{pd} on the association the traffic modes choose.

        @param via: only through this peer (an C{sccp-route}'s C{peer}).
        @raise DestinationUnavailable: no active association carries it.
        """
        candidates = self.carriers(pd.dpc, via)
        if not candidates:
            self.counters["tx unavailable"] += 1
            raise DestinationUnavailable(pd.dpc)
        self.choose(candidates, pd.sls).send_data(pd)

    @staticmethod
    def choose(candidates: list[Any], sls: int) -> Any:
        """
        Pick the association for one message (pure).

        @return: the first override association if any, else the
            loadshare association that C{sls} selects.
        """
        for a in candidates:
            if a.settings.traffic_mode == "override":
                return a
        return candidates[sls % len(candidates)]

    # from the associations

    def association_active(self, association: Any) -> None:
        """An association became active: resume what it carries."""
        self._refresh()

    def association_down(self, association: Any) -> None:
        """An association is no longer active: pause what it carried."""
        self._refresh()

    def destinations(self, association: Any, pcs: list[int],
                     available: bool) -> None:
        """DUNA or DAVA from a peer."""
        self._refresh(pcs)

    def congestion(self, association: Any, pcs: list[int]) -> None:
        """SCON: tell the users of the congested destinations."""
        for pc in pcs:
            for user in list(self.users.values()):
                user.mtp_status(pc, STATUS_CONGESTED)

    def user_unavailable(self, association: Any, pc: int, user_part: int,
                         cause: int) -> None:
        """DUPU: tell the user part concerned."""
        status = {1: STATUS_USER_UNEQUIPPED,
                  2: STATUS_USER_INACCESSIBLE}.get(cause,
                                                   STATUS_USER_UNAVAILABLE)
        user = self.users.get(user_part)
        if user is not None:
            user.mtp_status(pc, status)

    def data_received(self, association: Any, pd: ProtocolData) -> None:
        """A DATA arrived: hand it to the user part of its SI."""
        if pd.dpc != self.point_code:
            self.counters["rx other DPC"] += 1
            self.log.warn("M3UA {peer}: DATA for DPC {dpc}, not ours",
                          peer=association.name, dpc=pd.dpc)
            return
        user = self.users.get(pd.si)
        if user is None:
            self.counters["rx no user"] += 1
            return
        try:
            user.mtp_transfer(pd)
        except Exception:
            # Broad: a user part's bug on one message must not take the
            # association down; the peer keeps being served.
            self.counters["rx user failed"] += 1
            self.log.failure("user part {si} failed on a message", si=pd.si)

    def _known(self) -> set[int]:
        """Point codes anyone ever said something about."""
        pcs = set(self._down) | self.watched
        for a in self.associations.values():
            pcs |= a.unavailable | a.served
        return pcs

    def _refresh(self, extra: list[int] = ()) -> None:
        """Tell users about every destination whose availability changed."""
        for pc in self._known() | set(extra):
            now = self.available(pc)
            if now and pc in self._down:
                self._down.discard(pc)
                for user in list(self.users.values()):
                    user.mtp_resume(pc)
            elif not now and pc not in self._down:
                self._down.add(pc)
                for user in list(self.users.values()):
                    user.mtp_pause(pc)

    def destination_table(self) -> list[tuple[int, bool]]:
        """@return: C{(pc, available)} for every point code known."""
        return [(pc, self.available(pc)) for pc in sorted(self._known())]
