"""
MESSAGE from apps (RFC 3428): authenticate (407), check the body, hand a
L{Submission} to the messaging core and answer C{202 Accepted} only once
the core has committed the message.

Content: C{text/plain} with any charset IANA names that Python knows
(default UTF-8), stored as text; anything else gets C{415} with
C{Accept: text/plain}. A body larger than C{max_message_bytes} gets
C{413}. An empty body gets C{400}: there is no text to deliver (apps send
empty MESSAGEs only by mistake; is-composing notices are C{415}).
The recipient is the Request-URI user (a C{tel:} number or the user part
of a sip URI), read by the node's numbering plan (C{+...}, the
international prefix C{00...}, the trunk prefix C{0...}, bare digits as
the plan says: L{appliance.model.numbering.normalize}) into E.164 digits;
a user that is not a number is passed as an account username; whom
nobody takes gets C{404}.
"""
from __future__ import annotations

import codecs
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from appliance.messaging.vocabulary import NoRoute, Refused, Submission
from appliance.model.errors import ModelError
from appliance.model.numbering import (DEFAULT_PLAN, NPI_ISDN, TON_UNKNOWN,
                                       Plan, normalize)
from appliance.sip.auth import DigestGate
from appliance.sip.tokens import token_hex
from appliance.sip.message import Request, Response, make_response

__all__ = ["MessageIntake", "parse_content_type"]


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """
    Split a Content-Type value.

    @param value: e.g. C{'text/plain; charset="UTF-8"'}, or C{None}.
    @return: the media type in lower case (C{""} when absent) and its
        parameters (names in lower case, values unquoted).
    """
    if not value:
        return "", {}
    kind, *params = value.split(";")
    out = {}
    for param in params:
        name, _, v = param.partition("=")
        out[name.strip().lower()] = v.strip().strip('"')
    return "".join(kind.split()).lower(), out


class MessageIntake:
    """
    Turn authenticated MESSAGE requests into submissions.

    @ivar received: MESSAGEs accepted (statistics).
    @ivar refused: MESSAGEs answered with an error after authentication.
    """

    log = Logger()

    def __init__(self, section: Any, gate: DigestGate, core: Any,
                 plan: Callable[[], Plan] = lambda: DEFAULT_PLAN) -> None:
        """
        @param section: the L{appliance.config.SIPSection}.
        @param gate: digest authentication.
        @param core: the L{appliance.messaging.interfaces.IMessagingCore}.
        @param plan: the node's numbering plan, as it is now.
        """
        self.plan = plan
        self.section = section
        self.gate = gate
        self.core = core
        self.received = 0
        self.refused = 0

    def handle(self, request: Request, tx: Any) -> None:
        """
        Answer one MESSAGE through its server transaction.

        @param request: the MESSAGE.
        @param tx: its server transaction.
        """
        auth = self.gate.authenticate(request, tx.address[0], proxy=True)
        if auth.response is not None:
            tx.respond(auth.response)
            return
        username = auth.username or ""
        problem = self._check(request)
        if isinstance(problem, Response):
            self.refused += 1
            tx.respond(problem)
            return
        text, recipient = problem
        submission = Submission("account", username, username, recipient, text,
                                source=tx.address[0])
        d = defer.maybeDeferred(self.core.submit, submission)  # NoRoute becomes a failure
        d.addCallbacks(self._accepted, self._failed, callbackArgs=(request, tx, username),
                       errbackArgs=(request, tx, username, recipient))

    def _check(self, request: Request) -> Response | tuple[str, str]:
        kind, params = parse_content_type(request.headers.get("content-type"))
        if kind != "text/plain":
            response = make_response(request, 415)
            response.headers.add("Accept", "text/plain")
            return response
        if len(request.body) > self.section.max_message_bytes:
            return make_response(request, 413)
        if not request.body:
            return _with_warning(make_response(request, 400), "empty message")
        charset = params.get("charset", "utf-8") or "utf-8"
        try:
            codecs.lookup(charset)
        except LookupError:
            response = make_response(request, 415)
            response.headers.add("Accept", "text/plain;charset=UTF-8")
            return response
        try:
            text = request.body.decode(charset)
        except (UnicodeDecodeError, ValueError):
            return _with_warning(make_response(request, 400), f"body is not {charset}")
        recipient = _recipient(request, self.plan())
        if recipient is None:
            return make_response(request, 484)
        return text, recipient

    def _accepted(self, message_id: int, request: Request, tx: Any, username: str) -> None:
        self.received += 1
        tx.respond(make_response(request, 202, to_tag=_tag()))

    def _failed(self, failure: Any, request: Request, tx: Any, username: str,
                recipient: str) -> None:
        self.refused += 1
        if failure.check(NoRoute):
            self.log.info("MESSAGE from {username} to {recipient}: no route ({reason})",
                          username=username, recipient=recipient, reason=str(failure.value))
            tx.respond(make_response(request, 404, to_tag=_tag()))
        elif failure.check(Refused):
            # Seed 001: the reason goes where the user's app shows it.
            reason = _phrase(str(failure.value)) or "Payment Required"
            self.log.info("MESSAGE from {username} to {recipient} refused: "
                          "{reason}", username=username, recipient=recipient,
                          reason=reason)
            tx.respond(_with_warning(make_response(request, 402, reason,
                                                   to_tag=_tag()), reason))
        elif failure.check(ModelError):
            tx.respond(_with_warning(make_response(request, 488, to_tag=_tag()),
                                     str(failure.value)))
        else:
            self.log.failure("MESSAGE from {username} not stored", failure, username=username)
            tx.respond(make_response(request, 500, to_tag=_tag()))


def _recipient(request: Request, plan: Plan = DEFAULT_PLAN) -> str | None:
    """
    The destination: the Request-URI user, else the To user; E.164 digits
    when it is a number (read by C{plan}), else the user as written (an
    account username).
    """
    user = request.uri.user
    if not user:
        # The To header is parsed only when the Request-URI names nobody.
        try:
            user = request.to_address().uri.user
        except ValueError:
            return None
        if not user:
            return None
    try:
        return str(normalize(user, TON_UNKNOWN, NPI_ISDN, plan))
    except ModelError:
        return user


def _with_warning(response: Response, text: str) -> Response:
    clean = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text)[:100]
    response.headers.add("Warning", f'399 appliance "{clean}"')
    return response


def _phrase(text: str) -> str:
    """A reason phrase from text: printable, one line, at most 100."""
    return "".join(c if c.isprintable() else " " for c in text)[:100].strip()


def _tag() -> str:
    return token_hex(6)
