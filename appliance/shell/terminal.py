"""
The two ways a shell channel talks to an operator, both over L{execute}:

  - L{CLITerminal}: with a pty, an insults line editor (prompt, editing,
    history, C{?} help without inserting it, TAB completion);
  - L{ScriptReader}: without a pty, standard input as a script (lines run
    in order, the first error ends it with C{% line N: ...} and exit 1).

Both write a command's streamed output (L{appliance.shell.output}) through
the starter they are given, which applies the channel's flow control.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.shell.grammar import GrammarError, common_prefix, quote
from appliance.shell.session import Session, execute

#: Starts writing a streamed output: C{(stream, done, encode[, write])} to
#: the writer (L{appliance.shell.ssh.stream_to} with the channel bound).
StreamStarter = Callable[..., Any]


def exit_failure(code: int) -> Failure:
    """
    @param code: a process exit code.
    @return: the failure that makes Conch send that C{exit-status}.
    """
    if code == 0:
        return Failure(ProcessDone(None))
    return Failure(ProcessTerminated(exitCode=code))


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _open_quote(buffer: str) -> bool:
    inside, escaped = False, False
    for ch in buffer:
        if escaped:
            escaped = False
        elif ch == "\\" and inside:
            escaped = True
        elif ch == '"':
            inside = not inside
    return inside


class CLITerminal(HistoricRecvLine):
    """
    The interactive shell on a pty.

    @ivar session: the operator's L{Session}.
    @ivar on_end: called with the exit code when the session ends.
    """

    log = Logger()

    def __init__(self, session: Session,
                 on_end: Callable[[int], None] | None = None,
                 stream: StreamStarter | None = None) -> None:
        """
        @param session: the operator's session.
        @param on_end: called once with the exit code when the operator
            leaves (C{exit} at the top, or Ctrl-D on an empty line).
        @param stream: starts writing a command's streamed output to the
            channel with flow control (C{None}: such output is read whole).
        """
        self.session = session
        self.on_end = on_end
        self._stream = stream
        self._ended = False
        self.writer: Any = None

    def _set_prompt(self) -> None:
        self.ps = (self.session.prompt().encode("utf-8"), b"... ")
        self.pn = 0

    def connectionMade(self) -> None:
        """Set up keys and draw the first prompt."""
        self._set_prompt()
        super().connectionMade()
        self.keyHandlers.update({
            b"\x01": self.handle_HOME,             # Ctrl-A
            b"\x03": self.handle_INTERRUPT,        # Ctrl-C
            b"\x04": self.handle_EOF,              # Ctrl-D
            b"\x05": self.handle_END,              # Ctrl-E
            b"\x08": self.handle_BACKSPACE,        # Ctrl-H
            b"\x0b": self.handle_KILL_LINE,        # Ctrl-K
            b"\x15": self.handle_KILL_BACKWARD,    # Ctrl-U
            b"\x17": self.handle_KILL_WORD,        # Ctrl-W
            b"\x7f": self.handle_BACKSPACE,
        })

    def initializeScreen(self) -> None:
        """Draw the prompt without clearing the operator's screen."""
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()

    def _buffer(self) -> str:
        return b"".join(self.lineBuffer).decode("utf-8", "replace")

    def _text(self, text: str) -> None:
        if text:
            self.terminal.write(_crlf(text + "\n"))

    def _redraw(self) -> None:
        self.drawInputLine()
        back = len(self.lineBuffer) - self.lineBufferIndex
        if back:
            self.terminal.cursorBackward(back)

    def keystrokeReceived(self, keyID, modifier) -> None:
        """
        C{?} shows help (unless inside quotes), bytes of UTF-8 text are
        accepted, the rest is the line editor's.  While a command's output
        is streaming, Ctrl-C stops it and other keys are ignored.
        """
        if self.writer is not None:
            if keyID == b"\x03":
                self.writer.stopProducing()
            return
        if keyID == b"?" and not _open_quote(self._buffer()):
            self.show_help()
        elif (isinstance(keyID, bytes) and len(keyID) == 1
              and keyID[0] >= 0x80):
            self.characterReceived(keyID, False)
        else:
            super().keystrokeReceived(keyID, modifier)

    def show_help(self) -> None:
        """List what may come next, then redraw the prompt and the line."""
        before = b"".join(self.lineBuffer[:self.lineBufferIndex])
        text = before.decode("utf-8", "replace")
        self.terminal.nextLine()
        try:
            pairs = self.session.tree.help(
                self.session.mode, text, admin=self.session.admin,
                names=self.session.names)
        except GrammarError as e:
            self._text(f"% {e}")
        else:
            width = max((len(w) for w, _ in pairs), default=0)
            self._text("\n".join(f"  {w.ljust(width)}  {h}".rstrip()
                                 for w, h in pairs))
        self._redraw()

    def handle_TAB(self) -> None:
        """
        Complete the word before the cursor: one candidate is inserted
        with a space after it; several are extended to their common
        prefix, or listed when that adds nothing.
        """
        before = b"".join(self.lineBuffer[:self.lineBufferIndex])
        text = before.decode("utf-8", "replace")
        start, words = self.session.tree.complete(
            self.session.mode, text, admin=self.session.admin,
            names=self.session.names)
        if not words:
            return
        partial = text[start:]
        if len(words) == 1:
            self._replace_word(partial, quote(words[0]) + " ")
            return
        prefix = common_prefix(words)
        if len(prefix) > len(partial) and quote(prefix) == prefix:
            self._replace_word(partial, prefix)
            return
        self.terminal.nextLine()
        self._text("  ".join(quote(w) for w in words))
        self._redraw()

    def _replace_word(self, partial: str, new: str) -> None:
        for _ in range(len(partial.encode("utf-8"))):
            self.handle_BACKSPACE()
        for ch in new.encode("utf-8"):
            self.characterReceived(bytes([ch]), False)

    def _rewrite(self) -> None:
        """Draw the prompt and the line again, the cursor where it was."""
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self._redraw()

    def handle_KILL_LINE(self) -> None:
        """Ctrl-K deletes from the cursor to the end of the line."""
        if self.lineBufferIndex < len(self.lineBuffer):
            del self.lineBuffer[self.lineBufferIndex:]
            self.terminal.eraseToLineEnd()

    def handle_KILL_BACKWARD(self) -> None:
        """Ctrl-U deletes from the start of the line to the cursor."""
        if self.lineBufferIndex:
            del self.lineBuffer[:self.lineBufferIndex]
            self.lineBufferIndex = 0
            self._rewrite()

    def handle_KILL_WORD(self) -> None:
        """
        Ctrl-W deletes the word before the cursor and the blanks after it
        (as readline's unix-word-rubout).
        """
        end = start = self.lineBufferIndex
        while start and self.lineBuffer[start - 1] == b" ":
            start -= 1
        while start and self.lineBuffer[start - 1] != b" ":
            start -= 1
        if start != end:
            del self.lineBuffer[start:end]
            self.lineBufferIndex = start
            self._rewrite()

    def handle_EOF(self) -> None:
        """
        Ctrl-D on an empty line ends the session; on text it deletes the
        character under the cursor.
        """
        if not self.lineBuffer:
            self.terminal.nextLine()
            self._end(0)
        else:
            self.handle_DELETE()

    def handle_INTERRUPT(self) -> None:
        """Ctrl-C drops the line being typed."""
        self.terminal.write(b"^C")
        self.terminal.nextLine()
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.historyPosition = len(self.historyLines)
        self._redraw()

    def lineReceived(self, line: bytes) -> None:
        """
        Run the line, print its answer and the (maybe new) prompt.

        @param line: the line typed.
        """
        result = execute(self.session, line.decode("utf-8", "replace"))
        if result.stream is not None and self._stream is not None:
            self.writer = self._stream(result.stream, self._streamed, _crlf,
                                       self.terminal.write)
            return
        self._text(result.read())
        if result.ended:
            self._end(0)
            return
        self._prompt()

    def _prompt(self) -> None:
        self._set_prompt()
        self.terminal.write(self.ps[self.pn])

    def _streamed(self, status: str) -> None:
        """A streamed output ended (C{stopped}: Ctrl-C): prompt again."""
        self.writer = None
        if status == "stopped":
            self.terminal.write(b"^C")
            self.terminal.nextLine()
        self._prompt()

    def _end(self, code: int) -> None:
        if self._ended:
            return
        self._ended = True
        if self.on_end is not None:
            self.on_end(code)


class ScriptReader(Protocol):
    """
    Standard input without a pty, run as a script: each complete line runs
    as it arrives; the first refused line ends the channel with
    C{% line N: reason} and exit status 1; end of input (or C{exit} at the
    top) ends it with status 0.

    @ivar session: the operator's L{Session}.
    """

    def __init__(self, session: Session,
                 on_end: Callable[[int], None],
                 stream: StreamStarter | None = None) -> None:
        """
        @param session: the operator's session.
        @param on_end: called once with the exit code.
        @param stream: starts writing a streamed output with flow control;
            the next lines wait until it is written (C{None}: such output
            is read whole).
        """
        self.session = session
        self.on_end = on_end
        self._stream = stream
        self._buffer = b""
        self._number = 0
        self._ended = False
        self._eof = False
        self.writer: Any = None

    def dataReceived(self, data: bytes) -> None:
        """Run every complete line received (after any output streaming)."""
        if self._ended:
            return
        self._buffer += data
        self._drain()

    def _drain(self) -> None:
        while b"\n" in self._buffer and not self._ended and self.writer is None:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._run(line)
        if self._eof and self.writer is None and not self._ended:
            if self._buffer.strip():
                line, self._buffer = self._buffer, b""
                self._run(line)
                if self.writer is not None:
                    return
            self._end(0)

    def eof(self) -> None:
        """Input ended: run a last unterminated line, then exit 0."""
        if self._ended:
            return
        self._eof = True
        self._drain()

    def _streamed(self, status: str) -> None:
        """A streamed output ended: go on with the next lines, or stop."""
        self.writer = None
        if status != "ok":
            self._end(1)
            return
        self._drain()

    def _run(self, raw: bytes) -> None:
        self._number += 1
        result = execute(self.session,
                         raw.rstrip(b"\r").decode("utf-8", "replace"))
        if not result.ok:
            reason = result.text[2:] if result.text.startswith("% ") \
                else result.text
            self.transport.write(
                f"% line {self._number}: {reason}\n".encode("utf-8"))
            self._end(1)
            return
        if result.stream is not None and self._stream is not None:
            self.writer = self._stream(result.stream, self._streamed,
                                       lambda text: text.encode("utf-8"))
            return
        if result.read():
            self.transport.write(result.text.encode("utf-8") + b"\n")
        if result.ended:
            self._end(0)

    def _end(self, code: int) -> None:
        if not self._ended:
            self._ended = True
            self.on_end(code)
