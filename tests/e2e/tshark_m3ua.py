"""
Independent decoding of M3UA frames by tshark.

tshark registers M3UA on SCTP only (PPID 3), so M3UA over TCP is not
decoded where it runs.  L{decode} re-wraps each frame in a dummy SCTP
DATA chunk with PPID 3 (C{text2pcap -S 2905,2905,3}) and returns
tshark's one-line summary of each, the M3UA message names, and how many
were malformed.  L{Capture} collects the frames of a live TCP port on
the loopback (tshark capture, TCP payloads reassembled per direction and
cut at each M3UA length).  Usage::

    capture = Capture(port).start()
    ... traffic ...
    decoded = decode(capture.stop())
    assert decoded.malformed == 0
"""
from __future__ import annotations

import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from appliance.sigtran.m3ua import NAMES
from tests.e2e.harness import wait_for


@dataclass
class Decoded:
    """
    @ivar lines: tshark's Info column, one per frame.
    @ivar names: the M3UA message names (C{"DATA"}, C{"ASPUP_ACK"}...).
    @ivar malformed: frames with a malformed or error-level expert item.
    @ivar protocols: the protocol stack of each frame (C{...:m3ua:sccp}).
    """
    lines: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    malformed: int = 0
    protocols: list[str] = field(default_factory=list)


def _hexdump(frames: list[bytes]) -> str:
    out = []
    for frame in frames:
        for i in range(0, len(frame), 16):
            chunk = frame[i:i + 16]
            out.append(f"{i:06x} " + " ".join(f"{b:02x}" for b in chunk))
        out.append("")
    return "\n".join(out) + "\n"


def decode(frames: list[bytes]) -> Decoded:
    """
    @param frames: whole M3UA messages (bytes).
    @return: what tshark makes of them.
    """
    with tempfile.TemporaryDirectory() as d:
        txt, pcap = Path(d) / "frames.txt", Path(d) / "frames.pcap"
        txt.write_text(_hexdump(frames))
        subprocess.run(["text2pcap", "-q", "-S", "2905,2905,3", str(txt),
                        str(pcap)], check=True, capture_output=True)
        fields = subprocess.run(
            ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=\t",
             "-e", "m3ua.message_class", "-e", "m3ua.message_type",
             "-e", "frame.protocols", "-e", "_ws.col.Info"],
            check=True, capture_output=True, text=True).stdout
        bad = subprocess.run(
            ["tshark", "-r", str(pcap), "-Y",
             "_ws.malformed || _ws.expert.severity == error", "-T", "fields",
             "-e", "frame.number"], check=True, capture_output=True,
            text=True).stdout
    out = Decoded(malformed=len(bad.split()))
    for row in fields.splitlines():
        cls, typ, protocols, info = (row.split("\t") + ["", "", "", ""])[:4]
        out.lines.append(info)
        out.protocols.append(protocols)
        try:
            key = (int(cls.split(",")[0]), int(typ.split(",")[0]))
            out.names.append(NAMES.get(key, f"{key[0]}/{key[1]}"))
        except ValueError:
            out.names.append("?")
    return out


def split(stream: bytes) -> list[bytes]:
    """Cut a TCP byte stream into M3UA messages by their lengths."""
    out = []
    while len(stream) >= 8:
        n = int.from_bytes(stream[4:8], "big")
        if n < 8 or len(stream) < n:
            break
        out.append(stream[:n])
        stream = stream[n:]
    return out


class Capture:
    """
    A tshark capture of one loopback TCP port.

    Whether the capture runs, and whether it has caught up with the
    traffic, is seen the same way: a UDP datagram to a socket of ours on
    the loopback (the capture filter takes it too) is sent, and the
    capture file is read until the datagram is in it.  tshark says
    "Capturing on" a moment before its filter takes packets (the first
    datagram after it is often lost), and packets in the kernel's queue
    when it is stopped are lost: a fixed pause guessed at both.
    """

    def __init__(self, port: int):
        self.port = port
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "capture.pcapng"
        self.process: subprocess.Popen | None = None
        self._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._marker.bind(("127.0.0.1", 0))
        self._marks = 0

    def start(self, timeout: float = 30.0) -> "Capture":
        """Start capturing; returns once a packet is seen captured."""
        self.err = Path(self.dir.name) / "tshark.err"
        marker = self._marker.getsockname()[1]
        self.process = subprocess.Popen(
            ["tshark", "-q", "-i", "lo", "-f",
             f"tcp port {self.port} or udp port {marker}",
             "-w", str(self.path)], stdout=subprocess.DEVNULL,
            stderr=open(self.err, "wb"))
        # Until tshark runs at all, then until its filter takes packets:
        # a new datagram at each try, since one sent too early is lost.
        wait_for(lambda: self._alive() and b"Capturing on" in
                 self.err.read_bytes(), timeout, interval=0.05,
                 what="tshark to start")
        wait_for(lambda: self._caught_up(self._mark()), timeout,
                 interval=0.2, what="tshark capturing")
        return self

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("tshark ended: "
                               + self.err.read_text(errors="replace"))
        return True

    def _mark(self) -> bytes:
        """Send one datagram to the marker socket; @return: its payload."""
        self._marks += 1
        payload = b"mark %d" % self._marks
        self._marker.sendto(payload, self._marker.getsockname())
        return payload

    def _caught_up(self, payload: bytes) -> bool:
        """Whether the capture file holds the datagram C{payload} (a file
        being written may end in half a packet: tshark then complains,
        and what it read before counts)."""
        self._alive()
        if not self.path.exists():
            return False
        seen = subprocess.run(
            ["tshark", "-r", str(self.path), "-Y",
             f"udp.port == {self._marker.getsockname()[1]}", "-T", "fields",
             "-e", "data"], capture_output=True, text=True).stdout
        return payload.hex() in seen.split()

    def stop(self, timeout: float = 30.0) -> list[bytes]:
        """
        Stop and @return: the M3UA frames seen, per TCP connection and
        direction, in capture order of their first byte.  Stops once the
        capture holds a datagram sent now, so every packet sent before
        this call is in it.
        """
        last = self._mark()
        wait_for(lambda: self._caught_up(last), timeout, interval=0.2,
                 what="tshark catching up with the traffic")
        self._marker.close()
        self.process.terminate()
        self.process.wait(10)
        rows = subprocess.run(
            ["tshark", "-r", str(self.path), "-Y", "tcp.len > 0", "-T",
             "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
             "-e", "tcp.payload"], check=True, capture_output=True,
            text=True).stdout
        streams: dict[tuple, bytes] = {}
        for row in rows.splitlines():
            stream, src, payload = row.split("\t")
            key = (stream, src)
            streams[key] = streams.get(key, b"") + bytes.fromhex(
                payload.replace(":", ""))
        frames = []
        for data in streams.values():
            frames.extend(split(data))
        self.dir.cleanup()
        return frames
