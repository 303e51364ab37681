"""
Fuzz what the HTTP API reads from a request: the query string or form
(as Twisted splits it), a JSON body, the Authorization header, message
ids, and the send parameters built from them; Kannel dlr-url templates
(those C{check_url} accepts, as the node expands no other).  They raise
only L{APIError}.

    python fuzz/http_params.py -max_total_time=60 /tmp/new fuzz/corpus/http_params
"""
from __future__ import annotations

import sys

import atheris
from twisted.web.http import parse_qs

with atheris.instrument_imports():
    from appliance.http import guard as G
    from appliance.http import params as P
    from appliance.http import sending as S

OURS = (P.APIError,)


def _query_args(raw: bytes) -> dict:
    """C{request.args} as twisted.web builds it from a query or form."""
    return parse_qs(raw, 1)


def test_one_input(data: bytes) -> None:
    # byte 0: where the parameters come from, byte 1: max_parts, then
    # the query string, form or body
    if len(data) < 2:
        return
    which = data[0] % 4
    max_parts = max(1, data[1])
    raw = data[2:]
    try:
        if which == 0:
            params = P.decode_args(_query_args(raw))
        elif which == 1:
            params = P.json_args(raw)
        elif which == 2:
            params = P.json_args(raw)
            params.update(P.decode_args(_query_args(raw)))
        else:
            params = P.decode_args(_query_args(raw))
            for header in (raw, b"Basic " + raw, b"Bearer " + raw, None):
                try:
                    kind, _, _ = G.credentials(header, params)
                    assert kind in ("token", "password", "none"), kind
                except OURS:
                    pass
        request = P.parse_send(params, max_parts, 7 * 86400)
        assert 1 <= request.parts <= max_parts, request
        assert request.recipients, request
    except OURS:
        pass
    text = raw.decode("utf-8", "replace")
    S.parse_id(text)
    try:
        P.check_url("dlr-url", text)
    except OURS:
        return
    # The node expands only a dlr-url that check_url accepted (the
    # callback's URL is the submission's checked dlr-url).  Expanding
    # every input as a template was most of the cost of a long input.
    out = P.kannel_dlr_url(text, 1, "351912345678", "ACME", 1.0e9, text)
    assert isinstance(out, str)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
