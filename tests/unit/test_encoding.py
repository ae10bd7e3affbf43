"""Accept-Encoding as RFC 9110 reads it: names in any case, weights, ``*`` and identity."""

from __future__ import annotations

import pytest

from exporter.encoding import accepts_gzip, coding_weights


@pytest.mark.parametrize(
    "header",
    [
        "gzip",
        "GZIP",
        "Gzip;Q=1",
        "x-gzip",
        "deflate, gzip;q=0.5",
        "gzip ; q = 0.001",
        "*",
        "br;q=0, *;q=0.2",
        "identity;q=0, gzip",
        "gzip;q=0.8, identity;q=0.8",  # a tie goes to the smaller body
        "gzip;q=0.5",  # identity is acceptable but unranked
        "gzip;q=1.000",
        "gzip, gzip;q=0",  # the first mention counts
    ],
)
def test_gzip_is_chosen(header: str) -> None:
    assert accepts_gzip(header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "identity",
        "deflate, br",
        "gzip;q=0",
        "gzip;q=0.000",
        "GZIP;Q=0",
        "*;q=0",
        "*, gzip;q=0",  # named codings win over *
        "gzip;q=0.5, identity",
        "gzip;q=0.5, *;q=0.9",  # * ranks identity too
        "gzipx",
        "gzip;q=2",  # a malformed weight drops the element
        "gzip;q=0.5000",
        "gzip;q=-1",
        "gzip;q=abc",
        " , ;q=1",
    ],
)
def test_gzip_is_not_chosen(header: str | None) -> None:
    assert not accepts_gzip(header)


def test_weights_are_read_per_coding() -> None:
    assert coding_weights("GZip;q=0.3, br ; level=5 ; q=0.7,identity;q=0, *") == {
        "gzip": 0.3,
        "br": 0.7,
        "identity": 0.0,
        "*": 1.0,
    }
