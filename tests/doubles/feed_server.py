"""Feed servers for tests and benchmarks: well-behaved and hostile, on 127.0.0.1, port 0.

    async with FeedServer() as server:
        url = server.add_feed("/news.xml", body, etag='"v1"')
        server.add_drip("/drip.xml")            # one byte a second
        server.add_gzip_bomb("/bomb.xml")       # ~1 MB of gzip that inflates to 1 GB
        ...
        server.requests_for("/news.xml")        # what the bot sent (headers)

Every hostile route stops by itself (bounded bytes and time), and stops early when the
client goes away.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RSS_TYPE = "application/rss+xml; charset=utf-8"


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]  # lower-case names


@dataclass
class _Feed:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    headers: dict[str, str] = field(default_factory=dict)


def rss(items: list[dict[str, str]], *, title: str = "Test feed", extra_channel: str = "") -> bytes:
    """A small RSS 2.0 document; each item dict may hold title, link, guid, description, pubDate."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
        f"<title>{title}</title><link>https://example.org/</link><description>test</description>",
        extra_channel,
    ]
    for item in items:
        parts.append("<item>")
        for tag in ("title", "link", "guid", "pubDate"):
            if tag in item:
                parts.append(f"<{tag}>{item[tag]}</{tag}>")
        if "description" in item:
            parts.append(f"<description><![CDATA[{item['description']}]]></description>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def quadratic_blowup_feed(entity_bytes: int = 10_000, references: int = 12_000) -> bytes:
    """The "billion laughs" lite: one big internal entity referenced thousands of times (~46 KB)."""
    refs = "&a;" * references
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<!DOCTYPE rss [<!ENTITY a "{"x" * entity_bytes}">]>\n'
        '<rss version="2.0"><channel><title>blow-up</title><link>https://example.org/</link>'
        "<description>d</description><item><title>"
        f"{refs}</title><link>https://example.org/blowup</link>"
        "<description>entity test</description></item></channel></rss>"
    ).encode()


class FeedServer:
    """An aiohttp server on 127.0.0.1 whose routes the test sets up."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self._feeds: dict[str, _Feed] = {}
        self.requests: list[SeenRequest] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_for(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            SeenRequest(request.path, {k.lower(): v for k, v in request.headers.items()})
        )
        handler = self._routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    def route(self, path: str, handler: Handler) -> str:
        """Any handler of your own at `path`; returns its URL."""
        self._routes[path] = handler
        return self.url(path)

    # --- well-behaved ------------------------------------------------------------------

    def add_feed(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = RSS_TYPE,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: dict[str, str] | None = None,
        gzip: bool = False,
    ) -> str:
        """A feed that honours If-None-Match / If-Modified-Since with 304."""
        self._feeds[path] = _Feed(body, content_type, etag, last_modified, dict(headers or {}))

        async def handler(request: web.Request) -> web.StreamResponse:
            feed = self._feeds[path]
            validators: dict[str, str] = {}
            if feed.etag:
                validators["ETag"] = feed.etag
            if feed.last_modified:
                validators["Last-Modified"] = feed.last_modified
            if (feed.etag and request.headers.get("If-None-Match") == feed.etag) or (
                feed.last_modified
                and request.headers.get("If-Modified-Since") == feed.last_modified
            ):
                return web.Response(status=304, headers=validators)
            body = feed.body
            out_headers = {**validators, **feed.headers, "Content-Type": feed.content_type}
            if gzip:
                body = zlib.compress(body, wbits=16 + zlib.MAX_WBITS)
                out_headers["Content-Encoding"] = "gzip"
            return web.Response(body=body, headers=out_headers)

        return self.route(path, handler)

    def set_feed_body(self, path: str, body: bytes, *, etag: str | None = None) -> None:
        """Changes what an `add_feed` route serves (and its ETag)."""
        self._feeds[path].body = body
        self._feeds[path].etag = etag

    def add_file(
        self,
        path: str,
        file: Path,
        *,
        content_type: str = RSS_TYPE,
        headers: dict[str, str] | None = None,
    ) -> str:
        return self.add_feed(path, file.read_bytes(), content_type=content_type, headers=headers)

    def add_slow(self, path: str, body: bytes, *, delay: float) -> str:
        """Answers after `delay` seconds (a slow but honest server)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(delay)
            return web.Response(body=body, content_type="application/rss+xml")

        return self.route(path, handler)

    # --- hostile -----------------------------------------------------------------------

    def add_status(
        self, path: str, status: int, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> str:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, body=body, headers=headers)

        return self.route(path, handler)

    def add_redirect(self, path: str, to: str, *, status: int = 301) -> str:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": to})

        return self.route(path, handler)

    def add_redirect_loop(self, path: str) -> str:
        """/path → /path?n=1 → /path?n=2 … forever (a fresh URL each time, so no cache helps)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            n = int(request.query.get("n", "0")) + 1
            return web.Response(status=302, headers={"Location": f"{path}?n={n}"})

        return self.route(path, handler)

    def add_html_page(self, path: str) -> str:
        page = (
            b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head>"
            b"<body><p>Not a feed.</p></body></html>"
        )
        return self.add_feed(path, page, content_type="text/html; charset=utf-8")

    def add_drip(self, path: str, *, interval: float = 1.0, max_bytes: int = 600) -> str:
        """Starts a valid-looking feed, then sends one byte every `interval` seconds."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": RSS_TYPE})
            await response.prepare(request)
            body = rss([{"title": "drip", "link": "https://example.org/drip"}]) * 10
            try:
                for i in range(min(max_bytes, len(body))):
                    await response.write(body[i : i + 1])
                    await asyncio.sleep(interval)
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            return response

        return self.route(path, handler)

    def add_endless(self, path: str, *, chunk_bytes: int = 65536, max_total: int = 1 << 30) -> str:
        """An RSS prologue followed by `max_total` bytes of junk, as fast as the client reads."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": RSS_TYPE})
            await response.prepare(request)
            chunk = b"<!-- " + b"x" * (chunk_bytes - 10) + b" -->\n"
            try:
                await response.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
                for _ in range(max_total // len(chunk)):
                    await response.write(chunk)
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            return response

        return self.route(path, handler)

    def add_gzip_bomb(self, path: str, *, inflated_mb: int = 1024) -> str:
        """Content-Encoding: gzip, ~1 KB per MB inflated: 1 GB from about 1 MB on the wire.

        A sequence of gzip members (valid gzip, RFC 1952), each 1 MB of zeros, made once:
        compressing as it sends would hog the event loop the test shares with the client.
        """
        head = zlib.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>', wbits=31)
        member = zlib.compress(b"\0" * (1 << 20), 9, wbits=31)

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(
                headers={"Content-Type": RSS_TYPE, "Content-Encoding": "gzip"}
            )
            await response.prepare(request)
            try:
                await response.write(head)
                for _ in range(inflated_mb):
                    await response.write(member)
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            return response

        return self.route(path, handler)

    def add_path_body(self, path: str, local_path: str) -> str:
        """A 200 whose whole body is the path of a local file (feedparser would open it)."""
        return self.add_feed(path, local_path.encode(), content_type="application/rss+xml")
