"""
Regressions found by the coverage-guided fuzzer (fuzz/http_params.py):
each input once crashed a decoder with an exception other than its own
L{APIError}.
"""
from __future__ import annotations

import pytest

from appliance.http.params import APIError, check_url, parse_send


@pytest.mark.parametrize("url", ["http://lh]/", "http://[::1/x",
                                 "https://[zz]/", "http://h/]"])
def test_dlr_url_with_a_stray_bracket_is_invalid(url):
    """A dlr-url with a bracket that is no IPv6 address (urlsplit raises
    ValueError) is an invalid parameter, not an internal error."""
    if url == "http://h/]":
        assert check_url("dlr-url", url) == url  # a bracket in the path is fine
        return
    with pytest.raises(APIError) as e:
        check_url("dlr-url", url)
    assert e.value.status == 400 and e.value.param == "dlr-url"
    with pytest.raises(APIError):
        parse_send({"from": ["ACME"], "to": ["351912345678"],
                    "body": ["x"], "dlr-url": [url]}, 10, 86400)
