"""The SIGTRAN interface vocabulary the upper layers code against."""
import dataclasses

import pytest

from appliance.sigtran.interfaces import (
    DestinationUnavailable, ProtocolData, SCCPAddress, SS7Settings)


def test_protocol_data_is_immutable():
    """A ProtocolData cannot be changed once built (it crosses layers)."""
    pd = ProtocolData(1, 2, 3, 2, 0, 5, b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pd.dpc = 4


def test_sccp_address_defaults_are_e164_international():
    """An SCCPAddress defaults to TT 0, numbering plan ISDN, NAI
    international, routed on GT."""
    a = SCCPAddress(gt="447700900000", ssn=8)
    assert (a.tt, a.np, a.nai, a.route_on_gt, a.pc) == (0, 1, 4, True, None)


def test_destination_unavailable_names_the_point_code():
    """DestinationUnavailable carries the unreachable point code."""
    e = DestinationUnavailable(185)
    assert e.dpc == 185 and "185" in str(e)


def test_settings_default():
    """The default settings have no GT, SMSC SSN 8 and no circuits."""
    s = SS7Settings()
    assert (s.global_title, s.smsc_ssn, s.circuits) == (None, 8, ())
