"""
The SMPP libraries the node depends on: smpp.pdu3, its PDU codec, and
nothing else.  The node's SMPP sessions (server for carriers, client
connections) are its own (L{appliance.smpp}), so smpp.twisted3's
protocols are not a dependency: no module of the node imports them, and
the package does not require them.
"""
import ast
import configparser
import io
from pathlib import Path

from smpp.pdu import pdu_types
from smpp.pdu.operations import SubmitSM
from smpp.pdu.pdu_encoding import PDUEncoder

ROOT = Path(__file__).parents[1]


def test_codec_round_trip():
    """smpp.pdu3 encodes a submit_sm and decodes it back, field for field."""
    pdu = SubmitSM(seqNum=7, source_addr="AsiaCell", destination_addr="111222333",
                   short_message=b"hello",
                   source_addr_ton=pdu_types.AddrTon.ALPHANUMERIC)
    data = PDUEncoder().encode(pdu)
    back = PDUEncoder().decode(io.BytesIO(data))
    assert back.seqNum == 7
    assert back.params["short_message"] == b"hello"
    assert back.params["destination_addr"] in (b"111222333", "111222333")
    assert back.params["source_addr_ton"] == pdu_types.AddrTon.ALPHANUMERIC


def imported_modules(path: Path) -> set[str]:
    """The modules a source file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_node_uses_the_codec_only():
    """
    The node imports smpp.pdu and never smpp.twisted; setup.cfg requires
    smpp.pdu3 and not smpp.twisted3.
    """
    used = set()
    for path in (ROOT / "appliance").rglob("*.py"):
        used |= {m for m in imported_modules(path) if m.split(".")[0] == "smpp"}
    assert used and all(m.startswith("smpp.pdu") for m in used), used
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    required = config["options"]["install_requires"]
    assert "smpp.pdu3" in required and "smpp.twisted3" not in required
    assert "smpp.twisted3" not in (ROOT / "constraints.txt").read_text()
