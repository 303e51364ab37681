"""
Tests for streamed command output (L{appliance.shell.output}) and its
flow control on a Conch session channel (L{appliance.shell.ssh.stream_to}),
through exec, scripts on standard input and the interactive shell.
"""
from __future__ import annotations

from types import SimpleNamespace

from twisted.conch.insults import insults
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject
from twisted.internet.interfaces import IPushProducer

from appliance.shell.output import Stream, StreamWriter
from appliance.shell.script import open_session
from appliance.shell.ssh import (
    OperatorAvatar, OperatorIdentity, ShellChannel, ShellContext, ShellSession, stream_to)
from appliance.shell.terminal import CLITerminal, ScriptReader

CHUNK = "x" * 399 + "\n"


def turn(clock: Clock) -> None:
    """One reactor turn: run the calls due now, not those they schedule."""
    for call in [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]:
        clock.calls.remove(call)
        call.called = 1
        call.func(*call.args, **call.kw)


def chunks(n: int, produced: list[int], closed: list[bool]):
    """n chunks of 400 bytes, counting how many were produced."""
    try:
        for i in range(n):
            produced.append(i)
            yield CHUNK
    finally:
        closed.append(True)


class FakeTCP:
    """A TCP transport that takes one streaming producer."""

    def __init__(self) -> None:
        self.producer = None
        self.streaming = None

    def registerProducer(self, producer, streaming) -> None:
        assert self.producer is None
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        self.producer = None


class FakeConnection:
    """Stands for SSHConnection: records the data packets of a channel."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.transport = SimpleNamespace(transport=FakeTCP())

    def sendData(self, channel, data: bytes) -> None:
        self.sent.append(data)


def channel(window: int = 1000) -> ShellChannel:
    """A session channel whose client granted C{window} bytes."""
    return ShellChannel(remoteWindow=window, remoteMaxPacket=32768, conn=FakeConnection())


def test_writer_is_a_push_producer() -> None:
    """The writer provides IPushProducer."""
    verifyObject(IPushProducer, StreamWriter(Stream([]), lambda b: None, lambda s: None))


def test_output_waits_for_the_client_window() -> None:
    """
    With a 1000-byte window, the writer stops producing once the window
    is spent (the channel buffers less than one chunk), and goes on when
    the client adds window: 100 chunks arrive whole, in order, and the
    producer was read only as far as the window allowed.
    """
    clock, produced, closed, done = Clock(), [], [], []
    ch = channel(1000)
    proto = SimpleNamespace(session=ch, write=ch.write)
    writer = stream_to(proto, Stream(chunks(100, produced, closed)), done.append, clock)
    assert ch.conn.transport.transport.producer is writer
    for _ in range(5):
        clock.advance(0)
    assert writer.paused == {"window"}
    assert len(produced) == 3 and len(ch.buf) < len(CHUNK)
    while not done:
        ch.addWindowBytes(1000)
        clock.advance(0)
        assert len(ch.buf) <= len(CHUNK)
        assert len(produced) * len(CHUNK) <= sum(map(len, ch.conn.sent)) + len(ch.buf) + len(CHUNK)
    assert done == ["ok"] and closed == [True]
    assert b"".join(ch.conn.sent) == CHUNK.encode() * 100
    assert ch.producer is None and ch.conn.transport.transport.producer is None


def test_output_waits_for_the_tcp_buffer() -> None:
    """
    The TCP transport pausing the writer (its buffer is full) stops the
    output until it resumes it.
    """
    clock, produced, closed, done = Clock(), [], [], []
    ch = channel(10 ** 9)
    proto = SimpleNamespace(session=ch, write=ch.write)
    writer = stream_to(proto, Stream(chunks(100, produced, closed)), done.append, clock)
    writer.per_turn = 4000
    turn(clock)
    writer.pauseProducing()
    before = len(produced)
    for _ in range(10):
        turn(clock)
    assert len(produced) == before < 100
    writer.resumeProducing()
    while not done:
        turn(clock)
    assert done == ["ok"] and len(produced) == 100


def test_each_turn_is_bounded() -> None:
    """A fast client does not starve the reactor: one turn writes about per_turn bytes."""
    clock, produced = Clock(), []
    writer = StreamWriter(Stream(chunks(1000, produced, [])), lambda b: None,
                          lambda s: None, clock, per_turn=4000)
    writer.start()
    turn(clock)
    assert len(produced) == 10


def test_stop_closes_the_producer() -> None:
    """
    stopProducing (the channel went, or Ctrl-C) ends the output with
    C{stopped} and runs the producer's clean-up (closing its snapshot).
    """
    clock, produced, closed, done = Clock(), [], [], []
    writer = StreamWriter(Stream(chunks(100, produced, closed)), lambda b: None,
                          done.append, clock, per_turn=400)
    writer.start()
    turn(clock)
    writer.stopProducing()
    turn(clock)
    assert done == ["stopped"] and closed == [True] and len(produced) == 1


def test_failure_midway_is_reported() -> None:
    """
    A producer that raises midway ends the output with a C{% internal
    error} line and status C{failed}; the failure is logged.
    """
    def broken():
        yield "a\n"
        raise RuntimeError("disk")
    out, done = [], []
    with capturedLogs() as events:
        StreamWriter(Stream(broken()), out.append, done.append).start()
    assert out == [b"a\n", b"% internal error: RuntimeError\n"]
    assert done == ["failed"]
    assert any("log_failure" in e for e in events)


class Proto:
    """Stands for Conch's SSHSessionProcessProtocol on a real channel."""

    def __init__(self, ch: ShellChannel) -> None:
        self.session = ch
        self.ended = None
        self.transport = None

    def write(self, data: bytes) -> None:
        self.session.write(data)

    def processEnded(self, reason) -> None:
        self.ended = reason


def billing_storage(storage):
    """A carrier with billing terms (no records yet)."""
    from tests.shell_helpers import run
    run(open_session(storage, "admin", "admin"), "configure terminal", "carrier TATA", "end")
    return storage


def test_exec_streams_export_then_exit_status(storage) -> None:
    """
    C{ssh node 'billing export ... csv'}: the CSV is streamed to the
    channel, then exit status 0; a refused export exits 1 at once.
    """
    billing_storage(storage)
    clock = Clock()
    ch = channel(10 ** 6)
    proto = Proto(ch)
    avatar = OperatorAvatar(OperatorIdentity("admin", "admin"),
                            ShellContext(storage, clock=clock))
    ShellSession(avatar).execCommand(
        proto, b"billing export carrier TATA from 2026-11-01 to 2026-12-01 csv")
    assert proto.ended is None
    clock.advance(0)
    assert proto.ended.check(ProcessDone)
    assert b"".join(ch.conn.sent).startswith(b"id,time,")
    proto = Proto(channel())
    ShellSession(avatar).execCommand(
        proto, b"billing export carrier NOPE from 2026-11-01 to 2026-12-01 csv")
    assert proto.ended.check(ProcessTerminated)


def test_script_lines_wait_for_streamed_output(storage) -> None:
    """
    In a script on standard input, the line after a streamed export runs
    only once the export is written; then the script goes on to its end.
    """
    billing_storage(storage)
    clock, ended, written = Clock(), [], []

    def starter(stream, done, encode, write=None):
        return stream_to(SimpleNamespace(write=written.append), stream, done, clock, encode)
    reader = ScriptReader(open_session(storage, "admin", "admin"), ended.append, starter)
    reader.makeConnection(StringTransport())
    reader.dataReceived(b"billing export carrier TATA from 2026-11-01 to 2026-12-01 csv\n"
                        b"show version\n")
    reader.eof()
    assert reader.transport.value() == b"" and ended == []
    clock.advance(0)
    assert written[0].startswith(b"id,time,")
    assert reader.transport.value().startswith(b"appliance ")
    assert ended == [0]


def test_terminal_ctrl_c_stops_a_streamed_output(storage) -> None:
    """
    In the interactive shell, Ctrl-C while an output streams stops it and
    shows the prompt again; keys typed meanwhile are not inserted.
    """
    billing_storage(storage)
    clock = Clock()
    produced, closed = [], []
    session = open_session(storage, "admin", "admin")

    def starter(stream, done, encode, write=None):
        return stream_to(SimpleNamespace(write=write), Stream(chunks(10 ** 6, produced, closed)),
                         done, clock, encode)
    sp = insults.ServerProtocol(CLITerminal, session, None, starter)
    transport = StringTransport()
    sp.makeConnection(transport)
    sp.dataReceived(b"billing export carrier TATA from 2026-11-01 to 2026-12-01 csv\r")
    turn(clock)
    sp.dataReceived(b"abc\x03")
    assert closed == [True] and len(produced) < 10 ** 6
    assert transport.value().endswith(b"^C\r\nappliance# ")
    assert sp.terminalProtocol.lineBuffer == []
