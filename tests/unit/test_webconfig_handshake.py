"""The first bytes of a connection on the TLS port, and the alert a failed handshake sends."""

from __future__ import annotations

import ssl

import pytest

from exporter.web.webconfig.handshake import FirstRecord, classify, go_alert


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x16\x03\x01\x02\x00", FirstRecord.TLS),  # a ClientHello record
        (b"\x15\x03\x03\x00\x02", FirstRecord.TLS),  # an alert record: Go reads it too
        (b"GET /", FirstRecord.PLAIN_HTTP),
        (b"HEAD ", FirstRecord.PLAIN_HTTP),
        (b"POST ", FirstRecord.PLAIN_HTTP),
        (b"PUT /", FirstRecord.PLAIN_HTTP),
        (b"OPTIO", FirstRecord.PLAIN_HTTP),
        (b"GET h", FirstRecord.NOT_TLS),  # an absolute-form request line is not among Go's starts
        (b"DELET", FirstRecord.NOT_TLS),
        (b"\x17\x03\x03\x00\x10", FirstRecord.NOT_TLS),  # application data first
        (b"\x16\x10\x00\x00\x10", FirstRecord.NOT_TLS),  # an impossible version
        (b"\x80\x2e\x01\x03\x01", FirstRecord.NOT_TLS),  # an SSLv2-style hello
    ],
)
def test_first_record_is_judged_as_go_does(head: bytes, kind: FirstRecord) -> None:
    assert classify(head) is kind
    assert classify(head + b"more bytes") is kind


def _error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, reason)
    exc.reason = reason
    return exc


NO_CERT = _error("PEER_DID_NOT_RETURN_A_CERTIFICATE")
HANDSHAKE_FAILURE_12 = b"\x15\x03\x03\x00\x02\x02\x28"


def test_a_tls12_handshake_without_the_required_certificate_ends_with_bad_certificate() -> None:
    assert go_alert(HANDSHAKE_FAILURE_12, NO_CERT) == b"\x15\x03\x03\x00\x02\x02\x2a"


@pytest.mark.parametrize(
    ("outgoing", "exc"),
    [
        (HANDSHAKE_FAILURE_12, _error("NO_SHARED_CIPHER")),  # Go says handshake_failure too
        (b"\x17\x03\x03\x00\x13" + bytes(19), NO_CERT),  # TLS 1.3: encrypted, left alone
        (HANDSHAKE_FAILURE_12 + b"\x00", NO_CERT),
        (b"", NO_CERT),
    ],
)
def test_other_alerts_are_sent_as_openssl_wrote_them(outgoing: bytes, exc: ssl.SSLError) -> None:
    assert go_alert(outgoing, exc) == outgoing
