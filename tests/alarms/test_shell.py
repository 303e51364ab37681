"""The node-wide settings in the shell: logging levels, thresholds, the
engine id and SNMP managers round-trip through show running-config; v3
passphrases are kept only as localized keys; bad input changes nothing."""
from appliance.alarms.model import KEY
from appliance.alarms.snmp import localized_key
from appliance.application import memory_storage
from appliance.shell.script import run_script

SCRIPT = """configure terminal
logging level sip debug
logging level all warning
alarm threshold queue 500
alarm threshold commit-latency 200
alarm check-interval 2
snmp engine-id 8001869f050102030405060708
snmp-manager noc
 address 192.0.2.10
 port 1162
 community public
 exit
snmp-manager noc3
 address 192.0.2.11
 user ops
 auth sha authpassphrase
 priv aes privpassphrase
 exit
end
"""


def running(storage):
    r = run_script(storage, "show running-config\n", user="t", source="t")
    assert r.ok, r.text
    return r.text


def test_round_trip():
    """Render, replay into an empty database, render again: identical;
    the passphrases are not in the output, their localized keys are."""
    one = memory_storage()
    r = run_script(one, SCRIPT, user="t", source="t")
    assert r.ok, r.text
    text = running(one)
    for line in ("logging level sip debug", "logging level all warning",
                 "alarm threshold queue 500", "snmp-manager noc3",
                 "alarm check-interval 2",
                 " address 192.0.2.10", " port 1162", " community public",
                 " user ops"):
        assert line in text
    assert "authpassphrase" not in text and "privpassphrase" not in text
    engine = bytes.fromhex("8001869f050102030405060708")
    key = localized_key("sha", "authpassphrase", engine).hex()
    assert f"auth-key sha {key}" in text
    assert "priv-key aes " in text
    two = memory_storage()
    r = run_script(two, text[text.index("configure terminal"):], user="t",
                   source="t")
    assert r.ok, r.text
    assert running(two) == text
    assert dict(two.domain(KEY).log_levels) == {"sip": "debug",
                                                "all": "warning"}


def test_bad_input_changes_nothing():
    """An unknown component or level, priv without auth, and a short
    passphrase are refused."""
    s = memory_storage()
    for line in ("logging level nonsense debug", "logging level sip loud",
                 "snmp-manager x\n priv aes privpassphrase",
                 "snmp-manager y\n auth sha short"):
        r = run_script(s, "configure terminal\n" + line + "\n", user="t",
                       source="t")
        assert not r.ok, line
    obj = s.domain(KEY)
    assert obj.log_levels == ()
    assert obj.managers["x"].priv_key == ""
    assert obj.managers["y"].auth_key == ""
