"""L{appliance.messaging.vocabulary.MessageView.of}."""
import dataclasses

import pytest

from appliance.messaging.store import Message
from appliance.messaging.vocabulary import MessageView


def test_of_equals_the_dataclass_built_view():
    """A view copied from a message is the view the dataclass builds from
    the same values (equal, same hash and repr), and stays frozen."""
    m = Message(5, "carrier", "acme", "12345", "964111222333", now=10.0,
                validity=20.0, text="hi", account="alice", receipt=1,
                hops=2)
    m.route, m.transport, m.attempts = "all", "smpp", 3
    view = MessageView.of(m)
    built = MessageView(*(getattr(m, f.name)
                          for f in dataclasses.fields(MessageView)))
    assert view == built
    assert hash(view) == hash(built)
    assert repr(view) == repr(built)
    assert (view.route, view.transport, view.attempts) == ("all", "smpp", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.text = "changed"


def test_of_reads_class_defaults():
    """Attributes the message never set are read from its class defaults."""
    m = Message(6, "account", "bob", "bob", "1234", now=1.0, validity=2.0)
    view = MessageView.of(m)
    assert (view.route, view.transport, view.text, view.attempts) == \
        (None, None, None, 0)
