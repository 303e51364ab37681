"""Unit tests of execute() and the declared commands, on in-memory ZODB."""
from decimal import Decimal

from appliance.shell.live import LiveState
from appliance.application import memory_storage
import pytest

from appliance.shell.commands import TREE
from appliance.shell.script import open_session, run_script
from appliance.shell.session import execute
from appliance.store.database import Storage
from tests.shell_helpers import run

ALICE_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1mNo2cY4ZBgN5d6s1qZ0pXv"
             "x5p4Tt3sWl3yqQd6Rk alice@laptop")

#: The configuration example of issue 4, verbatim but for a real key.
ISSUE_SCRIPT = f'''configure terminal
 product "Call & Chat"
  messaging enable
 exit
 customer "John Doe"
  account 111222333
   password s3cret-pass
   product "Call & Chat"
   did 111222333
  exit
 exit
 tariff TATA-IN
  currency USD
  prefix 964 0.01
  prefix 1 0.02
 exit
 carrier TATA
  system-id tata
  password tatapass
  allow-ip 127.0.0.0/8
  tariff TATA-IN
 exit
 connection env4
  host 127.0.0.1
  port 2776
  system-id env1
  password env1pass
  bind transceiver
  window 10
 exit
 service-policy to-env4
  recipient-pattern 222%
  transport smpp connection env4
 exit
 operator alice
  role view
  ssh-key {ALICE_KEY}
 exit
end
'''


def test_issue_example_applies(admin, storage):
    """The issue's configuration example is accepted line by line."""
    result = run_script(storage, ISSUE_SCRIPT)
    assert result.ok, result.text
    root = storage.root()
    assert root.products["Call & Chat"].messaging is True
    account = root.accounts["111222333"]
    assert account.customer == "John Doe"
    assert account.product == "Call & Chat"
    assert account.dids == ("111222333",)
    assert account.ha1_md5 is not None
    assert root.tariffs["TATA-IN"].lookup("9647") == ("964", Decimal("0.01"))
    tata = root.carriers["TATA"]
    assert tata.system_id == "tata" and tata.check_password("tatapass")
    assert tata.allowed_networks == ("127.0.0.0/8",)
    assert tata.tariff == "TATA-IN"
    env4 = root.connections["env4"]
    assert (env4.host, env4.port, env4.password, env4.window) == (
        "127.0.0.1", 2776, "env1pass", 10)
    policy = root.policies["to-env4"]
    assert policy.transport == "smpp" and policy.connections == ("env4",)
    assert root.operators["alice"].ssh_keys == (ALICE_KEY,)


def test_prompts_and_navigation(admin):
    """Prompts follow the mode; exit goes up one level, end to the top."""
    assert admin.prompt() == "appliance# "
    run(admin, "configure terminal")
    assert admin.prompt() == "appliance(config)# "
    run(admin, "carrier TATA")
    assert admin.prompt() == "appliance(config-carrier)# "
    run(admin, "exit")
    assert admin.prompt() == "appliance(config)# "
    run(admin, "carrier TATA", "end")
    assert admin.prompt() == "appliance# "
    result = execute(admin, "exit")
    assert result.ok and result.ended


def test_view_role_refused_config(storage):
    """Role view has the '>' prompt, may show, and may not configure."""
    view = open_session(storage, "alice", "view")
    assert view.prompt() == "appliance> "
    result = execute(view, "configure terminal")
    assert not result.ok
    assert result.text.startswith("% permission denied")
    assert "Carrier" in run(view, "show carriers")
    assert run(view, "list").count("configure") == 0


def test_rejected_command_changes_nothing(admin, storage, audit):
    """A refused command rolls its transaction back and is not audited."""
    run(admin, "configure terminal", "service-policy p1")
    lines = len(audit.lines)
    result = execute(admin, "transport smpp connection nosuch")
    assert not result.ok and result.text.startswith("% ")
    assert "nosuch" in result.text
    policy = storage.root().policies["p1"]
    assert policy.transport == "sip"  # set before the failure, rolled back
    assert len(audit.lines) == lines


def test_smpp_password_too_long_refused(admin, storage):
    """A 9-character SMPP password is refused with %, not cut."""
    run(admin, "configure terminal", "carrier C1", "password abcdefgh")
    result = execute(admin, "password abcdefghi")
    assert result.text == "% SMPP password is at most 8 characters"
    assert storage.root().carriers["C1"].check_password("abcdefgh")


def test_audit_lines(admin, audit, tmp_path):
    """Accepted changes are audited with time, operator, source, mode path."""
    run(admin, "configure terminal", "carrier TATA", "system-id tata",
        "show carriers")
    text = (tmp_path / "audit.log").read_text()
    assert text.splitlines() == audit.lines
    assert audit.lines[-1] == (
        "2027-01-15T08:00:00+00:00 admin 192.0.2.7 [carrier TATA] "
        "system-id tata")
    assert audit.lines[0].endswith("admin 192.0.2.7 carrier TATA")
    assert len(audit.lines) == 2  # configure terminal and show are not changes


def test_transaction_metadata(admin, storage):
    """Each command commits a transaction with the operator and the line."""
    run(admin, "configure terminal", "carrier TATA", "max-binds 7")
    last = next(iter(storage.db.history(storage.root().carriers["TATA"]._p_oid,
                                        size=1)))
    assert last["user_name"] in (b"admin", "admin", b" admin", " admin")
    assert "max-binds 7" in str(last["description"])


def test_object_removed_elsewhere(admin, storage):
    """A sub-mode whose object another session removed falls back to config."""
    run(admin, "configure terminal", "carrier TATA")
    other = open_session(storage, "bob", "admin")
    run(other, "configure terminal", "no carrier TATA")
    result = execute(admin, "max-binds 3")
    assert result.text == "% carrier TATA no longer exists"
    assert admin.prompt() == "appliance(config)# "


def test_help_and_comments(admin):
    """'?' at the end of a line answers help; comments do nothing."""
    assert "configure" in run(admin, "?")
    assert "running-config" in run(admin, "show ?")
    assert run(admin, "! a comment") == ""
    assert run(admin, "   ") == ""


def test_script_stops_at_first_error(storage):
    """A script stops at its first error, naming the line; nothing after."""
    script = ("configure terminal\n carrier A\n exit\n carrier B\n"
              "  max-binds 5\n exit\n frobnicate\n carrier C\n exit\nend\n")
    result = run_script(storage, script)
    assert not result.ok
    assert result.text.endswith("% line 7: unknown command: frobnicate")
    assert sorted(storage.root().carriers.keys()) == ["A", "B"]


def test_show_running_config_one_object(admin, storage):
    """show running-config carrier NAME writes one replayable block."""
    run_script(storage, ISSUE_SCRIPT)
    text = run(admin, "show running-config carrier TATA")
    assert text.splitlines()[0] == "configure terminal"
    assert text.splitlines()[1] == " carrier TATA"
    assert "product" not in text
    assert execute(admin, "sh run carrier NOPE").text == (
        "% no carrier named 'NOPE'")


def test_running_config_round_trip(storage, clock):
    """Replaying running-config into an empty store renders identically."""
    assert run_script(storage, ISSUE_SCRIPT + EXTRA).ok
    session = open_session(storage, "admin", "admin")
    first = run(session, "show running-config")
    fresh = memory_storage(reactor=clock)
    try:
        replay = run_script(fresh, first)
        assert replay.ok, replay.text
        second = run(open_session(fresh, "admin", "admin"),
                     "show running-config")
        assert second == first
        assert fresh.root().carriers["TATA"].check_password("tatapass")
        assert fresh.root().accounts["111222333"].ha1_md5 == \
            storage.root().accounts["111222333"].ha1_md5
    finally:
        fresh.close()


EXTRA = '''configure terminal
 product "Call & Chat 2"
 exit
 customer "ACME \\"Big\\" Co"
  account alice.1
   product "Call & Chat 2"
   did 9647501234567
   did 9647501234568
   shutdown
  exit
 exit
 carrier Carrier1
  system-id c1
  max-binds 2
  throughput 50
  allow-ip 10.0.0.0/8
  allow-ip 2001:db8::/32
  shutdown
 exit
 connection env2
  host smsc.example.net
  bind transmitter
  binds 3
  throughput 20
  tls
  shutdown
 exit
 service-policy second
  recipient-pattern 1__%
  sender-pattern 44%
  origin carrier
  transport smpp connection env2
  fallback-connection env4
 exit
 service-policy local
  transport smpp
 exit
 service-policy-order local 1
 operator bob
  role admin
  password hunter22
 exit
end
'''

# (mode path, setting command, check after it, 'no' form, check after no)
SETTINGS = [
    (["product P"], "messaging enable", lambda r: r.products["P"].messaging,
     "no messaging enable", lambda r: not r.products["P"].messaging),
    (["customer C", "account u1"], "password pw",
     lambda r: r.accounts["u1"].ha1_md5,
     "no password", lambda r: r.accounts["u1"].ha1_md5 is None),
    (["customer C", "account u1"],
     "password-hash realm x md5 " + "a" * 32 + " sha256 " + "b" * 64,
     lambda r: r.accounts["u1"].ha1_sha256 == "b" * 64,
     "no password", lambda r: r.accounts["u1"].ha1_sha256 is None),
    (["customer C", "account u1"], "product P",
     lambda r: r.accounts["u1"].product == "P",
     "no product", lambda r: r.accounts["u1"].product is None),
    (["customer C", "account u1"], "did 123",
     lambda r: r.account_for_did("123") is not None,
     "no did 123", lambda r: r.account_for_did("123") is None),
    (["customer C", "account u1"], "shutdown",
     lambda r: not r.accounts["u1"].enabled,
     "no shutdown", lambda r: r.accounts["u1"].enabled),
    (["tariff T"], "currency eur", lambda r: r.tariffs["T"].currency == "EUR",
     "no currency", lambda r: r.tariffs["T"].currency == "USD"),
    (["tariff T"], "prefix 44 0.5",
     lambda r: r.tariffs["T"].prices["44"] == Decimal("0.5"),
     "no prefix 44", lambda r: "44" not in r.tariffs["T"].prices),
    (["carrier K"], "system-id k1",
     lambda r: r.carrier_by_system_id("k1") is not None,
     "no system-id", lambda r: r.carriers["K"].system_id is None),
    (["carrier K"], "password secret",
     lambda r: r.carriers["K"].check_password("secret"),
     "no password", lambda r: r.carriers["K"].password_hash is None),
    (["carrier K"], "allow-ip 192.0.2.0/24",
     lambda r: r.carriers["K"].allowed_networks == ("192.0.2.0/24",),
     "no allow-ip 192.0.2.0/24", lambda r: r.carriers["K"].allowed_networks == ()),
    (["carrier K"], "max-binds 9", lambda r: r.carriers["K"].max_binds == 9,
     "no max-binds", lambda r: r.carriers["K"].max_binds == 4),
    (["carrier K"], "throughput 10", lambda r: r.carriers["K"].throughput == 10,
     "no throughput", lambda r: r.carriers["K"].throughput == 0),
    (["carrier K"], "tariff T", lambda r: r.carriers["K"].tariff == "T",
     "no tariff", lambda r: r.carriers["K"].tariff is None),
    (["carrier K"], "shutdown", lambda r: not r.carriers["K"].enabled,
     "no shutdown", lambda r: r.carriers["K"].enabled),
    (["connection N"], "host 10.1.1.1", lambda r: r.connections["N"].host,
     "no host", lambda r: r.connections["N"].host is None),
    (["connection N"], "port 2776", lambda r: r.connections["N"].port == 2776,
     "no port", lambda r: r.connections["N"].port == 2775),
    (["connection N"], "system-id me", lambda r: r.connections["N"].system_id,
     "no system-id", lambda r: r.connections["N"].system_id is None),
    (["connection N"], "password pw", lambda r: r.connections["N"].password,
     "no password", lambda r: r.connections["N"].password is None),
    (["connection N"], "bind transmitter",
     lambda r: r.connections["N"].bind == "transmitter",
     "no bind", lambda r: r.connections["N"].bind == "transceiver"),
    (["connection N"], "binds 2", lambda r: r.connections["N"].binds == 2,
     "no binds", lambda r: r.connections["N"].binds == 1),
    (["connection N"], "window 5", lambda r: r.connections["N"].window == 5,
     "no window", lambda r: r.connections["N"].window == 10),
    (["connection N"], "throughput 5", lambda r: r.connections["N"].throughput,
     "no throughput", lambda r: r.connections["N"].throughput == 0),
    (["connection N"], "tls", lambda r: r.connections["N"].tls,
     "no tls", lambda r: not r.connections["N"].tls),
    (["connection N"], "shutdown", lambda r: r.connections["N"].shutdown,
     "no shutdown", lambda r: not r.connections["N"].shutdown),
    (["service-policy S"], "recipient-pattern 964%",
     lambda r: r.policies["S"].recipient_pattern == "964%",
     "no recipient-pattern", lambda r: r.policies["S"].recipient_pattern == "%"),
    (["service-policy S"], "sender-pattern 1%",
     lambda r: r.policies["S"].sender_pattern == "1%",
     "no sender-pattern", lambda r: r.policies["S"].sender_pattern is None),
    (["service-policy S"], "origin app", lambda r: r.policies["S"].origin == "app",
     "no origin", lambda r: r.policies["S"].origin is None),
    (["service-policy S"], "transport smpp connection N",
     lambda r: r.policies["S"].connections == ("N",),
     "no transport", lambda r: r.policies["S"].transport == "sip"
     and r.policies["S"].connections == ()),
    (["service-policy S", "transport smpp connection N"],
     "fallback-connection M",
     lambda r: r.policies["S"].connections == ("N", "M"),
     "no fallback-connection M", lambda r: r.policies["S"].connections == ("N",)),
    (["operator o"], "role admin", lambda r: r.operators["o"].role == "admin",
     "no role", lambda r: r.operators["o"].role == "view"),
    (["operator o"], "ssh-key " + ALICE_KEY,
     lambda r: r.operators["o"].ssh_keys == (ALICE_KEY,),
     "no ssh-key " + ALICE_KEY, lambda r: r.operators["o"].ssh_keys == ()),
    (["operator o"], "password pw1", lambda r: r.operators["o"].check_password("pw1"),
     "no password", lambda r: r.operators["o"].password_hash is None),
]

OBJECTS = [("product", "P", "products"), ("tariff", "T", "tariffs"),
           ("customer", "C", "customers"), ("carrier", "K", "carriers"),
           ("connection", "N", "connections"),
           ("service-policy", "S", "policies"), ("operator", "o", "operators")]


@pytest.fixture
def populated(admin):
    run(admin, "configure terminal", "product P", "exit", "tariff T", "exit",
        "connection N", "exit", "connection M", "exit", "end")
    return admin


@pytest.mark.parametrize("path,line,check,no_line,no_check", SETTINGS,
                         ids=[s[1][:30] for s in SETTINGS])
def test_setting_and_no_form(populated, storage, path, line, check, no_line,
                             no_check):
    """Each setting command takes effect and its 'no' form undoes it."""
    run(populated, "configure terminal", *path)
    run(populated, line)
    assert check(storage.root())
    shown = run(populated, "show running-config")
    assert line.split()[0] in shown
    run(populated, no_line)
    assert no_check(storage.root())


@pytest.mark.parametrize("keyword,name,container", OBJECTS)
def test_object_and_no_form(admin, storage, keyword, name, container):
    """Object commands create and enter; 'no KEYWORD NAME' removes."""
    run(admin, "configure terminal", f"{keyword} {name}")
    assert admin.mode.kind == keyword
    run(admin, "exit")
    assert name in getattr(storage.root(), container)
    run(admin, f"no {keyword} {name}")
    assert name not in getattr(storage.root(), container)
    assert execute(admin, f"no {keyword} {name}").text.startswith("% ")


def test_account_no_form(admin, storage):
    """'no account' in a customer removes it; another customer's is refused."""
    run(admin, "configure terminal", "customer A", "account 1", "exit", "exit",
        "customer B")
    assert execute(admin, "no account 1").text == "% customer 'B' has no account 1"
    run(admin, "exit", "customer A", "no account 1")
    assert "1" not in storage.root().accounts


def test_policy_order_command(admin, storage):
    """service-policy-order moves a policy; running-config keeps the order."""
    run(admin, "configure terminal", "service-policy a", "exit",
        "service-policy b", "exit", "service-policy-order b 1")
    assert [p.name for p in storage.root().ordered_policies()] == ["b", "a"]
    shown = run(admin, "show running-config")
    assert shown.index("service-policy b") < shown.index("service-policy a")


def test_show_tables_fit_80_columns(admin, storage):
    """Every show table is aligned and fits an 80-column terminal."""
    run_script(storage, ISSUE_SCRIPT + EXTRA)
    for c in TREE.commands:
        if c.action != "show" or any(not e.is_keyword for e in c.elements):
            continue
        if c.spec == "show running-config":
            continue
        text = run(admin, c.spec)
        assert text, c.spec
        assert max(len(line) for line in text.splitlines()) <= 80, c.spec
    carriers = run(admin, "show carriers").splitlines()
    assert carriers[0].startswith("Carrier")
    assert carriers[0].index("System-id") == carriers[2].index("c1")


def test_live_show_uses_services(storage):
    """Live show commands ask the shell's live sources for their tables
    and counters."""
    class SMPP:
        def shell_table(self, topic):
            assert topic == "binds"
            return ("Carrier", "Peer"), [("TATA", "127.0.0.1:5000")]

        def statistics(self):
            return {"submit_sm": 3}

    live = LiveState()
    live.add_source("smpp", SMPP())
    s = open_session(storage, "alice", "view", live=live)
    assert "TATA     127.0.0.1:5000" in run(s, "show smpp binds")
    assert "smpp     submit_sm  3" in run(s, "show statistics")
    assert run(s, "show sip registrations").endswith("(none)")


def test_every_declared_spec_has_help():
    """Every declared command has one non-empty help text per word."""
    for c in TREE.commands:
        assert all(e.help for e in c.elements), c.spec


def test_demo_script_provisions_seeds(storage):
    """shell/demo.cli provisions the seeds' demo through run_script."""
    from pathlib import Path
    text = (Path(__file__).parents[2] / "shell" / "demo.cli").read_text()
    result = run_script(storage, text)
    assert result.ok, result.text
    root = storage.root()
    assert sorted(root.carriers.keys()) == ["Carrier1", "Carrier2",
                                            "Carrier3", "TATA"]
    assert root.carriers["TATA"].tariff == "TATA-IN"
    assert root.account_for_did("964111222333").product == "Call & Chat"
    assert root.account_for_did("964111222333").username == "111222333"
    assert (root.numbering.country_code, root.numbering.national_prefix) \
        == ("964", "0")
    assert root.products["Call & Chat"].messaging


def test_sip_registrations_of_one_account(storage):
    """show sip registrations account N passes the filter to the service;
    show sip transactions asks for its own table."""
    asked = []

    class SIP:
        def shell_table(self, topic, **filters):
            asked.append((topic, filters))
            return ("Account", "Contact"), [("1111", "sip:1111@192.0.2.1")]

    live = LiveState()
    live.add_source("sip", SIP())
    s = open_session(storage, "alice", "view", live=live)
    assert "sip:1111@192.0.2.1" in run(s, "show sip registrations account 1111")
    run(s, "show sip transactions")
    assert asked == [("registrations", {"account": "1111"}),
                     ("transactions", {})]


def test_show_queue_oldest_waiting(storage):
    """show queue counts messages by state and names the oldest waiting."""
    from appliance.messaging.store import Message
    with storage.transaction() as root:
        store = storage.messages()
        store.add(Message(7, "carrier", "TATA", "AsiaCell", "111222333",
                          now=1_800_000_000, validity=1_800_086_400, text="x"))
    s = open_session(storage, "alice", "view")
    text = run(s, "show queue")
    assert "accepted    1" in text
    assert ("Oldest waiting: message 7 to 111222333, accepted "
            "2027-01-15 08:00:00 UTC, accepted") in text


def test_smpp_disconnect_carrier(storage, audit):
    """smpp disconnect carrier NAME asks the SMPP service to close the
    carrier's binds, says how many, and is audited; view may not."""
    closed = []

    class SMPP:
        def disconnect_carrier(self, name):
            closed.append(name)
            return 2

    live = LiveState(carriers=SMPP())
    run_script(storage, "configure terminal\ncarrier TATA\nend\n")
    admin = open_session(storage, "admin", "admin", live=live, audit=audit)
    assert run(admin, "smpp disconnect carrier TATA") == \
        "2 bind(s) of carrier TATA disconnected\n"
    assert closed == ["TATA"]
    assert "smpp disconnect carrier TATA" in audit.path.read_text()
    assert execute(admin, "smpp disconnect carrier Nope").text == \
        "% no carrier 'Nope'"
    view = open_session(storage, "alice", "view", live=live)
    assert not execute(view, "smpp disconnect carrier TATA").ok
    assert closed == ["TATA"]


def test_test_route(storage):
    """test route prints the core's decision without storing anything,
    reading the numbers by the numbering plan (0123 is 222123)."""
    from twisted.internet.testing import MemoryReactorClock
    from appliance.messaging.core import MessagingCore
    run_script(storage, "configure terminal\ncustomer C\naccount 1111\nend\n"
               "configure terminal\nconnection env4\nexit\n"
               "service-policy to-env4\nrecipient-pattern 222%\n"
               "transport smpp connection env4\nend\n")
    core = MessagingCore(storage, MemoryReactorClock(), local_transport="sip")
    core.set_agent("smpp", object())
    core._rebuild_routes()

    s = open_session(storage, "alice", "view", live=LiveState(core=core))
    assert run(s, "test route from 1111 to 1111").startswith(
        "local delivery to account 1111 over SIP\n")
    assert run(s, "test route from 1111 to 2222123").startswith(
        "policy to-env4: smpp over env4 (not running)\n")
    assert run(s, "test route from 1111 to 3333").startswith(
        "no route: no account or service policy for 3333")
    run_script(storage, "configure terminal\nnumbering-plan\n"
               "country-code 222\nnational-prefix 0\nend\n")
    assert run(s, "test route from 1111 to 0123").startswith(
        "policy to-env4: smpp over env4 (not running)\n")
    assert sum(storage.messages().counts().values()) == 0


def test_handler_argument_refusal_is_a_percent_answer(admin):
    """A command handler that refuses an argument's value (ArgumentError,
    as C{no snmp-manager NAME} does for an unknown manager) answers
    C{% reason} and changes nothing, instead of an internal error."""
    run(admin, "configure terminal")
    result = execute(admin, "no snmp-manager 0")
    assert not result.ok
    assert "internal error" not in result.read()
    assert "no snmp-manager named '0'" in result.read()
