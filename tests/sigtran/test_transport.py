"""
The M3UA transports: TCP framing by the M3UA length, the listener that
accepts only configured peers, and the SCTP seam (a one-to-one socket
with PPID 3 adopted into the reactor), which runs only where the kernel
has SCTP.
"""
import socket
import struct

import pytest
from twisted.internet.testing import StringTransport

from appliance.sigtran import m3ua
from appliance.sigtran.transport import (
    M3UA_PPID, ListenerFactory, M3UAStreamProtocol, default_send_param,
    sctp_available)

SCTP, WHY = sctp_available()


class Recorder:
    def __init__(self):
        self.frames, self.errors, self.up, self.down = [], [], 0, 0

    def connection_made(self, send, close):
        self.up += 1

    def message_received(self, raw):
        self.frames.append(raw)

    def frame_error(self, e):
        self.errors.append(e.code)

    def connection_lost(self):
        self.down += 1


def test_frames_split_and_joined_by_length():
    """Messages split across reads and several in one read come out
    whole and in order."""
    r = Recorder()
    p = M3UAStreamProtocol(r)
    p.makeConnection(StringTransport())
    stream = m3ua.aspsm(m3ua.ASPUP) + m3ua.beat(m3ua.BEAT, b"abcde") * 3
    for i in range(0, len(stream), 5):
        p.dataReceived(stream[i:i + 5])
    assert r.frames == [m3ua.aspsm(m3ua.ASPUP)] + [m3ua.beat(m3ua.BEAT, b"abcde")] * 3


def test_unframeable_stream_is_closed():
    """A header that cannot start a message ends the stream: frame error
    (the association answers ERR), then the connection is closed."""
    r = Recorder()
    p = M3UAStreamProtocol(r)
    t = StringTransport()
    p.makeConnection(t)
    p.dataReceived(b"\x01\x00\x03\x01\x00\x00\x00\x03")
    assert r.errors == [m3ua.E_PROTOCOL_ERROR] and t.disconnecting


def test_listener_refuses_unknown_addresses():
    """The listener builds a protocol only for an address a peer with
    role sg is configured for."""
    class Addr:
        def __init__(self, host):
            self.host = host
    f = ListenerFactory(lambda host: Recorder() if host == "127.0.0.2" else None)
    assert f.buildProtocol(Addr("127.0.0.9")) is None
    assert isinstance(f.buildProtocol(Addr("127.0.0.2")), M3UAStreamProtocol)


def test_default_send_param_carries_ppid_3():
    """The SCTP default send parameters put PPID 3 in network order in a
    32-byte struct sctp_sndrcvinfo."""
    raw = default_send_param()
    assert len(raw) == 32
    assert struct.unpack_from("=I", raw, 8)[0] == socket.htonl(M3UA_PPID)


def test_sctp_reason_names_the_kernel():
    """Where SCTP is missing the reason says so (errno 93 here)."""
    if SCTP:
        assert WHY == ""
    else:
        assert "no SCTP" in WHY
