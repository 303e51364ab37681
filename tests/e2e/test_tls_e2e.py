"""
End to end: every TLS listener of the node (SMPP C{ssl:}, SIP TLS, HTTP
C{ssl:}) refuses TLS 1.0 and 1.1 and weak ciphers, and accepts TLS 1.2
and 1.3, as C{openssl s_client} sees it.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.harness import start_node
from tests.e2e.sip_tools import make_certificate

pytestmark = pytest.mark.e2e

OPENSSL = shutil.which("openssl")

#: A permissive client, so that a refusal is the node's doing: OpenSSL 3
#: itself refuses TLS 1.0/1.1 and weak suites at its default level 1+.
LOW = "DEFAULT:@SECLEVEL=0"


def s_client(port: int, *args: str) -> tuple[bool, str]:
    """
    Run C{openssl s_client} against 127.0.0.1:C{port}.

    @return: (whether a session was established, the output).
    """
    run = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
         *args], input=b"", capture_output=True, timeout=30)
    out = (run.stdout + run.stderr).decode(errors="replace")
    established = run.returncode == 0 and "Protocol version" in out
    return established, out


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_tls_listeners_refuse_old_versions_and_weak_ciphers(tmp_path):
    """
    On each TLS listener (smpp_tls, sip_tls, http_tls): -tls1 and
    -tls1_1 are refused even with a client at security level 0; -tls1_2
    and -tls1_3 are accepted (TLS 1.2 with an ECDHE AEAD suite); a TLS 1.2
    client offering only RC4, DES, 3DES, NULL or EXPORT suites, or only
    static-RSA/CBC ones, is refused.
    """
    key, cert = make_certificate(tmp_path / "tls")
    tls = f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    node = start_node(
        tmp_path,
        smpp={"enabled": True, "listen": [tls]},
        sip={"enabled": True, "listen": [tls]},
        http={"enabled": True, "listen": [tls]})
    try:
        for key_ in ("smpp_tls", "sip_tls", "http_tls"):
            port = node.port(key_)
            for old in ("-tls1", "-tls1_1"):
                ok, out = s_client(port, old, "-cipher", LOW)
                assert not ok, f"{key_} {old} accepted:\n{out}"
            ok, out = s_client(port, "-tls1_2")
            assert ok, f"{key_} TLS 1.2 refused:\n{out}"
            assert "TLSv1.2" in out and "ECDHE" in out, out
            ok, out = s_client(port, "-tls1_3")
            assert ok and "TLSv1.3" in out, f"{key_} TLS 1.3 refused:\n{out}"
            for weak in ("RC4:DES:3DES:NULL:EXPORT:@SECLEVEL=0",
                         "AES128-SHA:AES256-SHA:AES128-GCM-SHA256:"
                         "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"):
                ok, out = s_client(port, "-tls1_2", "-cipher", weak)
                assert not ok, f"{key_} weak {weak} accepted:\n{out}"
        # the node kept serving: one more good handshake on SMPP
        assert s_client(node.port("smpp_tls"), "-tls1_2")[0]
    finally:
        node.stop()
