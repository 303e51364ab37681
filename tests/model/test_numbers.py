"""Tests for appliance.model.numbers: E.164 normalization and patterns."""
import pytest
from hypothesis import given, strategies as st

from appliance.model.errors import ModelError
from appliance.model.numbers import (
    compile_pattern, normalize_e164, pattern_matches, validate_pattern,
)

digits = st.text(alphabet="0123456789", min_size=0, max_size=15)


@pytest.mark.parametrize("text, expected", [
    ("111222333", "111222333"),
    ("+964 750 123 4567", "9647501234567"),
    ("00964-750-123-4567", "9647501234567"),
    ("(0750) 123.4567", "07501234567"),
    ("  +44 20 7946 0018 ", "442079460018"),
    ("123456789012345", "123456789012345"),
    ("+0044", "0044"),
])
def test_normalize_accepts(text, expected):
    """Separators, a leading + or 00 prefix are removed; only the digits remain."""
    assert normalize_e164(text) == expected


@pytest.mark.parametrize("text", [
    "", "   ", "+", "00", "12a34", "tel:123", "sip:123@example.org",
    "1234567890123456", "+1 (555) 0123 4567 8901", "١٢٣", "12_3", None, 123,
])
def test_normalize_rejects(text):
    """Empty, non-digit, non-text and over-15-digit input raises ModelError."""
    with pytest.raises(ModelError):
        normalize_e164(text)


def test_normalize_error_is_a_sentence():
    """The error text names the bad number and the reason, for the shell."""
    with pytest.raises(ModelError, match="at most 15 digits"):
        normalize_e164("1" * 16)


@pytest.mark.parametrize("pattern", ["%", "964%", "9647_%", "_", "1_3", " 44% "])
def test_validate_pattern_accepts(pattern):
    """Digits, % and _ are valid patterns (blanks around them are stripped)."""
    assert validate_pattern(pattern) == pattern.strip()


@pytest.mark.parametrize("pattern", ["", " ", "44*", "+44%", "4a", "%" * 33, None])
def test_validate_pattern_rejects(pattern):
    """Empty patterns, other characters and over-long patterns raise ModelError."""
    with pytest.raises(ModelError):
        validate_pattern(pattern)


@pytest.mark.parametrize("pattern, number, expected", [
    ("%", "", True),
    ("%", "123", True),
    ("964%", "964111222333", True),
    ("964%", "96", False),
    ("964%", "44964", False),
    ("964_", "9641", True),
    ("964_", "96412", False),
    ("964_", "964", False),
    ("_%_", "12", True),
    ("_%_", "1", False),
    ("9%1", "91", True),
    ("9%1", "9551", True),
    ("9%1", "9552", False),
    ("123", "123", True),
    ("123", "1234", False),
    ("%", "AsiaCell", False),
    ("%", "12a", False),
    ("1%", "1٣", False),
])
def test_pattern_matches(pattern, number, expected):
    """A pattern matches the whole number; alphanumeric text never matches."""
    assert pattern_matches(pattern, number) is expected
    assert compile_pattern(pattern).matches(number) is expected


def test_compiled_matcher_rejects_non_text():
    """A compiled matcher answers False for a non-string number instead of crashing."""
    assert compile_pattern("%").matches(None) is False


@given(prefix=digits.filter(lambda s: len(s) <= 10), rest=digits)
def test_prefix_pattern_matches_all_extensions(prefix, rest):
    """A pattern 'prefix%' matches every digit string that starts with the prefix."""
    assert compile_pattern(prefix + "%").matches(prefix + rest)


@given(prefix=st.text(alphabet="0123456789", min_size=1, max_size=8), number=digits)
def test_prefix_pattern_agrees_with_startswith(prefix, number):
    """'prefix%' matches exactly the numbers startswith() accepts, same as the regex form."""
    fast = compile_pattern(prefix + "%").matches(number)
    slow = compile_pattern(prefix + "%%").matches(number)  # regex path
    assert fast is slow is number.startswith(prefix)


@given(number=st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_underscores_match_by_length(number):
    """A pattern of n underscores matches exactly the n-digit numbers."""
    assert compile_pattern("_" * len(number)).matches(number)
    assert not compile_pattern("_" * (len(number) + 1)).matches(number)
