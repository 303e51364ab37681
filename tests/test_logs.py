"""Tests for L{appliance.logs}: levels and line formats."""
import io

from twisted.logger import Logger, LogPublisher

from appliance.logs import format_line, observer


def emit(level, journald=False, env=None, **kw):
    out = io.StringIO()
    pub = LogPublisher(observer(level, out,
                                environ=env if env is not None else {}))
    log = Logger(namespace="appliance.smpp.server", observer=pub)
    log.debug("debug {x}", x=1)
    log.info("bind {system_id} up", system_id="tata")
    log.warn("throttled")
    log.error("lost")
    log.critical("fatal")
    return out.getvalue().splitlines()


def test_levels_filter():
    """Each of the four levels shows itself and what is more severe."""
    assert len(emit("debug")) == 5
    assert len(emit("info")) == 4
    assert len(emit("warning")) == 3
    assert [l.split()[1] for l in emit("error")] == ["error", "error"]


def test_text_line():
    """A terminal line has time, level, namespace and the message."""
    line = emit("info")[0]
    stamp, level, ns, *text = line.split(" ")
    assert stamp.endswith("Z") and level == "info"
    assert ns == "[appliance.smpp.server]"
    assert " ".join(text) == "bind tata up"


def test_journald_line():
    """Under systemd a line starts with the syslog priority, no time."""
    lines = emit("debug", env={"JOURNAL_STREAM": "8:1234"})
    assert lines[0] == "<7>[appliance.smpp.server] debug 1"
    assert lines[1] == "<6>[appliance.smpp.server] bind tata up"
    assert lines[2].startswith("<4>")
    assert lines[3].startswith("<3>") and lines[4].startswith("<3>")


def test_failure_traceback():
    """A logged failure carries its traceback, line by line in journald."""
    from twisted.python.failure import Failure
    try:
        1 / 0
    except ZeroDivisionError:
        f = Failure()
    event = {"log_format": "boom", "log_level": None, "log_failure": f,
             "log_namespace": "x"}
    from twisted.logger import LogLevel
    event["log_level"] = LogLevel.critical
    text = format_line(event, journald=True)
    assert text.splitlines()[0] == "<3>[x] boom"
    assert all(l.startswith("<3>[x] ") for l in text.splitlines())
    assert "ZeroDivisionError" in text


def test_shows_answers_for_the_node_filter() -> None:
    """
    L{shows} says whether the process's level filter passes an event: at
    info, debug events of the node are not shown, a component set to
    debug shows them; with no filter at all every event counts as shown.
    """
    import gc

    from appliance import logs
    from twisted.logger import LogLevel
    logs._FILTERS.clear()
    assert logs.shows("appliance.sip.registrar.Registrar", LogLevel.debug)
    f = logs.LevelFilter(lambda event: None, "info")
    assert not logs.shows("appliance.sip.registrar.Registrar", LogLevel.debug)
    assert logs.shows("appliance.sip.registrar.Registrar", LogLevel.info)
    f.set_levels({"sip": "debug"})
    assert logs.shows("appliance.sip.registrar.Registrar", LogLevel.debug)
    assert not logs.shows("appliance.smpp.server", LogLevel.debug)
    del f
    gc.collect()
    assert logs.shows("appliance.smpp.server", LogLevel.debug)
