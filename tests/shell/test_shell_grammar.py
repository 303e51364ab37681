"""Unit tests of the pure shell grammar (no Twisted, no ZODB)."""
from decimal import Decimal
import ipaddress

import pytest

from appliance.shell.grammar import (
    ANY, CR, NO_STR, CommandTree, GrammarError, Mode, common_prefix,
    parse_spec, quote, tokenize)

TOP = Mode("exec")
CONF = Mode("config", TOP)
CARRIER = Mode("config-carrier", CONF, "carrier")


def make_tree():
    tree = CommandTree()
    cmd = tree.command
    h = lambda ctx, *a: a  # noqa: E731
    cmd(TOP, "configure terminal", help=("Configure", "Terminal"))(h)
    cmd(ANY, "show running-config", help=("Show", "Config"), action="show")(h)
    cmd(ANY, "show carriers", help=("Show", "Carriers"), action="show")(h)
    cmd(ANY, "exit", help=("Exit",), action="session", privileged=False)(h)
    cmd(CONF, "carrier CARRIER", help=("Carrier", "Name"), enters=CARRIER)(h)
    cmd(CONF, "customer NAME", help=("Customer", "Name"))(h)
    cmd(CONF, "connection NAME", help=("Connection", "Name"))(h)
    cmd(CARRIER, "throughput <1-100000>", help=("Rate", "Per second"))(h)
    cmd(CARRIER, "no throughput", help=(NO_STR, "Rate"))(h)
    cmd(CARRIER, "bind (transmitter|receiver|transceiver)",
        help=("Bind", "Type"))(h)
    cmd(CARRIER, "allow-ip NETWORK", help=("Allow", "Network"))(h)
    cmd(CARRIER, "did NUMBER", help=("DID", "Number"))(h)
    cmd(CARRIER, "price PREFIX DECIMAL", help=("Price", "Prefix", "Price"))(h)
    cmd(CARRIER, "ssh-key LINE", help=("Key", "Line"))(h)
    return tree


@pytest.fixture
def tree():
    return make_tree()


def test_tokenize_quotes_and_indentation():
    """Leading indentation is ignored and double quotes group words."""
    toks = tokenize('   product "Call & Chat"  x')
    assert [t.text for t in toks] == ["product", "Call & Chat", "x"]
    assert toks[1].quoted and not toks[0].quoted


def test_tokenize_escapes_and_unterminated():
    """A backslash escapes inside quotes; an open quote is an error."""
    assert tokenize(r'"a \"b\" c"')[0].text == 'a "b" c'
    with pytest.raises(GrammarError, match="unterminated quote"):
        tokenize('carrier "abc')


def test_quote_round_trips():
    """quote() writes values that tokenize reads back unchanged."""
    for word in ["plain", "Call & Chat", 'a"b', "back\\slash", "!bang", ""]:
        assert [t.text for t in tokenize(quote(word))] == [word]
    assert quote("TATA") == "TATA"


def test_unique_prefix_matches(tree):
    """Unique prefixes select keywords: 'sh run' is show running-config."""
    m = tree.parse(TOP, "sh run")
    assert m.command.spec == "show running-config"
    assert tree.parse(TOP, "conf t").command.spec == "configure terminal"


def test_ambiguous_prefix(tree):
    """A prefix of several keywords is refused, naming them."""
    with pytest.raises(GrammarError, match="ambiguous.*carrier.*connection"):
        tree.parse(CONF, "c X")


def test_unknown_and_incomplete(tree):
    """Unknown words, missing arguments and extra words are reported."""
    with pytest.raises(GrammarError, match="unknown command: frob"):
        tree.parse(TOP, "frob")
    with pytest.raises(GrammarError, match="incomplete command"):
        tree.parse(CONF, "carrier")
    with pytest.raises(GrammarError, match="invalid input at 'extra'"):
        tree.parse(TOP, "show carriers extra")
    with pytest.raises(GrammarError, match="empty"):
        tree.parse(TOP, "   ")


def test_mode_scoping(tree):
    """Commands are only found in their mode (or in every mode for ANY)."""
    with pytest.raises(GrammarError):
        tree.parse(TOP, "carrier X")
    assert tree.parse(CARRIER, "sh car").command.spec == "show carriers"


def test_range_type(tree):
    """Integer ranges convert and check bounds."""
    assert tree.parse(CARRIER, "throughput 100").values == [100]
    with pytest.raises(GrammarError, match="out of range"):
        tree.parse(CARRIER, "throughput 0")
    with pytest.raises(GrammarError, match="integer"):
        tree.parse(CARRIER, "throughput fast")


def test_choice_type(tree):
    """An enum takes a unique prefix and gives the full word."""
    assert tree.parse(CARRIER, "bind transc").values == ["transceiver"]
    assert tree.parse(CARRIER, "bind rec").values == ["receiver"]
    with pytest.raises(GrammarError, match="ambiguous"):
        tree.parse(CARRIER, "bind trans")


def test_network_number_decimal_types(tree):
    """IP networks, E.164 numbers and decimals are typed and checked."""
    assert tree.parse(CARRIER, "allow-ip 127.0.0.0/8").values == [
        ipaddress.ip_network("127.0.0.0/8")]
    with pytest.raises(GrammarError, match="invalid IP network"):
        tree.parse(CARRIER, "allow-ip 300.1.1.1/8")
    assert tree.parse(CARRIER, "did +964750123").values == ["964750123"]
    with pytest.raises(GrammarError, match="E.164"):
        tree.parse(CARRIER, "did 12ab")
    assert tree.parse(CARRIER, "price 964 0.01").values == ["964",
                                                             Decimal("0.01")]
    with pytest.raises(GrammarError, match="decimal"):
        tree.parse(CARRIER, "price 964 cheap")
    with pytest.raises(GrammarError, match=">= 0"):
        tree.parse(CARRIER, "price 964 -1")


def test_rest_of_line(tree):
    """LINE takes the rest of the line verbatim."""
    m = tree.parse(CARRIER, "ssh-key ssh-ed25519 AAAA x@y")
    assert m.values == ["ssh-ed25519 AAAA x@y"]


def test_quoted_name_argument(tree):
    """A quoted name with spaces is one argument."""
    assert tree.parse(CONF, 'customer "John Doe"').values == ["John Doe"]


def test_help_next_words(tree):
    """'?' after a space lists next words with help, and <cr> if complete."""
    pairs = dict(tree.help(TOP, "show "))
    assert pairs == {"carriers": "Carriers", "running-config": "Config"}
    pairs = dict(tree.help(CARRIER, "bind "))
    assert set(pairs) == {"transmitter", "receiver", "transceiver"}
    assert tree.help(TOP, "show carriers ") == [(CR, "")]


def test_help_partial_word(tree):
    """'?' right after a partial word lists the words it may complete to."""
    assert [w for w, _ in tree.help(CONF, "c")] == [
        "carrier", "connection", "customer"]
    with pytest.raises(GrammarError):
        tree.help(CONF, "zz")


def test_help_privileged_hidden(tree):
    """Commands a view operator cannot run are not offered to it."""
    assert "configure" in dict(tree.help(TOP, ""))
    assert "configure" not in dict(tree.help(TOP, "", admin=False))


def test_complete_keywords_and_names(tree):
    """TAB candidates: keywords, enum values and object names."""
    assert tree.complete(TOP, "sh") == (0, ["show"])
    assert tree.complete(TOP, "show r") == (5, ["running-config"])
    assert tree.complete(CARRIER, "bind t") == (5, ["transceiver",
                                                    "transmitter"])
    names = {"carriers": ["TATA", "Carrier1"]}.get
    assert tree.complete(CONF, "carrier T", names=lambda k: names(k, [])) == (
        8, ["TATA"])
    assert tree.complete(CONF, "zz ") == (3, [])


def test_common_prefix():
    """common_prefix gives the longest shared start."""
    assert common_prefix(["transmitter", "transceiver"]) == "trans"
    assert common_prefix([]) == ""


def test_format_round_trips(tree):
    """Command.format writes values that parse back to the same values."""
    for line in ['customer "John Doe"', "throughput 5", "bind transmitter",
                 "allow-ip 10.0.0.0/8", "ssh-key ssh-ed25519 AAAA a b"]:
        mode = CONF if line.startswith("customer") else CARRIER
        m = tree.parse(mode, line)
        again = tree.parse(mode, m.command.format(m.values))
        assert again.values == m.values and again.command is m.command


def test_spec_errors():
    """Malformed declarations are refused when declared."""
    with pytest.raises(ValueError, match="helps"):
        parse_spec("a b", ("only one",))
    with pytest.raises(ValueError, match="bad element"):
        parse_spec("a B@D", ("x", "y"))
    with pytest.raises(ValueError, match="LINE must be last"):
        parse_spec("a LINE b", ("x", "y", "z"))
    tree = CommandTree()
    tree.command(TOP, "x", help=("x",))(lambda ctx: None)
    with pytest.raises(ValueError, match="duplicate"):
        tree.command(TOP, "x", help=("x",))(lambda ctx: None)
