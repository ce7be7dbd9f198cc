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

logger = logging.getLogger("lucidrec.access")


def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: with ``api.api_keys`` set, a write needs ``Authorization: Bearer <key>``."""
    keys = connection.app.state.services.settings.api.api_keys
    if not keys:
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(token, k) for k in keys):
        raise NotAuthorizedException(detail="this route needs 'Authorization: Bearer <api key>'")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give each request an id (``X-Request-ID`` in or a new one), echo it, log a JSON line,
    and count it in the metrics: latency by route template and variant (a handler that
    assigns one stores it in ``scope["state"]["variant"]``), requests by route and status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        request_id = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        state = scope.setdefault("state", {})
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
