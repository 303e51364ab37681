"""The send answer's direct JSON writer (L{appliance.http.resources.
send_json}) against C{json.dumps}."""
import json

from hypothesis import given, strategies as st

from appliance.http.resources import send_json

_text = st.text(max_size=12)
_accepted = st.one_of(
    st.fixed_dictionaries({"to": _text, "id": _text,
                           "status": st.just("accepted")}),
    st.fixed_dictionaries({"to": _text, "id": _text,
                           "status": st.just("accepted"), "price": _text,
                           "currency": _text}))
_refused = st.fixed_dictionaries({"to": _text, "status": st.just("refused"),
                                  "code": _text, "reason": _text})


@given(st.text(max_size=12), st.integers(0, 20),
       st.lists(st.one_of(_accepted, _refused), max_size=4))
def test_same_bytes_as_json_dumps(first, parts, rows):
    """Any send answer (accepted rows with or without a price, refused
    rows, any characters) is written byte for byte as json.dumps writes
    it."""
    data = {"id": first, "parts": parts, "recipients": rows}
    shuffled = {"parts": parts, "recipients": rows, "id": first}
    assert send_json(shuffled) == json.dumps(shuffled).encode("utf-8")
    assert send_json(data) == json.dumps(data).encode("utf-8")


def test_error_bodies_and_other_shapes():
    """An error body or an answer with other keys goes through json.dumps
    unchanged."""
    for data in ({"code": "no_route", "reason": "x", "recipients": []},
                 {"id": "1", "parts": 1, "recipients": [], "extra": 1},
                 {"id": "1", "parts": True, "recipients": []},
                 {"id": "1", "parts": 1, "recipients": [
                     {"to": "1", "id": "2", "status": "accepted",
                      "price": "0.1", "note": "x"}]}):
        assert send_json(data) == json.dumps(data).encode("utf-8")


def test_usual_answer():
    """The usual one-recipient answer with its price."""
    data = {"id": "100000df4", "parts": 1, "recipients": [
        {"to": "351911111111", "id": "100000df4", "status": "accepted",
         "price": "0.001", "currency": "USD"}]}
    assert send_json(data) == (
        b'{"id": "100000df4", "parts": 1, "recipients": [{"to": '
        b'"351911111111", "id": "100000df4", "status": "accepted", '
        b'"price": "0.001", "currency": "USD"}]}')
