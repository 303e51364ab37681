"""
Several nodes on one database: the real node (C{twistd -n appliance}) on
RelStorage in a throwaway PostgreSQL cluster (tests/e2e/postgres.py),
driven over the real OpenSSH client.
"""
import signal
import time
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from tests.e2e.harness import start_node, wait_for
from tests.e2e.postgres import Cluster, pg_bin
from tests.e2e.test_shell_ssh import keygen, ssh

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(pg_bin("initdb") is None,
                       reason="Debian's postgresql is not installed "
                              "(make debs)"),
]

INVSYSID = smpplib.consts.SMPP_ESME_RINVSYSID
DEMO = Path(__file__).resolve().parents[2] / "shell" / "demo.cli"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster().start()
    yield c
    c.stop()


@pytest.fixture
def admin(tmp_path):
    key = tmp_path / "admin"
    (tmp_path / "admin_keys").write_text(keygen(key) + "\n")
    return key


def pg_node(tmp_path, admin, name, uri, **sections):
    return start_node(tmp_path, name=name, storage={"uri": uri},
                      node={"provision": str(DEMO)}, **sections,
                      shell={"enabled": True,
                             "admin_keys": str(tmp_path / "admin_keys")})


def show_carriers(tmp_path, node, admin):
    rc, out, err = ssh(tmp_path, node, "admin", admin, "show carriers")
    assert rc == 0, (out, err)
    return out


def test_node_starts_on_postgresql(tmp_path, cluster, admin):
    """A node on postgresql://user:encoded-password@127.0.0.1:port/db
    starts (the URI reaches RelStorage as a keyword DSN), its generations
    run, and the demo provisioning is in the database: 'show carriers'
    lists the demo's Carrier1; a restart keeps it and provisions nothing
    twice."""
    cluster.create_database("single")
    node = pg_node(tmp_path, admin, "one", cluster.uri("single"))
    try:
        assert "Carrier1" in show_carriers(tmp_path, node, admin)
    finally:
        assert node.stop() in (0, -signal.SIGTERM)
    assert "database closed" in node.log()
    assert "Traceback" not in node.log()
    again = pg_node(tmp_path, admin, "one", cluster.uri("single"))
    try:
        out = show_carriers(tmp_path, again, admin)
        assert out.count("Carrier1") == 1
    finally:
        again.stop()


def smpp_bind(node, sid, pw):
    """@return: the bind_transceiver status on C{node}'s SMPP listener."""
    c = smpplib.client.Client("127.0.0.1", node.port("smpp"), timeout=10,
                              allow_unknown_opt_params=True)
    c.connect()
    try:
        c.bind_transceiver(system_id=sid, password=pw)
    except smpplib.exceptions.PDUError as e:
        return e.args[1]
    finally:
        c.disconnect()
    return 0


#: The test polls B with binds that fail until the carrier reaches it:
#: each counts against the per-source lock-out (tested on its own in
#: test_smpp_bind_flood.py), so the lock-out is set beyond what the poll
#: can reach here.
SMPP = {"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1",
        "bind_failures": 1000}


def test_two_nodes_share_configuration(tmp_path, cluster, admin):
    """Two nodes on one database (A over TCP with a password, B over the
    Unix socket): a carrier created on A over the shell shows in B's
    'show carriers', and B's SMPP listener (whose credentials are a
    snapshot rebuilt by the change listeners, fed on a shared database
    by the 0.5 s poll) accepts its bind within a second or so of A's
    command returning; a carrier deleted on B disappears on A."""
    cluster.create_database("shared")
    a = pg_node(tmp_path, admin, "a", cluster.uri("shared"), smpp=SMPP)
    b = pg_node(tmp_path, admin, "b", cluster.socket_uri("shared"),
                smpp=SMPP)
    try:
        assert "Carrier1" in show_carriers(tmp_path, b, admin)
        assert "NEWCARRIER" not in show_carriers(tmp_path, b, admin)
        assert smpp_bind(b, "newsys", "newpass1") == INVSYSID
        rc, out, err = ssh(tmp_path, a, "admin", admin,
                           stdin="configure terminal\n carrier NEWCARRIER\n"
                                 "  system-id newsys\n  password newpass1\n"
                                 "  allow-ip 127.0.0.0/8\n exit\nend\n")
        assert rc == 0, (out, err)
        done = time.monotonic()
        wait_for(lambda: smpp_bind(b, "newsys", "newpass1") == 0, 10,
                 what="B accepting the bind of a carrier made on A")
        seen = time.monotonic() - done
        print(f"carrier made on A bound on B {seen:.2f} s after A's command")
        assert "NEWCARRIER" in show_carriers(tmp_path, b, admin)
        rc, out, err = ssh(tmp_path, b, "admin", admin,
                           stdin="configure terminal\n no carrier NEWCARRIER"
                                 "\nend\n")
        assert rc == 0, (out, err)
        wait_for(lambda: "NEWCARRIER" not in show_carriers(tmp_path, a, admin),
                 10, what="carrier deleted on B gone from A's show")
    finally:
        a.stop()
        b.stop()
