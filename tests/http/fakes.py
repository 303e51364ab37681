"""A fake HTTP client agent and response for the callback tests (the
tenants' dlr-url POSTs, on one node and on several)."""
from twisted.internet import defer


class FakeResponse:
    """An answer of C{code} with C{body}."""

    def __init__(self, code, body=b"ok"):
        self.code = code
        self.phrase = b"X"
        self.body = body
        self.length = len(body)

    def deliverBody(self, protocol):
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    """Records each request as C{(method, url, headers, body, Deferred)};
    answers none until the test does."""

    def __init__(self):
        self.requests = []

    def request(self, method, url, headers=None, body=None):
        d = defer.Deferred()
        data = body.data if body is not None else b""
        self.requests.append((method, url, headers, data, d))
        return d
