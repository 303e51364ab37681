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


def _ca_and_server_cert(directory):
    """A test CA and a certificate it signed for 127.0.0.1 (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run([OPENSSL, *a], check=True,  # noqa: E731
                                    capture_output=True, timeout=30)
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    run("req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
        "/CN=Test CA", "-keyout", str(ca_key), "-out", str(ca))
    key, csr, cert = (directory / "srv.key", directory / "srv.csr",
                      directory / "srv.crt")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
        str(ca_key), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
        "-out", str(cert))
    return ca, key, cert


@pytest.mark.skipif(OPENSSL is None or shutil.which("curl") is None,
                    reason="openssl and curl needed")
def test_https_callback_verified_and_pinned(tmp_path):
    """A delivery-report callback to an https server whose certificate a
    private CA signed is refused by default (not in the system's trust
    store: the attempt fails and is retried); once the tenant pins that CA
    with callback-ca, the next attempt is delivered."""
    import ssl
    from tests.e2e.harness import wait_for
    from tests.e2e.http_tools import (PASSWORD, Receiver, api, body_json,
                                      curl, provision)
    from tests.e2e.smsc import SMSC
    from tests.e2e.test_shell_ssh import keygen, ssh
    ca, key, cert = _ca_and_server_cert(tmp_path / "pki")
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    receiver.server.socket = context.wrap_socket(receiver.server.socket,
                                                 server_side=True)
    url = f"https://127.0.0.1:{receiver.port}/dlr"
    c1, c2 = SMSC("carrier1"), SMSC("carrier2")
    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "admin_keys").write_text(keygen(keydir / "admin") + "\n")
    script = tmp_path / "provision.cli"
    script.write_text("\n".join(provision(c1.port, c2.port)))
    node = start_node(
        tmp_path, node={"provision": str(script)},
        shell={"enabled": True, "admin_keys": str(keydir / "admin_keys")},
        http={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"})
    try:
        wait_for(lambda: c1.binds, what="carrier1 bound")
        status, _, text = curl("-u", f"acme:{PASSWORD}", api(
            node, "/sendsms/send?from=123456789&to=351912345678&body=x"
                  f"&dlr-url={url}"))
        assert status == 200, text
        mid = body_json(text)["id"]
        wait_for(lambda: c1.received, what="the message at carrier1")
        wait_for(lambda: body_json(curl("-u", f"acme:{PASSWORD}", api(
            node, f"/sendsms/status?id={mid}"))[2])["state"] ==
            "delivering", what="forwarded")
        c1.receipt(c1.received[0])
        wait_for(lambda: "will retry" in node.log(), what="a refused attempt")
        assert "certificate verify failed" in node.log(), node.log()[-3000:]
        assert not receiver.requests
        rc, out, _ = ssh(tmp_path, node, "admin", keydir / "admin",
                         stdin=f"configure terminal\ntenant acme\n"
                               f"callback-ca {ca}\nend\n")
        assert rc == 0, out
        wait_for(lambda: receiver.requests, timeout=30,
                 what="the callback over verified TLS")
        method, path, _, body = receiver.requests[0]
        assert method == "POST" and path == "/dlr"
    finally:
        node.stop()
        c1.stop()
        c2.stop()
        receiver.stop()


@pytest.mark.skipif(OPENSSL is None, reason="openssl needed")
def test_outbound_smpp_tls_verified_and_pinned(tmp_path):
    """An outbound SMPP connection with tls to an SMSC whose certificate a
    private CA signed does not bind while it trusts the system's store
    (the handshake fails: the node refused the certificate); once the
    connection pins that CA with tls-ca, it binds over TLS."""
    import ssl
    from tests.e2e.harness import wait_for
    from tests.e2e.smsc import SMSC
    from tests.e2e.test_shell_ssh import keygen, ssh
    ca, key, cert = _ca_and_server_cert(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    vendor = SMSC("vendor", tls=context)
    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "admin_keys").write_text(keygen(keydir / "admin") + "\n")
    script = tmp_path / "provision.cli"
    script.write_text("\n".join([
        "configure terminal", " connection vendor", "  host 127.0.0.1",
        f"  port {vendor.port}", "  system-id node", "  password nodepw",
        "  tls", " exit", "end", ""]))
    node = start_node(
        tmp_path, node={"provision": str(script)},
        shell={"enabled": True, "admin_keys": str(keydir / "admin_keys")},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"})
    try:
        wait_for(lambda: vendor.tls_failures >= 1, timeout=20,
                 what="a refused TLS handshake")
        assert vendor.binds == 0
        rc, out, _ = ssh(tmp_path, node, "admin", keydir / "admin",
                         stdin=f"configure terminal\nconnection vendor\n"
                               f"tls-ca {ca}\nend\n")
        assert rc == 0, out
        wait_for(lambda: vendor.binds >= 1, timeout=40,
                 what="the bind over verified TLS")
        assert isinstance(next(iter(vendor.sessions)).sock, ssl.SSLSocket)
    finally:
        node.stop()
        vendor.stop()
