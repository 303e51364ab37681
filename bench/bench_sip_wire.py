"""
The SIP wire path in one process, without sockets (issue 16 item 3):
microseconds per parse, per response built and written, and per REGISTER
with digest and per MESSAGE through the whole SIP service (transaction
layer, registrar or intake, batched commit on an in-memory database),
driven as the unit tests drive it (memory reactor, fake UDP transport).

Prints figures; with C{--profile} also the top functions of a cProfile
run of the service loop.  Not a test.

    .venv/bin/python bench/bench_sip_wire.py [N] [--profile]
"""
from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.sip.message import make_response, parse  # noqa: E402
from tests.sip.sipbench import DOMAIN, Bench, digest_response  # noqa: E402

REGISTER = (
    "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1234-1-2\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:100000001@127.0.0.1>;tag=4321R1\r\n"
    "To: <sip:100000001@127.0.0.1>\r\n"
    "Call-ID: 1-4321@127.0.0.1\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:100000001@127.0.0.1:5070;transport=udp>\r\n"
    'Authorization: Digest username="100000001",realm="127.0.0.1",'
    'uri="sip:127.0.0.1",nonce="a1b2c3d4e5f6",response='
    '"0123456789abcdef0123456789abcdef",algorithm=MD5,qop=auth,'
    'cnonce="6b8b4567",nc=00000001\r\n'
    "Expires: 3600\r\n"
    "User-Agent: sipp-bench\r\n"
    "Content-Length: 0\r\n\r\n").encode()

BODY = "hello from the bench".encode()
MESSAGE = (
    "MESSAGE sip:999000000@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-99-1-4\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:100000001@127.0.0.1>;tag=99M1\r\n"
    "To: <sip:999000000@127.0.0.1>\r\n"
    "Call-ID: 1-99@127.0.0.1\r\n"
    "CSeq: 2 MESSAGE\r\n"
    'Proxy-Authorization: Digest username="100000001",realm="127.0.0.1",'
    'uri="sip:999000000@127.0.0.1",nonce="a1b2c3d4e5f6",response='
    '"0123456789abcdef0123456789abcdef",algorithm=MD5,qop=auth,'
    'cnonce="6b8b4567",nc=00000001\r\n'
    "Content-Type: text/plain\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY


def per_call(fn, n: int) -> float:
    """Microseconds per call of C{fn} (best of three runs of C{n})."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def service_loop(bench: Bench, n: int) -> tuple[float, float]:
    """REGISTER with digest then MESSAGE n times; return µs per each."""
    t_reg = t_msg = 0.0
    for i in range(n):
        start = time.perf_counter()
        ok = bench.register(call_id=f"reg-{i}")
        t_reg += time.perf_counter() - start
        assert ok.status == 200, ok.status
        start = time.perf_counter()
        uri = f"sip:2222@{DOMAIN}"
        body = b"hi"
        first = bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain"],
                                        body, call_id=f"m-{i}"))[-1]
        auth = digest_response(first.headers.get("proxy-authenticate"), "MESSAGE",
                               uri, "1111", "secret")
        bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain",
                                                 f"Proxy-Authorization: {auth}"],
                                body, call_id=f"m-{i}"), settle=False)
        for _, d in bench.core.submitted:
            if not d.called:
                d.callback(i)
        bench.core.submitted.clear()
        t_msg += time.perf_counter() - start
        if i % 10 == 9:
            bench.reactor.advance(40)        # let timers J/K expire
    return t_reg / n * 1e6, t_msg / n * 1e6


def main(n: int = 2000, profile: bool = False) -> None:
    """Print the figures."""
    reg, msg = parse(REGISTER), parse(MESSAGE)
    print(f"parse REGISTER: {per_call(lambda: parse(REGISTER), n * 5):.1f} µs")
    print(f"parse MESSAGE: {per_call(lambda: parse(MESSAGE), n * 5):.1f} µs")
    print(f"parse + top Via + CSeq + From/To tags: "
          f"{per_call(lambda: _touch(parse(REGISTER)), n * 5):.1f} µs")
    print(f"401 built and written: "
          f"{per_call(lambda: make_response(reg, 401, to_tag='abc').to_bytes(), n * 5):.1f} µs")
    print(f"202 built and written: "
          f"{per_call(lambda: make_response(msg, 202, to_tag='abc').to_bytes(), n * 5):.1f} µs")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        service_loop(bench, 50)              # warm up
        if profile:
            prof = cProfile.Profile()
            prof.enable()
        t_reg, t_msg = service_loop(bench, n)
        if profile:
            prof.disable()
        print(f"REGISTER with digest through the service (2 transactions): {t_reg:.0f} µs")
        print(f"MESSAGE with digest through the service (2 transactions): {t_msg:.0f} µs")
        bench.service.stopService()
    if profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)


def _touch(m) -> None:
    m.top_via().branch
    m.cseq()
    m.from_address().tag
    m.to_address().tag


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(*(int(a) for a in args[:1]), profile="--profile" in sys.argv)
