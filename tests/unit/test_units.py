"""Sizes in virsh's units: parse_size and format_size."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from virtops.base.errors import InvalidInput
from virtops.base.units import MAX_SIZE, format_size, parse_size

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize("text, expected", [
    ("1000M", 1048576000),  # the handbook's volume
    ("1000MiB", 1048576000),
    ("5G", 5 * GiB), ("5GiB", 5 * GiB), ("0.5G", GiB // 2), ("512MiB", 512 * MiB),
    ("10KB", 10_000), ("1MB", 1_000_000), ("2GB", 2_000_000_000), ("1TB", 10**12),
    ("4096", 4096), ("4096B", 4096), ("1k", KiB), (" 2 T ", 2 * TiB), ("0", 0), (7, 7),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text, words", [
    ("lots", "not a size"), ("", "not a size"), ("-1G", "not a size"), ("1X", "not known"),
    ("1.3", "whole number"), ("5 G B", "not a size"), (-5, "negative"),
])
def test_parse_size_refusals_name_the_field(text, words):
    with pytest.raises(InvalidInput) as err:
        parse_size(text, "--capacity")
    assert err.value.field == "--capacity" and words in str(err.value)
    assert str(err.value).startswith("--capacity: ")


@given(st.integers(min_value=0, max_value=2**60), st.sampled_from(["", "B", "K", "KiB", "M", "MiB", "G", "GiB"]))
def test_binary_units_multiply(number, unit):
    factor = {"": 1, "B": 1, "K": KiB, "KiB": KiB, "M": MiB, "MiB": MiB, "G": GiB, "GiB": GiB}[unit]
    if number * factor > MAX_SIZE:
        with pytest.raises(InvalidInput, match="at most 9223372036854775807 bytes"):
            parse_size(f"{number}{unit}")
    else:
        assert parse_size(f"{number}{unit}") == number * factor


@given(st.integers(min_value=0, max_value=10**6), st.text("0123456789", min_size=1, max_size=12),
       st.sampled_from(["K", "MiB", "G", "KB", "TB"]))
def test_decimal_sizes_are_exact_whole_bytes(whole, decimals, unit):
    """A number with decimals is taken exactly (integer arithmetic): whole bytes, or refused."""
    factor = {"K": KiB, "MiB": MiB, "G": GiB, "KB": 1000, "TB": 10**12}[unit]
    exact = Fraction(f"{whole}.{decimals}") * factor
    if exact.denominator != 1:
        with pytest.raises(InvalidInput, match="not a whole number of bytes"):
            parse_size(f"{whole}.{decimals}{unit}")
    elif exact <= MAX_SIZE:
        assert parse_size(f"{whole}.{decimals}{unit}") == exact


@pytest.mark.parametrize("text", ["99999999999999999999999", 99999999999999999999999, "8E", "9" * 5000])
def test_sizes_beyond_the_largest_are_refused_naming_the_limit(text):
    with pytest.raises(InvalidInput, match=r"^--capacity: .*give at most 9223372036854775807 bytes \(8 EiB\)\.$"):
        parse_size(text, "--capacity")


def test_the_largest_size_is_accepted():
    assert parse_size(str(MAX_SIZE)) == MAX_SIZE


@given(st.integers(min_value=0, max_value=2**62))
def test_plain_bytes_round_trip(size):
    assert parse_size(str(size)) == size


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_is_close_to_the_value(size):
    text = format_size(size)
    number, unit = text.split()
    factor = {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB}[unit]
    # Exact arithmetic: a value half-way between two hundredths (49.625 KiB) is off by exactly 0.005.
    assert abs(Fraction(number) * factor - size) <= Fraction(5, 1000) * factor
    assert float(number) < 1024 or unit == "TiB"


def test_format_size_examples():
    assert format_size(1048576000) == "1000.00 MiB"
    assert format_size(5 * GiB) == "5.00 GiB"
    assert format_size(512) == "512 B"
    assert format_size(None) == "-"
    assert format_size(1048571) == "1.00 MiB"  # rounds up to the next unit, not to 1024.00 KiB
    assert format_size(1023) == "1023 B"
