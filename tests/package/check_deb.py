#!/usr/bin/env python3
"""
The package test (C{make test-deb}, root only): the .deb as an operator
gets it.

  1. lintian on the package (no error or warning left un-overridden);
  2. a second package with a higher version and one more database
     generation (model domain) is built from a patched copy of the tree;
  3. a throwaway Debian 12 root is unpacked from an mmdebstrap base (cached
     in ~/.cache/appliance-package-test, keyed by the package's
     dependencies, so a change of them makes a new base);
  4. in a network namespace of its own (loopback only: the packaged ports
     2022, 2775 and 5060 clash with nothing on the machine), the README's
     install lines install the package with apt from a signed local
     repository; files, owners and modes are checked; the unit's ExecStart
     runs as its User= with its capabilities; operators log in with
     appliance-shell (root as admin, a Unix user as operator alice) and
     plain ssh; smpplib binds as a carrier; SIPp registers an app;
  5. the conffile is edited and the higher version installed with apt: the
     edit, the database and the host key survive and the generation ran;
  6. the older version again: the node refuses the newer database with a
     clear journal line and exit status 78, the database untouched;
  7. purge: the data and the configuration are gone.

Each check prints C{ok - ...} or C{FAIL - ...}; the last line is
C{N passed, M failed}.  Exit status 0 only if every check passed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("APPLIANCE_PACKAGE_CACHE") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "appliance-package-test")
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
#: Where the test's repository sits inside the root (and in the README).
REPO_IN_ROOT = "/srv/appliance-repo"
UNIT = "/lib/systemd/system/appliance.service"
CONF = "/etc/appliance/appliance.conf"
DATA = "/var/lib/appliance"
UPGRADE_SUFFIX = "+pkgtest1"
#: The generation the upgrade package adds to the model domain.
UPGRADE_GENERATION = '''

# Added by tests/package/check_deb.py to the upgrade package it builds: a
# release with one more generation of the model domain.
def _package_test_evolve(root) -> None:
    """Mark the database as evolved by the upgrade package."""
    root["appliance.package-test"] = "evolved"


GENERATIONS = GENERATIONS + (_package_test_evolve,)
'''


class Checks:
    """Counts and prints results; a failed check does not stop the run
    unless it is marked fatal (later steps depend on it)."""

    def __init__(self, passed: int = 0, failed: int = 0) -> None:
        self.passed = passed
        self.failed = failed
        self.started = time.monotonic()

    def check(self, ok: bool, what: str, detail: str = "",
              fatal: bool = False) -> bool:
        """Record one check."""
        elapsed = time.monotonic() - self.started
        if ok:
            self.passed += 1
            print(f"ok - {what}  [{elapsed:.0f}s]", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {what}  [{elapsed:.0f}s]", flush=True)
            if detail:
                print("    " + detail.rstrip().replace("\n", "\n    "),
                      flush=True)
            if fatal:
                raise SystemExit(self.summary())
        return ok

    def summary(self) -> int:
        """Print the closing line; return the exit status."""
        print(f"package test: {self.passed} passed, {self.failed} failed "
              f"in {time.monotonic() - self.started:.0f} s", flush=True)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a host command, capturing text output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    result = subprocess.run(list(argv), **kw)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n"
                           f"{result.stdout}\n{result.stderr}")
    return result


# -- phase 1 (host): lintian, the upgrade package, the base, the repo ------

def tree_files(source: Path) -> list[str]:
    """The files of the checkout (tracked, and untracked not ignored)."""
    out = sh("git", "-C", str(source), "ls-files", "-z", "--cached",
             "--others", "--exclude-standard").stdout
    return [f for f in out.split("\0") if f and (source / f).exists()]


def build_upgrade(work: Path, version: str) -> Path:
    """
    Build the higher version: the same tree, its changelog one entry newer,
    one more generation in the model domain.
    """
    src = work / "upgrade-src"
    for name in tree_files(ROOT):
        dest = src / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest, follow_symlinks=False)
    generations = src / "appliance" / "model" / "generations.py"
    text = generations.read_text()
    if "\nGENERATIONS = " not in text:
        raise RuntimeError(f"{generations}: no GENERATIONS tuple to extend")
    generations.write_text(text + UPGRADE_GENERATION)
    changelog = src / "debian" / "changelog"
    changelog.write_text(
        f"appliance ({version}{UPGRADE_SUFFIX}) {SUITE}; urgency=medium\n\n"
        "  * Package test: the same release with one more generation.\n\n"
        " -- Appliance Developers <packaging@example.com>  "
        + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        + "\n\n" + changelog.read_text())
    out = sh("bash", str(HERE / "build_deb.sh"), str(src),
             str(work / "upgrade-out")).stdout.strip().splitlines()
    return Path(out[-1])


def model_steps() -> int:
    """The generations of the model domain in this tree (the upgrade
    package has one more)."""
    sys.path.insert(0, str(ROOT))
    from appliance.model.generations import GENERATIONS
    return len(GENERATIONS)


def dependencies(deb: Path) -> list[str]:
    """The package names a .deb depends on (first of each alternative)."""
    names = set()
    for field in ("Pre-Depends", "Depends"):
        value = sh("dpkg-deb", "-f", str(deb), field).stdout.strip()
        for item in filter(None, (x.strip() for x in value.split(","))):
            first = item.split("|")[0].strip()
            names.add(re.split(r"[\s(:]", first, maxsplit=1)[0])
    return sorted(names)


def base_tarball(deb: Path) -> Path:
    """
    The cached mmdebstrap base for C{deb}: Debian 12, apt, and the
    package's dependencies, so installing it needs only the local
    repository.  A new set of dependencies is a new cache entry.
    """
    # systemd and man-db as on a real box: systemd-analyze runs inside the
    # root, and deb-systemd-helper enables the unit there.
    include = sorted(set(dependencies(deb)) | {"systemd", "man-db"})
    key = hashlib.sha256(
        json.dumps([SUITE, MIRROR, "apt", include]).encode()).hexdigest()[:16]
    path = CACHE / f"{SUITE}-{key}.tar.zst"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{SUITE}-*.tar.zst"):
        old.unlink()
    tmp = path.with_suffix(".tmp.tar.zst")
    sh("mmdebstrap", "--quiet", "--variant=apt",
       "--include=" + ",".join(include), SUITE, str(tmp), MIRROR)
    tmp.rename(path)
    return path


def make_repo(repo: Path, keydir: Path, *debs: Path) -> None:
    """Add C{debs} to the signed repository."""
    sh("bash", str(HERE / "make_repo.sh"), str(repo), str(keydir),
       *map(str, debs))


def lintian(deb: Path) -> subprocess.Popen:
    """Start lintian (it runs while the upgrade package builds)."""
    return subprocess.Popen(
        ["lintian", "--fail-on", "error,warning", str(deb)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# -- phase 2 (own network namespace): the root -----------------------------

class Root:
    """The throwaway Debian root and commands run inside it."""

    def __init__(self, path: Path):
        self.path = path

    def host(self, path: str) -> Path:
        """A path inside the root, seen from the host."""
        return self.path / path.lstrip("/")

    def argv(self, argv: list[str], env: dict[str, str] | None = None
             ) -> list[str]:
        """
        The host command line running C{argv} in the root: a private mount
        namespace with /proc mounted, a clean environment.
        """
        environ = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                   "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
                   **(env or {})}
        return (["unshare", "--mount", "--", "sh", "-c",
                 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"',
                 str(self.path), "env", "-i"]
                + [f"{k}={v}" for k, v in environ.items()] + argv)

    def run(self, *argv: str, input: str | None = None, check: bool = False,
            timeout: float = 300, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """Run a command in the root to its end."""
        result = subprocess.run(
            self.argv(list(argv), env), input=input, capture_output=True,
            text=True, timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv} exited {result.returncode}:\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def stat(self, path: str) -> str:
        """C{owner:group mode} of a path, as the root's users see it."""
        return self.run("stat", "-c", "%U:%G %a", path).stdout.strip()

    def apt(self, *args: str) -> subprocess.CompletedProcess:
        """apt-get in the root."""
        return self.run("apt-get", "-q", "-y", *args)


def unit_settings(text: str) -> dict[str, str]:
    """The [Service] settings of a unit file (last one of each wins)."""
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and \
                not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


class RunningNode:
    """The node started as the unit starts it, inside the root."""

    #: Every node started, so that none outlives the test.
    started: list["RunningNode"] = []

    def __init__(self, root: Root, log: Path):
        unit = unit_settings(root.host(UNIT).read_text())
        caps = [c.lower().removeprefix("cap_")
                for c in unit["AmbientCapabilities"].split()]
        bounding = [c.lower().removeprefix("cap_")
                    for c in unit["CapabilityBoundingSet"].split()]
        setpriv = ["setpriv", f"--reuid={unit['User']}",
                   f"--regid={unit['Group']}", "--init-groups",
                   "--inh-caps=" + ",".join(f"+{c}" for c in caps),
                   "--ambient-caps=" + ",".join(f"+{c}" for c in caps),
                   "--bounding-set=-all," + ",".join(f"+{c}" for c in bounding)]
        if unit.get("NoNewPrivileges") == "yes":
            setpriv.append("--no-new-privs")
        self.unit = unit
        self.root = root
        self.log_path = log
        self._log = open(log, "wb")
        # JOURNAL_STREAM: what systemd sets for a unit logging to journald.
        self.process = subprocess.Popen(
            root.argv(setpriv + [
                "sh", "-c", f'umask {unit["UMask"]} && cd "$0" && exec "$@"',
                unit["WorkingDirectory"]] + unit["ExecStart"].split(),
                env={"JOURNAL_STREAM": "8:12345"}),
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        self.started.append(self)

    def log(self) -> str:
        """What the node printed."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> dict:
        """Wait for ports.json; raise if the node exits first."""
        ports = self.root.host(DATA + "/ports.json")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited {self.process.returncode}:"
                                   f"\n{self.log()}")
            if ports.exists():
                return json.loads(ports.read_text())
            time.sleep(0.1)
        raise RuntimeError("node not ready:\n" + self.log())

    def stop(self, timeout: float) -> int | None:
        """SIGTERM; the exit status, or None if it outlived C{timeout}."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self._log.close()


def seconds(value: str) -> float:
    """A systemd time span such as C{30s} or C{2min} in seconds."""
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|)", value.strip())
    if not match:
        raise ValueError(value)
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def readme_install_lines() -> list[str]:
    """The commands README's install section tells an operator to type."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- install -->\s*```sh\n(.*?)```", text, re.S)
    if not match:
        raise RuntimeError("README.md: no <!-- install --> block")
    return [line.replace("sudo ", "").strip()
            for line in match.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def inside(args: argparse.Namespace, c: Checks) -> None:
    """Phase 2: everything in the root, in our own network namespace."""
    sh("ip", "link", "set", "lo", "up")
    work = Path(args.work)
    deb, upgrade = Path(args.deb), Path(args.upgrade)
    version = sh("dpkg-deb", "-f", str(deb), "Version").stdout.strip()
    new_version = sh("dpkg-deb", "-f", str(upgrade), "Version").stdout.strip()
    root = Root(work / "root")
    repo = work / "repo"

    def publish() -> None:
        target = root.host(REPO_IN_ROOT)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(repo, target)

    # Keys: root logs in as operator admin (the debconf key), Unix user
    # alice as operator alice (a key the admin adds in the shell).
    keys = work / "keys"
    keys.mkdir()
    for name in ("admin", "alice"):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
           f"{name}@package-test", "-f", str(keys / name))
    admin_pub = (keys / "admin.pub").read_text().strip()
    alice_pub = (keys / "alice.pub").read_text().strip()

    # -- install with the README's lines ---------------------------------
    publish()
    root.host("/etc/apt/sources.list").write_text("")
    # A throwaway root: dpkg need not fsync each of the virtualenv's 5000
    # files, and man-db need not rebuild its index after each install.
    root.host("/etc/dpkg/dpkg.cfg.d/package-test").write_text(
        "force-unsafe-io\n")
    root.run("debconf-set-selections", check=True,
             input="man-db man-db/auto-update boolean false\n")
    root.run("debconf-set-selections", check=True,
             input=f"appliance appliance/admin_key string {admin_pub}\n")
    lines = readme_install_lines()
    c.check(len(lines) == 3, "README: three install lines", "\n".join(lines))
    for line in lines:
        line = line.replace("apt-get install appliance",
                            "apt-get install -y appliance")
        result = root.run("sh", "-c", line)
        c.check(result.returncode == 0, f"in the root: {line}",
                result.stdout[-3000:] + result.stderr[-3000:], fatal=True)
    installed = root.run("dpkg-query", "-W", "-f", "${Version} ${Status}",
                         "appliance").stdout
    c.check(installed == f"{version} install ok installed",
            f"apt installed appliance {version} from the signed repository",
            installed, fatal=True)

    # -- files, owners, modes ---------------------------------------------
    expected = {
        "/usr/bin/appliance-node": "root:root 755",
        "/usr/bin/appliance-shell": "root:root 755",
        "/opt/venvs/appliance/bin/twistd": "root:root 755",
        CONF: "root:root 644",
        "/etc/appliance/admin_keys": "root:root 644",
        "/etc/appliance/ssh_known_hosts": "root:root 644",
        UNIT: "root:root 644",
        DATA: "appliance:appliance 750",
        DATA + "/ssh_host_ed25519_key": "appliance:appliance 600",
        "/usr/share/man/man8/appliance-node.8.gz": "root:root 644",
        "/usr/share/man/man1/appliance-shell.1.gz": "root:root 644",
    }
    for path, want in expected.items():
        got = root.stat(path)
        c.check(got == want, f"{path} is {want}", f"got {got!r}")
    conffiles = root.run("dpkg-query", "-W", "-f", "${Conffiles}",
                         "appliance").stdout
    c.check(CONF in conffiles, f"{CONF} is a conffile", conffiles)
    c.check(admin_pub in root.host("/etc/appliance/admin_keys").read_text(),
            "postinst put the debconf admin key in /etc/appliance/admin_keys")
    user = root.run("getent", "passwd", "appliance").stdout.strip().split(":")
    c.check(len(user) == 7 and int(user[2]) < 1000 and user[5] == DATA
            and user[6] == "/usr/sbin/nologin",
            "appliance is a system user, home /var/lib/appliance, no shell",
            str(user))
    listing = root.run("dpkg", "-L", "appliance").stdout.splitlines()
    strays = [p for p in listing if p.startswith(("/usr/lib/python3",
                                                  "/usr/local/lib/python"))]
    c.check(not strays, "nothing installed into the system Python",
            "\n".join(strays[:10]))
    interpreter = root.run("readlink", "-f",
                           "/opt/venvs/appliance/bin/python3").stdout.strip()
    c.check(interpreter == "/usr/bin/python3.11",
            "the virtualenv runs on Debian's python3.11", interpreter)
    c.check(root.host("/opt/venvs/appliance/lib/python3.11/site-packages/"
                      "twisted/plugins/dropin.cache").exists(),
            "postinst regenerated the Twisted plugin cache")
    help_text = root.run("setpriv", "--reuid=appliance", "--regid=appliance",
                         "--init-groups", "/opt/venvs/appliance/bin/twistd",
                         "--help").stdout
    c.check(re.search(r"^\s+appliance\s", help_text, re.M) is not None,
            "twistd in the virtualenv lists the appliance plugin",
            help_text[-2000:])

    # -- systemd-analyze on the installed unit ----------------------------
    verify = root.run("systemd-analyze", "verify", UNIT)
    c.check(verify.returncode == 0 and not verify.stderr.strip(),
            "systemd-analyze verify passes on appliance.service (its "
            "ExecStart and man pages found)", verify.stdout + verify.stderr)
    c.check(root.host("/etc/systemd/system/multi-user.target.wants/"
                      "appliance.service").is_symlink(),
            "the unit is enabled (multi-user.target)")
    security = root.run("systemd-analyze", "security", "--offline=yes",
                        "--no-pager", UNIT)
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)",
                         security.stdout)
    c.check(exposure is not None,
            "systemd-analyze security: exposure "
            + (f"{exposure.group(1)} {exposure.group(2)}" if exposure else "?"),
            security.stdout[-2000:] + security.stderr)

    # -- the unit's ExecStart as its user ---------------------------------
    node = RunningNode(root, work / "node-1.log")
    try:
        ports = node.wait_ready()
    except RuntimeError as e:
        c.check(False, "the unit's ExecStart starts the node", str(e),
                fatal=True)
    c.check(ports == {"shell": [2022], "smpp": [2775], "sip_udp": [5060],
                      "sip_tcp": [5060]},
            "the packaged configuration listens on 2022, 2775, 5060 UDP+TCP",
            str(ports))
    listening = sh("ss", "-Hlntu").stdout
    for proto, port in (("tcp", 2022), ("tcp", 2775), ("udp", 5060),
                        ("tcp", 5060)):
        c.check(re.search(rf"^{proto}\s.*\s0\.0\.0\.0:{port}\s", listening,
                          re.M) is not None,
                f"{proto} {port} on every address of the box", listening)
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    c.check(uid == user[2], "the node runs as user appliance",
            f"uid {uid}, appliance is {user[2]}")
    c.check("<6>[" in node.log(),
            "log lines carry journald priorities under JOURNAL_STREAM",
            node.log()[-1500:])

    # -- appliance-shell as root (operator admin) and as alice ------------
    (root.host("/root/.ssh")).mkdir(mode=0o700, exist_ok=True)
    shutil.copy(keys / "admin", root.host("/root/.ssh/id_ed25519"))
    os.chmod(root.host("/root/.ssh/id_ed25519"), 0o600)
    shown = root.run("appliance-shell", "show version")
    c.check(shown.returncode == 0 and f"appliance {version.split('+')[0]}"
            in shown.stdout and "operator admin (role admin)" in shown.stdout,
            "appliance-shell 'show version' as root logs in as admin",
            shown.stdout + shown.stderr)
    sys.path.insert(0, str(ROOT))
    from tests.e2e.sip_tools import provision_script, write_users
    script = provision_script({"5551000": "pw-5551000"}).replace(
        "end\n", "") + "\n".join([
            " operator alice", "  role admin", f"  ssh-key {alice_pub}",
            " exit", " carrier PackageTest", "  system-id pkgtest",
            "  password pkgpass", "  allow-ip 127.0.0.0/8", " exit",
            "end", ""])
    provisioned = root.run("appliance-shell", input=script)
    c.check(provisioned.returncode == 0,
            "appliance-shell < script.cli provisions an operator, an "
            "account and a carrier", provisioned.stdout + provisioned.stderr)
    failing = root.run("appliance-shell", input="show version\nshow nonsense\n")
    c.check(failing.returncode == 1,
            "a script with a refused line exits 1",
            failing.stdout + failing.stderr)
    root.run("useradd", "--create-home", "--shell", "/bin/sh", "alice",
             check=True)
    home = root.host("/home/alice/.ssh")
    home.mkdir(mode=0o700)
    shutil.copy(keys / "alice", home / "id_ed25519")
    os.chmod(home / "id_ed25519", 0o600)
    root.run("chown", "-R", "alice:alice", "/home/alice/.ssh", check=True)
    as_alice = root.run("runuser", "-u", "alice", "--", "appliance-shell",
                        "show", "version")
    c.check(as_alice.returncode == 0
            and "operator alice (role admin)" in as_alice.stdout,
            "appliance-shell run by Unix user alice logs in as operator alice",
            as_alice.stdout + as_alice.stderr)
    plain = sh("ssh", "-p", "2022", "-i", str(keys / "admin"),
               "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", "HostKeyAlias=appliance", "-o",
               f"UserKnownHostsFile={root.host('/etc/appliance/ssh_known_hosts')}",
               "-o", "StrictHostKeyChecking=yes",
               "admin@127.0.0.1", "show running-config", check=False)
    c.check(plain.returncode == 0 and "carrier PackageTest" in plain.stdout
            and "operator alice" in plain.stdout,
            "plain ssh admin@127.0.0.1 -p 2022 'show running-config' "
            "(host key as postinst recorded it)", plain.stdout + plain.stderr)

    # -- a carrier binds with smpplib, an app registers with SIPp ----------
    import smpplib.client
    import smpplib.consts
    client = smpplib.client.Client("127.0.0.1", 2775, timeout=10)
    try:
        client.connect()
        resp = client.bind_transceiver(system_id="pkgtest",
                                       password="pkgpass")
        c.check(resp.status == smpplib.consts.SMPP_ESME_ROK,
                "smpplib bind_transceiver as carrier PackageTest on 2775",
                str(resp.status))
        client.unbind()
    except Exception as e:          # noqa: BLE001 - reported as a failure
        c.check(False, "smpplib bind_transceiver on 2775", repr(e))
    finally:
        client.disconnect()
    sipp_dir = work / "sipp"
    sipp_dir.mkdir()
    users = write_users(sipp_dir / "users.csv", [("5551000", "pw-5551000")])
    sipp = sh("sipp", "-sf", str(ROOT / "tests/sipp/register.xml"),
              "127.0.0.1:5060", "-i", "127.0.0.1", "-p", "15060",
              "-t", "u1", "-m", "1", "-key", "domain", "appliance",
              "-key", "expires", "300", "-inf", str(users), "-nostdin",
              "-timeout", "20s", "-timeout_error", "-trace_err",
              "-error_file", str(sipp_dir / "errors.log"),
              cwd=str(sipp_dir), check=False, stdin=subprocess.DEVNULL)
    c.check(sipp.returncode == 0,
            "SIPp registers account 5551000 over UDP 5060 (digest)",
            sipp.stdout[-2000:] + sipp.stderr[-1000:])

    stop_timeout = seconds(node.unit.get("TimeoutStopSec", "90s"))
    rc = node.stop(stop_timeout)
    # twistd ends by re-raising the SIGTERM it handled; systemd counts a
    # main process ended by SIGTERM as a clean stop.
    c.check(rc in (0, -signal.SIGTERM) and "node appliance stopped"
            in node.log() and "database closed" in node.log(),
            f"SIGTERM stops the node cleanly within TimeoutStopSec "
            f"({stop_timeout:.0f} s): database closed",
            f"exit {rc}\n{node.log()[-1500:]}")

    # -- edit the conffile, upgrade with apt -------------------------------
    conf = root.host(CONF)
    conf.write_text(conf.read_text().replace('name = "appliance"',
                                             'name = "box7"', 1))
    data = root.host(DATA + "/Data.fs")
    host_key = root.host(DATA + "/ssh_host_ed25519_key").read_bytes()
    make_repo(repo, work / "repo-key", upgrade)
    publish()
    update = root.apt("update")
    upgraded = root.apt("upgrade")
    c.check(update.returncode == 0 and upgraded.returncode == 0
            and root.run("dpkg-query", "-W", "-f", "${Version}",
                         "appliance").stdout == new_version,
            f"apt-get upgrade installs {new_version}",
            update.stdout[-1500:] + upgraded.stdout[-3000:] + upgraded.stderr)
    c.check('name = "box7"' in conf.read_text(),
            "the local edit of the conffile survived the upgrade")
    c.check(data.exists() and root.host(
        DATA + "/ssh_host_ed25519_key").read_bytes() == host_key,
            "the database and the host key survived the upgrade")
    node = RunningNode(root, work / "node-2.log")
    try:
        node.wait_ready()
    except RuntimeError as e:
        c.check(False, "the upgraded node starts", str(e), fatal=True)
    steps = model_steps()
    c.check(f"model upgraded from generation {steps} to {steps + 1}"
            in node.log(),
            "the upgraded node ran the new generation on start",
            node.log()[-2000:])
    shown = root.run("appliance-shell", "show running-config")
    c.check("carrier PackageTest" in shown.stdout and "operator alice"
            in shown.stdout, "the data is there after the upgrade",
            shown.stdout + shown.stderr)
    shown = root.run("appliance-shell", "show version")
    c.check("node box7" in shown.stdout,
            "the node runs with the edited configuration (node box7)",
            shown.stdout + shown.stderr)
    node.stop(stop_timeout)

    # -- the older package on the newer database ---------------------------
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    down = root.apt("install", "--allow-downgrades", f"appliance={version}")
    c.check(down.returncode == 0, f"apt-get installs {version} again",
            down.stdout[-1500:] + down.stderr)
    node = RunningNode(root, work / "node-3.log")
    try:
        rc = node.process.wait(60)
    except subprocess.TimeoutExpired:
        rc = None
        node.stop(5)
    refusal = [line for line in node.log().splitlines()
               if "refusing to start" in line]
    c.check(rc == 78 and len(refusal) == 1 and refusal[0].startswith("<3>")
            and f"generation {steps + 1} of domain 'model' is newer than "
            f"this code ({steps})" in refusal[0] and "The database was not changed" in refusal[0],
            "the older node refuses the newer database: one error line in "
            "the journal, exit 78 (RestartPreventExitStatus)",
            f"exit {rc}\n{node.log()[-2000:]}")
    c.check("78" in node.unit.get("RestartPreventExitStatus", ""),
            "the unit does not restart a node that refused its database")
    c.check(hashlib.sha256(data.read_bytes()).hexdigest() == before,
            "the refused database is byte for byte untouched")

    # -- purge -------------------------------------------------------------
    purged = root.apt("purge", "appliance")
    gone = [p for p in (DATA, "/etc/appliance", "/opt/venvs/appliance")
            if root.host(p).exists()]
    c.check(purged.returncode == 0 and not gone,
            "apt-get purge removes the data, the configuration and the venv",
            f"left: {gone}\n{purged.stdout[-1500:]}{purged.stderr}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", required=True, help="the package to test")
    parser.add_argument("--inside", action="store_true",
                        help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--upgrade", help=argparse.SUPPRESS)
    parser.add_argument("--passed", type=int, default=0,
                        help=argparse.SUPPRESS)
    parser.add_argument("--failed", type=int, default=0,
                        help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory")
    args = parser.parse_args(argv)
    c = Checks(args.passed, args.failed)
    if args.inside:
        try:
            inside(args, c)
        except SystemExit:
            raise
        except Exception as e:      # noqa: BLE001 - report, then fail
            c.check(False, "the package test ran to its end", repr(e))
        finally:
            for node in RunningNode.started:
                if node.process.poll() is None:
                    node.process.kill()
                    node.process.wait()
        return c.summary()

    if os.geteuid() != 0:
        print("the package test needs root (chroot, namespaces)")
        return 1
    deb = Path(args.deb).resolve()
    version = sh("dpkg-deb", "-f", str(deb), "Version").stdout.strip()
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    work = Path(tempfile.mkdtemp(prefix="appliance-package-", dir=base))
    try:
        lint = lintian(deb)
        try:
            upgrade = build_upgrade(work, version)
            c.check(True, f"built the upgrade package {upgrade.name}")
        except RuntimeError as e:
            c.check(False, "build the upgrade package", str(e), fatal=True)
        lint_out = lint.communicate()[0]
        c.check(lint.returncode == 0, "lintian: no error or warning",
                lint_out[-3000:])
        tarball = base_tarball(deb)
        c.check(True, f"base root {tarball.name} (cached in {CACHE})")
        make_repo(work / "repo", work / "repo-key", deb)
        (work / "root").mkdir()
        sh("tar", "--zstd", "-xf", str(tarball), "-C", str(work / "root"))
        sys.stdout.flush()
        inner = subprocess.run(
            ["unshare", "--net", "--", sys.executable, __file__, "--inside",
             "--deb", str(deb), "--upgrade", str(upgrade),
             "--work", str(work), "--passed", str(c.passed),
             "--failed", str(c.failed)], stdin=subprocess.DEVNULL)
        return inner.returncode
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
