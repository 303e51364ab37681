"""
Alarms to the NOC end to end (issue 14, operations): the node binds to a
test SMSC; the SMSC stops, so the outbound connection goes down and the
node raises smpp-connection-down (major) with a trap to each configured
manager, which Debian's snmptrapd (v2c community and v3 authPriv user)
receives; the SMSC returns, the node binds again and clears the alarm
with alarmCleared traps; C{show alarms} over OpenSSH shows both; and
C{logging level alarms error} changes what the running node logs.
"""
from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests.e2e.harness import start_node, wait_for
from tests.e2e.smsc import SMSC
from tests.e2e.test_shell_ssh import keygen, ssh

SNMPTRAPD = shutil.which("snmptrapd") or (
    "/usr/sbin/snmptrapd" if shutil.os.path.exists("/usr/sbin/snmptrapd")
    else None)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SNMPTRAPD is None,
                                 reason="needs snmptrapd (Debian snmptrapd)")]

ENGINE = "8001869f05a1b2c3d4e5f60718"
RAISED = ".1.3.6.1.4.1.99999.1.0.1"
CLEARED = ".1.3.6.1.4.1.99999.1.0.2"


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def trapd(tmp_path):
    """snmptrapd on a loopback port, logging every trap (one line each:
    security info, then the varbinds) to a file."""
    port = free_udp_port()
    conf = tmp_path / "snmptrapd.conf"
    conf.write_text(
        "authCommunity log noc-public\n"
        f"createUser -e 0x{ENGINE} ops SHA opsauthpass AES opsprivpass\n"
        "authUser log ops priv\n"
        "disableAuthorization no\n")
    log = tmp_path / "traps.log"
    p = subprocess.Popen(
        [SNMPTRAPD, "-f", "-C", "-c", str(conf), "-m", "", "-On", "-Lf",
         str(log),
         "-F", "TRAP %P %V| %v\\n", "--persistentDir=" + str(tmp_path),
         f"udp:127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: log.exists() and "NET-SNMP" in log.read_text(),
             timeout=10, what="snmptrapd started")
    yield port, log
    p.terminate()
    p.wait(10)


def traps(log):
    return [line for line in log.read_text().splitlines()
            if line.startswith("TRAP ")]


def test_connection_down_trap_and_clear(tmp_path, trapd):
    """The SMSC's stop raises smpp-connection-down: snmptrapd gets a v2c
    and a v3 alarmRaised with the alarm's varbinds; its return clears it
    with alarmCleared; show alarms lists it active, then in the history;
    logging level alarms error silences the node's info line of the
    clear without a restart."""
    trap_port, log = trapd
    vendor = SMSC("vendor")
    port = vendor.port
    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "admin_keys").write_text(keygen(keydir / "admin") + "\n")
    script = tmp_path / "provision.cli"
    script.write_text("\n".join([
        "configure terminal",
        " alarm check-interval 1",
        f" snmp engine-id {ENGINE}",
        " snmp-manager noc", "  address 127.0.0.1", f"  port {trap_port}",
        "  community noc-public", " exit",
        " snmp-manager noc3", "  address 127.0.0.1", f"  port {trap_port}",
        "  user ops", "  auth sha opsauthpass", "  priv aes opsprivpass",
        " exit",
        " connection vendor", "  host 127.0.0.1", f"  port {port}",
        "  system-id node", "  password nodepw", "  bind transceiver",
        " exit", "end", ""]))
    node = start_node(
        tmp_path, node={"provision": str(script), "log_level": "info"},
        shell={"enabled": True, "admin_keys": str(keydir / "admin_keys")},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"})
    admin = keydir / "admin"
    try:
        wait_for(lambda: vendor.binds, timeout=20, what="bound to the SMSC")
        vendor.stop()
        wait_for(lambda: len([t for t in traps(log) if RAISED in t]) >= 2,
                 timeout=20, what="two alarmRaised traps")
        raised = [t for t in traps(log) if RAISED in t]
        assert any("noc-public" in t for t in raised), raised
        assert any("ops" in t and "noc-public" not in t for t in raised), \
            raised
        for t in raised:
            assert '"smpp-connection-down"' in t and '"vendor"' in t
            # alarmSeverity major(2), alarmNumber 3
            assert ".1.3.6.1.4.1.99999.1.1.3.0 = INTEGER: 2" in t
            assert ".1.3.6.1.4.1.99999.1.1.1.0 = Gauge32: 3" in t
        rc, out, _ = ssh(tmp_path, node, "admin", admin, "show alarms")
        assert rc == 0, out
        active = out.split("History")[0]
        assert "major" in active and "smpp-connection-down" in active
        assert "vendor" in active
        assert "alarm smpp-connection-down on vendor major" in node.log()
        rc, out, _ = ssh(tmp_path, node, "admin", admin,
                         stdin="configure terminal\n"
                               "logging level alarms error\nend\n")
        assert rc == 0, out
        vendor = SMSC("vendor", port=port)
        wait_for(lambda: [t for t in traps(log) if CLEARED in t],
                 timeout=40, what="alarmCleared")
        wait_for(lambda: len([t for t in traps(log) if CLEARED in t]) >= 2,
                 timeout=10, what="two alarmCleared traps")
        for t in traps(log):
            if CLEARED in t:
                assert ".1.3.6.1.4.1.99999.1.1.3.0 = INTEGER: 5" in t
        rc, out, _ = ssh(tmp_path, node, "admin", admin, "show alarms")
        active, history = out.split("History")
        assert "smpp-connection-down" not in active
        assert "cleared" in history and "major" in history
        assert "logging level alarms error" in ssh(
            tmp_path, node, "admin", admin, "show running-config")[1]
        # The clear was logged at info, now below the alarms' level.
        assert "alarm smpp-connection-down on vendor cleared" \
            not in node.log()
    finally:
        vendor.stop()
        node.stop()
