"""
Command output too large to build in memory: a L{Stream} of text chunks,
and the L{StreamWriter} that copies one to an SSH channel with flow
control.

A handler returns a L{Stream} (C{billing export ... csv} does) instead of
text.  Whoever shows the output (exec, a script on standard input, the
interactive shell) hands it to a L{StreamWriter}, an C{IPushProducer}: it
writes chunks on reactor turns while nobody has paused it, and stops when
the SSH channel's remote window is spent (the channel calls
L{StreamWriter.pause_for} / L{StreamWriter.resume_for}) or the TCP
transport's buffer is full (it is registered there as a streaming
producer).  So at most about one window plus one chunk is ever buffered,
whatever the output's size.  Tests and start-up provisioning, which want
the text, call L{Stream.read}.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["Stream", "StreamWriter"]


class Stream:
    """
    Output produced in chunks of text, read once (a chunk is dropped once
    written).

    @ivar closed: whether it was read to its end or closed.
    """

    def __init__(self, chunks: Iterable[str]) -> None:
        """
        @param chunks: the text chunks, each ending where the producer
            likes (a generator's C{finally} runs on L{close}).
        """
        self._chunks: Iterator[str] = iter(chunks)
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.closed:
            raise StopIteration
        return next(self._chunks)

    def close(self) -> None:
        """Stop producing: run the producer's clean-up (idempotent)."""
        if not self.closed:
            self.closed = True
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()

    def read(self) -> str:
        """
        @return: all the text, without the trailing newline (as a command's
            ordinary output); for tests and provisioning only.
        """
        try:
            return "".join(self).rstrip("\n")
        finally:
            self.close()


@implementer(IPushProducer)
class StreamWriter:
    """
    Copy a L{Stream} to a writer as fast as the consumer takes it.

    @ivar written: bytes written so far.
    @ivar chunks: chunks written so far.
    @ivar paused: the reasons it is paused (C{"transport"}, C{"window"}).
    """

    log = Logger()

    def __init__(self, stream: Stream, write: Callable[[bytes], None],
                 done: Callable[[str], None], clock: Any = None,
                 encode: Callable[[str], bytes] = lambda s: s.encode("utf-8"),
                 per_turn: int = 256 * 1024) -> None:
        """
        @param stream: what to write.
        @param write: writes bytes to the channel.
        @param done: called once with C{"ok"} (all written), C{"failed"}
            (the stream raised: a C{% internal error} line was written) or
            C{"stopped"} (L{stopProducing}: the channel went or the
            operator interrupted).
        @param clock: C{callLater} provider: each turn writes at most
            C{per_turn} bytes, then lets the reactor run; C{None} writes
            until paused or finished (unit tests).
        @param encode: text to bytes (the pty wants CRLF).
        @param per_turn: bytes written per reactor turn.
        """
        self.stream = stream
        self._write = write
        self._done = done
        self._clock = clock
        self._encode = encode
        self.per_turn = per_turn
        self.paused: set[str] = set()
        self.written = 0
        self.chunks = 0
        self.finished = False
        self._call: Any = None

    def start(self) -> None:
        """Begin writing (from the next turn when there is a clock)."""
        self._schedule()

    def _schedule(self) -> None:
        if self.finished or self.paused or self._call is not None:
            return
        if self._clock is None:
            self._step()
        else:
            self._call = self._clock.callLater(0, self._step)

    def _step(self) -> None:
        self._call = None
        budget = self.per_turn
        try:
            while not self.paused and not self.finished:
                try:
                    chunk = next(self.stream)
                except StopIteration:
                    self._finish("ok")
                    return
                data = self._encode(chunk)
                self.chunks += 1
                self.written += len(data)
                self._write(data)
                budget -= len(data)
                if budget <= 0 and self._clock is not None:
                    break
        except Exception as e:
            # Broad: the stream is a command's generator; its bug ends
            # this output with an error line, the session goes on.
            self.log.failure("streamed output failed after {n} bytes", n=self.written)
            if not self.finished:
                self._write(self._encode(f"% internal error: {e.__class__.__name__}\n"))
                self._finish("failed")
            return
        self._schedule()

    def _finish(self, status: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.stream.close()
        self._done(status)

    def pause_for(self, reason: str) -> None:
        """
        Stop writing until L{resume_for} with the same reason.

        @param reason: who asks (C{"window"}: the SSH channel).
        """
        self.paused.add(reason)
        if self._call is not None and self._call.active():
            self._call.cancel()
            self._call = None

    def resume_for(self, reason: str) -> None:
        """
        @param reason: as given to L{pause_for}.
        """
        self.paused.discard(reason)
        self._schedule()

    def pauseProducing(self) -> None:
        """The TCP transport's buffer is full."""
        self.pause_for("transport")

    def resumeProducing(self) -> None:
        """The TCP transport's buffer drained."""
        self.resume_for("transport")

    def stopProducing(self) -> None:
        """The consumer is gone (or the operator interrupted): stop for good."""
        self._finish("stopped")
