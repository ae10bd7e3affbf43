"""Content codings: Accept-Encoding as RFC 9110 reads it (names in any case, weights, ``*``
and identity), and a vendor answer's Content-Encoding undone within the body cap."""

from __future__ import annotations

import gzip
import random
import tracemalloc
import zlib

import pytest

from exporter.upstream.encoding import (
    DECODE_STEP,
    BodyDecoder,
    UndecodableBody,
    accepts_gzip,
    coding_weights,
    content_coding,
)


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


# --- Content-Encoding of vendor answers ------------------------------------------------

DOC = b'{"messages_waiting": 3, "name": "' + bytes(range(32, 127)) * 40 + b'"}'


def raw_deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


def decoder_fed(coding: str, wire: bytes, limit: int = 1 << 20, seed: int = 0) -> BodyDecoder:
    """A decoder fed ``wire`` in random-sized chunks, as a transport would hand it over."""
    decoder = BodyDecoder(coding, limit)
    rng = random.Random(seed)
    i = 0
    while i < len(wire):
        n = rng.randint(1, 700)
        if not decoder.feed(wire[i : i + n]):
            break
        i += n
    return decoder


def decoded(coding: str, wire: bytes, seed: int = 0) -> bytes:
    return bytes(decoder_fed(coding, wire, seed=seed).body)


@pytest.mark.parametrize(
    ("header", "coding"),
    [(None, "identity"), ("", "identity"), ("identity", "identity"), ("GZIP", "gzip"), ("x-gzip", "x-gzip"),
     (" deflate ", "deflate"), ("gzip, identity", "gzip"), ("identity,,gzip", "gzip")],
)  # fmt: skip
def test_one_offered_coding_is_accepted(header: str | None, coding: str) -> None:
    assert content_coding(header) == coding


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("gzip, gzip", "Content-Encoding 'gzip, gzip': stacked codings are refused"),
        ("deflate,gzip", "Content-Encoding 'deflate,gzip': stacked codings are refused"),
        ("br", "Content-Encoding 'br' is not one of identity, gzip, deflate"),
        ("compress", "Content-Encoding 'compress' is not one of identity, gzip, deflate"),
        ("zstd", "Content-Encoding 'zstd' is not one of identity, gzip, deflate"),
        ("x" * 500, f"Content-Encoding {'x' * 64!r} is not one of identity, gzip, deflate"),
    ],
)
def test_stacked_and_unknown_codings_are_refused_with_a_reason(header: str, message: str) -> None:
    with pytest.raises(UndecodableBody) as err:
        content_coding(header)
    assert (err.value.reason, str(err.value)) == ("unsupported_encoding", message)


@pytest.mark.parametrize(
    ("coding", "wire"),
    [
        ("identity", DOC),
        ("gzip", gzip.compress(DOC)),
        ("x-gzip", gzip.compress(DOC)),
        ("gzip", gzip.compress(DOC[:1000]) + gzip.compress(DOC[1000:])),  # two members
        ("deflate", zlib.compress(DOC)),
        ("deflate", raw_deflate(DOC)),  # without the zlib wrapper, as some servers send it
    ],
)
def test_each_coding_is_undone_whatever_the_chunks(coding: str, wire: bytes) -> None:
    for seed in range(5):
        assert decoded(coding, wire, seed=seed) == DOC


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_corrupt_data_is_an_invalid_response(coding: str) -> None:
    wire = bytearray(gzip.compress(DOC) if coding == "gzip" else zlib.compress(DOC))
    wire[12:40] = b"\xff" * 28
    with pytest.raises(UndecodableBody) as err:
        decoded(coding, bytes(wire))
    assert (err.value.reason, str(err.value)) == ("invalid_response", f"the {coding} body is corrupt")


def test_compressed_data_that_decodes_to_nothing_still_meets_the_cap() -> None:
    wire = gzip.compress(b"") * 1000  # 20 kB of empty gzip members
    assert len(wire) == 20_000
    decoder = decoder_fed("gzip", wire, limit=10_000)
    assert decoder.over and not decoder.body


def bomb_peak(wire: bytes, limit: int) -> tuple[int, int]:
    """Decoded length and peak traced memory of decoding a bomb under ``limit``."""
    tracemalloc.start()
    try:
        decoder = decoder_fed("gzip", wire, limit)
        return len(decoder.body), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_bomb_is_decoded_no_further_than_the_cap() -> None:
    # 256 MiB of zeros in 250 KB: each chunk off the wire expands a thousandfold.
    wire = gzip.compress(bytes(256 << 20), 9)
    small, small_peak = bomb_peak(wire, 64 << 10)
    large, large_peak = bomb_peak(wire, 8 << 20)
    # One byte past the cap tells the body is too large; nothing more is produced.
    assert (small, large) == ((64 << 10) + 1, (8 << 20) + 1)
    # Memory follows the cap: a small cap gives a small peak.
    assert small_peak < (64 << 10) + 2 * DECODE_STEP + len(wire), small_peak
    assert large_peak < (8 << 20) + 2 * DECODE_STEP + len(wire) + (8 << 20) // 8, large_peak
