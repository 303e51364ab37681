"""
The shell side of TCAP and ISUP: C{show tcap dialogues}, and the ISUP
release settings in C{show running-config} and in the running layer.
"""
import pytest
from twisted.internet.task import Clock

from appliance.application import memory_storage
from appliance.shell.script import open_session, run_script
from appliance.shell.session import execute
from appliance.sigtran.interfaces import SCCPAddress
from appliance.sigtran.smsc import SMSCService
from tests.sigtran.fakes import FakeSS7


@pytest.fixture
def storage():
    st = memory_storage(Clock())
    yield st
    st.close()


def test_release_settings_round_trip(storage):
    """isup release-cause and release-timer are kept, shown in the running config, and removed by no."""
    result = run_script(storage, "configure terminal\nss7\n isup release-cause 34\n"
                                 " isup release-timer 5\nend\n", user="t")
    assert result.ok, result.text
    session = open_session(storage, "admin", "admin")
    text = execute(session, "show running-config").text
    assert " isup release-cause 34" in text and " isup release-timer 5" in text
    bad = run_script(storage, "configure terminal\nss7\n isup release-cause 200\nend\n", user="t")
    assert not bad.ok
    run_script(storage, "configure terminal\nss7\n no isup release-cause\nend\n", user="t")
    assert "isup release-cause" not in execute(open_session(storage, "admin", "admin"),
                                               "show running-config").text


def test_layer_follows_the_settings(storage):
    """The running ISUP layer takes the configured cause and timer after the commit."""
    clock = Clock()
    svc = SMSCService(FakeSS7(), None, clock, storage=storage)
    svc.startService()
    run_script(storage, "configure terminal\nss7\n isup release-cause 34\n isup release-timer 5\nend\n", user="t")
    assert (svc.isup.release_cause, svc.isup.release_delay) == (34, 5)
    svc.stopService()


def test_show_tcap_dialogues(storage):
    """show tcap dialogues lists open dialogues by direction and context, and the counters."""
    clock = Clock()
    ss7 = FakeSS7()
    svc = SMSCService(ss7, None, clock)
    svc.startService()
    svc.client.sri_sm("447900123456")
    session = open_session(storage, "admin", "admin")
    session.live.add_source("map", svc)
    text = execute(session, "show tcap dialogues").text
    assert "1 dialogues open" in text and "out shortMsgGateway-v3" in text and "begin-sent" in text
    svc.stopService()
    assert not clock.getDelayedCalls()


def test_transport_map_policy(storage):
    """A service policy can deliver over map; it shows in the running config."""
    result = run_script(storage, "configure terminal\nservice-policy mobiles\n recipient-pattern 4479%\n"
                                 " transport map\nend\n", user="t")
    assert result.ok, result.text
    text = execute(open_session(storage, "admin", "admin"), "show running-config").text
    assert "  transport map" in text
    assert storage.root().policies["mobiles"].transport == "map"
