"""Unit tests of the numbering-plan commands, on in-memory ZODB."""
from appliance.application import memory_storage
from appliance.model.numbering import Plan, node_plan, plan_for
from appliance.shell.script import open_session, run_script
from appliance.shell.session import execute
from tests.shell_helpers import run

SCRIPT = """configure terminal
 numbering-plan
  country-code 964
  national-prefix 0
  international-prefix 00
  area-code 1
 exit
 carrier TATA
  system-id tata
  numbering-plan unknown-digits national
 exit
 connection env4
  host 127.0.0.1
  numbering-plan number-format national
  numbering-plan country-code 44
 exit
end
"""


def test_plan_mode_sets_the_node_plan(admin, storage):
    """numbering-plan mode under configure terminal sets country-code,
    national-prefix and international-prefix (the issue's spellings) and
    shows as (config-numbering-plan); no FIELD resets one."""
    run(admin, "configure terminal", "numbering-plan")
    assert admin.prompt() == "appliance(config-numbering-plan)# "
    run(admin, "country-code 964", "national-prefix 0",
        "international-prefix 00")
    assert node_plan(storage.root()) == Plan(
        country_code="964", national_prefix="0", international_prefix="00")
    run(admin, "no national-prefix")
    assert node_plan(storage.root()).national_prefix is None
    run(admin, "unknown-digits national", "exit")
    assert admin.prompt() == "appliance(config)# "
    assert node_plan(storage.root()).unknown_digits == "national"


def test_bad_values_change_nothing(admin, storage):
    """A country code of 4 digits or letters is refused with a sentence
    and the plan keeps its value."""
    run(admin, "configure terminal", "numbering-plan", "country-code 964")
    for line in ("country-code 9641", "country-code 96a",
                 "unknown-digits sometimes"):
        result = execute(admin, line)
        assert not result.ok and result.text.startswith("%"), line
    assert node_plan(storage.root()).country_code == "964"


def test_overrides_in_carrier_and_connection(admin, storage):
    """numbering-plan FIELD VALUE inside carrier and connection modes
    overrides the node's plan for that origin; no numbering-plan FIELD
    inherits again; carriers have no number-format."""
    assert run_script(storage, SCRIPT).ok
    root = storage.root()
    assert plan_for(root, "carrier", "TATA").unknown_digits == "national"
    assert plan_for(root, "carrier", "TATA").country_code == "964"
    env4 = plan_for(root, "connection", "env4")
    assert (env4.number_format, env4.country_code) == ("national", "44")
    run(admin, "configure terminal", "connection env4",
        "no numbering-plan country-code")
    assert plan_for(root, "connection", "env4").country_code == "964"
    run(admin, "exit", "carrier TATA")
    assert not execute(admin, "numbering-plan number-format national").ok


def test_show_numbering_plan(admin, storage):
    """show numbering-plan lists the node's values and, per origin with
    overrides, the effective values with * on those set there."""
    assert run_script(storage, SCRIPT).ok
    text = run(admin, "show numbering-plan")
    assert "  country-code          964" in text
    assert "  international-prefix  00" in text
    lines = {l.split()[0] + " " + l.split()[1]: l.split()
             for l in text.splitlines() if l.startswith(("carrier ",
                                                         "connection "))}
    assert lines["carrier TATA"][2:] == ["964", "0", "00", "1", "national*",
                                         "-"]
    assert lines["connection env4"][2:] == ["44*", "0", "00", "1",
                                            "international", "national*"]


def test_show_numbering_plan_lists_tenant_overrides(admin, storage):
    """show numbering-plan lists an HTTP tenant that overrides the plan
    (its effective values, * on its own, no number format since tenants
    only send to the node), and not a tenant without overrides."""
    assert run_script(storage, SCRIPT + """configure terminal
 tenant acme
  numbering-plan country-code 351
  numbering-plan unknown-digits national
 exit
 tenant plain
 exit
end
""").ok
    text = run(admin, "show numbering-plan")
    lines = {l.split()[1]: l.split() for l in text.splitlines()
             if l.startswith("tenant ")}
    assert list(lines) == ["acme"]
    assert lines["acme"][2:] == ["351*", "0", "00", "1", "national*", "-"]
    run(admin, "configure terminal", "tenant acme",
        "no numbering-plan country-code", "no numbering-plan unknown-digits",
        "end")
    assert "tenant acme" not in run(admin, "show numbering-plan")


def test_running_config_round_trip(storage, clock):
    """The plan and its overrides are written by show running-config and
    replay into an empty node to the same plan and the same text."""
    assert run_script(storage, SCRIPT).ok
    first = run(open_session(storage, "admin", "admin"),
                "show running-config")
    assert " numbering-plan\n  country-code 964\n  national-prefix 0\n" \
        "  area-code 1\n exit" in first
    assert "  numbering-plan unknown-digits national" in first
    assert "  numbering-plan number-format national" in first
    fresh = memory_storage(reactor=clock)
    try:
        replay = run_script(fresh, first)
        assert replay.ok, replay.text
        second = run(open_session(fresh, "admin", "admin"),
                     "show running-config")
        assert second == first
        for kind, name in (("carrier", "TATA"), ("connection", "env4"),
                           ("account", None)):
            assert plan_for(fresh.root(), kind, name) == \
                plan_for(storage.root(), kind, name)
    finally:
        fresh.close()


def test_default_plan_writes_nothing(admin):
    """A node whose plan was never set writes no numbering-plan block."""
    assert "numbering-plan" not in run(admin, "show running-config")


def test_no_numbering_plan_resets(admin, storage):
    """no numbering-plan returns every node setting to its default."""
    assert run_script(storage, SCRIPT).ok
    run(admin, "configure terminal", "no numbering-plan")
    assert node_plan(storage.root()) == Plan()
