"""
Node-wide operations: C{logging level COMPONENT LEVEL} (applied to the
running node at once), alarm thresholds, the SNMP managers traps go to
(C{snmp-manager NAME} mode), our SNMP engine id, and C{show alarms}.
"""
from __future__ import annotations

from appliance.alarms.model import KEY, THRESHOLDS, AlarmsRoot, SNMPManager
from appliance.logs import COMPONENTS, LEVELS
from appliance.shell.commands.modes import CONFIG, command
from appliance.shell.grammar import ANY, NO_STR, Mode
from appliance.shell.types import ArgumentError

_COMPONENTS = "(" + "|".join(COMPONENTS) + ")"
_LEVELS = "(" + "|".join(LEVELS) + ")"
_THRESHOLDS = "(" + "|".join(THRESHOLDS) + ")"


def alarms_root(app_root, create: bool = False) -> AlarmsRoot | None:
    """@return: C{root["alarms"]} of the connection of C{app_root}."""
    jar = getattr(app_root, "_p_jar", None)
    if jar is None:
        return None
    raw = jar.root()
    obj = raw.get(KEY)
    if obj is None and create:
        from appliance.alarms.generations import evolve1
        evolve1(raw)
        obj = raw[KEY]
    return obj


def _render_levels(root):
    obj = alarms_root(root)
    return list(obj.log_levels) if obj is not None else []


@command(CONFIG, f"logging level {_COMPONENTS} {_LEVELS}",
         help=("Logging", "The least severe level logged, now and after "
               "restarts", "Component (all: every other)",
               "error, warning, info (default) or debug"),
         render=_render_levels)
def logging_level(ctx, component, level):
    obj = alarms_root(ctx.root, create=True)
    rest = tuple(p for p in obj.log_levels if p[0] != component)
    obj.log_levels = tuple(sorted(rest + ((component, level),)))


@command(CONFIG, f"no logging level {_COMPONENTS}",
         help=(NO_STR, "Logging", "The level of a component", "Component"))
def no_logging_level(ctx, component):
    obj = alarms_root(ctx.root, create=True)
    obj.log_levels = tuple(p for p in obj.log_levels if p[0] != component)


def _render_thresholds(root):
    obj = alarms_root(root)
    return list(obj.thresholds) if obj is not None else []


@command(CONFIG, f"alarm threshold {_THRESHOLDS} <0-2000000000>",
         help=("Alarms", "The value above which an alarm is raised",
               "; ".join(f"{n}: {m} (default {d})"
                         for n, (d, m) in THRESHOLDS.items()), "Value"),
         render=_render_thresholds)
def alarm_threshold(ctx, name, value):
    obj = alarms_root(ctx.root, create=True)
    rest = tuple(p for p in obj.thresholds if p[0] != name)
    obj.thresholds = tuple(sorted(rest + ((name, value),)))


@command(CONFIG, f"no alarm threshold {_THRESHOLDS}",
         help=(NO_STR, "Alarms", "A threshold, back to its default",
               "Threshold"))
def no_alarm_threshold(ctx, name):
    obj = alarms_root(ctx.root, create=True)
    obj.thresholds = tuple(p for p in obj.thresholds if p[0] != name)


def _render_interval(root):
    obj = alarms_root(root)
    if obj is None or obj.check_interval == AlarmsRoot.check_interval:
        return []
    return [(obj.check_interval,)]


@command(CONFIG, "alarm check-interval <1-3600>",
         help=("Alarms", "Seconds between checks of the conditions "
               "(5 by default)", "Seconds"),
         render=_render_interval)
def alarm_check_interval(ctx, seconds):
    alarms_root(ctx.root, create=True).check_interval = seconds


@command(CONFIG, "no alarm check-interval",
         help=(NO_STR, "Alarms", "Seconds between checks"))
def no_alarm_check_interval(ctx):
    obj = alarms_root(ctx.root, create=True)
    obj.__dict__.pop("check_interval", None)
    obj._p_changed = True


def _render_engine(root):
    obj = alarms_root(root)
    return [(obj.engine_id,)] if obj is not None and obj.engine_id else []


@command(CONFIG, "snmp engine-id HEX",
         help=("SNMP", "Our SNMPv3 engine id (managers know our traps by "
               "it; v3 keys must be entered again after a change)",
               "5 to 32 octets in hex"),
         render=_render_engine)
def snmp_engine_id(ctx, value):
    if not 10 <= len(value) <= 64 or len(value) % 2:
        raise ArgumentError("expected 5 to 32 octets in hex")
    obj = alarms_root(ctx.root, create=True)
    obj.engine_id = value


def _manager(root, parent, key):
    obj = alarms_root(root)
    return obj.managers.get(key) if obj is not None else None


SNMP_MANAGER = Mode("config-snmp-manager", CONFIG, "snmp-manager", _manager)


def _managers(root, parent):
    obj = alarms_root(root)
    return list(obj.managers.keys()) if obj is not None else []


@command(CONFIG, "snmp-manager NAME",
         help=("A NOC manager that receives the alarm traps",
               "Manager name"),
         enters=SNMP_MANAGER, children=_managers)
def snmp_manager(ctx, name):
    obj = alarms_root(ctx.root, create=True)
    if name not in obj.managers:
        obj.managers[name] = SNMPManager(name)
    ctx.enter(name)


@command(CONFIG, "no snmp-manager NAME",
         help=(NO_STR, "A NOC manager", "Manager name"))
def no_snmp_manager(ctx, name):
    obj = alarms_root(ctx.root, create=True)
    if name not in obj.managers:
        raise ArgumentError(f"no snmp-manager named {name!r}")
    del obj.managers[name]


def _attr(attr):
    def render(m):
        value = getattr(m, attr)
        return [] if value == getattr(SNMPManager, attr) else [(value,)]
    return render


@command(SNMP_MANAGER, "address HOST",
         help=("Where traps go", "IP address or host name"),
         render=_attr("address"))
def manager_address(ctx, host):
    ctx.obj.address = host


@command(SNMP_MANAGER, "port <1-65535>",
         help=("Its UDP port (162 by default)", "Port"),
         render=_attr("port"))
def manager_port(ctx, port):
    ctx.obj.port = port


@command(SNMP_MANAGER, "no port", help=(NO_STR, "Its UDP port"))
def no_manager_port(ctx):
    ctx.obj.__dict__.pop("port", None)
    ctx.obj._p_changed = True


@command(SNMP_MANAGER, "community WORD",
         help=("SNMPv2c community (used without a user)", "Community"),
         render=_attr("community"), secret=True)
def manager_community(ctx, word):
    ctx.obj.community = word


@command(SNMP_MANAGER, "user WORD",
         help=("SNMPv3 user name (traps are v3 once set)", "User name"),
         render=_attr("user"))
def manager_user(ctx, word):
    ctx.obj.user = word


@command(SNMP_MANAGER, "no user",
         help=(NO_STR, "SNMPv3 user (back to v2c)"))
def no_manager_user(ctx):
    m = ctx.obj
    m.user = m.auth_protocol = m.auth_key = m.priv_protocol = m.priv_key = ""


def _engine(ctx) -> bytes:
    return bytes.fromhex(alarms_root(ctx.root).engine_id)


@command(SNMP_MANAGER, "auth (md5|sha) PASSWORD",
         help=("SNMPv3 authentication (kept as the key localized to our "
               "engine id)", "HMAC-MD5-96 or HMAC-SHA-96",
               "Passphrase, at least 8 characters"))
def manager_auth(ctx, protocol, passphrase):
    from appliance.alarms.snmp import localized_key
    if len(passphrase) < 8:
        raise ArgumentError("a passphrase has at least 8 characters")
    m = ctx.obj
    if m.auth_protocol != protocol:
        m.priv_protocol = m.priv_key = ""  # its key used the old hash
    m.auth_protocol = protocol
    m.auth_key = localized_key(protocol, passphrase, _engine(ctx)).hex()


@command(SNMP_MANAGER, "auth-key (md5|sha) HEX",
         help=("SNMPv3 authentication as its localized key (from show "
               "running-config)", "HMAC-MD5-96 or HMAC-SHA-96", "Key"),
         render=lambda m: [(m.auth_protocol, m.auth_key)] if m.auth_key
         else [], secret=True)
def manager_auth_key(ctx, protocol, key):
    if len(key) != (32 if protocol == "md5" else 40):
        raise ArgumentError(f"a localized {protocol} key has "
                            f"{16 if protocol == 'md5' else 20} octets")
    m = ctx.obj
    if m.auth_protocol != protocol:
        m.priv_protocol = m.priv_key = ""
    m.auth_protocol, m.auth_key = protocol, key


@command(SNMP_MANAGER, "no auth",
         help=(NO_STR, "SNMPv3 authentication (and privacy)"))
def no_manager_auth(ctx):
    m = ctx.obj
    m.auth_protocol = m.auth_key = m.priv_protocol = m.priv_key = ""


@command(SNMP_MANAGER, "priv (des|aes) PASSWORD",
         help=("SNMPv3 privacy (needs auth; kept as the localized key)",
               "CBC-DES or CFB128-AES-128", "Passphrase, at least 8 "
               "characters"))
def manager_priv(ctx, protocol, passphrase):
    from appliance.alarms.snmp import localized_key
    m = ctx.obj
    if not m.auth_protocol:
        raise ArgumentError("set auth first: privacy needs authentication")
    if len(passphrase) < 8:
        raise ArgumentError("a passphrase has at least 8 characters")
    m.priv_protocol = protocol
    m.priv_key = localized_key(m.auth_protocol, passphrase,
                               _engine(ctx)).hex()


@command(SNMP_MANAGER, "priv-key (des|aes) HEX",
         help=("SNMPv3 privacy as its localized key (from show "
               "running-config)", "CBC-DES or CFB128-AES-128", "Key"),
         render=lambda m: [(m.priv_protocol, m.priv_key)] if m.priv_key
         else [], secret=True)
def manager_priv_key(ctx, protocol, key):
    if not ctx.obj.auth_protocol:
        raise ArgumentError("set auth first: privacy needs authentication")
    ctx.obj.priv_protocol, ctx.obj.priv_key = protocol, key


@command(SNMP_MANAGER, "no priv", help=(NO_STR, "SNMPv3 privacy"))
def no_manager_priv(ctx):
    ctx.obj.priv_protocol = ctx.obj.priv_key = ""


@command(ANY, "show alarms",
         help=("Show running system information",
               "Active alarms, then the last changes"), action="show")
def show_alarms(ctx):
    from appliance.shell.render import table
    svc = ctx.live.source("alarms")
    if svc is None:
        return "alarms do not run on this node\n"
    headers, rows = svc.shell_table("active")
    out = ["Active alarms"]
    out.append(table(headers, rows) if rows else "none")
    headers, rows = svc.shell_table("history")
    out += ["", "History (newest first)"]
    out.append(table(headers, rows[:50]) if rows else "none")
    return "\n".join(out) + "\n"
