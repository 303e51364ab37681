"""Tests for L{appliance.config}: the node configuration contract."""
from pathlib import Path

import pytest

from appliance.config import (ConfigError, load, parse, parse_listener,
                              port_key, storage_path)


def errors_of(text, tmp_path):
    with pytest.raises(ConfigError) as e:
        parse(text, base=tmp_path)
    return e.value.errors


def test_defaults(tmp_path):
    """
    An empty file gives the documented defaults: the shell on (an
    appliance is operated through it, docs/CONFIGURATION.md), every
    protocol service off; C{enabled = false} turns the shell off.
    """
    c = parse("", base=tmp_path)
    assert c.node.name == "appliance"
    assert c.node.data_dir == (tmp_path / "var").resolve()
    assert c.node.log_level == "info"
    assert c.storage.uri == "Data.fs"
    assert [s.name for s in c.enabled()] == ["shell"]
    assert c.shell.enabled and c.shell.listen[0].port == 2022
    assert parse("[shell]\nenabled = false\n", base=tmp_path).enabled() == []
    assert storage_path(c) == (tmp_path / "var" / "Data.fs").resolve()
    assert c.ports_file == c.node.data_dir / "ports.json"


def test_paths_relative_to_file(tmp_path):
    """Relative paths are resolved against the config file's folder."""
    etc = tmp_path / "etc"
    etc.mkdir()
    f = etc / "appliance.conf"
    f.write_text('[node]\ndata_dir = "../state"\n')
    c = load(f)
    assert c.node.data_dir == (tmp_path / "state").resolve()
    assert c.node.data_dir.is_dir()


def test_unknown_key_and_section_named(tmp_path):
    """Unknown keys and sections are errors that name them."""
    errs = errors_of('[node]\nnmae = "x"\n[smtp]\nenabled = true\n', tmp_path)
    assert "[node] nmae: unknown key" in errs
    assert "[smtp]: unknown section" in errs


def test_all_errors_reported_at_once(tmp_path):
    """Several bad values give one error each, all in one ConfigError."""
    errs = errors_of('[node]\nlog_level = "loud"\n'
                     '[storage]\nbatch_max = 0\nuri = "ftp://x"\n'
                     '[shell]\nenabled = "yes"\n', tmp_path)
    assert any(e.startswith("[node] log_level:") for e in errs)
    assert any(e.startswith("[storage] batch_max:") for e in errs)
    assert any(e.startswith("[storage] uri: unknown scheme") for e in errs)
    assert any(e.startswith("[shell] enabled: expected true or false")
               for e in errs)


def test_bad_toml(tmp_path):
    """Text that is not TOML is one clear error."""
    errs = errors_of("[node\n", tmp_path)
    assert "not valid TOML" in errs[0]


@pytest.mark.parametrize("text,reason", [
    ('listen = "tcp:port=99999"', "port out of range"),
    ('listen = "tcp:interface=127.0.0.1"', "no port"),
    ('listen = "udp:port=2022"', "expected one of tcp:..."),
    ('listen = "tcp:port=22:interface=localhost"', "is not an IP address"),
    ('listen = 22', "expected an endpoint string"),
])
def test_bad_listeners(tmp_path, text, reason):
    """A bad listener is refused with its reason."""
    errs = errors_of(f"[shell]\n{text}\n", tmp_path)
    assert any(e.startswith("[shell] listen:") and reason in e for e in errs), errs


def test_listener_forms():
    """Endpoint strings parse: positional port, IPv6 escapes, port 0."""
    assert parse_listener("tcp:2775", ("tcp",)).port == 2775
    lst = parse_listener(r"udp:port=5060:interface=\:\:1", ("udp",))
    assert (lst.kind, lst.port, lst.interface) == ("udp", 5060, "::1")
    assert parse_listener("tcp:port=0:interface=127.0.0.1", ("tcp",)).port == 0


def test_tls_needs_files(tmp_path):
    """An ssl: listener needs its key and certificate files to exist."""
    errs = errors_of('[smpp]\nlisten = "ssl:port=3550:privateKey=k.pem"\n'
                     'window = 0\n',
                     tmp_path)
    assert any("privateKey file" in e and "not found" in e for e in errs)


def test_unbuilt_service_refused(tmp_path, monkeypatch):
    """Enabling a service not in this build is refused, not ignored."""
    import appliance.config
    monkeypatch.setattr(appliance.config, "BUILT_SERVICES",
                        frozenset({"shell", "sip", "smpp", "m3ua"}))
    errs = errors_of("[http]\nenabled = true\n", tmp_path)
    assert errs == ["[http] enabled: the http service is not part of this "
                    "build yet"]


def test_port_keys():
    """ports.json keys follow the contract of the foundation issue."""
    assert port_key("smpp", "tcp") == "smpp"
    assert port_key("smpp", "ssl") == "smpp_tls"
    assert port_key("sip", "udp") == "sip_udp"
    assert port_key("sip", "tcp") == "sip_tcp"
    assert port_key("sip", "ssl") == "sip_tls"
    assert port_key("shell", "tcp") == "shell"


def test_clashing_listeners(tmp_path):
    """Two enabled services on the same fixed port are refused."""
    (tmp_path / "keys").write_text("")
    errs = errors_of('[shell]\nenabled = true\nlisten = "tcp:port=2022"\n'
                     'manhole = true\n'
                     'manhole_listen = "tcp:port=2023:interface=0.0.0.0"\n',
                     tmp_path)
    assert "[shell] manhole_listen: loopback only" in errs


@pytest.mark.parametrize("uri,ok", [
    ("Data.fs", True), ("file:///tmp/x/Data.fs", True),
    ("file://relative/Data.fs", False), ("zeo://127.0.0.1:8100", True),
    ("zeo://127.0.0.1", False), ("postgresql://u@h/db", True),
    ("memory:", True), ("mysql://x", False),
])
def test_storage_uris(tmp_path, uri, ok):
    """Storage URIs: FileStorage path or file://, zeo://, postgresql://."""
    text = f'[storage]\nuri = "{uri}"\n'
    if ok:
        assert parse(text, base=tmp_path).storage.uri == uri
    else:
        assert errors_of(text, tmp_path)[0].startswith("[storage] uri:")


def test_unusable_data_dir(tmp_path):
    """A data_dir that cannot be created stops start-up with the reason."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    f = tmp_path / "a.conf"
    f.write_text(f'[node]\ndata_dir = "{blocker}/sub"\n')
    with pytest.raises(ConfigError) as e:
        load(f)
    assert e.value.errors[0].startswith("[node] data_dir: cannot create")


def test_missing_file(tmp_path):
    """A missing config file is a ConfigError naming it."""
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "nope.conf")
    assert "cannot read" in str(e.value)


def test_shipped_config_parses(tmp_path):
    """etc/appliance.conf is valid (provisioning and keys aside)."""
    text = (Path(__file__).parents[1] / "etc" / "appliance.conf").read_text()
    text = text.replace('provision = "../shell/demo.cli"', "")
    text = text.replace('admin_keys = "../var/admin_keys"', "")
    c = parse(text, base=tmp_path)
    assert [s.name for s in c.enabled()] == ["shell", "smpp", "sip"]
    assert c.shell.listen[0].port == 2022


def test_sip_defaults_follow_node_name(tmp_path):
    """[sip] domain and realm default to the node name; the documented
    defaults apply; the section's realm is used even with SIP off."""
    c = parse('[node]\nname = "env1"\n', base=tmp_path)
    assert (c.sip.domain, c.sip.realm) == ("env1", "env1")
    assert c.sip.digest_algorithms == ("MD5", "SHA-256")
    assert c.sip.retry_schedule == (30, 120, 600, 3600)
    assert not c.sip.enabled


def test_sip_settings(tmp_path):
    """[sip] settings are read and checked together."""
    c = parse('[sip]\nenabled = true\ndomain = "sip.example.net"\n'
              'digest_algorithms = ["SHA-256", "MD5"]\n'
              'retry_schedule = [1, 2]\nlisten = ["udp:port=0", "tcp:port=0"]\n',
              base=tmp_path)
    assert c.sip.realm == "sip.example.net"
    assert c.sip.digest_algorithms == ("SHA-256", "MD5")
    assert [l.kind for l in c.sip.listen] == ["udp", "tcp"]
    errs = errors_of('[sip]\nmin_expires = 7200\ndigest_algorithms = ["MD4"]\n'
                     'retry_schedule = [0]\ndomain = "a b"\n', tmp_path)
    assert "[sip] min_expires: larger than max_expires" in errs
    assert any(e.startswith("[sip] digest_algorithms:") for e in errs)
    assert any(e.startswith("[sip] retry_schedule:") for e in errs)
    assert any(e.startswith("[sip] domain:") for e in errs)


def test_overload_defaults_and_settings(tmp_path):
    """C{[overload]} defaults to the thresholds the node always had
    (1 s of commits, 2,000 to 20,000 writes waiting, 0.5 s of reactor
    lag, 100 deliveries under way and 10,000 waiting per destination,
    100,000 waiting in all), and each key sets its own value."""
    o = parse("", base=tmp_path).overload
    assert (o.max_delay, o.min_pending, o.max_pending, o.max_lag) == (
        1.0, 2000, 20000, 0.5)
    assert (o.destination_in_flight, o.destination_waiting,
            o.total_waiting) == (100, 10_000, 100_000)
    o = parse("[overload]\nmax_delay = 2\nmin_pending = 500\n"
              "max_pending = 5000\nmax_lag = 0.25\n"
              "destination_in_flight = 10\ndestination_waiting = 0\n"
              "total_waiting = 50\n", base=tmp_path).overload
    assert (o.max_delay, o.min_pending, o.max_pending, o.max_lag) == (
        2.0, 500, 5000, 0.25)
    assert isinstance(o.max_delay, float)
    assert (o.destination_in_flight, o.destination_waiting,
            o.total_waiting) == (10, 0, 50)


def test_overload_errors_all_at_once(tmp_path):
    """Every bad C{[overload]} key is reported in one go, each named with
    its reason: out of range, wrong type, unknown, and a cap below the
    floor."""
    errors = errors_of("[overload]\nmax_delay = 0\nmin_pending = \"many\"\n"
                       "max_pending = 10\nmax_lag = true\n"
                       "destination_in_flight = 0\n"
                       "total_waiting = -1\nlanes = 3\n", tmp_path)
    assert errors == [
        "[overload] lanes: unknown key",
        "[overload] max_delay: between 0.01 and 60",
        "[overload] min_pending: expected an integer, got str",
        "[overload] max_lag: expected a number, got a boolean",
        "[overload] destination_in_flight: between 1 and 100000",
        "[overload] total_waiting: between 0 and 100000000",
        "[overload] max_pending: at least min_pending"]
    assert errors_of("[overload]\nmin_pending = 30000\n", tmp_path) == [
        "[overload] max_pending: at least min_pending"]
    assert errors_of("overload = 3\n", tmp_path) == [
        "overload: expected a [overload] section"]


def test_http_workers(tmp_path):
    """[http] workers: 0 (the default: this process alone) to 64."""
    assert parse("[http]\nenabled = true\n", base=tmp_path).service("http").workers == 0
    assert parse("[http]\nenabled = true\nworkers = 2\n",
                 base=tmp_path).service("http").workers == 2
    errs = errors_of("[http]\nenabled = true\nworkers = 65\n", tmp_path)
    assert errs == ["[http] workers: between 0 and 64"]


def test_sip_workers(tmp_path):
    """[sip] workers: 0 (the default: this process reads the UDP sockets)
    to 64."""
    assert parse("[sip]\nenabled = true\n", base=tmp_path).service("sip").workers == 0
    assert parse("[sip]\nenabled = true\nworkers = 2\n",
                 base=tmp_path).service("sip").workers == 2
    errs = errors_of("[sip]\nenabled = true\nworkers = -1\n", tmp_path)
    assert errs == ["[sip] workers: between 0 and 64"]
