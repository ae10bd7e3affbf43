"""Why a vendor request failed: the one place where transport errors and unwanted
answers become a poll's reason (:func:`upstream_error`).

The ``reason`` is short and bounded (a label value and on the status page), the
``detail`` says where and what happened in words a person can act on. Neither ever
holds the request's text or headers (so never the API key): only the types of the
exceptions, the host, the status and the vendor's own error message, which has been
scrubbed with the rest of the body.
"""

from __future__ import annotations

import errno
import ssl
import time
from typing import NamedTuple

import aiohttp
import httpx

from exporter.core.errors import UpstreamError
from exporter.upstream.encoding import UndecodableBody
from exporter.upstream.retry import hint_note, parse_retry_hint
from exporter.upstream.vendorjson import read_json

# What sending a request and reading its answer can raise: httpx's errors, aiohttp's
# own (httpx-aiohttp passes on those it has no httpx class for, such as a malformed
# status line) and the socket's.
TRANSPORT_ERRORS = (httpx.HTTPError, aiohttp.ClientError, OSError)


class Answer(NamedTuple):
    """What the vendor sent back, its body decoded. The body is cut short once it (or
    what came over the wire for it) is past the cap, and ``too_large`` says so;
    ``refused`` says why it could not be decoded, if it could not."""

    status: int
    headers: httpx.Headers
    body: bytes | bytearray
    refused: UndecodableBody | None = None
    too_large: bool = False


def _error_message(body: bytes | bytearray) -> str:
    """The vendor's own error message, if the body carries one, cut short."""
    try:
        doc = read_json(body, "")
    except UpstreamError:
        return ""
    if isinstance(doc, dict):
        inner = doc.get("error", doc)
        if isinstance(inner, dict):
            msg = inner.get("message")
            if isinstance(msg, str):
                return msg[:200]
    return ""


def upstream_error(
    what: str,
    failure: BaseException | Answer,
    *,
    timeout: float,
    max_body_bytes: int,
    where: str = "the vendor",
    setting: str | None = None,
    answering: bool = False,
) -> UpstreamError:
    """A failed exchange with the vendor as the error a poll reports: the one place where
    transport errors and unwanted answers become reasons.

    ``failure`` is what sending the request or reading its answer raised, an answer
    that is not wanted (its status, or a body past ``max_body_bytes``), or why a wanted
    answer's body could not be decoded. ``what`` names the request in the detail,
    ``answering`` whether the answer had begun to arrive (its head) when it failed,
    ``setting`` the config key that gave ``where`` (named when it may be wrong). (A
    body that decodes but is not the JSON expected is refused where it is read:
    ``exporter.upstream.vendorjson``.)
    """
    if isinstance(failure, UndecodableBody):
        return UpstreamError(failure.reason, f"{what}: {failure}")
    if isinstance(failure, Answer):
        status = failure.status
        if failure.too_large or len(failure.body) > max_body_bytes:
            return UpstreamError("body_too_large", f"{what}: body over {max_body_bytes} bytes")
        if status in (401, 403):
            reason = "unauthorized"
        elif status == 404:
            reason = "not_found"
        elif status == 429:
            reason = "rate_limited"
        elif status >= 500:
            reason = "server_error"
        else:
            reason = "client_error"
        hint = parse_retry_hint(failure.headers, time.time()) if status == 429 or status >= 500 else None
        msg = _error_message(failure.body)
        return UpstreamError(
            reason,
            f"{what} answered {status}" + (f": {msg}" if msg else "") + hint_note(hint),
            retry_after=hint,
        )
    # httpx-aiohttp raises httpx.ConnectTimeout for every aiohttp connection error, a
    # reset or a server hanging up included; aiohttp's own error, kept as the cause,
    # tells a timeout from the others.
    cause = failure.__cause__ if isinstance(failure.__cause__, aiohttp.ClientError) else failure
    if isinstance(cause, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return UpstreamError("timeout", f"{what}: could not connect to {where} within {timeout:.3g}s")
    if type(cause) is TimeoutError and answering:  # the attempt's deadline (VendorClient._attempt)
        return UpstreamError(
            "timeout", f"{what}: {where} did not send its whole answer within {timeout:.3g}s"
        )
    if isinstance(cause, TimeoutError | httpx.TimeoutException):
        return UpstreamError("timeout", f"{what}: {where} sent no answer within {timeout:.3g}s")
    return UpstreamError("connection_error", f"{what}: {connection_problem(cause, where, setting)}")


def host_port(url: httpx.URL) -> str:
    """Where a request went, as its failures say it: the URL's path and query are left
    out (they are not where, and could carry anything)."""
    return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


def address_setting(url: str, base_url: str) -> str:
    """The config key that gave ``url``'s address: ``base_url`` for the base URL or a path
    under it, else a relayed endpoint's own ``url``. Being a prefix is not enough:
    ``http://h:80`` begins ``http://h:8080/metrics``."""
    rest = url[len(base_url) :] if url.startswith(base_url) else "-"
    return "base_url" if rest[:1] in ("", "/", "?", "#") else "url"


def connection_problem(cause: BaseException, where: str, setting: str | None = None) -> str:
    """What went wrong on the way to ``where`` (host:port), in words a person can act on;
    where the address itself may be wrong (no such host, nothing listening, the wrong
    scheme for the port), the config key that gave it (``setting``).

    Only the exception's type and the host are used: never its text, which for some
    libraries repeats the request.
    """
    check = f" (check {setting})" if setting else ""
    if isinstance(cause, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve the host name of {where}{check}"
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {where} is not trusted (verification failed)"
    if isinstance(cause, aiohttp.ClientSSLError | ssl.SSLError):
        return f"the TLS handshake with {where} failed{check}"
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection without answering"
    if isinstance(cause, aiohttp.ClientPayloadError):
        return f"the answer from {where} was cut short"
    if isinstance(cause, aiohttp.ClientResponseError):
        return f"{where} answered with something that is not HTTP{check}"
    os_error = cause.os_error if isinstance(cause, aiohttp.ClientConnectorError) else cause
    code = os_error.errno if isinstance(os_error, OSError) else None
    if isinstance(os_error, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return (
            f"connection to {where} refused (nothing listens there?{f' check {setting}' if setting else ''})"
        )
    if (
        isinstance(os_error, ConnectionResetError | aiohttp.ClientConnectionResetError)
        or code == errno.ECONNRESET
    ):
        return f"connection to {where} reset"
    if isinstance(cause, aiohttp.ClientConnectorError):
        reason = os_error.strerror if isinstance(os_error, OSError) and os_error.strerror else "failed"
        return f"cannot connect to {where}: {reason}"
    return f"{type(cause).__name__} talking to {where}"
