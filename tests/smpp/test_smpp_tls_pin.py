"""
Outbound SMPP over TLS: a connection may pin its own CA file
(C{tls-ca}), which wins over C{[smpp] client_ca}; without either the
system's trust store is used.
"""
from __future__ import annotations

from twisted.internet.testing import MemoryReactor

from appliance.model.carriers import Connection
from appliance.smpp import outbound
from appliance.smpp.outbound import ConnectionSettings, default_endpoints


def _settings(**kw) -> ConnectionSettings:
    c = Connection("env4")
    c.host, c.system_id, c.password, c.tls = "smsc.example", "me", "pw", True
    for k, v in kw.items():
        setattr(c, k, v)
    return ConnectionSettings.of(c)


def test_connection_ca_wins_over_the_section_ca(monkeypatch):
    """The endpoint of a TLS connection verifies with its own tls-ca when
    set, else with [smpp] client_ca, else with the system store (None);
    the host checked is the connection's host."""
    seen = []
    monkeypatch.setattr(outbound, "tls_options",
                        lambda host, ca=None: seen.append((host, ca)) or
                        object())
    endpoints = default_endpoints(MemoryReactor(), "/etc/section-ca.pem")
    endpoints(_settings(tls_ca="/etc/own-ca.pem"))
    endpoints(_settings())
    default_endpoints(MemoryReactor(), None)(_settings())
    assert seen == [("smsc.example", "/etc/own-ca.pem"),
                    ("smsc.example", "/etc/section-ca.pem"),
                    ("smsc.example", None)]


def test_changing_the_ca_rebinds():
    """A new tls-ca is part of the settings whose change needs a new bind."""
    assert _settings().endpoint_key() != \
        _settings(tls_ca="/etc/own-ca.pem").endpoint_key()
