"""Tests for the send path (L{appliance.http.sending})."""
from decimal import Decimal

import pytest

from appliance.http.params import APIError, parse_send
from appliance.http.sending import Sender, message_id, parse_id
from tests.http.helpers import Core


@pytest.fixture
def node(storage, clock):
    n = Core(storage, clock)
    yield n
    n.stop()


def sender(node, queue_limit=1000):
    return Sender(node.core, node.storage, node.clock, queue_limit)


def request(to, body="hello", sender_="123456789", **more):
    params = {"from": [sender_], "to": to if isinstance(to, list) else [to],
              "body": [body]}
    params.update({k: [v] for k, v in more.items()})
    return parse_send(params, 5, 86400)


def test_answer_only_after_commit(node):
    """The answer fires only once the batched commit stored the message;
    the message then exists with the tenant as origin."""
    d = sender(node).send(node.tenant(), request("351912345678"))
    got = []
    d.addCallback(got.append)
    assert got == []
    node.commit()
    [(status, body)] = got
    assert status == 200 and body["parts"] == 1
    [row] = body["recipients"]
    assert row["status"] == "accepted" and row["price"] == "0.01"
    message = node.storage.messages().get(parse_id(row["id"]))
    assert (message.origin_kind, message.origin) == ("tenant", "acme")
    assert message.route == "pt"


def test_each_recipient_on_its_own(node):
    """One recipient without a route is refused with no_route while the
    others are accepted; only the accepted are stored."""
    d = sender(node).send(node.tenant(), request(
        ["351912345678", "49301234567", "447700900123"]))
    node.commit()
    status, body = d.result
    assert status == 200
    states = [(r["to"], r["status"], r.get("code")) for r in
              body["recipients"]]
    assert states == [("351912345678", "accepted", None),
                      ("49301234567", "refused", "no_route"),
                      ("447700900123", "accepted", None)]
    assert dict(node.storage.messages().counts())["accepted"] == 2


def test_all_refused_is_the_error(node):
    """A request whose every recipient is refused answers the refusal's
    status and code, and nothing is stored."""
    d = sender(node).send(node.tenant(), request("49301234567"))
    node.commit()
    status, body = d.result
    assert (status, body["code"]) == (404, "no_route")
    assert sum(dict(node.storage.messages().counts()).values()) == 0


def test_prepaid_without_funds(node, storage):
    """A prepaid tenant with too little balance gets 402 no_funds with a
    reason to show; nothing is stored or debited."""
    with storage.transaction() as root:
        from appliance.http.model import http_of
        http_of(root).tenants["acme"].prepaid = True
        http_of(root).tenants["acme"].balance = Decimal("0.005")
    node.billing.charger.rebuild()
    d = sender(node).send(node.tenant(), request("351912345678"))
    node.commit()
    status, body = d.result
    assert (status, body["code"]) == (402, "no_funds")
    assert "balance" in body["reason"].lower()
    assert node.tenant().balance == Decimal("0.005")


def test_prepaid_debited(node, storage):
    """A prepaid tenant is debited the price inside the accept commit."""
    with storage.transaction() as root:
        from appliance.http.model import http_of
        http_of(root).tenants["acme"].prepaid = True
        http_of(root).tenants["acme"].balance = Decimal("1")
    d = sender(node).send(node.tenant(), request("351912345678"))
    node.commit()
    assert d.result[0] == 200
    assert node.tenant().balance == Decimal("0.99")


def test_price_answered_is_the_charge(node, storage):
    """The price in the answer is the one the charger rated for the
    tenant (rated once): a rule's own tariff wins over the tenant's, and
    the billing record carries that amount; with a rule that charges
    nobody the answer shows no price."""
    from appliance.billing.model import billing_of
    from appliance.shell.script import run_script
    assert run_script(storage, """configure terminal
 tariff R
  currency EUR
  prefix 351 0.07
 exit
 authorization-rule api
  match origin tenant acme
  charge sender
  tariff R
 exit
end
""").ok
    d = sender(node).send(node.tenant(), request("351912345678"))
    node.commit()
    [row] = d.result[1]["recipients"]
    assert (row["price"], row["currency"]) == ("0.07", "EUR")
    [record] = list(billing_of(storage.root()).records.records(
        "tenant:acme", 0, 4_000_000_000))
    assert (record.amount, record.currency) == (Decimal("0.07"), "EUR")
    assert run_script(storage, """configure terminal
 authorization-rule api
  charge nobody
 exit
end
""").ok
    d = sender(node).send(node.tenant(), request("351912345678"))
    node.commit()
    [row] = d.result[1]["recipients"]
    assert row["status"] == "accepted" and "price" not in row


def test_sender_not_allowed_and_queue_full(node, storage):
    """A sender outside allow-sender is 403 and a full queue 503, both
    before anything is submitted."""
    with storage.transaction() as root:
        from appliance.http.model import http_of
        http_of(root).tenants["acme"].allow_sender("ACME")
    with pytest.raises(APIError) as e:
        sender(node).send(node.tenant(), request("351912345678"))
    assert (e.value.status, e.value.code) == (403, "sender_not_allowed")
    with pytest.raises(APIError) as e:
        sender(node, queue_limit=0).send(node.tenant(), request(
            "351912345678", sender_="ACME"))
    assert (e.value.status, e.value.code) == (503, "queue_full")


def test_status_own_messages_only(node, storage):
    """Status shows the tenant's own message with its carrier id once
    forwarded; another tenant's or an unknown id is 404, a bad id 400."""
    from appliance.messaging.core import Outcome
    d = sender(node).send(node.tenant(), request("351912345678"))
    node.commit()
    mid = d.result[1]["id"]
    [(view, answer)] = node.agent.calls
    answer.callback(Outcome("forwarded", "ok", "abc1", "carrier1"))
    node.commit()
    s = sender(node).status(node.tenant(), mid)
    assert (s["state"], s["connection"], s["carrier_id"]) == (
        "delivering", "carrier1", "abc1")
    with storage.transaction() as root:
        from appliance.http.model import http_of
        http_of(root).add_tenant("other")
    other = node.tenant("other")
    for tenant, text, status in ((other, mid, 404), (node.tenant(), "zz",
                                                     400),
                                 (node.tenant(), message_id(12345), 404)):
        with pytest.raises(APIError) as e:
            sender(node).status(tenant, text)
        assert e.value.status == status


def test_numbers_read_by_the_numbering_plan(node, storage):
    """Recipients and senders are read by the node's numbering plan: with
    country code 351 and trunk prefix 0, 0912345678 and 00351912345678 are
    both 351912345678; a name recipient is refused as not a number."""
    from appliance.shell.script import run_script
    assert run_script(storage, "configure terminal\n numbering-plan\n"
                      "  country-code 351\n  national-prefix 0\n exit\n"
                      "end\n").ok
    d = sender(node).send(node.tenant(), request(
        ["0912345678", "00351912345679", "alice"], sender_="0911111111"))
    node.commit()
    status, body = d.result
    rows = [(r["to"], r["status"]) for r in body["recipients"]]
    assert rows == [("351912345678", "accepted"),
                    ("351912345679", "accepted"), ("alice", "refused")]
    message = node.storage.messages().get(parse_id(body["id"]))
    assert message.sender == "351911111111"


def test_tenant_numbering_plan(node, storage):
    """A tenant's own numbering plan reads its numbers (national 07700
    900123 as UK with its country code 44 and trunk prefix 0); another
    tenant keeps the node's plan (no country code: the digits as given)."""
    from appliance.shell.script import run_script
    from appliance.http.model import book_of, http_of
    from appliance.model.numbering import node_plan
    assert run_script(storage, "configure terminal\n tenant acme\n"
                      "  numbering-plan country-code 44\n"
                      "  numbering-plan national-prefix 0\n exit\n"
                      " tenant other\n exit\nend\n").ok
    book = book_of(http_of(storage.root()), node_plan(storage.root()))
    d = sender(node).send(book.tenants["acme"], request("07700900123"))
    node.commit()
    status, body = d.result
    assert status == 200
    assert body["recipients"][0]["to"] == "447700900123"
    d = sender(node).send(node.tenant("acme"), request("07700900124"))
    node.commit()
    assert d.result[1]["recipients"][0]["to"] == "447700900124"
    d = sender(node).send(book.tenants["other"], request("07700900123"))
    node.commit()
    assert d.result[1]["recipients"][0]["status"] == "refused"


def test_source_reaches_authorization_rules(node, storage):
    """The client's address is the submission's source, so an
    authorization rule with C{match source} applies to HTTP submissions:
    from 10.1.2.3 the rule makes the message free, from 192.0.2.1 the
    prepaid tenant is debited its tariff's price."""
    from appliance.shell.script import run_script
    assert run_script(storage, "configure terminal\n"
                      " authorization-rule lan\n  match origin tenant acme\n"
                      "  match source 10.0.0.0/8\n  charge nobody\n"
                      " exit\n tenant acme\n  prepaid\n  balance add 1\n"
                      " exit\nend\n").ok
    balances = []
    for source in ("10.1.2.3", "192.0.2.1"):
        d = sender(node).send(node.tenant(), request("351912345678"),
                              source=source)
        node.commit()
        assert d.result[0] == 200
        balances.append(node.tenant().balance)
    assert balances == [Decimal("1"), Decimal("0.99")]


def test_queue_depth_read_again_near_the_limit(node, storage):
    """Far below the limit the queue depth read is reused for a moment;
    at the limit it is read for each request, so the request after the
    one that filled the queue gets 503 queue_full."""
    s = sender(node, queue_limit=2)
    for expected in (200, 200):
        d = s.send(node.tenant(), request("351912345678"))
        node.commit()
        assert d.result[0] == expected
    with pytest.raises(APIError) as e:
        s.send(node.tenant(), request("351912345678"))
    assert e.value.code == "queue_full"
    reads = []

    class Messages:
        def counts(self):
            reads.append(1)
            return storage.messages().counts()

    class Storage:
        def messages(self):
            return Messages()
    big = sender(node, queue_limit=1000)
    big.storage = Storage()
    assert not big.queue_full() and reads == [1]
    assert not big.queue_full() and reads == [1]
    node.clock.advance(1)
    assert not big.queue_full() and reads == [1, 1]
