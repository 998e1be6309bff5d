"""Headers every response of `kabar serve` carries, so its pages are safe to frame and to
link from: no MIME sniffing, no Referer (the URLs hold tokens), and a Content-Security-
Policy on HTML that allows only what the pages need and no framing. A page that needs less
(the subscribe pages: one hashed inline style) sets its own policy, which is kept."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Pages from feed storage (the archive, the feed index): their inline styles, and the
# articles' images; no scripts, no plugins, no framing, forms only back to kabar.
STORED_PAGE_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class SecurityHeaders:
    """Pure ASGI middleware (no body buffering): adds the headers at response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", STORED_PAGE_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)
