"""Notification texts: templates, fields, coding by content."""
import pytest

from appliance.notify import texts


def test_default_with_includes():
    """The default Who Called text gains the time and count when included."""
    text = texts.render("who-called", {}, "", frozenset({"time", "count"}),
                        caller="491700", called="491800", at=0, count=3,
                        reason="busy")
    assert text == "Missed call from 491700 at 1970-01-01 00:00 (3 calls)"


def test_language_template_and_fallback():
    """The language's template is used; without one, the plain template."""
    t = {("notify-me", ""): "{called} back", ("notify-me", "hu"): "{called} elerheto"}
    kw = dict(caller="1", called="2", at=0, count=1, reason="unreachable")
    assert texts.render("notify-me", t, "hu", frozenset(), **kw) == "2 elerheto"
    assert texts.render("notify-me", t, "fr", frozenset(), **kw) == "2 back"


def test_coding_by_content():
    """GSM 7 when every character has a code, else UCS-2."""
    assert texts.coding("Missed call @ 12:00") == "gsm7"
    assert texts.coding("Пропущенный звонок") == "ucs2"


def test_unknown_field_refused():
    """A template naming an unknown field is refused."""
    with pytest.raises(texts.TemplateError):
        texts.check("hello {name}")
    texts.check("{caller} {called} {time} {count} {reason}")
