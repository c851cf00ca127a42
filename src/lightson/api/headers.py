"""Security headers on every answer, the dashboard's pages and the API's alike.

The dashboard loads its own ``app.js`` and ``style.css`` and nothing from another origin
(sites run on closed networks, and a script from elsewhere could read the token in local
storage). Styles may be inline: the dashboard sets a bar's width in a ``style`` attribute,
and the season report, shown in a sandboxed frame of the same page (``srcdoc``, no
scripts), carries its own ``<style>`` and its figures as ``data:`` images. No page may be
framed by another (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``); a ``srcdoc``
frame is not fetched, so the Reports page still shows its report.

A pure ASGI middleware: the headers are added to whatever answer goes out, the framework's
own errors and the body limit's 413 included.
"""

from __future__ import annotations

from lightson.api.limits import App, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every HTTP answer (replacing any the app set)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
