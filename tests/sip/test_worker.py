"""
Tests for L{appliance.sip.worker} (C{[sip] workers}): which datagrams a
worker answers itself and that its challenge is the node's, the frames
between it and the node, and the node's side (L{SIPService}) that hands
forwarded datagrams to its transaction layer.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport

from appliance.sip.digest import parse_authorization
from appliance.sip.message import parse
from appliance.sip.worker import Challenger, WorkerLink, WorkerUDP, to_tag
from appliance.workers import FrameBuffer, frame

try:
    from tests.sip.sipbench import APP, DOMAIN, REALM, Bench, digest_response
except ImportError:  # rootdir-relative import mode
    from sipbench import APP, DOMAIN, REALM, Bench, digest_response  # type: ignore[no-redef]

SECRET = b"k" * 32          # the Bench's nonce secret


def challenger(bench: Bench, **kw) -> Challenger:
    """A worker's challenger as the node sets it up (its hosts, its secret)."""
    return Challenger(REALM, bench.section.digest_algorithms, bench.section.nonce_lifetime,
                      kw.pop("secret", SECRET), bench.service.domains.hosts(),
                      clock=kw.pop("clock", bench.reactor), **kw)


def register(bench: Bench, extra: list[str] | None = None, uri: str = f"sip:{DOMAIN}",
             branch: str | None = None, method: str = "REGISTER", cseq: int = 1) -> bytes:
    via = None if branch is None else f"SIP/2.0/UDP {APP[0]}:{APP[1]};branch={branch};rport"
    return bench.request(method, uri, [f"Contact: <sip:1111@{APP[0]}:{APP[1]}>"]
                         + (extra or []), to=f"<sip:1111@{DOMAIN}>",
                         from_=f"<sip:1111@{DOMAIN}>;tag=r", call_id="reg-w", via=via,
                         cseq=cseq)


def test_worker_challenge_is_the_nodes_and_its_nonce_verifies_in_the_node(bench):
    """A REGISTER without credentials: the worker's 401 has the node's
    headers (its To tag aside) and challenges, and credentials computed
    on its nonce register with the node."""
    request = register(bench, branch="z9hG4bKw1")
    answer = challenger(bench).answer(request, APP)
    assert answer is not None
    data, destination = answer
    assert destination == APP
    ours = parse(data)
    node = bench.udp(request)[-1]
    assert (ours.status, ours.reason) == (node.status, node.reason) == (401, "Unauthorized")

    def without_tag_and_nonce(response):
        rows = []
        for name, value in response.headers:
            if name.lower() == "to":
                value = value.split(";tag=")[0]
            elif name.lower() == "www-authenticate":
                value = {k: v for k, v in parse_authorization(value).items() if k != "nonce"}
            rows.append((name.lower(), value))
        return rows
    assert without_tag_and_nonce(ours) == without_tag_and_nonce(node)
    assert ours.to_address().tag and ours.to_address().tag != node.to_address().tag
    auth = digest_response(ours.headers.get("www-authenticate"), "REGISTER", f"sip:{DOMAIN}",
                           "1111", "secret")
    final = bench.udp(register(bench, [f"Authorization: {auth}"], branch="z9hG4bKw2"))[-1]
    assert final.status == 200, final.to_bytes()


def test_a_retransmission_gets_the_same_to_tag():
    """RFC 3261 8.2.7: a stateless UAS answers copies of a request alike;
    another request (branch) gets another tag; the tag needs the secret."""
    bench = Bench(Path("/nonexistent-unused"), fill=False)
    try:
        c = challenger(bench)
        first = parse(c.answer(register(bench, branch="z9hG4bKa"), APP)[0])
        again = parse(c.answer(register(bench, branch="z9hG4bKa"), APP)[0])
        other = parse(c.answer(register(bench, branch="z9hG4bKb"), APP)[0])
        tag = first.to_address().tag
        assert tag == again.to_address().tag != other.to_address().tag
        assert len(tag) == 12
        request = parse(register(bench, branch="z9hG4bKa"))
        assert to_tag(b"x" * 32, request) != to_tag(SECRET, request) == tag
    finally:
        bench.stop()


def test_message_without_proxy_authorization_gets_407(bench):
    request = bench.request("MESSAGE", f"sip:2222@{DOMAIN}", ["Content-Type: text/plain"],
                            body=b"hi")
    response = parse(challenger(bench).answer(request, APP)[0])
    assert response.status == 407
    values = response.headers.get_all("proxy-authenticate")
    assert [parse_authorization(v)["algorithm"] for v in values] == \
        list(bench.section.digest_algorithms)


@pytest.mark.parametrize("name, build", [
    ("credentials", lambda b: register(b, ['Authorization: Digest username="1111"'])),
    ("credentials for a MESSAGE", lambda b: b.request(
        "MESSAGE", f"sip:2222@{DOMAIN}", ['Proxy-Authorization: Digest username="1"'])),
    ("another method", lambda b: b.request("OPTIONS", f"sip:{DOMAIN}")),
    ("an INVITE", lambda b: b.request("INVITE", f"sip:2222@{DOMAIN}")),
    ("a foreign domain", lambda b: register(b, uri="sip:elsewhere.example.org")),
    ("a response", lambda b: b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx"
                             b"\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"),
    ("no Via", lambda b: b"REGISTER sip:" + DOMAIN.encode() + b" SIP/2.0\r\nCSeq: 1 REGISTER"
                         b"\r\nContent-Length: 0\r\n\r\n"),
    ("garbage after the method", lambda b: b"REGISTER \x00\xff\r\n\r\n"),
    ("a method name that only starts the same", lambda b: b.request("MESSAGES", "sip:x")),
])
def test_everything_else_goes_to_the_node(bench, name, build):
    assert challenger(bench).answer(build(bench), APP) is None, name


def test_a_blocked_source_goes_to_the_node_until_its_block_ends(bench):
    c = challenger(bench)
    now = bench.reactor.seconds()
    c.block(APP[0], now + 30)
    c.block(APP[0], now + 10)            # a shorter block never shortens it
    assert c.answer(register(bench), APP) is None
    assert c.answer(register(bench), ("203.0.113.9", 5060)) is not None
    bench.reactor.advance(31)
    assert c.answer(register(bench), APP) is not None
    assert c.blocked == {}
    assert c.counts == {"REGISTER": 2, "MESSAGE": 0}


def test_the_link_takes_the_nodes_frames_and_reports_deltas():
    """Domains and blocks may come before the secret; the challenger is
    made with the secret; counts go up as deltas; a bad frame closes the
    link (the worker exits)."""
    link = WorkerLink({"realm": REALM, "algorithms": ["MD5"], "nonce_lifetime": 300})
    transport = StringTransport()
    link.makeConnection(transport)
    link.dataReceived(frame(("domains", [DOMAIN])) + frame(("block", "192.0.2.66", 1e12)))
    assert link.challenger is None
    link.report()
    assert transport.value() == b""
    link.dataReceived(frame(("secret", SECRET)))
    c = link.challenger
    assert DOMAIN in c.domains and c.blocked == {"192.0.2.66": 1e12}
    link.dataReceived(frame(("domains", [DOMAIN, "node.example.net"])))
    assert "node.example.net" in c.domains
    c.counts["REGISTER"] += 3
    link.report()
    link.report()                        # nothing new: nothing sent
    c.counts["REGISTER"] += 1
    c.counts["MESSAGE"] += 2
    link.report()
    assert list(FrameBuffer().feed(transport.value())) == [
        ("counts", {"REGISTER": 3, "MESSAGE": 0}), ("counts", {"REGISTER": 1, "MESSAGE": 2})]
    link.forward(1, b"OPTIONS", ("192.0.2.1", 5060), 12.5)
    assert list(FrameBuffer().feed(transport.value()))[-1] == \
        ("dgram", 1, b"OPTIONS", "192.0.2.1", 5060, 12.5)
    link.dataReceived(b"\x00\x00\x00\x02\xff\xff")
    assert transport.disconnecting


class _Port:
    def __init__(self):
        self.written = []

    def write(self, data, addr):
        self.written.append((data, addr))


def test_worker_udp_answers_forwards_and_drops_keep_alives(bench):
    link = WorkerLink({})
    link.makeConnection(StringTransport())
    udp = WorkerUDP(2, link)
    udp.transport = _Port()
    udp.datagramReceived(register(bench), APP)      # no secret yet: to the node
    link.challenger = challenger(bench)
    udp.datagramReceived(register(bench), APP)      # answered here
    udp.datagramReceived(b"\r\n\r\n", APP)          # keep-alive: dropped
    udp.arrived = 7.25
    udp.datagramReceived(b"OPTIONS sip:x SIP/2.0\r\n\r\n", APP)

    def boom(data, source):
        raise RuntimeError("bug")
    link.challenger.answer = boom                   # a bug: the node answers
    udp.datagramReceived(register(bench), APP)
    assert [parse(d).status for d, _ in udp.transport.written] == [401]
    forwarded = list(FrameBuffer().feed(link.transport.value()))
    assert [(f[0], f[1], f[3], f[4], f[5]) for f in forwarded] == [
        ("dgram", 2, APP[0], APP[1], None), ("dgram", 2, APP[0], APP[1], 7.25),
        ("dgram", 2, APP[0], APP[1], 7.25)]


class _FakeWorker:
    def __init__(self, number=1):
        self.number = number
        self.sent = []

    def send(self, value):
        self.sent.append(value)


class _FakeSet:
    def __init__(self, workers):
        self.workers = {w.number: w for w in workers}
        self.restarts = 0

    def running(self):
        return len(self.workers)

    def send_all(self, value):
        for worker in self.workers.values():
            worker.send(value)


def test_the_node_handles_forwarded_datagrams_as_its_own(bench):
    """What a worker forwards is answered by the node on the socket it
    came on; counts add up; a worker is greeted with the secret, our
    hosts and the blocked sources; a new block goes to every worker."""
    service = bench.service
    one, two = _FakeWorker(1), _FakeWorker(2)
    service.workers = _FakeSet([one, two])
    service._worker_protocols = [bench.udp_protocol]
    service.gate.limiter.on_block = service._blocked
    before = len(bench.udp_transport.written)
    service._from_worker(one, ("dgram", 0, bench.request("OPTIONS", f"sip:{DOMAIN}"),
                               APP[0], APP[1], None))
    bench.settle()
    sent = bench.udp_transport.written[before:]
    assert [(parse(d).status, a) for d, a in sent] == [(200, APP)]
    service._from_worker(one, ("dgram", 5, b"x", APP[0], APP[1], None))   # logged, dropped
    service._from_worker(one, ("counts", {"REGISTER": 3, "MESSAGE": 1}))
    service._from_worker(two, ("counts", {"REGISTER": 2, "MESSAGE": 0}))
    stats = service.statistics()
    assert (stats["worker_challenges_register"], stats["worker_challenges_message"]) == (5, 1)
    assert stats["workers"] == 2
    for _ in range(4):                  # auth_failures = 3: the fourth blocks
        service.gate.limiter.fail("192.0.2.99")
    assert [v[:2] for v in one.sent] == [("block", "192.0.2.99")] and one.sent == two.sent
    assert one.sent[0][2] == pytest.approx(bench.reactor.seconds() + 60)
    fresh = _FakeWorker(3)
    service._greet(fresh)
    assert fresh.sent[0] == ("secret", SECRET)
    assert fresh.sent[1] == ("domains", service.domains.hosts())
    assert fresh.sent[2:] == one.sent
    service.workers = None


def test_failure_limiter_tells_of_blocks_and_lists_them():
    clock = task.Clock()
    from appliance.sip.auth import FailureLimiter
    limiter = FailureLimiter(clock, limit=2, window=60)
    told = []
    limiter.on_block = lambda source, until: told.append((source, until))
    limiter.fail("a")
    clock.advance(5)
    limiter.fail("a")
    assert told == [] and limiter.blocks() == []
    clock.advance(5)
    limiter.fail("a")                   # the third in the window: blocked until 0 + 60
    limiter.fail("b")
    assert told == [("a", 60.0)] and limiter.blocks() == [("a", 60.0)]
    clock.advance(1)
    limiter.fail("a")                   # still blocked, now until 5 + 60
    assert told[-1] == ("a", 65.0)
    clock.advance(54)                   # t = 65: the failure at 5 left the window
    assert limiter.blocked("a") is False and limiter.blocks() == []


def test_exclusive_wakeup_keeps_the_socket_readable():
    """The worker's socket is re-registered with EPOLLEXCLUSIVE: still
    reported readable when a datagram comes; no epoll: nothing done."""
    import select
    import socket

    from appliance.sip.worker import exclusive
    if not hasattr(select, "EPOLLEXCLUSIVE"):
        pytest.skip("no EPOLLEXCLUSIVE")

    class Reactor:
        _poller = select.epoll()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        Reactor._poller.register(sock.fileno(), select.EPOLLIN)
        assert exclusive(Reactor, sock.fileno()) is True
        assert Reactor._poller.poll(0) == []
        sender.sendto(b"x", sock.getsockname())
        assert Reactor._poller.poll(1) == [(sock.fileno(), select.EPOLLIN)]
        assert exclusive(object(), sock.fileno()) is False
    finally:
        Reactor._poller.close()
        sock.close()
        sender.close()


# -- credentials verified in the worker ---------------------------------------

def _credentials(bench, c, password="secret", nc=1, user="1111", challenge=None):
    """A REGISTER of C{user} with credentials on a worker's challenge."""
    if challenge is None:
        challenge = parse(c.answer(register(bench, branch="z9hG4bKc0"), APP)[0]) \
            .headers.get("www-authenticate")
    auth = digest_response(challenge, "REGISTER", f"sip:{DOMAIN}", user, password, nc=nc)
    return register(bench, [f"Authorization: {auth}"], branch=f"z9hG4bKc{nc}",
                    cseq=nc + 1), challenge


def _teach(bench, c, user="1111"):
    account = bench.service.accounts.get(user)
    c.learn(user, account.ha1_md5, account.ha1_sha256)


def test_a_worker_vouches_only_for_a_right_response_of_an_account_it_was_taught(
        bench, monkeypatch):
    c = challenger(bench)
    right, challenge = _credentials(bench, c)
    assert c.vouch(right, APP) is None                  # knows no account yet
    _teach(bench, c)
    username, algorithm, ha1, nonce, nc, call_id, method = c.vouch(right, APP)
    assert (username, algorithm, nc, call_id, method) == \
        ("1111", "MD5", 1, "reg-w", "REGISTER")
    assert ha1 == bench.service.accounts.get("1111").ha1_md5
    assert nonce == parse_authorization(challenge)["nonce"]
    wrong, _ = _credentials(bench, c, password="guess", challenge=challenge)
    assert c.vouch(wrong, APP) is None
    other, _ = _credentials(bench, c, user="2222", challenge=challenge)
    with monkeypatch.context() as m:                    # 2222 not taught: not even parsed
        m.setattr("appliance.sip.worker.parse", lambda data: pytest.fail("parsed"))
        assert c.vouch(other, APP) is None
    c.block(APP[0], bench.reactor.seconds() + 30)
    assert c.vouch(right, APP) is None                  # blocked: the node decides
    c.blocked.clear()
    foreign = right.replace(f"REGISTER sip:{DOMAIN} ".encode(),
                            b"REGISTER sip:elsewhere.example.org ", 1)
    assert c.vouch(foreign, APP) is None
    no_nc = right.replace(b", nc=00000001", b"")
    assert c.vouch(no_nc, APP) is None
    bench.reactor.advance(bench.section.nonce_lifetime + 1)
    assert c.vouch(right, APP) is None                  # stale: the node says so
    assert c.vouched == 1
    c.forget()
    assert c.ha1s == {}


def test_a_worker_keeps_a_bounded_number_of_accounts(bench, monkeypatch):
    c = challenger(bench)
    monkeypatch.setattr(Challenger, "MAX_ACCOUNTS", 8)
    for n in range(8):
        c.learn(str(n), "a", "b")
    c.learn("0", "a2", "b2")                            # again: now the newest
    c.learn("new", "a", "b")                            # full: the oldest quarter goes
    assert list(c.ha1s) == ["3", "4", "5", "6", "7", "0", "new"]
    assert c.ha1s["0"] == ("a2", "b2")


def _node_with_workers(bench):
    service = bench.service
    one, two = _FakeWorker(1), _FakeWorker(2)
    service.workers = _FakeSet([one, two])
    service._worker_protocols = [bench.udp_protocol]
    service.accounts.on_stale = service._forget
    return service, one, two


def _from(service, bench, value):
    before = len(bench.udp_transport.written)
    service._from_worker(service.workers.workers[1], value)
    bench.settle()
    return [parse(d) for d, _ in bench.udp_transport.written[before:]]


def test_the_node_teaches_workers_what_it_verified_and_trusts_what_they_verified(bench):
    """A worker's plain datagram verified in the node sends the account's
    HA1s to every worker; a vouched one skips the response check but not
    the nonce-count (a replay through any worker is refused) nor the
    HA1's being still the account's; a configuration commit makes every
    worker forget."""
    service, one, two = _node_with_workers(bench)
    try:
        c = challenger(bench)
        right, challenge = _credentials(bench, c)
        assert [r.status for r in _from(service, bench, ("dgram", 0, right, *APP, None))] == [200]
        account = service.accounts.get("1111")
        assert one.sent == two.sent == [("ha1", "1111", account.ha1_md5, account.ha1_sha256)]
        c.learn(*one.sent[0][1:])
        second, _ = _credentials(bench, c, nc=2, challenge=challenge)
        vouched = c.vouch(second, APP)
        reads = service.accounts.reads
        frame_ = ("vouched", 0, second, *APP, None, vouched)
        assert [r.status for r in _from(service, bench, frame_)] == [200]
        assert service.statistics()["worker_verified"] == 1
        assert one.sent == two.sent and len(one.sent) == 1  # nothing taught again
        # The same nc again (a replay through the other worker): challenged.
        replay = second.replace(b"branch=z9hG4bKc2", b"branch=z9hG4bKc9").replace(
            b"CSeq: 3 ", b"CSeq: 9 ")
        replayed = _from(service, bench, ("vouched", 0, replay, *APP, None,
                                          c.vouch(replay, APP)))
        assert [r.status for r in replayed] == [401]
        assert service.statistics()["worker_verified"] == 1
        assert service.accounts.reads == reads
        # A vouch naming another call than the request's: verified here.
        third, _ = _credentials(bench, c, password="guess", nc=3, challenge=challenge)
        elsewhere = vouched[:5] + ("another-call",) + vouched[6:]
        assert [r.status for r in _from(service, bench, ("vouched", 0, third, *APP, None,
                                                         elsewhere))] == [403]
        # The password changes: every worker forgets; an HA1 on its way is not trusted.
        fourth, _ = _credentials(bench, c, nc=4, challenge=challenge)
        old = c.vouch(fourth, APP)
        with bench.storage.transaction(user="test") as root:
            root.accounts["1111"].set_password("changed", REALM)
        assert one.sent[-1] == two.sent[-1] == ("forget",)
        assert [r.status for r in _from(service, bench, ("vouched", 0, fourth, *APP, None,
                                                         old))] == [403]
        assert service.statistics()["worker_verified"] == 1
    finally:
        service.workers = None
        service.accounts.on_stale = None


def test_the_link_learns_and_forgets_ha1s():
    link = WorkerLink({"realm": REALM, "algorithms": ["MD5"], "nonce_lifetime": 300})
    link.makeConnection(StringTransport())
    link.dataReceived(frame(("ha1", "1111", "m", "s")))         # no secret yet: dropped
    link.dataReceived(frame(("secret", SECRET)) + frame(("ha1", "1111", "m", "s"))
                      + frame(("ha1", "2222", "m2", None)))
    assert link.challenger.ha1s == {"1111": ("m", "s"), "2222": ("m2", None)}
    link.dataReceived(frame(("forget",)))
    assert link.challenger.ha1s == {}
    link.forward_vouched(0, b"REGISTER", ("192.0.2.1", 5060), None, ("1111", "MD5"))
    assert list(FrameBuffer().feed(link.transport.value()))[-1] == \
        ("vouched", 0, b"REGISTER", "192.0.2.1", 5060, None, ("1111", "MD5"))


def test_worker_udp_forwards_what_it_verified_as_vouched(bench):
    link = WorkerLink({})
    link.makeConnection(StringTransport())
    udp = WorkerUDP(0, link)
    udp.transport = _Port()
    link.challenger = c = challenger(bench)
    right, _ = _credentials(bench, c)
    udp.datagramReceived(right, APP)                    # not taught: plain
    _teach(bench, c)
    udp.datagramReceived(right, APP)
    kinds = [f[0] for f in FrameBuffer().feed(link.transport.value())]
    assert kinds == ["dgram", "vouched"]
