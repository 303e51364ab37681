"""
The [m3ua] node service: it follows the ss7 configuration (peers added,
changed and removed reconcile their associations), offers the settings to
the upper layers, shows its state, and leaves no timer behind.
"""
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface.verify import verifyObject

from appliance.application import memory_storage
from appliance.shell.script import run_script
from appliance.sigtran import m3ua
from appliance.sigtran.interfaces import (
    IMTPProvider, ISCCPProvider, ISS7Settings)
from appliance.sigtran.service import SigtranService

CONFIG = """configure terminal
ss7
 point-code 0.23.1
 global-title 44770090000
 isup circuits 0.23.5 1 31
 m3ua-peer stp
  address 127.0.0.1
  port 2905
 exit
 sccp-route all
  global-title-prefix 44
  point-code 0.23.2
 exit
exit
end
"""


def service():
    reactor = MemoryReactorClock()
    storage = memory_storage(reactor=reactor)
    svc = SigtranService(storage, reactor)
    return reactor, storage, svc


def test_provides_the_interfaces():
    """The service is the ISS7Settings provider; its mtp and sccp are the
    IMTPProvider and ISCCPProvider the upper layers are wired to."""
    _, storage, svc = service()
    assert verifyObject(ISS7Settings, svc)
    assert verifyObject(IMTPProvider, svc.mtp)
    assert verifyObject(ISCCPProvider, svc.sccp)
    storage.close()


def test_reconciles_with_the_configuration():
    """A configured peer gets a connecting association; a settings
    listener hears the new settings; changing the peer's port rebuilds it,
    removing it closes it; after stopService no timer is left."""
    reactor, storage, svc = service()
    heard = []
    svc.add_settings_listener(heard.append)
    svc.startService()
    assert svc.associations == {}
    assert run_script(storage, CONFIG, user="t").ok
    assert heard[-1].point_code == 185 and heard[-1].circuits[0].last == 31
    assert list(svc.associations) == ["stp"]
    host, port, factory = reactor.tcpClients[-1][:3]
    assert (host, port) == ("127.0.0.1", 2905)
    proto = factory.buildProtocol(None)
    tr = StringTransport()
    proto.makeConnection(tr)
    assert tr.value() == m3ua.aspsm(m3ua.ASPUP)
    assert "ASPUP-SENT" in svc.show() and "0.23.2 (186)" in svc.show()
    assert run_script(storage, "configure terminal\nss7\nm3ua-peer stp\n"
                      "port 2906\nend\n", user="t").ok
    assert reactor.tcpClients[-1][1] == 2906
    assert run_script(storage, "configure terminal\nss7\nsccp-route all\n"
                      "exit\nno sccp-route all\nno m3ua-peer stp\nend\n",
                      user="t").ok
    assert svc.associations == {}
    svc.stopService()
    reactor.advance(60)
    assert [c for c in reactor.getDelayedCalls() if c.active()] == []
    storage.close()
