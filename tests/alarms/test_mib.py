"""The MIB in the repository describes exactly what the traps carry: its
OID assignments give the notification and object OIDs of
L{appliance.alarms.snmp}, its enumerations the severities, and its
alarmNumber description every alarm of the table; smilint finds no error
in it when the IETF base modules are installed."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.alarms import snmp
from appliance.alarms.table import ALARMS, SEVERITIES

MIB = Path(__file__).parents[2] / "etc" / "mibs" / "APPLIANCE-MIB.txt"


def assignments(text):
    """name to OID tuple, from the C{::= { parent n ... }} of each
    definition (named by the last line starting in column 0 before it)."""
    oids = {"enterprises": (1, 3, 6, 1, 4, 1)}
    for m in re.finditer(r"::=\s*\{\s*(\w+)\s+([\d\s]+)\}", text):
        name = re.findall(r"^([a-z]\w*)\s", text[:m.start()], re.M)[-1]
        oids[name] = oids[m.group(1)] + tuple(int(a)
                                              for a in m.group(2).split())
    return oids


def test_oids_match_the_encoder():
    """Each notification and object OID of the encoder is the MIB's."""
    oids = assignments(MIB.read_text())
    assert oids["alarmRaised"] == snmp.ALARM_RAISED
    assert oids["alarmCleared"] == snmp.ALARM_CLEARED
    for name, oid in [("alarmNumber", snmp.ALARM_NUMBER),
                      ("alarmName", snmp.ALARM_NAME),
                      ("alarmSeverity", snmp.ALARM_SEVERITY),
                      ("alarmResource", snmp.ALARM_RESOURCE),
                      ("alarmText", snmp.ALARM_TEXT),
                      ("alarmTime", snmp.ALARM_TIME)]:
        assert oids[name] + (0,) == oid, name


def test_severities_and_alarms_described():
    """The severity enumeration and the alarm numbers agree with the
    table."""
    text = MIB.read_text()
    for i, severity in enumerate(SEVERITIES, 1):
        assert f"{severity}({i})" in text
    for alarm in ALARMS.values():
        assert f"{alarm.number} {alarm.name}" in " ".join(text.split())


def _base_modules_present():
    return any(Path(d, "SNMPv2-SMI").exists() or
               Path(d, "SNMPv2-SMI.txt").exists()
               for d in ("/usr/share/snmp/mibs/ietf", "/usr/share/mibs/ietf",
                         "/usr/share/snmp/mibs"))


@pytest.mark.skipif(shutil.which("smilint") is None
                    or not _base_modules_present(),
                    reason="needs smilint and the IETF base MIB modules "
                           "(Debian's are in non-free snmp-mibs-downloader)")
def test_smilint():
    """smilint reports no error (levels 1-3) in the MIB."""
    p = subprocess.run(["smilint", "-l", "3", "-s", str(MIB)],
                       capture_output=True, text=True)
    assert p.stdout + p.stderr == ""
