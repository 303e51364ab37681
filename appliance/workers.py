# -*- test-case-name: tests.test_workers -*-
"""
Worker processes the node starts itself (issue 16 item 5: both cores).

A service that wants the box's other cores for its protocol work (HTTP
parsing and framing today) binds its listeners in the main process as
always (ports recorded in C{ports.json}, TLS checked at start), stops
accepting on them, and hands the listening sockets to a L{WorkerSet}: N
children of the node, each started with C{python -m MODULE SPEC}, that
adopt the sockets (C{adoptStreamPort}) and talk to the main process over
their standard input and output in L{frames}.  Standard error carries
their log lines (C{LEVEL text}), which the main process logs under its
own namespace with the worker's number.

What the set promises:

 - the listening sockets stay open in the main process, so a worker that
   dies loses only its own connections: the kernel queues new ones until
   another worker accepts them;
 - a worker that exits is logged at error and started again (after 0.5 s,
   doubling up to 30 s while workers die within 10 s of starting);
 - a worker whose node goes away (its standard input closes: a SIGKILL
   of the node included) exits at once, so no orphan keeps a port;
 - C{stop()} sends each worker SIGTERM (it stops accepting and finishes
   what it holds), and SIGKILL to any still running after C{grace}.

Frames are a 4-byte big-endian length and a L{marshal} payload (a tuple
of plain values): marshal is the cheapest codec CPython has for tuples
of bytes, text, numbers and dicts, and both ends run the same Python.
"""
from __future__ import annotations

import errno
import fcntl
import json
import marshal
import os
import struct
import sys
from typing import Any, Callable, Iterator

from twisted.internet import defer, protocol
from twisted.logger import Logger, LogLevel

from appliance.listen import gather

__all__ = ["FrameBuffer", "WorkerSet", "frame", "log_to_stderr", "run_worker", "MAX_FRAME"]

#: The largest frame either end accepts (a request body is limited far
#: below this by C{[http] max_request_bytes}).
MAX_FRAME = 64 << 20

_LENGTH = struct.Struct(">I")

#: Bytes read from a worker's frame pipe at once, and the pipe's size
#: asked for (Linux C{F_SETPIPE_SZ}; capped by /proc/sys/fs/pipe-max-size).
#: Twisted reads a child's pipe 8 KiB at a time: a dozen forwarded SIP
#: datagrams per reactor iteration, and the storage commits once per
#: iteration, so batches shrank and the node spent 30 % more CPU per
#: REGISTER than reading the socket itself (bench/RESULTS.md, 2026-12-03).
PIPE_READ = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

#: Worker log lines: C{LEVEL text}; LEVEL is a twisted.logger level name.
_LEVELS = {level.name: level for level in LogLevel.iterconstants()}


def frame(value: tuple) -> bytes:
    """
    @param value: a tuple of plain values (what L{marshal} writes).
    @return: the frame's bytes.
    """
    payload = marshal.dumps(value)
    return _LENGTH.pack(len(payload)) + payload


class FrameError(ValueError):
    """A frame that cannot be read: its stream is not to be trusted."""


class FrameBuffer:
    """
    Splits a byte stream into frames.

    @ivar max_frame: the largest payload accepted.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._data = b""
        self.max_frame = max_frame

    def feed(self, data: bytes) -> Iterator[tuple]:
        """
        @param data: the bytes just read.
        @return: the frames now complete, decoded, in order.
        @raise FrameError: a length beyond C{max_frame} or a payload that
            is not a marshalled tuple.
        """
        buffer = self._data + data if self._data else data
        at, end = 0, len(buffer)
        try:
            while end - at >= 4:
                (size,) = _LENGTH.unpack_from(buffer, at)
                if size > self.max_frame:
                    raise FrameError(f"frame of {size} bytes")
                if end - at - 4 < size:
                    break
                try:
                    value = marshal.loads(buffer[at + 4:at + 4 + size])
                except (EOFError, ValueError, TypeError) as e:
                    raise FrameError(f"bad frame: {e}") from None
                if not isinstance(value, tuple):
                    raise FrameError("a frame is not a tuple")
                at += 4 + size
                yield value
        finally:
            self._data = buffer[at:]


def log_to_stderr(level_floor: Any) -> None:
    """Log lines as C{LEVEL text} on standard error, which the node reads
    and logs as its own (L{WorkerSet})."""
    from twisted.logger import formatEvent, globalLogBeginner

    def observer(event: dict) -> None:
        level = event.get("log_level")
        if level is None or level < level_floor:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += " " + failure.getTraceback().replace("\n", " | ")
        sys.stderr.write(f"{level.name} {text}\n".replace("\r", " "))
        sys.stderr.flush()
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def run_worker(reactor: Any, link: Any, terminate: Callable[[], None]) -> None:
    """
    The end of a worker's C{main}: SIGTERM calls C{terminate} in the
    reactor's thread; SIGINT is ignored (a Ctrl-C on the node's terminal
    reaches its whole process group, and the node stops its workers
    itself, in order); the collector settled as in the node; C{("hello",
    pid)} sent on C{link}; the reactor run.
    """
    import signal

    from appliance.tap import settle_gc
    signal.signal(signal.SIGTERM, lambda *a: reactor.callFromThread(terminate))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settle_gc()
    link.transport.write(frame(("hello", os.getpid())))
    reactor.run(installSignalHandlers=False)


def _read_pipe(reader: Any) -> Any:
    """What Twisted's C{ProcessReader.doRead} does, reading up to
    L{PIPE_READ} bytes at once instead of 8 KiB."""
    from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
    try:
        data = os.read(reader.fd, PIPE_READ)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EINTR):
            return None
        return CONNECTION_LOST
    if not data:
        return CONNECTION_DONE
    reader.dataReceived(data)
    return None


class _Worker(protocol.ProcessProtocol):
    """One child: its frames go to the set's handler."""

    def __init__(self, owner: WorkerSet, number: int, started: float) -> None:
        self.owner = owner
        self.number = number
        self.started = started
        self.frames = FrameBuffer()
        self.hello: defer.Deferred = defer.Deferred()
        self.alive = True
        self._errors = b""
        self.pid: int | None = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        reader = getattr(self.transport, "pipes", {}).get(1)
        if reader is not None and isinstance(getattr(reader, "fd", None), int):
            try:
                fcntl.fcntl(reader.fd, _F_SETPIPE_SZ, PIPE_READ)
            except OSError:
                pass  # the default 64 KiB pipe: still read whole
            reader.doRead = lambda: _read_pipe(reader)

    def send(self, value: tuple) -> None:
        """Write one frame to the worker (dropped once it has exited)."""
        if self.alive:
            self.transport.write(frame(value))

    def outReceived(self, data: bytes) -> None:
        try:
            for value in self.frames.feed(data):
                if value and value[0] == "hello":
                    if not self.hello.called:
                        if self.owner.on_hello is not None:
                            self.owner.on_hello(self)
                        self.hello.callback(value)
                    continue
                self.owner.handler(self, value)
        except FrameError as e:
            self.owner.log.error("{name} worker {n} sent a bad frame ({e}): "
                                 "stopping it", name=self.owner.name,
                                 n=self.number, e=e)
            self.kill()

    def errReceived(self, data: bytes) -> None:
        lines = (self._errors + data).split(b"\n")
        self._errors = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace")
            name, _, rest = text.partition(" ")
            level = _LEVELS.get(name)
            self.owner.log.emit(level or LogLevel.info, "{name} worker {n}: {text}",
                                name=self.owner.name, n=self.number,
                                text=rest if level else text)

    def kill(self, signal_name: str = "KILL") -> None:
        """Signal the worker (C{"KILL"} or C{"TERM"}; ignored once it has
        exited)."""
        if self.alive and self.pid is not None:
            try:
                self.transport.signalProcess(signal_name)
            except (OSError, protocol.ProcessExitedAlready):
                pass

    def processEnded(self, reason: Any) -> None:
        self.alive = False
        if not self.hello.called:
            self.hello.errback(RuntimeError(
                f"{self.owner.name} worker {self.number} exited before it was ready"
                f" ({reason.value})"))
        self.owner._ended(self, reason)


class WorkerSet:
    """
    N worker processes sharing a service's listening sockets.

    @ivar name: the service's name, in log lines (C{http}).
    @ivar handler: called with C{(worker, frame)} for each frame a worker
        sends (other than its C{("hello", ...)}); it answers with
        C{worker.send(frame)}.
    @ivar restarts: workers started again after one exited.
    @ivar on_hello: called with each worker (the first ones and those
        started again) once it said hello, before any of its other
        frames is handled: where a service sends it what it must know
        and not see on its command line.
    """

    log = Logger()
    first_delay = 0.5
    max_delay = 30.0
    steady = 10.0

    def __init__(self, reactor: Any, name: str, module: str, count: int,
                 spec: Callable[[int], dict], sockets: list[int],
                 handler: Callable[[Any, tuple], None], grace: float = 10.0) -> None:
        """
        @param module: the worker's module (run with C{python -m}).
        @param count: how many workers.
        @param spec: worker number to its JSON-able start specification;
            the listening sockets are fds 3, 4, ... in C{sockets} order
            (the spec's C{fds} says so to the worker).
        @param sockets: the listening sockets' file descriptors.
        @param grace: seconds a stopping worker has before SIGKILL.
        """
        self.reactor = reactor
        self.name, self.module, self.count = name, module, count
        self.spec, self.sockets, self.handler = spec, list(sockets), handler
        self.grace = grace
        self.workers: dict[int, _Worker] = {}
        self.restarts = 0
        self._delay = self.first_delay
        self._stopping = False
        self._pending: dict[int, Any] = {}
        self._ended_waits: list[defer.Deferred] = []
        self.on_hello: Callable[[Any], None] | None = None

    def running(self) -> int:
        """@return: how many workers are running."""
        return sum(1 for w in self.workers.values() if w.alive)

    def pids(self) -> list[int]:
        """@return: the running workers' process ids."""
        return [w.pid for w in self.workers.values() if w.alive and w.pid is not None]

    def start(self, timeout: float = 30.0) -> defer.Deferred:
        """
        Start every worker.

        @return: a Deferred firing once each has said hello (failing if one
            exits first or does not within C{timeout} seconds).
        """
        self._stopping = False
        d = gather([self._spawn(n).hello for n in range(1, self.count + 1)])
        return d.addTimeout(timeout, self.reactor)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = here + (os.pathsep + path if path else "")
        return env

    def _spawn(self, number: int) -> _Worker:
        worker = _Worker(self, number, self.reactor.seconds())
        spec = dict(self.spec(number), fds=list(range(3, 3 + len(self.sockets))))
        fds: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for i, fd in enumerate(self.sockets):
            fds[3 + i] = fd
        self.workers[number] = worker
        self.reactor.spawnProcess(worker, sys.executable,
                                  [sys.executable, "-m", self.module, json.dumps(spec)],
                                  env=self._environment(), childFDs=fds)
        self.log.info("{name} worker {n} started (pid {pid})", name=self.name, n=number,
                      pid=worker.pid)
        return worker

    def _ended(self, worker: _Worker, reason: Any) -> None:
        if self.workers.get(worker.number) is not worker:
            return
        if self._stopping:
            del self.workers[worker.number]
            self.log.info("{name} worker {n} (pid {pid}) stopped", name=self.name,
                          n=worker.number, pid=worker.pid)
            if not self.workers:
                waits, self._ended_waits = self._ended_waits, []
                for d in waits:
                    d.callback(None)
            return
        lived = self.reactor.seconds() - worker.started
        if lived >= self.steady:
            self._delay = self.first_delay
        delay, self._delay = self._delay, min(self.max_delay, self._delay * 2)
        self.log.error("{name} worker {n} (pid {pid}) exited ({why}): starting another in "
                       "{delay:.1f} s", name=self.name, n=worker.number, pid=worker.pid,
                       why=reason.value, delay=delay)
        self._pending[worker.number] = self.reactor.callLater(delay, self._again,
                                                              worker.number)

    def _again(self, number: int) -> None:
        self._pending.pop(number, None)
        if self._stopping:
            return
        self.restarts += 1
        worker = self._spawn(number)
        worker.hello.addErrback(lambda f: None)  # its exit is logged by _ended

    def send_all(self, value: tuple) -> None:
        """Write one frame to every running worker."""
        for worker in self.workers.values():
            worker.send(value)

    def stop(self) -> defer.Deferred:
        """
        SIGTERM to each worker, SIGKILL after C{grace} seconds.

        @return: a Deferred firing once every worker has exited.
        """
        self._stopping = True
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        for number, worker in list(self.workers.items()):
            if not worker.alive:
                del self.workers[number]
        if not self.workers:
            return defer.succeed(None)
        for worker in self.workers.values():
            worker.kill("TERM")
        d: defer.Deferred = defer.Deferred()
        self._ended_waits.append(d)
        timer = self.reactor.callLater(self.grace, self._kill_all)
        d.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return d

    def _kill_all(self) -> None:
        for worker in self.workers.values():
            self.log.warn("{name} worker {n} (pid {pid}) still running after {grace} s: "
                          "SIGKILL", name=self.name, n=worker.number, pid=worker.pid,
                          grace=self.grace)
            worker.kill("KILL")
