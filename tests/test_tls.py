"""
Tests for L{appliance.tls}: what the node's TLS listeners accept and how
its outbound connections check the far side.

Handshakes run in memory (two OpenSSL connections on memory BIOs, bytes
pumped between them): no socket, no reactor.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from OpenSSL import SSL

from appliance.config import ConfigError, parse
from appliance.tls import (DEFAULT_CIPHERS, TLSPolicy, check_ciphers,
                           client_options, server_options)


def _self_signed(directory: Path, name: str, cn: str = "127.0.0.1",
                 issuer: tuple | None = None) -> tuple[Path, Path]:
    """A P-256 key and certificate for C{cn} (self-signed, or signed by
    C{issuer} = (key, cert) objects); returns the PEM paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    sign_key, issuer_name = (issuer[0], issuer[1].subject) if issuer \
        else (key, subject)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True)
    try:
        san = x509.IPAddress(ipaddress.ip_address(cn))
    except ValueError:
        san = x509.DNSName(cn)
    builder = builder.add_extension(x509.SubjectAlternativeName([san]),
                                    critical=False)
    cert = builder.sign(sign_key, hashes.SHA256())
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, key, cert


def _pump(client: SSL.Connection, server: SSL.Connection) -> None:
    """Run both handshakes to the end (or raise the first error)."""
    for _ in range(20):
        for side in (client, server):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
        moved = False
        for src, dst in ((client, server), (server, client)):
            try:
                data = src.bio_read(65536)
            except SSL.WantReadError:
                continue
            if data:
                dst.bio_write(data)
                moved = True
        if not moved:
            break
    client.do_handshake()
    server.do_handshake()


def _handshake(server_ctx: SSL.Context, version: int | None = None,
               ciphers: str | None = None, client_ctx=None,
               host: bytes | None = None) -> SSL.Connection:
    """Handshake a client pinned to C{version} (and C{ciphers}) with the
    server context; returns the client connection."""
    if client_ctx is None:
        client_ctx = SSL.Context(SSL.TLS_METHOD)
        client_ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
        # a permissive client, as an old peer would be
        client_ctx.set_cipher_list(
            (ciphers or "ALL:@SECLEVEL=0").encode())
        if version is not None:
            client_ctx.set_min_proto_version(version)
            client_ctx.set_max_proto_version(version)
        else:
            client_ctx.set_min_proto_version(SSL.TLS1_VERSION)
    client = SSL.Connection(client_ctx, None)
    if host:
        client.set_tlsext_host_name(host)
    client.set_connect_state()
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    _pump(client, server)
    return client


@pytest.fixture
def server_ctx(tmp_path: Path) -> SSL.Context:
    key, cert, *_ = _self_signed(tmp_path, "node")
    options = server_options({"privateKey": str(key), "certKey": str(cert)},
                             TLSPolicy())
    return options.getContext()


def test_tls_1_0_and_1_1_refused(server_ctx):
    """A listener refuses a client that speaks only TLS 1.0 or TLS 1.1."""
    for version in (SSL.TLS1_VERSION, SSL.TLS1_1_VERSION):
        with pytest.raises(SSL.Error):
            _handshake(server_ctx, version)


def test_tls_1_2_and_1_3_accepted(server_ctx):
    """TLS 1.2 and TLS 1.3 clients complete the handshake, with a
    forward-secret AEAD suite under 1.2."""
    c = _handshake(server_ctx, SSL.TLS1_2_VERSION)
    assert c.get_protocol_version_name() == "TLSv1.2"
    assert c.get_cipher_name().startswith("ECDHE-")
    assert "GCM" in c.get_cipher_name() or "CHACHA" in c.get_cipher_name()
    c = _handshake(server_ctx, SSL.TLS1_3_VERSION)
    assert c.get_protocol_version_name() == "TLSv1.3"


def test_weak_ciphers_refused(server_ctx):
    """A TLS 1.2 client offering only weak suites (RC4, DES, 3DES, NULL,
    EXPORT, static RSA, CBC-SHA1) finds no common cipher."""
    for weak in ("RC4:DES:3DES:NULL:EXPORT:@SECLEVEL=0",
                 "AES128-SHA:AES256-SHA:AES128-GCM-SHA256:@SECLEVEL=0",
                 "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"):
        try:
            ctx = SSL.Context(SSL.TLS_METHOD)
            ctx.set_cipher_list(weak.encode())
        except SSL.Error:
            continue  # this OpenSSL does not even offer them
        with pytest.raises(SSL.Error):
            _handshake(server_ctx, SSL.TLS1_2_VERSION, weak)


def test_minimum_1_3(tmp_path: Path):
    """With min_version 1.3 a TLS 1.2 client is refused too."""
    key, cert, *_ = _self_signed(tmp_path, "node")
    ctx = server_options({"privateKey": str(key), "certKey": str(cert)},
                         TLSPolicy("1.3")).getContext()
    with pytest.raises(SSL.Error):
        _handshake(ctx, SSL.TLS1_2_VERSION)
    assert _handshake(ctx, SSL.TLS1_3_VERSION)


def test_default_ciphers_admit_no_weak_suite():
    """The default cipher string passes its own check; strings admitting
    weak or unknown suites do not."""
    assert check_ciphers(DEFAULT_CIPHERS) is None
    assert "weak" in check_ciphers("ALL:@SECLEVEL=0")
    assert "weak" in check_ciphers("AES128-SHA")
    assert check_ciphers("NOSUCHCIPHER") is not None


def test_config_tls_section():
    """[tls] min_version and ciphers are read and checked; the defaults
    are 1.2 and the safe cipher string; a weak string or 1.1 is a
    configuration error naming the key."""
    assert parse("").tls == TLSPolicy()
    config = parse('[tls]\nmin_version = "1.3"\n')
    assert config.tls.min_version == "1.3"
    with pytest.raises(ConfigError) as e:
        parse('[tls]\nmin_version = "1.1"\nciphers = "RC4-SHA:@SECLEVEL=0"\n'
              'other = 1\n')
    text = str(e.value)
    assert "[tls] min_version" in text and "[tls] ciphers" in text
    assert "[tls] other: unknown key" in text


def test_missing_key_file_raises(tmp_path: Path):
    """A key file that does not exist is a ValueError naming it."""
    with pytest.raises(ValueError, match="nokey"):
        server_options({"privateKey": str(tmp_path / "nokey.pem")},
                       TLSPolicy())


# -- outbound -------------------------------------------------------------

def test_client_verifies_against_the_pinned_ca(tmp_path: Path):
    """A client pinned to a CA file accepts a server whose certificate
    that CA signed for the host it dials, and refuses a self-signed one
    and a certificate for another name."""
    _, ca_cert_path, ca_key, ca_cert = _self_signed(tmp_path, "ca", "Test CA")
    key, cert, *_ = _self_signed(tmp_path, "srv", "127.0.0.1",
                                 issuer=(ca_key, ca_cert))
    good = server_options({"privateKey": str(key), "certKey": str(cert)},
                          TLSPolicy()).getContext()
    options = client_options("127.0.0.1", ca_cert_path)
    assert _tls_handshake_ok(options, good)
    other_key, other_cert, *_ = _self_signed(tmp_path, "rogue", "127.0.0.1")
    rogue = server_options({"privateKey": str(other_key),
                            "certKey": str(other_cert)},
                           TLSPolicy()).getContext()
    assert not _tls_handshake_ok(options, rogue)
    wrong_name = client_options("10.0.0.1", ca_cert_path)
    assert not _tls_handshake_ok(wrong_name, good)


def _tls_handshake_ok(client_options_, server_ctx: SSL.Context) -> bool:
    """Run Twisted's client options against the server context through
    TLSMemoryBIOProtocol on iosim, which is how the node connects: return
    whether the connection got to exchange data."""
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.test.iosim import connect, FakeTransport
    from twisted.internet.ssl import CertificateOptions
    from twisted.internet.task import Clock

    got: list = []

    class Echo(Protocol):
        def dataReceived(self, data):
            got.append(data)

    class Hello(Protocol):
        def connectionMade(self):
            self.transport.write(b"hello")

    class Server(CertificateOptions):
        def getContext(self):
            return server_ctx

    clock = Clock()
    sfac = TLSMemoryBIOFactory(Server(), False, Factory.forProtocol(Echo),
                               clock=clock)
    cfac = TLSMemoryBIOFactory(client_options_, True,
                               Factory.forProtocol(Hello), clock=clock)
    sproto = sfac.buildProtocol(None)
    cproto = cfac.buildProtocol(None)
    pump = connect(sproto, FakeTransport(sproto, isServer=True),
                   cproto, FakeTransport(cproto, isServer=False))
    clock.advance(0)  # small writes are aggregated until the next turn
    pump.flush()
    return got == [b"hello"]


def test_client_refuses_tls_1_1_server(tmp_path: Path):
    """An outbound connection refuses a server that speaks only TLS 1.1."""
    _, ca_path, ca_key, ca_cert = _self_signed(tmp_path, "ca", "Test CA")
    key, cert, *_ = _self_signed(tmp_path, "srv", "127.0.0.1",
                                 issuer=(ca_key, ca_cert))
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.use_privatekey_file(str(key))
    ctx.use_certificate_file(str(cert))
    ctx.set_cipher_list(b"ALL:@SECLEVEL=0")
    ctx.set_min_proto_version(SSL.TLS1_1_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
    assert not _tls_handshake_ok(client_options("127.0.0.1", ca_path), ctx)


def test_client_trusts_the_system_store_without_a_ca(monkeypatch):
    """Without a pinned CA, outbound TLS trusts the platform's store."""
    from twisted.internet import ssl
    seen = []
    real = ssl.platformTrust
    monkeypatch.setattr(ssl, "platformTrust",
                        lambda: seen.append(1) or real())
    client_options("smsc.example")
    assert seen == [1]



def test_check_ca_file(tmp_path: Path):
    """A CA file to pin must be an absolute path to a readable file with a
    PEM certificate in it; each failure says which."""
    from appliance.tls import check_ca_file
    _, cert, *_ = _self_signed(tmp_path, "ca", "Test CA")
    assert check_ca_file(str(cert)) is None
    assert "absolute" in check_ca_file("ca.crt")
    assert check_ca_file(str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    assert "no PEM certificate" in check_ca_file(str(junk))


def test_https_policy_verifies_pinned_and_default(tmp_path: Path,
                                                  monkeypatch):
    """The HTTP client's policy (callbacks) verifies the server against the
    pinned CA when one is given (a server that CA signed passes, a
    self-signed one fails), and against the system's trust store
    otherwise (where a test CA is unknown: refused)."""
    from appliance.tls import VerifyingPolicy
    from twisted.web.iweb import IPolicyForHTTPS
    _, ca_path, ca_key, ca_cert = _self_signed(tmp_path, "ca", "Test CA")
    key, cert, *_ = _self_signed(tmp_path, "srv", "127.0.0.1",
                                 issuer=(ca_key, ca_cert))
    server = server_options({"privateKey": str(key), "certKey": str(cert)},
                            TLSPolicy()).getContext()
    assert IPolicyForHTTPS.providedBy(VerifyingPolicy())
    pinned = VerifyingPolicy(str(ca_path)).creatorForNetloc(b"127.0.0.1", 443)
    assert _tls_handshake_ok(pinned, server)
    default = VerifyingPolicy().creatorForNetloc(b"127.0.0.1", 443)
    assert not _tls_handshake_ok(default, server)


def test_chain_and_dh_parameters(tmp_path: Path):
    """A listener's extraCertChain is sent after its certificate; its
    dhParameters file is loaded."""
    import subprocess
    _, ca_path, ca_key, ca_cert = _self_signed(tmp_path, "ca", "Test CA")
    key, cert, *_ = _self_signed(tmp_path, "srv", "127.0.0.1",
                                 issuer=(ca_key, ca_cert))
    dh = tmp_path / "dh.pem"
    subprocess.run(["openssl", "dhparam", "-dsaparam", "-out", str(dh), "2048"],
                   check=True, capture_output=True, timeout=120)
    ctx = server_options({"privateKey": str(key), "certKey": str(cert),
                          "extraCertChain": str(ca_path),
                          "dhParameters": str(dh)}, TLSPolicy()).getContext()
    client = _handshake(ctx, SSL.TLS1_2_VERSION)
    assert len(client.get_peer_cert_chain()) == 2


def test_junk_key_or_certificate_raises(tmp_path: Path):
    """A key or certificate file whose content OpenSSL refuses is a
    ValueError naming the files (the listener is not started)."""
    key, cert, *_ = _self_signed(tmp_path, "srv")
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    with pytest.raises(ValueError, match="junk.pem"):
        server_options({"privateKey": str(junk), "certKey": str(cert)},
                       TLSPolicy())
    with pytest.raises(ValueError, match="junk.pem"):
        server_options({"privateKey": str(key), "certKey": str(junk)},
                       TLSPolicy())
