"""The notification mode: every setting round-trips through show
running-config, and a bad template changes nothing."""
from appliance.application import memory_storage
from appliance.notify.model import KEY
from appliance.shell.script import run_script

SCRIPT = """configure terminal
notification
service-number 4930100
service-number 4930101
response busy 600
response unavailable 404
isup release-cause busy 21
isup release-cause other 34
isup channel-seized-timer 3
template who-called Missed call from {caller} at {time}
template who-called hu Nem fogadott hivas: {caller}
template notify-me default en is a word {called}
include time
include count
blacklist 491111
pending-expiry 3600
delivery map
end
"""


def running(storage):
    r = run_script(storage, "show running-config\n", user="t", source="t")
    assert r.ok, r.text
    return r.text


def test_round_trip():
    """Render, replay into an empty database, render again: identical, and
    every setting is there."""
    one = memory_storage()
    assert run_script(one, SCRIPT, user="t", source="t").ok
    text = running(one)
    for line in ("service-number 4930101", "response busy 600",
                 "isup release-cause busy 21", "isup channel-seized-timer 3",
                 "template who-called hu Nem", "template notify-me default en",
                 "include count", "blacklist 491111", "pending-expiry 3600",
                 "delivery map"):
        assert line in text
    body = text[text.index("configure terminal"):]
    two = memory_storage()
    assert run_script(two, body, user="t", source="t").ok
    assert running(two) == text
    n = two.domain(KEY)
    assert dict(n.templates)[("notify-me", "")] == "en is a word {called}"


def test_bad_template_changes_nothing():
    """A template with an unknown field is refused and nothing changes."""
    s = memory_storage()
    r = run_script(s, "configure terminal\nnotification\n"
                   "template who-called hi {name}\n", user="t", source="t")
    assert not r.ok
    assert s.domain(KEY).templates == ()
