"""Tests for L{appliance.workers}: frames, and the worker set's start,
restart with backoff and stop, on a fake process reactor and a Clock."""
from __future__ import annotations

import json
import marshal
import signal

import pytest
from twisted.internet import error, task
from twisted.python.failure import Failure

from appliance.workers import FrameBuffer, FrameError, WorkerSet, frame


def test_frames_split_and_joined_anyhow():
    """Frames cut at any byte, or several in one read, come out whole and
    in order."""
    values = [("req", 1, b"GET", {b"a": [b"1"]}), ("res", 2, 200, [], b"x" * 5000),
              ("hello", 42)]
    data = b"".join(frame(v) for v in values)
    for cut in range(1, len(data), 7):
        buffer = FrameBuffer()
        got = list(buffer.feed(data[:cut])) + list(buffer.feed(data[cut:]))
        assert got == values
    buffer = FrameBuffer()
    assert [v for byte in range(len(data)) for v in buffer.feed(data[byte:byte + 1])] == values


@pytest.mark.parametrize("data", [
    (1 << 30).to_bytes(4, "big") + b"x",                          # too large
    len(marshal.dumps([1])).to_bytes(4, "big") + marshal.dumps([1]),  # not a tuple
    b"\x00\x00\x00\x03\xff\xfe\xfd",                              # not marshal
])
def test_bad_frames_raise(data):
    with pytest.raises(FrameError):
        list(FrameBuffer(max_frame=1 << 20).feed(data))


class FakeTransport:
    def __init__(self, pid):
        self.pid = pid
        self.written = []
        self.signals = []

    def write(self, data):
        self.written.append(data)

    def signalProcess(self, name):
        self.signals.append(name)


class ProcessReactor(task.Clock):
    """A Clock that records spawnProcess and connects a fake transport."""

    def __init__(self):
        super().__init__()
        self.spawned = []
        self.next_pid = 100

    def spawnProcess(self, proto, executable, args, env=None, childFDs=None):
        self.next_pid += 1
        transport = FakeTransport(self.next_pid)
        proto.makeConnection(transport)
        self.spawned.append((proto, args, childFDs, env))
        return transport


def ended(proto, code=1):
    reason = error.ProcessTerminated(exitCode=code)
    proto.processEnded(Failure(reason))


def make_set(reactor, frames, count=2):
    return WorkerSet(reactor, "http", "appliance.http.worker", count,
                     lambda n: {"number": n}, [7, 9],
                     lambda worker, value: frames.append((worker.number, value)), grace=5)


def test_start_hands_sockets_and_waits_for_hello():
    """Each worker gets the listening sockets as fds 3.. (the spec says
    which), pipes for frames and logs, and the start fires once every
    worker said hello."""
    reactor, frames = ProcessReactor(), []
    workers = make_set(reactor, frames)
    d = workers.start()
    assert len(reactor.spawned) == 2
    proto, args, fds, env = reactor.spawned[0]
    assert args[1:3] == ["-m", "appliance.http.worker"]
    assert json.loads(args[3]) == {"number": 1, "fds": [3, 4]}
    assert fds == {0: "w", 1: "r", 2: "r", 3: 7, 4: 9}
    assert "PYTHONPATH" in env
    fired = []
    d.addCallback(fired.append)
    proto.childDataReceived(1, frame(("hello", 101)))
    assert not fired
    reactor.spawned[1][0].childDataReceived(1, frame(("hello", 102))[:3])
    reactor.spawned[1][0].childDataReceived(1, frame(("hello", 102))[3:] + frame(("req", 1)))
    assert fired and frames == [(2, ("req", 1))]
    assert workers.running() == 2 and workers.pids() == [101, 102]


def test_start_fails_when_a_worker_exits_first_or_is_silent():
    reactor, frames = ProcessReactor(), []
    d = make_set(reactor, frames).start()
    failures = []
    d.addErrback(failures.append)
    ended(reactor.spawned[0][0])
    assert failures and "exited before it was ready" in str(failures[0].value)
    reactor2 = ProcessReactor()
    d = make_set(reactor2, []).start(timeout=30)
    failures = []
    d.addErrback(failures.append)
    reactor2.advance(30)
    assert failures


def test_a_dead_worker_is_replaced_with_backoff():
    """A worker that exits is started again after 0.5 s; dying young
    doubles the delay (up to 30 s); one that lived 10 s resets it."""
    reactor, frames = ProcessReactor(), []
    workers = make_set(reactor, frames, count=1)
    workers.start()
    reactor.spawned[0][0].childDataReceived(1, frame(("hello", 1)))
    delays = []
    for _ in range(8):
        proto = reactor.spawned[-1][0]
        ended(proto)
        before = len(reactor.spawned)
        waited = 0.0
        while len(reactor.spawned) == before:
            reactor.advance(0.25)
            waited += 0.25
        delays.append(waited)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert workers.restarts == 8
    reactor.advance(11)                 # the last one lived 11 s
    ended(reactor.spawned[-1][0])
    reactor.advance(0.5)
    assert len(reactor.spawned) == 10


def test_on_hello_comes_before_the_workers_other_frames():
    """The set's on_hello sees each worker (a replaced one too) once its
    hello arrives, before the frames that follow it in the same read."""
    reactor, frames, greeted = ProcessReactor(), [], []
    workers = make_set(reactor, frames, count=1)
    workers.on_hello = lambda worker: greeted.append((worker.number, list(frames)))
    workers.start()
    reactor.spawned[0][0].childDataReceived(1, frame(("hello", 1)) + frame(("req", 1)))
    assert greeted == [(1, [])] and frames == [(1, ("req", 1))]
    ended(reactor.spawned[0][0])
    reactor.advance(0.5)
    reactor.spawned[1][0].childDataReceived(1, frame(("hello", 2)))
    assert greeted[-1][0] == 1 and len(greeted) == 2


def test_bad_frame_kills_the_worker():
    reactor, frames = ProcessReactor(), []
    workers = make_set(reactor, frames, count=1)
    workers.start()
    proto = reactor.spawned[0][0]
    proto.childDataReceived(1, b"\xff\xff\xff\xff")
    assert proto.transport.signals == ["KILL"]


def test_log_lines_keep_their_level():
    """Each line a worker writes on standard error is logged at the level
    it starts with (info if none), with the worker's number."""
    from twisted.logger import Logger, LogLevel
    reactor, seen = ProcessReactor(), []
    workers = make_set(reactor, [], count=1)
    workers.log = Logger(observer=seen.append)
    workers.start()
    proto = reactor.spawned[0][0]
    proto.childDataReceived(2, b"warn something odd\ninfo half")
    proto.childDataReceived(2, b" a line\nnot a level\n")
    levels = [(e["log_level"], e["text"]) for e in seen if "text" in e]
    assert levels == [(LogLevel.warn, "something odd"), (LogLevel.info, "half a line"),
                      (LogLevel.info, "not a level")]
    assert {e["n"] for e in seen if "text" in e} == {1}


def test_stop_terms_then_kills():
    """stop() sends SIGTERM, SIGKILL after the grace, and fires once all
    exited; no worker is started again while stopping."""
    reactor, frames = ProcessReactor(), []
    workers = make_set(reactor, frames)
    workers.start()
    done = []
    workers.stop().addCallback(done.append)
    first, second = reactor.spawned[0][0], reactor.spawned[1][0]
    assert first.transport.signals == ["TERM"] and second.transport.signals == ["TERM"]
    ended(first, 0)
    assert not done
    reactor.advance(5)
    assert second.transport.signals == ["TERM", "KILL"]
    second.processEnded(Failure(error.ProcessTerminated(signal=signal.SIGKILL)))
    assert done and len(reactor.spawned) == 2
    reactor.advance(60)
    assert len(reactor.spawned) == 2


def test_worker_pipes_are_read_whole():
    """A child's frame pipe is read up to PIPE_READ bytes at once (not
    Twisted's 8 KiB: the storage commits once per reactor iteration), and
    its end is told as Twisted's reader tells it."""
    import os

    from twisted.internet.main import CONNECTION_DONE

    from appliance.workers import PIPE_READ, _read_pipe

    class Reader:
        def __init__(self, fd):
            self.fd = fd
            self.got = []

        def dataReceived(self, data):
            self.got.append(data)
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = Reader(r)
    try:
        assert _read_pipe(reader) is None and reader.got == []    # nothing yet: EAGAIN
        os.write(w, b"x" * 60000)
        os.write(w, b"y" * 5000)
        assert _read_pipe(reader) is None
        assert [len(d) for d in reader.got] == [65000] and PIPE_READ >= 65000
        os.close(w)
        w = None
        assert _read_pipe(reader) is CONNECTION_DONE
    finally:
        os.close(r)
        if w is not None:
            os.close(w)


def test_send_all_reaches_every_running_worker():
    reactor, frames = ProcessReactor(), []
    workers = make_set(reactor, frames, count=2)
    workers.start()
    workers.send_all(("block", "192.0.2.9", 60.0))
    for proto, *_ in reactor.spawned:
        assert proto.transport.written == [frame(("block", "192.0.2.9", 60.0))]
    ended(reactor.spawned[0][0])                # exited: dropped for it
    workers.send_all(("x",))
    assert len(reactor.spawned[0][0].transport.written) == 1
    assert len(reactor.spawned[1][0].transport.written) == 2
