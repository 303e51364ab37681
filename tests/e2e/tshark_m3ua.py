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

import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.sigtran.m3ua import NAMES


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
    """A tshark capture of one loopback TCP port."""

    def __init__(self, port: int):
        self.port = port
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "capture.pcapng"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Capture":
        """Start capturing; returns once tshark says it captures."""
        self.err = Path(self.dir.name) / "tshark.err"
        self.process = subprocess.Popen(
            ["tshark", "-q", "-i", "lo", "-f", f"tcp port {self.port}",
             "-w", str(self.path)], stdout=subprocess.DEVNULL,
            stderr=open(self.err, "wb"))
        deadline = time.monotonic() + 15
        while b"Capturing on" not in self.err.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tshark did not start: "
                                   + self.err.read_text(errors="replace"))
            time.sleep(0.05)
        return self

    def stop(self) -> list[bytes]:
        """
        Stop and @return: the M3UA frames seen, per TCP connection and
        direction, in capture order of their first byte.
        """
        time.sleep(0.5)     # let the last packets reach the capture
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
