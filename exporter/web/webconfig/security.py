"""What the HTTP server takes from the web config: a listener, middlewares, metrics, reloads.

Request order, outermost first: configured headers (on every response the app makes,
errors included), the rate limit (429), basic auth (401, or 503 when the bcrypt queue
is full), then the route. TLS and client-certificate checks happen on the connection,
before any request is read.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.web.httpguard import ConnectionGuard, GuardedSite
from exporter.web.webconfig.auth import BasicAuth, RateLimiter, Verdict
from exporter.web.webconfig.model import WebConfig, WebConfigError, load_web_config
from exporter.web.webconfig.site import TlsSite
from exporter.web.webconfig.tls import TlsSettings, build_tls, expiry_text

log = logging.getLogger("exporter.web")

REFUSAL_REASONS = ("unauthorized", "auth_busy", "rate_limited", "client_san", "tls_handshake")


def _tls_for(cfg: WebConfig, path: Path) -> TlsSettings | None:
    tls = cfg.tls_server_config
    if not tls.enabled:
        return None
    try:
        return build_tls(tls, path.parent)
    except WebConfigError as exc:
        raise WebConfigError(f"{path}: {exc}") from None


class WebSecurity:
    """The web config in force; a reload replaces each part it changes whole, never edits
    it in place, and keeps the others as they are (the rate limit's bucket, the logins
    already checked)."""

    def __init__(self, path: Path, cfg: WebConfig, tls: TlsSettings | None) -> None:
        self.path = path
        self.tls = tls
        self.headers: dict[str, str] = {}
        self.limiter: RateLimiter | None = None
        self.auth = BasicAuth(cfg.basic_auth_users)
        self.refused: Counter[str] = Counter()
        self._apply(cfg, tls)

    @classmethod
    def from_file(cls, path: Path) -> WebSecurity:
        cfg = load_web_config(path)
        return cls(path, cfg, _tls_for(cfg, path))

    def prepare_reload(self) -> Callable[[], None]:
        """Read the file again and build everything it needs; raise WebConfigError, else return how to apply it."""
        cfg = load_web_config(self.path)
        tls = _tls_for(cfg, self.path)
        if (tls is None) != (self.tls is None):
            raise WebConfigError(f"{self.path}: turning TLS on or off needs a restart")

        def apply() -> None:
            self._apply(cfg, tls)
            self.auth.set_users(cfg.basic_auth_users)

        return apply

    def _apply(self, cfg: WebConfig, tls: TlsSettings | None) -> None:
        self.tls = tls  # new connections handshake with this context from now on
        self.headers = {k: v for k, v in cfg.http_server_config.headers.items() if v}
        rate = cfg.rate_limit
        kept = self.limiter
        if rate.interval <= 0:
            self.limiter = None
        elif kept is None or (kept.interval, kept.burst) != (rate.interval, rate.burst):
            self.limiter = RateLimiter(rate.interval, rate.burst)
        if tls is None and "tls_server_config" in cfg.model_fields_set:
            log.warning(
                "tls_server_config sets no certificate: serving plain HTTP, as exporter-toolkit does",
                extra={"file": str(self.path)},
            )
        if tls is not None:
            self._warn_about(tls)

    def _warn_about(self, tls: TlsSettings) -> None:
        for warning in tls.warnings:
            log.warning(warning, extra={"file": str(self.path)})
        now = time.time()
        expiries = [("server certificate", tls.server_expiry), ("client CA", tls.client_ca_expiry)]
        for what, expiry in expiries:
            if expiry is not None and expiry <= now:
                log.warning(
                    f"the {what} in the web config has expired", extra={"not_after": expiry_text(expiry)}
                )

    def close(self) -> None:
        self.auth.close()

    # --- serving -----------------------------------------------------------------------

    def site(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> web.BaseSite:
        if self.tls is None:
            return GuardedSite(runner, host, port, guard)
        return TlsSite(runner, host, port, self._current_tls, self._refuse, guard)

    def _current_tls(self) -> TlsSettings:
        assert self.tls is not None
        return self.tls

    def _refuse(self, reason: str) -> None:
        self.refused[reason] += 1

    def _set_headers(self, resp: web.StreamResponse) -> None:
        for name, value in self.headers.items():
            resp.headers[name] = value

    @property
    def middlewares(self) -> list[Middleware]:
        @web.middleware
        async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                self._set_headers(exc)
                raise
            except Exception:
                log.exception("request failed", extra={"path": request.path})
                resp = web.Response(status=500, text="Internal Server Error\n")
            self._set_headers(resp)
            if request.headers.get("Expect") and not request.content.is_eof():
                resp.force_close()  # the client may still send the body we did not ask for
            return resp

        @web.middleware
        async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.limiter is not None and not self.limiter.allow():
                self._refuse("rate_limited")
                return web.Response(status=429, text="Too Many Requests\n")
            return await handler(request)

        @web.middleware
        async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.auth.users:
                return await handler(request)
            verdict = await self.auth.check(request.headers.get("Authorization", ""))
            if verdict is Verdict.OK:
                return await handler(request)
            if verdict is Verdict.BUSY:
                self._refuse("auth_busy")
                return web.Response(
                    status=503, text="Too many password checks at once; retry\n", headers={"Retry-After": "1"}
                )
            self._refuse("unauthorized")
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="inference-exporter"'},
            )

        return [headers, rate_limit, basic_auth]

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect:`` handling for every route: never an interim ``100 Continue``.

        Go's server sends ``100 Continue`` only when a handler reads the body; no route
        here does, so a request (authorised or not) gets its final answer directly, and
        a 401 is never preceded by an invitation to send the body.
        """
        if request.headers.get("Expect", "").lower() == "100-continue":
            return None
        resp = web.Response(status=417, text="Expectation Failed\n")
        self._set_headers(resp)
        return resp

    def add_fallback(self, app: web.Application) -> None:
        """A last route answering 404/405 as aiohttp would, but with this ``Expect:`` handling.

        aiohttp's own 404/405 answers bypass a route's expect handler and would send
        ``100 Continue`` before the 401.
        """
        fallback = app.router.add_resource("/{tail:.*}")

        async def no_route(request: web.Request) -> web.StreamResponse:
            allowed: set[str] = set()
            for resource in request.app.router.resources():
                if resource is not fallback:
                    allowed |= (await resource.resolve(request))[1]
            if allowed:
                raise web.HTTPMethodNotAllowed(request.method, allowed)
            raise web.HTTPNotFound()

        fallback.add_route("*", no_route, expect_handler=self.expect)

    # --- metrics -----------------------------------------------------------------------

    def collector(self) -> Collector:
        return _WebCollector(self)


class _WebCollector(Collector):
    def __init__(self, security: WebSecurity) -> None:
        self._security = security

    def collect(self) -> Iterable[Metric]:
        expiry = GaugeMetricFamily(
            "inference_exporter_web_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the earliest certificate expires, of the served chain (certificate=server) "
            "or of the client CAs (certificate=client_ca), as loaded from the web config.",
            labels=["certificate"],
        )
        tls = self._security.tls
        if tls is not None:
            expiry.add_metric(["server"], tls.server_expiry)
            if tls.client_ca_expiry is not None:
                expiry.add_metric(["client_ca"], tls.client_ca_expiry)
        refused = CounterMetricFamily(
            "inference_exporter_web_refusals",
            "Requests (or TLS connections, for client_san and tls_handshake) refused by the web config's "
            "rules, by reason: unauthorized, auth_busy (bcrypt queue full), rate_limited, client_san "
            "(client_allowed_sans), tls_handshake (failed TLS handshakes, plain HTTP on the TLS port included).",
            labels=["reason"],
        )
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], float(self._security.refused[reason]))
        return [expiry, refused]
