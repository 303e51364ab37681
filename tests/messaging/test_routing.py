"""Tests for L{appliance.messaging.routing}: the pure routing decision."""
import pytest
from zope.interface.verify import verifyObject

from appliance.messaging.routing import (IRouteLookup, LocalAccount,
                                         RootLookup, StaticLookup, decide)
from appliance.messaging.vocabulary import NoRoute, Submission
from appliance.model.errors import ModelError
from appliance.application import memory_storage
from appliance.model.numbers import compile_pattern
from appliance.model.routing import RouteEntry, RouteTable


@pytest.fixture
def storage():
    s = memory_storage()
    yield s
    s.close()


def table(*entries):
    """A route table of (name, recipient pattern, transport, connections)."""
    return RouteTable([RouteEntry(name, compile_pattern(pattern), None, None,
                                  transport,
                                  tuple(conns))
                       for name, pattern, transport, conns in entries])


def sub(to, kind="carrier", sender="AsiaCell", hops=0):
    return Submission(kind, "TATA", sender, to, "hi", hops=hops)


LOOKUP = StaticLookup(
    accounts={"111222333": LocalAccount("111222333"),
              "off": LocalAccount("off", enabled=False),
              "voice": LocalAccount("voice", messaging=False)},
    dids={"9647501111111": "111222333", "555": "off", "556": "voice"},
    table=table(("sip-only", "7%", "sip", ()),
                ("to-env4", "222%", "smpp", ("env4",)),
                ("to-http", "333%", "http", ())))


def test_lookups_provide_interface(storage):
    """Both lookups provide IRouteLookup."""
    verifyObject(IRouteLookup, LOOKUP)
    verifyObject(IRouteLookup, RootLookup(storage.root(), table()))


def test_account_by_did_then_username():
    """A DID's account takes it over the local transport, then an account
    by username; the recipient comes back normalized."""
    d = decide(LOOKUP, sub("+964 750 111 1111"), "sip", {"sip"})
    assert tuple(d) == ("sip", "111222333", "local")
    assert d.recipient == "9647501111111"
    assert tuple(decide(LOOKUP, sub("111222333"), "apps", ())) == \
        ("apps", "111222333", "local")


def test_disabled_account_and_product_without_messaging():
    """A disabled account, or one whose product has no messaging, is no
    route, with the reason."""
    with pytest.raises(NoRoute, match="account off is disabled"):
        decide(LOOKUP, sub("555"), "sip", {"sip"})
    with pytest.raises(NoRoute, match="messaging is not enabled for "
                       "account voice"):
        decide(LOOKUP, sub("556"), "sip", {"sip"})


def test_policy_needs_an_agent():
    """A policy routes over its transport only if the node delivers with
    it; a policy of the local transport names no account here."""
    assert tuple(decide(LOOKUP, sub("2221"), "sip", {"sip", "smpp"})) == \
        ("smpp", None, "to-env4")
    with pytest.raises(NoRoute, match="no smpp connections"):
        decide(LOOKUP, sub("2221"), "sip", {"sip"})
    with pytest.raises(NoRoute, match="policy sip-only: no local account"):
        decide(LOOKUP, sub("7001"), "sip", {"sip", "smpp"})


def test_nobody_and_loops_and_bad_numbers():
    """Nobody is NoRoute; more than five hops is a loop; a recipient that
    is not a number is a ModelError."""
    with pytest.raises(NoRoute, match="no account or service policy for 9"):
        decide(LOOKUP, sub("9"), "sip", {"sip"})
    with pytest.raises(NoRoute, match="routing loop"):
        decide(LOOKUP, sub("111222333", hops=6), "sip", {"sip"})
    assert decide(LOOKUP, sub("111222333", hops=5), "sip", {"sip"})
    with pytest.raises(ModelError):
        decide(LOOKUP, sub("abc"), "sip", {"sip"})


def test_root_lookup_reads_accounts(storage):
    """The root lookup finds accounts by DID and username and reads their
    product's messaging flag."""
    with storage.transaction() as root:
        root.add_product("Voice")
        root.add_customer("C")
        root.add_account("C", "1111")
        root.add_did("1111", "9647501111111")
        root.add_account("C", "2222")
        root.set_account_product("2222", "Voice")
    lookup = RootLookup(storage.root(), table())
    assert lookup.account("9647501111111") == LocalAccount("1111")
    assert lookup.account("2222") == LocalAccount("2222", True, False)
    assert lookup.account("3333") is None
