"""
SIP registrations shared by two nodes on one database: the real node
(C{twistd -n appliance}) twice on RelStorage in a throwaway PostgreSQL
cluster (tests/e2e/postgres.py), SIPp registering on one, the other's
shell asked over OpenSSH.
"""
import time

import pytest

from tests.e2e.harness import start_node, wait_for
from tests.e2e.postgres import Cluster, pg_bin
from tests.e2e.sip_tools import (DOMAIN, SIPP, provision_script, run_sipp,
                                 write_users)
from tests.e2e.test_shell_ssh import keygen, ssh

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(pg_bin("initdb") is None,
                       reason="Debian's postgresql is not installed (make debs)"),
    pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)"),
]

ACCOUNTS = {"5101": "pw-5101", "5102": "pw-5102"}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster().start()
    yield c
    c.stop()


def sip_node(tmp_path, name, uri):
    """A node with SIP on loopback UDP, the shell, the accounts provisioned
    (by whichever node starts first: the database is shared)."""
    script = tmp_path / "provision.cli"
    script.write_text(provision_script(ACCOUNTS))
    key = tmp_path / "admin"
    if not key.exists():
        (tmp_path / "admin_keys").write_text(keygen(key) + "\n")
    return start_node(
        tmp_path, name=name, storage={"uri": uri},
        node={"provision": str(script)},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600},
        shell={"enabled": True, "admin_keys": str(tmp_path / "admin_keys")})


def registrations(tmp_path, node):
    """The rows of 'show sip registrations' on C{node}, split on '|' or
    whitespace runs."""
    rc, out, err = ssh(tmp_path, node, "admin", tmp_path / "admin",
                       "show sip registrations")
    assert rc == 0, (out, err)
    return [line for line in out.splitlines() if "5101" in line or "5102" in line]


def test_registration_on_b_seen_on_a_with_node_b(tmp_path, cluster):
    """SIPp registers account 5101 with digest on node B: B answers 200,
    and node A's 'show sip registrations' lists the binding with node 'b'
    (B wrote it behind to the shared database; A's storage poll shows
    it), within seconds, while A itself holds no binding of 5101; B's
    own listing shows it as B's."""
    cluster.create_database("sipreg")
    a = sip_node(tmp_path, "a", cluster.uri("sipreg"))
    b = sip_node(tmp_path, "b", cluster.socket_uri("sipreg"))
    try:
        assert registrations(tmp_path, a) == []
        users = write_users(tmp_path / "reg.csv", [("5101", ACCOUNTS["5101"])])
        ok = run_sipp(tmp_path / "reg", "register.xml", b.port("sip_udp"),
                      users=users, expires=600, timeout=20)
        assert ok.returncode == 0 and ok.successful == 1, ok.explain()
        done = time.monotonic()
        wait_for(lambda: registrations(tmp_path, a), 15,
                 what="node A listing the registration made on B")
        print(f"registration on B listed on A {time.monotonic() - done:.2f} s "
              "after SIPp's 200")
        (row,) = registrations(tmp_path, a)
        assert "5101" in row and row.split()[-1] == "b", row
        assert "SIPp register.xml" in row
        (own,) = registrations(tmp_path, b)
        assert own.split()[-1] == "b"
        rc, out, _ = ssh(tmp_path, a, "admin", tmp_path / "admin",
                         "show sip registrations account 5101")
        assert rc == 0 and out.rstrip().splitlines()[-1].split()[-1] == "b", out
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in a.log() and "Traceback" not in b.log()
