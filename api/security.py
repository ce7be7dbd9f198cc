"""Bearer API keys for the write routes, and a request id on every request and log line."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import is_id

logger = logging.getLogger("lucidrec.access")


def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: with ``api.api_keys`` set, a write needs ``Authorization: Bearer <key>``.

    Keys are compared as bytes: ``hmac.compare_digest`` refuses ``str`` with non-ASCII
    characters (a TypeError, a 500), and a header's text is its bytes read as Latin-1.
    """
    keys = connection.app.state.services.settings.api.api_keys
    if not keys:
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    given = token.encode("latin-1")
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(given, key.encode()) for key in keys
    ):
        raise NotAuthorizedException(detail="this route needs 'Authorization: Bearer <api key>'")


def request_id_of(headers: dict[bytes, bytes]) -> str:
    """The client's ``X-Request-ID`` if it follows the id rules, else a new id: the id is
    echoed in a header and logged, so bytes that are not an id (non-UTF-8, control
    characters, megabytes) never reach either."""
    given = headers.get(b"x-request-id", b"").decode("latin-1")
    return given if is_id(given) else uuid.uuid4().hex


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give each request an id (``X-Request-ID`` in or a new one), echo it, log a JSON line,
    and count it in the metrics: latency by route template and variant (a handler that
    assigns one stores it in ``scope["state"]["variant"]``), requests by route and status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = request_id_of(dict(scope.get("headers", [])))
        state["request_id"] = request_id
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = scope.get("path_template") or "unmatched"
            services = getattr(scope["litestar_app"].state, "services", None)
            if services is not None:
                metrics = services.metrics
                metrics.latency.labels(route, state.get("variant", "")).observe(seconds)
                metrics.requests.labels(route, str(status)).inc()
            logger.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "ms": round(1000 * seconds, 2),
                    }
                )
            )

    return middleware
