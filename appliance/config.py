# -*- test-case-name: tests.test_config -*-
"""
The node configuration file: what belongs to the box, not to operators.

Pure: parse TOML text, validate every key, collect every error at once and
return an immutable L{NodeConfig}.  Only L{load} touches the file system, and
only to read the file and to check that the paths it names are usable.

Relative paths in the file are resolved against the directory that holds
the file, so C{etc/appliance.conf} in a checkout says C{data_dir = "../var"}
and C{/etc/appliance/appliance.conf} on the box says
C{data_dir = "/var/lib/appliance"}.  Operational data (accounts, carriers,
tariffs...) never lives here: it is in the database, changed by the shell.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from appliance.tls import (DEFAULT_CIPHERS, MIN_VERSIONS, TLSPolicy,
                           check_ciphers)

LOG_LEVELS = ("error", "warning", "info", "debug")

#: Listener kinds each service section accepts, by endpoint prefix.
LISTENER_KINDS: dict[str, tuple[str, ...]] = {
    "smpp": ("tcp", "ssl"),
    "sip": ("udp", "tcp", "ssl"),
    "m3ua": ("tcp",),
    "shell": ("tcp",),
    "http": ("tcp", "ssl"),
}

#: Default listeners, on loopback: an operator opens them up explicitly.
DEFAULT_LISTEN: dict[str, tuple[str, ...]] = {
    "smpp": ("tcp:port=2775:interface=127.0.0.1",),
    "sip": ("udp:port=5060:interface=127.0.0.1",
            "tcp:port=5060:interface=127.0.0.1"),
    "m3ua": ("tcp:port=2905:interface=127.0.0.1",),
    "shell": ("tcp:port=2022:interface=127.0.0.1",),
    "http": ("tcp:port=8080:interface=127.0.0.1",),
}

#: Services that run unless their section says C{enabled = false}: an
#: appliance without its configuration shell cannot be operated.
DEFAULT_ENABLED = frozenset({"shell"})

#: Services whose implementation is in this build.  Enabling another one
#: is refused at start-up rather than silently ignored.
BUILT_SERVICES = frozenset({"shell", "sip", "smpp", "m3ua", "http"})


class ConfigError(Exception):
    """
    The configuration is unusable.

    @ivar errors: every problem found, each C{"[section] key: reason"}.
    """

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


def port_key(section: str, kind: str) -> str:
    """
    The C{ports.json} key of a listener.

    SIP always names the transport (C{sip_udp}, C{sip_tcp}, C{sip_tls});
    other sections use their own name for plain TCP and C{<section>_tls}
    for TLS.

    @param section: the config section, e.g. C{"smpp"}.
    @param kind: the endpoint prefix, C{"tcp"}, C{"ssl"} or C{"udp"}.
    """
    label = "tls" if kind == "ssl" else kind
    if section == "sip":
        return f"sip_{label}"
    return section if kind == "tcp" else f"{section}_{label}"


@dataclass(frozen=True)
class Listener:
    """
    One parsed listener: a Twisted server endpoint string (or C{udp:...},
    which Twisted's endpoint parser does not know, in the same form).

    @ivar kind: C{tcp}, C{ssl} or C{udp}.
    @ivar description: the endpoint string as written.
    @ivar port: the configured port (0: any free port).
    @ivar interface: the address to bind, C{""} for all.
    @ivar options: the remaining C{key=value} pairs.
    """
    kind: str
    description: str
    port: int
    interface: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodeSection:
    """C{[node]}: identity, where state lives, how much to log."""
    name: str = "appliance"
    data_dir: Path = Path("var")
    log_level: str = "info"
    provision: Path | None = None


@dataclass(frozen=True)
class StorageSection:
    """
    C{[storage]}: the database and its commit policy.

    @ivar uri: C{file:///abs/Data.fs}, a path (relative to data_dir),
        C{zeo://host:port}, C{postgresql://...} or C{memory:}.
    @ivar batch_max: at most this many queued writes share one commit.
    @ivar batch_delay: seconds a queued write may wait for companions.
    @ivar pack_interval: seconds between packs (0: never).
    @ivar pack_days: history kept by a pack, in days.
    @ivar cache_size: objects each database connection keeps in memory.
    @ivar lease: on a database several nodes share (ZEO, PostgreSQL):
        seconds a node's hold on its queued messages lasts without a
        heartbeat, so another node takes them over that long after it
        dies (L{appliance.cluster}).
    @ivar heartbeat: seconds between a node's heartbeats on a shared
        database (less than half the lease).
    """
    uri: str = "Data.fs"
    batch_max: int = 2000
    batch_delay: float = 0.002
    pack_interval: float = 86400.0
    pack_days: float = 0.0
    cache_size: int = 200_000
    lease: float = 10.0
    heartbeat: float = 1.0


@dataclass(frozen=True)
class OverloadSection:
    """
    C{[overload]}: when the node refuses new work at the door
    (L{appliance.admission}) and how many deliveries one destination may
    hold (L{appliance.messaging.lanes}).

    @ivar max_delay: seconds of the storage's commits the writes waiting
        for a commit may hold before new work is refused.
    @ivar min_pending: writes always allowed to wait (a quiet node has no
        commit rate yet).
    @ivar max_pending: writes allowed to wait, at most.
    @ivar max_lag: seconds the reactor may run late, with the process
        busy, before new work is refused.
    @ivar destination_in_flight: deliveries under way at once per
        destination (an app's account, a service policy's route).
    @ivar destination_waiting: messages waiting in memory for one
        destination's lane; beyond, a message is scheduled for a later
        attempt (it is on disk).
    @ivar total_waiting: messages waiting in all lanes together.
    """
    max_delay: float = 1.0
    min_pending: int = 2000
    max_pending: int = 20000
    max_lag: float = 0.5
    destination_in_flight: int = 100
    destination_waiting: int = 10_000
    total_waiting: int = 100_000


@dataclass(frozen=True)
class ServiceSection:
    """
    A protocol service's section: whether it runs and where it listens,
    plus the section's own settings in C{options}.
    """
    name: str
    enabled: bool = False
    listen: tuple[Listener, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        """
        @return: the value of a section-specific setting, or C{default}.
        """
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class ShellSection(ServiceSection):
    """
    C{[shell]}: the SSH configuration shell.

    @ivar admin_keys: authorized_keys-format file whose keys log in as
        operator C{admin} (role admin); C{None} for none.
    @ivar host_key: the Ed25519 host key, generated on first start.
    @ivar audit_log: where accepted configuration commands are recorded.
    @ivar manhole: whether the debug Python REPL runs (admin keys only).
    @ivar manhole_listen: where the manhole listens.
    """
    enabled: bool = True
    admin_keys: Path | None = None
    host_key: Path = Path("ssh_host_ed25519_key")
    audit_log: Path = Path("audit.log")
    manhole: bool = False
    manhole_listen: tuple[Listener, ...] = ()


@dataclass(frozen=True)
class SIPSection(ServiceSection):
    """
    C{[sip]}: the registrar and messaging endpoint for apps.

    TLS listeners are C{ssl:port=5061:privateKey=key.pem:certKey=cert.pem}
    (the certificate and key come from the listener string).

    @ivar domain: the SIP domain of accounts (requests to the node's own
        addresses count as this domain too); default: the node name.
    @ivar realm: the digest realm; default: the domain.  Account password
        hashes are made for it: changing it means setting passwords again.
    @ivar digest_algorithms: offered in this order (C{MD5}, C{SHA-256});
        MD5 first by default, as many deployed apps read only the first.
    @ivar nonce_lifetime: seconds a digest nonce is valid.
    @ivar min_expires: shortest registration accepted (shorter: 423).
    @ivar max_expires: longest registration granted (longer is cut).
    @ivar default_expires: granted when the REGISTER asks for none.
    @ivar retry_schedule: seconds between delivery attempts to an app;
        the last value repeats until the message's validity ends.
    @ivar validity: seconds a message waits for delivery by default.
    @ivar max_message_bytes: the largest MESSAGE body accepted (413).
    @ivar auth_failures: failed authentications allowed per source
        address per minute before requests from it get 403 at once.
    @ivar nat: where requests to an app registered over UDP go: C{auto}
        (over the REGISTER's flow for outbound or when NAT is detected,
        else to the Contact), C{contact} or C{flow}.
    @ivar max_requests_per_second: new requests taken per second; beyond
        it they get 503 (0: no budget).
    @ivar overload_queue_ms: how long a datagram may have waited in the
        kernel's receive queue before a new request in it gets 503 (0: not
        measured).
    @ivar overload_lag_ms: reactor lag beyond which new requests get 503
        (0: not measured).
    @ivar overload_backlog: writes waiting for the commit beyond which new
        requests get 503 (0: not looked at).
    @ivar retry_after: the Retry-After of those 503s, seconds.
    @ivar udp_receive_buffer: bytes of kernel receive buffer asked for on
        the UDP sockets.
    @ivar workers: worker processes that read the UDP sockets, answer
        the digest challenges themselves and forward every other datagram
        to this process (0: this process alone).
    """
    domain: str = "appliance"
    realm: str = "appliance"
    digest_algorithms: tuple[str, ...] = ("MD5", "SHA-256")
    nonce_lifetime: int = 300
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    retry_schedule: tuple[int, ...] = (30, 120, 600, 3600)
    validity: int = 86400
    max_message_bytes: int = 4096
    auth_failures: int = 10
    nat: str = "auto"
    max_requests_per_second: int = 0
    overload_queue_ms: int = 1000
    overload_lag_ms: int = 1000
    overload_backlog: int = 20000
    retry_after: int = 5
    udp_receive_buffer: int = 4 * 1024 * 1024
    workers: int = 0


@dataclass(frozen=True)
class SMPPSection(ServiceSection):
    """
    C{[smpp]}: the SMSC side for carriers (SMPP 3.4).  A TLS listener is
    C{ssl:port=3550:privateKey=key.pem:certKey=cert.pem} (key C{smpp_tls}).

    @ivar bind_timeout: seconds a connection may stay unbound.
    @ivar idle_timeout: seconds without any PDU before the session is
        closed (enquire_link counts).
    @ivar enquire_link_interval: seconds of silence before we send an
        enquire_link ourselves.
    @ivar response_timeout: seconds we wait for a response to our request
        (deliver_sm) before counting it failed.
    @ivar window: requests a bind may have outstanding; beyond it
        submit_sm gets ESME_RTHROTTLED.
    @ivar queue_limit: messages waiting in the node beyond which new
        submits get ESME_RMSGQFUL.
    @ivar reassembly_timeout: seconds to wait for all parts of a
        concatenated message.
    @ivar reassembly_policy: C{deliver_partial} or C{fail} when parts
        never all arrive.
    @ivar client_ca: PEM file of the CAs that outbound TLS connections
        trust (default: the system's trust store).
    @ivar bind_failures: failed binds from one address within
        C{bind_lockout} seconds that lock the address out.
    @ivar bind_lockout: seconds (see C{bind_failures}).
    """
    bind_timeout: int = 30
    idle_timeout: int = 300
    enquire_link_interval: int = 30
    response_timeout: int = 30
    window: int = 100
    queue_limit: int = 100000
    reassembly_timeout: int = 300
    reassembly_policy: str = "deliver_partial"
    client_ca: Path | None = None
    bind_failures: int = 5
    bind_lockout: int = 60


@dataclass(frozen=True)
class HTTPSection(ServiceSection):
    """
    C{[http]}: the tenants' HTTP API and the operations endpoints.  A TLS
    listener is C{ssl:port=8443:privateKey=key.pem:certKey=cert.pem}
    (key C{http_tls}).

    @ivar idle_timeout: seconds a keep-alive connection may stay idle.
    @ivar max_request_bytes: the largest request body (413 beyond).
    @ivar max_headers: headers per request (400 beyond).
    @ivar max_header_bytes: request line and headers together.
    @ivar max_in_flight: send requests served at once by the node (503).
    @ivar tenant_in_flight: send requests served at once per tenant (429).
    @ivar auth_failures: failed authentications per source address per
        minute before its requests get 429 at once.
    @ivar max_parts: SMS parts a message may have (413 beyond).
    @ivar max_validity: the longest validity a request may ask, seconds.
    @ivar queue_limit: waiting messages beyond which sends get 503.
    @ivar ops_allow: networks that may read /metrics and /healthz.
    @ivar default_sender: sender of Jasmin-style requests without one.
    @ivar workers: worker processes that accept and parse the requests
        and forward them to this process (0: this process alone).
    """
    idle_timeout: int = 60
    max_request_bytes: int = 65536
    max_headers: int = 100
    max_header_bytes: int = 16384
    max_in_flight: int = 5000
    tenant_in_flight: int = 1000
    auth_failures: int = 10
    max_parts: int = 10
    max_validity: int = 7 * 86400
    queue_limit: int = 1_000_000
    ops_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    default_sender: str = "Info"
    workers: int = 0


@dataclass(frozen=True)
class NodeConfig:
    """The whole node configuration, validated."""
    source: Path | None
    node: NodeSection = field(default_factory=NodeSection)
    storage: StorageSection = field(default_factory=StorageSection)
    services: tuple[ServiceSection, ...] = ()
    tls: TLSPolicy = field(default_factory=TLSPolicy)
    overload: OverloadSection = field(default_factory=OverloadSection)

    def service(self, name: str) -> ServiceSection:
        """
        @return: the section of the service called C{name}.
        @raise KeyError: no such service.
        """
        for section in self.services:
            if section.name == name:
                return section
        raise KeyError(name)

    @property
    def shell(self) -> ShellSection:
        """The C{[shell]} section."""
        return self.service("shell")  # type: ignore[return-value]

    @property
    def smpp(self) -> SMPPSection:
        """The C{[smpp]} section."""
        return self.service("smpp")  # type: ignore[return-value]

    @property
    def sip(self) -> SIPSection:
        """The C{[sip]} section (its realm is used even when SIP is off)."""
        return self.service("sip")  # type: ignore[return-value]

    def enabled(self) -> list[ServiceSection]:
        """
        @return: the enabled service sections, in start order.
        """
        return [s for s in self.services if s.enabled]

    @property
    def ports_file(self) -> Path:
        """C{<data_dir>/ports.json}."""
        return self.node.data_dir / "ports.json"


class _Collector:
    """Collects errors while sections are read, so all are reported at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, section: str, key: str, reason: str) -> None:
        self.errors.append(f"[{section}] {key}: {reason}")


def _typed(c: _Collector, section: str, table: dict, key: str,
           kind: type | tuple, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and kind is not bool:
        c.error(section, key, f"expected {_kind_name(kind)}, got a boolean")
        return default
    if not isinstance(value, kind):
        c.error(section, key,
                f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return default
    return value


def _kind_name(kind: type | tuple) -> str:
    names = {str: "a string", bool: "true or false", int: "an integer",
             float: "a number", list: "a list"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def parse_listener(description: str, allowed: tuple[str, ...]) -> Listener:
    """
    Parse one endpoint string of a listener.

    @param description: e.g. C{tcp:port=2775:interface=127.0.0.1},
        C{ssl:port=3550:privateKey=key.pem:certKey=cert.pem} or
        C{udp:port=5060:interface=::1}.
    @param allowed: the endpoint kinds the section accepts.
    @raise ValueError: with the reason.
    """
    kind, sep, rest = description.partition(":")
    if not sep or kind not in allowed:
        raise ValueError(f"{description!r}: expected one of "
                         + ", ".join(f"{k}:..." for k in allowed))
    options: dict[str, str] = {}
    positional: list[str] = []
    # Twisted endpoint syntax: colons separate fields, backslash escapes
    # (IPv6 interfaces are written interface=\:\:1).
    fields, current, escaped = [], "", False
    for ch in rest:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append(current)
            current = ""
        else:
            current += ch
    fields.append(current)
    for item in fields:
        if "=" in item:
            k, _, v = item.partition("=")
            options[k] = v
        elif item:
            positional.append(item)
    if positional:
        options.setdefault("port", positional[0])
    if "port" not in options:
        raise ValueError(f"{description!r}: no port")
    try:
        port = int(options.pop("port"))
    except ValueError:
        raise ValueError(f"{description!r}: port is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{description!r}: port out of range 0-65535")
    interface = options.pop("interface", "")
    if interface:
        import ipaddress
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            raise ValueError(
                f"{description!r}: interface {interface!r} is not an IP "
                "address") from None
    if kind == "ssl":
        for needed in ("privateKey",):
            if needed not in options:
                raise ValueError(f"{description!r}: TLS needs {needed}=")
    return Listener(kind, description, port, interface,
                    tuple(sorted(options.items())))


def _listeners(c: _Collector, section: str, table: dict, key: str,
               default: tuple[str, ...], base: Path) -> tuple[Listener, ...]:
    raw = table.get(key, list(default))
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        c.error(section, key, "expected an endpoint string or a list of them")
        return ()
    out = []
    for description in raw:
        try:
            listener = parse_listener(description, LISTENER_KINDS[section])
        except ValueError as e:
            c.error(section, key, str(e))
            continue
        if listener.kind == "ssl":
            opts = dict(listener.options)
            for k in ("privateKey", "certKey"):
                if k in opts:
                    path = _resolve(base, opts[k])
                    if not path.is_file():
                        c.error(section, key, f"{k} file {path} not found")
                    opts[k] = str(path)
            listener = Listener(listener.kind, _rebuild(listener.kind,
                                listener.port, listener.interface, opts),
                                listener.port, listener.interface,
                                tuple(sorted(opts.items())))
        out.append(listener)
    return tuple(out)


def _rebuild(kind: str, port: int, interface: str, opts: dict) -> str:
    parts = [kind, f"port={port}"]
    if interface:
        parts.append("interface=" + interface.replace(":", "\\:"))
    parts.extend(f"{k}={v.replace(':', chr(92) + ':')}"
                 for k, v in sorted(opts.items()))
    return ":".join(parts)


def _resolve(base: Path, value: str | Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (base / path).resolve()


def _unknown(c: _Collector, section: str, table: dict, known: set[str]) -> None:
    for key in table:
        if key not in known:
            c.error(section, key, "unknown key")


def _service(c: _Collector, name: str, table: dict,
             base: Path) -> dict[str, Any]:
    enabled = _typed(c, name, table, "enabled", bool, name in DEFAULT_ENABLED)
    if enabled and name not in BUILT_SERVICES:
        c.error(name, "enabled",
                f"the {name} service is not part of this build yet")
    listen = _listeners(c, name, table, "listen", DEFAULT_LISTEN[name], base)
    return {"name": name, "enabled": enabled, "listen": listen}


#: Section-specific keys for services not yet built (beyond enabled/listen).
_SERVICE_KEYS: dict[str, set[str]] = {
    "m3ua": {"beat_interval"},
}


def parse(text: str, source: Path | None = None,
          base: Path | None = None) -> NodeConfig:
    """
    Parse and validate configuration text.

    @param text: TOML.
    @param source: the file it came from, for messages.
    @param base: the directory relative paths are resolved against
        (default: the file's directory, else the working directory).
    @raise ConfigError: listing every problem.
    """
    if base is None:
        base = source.parent if source is not None else Path.cwd()
    base = base.resolve()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source or 'config'}: not valid TOML: {e}"])
    c = _Collector()
    known = {"node", "storage", "tls", "overload", *LISTENER_KINDS}
    for key, value in data.items():
        if key not in known:
            c.errors.append(f"[{key}]: unknown section")
        elif not isinstance(value, dict):
            c.errors.append(f"{key}: expected a [{key}] section")
            data[key] = {}

    t = data.get("node", {})
    _unknown(c, "node", t, {"name", "data_dir", "log_level", "provision"})
    name = _typed(c, "node", t, "name", str, "appliance")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        c.error("node", "name", "letters, digits, '-' and '_' only")
    data_dir = _resolve(base, _typed(c, "node", t, "data_dir", str, "var"))
    log_level = _typed(c, "node", t, "log_level", str, "info")
    if log_level not in LOG_LEVELS:
        c.error("node", "log_level", "one of " + ", ".join(LOG_LEVELS))
    provision = t.get("provision")
    provision_path = None
    if provision is not None:
        provision = _typed(c, "node", t, "provision", str, None)
        if provision:
            provision_path = _resolve(base, provision)
            if not provision_path.is_file():
                c.error("node", "provision", f"{provision_path} not found")
    node = NodeSection(name, data_dir, log_level, provision_path)

    t = data.get("storage", {})
    _unknown(c, "storage", t, {"uri", "batch_max", "batch_delay",
                               "pack_interval", "pack_days", "cache_size",
                               "lease", "heartbeat"})
    uri = _typed(c, "storage", t, "uri", str, "Data.fs")
    uri_error = check_storage_uri(uri)
    if uri_error:
        c.error("storage", "uri", uri_error)
    batch_max = _typed(c, "storage", t, "batch_max", int, 2000)
    if not 1 <= batch_max <= 100_000:
        c.error("storage", "batch_max", "between 1 and 100000")
    batch_delay = _typed(c, "storage", t, "batch_delay", float, 0.002)
    if not 0 <= batch_delay <= 1:
        c.error("storage", "batch_delay", "between 0 and 1 second")
    pack_interval = _typed(c, "storage", t, "pack_interval", float, 86400.0)
    if pack_interval < 0:
        c.error("storage", "pack_interval", "0 (never) or more seconds")
    pack_days = _typed(c, "storage", t, "pack_days", float, 0.0)
    if pack_days < 0:
        c.error("storage", "pack_days", "0 or more days")
    cache_size = _typed(c, "storage", t, "cache_size", int, 200_000)
    if not 1000 <= cache_size <= 100_000_000:
        c.error("storage", "cache_size", "between 1000 and 100000000")
    lease = _typed(c, "storage", t, "lease", float, 10.0)
    heartbeat = _typed(c, "storage", t, "heartbeat", float, 1.0)
    if not 0.05 <= heartbeat <= 60:
        c.error("storage", "heartbeat", "between 0.05 and 60 seconds")
    elif not 2 * heartbeat < lease <= 3600:
        c.error("storage", "lease", "more than two heartbeats, at most "
                "3600 seconds")
    storage = StorageSection(uri, batch_max, batch_delay, pack_interval,
                             pack_days, cache_size, lease=lease,
                             heartbeat=heartbeat)

    services: list[ServiceSection] = []
    for sname in ("shell", "smpp", "sip", "m3ua", "http"):
        t = data.get(sname, {})
        if sname == "shell":
            _unknown(c, sname, t, {"enabled", "listen", "admin_keys",
                                   "host_key", "audit_log", "manhole",
                                   "manhole_listen"})
            common = _service(c, sname, t, base)
            admin_keys = None
            if t.get("admin_keys"):
                raw = _typed(c, sname, t, "admin_keys", str, "")
                admin_keys = _resolve(base, raw) if raw else None
                if admin_keys is not None and common["enabled"] \
                        and not admin_keys.is_file():
                    c.error(sname, "admin_keys", f"{admin_keys} not found")
            host_key = _resolve(data_dir, _typed(
                c, sname, t, "host_key", str, "ssh_host_ed25519_key"))
            audit_log = _resolve(data_dir, _typed(
                c, sname, t, "audit_log", str, "audit.log"))
            manhole = _typed(c, sname, t, "manhole", bool, False)
            manhole_listen = _listeners(
                c, sname, t, "manhole_listen",
                ("tcp:port=2023:interface=127.0.0.1",), base)
            for lst in manhole_listen:
                if manhole and lst.interface not in ("127.0.0.1", "::1"):
                    c.error(sname, "manhole_listen", "loopback only")
            services.append(ShellSection(
                **common, admin_keys=admin_keys, host_key=host_key,
                audit_log=audit_log, manhole=manhole,
                manhole_listen=manhole_listen))
        elif sname == "sip":
            services.append(_sip_section(c, t, base, name))
        elif sname == "smpp":
            services.append(_smpp_section(c, t, base))
        elif sname == "http":
            services.append(_http_section(c, t, base))
        else:
            _unknown(c, sname, t, {"enabled", "listen"} | _SERVICE_KEYS[sname])
            common = _service(c, sname, t, base)
            extra = tuple((k, v) for k, v in t.items()
                          if k in _SERVICE_KEYS[sname])
            services.append(ServiceSection(**common, options=extra))

    _check_duplicate_listeners(c, services)
    tls = _tls_section(c, data.get("tls", {}))
    overload = _overload_section(c, data.get("overload", {}))
    if c.errors:
        raise ConfigError(c.errors)
    return NodeConfig(source, node, storage, tuple(services), tls,
                      overload=overload)


def _overload_section(c: _Collector, t: dict) -> OverloadSection:
    """Read and check C{[overload]}."""
    limits: dict[str, tuple[type, Any, Any, Any]] = {
        "max_delay": (float, 1.0, 0.01, 60.0),
        "min_pending": (int, 2000, 1, 10_000_000),
        "max_pending": (int, 20000, 1, 100_000_000),
        "max_lag": (float, 0.5, 0.01, 60.0),
        "destination_in_flight": (int, 100, 1, 100_000),
        "destination_waiting": (int, 10_000, 0, 10_000_000),
        "total_waiting": (int, 100_000, 0, 100_000_000)}
    _unknown(c, "overload", t, set(limits))
    values: dict[str, Any] = {}
    for key, (kind, default, low, high) in limits.items():
        value = _typed(c, "overload", t, key, kind, default)
        if not low <= value <= high:
            shown = (f"{low:g} and {high:g}" if kind is float
                     else f"{low} and {high}")
            c.error("overload", key, f"between {shown}")
            value = default
        values[key] = value
    if values["max_pending"] < values["min_pending"]:
        c.error("overload", "max_pending", "at least min_pending")
    return OverloadSection(**values)


def _tls_section(c: _Collector, t: dict) -> TLSPolicy:
    """Read and check C{[tls]} (what every TLS listener accepts)."""
    _unknown(c, "tls", t, {"min_version", "ciphers"})
    version = _typed(c, "tls", t, "min_version", str, "1.2")
    if version not in MIN_VERSIONS:
        c.error("tls", "min_version", " or ".join(MIN_VERSIONS))
    ciphers = _typed(c, "tls", t, "ciphers", str, DEFAULT_CIPHERS)
    problem = check_ciphers(ciphers)
    if problem:
        c.error("tls", "ciphers", problem)
    return TLSPolicy(version, ciphers)


def _smpp_section(c: _Collector, t: dict, base: Path) -> SMPPSection:
    """Read and check C{[smpp]}."""
    ints = {"bind_timeout": (30, 1, 3600), "idle_timeout": (300, 5, 86400),
            "enquire_link_interval": (30, 1, 3600),
            "response_timeout": (30, 1, 3600), "window": (100, 1, 10000),
            "queue_limit": (100000, 1, 100_000_000),
            "reassembly_timeout": (300, 1, 86400),
            "bind_failures": (5, 1, 1000), "bind_lockout": (60, 1, 86400)}
    _unknown(c, "smpp", t, {"enabled", "listen", "reassembly_policy",
                            "client_ca", *ints})
    common = _service(c, "smpp", t, base)
    values: dict[str, Any] = {}
    for key, (default, low, high) in ints.items():
        value = _typed(c, "smpp", t, key, int, default)
        if not low <= value <= high:
            c.error("smpp", key, f"between {low} and {high}")
        values[key] = value
    policy = _typed(c, "smpp", t, "reassembly_policy", str, "deliver_partial")
    if policy not in ("deliver_partial", "fail"):
        c.error("smpp", "reassembly_policy", "deliver_partial or fail")
    client_ca = None
    if t.get("client_ca") is not None:
        raw = _typed(c, "smpp", t, "client_ca", str, "")
        client_ca = _resolve(base, raw) if raw else None
        if client_ca is not None and not client_ca.is_file():
            c.error("smpp", "client_ca", f"{client_ca} not found")
    return SMPPSection(**common, reassembly_policy=policy,
                       client_ca=client_ca, **values)


def _http_section(c: _Collector, t: dict, base: Path) -> HTTPSection:
    """Read and check C{[http]}."""
    ints = {"idle_timeout": (60, 1, 3600),
            "max_request_bytes": (65536, 1024, 16 << 20),
            "max_headers": (100, 10, 1000),
            "max_header_bytes": (16384, 1024, 1 << 20),
            "max_in_flight": (5000, 1, 1_000_000),
            "tenant_in_flight": (1000, 1, 1_000_000),
            "auth_failures": (10, 1, 100000), "max_parts": (10, 1, 255),
            "max_validity": (7 * 86400, 60, 30 * 86400),
            "queue_limit": (1_000_000, 1, 100_000_000),
            "workers": (0, 0, 64)}
    _unknown(c, "http", t, {"enabled", "listen", "ops_allow",
                            "default_sender", *ints})
    common = _service(c, "http", t, base)
    values: dict[str, Any] = {}
    for key, (default, low, high) in ints.items():
        value = _typed(c, "http", t, key, int, default)
        if not low <= value <= high:
            c.error("http", key, f"between {low} and {high}")
        values[key] = value
    ops = _typed(c, "http", t, "ops_allow", list, ["127.0.0.0/8", "::1/128"])
    import ipaddress
    for net in ops:
        try:
            ipaddress.ip_network(str(net), strict=False)
        except ValueError:
            c.error("http", "ops_allow", f"{net!r} is not a network")
    sender = _typed(c, "http", t, "default_sender", str, "Info")
    if not 1 <= len(sender) <= 11:
        c.error("http", "default_sender", "1 to 11 characters")
    return HTTPSection(**common, ops_allow=tuple(str(n) for n in ops),
                       default_sender=sender, **values)


def _sip_section(c: _Collector, t: dict, base: Path,
                 node_name: str) -> SIPSection:
    """Read and check C{[sip]}."""
    ints = {"nonce_lifetime": (300, 10, 86400), "min_expires": (60, 1, 86400),
            "max_expires": (3600, 1, 7 * 86400),
            "default_expires": (3600, 1, 7 * 86400),
            "validity": (86400, 60, 30 * 86400),
            "max_message_bytes": (4096, 140, 1 << 20),
            "auth_failures": (10, 1, 100000),
            "max_requests_per_second": (0, 0, 1000000),
            "overload_queue_ms": (1000, 0, 60000),
            "overload_lag_ms": (1000, 0, 60000),
            "overload_backlog": (20000, 0, 10 ** 8),
            "retry_after": (5, 1, 3600),
            "udp_receive_buffer": (4 * 1024 * 1024, 65536, 1 << 30),
            "workers": (0, 0, 64)}
    _unknown(c, "sip", t, {"enabled", "listen", "domain", "realm",
                           "digest_algorithms", "retry_schedule", "nat", *ints})
    common = _service(c, "sip", t, base)
    values: dict[str, Any] = {}
    for key, (default, low, high) in ints.items():
        value = _typed(c, "sip", t, key, int, default)
        if not low <= value <= high:
            c.error("sip", key, f"between {low} and {high}")
        values[key] = value
    if values["min_expires"] > values["max_expires"]:
        c.error("sip", "min_expires", "larger than max_expires")
    if not values["min_expires"] <= values["default_expires"] \
            <= values["max_expires"]:
        c.error("sip", "default_expires",
                "must lie between min_expires and max_expires")
    domain = _typed(c, "sip", t, "domain", str, node_name)
    if not domain or any(ch in domain for ch in ' "<>;@:/'):
        c.error("sip", "domain", "a host name or address")
    realm = _typed(c, "sip", t, "realm", str, domain)
    if not realm or not realm.isprintable() or '"' in realm:
        c.error("sip", "realm", "printable text without quotes")
    algorithms = _typed(c, "sip", t, "digest_algorithms", list,
                        ["MD5", "SHA-256"])
    if not algorithms or any(a not in ("MD5", "SHA-256") for a in algorithms) \
            or len(set(algorithms)) != len(algorithms):
        c.error("sip", "digest_algorithms",
                'a list of "MD5" and/or "SHA-256", each once')
    schedule = _typed(c, "sip", t, "retry_schedule", list, [30, 120, 600, 3600])
    if not schedule or any(isinstance(x, bool) or not isinstance(x, int)
                           or x < 1 for x in schedule):
        c.error("sip", "retry_schedule", "a list of seconds, each 1 or more")
    nat = _typed(c, "sip", t, "nat", str, "auto")
    if nat not in ("auto", "contact", "flow"):
        c.error("sip", "nat", "auto, contact or flow")
    return SIPSection(**common, domain=domain, realm=realm, nat=nat,
                      digest_algorithms=tuple(algorithms),
                      retry_schedule=tuple(schedule), **values)


def _check_duplicate_listeners(c: _Collector,
                               services: list[ServiceSection]) -> None:
    seen: dict[tuple, str] = {}
    for s in services:
        if not s.enabled:
            continue
        for lst in s.listen:
            if lst.port == 0:
                continue
            proto = "udp" if lst.kind == "udp" else "tcp"
            key = (proto, lst.interface, lst.port)
            if key in seen:
                c.error(s.name, "listen",
                        f"{lst.description!r} clashes with [{seen[key]}]")
            seen[key] = s.name


def check_storage_uri(uri: str) -> str | None:
    """
    @return: why C{uri} is not a usable storage URI, or C{None}.
    """
    if not uri:
        return "empty"
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and (parts.netloc not in ("", "localhost")
                                       or not parts.path.startswith("/")):
            return "file:// URIs take an absolute path (file:///abs/Data.fs)"
        return None
    if parts.scheme == "memory":
        return None
    if parts.scheme == "zeo":
        try:
            port = parts.port
        except ValueError:
            return "zeo://host:port: bad port"
        if not parts.hostname or port is None:
            return "zeo://host:port needs a host and a port"
        return None
    if parts.scheme in ("postgresql", "postgres"):
        return None
    return f"unknown scheme {parts.scheme!r} (file, zeo, postgresql, memory)"


def check_paths(config: NodeConfig) -> list[str]:
    """
    Check that the directories the node writes to are usable, creating
    the data directory if needed.

    @return: the problems found, as C{"[section] key: reason"} strings.
    """
    errors = []
    data_dir = config.node.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        errors.append(f"[node] data_dir: cannot create {data_dir}: "
                      f"{e.strerror}")
        return errors
    if not os.access(data_dir, os.W_OK | os.X_OK):
        errors.append(f"[node] data_dir: {data_dir} is not writable")
    path = storage_path(config)
    if path is not None:
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            errors.append(f"[storage] uri: cannot create {parent}: "
                          f"{e.strerror}")
        else:
            if not os.access(parent, os.W_OK | os.X_OK):
                errors.append(f"[storage] uri: {parent} is not writable")
            elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
                errors.append(f"[storage] uri: {path} is not writable")
    return errors


def storage_path(config: NodeConfig) -> Path | None:
    """
    @return: the FileStorage path the URI names, or C{None} for other
        storages.
    """
    parts = urlsplit(config.storage.uri)
    if parts.scheme == "file":
        return Path(parts.path)
    if parts.scheme == "":
        return _resolve(config.node.data_dir, config.storage.uri)
    return None


def load(path: str | Path,
         reader: Callable[[Path], str] = lambda p: p.read_text("utf-8"),
         ) -> NodeConfig:
    """
    Read, parse and validate the node configuration file, and check the
    paths it names.

    @raise ConfigError: every problem found.
    """
    path = Path(path)
    try:
        text = reader(path)
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    config = parse(text, source=path)
    errors = check_paths(config)
    if errors:
        raise ConfigError(errors)
    return config
