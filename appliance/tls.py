# -*- test-case-name: tests.test_tls -*-
"""
The node's TLS: what its listeners accept and how it checks the far side
of its own connections.

Every TLS listener (SMPP, SIP, HTTP C{ssl:}) is built by
L{server_options} from the listener's key and certificate and the
node's L{TLSPolicy} (C{[tls] min_version}, C{[tls] ciphers}): TLS 1.0
and 1.1 are refused, and so are the weak cipher suites (RC4, DES, 3DES,
NULL, EXPORT, anonymous, MD5, static RSA key exchange).  TLS 1.3's own
suites are all strong and OpenSSL sets them apart from the cipher
string.

Outbound connections (SMPP client binds, HTTP callbacks) verify the
server's certificate and name by L{client_options}: against a pinned CA
file when one is given, else the system's trust store.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

__all__ = ["TLSPolicy", "DEFAULT_CIPHERS", "MIN_VERSIONS", "server_options",
           "client_options", "check_ciphers", "check_ca_file",
           "VerifyingPolicy"]

#: Forward-secret AEAD suites only (TLS 1.2), then an explicit exclusion
#: list, so a permissive OpenSSL build cannot bring weak ones back.
DEFAULT_CIPHERS = ("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:"
                   "!aNULL:!eNULL:!MD5:!RC4:!DES:!3DES:!EXPORT:!PSK:!SRP")

#: The C{[tls] min_version} values accepted.
MIN_VERSIONS = ("1.2", "1.3")


@dataclass(frozen=True)
class TLSPolicy:
    """
    C{[tls]}: what the node's TLS listeners accept.

    @ivar min_version: the lowest protocol version, C{"1.2"} or C{"1.3"}.
    @ivar ciphers: the OpenSSL cipher string for TLS 1.2 suites.
    """
    min_version: str = "1.2"
    ciphers: str = DEFAULT_CIPHERS


def _tls_version(text: str) -> Any:
    from twisted.internet.ssl import TLSVersion
    return {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}[text]


def check_ciphers(ciphers: str) -> str | None:
    """
    @return: why C{ciphers} is no usable cipher string (OpenSSL knows none
        of it, or it admits a weak suite), or C{None}.
    """
    from OpenSSL import SSL
    ctx = SSL.Context(SSL.TLS_METHOD)
    try:
        ctx.set_cipher_list(ciphers.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        return "OpenSSL knows no cipher of it"
    names = SSL.Connection(ctx, None).get_cipher_list()
    weak = [n for n in names if _weak(n)]
    if weak:
        return "admits weak ciphers: " + ", ".join(weak[:5])
    return None


def _weak(name: str) -> bool:
    """Whether an OpenSSL TLS 1.2 suite name is one we refuse."""
    upper = name.upper()
    if upper.startswith("TLS_"):  # TLS 1.3 suites: all AEAD
        return False
    bad = ("RC4", "DES", "NULL", "EXP", "MD5", "ADH", "AECDH", "PSK", "SRP",
           "ANON")
    if any(b in upper for b in bad):
        return True
    # static RSA key exchange (no forward secrecy): AES128-GCM-SHA256 etc.
    return not (upper.startswith("ECDHE-") or upper.startswith("DHE-"))


def server_options(options: dict[str, str], policy: TLSPolicy) -> Any:
    """
    The context factory of a TLS listener.

    @param options: the listener's C{privateKey}, C{certKey} (default: the
        key file), C{extraCertChain}, C{dhParameters} (file paths).
    @param policy: the node's L{TLSPolicy}.
    @raise ValueError: a file is missing or holds no key or certificate.
    """
    from OpenSSL import crypto
    from twisted.internet import ssl
    key_path = Path(options["privateKey"])
    cert_path = Path(options.get("certKey", key_path))
    try:
        key = ssl.KeyPair.load(key_path.read_bytes(), crypto.FILETYPE_PEM)
        cert = ssl.Certificate.loadPEM(cert_path.read_bytes())
        chain = []
        if options.get("extraCertChain"):
            text = Path(options["extraCertChain"]).read_bytes()
            marker = b"-----END CERTIFICATE-----"
            for block in text.split(marker)[:-1]:
                chain.append(crypto.load_certificate(crypto.FILETYPE_PEM,
                                                     block + marker))
        dh = None
        if options.get("dhParameters"):
            from twisted.python.filepath import FilePath
            dh = ssl.DiffieHellmanParameters.fromFile(
                FilePath(options["dhParameters"]))
    except (OSError, crypto.Error) as e:
        # A file that cannot be read, or OpenSSL refusing its content.
        raise ValueError(f"TLS key {key_path} / certificate {cert_path}: "
                         f"{e}") from e
    return ssl.CertificateOptions(
        privateKey=key.original, certificate=cert.original,
        extraCertChain=chain or None, dhParameters=dh,
        raiseMinimumTo=_tls_version(policy.min_version),
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(
            policy.ciphers))


def client_options(host: str, ca_file: Path | str | None = None) -> Any:
    """
    TLS options of an outbound connection that verify the far side: its
    certificate chains to C{ca_file} (PEM, pinned for this connection)
    or, without one, to the system's trust store, and names C{host}.
    TLS below 1.2 is refused here too.

    @raise OSError: the CA file cannot be read.
    """
    from twisted.internet import ssl
    trust = (ssl.Certificate.loadPEM(Path(ca_file).read_bytes())
             if ca_file is not None else ssl.platformTrust())
    return ssl.optionsForClientTLS(
        host, trustRoot=trust, extraCertificateOptions={
            "raiseMinimumTo": ssl.TLSVersion.TLSv1_2})


def check_ca_file(path: str) -> str | None:
    """
    @return: why C{path} is no usable CA file to pin a connection to (not
        absolute, missing, no PEM certificate in it), or C{None}.
    """
    p = Path(path)
    if not p.is_absolute():
        return f"{path}: give an absolute path"
    try:
        data = p.read_bytes()
    except OSError as e:
        return f"{path}: {e.strerror or e}"
    from OpenSSL import crypto
    from twisted.internet import ssl
    try:
        ssl.Certificate.loadPEM(data)
    except crypto.Error:
        return f"{path}: no PEM certificate in it"
    return None


@implementer(IPolicyForHTTPS)
class VerifyingPolicy:
    """
    The HTTPS policy of the node's HTTP client (callbacks): the server's
    certificate and name are verified (L{client_options}), against a
    pinned CA file or the system's trust store.
    """

    def __init__(self, ca_file: Path | str | None = None) -> None:
        """@param ca_file: the pinned CA (PEM), or C{None}."""
        self.ca_file = ca_file

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """@return: the TLS options for C{hostname}."""
        return client_options(hostname.decode("idna"), self.ca_file)

