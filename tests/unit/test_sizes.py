"""engine.language.sizes: the size and percentage syntax of runbooks."""

from __future__ import annotations

import re

import pytest

from engine.language.sizes import (
    PERCENT_PATTERN,
    SIZE_PATTERN,
    format_percent,
    format_size,
    is_percent,
    is_size,
    parse_percent,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1048576, 1048576),
        ("100", 100),
        ("1024B", 1024),
        ("1K", 1024),
        ("1k", 1024),
        ("1KB", 1024),
        ("1KiB", 1024),
        ("512M", 512 * 1024**2),
        ("512 MiB", 512 * 1024**2),
        ("20G", 20 * 1024**3),
        ("20gb", 20 * 1024**3),
        ("1.5T", int(1.5 * 1024**4)),
        ("1.5G", 1610612736),
        (" 2P ", 2 * 1024**5),
        ("1E", 1024**6),
        ("0.1K", 103),  # rounded up: never less than asked
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "G", "20X", "-1G", "1.G", "20 %", "1,5G", "twenty", True, -1, None, [1]])
def test_parse_size_refuses(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]
    assert not is_size(bad)


def test_parse_size_message_names_examples() -> None:
    with pytest.raises(ValueError, match=r"'20X' is not a size \(e.g. 20G"):
        parse_size("20X")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1610612736, "1.5 GiB"),
        (int(12.3 * 1024**3), "12.3 GiB"),
        (1024**4, "1.0 TiB"),
        (1024**2 - 1, "1.0 MiB"),  # promoted: not "1024.0 KiB"
        (-2048, "-2.0 KiB"),
    ],
)
def test_format_size(n: int, expected: str) -> None:
    assert format_size(n) == expected


def test_round_trip() -> None:
    for text in ("1.5 GiB", "12.3 GiB", "512.0 MiB"):
        assert format_size(parse_size(text)) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20%", 0.2), ("0%", 0.0), (" 12.5 % ", 0.125), ("150%", 1.5), (10, 0.1), (12.5, 0.125)],
)
def test_parse_percent(value: str | float, expected: float) -> None:
    assert parse_percent(value) == pytest.approx(expected)
    assert is_percent(value)


@pytest.mark.parametrize("bad", ["20", "", "%", "-5%", "abc%", True, -1, None])
def test_parse_percent_refuses(bad: object) -> None:
    with pytest.raises(ValueError, match=r"is not a percentage \(e.g. 20%\)"):
        parse_percent(bad)  # type: ignore[arg-type]


def test_format_percent() -> None:
    assert format_percent(0.2) == "20%"
    assert format_percent(0.125) == "12.5%"
    assert format_percent(0) == "0%"


def test_patterns_agree_with_parsers() -> None:
    # The JSON Schemas use the patterns; the loader then calls the parsers: they must agree.
    for text in ("20G", "1.5T", "512 MiB", "100"):
        assert re.match(SIZE_PATTERN, text)
    for text in ("20%", "12.5 %"):
        assert re.match(PERCENT_PATTERN, text)
    assert not re.match(PERCENT_PATTERN, "20")
