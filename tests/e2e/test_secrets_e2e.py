"""
End to end: no secret reaches the node's log or its audit log.

The node (log level debug, the most talkative) is provisioned with one of
every secret: an outbound SMPP connection's password, a carrier's bind
password, a tenant's password, API token and dlr-secret, an account's SIP
password, an operator's password, an SNMP v2c community and v3 auth and
privacy passphrases.  Then every one of them is used: the connection
binds to a test SMSC, which then stops (an alarm, v2c and v3 traps); the
carrier binds with its password and with a wrong one; the tenant sends
with Basic, with its token and with a wrong password, and gets a signed
callback.  The log and the audit log are then searched for each secret,
in clear and in the stored forms that are as good as the secret (SIP
HA1s, SNMP localized keys, the Basic credentials' base64).
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import struct

import pytest

from tests.e2e.harness import start_node, wait_for
from tests.e2e.http_tools import (PASSWORD, SECRET, TOKEN, Receiver, api,
                                  body_json, curl, provision)
from tests.e2e.smsc import SMSC
from tests.e2e.test_shell_ssh import keygen, ssh

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None,
                                 reason="needs curl")]

ENGINE = "8001869f05a1b2c3d4e5f60719"
CONNECTION_PW = "Vq8rT3mX"
CARRIER_PW = "Kx9wP4nB"
WRONG_PW = "Wr0ngPw1"
ACCOUNT_PW = "acct-sip-pw-777"
OPERATOR_PW = "oper-pass-31337"
COMMUNITY = "noc-comm-s3cr3t"
AUTH_PASS, PRIV_PASS = "snmp-auth-pass-1", "snmp-priv-pass-2"
WRONG_HTTP = "n0t-the-pw-42"
URL_SECRET = "cbq-S3cr3t-in-query"
PT = "351912345678"


def bind(port: int, system_id: bytes, password: bytes) -> int:
    """One bind_transceiver; @return: the bind_resp's command_status."""
    body = system_id + b"\0" + password + b"\0\0" + bytes([0x34, 0, 0]) + b"\0"
    pdu = struct.pack(">IIII", 16 + len(body), 0x09, 0, 1) + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(pdu)
        head = b""
        while len(head) < 16:
            chunk = s.recv(16 - len(head))
            if not chunk:
                raise ConnectionError("closed before bind_resp")
            head += chunk
        return struct.unpack(">IIII", head)[2]


def test_no_secret_in_the_logs(tmp_path):
    """After a flow that uses every kind of secret, neither the node's
    log nor its audit log holds any of them, in clear or in a stored form
    that is as good as the secret."""
    c1, c2, vendor = SMSC("carrier1"), SMSC("carrier2"), SMSC("vendor")
    traps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    traps.bind(("127.0.0.1", 0))
    traps.settimeout(0.2)
    receiver = Receiver()
    extra = [
        " alarm check-interval 1", f" snmp engine-id {ENGINE}",
        " snmp-manager noc", "  address 127.0.0.1",
        f"  port {traps.getsockname()[1]}", f"  community {COMMUNITY}",
        " exit",
        " snmp-manager noc3", "  address 127.0.0.1",
        f"  port {traps.getsockname()[1]}", "  user ops",
        f"  auth sha {AUTH_PASS}", f"  priv aes {PRIV_PASS}", " exit",
        " connection vendor", "  host 127.0.0.1", f"  port {vendor.port}",
        "  system-id node", f"  password {CONNECTION_PW}", " exit",
        " carrier carrierS", "  system-id cars", f"  password {CARRIER_PW}",
        " exit",
        ' customer "Sec Cust"', "  account 351000111222",
        f"   password {ACCOUNT_PW}", "  exit", " exit",
        " operator carol", f"  password {OPERATOR_PW}", " exit"]
    script = tmp_path / "provision.cli"
    script.write_text("\n".join(provision(c1.port, c2.port, extra)))
    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "admin_keys").write_text(keygen(keydir / "admin") + "\n")
    node = start_node(
        tmp_path, node={"provision": str(script)},
        shell={"enabled": True, "admin_keys": str(keydir / "admin_keys")},
        http={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
        sip={"enabled": True, "listen": "udp:port=0:interface=127.0.0.1"})
    try:
        wait_for(lambda: c1.binds and c2.binds and vendor.binds,
                 timeout=20, what="the connections bound")
        # the same kinds of secrets set again over SSH: audited
        rc, out, _ = ssh(tmp_path, node, "admin", keydir / "admin", stdin="\n".join([
            "configure terminal", "connection vendor",
            f"password {CONNECTION_PW}", "exit", "carrier carrierS",
            f"password {CARRIER_PW}", "exit", "tenant acme",
            f"dlr-secret {SECRET}", f"password {PASSWORD}", "exit",
            "snmp-manager noc", f"community {COMMUNITY}", "exit",
            "snmp-manager noc3", f"auth sha {AUTH_PASS}",
            f"priv aes {PRIV_PASS}", "exit", "operator carol",
            f"password {OPERATOR_PW}", "exit", "end", ""]))
        assert rc == 0, out
        rc, out, _ = ssh(tmp_path, node, "admin", keydir / "admin",
                         "show running-config")
        assert rc == 0 and CONNECTION_PW in out  # the admin sees it
        port = node.port("smpp")
        assert bind(port, b"cars", CARRIER_PW.encode()) == 0
        assert bind(port, b"cars", WRONG_PW.encode()) == 0x0E
        status, _, text = curl("-u", f"acme:{PASSWORD}", api(
            node, f"/sendsms/send?from=123456789&to={PT}&body=s"
                  f"&dlr-url={receiver.url}%3Fpass%3D{URL_SECRET}"))
        assert status == 200, text
        status, _, _ = curl("-H", f"Authorization: Bearer {TOKEN}", api(
            node, f"/sendsms/send?from=ACME&to={PT}&body=t"))
        assert status == 200
        status, _, _ = curl("-u", f"acme:{WRONG_HTTP}", api(
            node, f"/sendsms/send?from=ACME&to={PT}&body=w"))
        assert status == 401
        wait_for(lambda: len(c1.received) >= 2, what="the messages sent")
        mid = body_json(text)["id"]
        wait_for(lambda: body_json(curl("-u", f"acme:{PASSWORD}", api(
            node, f"/sendsms/status?id={mid}"))[2])["state"] ==
            "delivering", what="forwarded")
        c1.receipt(c1.received[0])
        wait_for(lambda: receiver.requests, what="the signed callback")
        vendor.stop()

        def trapped():
            try:
                return traps.recv(65536)
            except OSError:
                return None
        got = [wait_for(trapped, timeout=20, what="a trap")]
        got.append(wait_for(trapped, timeout=20, what="a second trap"))
        wait_for(lambda: "smpp-connection-down" in node.log(),
                 what="the alarm logged")
    finally:
        node.stop()
        for s in (c1, c2):
            s.stop()
        receiver.stop()
        traps.close()
    from appliance.alarms.snmp import localized_key
    engine = bytes.fromhex(ENGINE)
    auth_key = localized_key("sha", AUTH_PASS, engine).hex()
    priv_key = localized_key("sha", PRIV_PASS, engine).hex()
    realm = "node"  # [sip] realm defaults to the node name
    ha1 = hashlib.md5(f"351000111222:{realm}:{ACCOUNT_PW}".encode()
                      ).hexdigest()
    basic = base64.b64encode(f"acme:{PASSWORD}".encode()).decode()
    secrets = {
        "connection password": CONNECTION_PW, "carrier password": CARRIER_PW,
        "wrong carrier password": WRONG_PW, "tenant password": PASSWORD,
        "wrong tenant password": WRONG_HTTP, "tenant token": TOKEN,
        "dlr-secret": SECRET, "account password": ACCOUNT_PW,
        "operator password": OPERATOR_PW, "snmp community": COMMUNITY,
        "snmp auth passphrase": AUTH_PASS, "snmp priv passphrase": PRIV_PASS,
        "snmp auth key": auth_key, "snmp priv key": priv_key,
        "SIP HA1": ha1, "Basic credentials": basic,
        "secret in a callback URL": URL_SECRET}
    log = node.log()
    audit = (node.data_dir / "audit.log").read_text() \
        if (node.data_dir / "audit.log").exists() else ""
    assert "bound" in log or "bind" in log  # the flow ran and was logged
    assert "password ********" in audit, audit[:2000]
    assert f"{receiver.url}?..." in log  # the callback was logged
    leaks = [(name, where) for name, value in secrets.items()
             for where, text in (("log", log), ("audit", audit))
             if value in text]
    assert not leaks, leaks
