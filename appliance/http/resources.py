# -*- test-case-name: tests.http.test_resources -*-
"""
The twisted.web side of the HTTP API: one leaf resource that dispatches
by path, reads parameters, authenticates through the L{Guard}, and writes
the JSON (or Kannel's and Jasmin's text) answers.
"""
from __future__ import annotations

import ipaddress
import json
import time
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from appliance.http.params import (
    APIError, SendRequest, check_sender, check_url, decode_args,
    encode_body, invalid, json_args, one, parse_send, split_recipients)
from appliance.http.sending import message_id

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
HTML = b"text/html"


_ANSWER = ("id", "parts", "recipients")
_ACCEPTED = ("to", "id", "status")
_PRICED = ("to", "id", "status", "price", "currency")


def send_json(data: dict) -> bytes:
    """
    C{json.dumps(data).encode()} of a send answer, written directly for
    its usual shape (an id, parts, accepted recipients with or without a
    price); anything else (refusals, other keys) goes through
    C{json.dumps}.  The bytes are the same either way.
    """
    if tuple(data) != _ANSWER or type(data["parts"]) is not int:
        return json.dumps(data).encode("utf-8")
    rows = []
    for row in data["recipients"]:
        keys = tuple(row)
        if row.get("status") != "accepted":
            return json.dumps(data).encode("utf-8")
        if keys == _PRICED:
            rows.append('{"to": %s, "id": %s, "status": "accepted", '
                        '"price": %s, "currency": %s}' % (
                            _quote(row["to"]), _quote(row["id"]),
                            _quote(row["price"]), _quote(row["currency"])))
        elif keys == _ACCEPTED:
            rows.append('{"to": %s, "id": %s, "status": "accepted"}' % (
                _quote(row["to"]), _quote(row["id"])))
        else:
            return json.dumps(data).encode("utf-8")
    return ('{"id": %s, "parts": %d, "recipients": [%s]}' % (
        _quote(data["id"]), data["parts"], ", ".join(rows))).encode("utf-8")


def _networks(texts) -> list:
    return [ipaddress.ip_network(t, strict=False) for t in texts]


def address_in(source: str, networks: list) -> bool:
    """Whether C{source} is in one of C{networks}."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in n for n in networks if n.version == address.version)


class APIResource(Resource):
    """
    Every endpoint of the API (a leaf: the path is dispatched here).

    @ivar counts: answers by (endpoint, status), for C{show http}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, guard: Any, sender: Any, clock: Any, section: Any,
                 metrics: Any = None, health: Callable[[], dict] | None = None,
                 openapi: bytes = b"{}",
                 balance: Callable[[Any], tuple] | None = None) -> None:
        super().__init__()
        self.guard, self.sender, self.clock = guard, sender, clock
        self.section = section
        self.metrics = metrics
        self.health = health or (lambda: {"status": "ok"})
        self.openapi = openapi
        self.balance = balance or (lambda tenant: (tenant.balance, None))
        self.ops_networks = _networks(section.ops_allow)
        self.counts: dict[tuple[str, int], int] = {}
        self._counters: dict[tuple[str, int], Any] = {}
        self._latencies: dict[str, Any] = {}
        self._routes = {
            b"/sendsms/send": (self.send, (b"GET", b"POST")),
            b"/sendsms/status": (self.status, (b"GET",)),
            b"/cgi-bin/sendsms": (self.kannel, (b"GET", b"POST")),
            b"/send": (self.jasmin_send, (b"GET", b"POST")),
            b"/balance": (self.jasmin_balance, (b"GET", b"POST")),
            b"/metrics": (self.metrics_text, (b"GET",)),
            b"/healthz": (self.healthz, (b"GET",)),
            b"/openapi.json": (self.openapi_doc, (b"GET",)),
        }

    # -- plumbing --------------------------------------------------------

    def render(self, request: server.Request) -> Any:
        request.started = time.perf_counter()
        route = self._routes.get(request.path)
        if route is None:
            return self._error(request, "-", APIError(
                "not_found", "no such endpoint"))
        handler, methods = route
        endpoint = request.path.decode()
        if request.method not in methods:
            request.setHeader(b"Allow", b", ".join(methods))
            return self._error(request, endpoint, APIError(
                "method_not_allowed", "method not allowed here"))
        try:
            return handler(request, endpoint)
        except APIError as e:
            return self._error(request, endpoint, e)

    def _count(self, endpoint: str, status: int) -> None:
        key = (endpoint, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.metrics is not None:
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = \
                    self.metrics.http_requests.labels(endpoint, str(status))
            counter.inc()

    def _write(self, request: Any, endpoint: str, status: int, body: bytes,
               kind: bytes = JSON, retry_after: int | None = None) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", kind)
        if retry_after is not None:
            request.setHeader(b"Retry-After", str(retry_after).encode())
        self._count(endpoint, status)
        return body

    def _json(self, request: Any, endpoint: str, status: int,
              data: Any) -> bytes:
        return self._write(request, endpoint, status,
                           json.dumps(data).encode("utf-8"))

    def _error(self, request: Any, endpoint: str, error: APIError) -> bytes:
        return self._write(request, endpoint, error.status,
                           json.dumps(error.body()).encode("utf-8"),
                           retry_after=error.retry_after)

    def _finish(self, request: Any, body: bytes) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        # With its length the answer is one write, not chunked.
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def _params(self, request: Any) -> dict[str, list[str]]:
        params = decode_args(request.args)
        kind = (request.getHeader(b"content-type") or b"").split(b";")[0]
        if request.method == b"POST" and kind.strip().lower() == JSON:
            request.content.seek(0)
            for key, values in json_args(request.content.read()).items():
                params.setdefault(key, []).extend(values)
        return params

    def _source(self, request: Any) -> str:
        return getattr(request.getClientAddress(), "host", "")

    def _authenticated(self, request: Any, params: dict,
                       then: Callable, fail: Callable, endpoint: str) -> Any:
        """
        Authenticate, then call C{then(tenant)} giving the answer's bytes
        or a Deferred of them; errors go to C{fail(error)}.  A request
        whose credentials need no password hashing is served without a
        Deferred of its own (the one C{then} returns is the only one).

        @return: the answer, or C{NOT_DONE_YET} while it is waited for.
        """
        try:
            tenant = self.guard.check(self._source(request),
                                      request.getHeader(b"authorization"),
                                      params)
        except APIError as e:
            return self._now(request, endpoint, fail(e))
        if not isinstance(tenant, defer.Deferred):
            return self._serve(request, tenant, then, fail, endpoint)

        def verified(tenant):
            out = self._serve(request, tenant, then, fail, endpoint)
            if out is not server.NOT_DONE_YET:
                self._finish(request, out)

        def refused(failure):
            if failure.check(APIError):
                self._finish(request, self._now(request, endpoint,
                                                fail(failure.value)))
            else:
                self.log.failure("HTTP authentication failed", failure)
                self._finish(request, self._now(request, endpoint, fail(
                    APIError("internal", "internal error"))))
        tenant.addCallbacks(verified, refused)
        tenant.addErrback(lambda f: self.log.failure("answering failed", f))
        return server.NOT_DONE_YET

    def _serve(self, request: Any, tenant: Any, then: Callable,
               fail: Callable, endpoint: str) -> Any:
        """Call C{then(tenant)} counted in flight for the tenant.
        @return: the answer, or C{NOT_DONE_YET} (answered from the
        Deferred C{then} returned)."""
        name = tenant.name
        try:
            self.guard.enter(name)
        except APIError as e:
            return self._now(request, endpoint, fail(e))
        try:
            result = then(tenant)
        except APIError as e:
            self.guard.leave(name)
            return self._now(request, endpoint, fail(e))
        except Exception:
            # Broad: a handler's bug is the tenant's 500 "internal",
            # logged with its traceback; the listener keeps serving.
            self.guard.leave(name)
            self.log.failure("HTTP request failed")
            return self._now(request, endpoint,
                             fail(APIError("internal", "internal error")))
        if not isinstance(result, defer.Deferred):
            self.guard.leave(name)
            return self._now(request, endpoint, result)
        result.addBoth(self._answered, request, name, fail, endpoint)
        return server.NOT_DONE_YET

    def _answered(self, result: Any, request: Any, name: str,
                  fail: Callable, endpoint: str) -> None:
        """The Deferred of a served request fired: answer it."""
        self.guard.leave(name)
        try:
            if isinstance(result, Failure):
                if result.check(APIError):
                    result = fail(result.value)
                else:
                    self.log.failure("HTTP request failed", result)
                    result = fail(APIError("internal", "internal error"))
            self._finish(request, result)
            if self.metrics is not None:
                self._observe(request, endpoint)
        except Exception:
            # Broad: this runs as a Deferred's callback; a bug writing
            # one answer is logged here, not lost in the Deferred.
            self.log.failure("answering failed")

    def _now(self, request: Any, endpoint: str, body: bytes) -> bytes:
        """An answer given without waiting (twisted.web writes it with
        its length): observed, then returned."""
        if self.metrics is not None:
            self._observe(request, endpoint)
        return body

    def _observe(self, request: Any, endpoint: str) -> None:
        histogram = self._latencies.get(endpoint)
        if histogram is None:
            histogram = self._latencies[endpoint] = \
                self.metrics.accept_latency.labels(endpoint)
        histogram.observe(time.perf_counter() - request.started)

    # -- /sendsms ----------------------------------------------------------

    def send(self, request: Any, endpoint: str) -> Any:
        params = self._params(request)
        send = parse_send(params, self.section.max_parts,
                          self.section.max_validity)

        def then(tenant):
            self.guard.throttle(tenant, len(send.recipients))
            meta = self._meta(send)
            d = self.sender.send(tenant, send, meta, self._source(request))
            return d.addCallback(self._send_answer, request, endpoint)
        return self._authenticated(request, params, then, lambda e:
                                   self._error(request, endpoint, e),
                                   endpoint)

    def _send_answer(self, answer: tuple[int, dict], request: Any,
                     endpoint: str) -> bytes:
        status, data = answer
        return self._write(request, endpoint, status, send_json(data))

    @staticmethod
    def _meta(send: SendRequest) -> tuple:
        meta = []
        if send.dlr_url:
            meta += [("dlr-url", send.dlr_url), ("dlr-level", send.dlr_level)]
        if send.client_ref:
            meta.append(("client-ref", send.client_ref))
        return tuple(meta)

    def status(self, request: Any, endpoint: str) -> Any:
        params = self._params(request)
        return self._authenticated(
            request, params,
            lambda tenant: self._json(request, endpoint, 200,
                                      self.sender.status(tenant, one(
                                          params, "id"))),
            lambda e: self._error(request, endpoint, e), endpoint)

    # -- Kannel ----------------------------------------------------------

    def kannel(self, request: Any, endpoint: str) -> Any:
        def answer(status: int, text: str) -> bytes:
            return self._write(request, endpoint, status,
                               text.encode("utf-8"), HTML)
        try:
            params = self._params(request)
        except APIError:
            return answer(400, "Charset or body misformed, rejected")

        def fail(error: APIError) -> bytes:
            if error.code in ("unauthorized", "address_not_allowed",
                              "forbidden") or (error.code == "throttled"
                                               and error.retry_after == 60):
                return answer(403, "Authorization failed for sendsms")
            if error.code in ("no_route", "destination_not_allowed",
                              "no_funds", "sender_not_allowed"):
                return answer(403, "Not routable. Do not try again.")
            if error.code in ("throttled", "overloaded", "queue_full"):
                return answer(503, "Temporal failure, try again later.")
            if error.code == "internal":
                return answer(500, "Sending failed.")
            return answer(400, error.reason)

        def then(tenant):
            send = self._kannel_request(params)
            self.guard.throttle(tenant, len(send.recipients))
            meta = [("api", "kannel")]
            if send.dlr_url:
                meta += [("dlr-url", send.dlr_url),
                         ("dlr-mask", one(params, "dlr-mask") or "0")]
            d = self.sender.send(tenant, send, tuple(meta),
                                 self._source(request))

            def done(result):
                status, body = result
                if status != 200:
                    return fail(APIError(body["code"], body["reason"]))
                accepted = [r for r in body["recipients"]
                            if r["status"] == "accepted"]
                if len(send.recipients) == 1:
                    return answer(202, "0: Accepted for delivery")
                text = "Sent."
                denied = [r["to"] for r in body["recipients"]
                          if r["status"] != "accepted"]
                if denied:
                    text += " Denied receivers are: " + " ".join(denied)
                if send.parts > 1:
                    text += f" Message splits: {send.parts}"
                del accepted
                return answer(202, text)
            return d.addCallback(done)
        return self._authenticated(request, params, then, fail, endpoint)

    def _kannel_request(self, params: dict) -> SendRequest:
        def rejected(text: str) -> APIError:
            return APIError("invalid_parameter", text)
        to = params.get("to")
        if to is None:
            raise rejected("Missing receiver number, rejected")
        if not any(v.strip() for v in to):
            raise rejected("Empty receiver number not allowed, rejected")
        try:
            recipients = split_recipients(to, " ,;")
        except APIError:
            raise rejected("Number(s) has/have been denied by white- and/or "
                           "black-lists.") from None
        sender = one(params, "from")
        if not sender:
            raise rejected("Sender missing and no global set, rejected")
        try:
            sender = check_sender(sender)
        except APIError:
            raise rejected("Sender missing and no global set, rejected") \
                from None
        coding = {None: "auto", "0": "auto", "1": "auto", "2": "ucs2"}.get(
            one(params, "coding"))
        if coding is None:
            raise rejected("Coding field misformed, rejected")
        try:
            encoding, parts = encode_body(one(params, "text") or " ", coding,
                                          self.section.max_parts)
        except APIError as e:
            if e.code == "too_many_parts":
                raise rejected("Charset or body misformed, rejected") \
                    from None
            raise rejected("Charset or body misformed, rejected") from None
        dlr_url = one(params, "dlr-url")
        if dlr_url is not None:
            try:
                check_url("dlr-url", dlr_url)
            except APIError:
                raise rejected("DLR-URL field misformed, rejected") from None
        mask = one(params, "dlr-mask")
        if mask is not None and not (mask.isdigit() and int(mask) < 256):
            raise rejected("DLR-Mask field misformed, rejected")
        validity = one(params, "validity")
        if validity is not None:
            if not validity.isdigit() or not 1 <= int(validity) <= \
                    self.section.max_validity // 60:
                raise rejected("Validity field misformed, rejected")
            validity = max(int(validity) * 60, 60)
        return SendRequest(sender, recipients, one(params, "text") or " ",
                           encoding, parts, validity, dlr_url,
                           "final", None)

    # -- Jasmin ----------------------------------------------------------

    def jasmin_send(self, request: Any, endpoint: str) -> Any:
        def answer(status: int, text: str) -> bytes:
            return self._write(request, endpoint, status,
                               text.encode("utf-8"), TEXT)
        try:
            params = self._params(request)
        except APIError as e:
            return answer(400, f'Error "{e.reason}"')
        for name in ("to", "username", "password"):
            if not params.get(name):
                return answer(400, f'Error "Mandatory argument [{name}] is '
                              'not found."')

        def fail(error: APIError) -> bytes:
            if error.code in ("unauthorized", "address_not_allowed",
                              "forbidden"):
                name = one(params, "username")
                return answer(403, f'Error "Authentication failure for '
                              f'username:{name}"')
            if error.code in ("no_route",):
                return answer(412, 'Error "No route found"')
            if error.code in ("no_funds", "destination_not_allowed"):
                return answer(403, 'Error "Cannot charge submit_sm, check '
                              'RouterPB log file for details"')
            if error.code == "throttled":
                return answer(403, 'Error "User throughput exceeded"')
            if error.code in ("overloaded", "queue_full", "internal"):
                return answer(500, 'Error "Cannot send submit_sm, check '
                              'SMPPClientManagerPB log file for details"')
            return answer(400, f'Error "{error.reason}"')

        def then(tenant):
            send = self._jasmin_request(params)
            self.guard.throttle(tenant, 1)
            meta = [("api", "jasmin")]
            if send.dlr_url:
                meta += [("dlr-url", send.dlr_url),
                         ("dlr-level", one(params, "dlr-level") or "2"),
                         ("dlr-method", one(params, "dlr-method") or "POST")]
            d = self.sender.send(tenant, send, tuple(meta),
                                 self._source(request))

            def done(result):
                status, body = result
                if status != 200:
                    return fail(APIError(body["code"], body["reason"]))
                return answer(200, f'Success "{body["id"]}"')
            return d.addCallback(done)
        return self._authenticated(request, params, then, fail, endpoint)

    def _jasmin_request(self, params: dict) -> SendRequest:
        def bad(name: str, value: str) -> APIError:
            return APIError("invalid_parameter", f"Argument [{name}] has an "
                            f"invalid value: [{value}].")
        known = {"to", "from", "coding", "username", "password", "priority",
                 "sdt", "validity-period", "dlr", "dlr-url", "dlr-level",
                 "dlr-method", "tags", "content", "hex-content",
                 "custom_tlvs"}
        for name in params:
            if name not in known:
                raise APIError("invalid_parameter",
                               f"Argument [{name}] is unknown.")
        to = one(params, "to")
        digits = to[1:] if to.startswith("+") else to
        if not digits.isdigit():
            raise bad("to", to)
        content = one(params, "content")
        if content is None:
            raise APIError("invalid_parameter",
                           "Content or hex-content not present.")
        sender = one(params, "from") or self.section.default_sender
        try:
            sender = check_sender(sender)
        except APIError:
            raise bad("from", sender) from None
        coding = {None: "auto", "0": "gsm7", "8": "ucs2"}.get(
            one(params, "coding"), "auto")
        try:
            encoding, parts = encode_body(content, coding,
                                          self.section.max_parts)
        except APIError:
            raise bad("content", content) from None
        dlr = one(params, "dlr") or "no"
        if dlr not in ("yes", "no"):
            raise bad("dlr", dlr)
        dlr_url = one(params, "dlr-url")
        if dlr_url is not None:
            try:
                check_url("dlr-url", dlr_url)
            except APIError:
                raise bad("dlr-url", dlr_url) from None
        level = one(params, "dlr-level") or "2"
        if level not in ("1", "2", "3"):
            raise bad("dlr-level", level)
        validity = one(params, "validity-period")
        if validity is not None:
            if not validity.isdigit():
                raise bad("validity-period", validity)
            validity = min(max(int(validity) * 60, 60),
                           self.section.max_validity)
        return SendRequest(sender, (to,), content, encoding, parts,
                           validity, dlr_url if dlr == "yes" or dlr_url
                           else None, "final", None)

    def jasmin_balance(self, request: Any, endpoint: str) -> Any:
        params = self._params(request)
        if not params.get("username") or not params.get("password"):
            return self._json(request, endpoint, 400, "Mandatory arguments "
                              "not found, please refer to the HTTPAPI "
                              "specifications.")

        def then(tenant):
            balance, count = self.balance(tenant)
            return self._json(request, endpoint, 200, {
                "balance": str(balance) if tenant.prepaid else "ND",
                "sms_count": count if count is not None else "ND"})

        def fail(error: APIError) -> bytes:
            if error.code in ("unauthorized", "address_not_allowed",
                              "forbidden", "throttled"):
                name = one(params, "username")
                return self._json(request, endpoint, 403, "Authentication "
                                  f"failure for username:{name}")
            return self._json(request, endpoint, error.status, error.reason)
        return self._authenticated(request, params, then, fail, endpoint)

    # -- operations ------------------------------------------------------

    def _ops_allowed(self, request: Any) -> None:
        if not address_in(self._source(request), self.ops_networks):
            raise APIError("address_not_allowed",
                           "not allowed from this address")

    def metrics_text(self, request: Any, endpoint: str) -> bytes:
        self._ops_allowed(request)
        if self.metrics is None:
            raise APIError("not_found", "metrics are not enabled")
        return self._write(request, endpoint, 200, self.metrics.text(),
                           b"text/plain; version=0.0.4; charset=utf-8")

    def healthz(self, request: Any, endpoint: str) -> bytes:
        self._ops_allowed(request)
        report = self.health()
        status = 200 if report.get("status") == "ok" else 503
        return self._json(request, endpoint, status, report)

    def openapi_doc(self, request: Any, endpoint: str) -> bytes:
        return self._write(request, endpoint, 200, self.openapi)
