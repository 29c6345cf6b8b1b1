"""ActiveMQ value syntaxes: sizes, milliseconds, booleans."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.units import millis_to_seconds, parse_bool, parse_millis, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("0", 0),
        ("100b", 100),
        ("1024kb", 1024 * 1024),
        ("64k", 64 * 1024),
        ("32mb", 32 * 1024 * 1024),
        ("32 MB", 32 * 1024 * 1024),
        ("  8m ", 8 * 1024 * 1024),
        ("1gb", 1024**3),
        ("2G", 2 * 1024**3),
    ],
)
def test_sizes_use_activemq_syntax_and_binary_multipliers(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "mb", "1.5gb", "-1kb", "32 megabytes", "1tb", "0x10", "1" * 19])
def test_malformed_sizes_are_rejected_with_the_text_quoted(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["", "b", "kb", "mb", "gb"]))
@settings(max_examples=50)
def test_size_round_trip(number: int, unit: str) -> None:
    factor = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}[unit]
    assert parse_size(f"{number}{unit}") == number * factor


def test_millis() -> None:
    assert parse_millis(" 10000 ") == 10000
    assert millis_to_seconds("1500") == 1.5
    for bad in ("-1", "1.5", "10s", ""):
        with pytest.raises(ValueError, match="whole number of milliseconds"):
            parse_millis(bad)


def test_bool_is_strict() -> None:
    assert parse_bool("TRUE") is True
    assert parse_bool(" false") is False
    with pytest.raises(ValueError, match="expected true or false"):
        parse_bool("yes")
