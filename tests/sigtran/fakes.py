"""
Fakes of the lower SIGTRAN layers for the TCAP/MAP/ISUP unit tests.
"""
from __future__ import annotations

from zope.interface import implementer

from appliance.sigtran.interfaces import (
    DestinationUnavailable, IMTPProvider, ISCCPProvider, SCCPAddress,
    SS7Settings, CircuitRange)


@implementer(ISCCPProvider)
class FakeSCCP:
    """
    Records what is sent; C{peer} (another FakeSCCP) gets it delivered
    at once to its registered subsystem, as if across the network.
    """

    def __init__(self, gt: str, pc: int = 1):
        self.gt = gt
        self.pc = pc
        self.sent: list[tuple] = []
        self.users: dict[int, object] = {}
        self.peer: FakeSCCP | None = None
        self.hlr: SCCPAddress | None = None
        self.fail: Exception | None = None

    def send_unitdata(self, called, calling, data, return_on_error=True, sequence=None):
        if self.fail is not None:
            raise self.fail
        self.sent.append((called, calling, data))
        if self.peer is not None:
            user = self.peer.users.get(called.ssn) or next(iter(self.peer.users.values()))
            user.unitdata(called, calling, data)

    def register_ssn(self, ssn, user):
        self.users[ssn] = user

    def local_address(self, ssn):
        return SCCPAddress(gt=self.gt, ssn=ssn, pc=self.pc)

    def hlr_address(self):
        return self.hlr


def pair(gt_a: str = "447700900000", gt_b: str = "447700900111"):
    """Two fake SCCPs wired to each other."""
    a, b = FakeSCCP(gt_a, 1), FakeSCCP(gt_b, 2)
    a.peer, b.peer = b, a
    return a, b


@implementer(IMTPProvider)
class FakeMTP:
    """Records transfers; C{unavailable} point codes raise."""

    point_code = 100
    network_indicator = 2

    def __init__(self):
        self.sent = []
        self.users = {}
        self.unavailable: set[int] = set()

    def transfer(self, pd):
        if pd.dpc in self.unavailable:
            raise DestinationUnavailable(pd.dpc)
        self.sent.append(pd)

    def register_user(self, si, user):
        self.users[si] = user

    def available(self, dpc):
        return dpc not in self.unavailable


class FakeSS7:
    """The node SS7 service's face to the upper layers."""

    def __init__(self, sccp=None, mtp=None, circuits=((200, 1, 31),)):
        self.sccp = sccp or FakeSCCP("447700900000")
        self.mtp = mtp or FakeMTP()
        self._settings = SS7Settings(point_code=100, global_title="447700900000", smsc_ssn=8,
                                     circuits=tuple(CircuitRange(*c) for c in circuits))

    def settings(self):
        return self._settings
