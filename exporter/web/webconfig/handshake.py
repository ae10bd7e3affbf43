"""What a TLS port says to a client it refuses, as Go's HTTPS server says it.

A Go exporter answers plain HTTP on its TLS port with a short ``400`` (so a
misconfigured scrape shows "Client sent an HTTP request to an HTTPS server" instead of
a reset), and ends a failed handshake with the TLS alert that names the problem
(``handshake_failure``, ``protocol_version``, ``certificate_required``,
``bad_certificate``, ``unknown_ca``…), which Prometheus shows in the target's error.
asyncio's TLS protocol drops the alert OpenSSL writes: on a handshake error it closes
the socket without sending what is left in its outgoing buffer. ``AlertingTls`` sends
it first.
"""

from __future__ import annotations

import enum
import ssl
from asyncio import sslproto, transports

# Go's answer, byte for byte (net/http, Server.serve).
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
RECORD_HEADER = 5
# The request starts Go takes for plain HTTP; any other start is left to the TLS layer.
_HTTP_STARTS = frozenset((b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO"))
_HANDSHAKE, _ALERT = 0x16, 0x15
# Read buffer of one connection's TLS protocol: two full TLS records. asyncio's default
# (256 KiB, zero-filled at accept) would make every open TLS connection cost that much.
READ_BUFFER = 32 * 1024


class FirstRecord(enum.Enum):
    TLS = "tls"
    PLAIN_HTTP = "plain_http"
    NOT_TLS = "not_tls"


def classify(header: bytes) -> FirstRecord:
    """What the first five bytes a client sent are, judged as Go's crypto/tls and net/http do.

    Go closes (without an alert) a connection whose first record is neither a handshake
    nor an alert, or carries an impossible version; net/http then answers 400 if those
    bytes look like the start of an HTTP request.
    """
    if header[:RECORD_HEADER] in _HTTP_STARTS:
        return FirstRecord.PLAIN_HTTP
    if len(header) < 3 or header[0] not in (_HANDSHAKE, _ALERT) or header[1] >= 0x10:
        return FirstRecord.NOT_TLS
    return FirstRecord.TLS


# OpenSSL ends a TLS 1.2 handshake whose client sent no certificate (when one is
# required) with handshake_failure; Go with bad_certificate. The alert is still in
# plaintext then (the server has not switched to the session keys), so it can be
# corrected: record type 21, version, length 2, level fatal (2), description.
_HANDSHAKE_FAILURE, _BAD_CERTIFICATE = 40, 42
_NO_CERTIFICATE = "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def go_alert(outgoing: bytes, exc: BaseException) -> bytes:
    """The bytes to send after a failed handshake: OpenSSL's, with Go's alert where they differ."""
    if (
        getattr(exc, "reason", None) == _NO_CERTIFICATE
        and len(outgoing) == 7
        and outgoing[0] == _ALERT
        and outgoing[1] == 0x03
        and outgoing[3:6] == b"\x00\x02\x02"
        and outgoing[6] == _HANDSHAKE_FAILURE
    ):
        return outgoing[:6] + bytes((_BAD_CERTIFICATE,))
    return outgoing


class AlertingTls(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, except that a failed handshake sends its alert."""

    max_size = READ_BUFFER

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        transport = self._transport
        # The protocol's outgoing buffer (asyncio 3.11 and later; not in the type stubs).
        outgoing = getattr(self, "_outgoing", None)
        if isinstance(handshake_exc, ssl.SSLError) and transport and isinstance(outgoing, ssl.MemoryBIO):
            alert = go_alert(outgoing.read(), handshake_exc)
            if alert and isinstance(transport, transports.WriteTransport):
                # Written before asyncio closes the socket: a few bytes on an empty
                # send buffer go out at once.
                transport.write(alert)
        super()._on_handshake_complete(handshake_exc)
