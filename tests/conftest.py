"""Fixtures shared by the unit tests, and a watch on the reactor greenlet."""
import traceback

import pytest
import transaction
import ZODB


@pytest.fixture
def conn():
    """An open connection to a fresh in-memory database, own transaction
    manager (STYLE rule 14)."""
    tm = transaction.TransactionManager(explicit=True)
    db = ZODB.DB(None)
    connection = db.open(transaction_manager=tm)
    tm.begin()
    yield connection
    tm.abort()
    connection.close()
    db.close()


# --- The reactor greenlet's watch --------------------------------------
#
# pytest-twisted runs every test (and each Hypothesis example) by switching
# into one long-lived greenlet that runs the global reactor.  If that
# greenlet ends (reactor.stop(), for instance from Twisted's own SIGTERM
# handler, which reactor.run() installs) or something else switches back to
# the main greenlet, the test that happens to be waiting fails with a bare
# "illegal switch in blockon" (and every later one with "twisted reactor
# has stopped"), naming neither the culprit nor the cause.  This watch
# records who stopped the reactor, when the shutdown began, which signal
# was behind it and which test was running, and adds that to the report of
# the first test that fails while the reactor greenlet is dead or was told
# to stop.

class _ReactorWatch:
    """
    What is known about the global reactor's end.

    @ivar current: the node id of the test being run.
    @ivar previous: the node id of the test run before it.
    @ivar stops: one entry per C{reactor.stop()}/C{crash()} call: the test,
        the call and the stack it came from.
    @ivar shutdown: the test during which the shutdown triggers ran.
    @ivar reported: whether a failing test's report carried the diagnosis.
    """

    def __init__(self) -> None:
        self.current: str | None = None
        self.previous: str | None = None
        self.stops: list[tuple[str | None, str, str]] = []
        self.shutdown: str | None = None
        self.reported = False

    def wrap(self, reactor, name: str) -> None:
        """Record each call of C{reactor.<name>} before making it."""
        original = getattr(reactor, name)

        def recorded(*args, **kwargs):
            self.stops.append((self.current, name,
                               "".join(traceback.format_stack(limit=25)[:-1])))
            return original(*args, **kwargs)
        setattr(reactor, name, recorded)

    def trouble(self) -> bool:
        """Whether the reactor greenlet is dead or was told to stop (before
        pytest's own end of session)."""
        import pytest_twisted
        gr = pytest_twisted._instances.gr_twisted
        return bool(self.stops) or (gr is not None and gr.dead)

    def diagnosis(self) -> str:
        """A paragraph for the failing test's report."""
        import pytest_twisted
        gr = pytest_twisted._instances.gr_twisted
        reactor = pytest_twisted._instances.reactor
        lines = [
            f"reactor greenlet dead: {gr is not None and gr.dead}",
            f"test running: {self.current}; the one before: {self.previous}",
            f"shutdown triggers ran during: {self.shutdown}",
            f"exit signal recorded by the reactor: "
            f"{getattr(reactor, '_exitSignal', None)} (15 is SIGTERM)",
        ]
        if gr is not None and not gr.dead and not self.stops:
            lines.append("the reactor still runs and nobody stopped it: "
                         "something switched to the main greenlet")
        for test, name, stack in self.stops:
            lines.append(f"reactor.{name}() called during {test} from:\n{stack}")
        if not self.stops:
            lines.append("reactor.stop()/crash() were not called")
        return "\n".join(lines)


_watch = _ReactorWatch()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Watch the reactor pytest-twisted installed (its hook runs first)."""
    import pytest_twisted
    reactor = pytest_twisted._instances.reactor
    if reactor is None:
        return
    _watch.wrap(reactor, "stop")
    _watch.wrap(reactor, "crash")

    def shutting_down() -> None:
        _watch.shutdown = _watch.current
    reactor.addSystemEventTrigger("before", "shutdown", shutting_down)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Keep the node id of the running test for the watch."""
    _watch.current = item.nodeid
    yield
    _watch.previous, _watch.current = item.nodeid, None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Put the watch's diagnosis in the first failing report after the
    reactor greenlet died or was told to stop."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and not _watch.reported and _watch.trouble():
        _watch.reported = True
        report.sections.append(("reactor greenlet", _watch.diagnosis()))
