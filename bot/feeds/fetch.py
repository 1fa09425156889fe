"""Feed fetching with hard limits: conditional GET, one deadline, a decoded-size cap.

httpx's own timeouts are per phase and per read, so a server dripping a byte a second
never times out: the whole fetch (redirects included) runs under one `asyncio.timeout`.
The body is streamed raw and decompressed here, in bounded steps, so that a gzip bomb
stops at the cap instead of being inflated in memory first.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import re
import socket
import ssl
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin

import httpx

from bot import __version__
from bot.config import Settings
from bot.feeds.errors import FeedError
from bot.feeds.normalise import one_line
from bot.urls import http_url_problem

USER_AGENT = f"press-digest/{__version__} (+https://github.com/press-digest/press-digest)"
MAX_REDIRECTS = 5
MAX_HINT_SECONDS = 24 * 3600  # no feed's caching hint keeps us away for more than a day
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Validators:
    """What we remember of the last successful fetch of a feed."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass
class FetchResult:
    status: Literal["ok", "not_modified"]
    url: str  # final URL, after redirects: the base for relative links
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    moved_to: str | None  # where the permanent redirects (301/308) at the start lead
    max_age: int | None  # Cache-Control: max-age, seconds


def describe_size(limit: int) -> str:
    if limit >= _MIB:
        return f"{limit / _MIB:g} MB"
    if limit >= 1024:
        return f"{limit / 1024:g} KB"
    return f"{limit} bytes"


def check_http_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL; FeedError("bad_url") otherwise."""
    if (problem := http_url_problem(url)) is not None:
        raise FeedError("bad_url", f"{url[:200]!r}: {problem}")
    return url


class _CappedBody:
    """Collects a response body, decoding gzip/deflate in bounded steps, up to `limit` bytes."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []
        encoding = content_encoding.strip().lower()
        self._decoder: zlib._Decompress | None = None
        self._deflate_pending = False
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._deflate_pending = True  # zlib-wrapped or raw: decided by the first bytes
        elif encoding not in ("", "identity"):
            raise FeedError("bad_encoding", f"unsupported Content-Encoding {encoding[:40]!r}")

    def _append(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise FeedError("too_large", f"body over {describe_size(self.limit)}")
        if data:
            self.parts.append(data)

    def feed(self, data: bytes) -> None:
        if self._deflate_pending and data:
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            self._deflate_pending = False
        if self._decoder is None:
            self._append(data)
            return
        try:
            while data:
                decoder = self._decoder
                self._append(decoder.decompress(data, self.limit - self.size + 1))
                data = decoder.unconsumed_tail
                if not data and decoder.eof and decoder.unused_data.strip(b"\x00"):
                    # a second gzip member follows
                    data = decoder.unused_data
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            raise FeedError("bad_encoding", f"the compressed body is corrupt ({exc})") from None

    def body(self) -> bytes:
        return b"".join(self.parts)


def _retry_after_seconds(value: str | None) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_HINT_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, min(int((when - datetime.now(UTC)).total_seconds()), MAX_HINT_SECONDS))


def _max_age(cache_control: str | None) -> int | None:
    if not cache_control:
        return None
    match = _MAX_AGE.search(cache_control)
    return min(int(match.group(1)), MAX_HINT_SECONDS) if match else None


def _connect_error(exc: BaseException) -> FeedError:
    """A connection failure → "tls: …" or "connect: …", one line."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = one_line(str(exc)) or type(exc).__name__
    if any(isinstance(c, ssl.SSLError) for c in chain) or "SSL" in text or "certificate" in text:
        detail = next((one_line(str(c)) for c in chain if isinstance(c, ssl.SSLError)), text)
        return FeedError("tls", detail[:200])
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return FeedError("connect", "connection refused")
    if any(isinstance(c, socket.gaierror) for c in chain):
        return FeedError("connect", "the host name could not be resolved")
    return FeedError("connect", text[:200])


def _http_error(response: httpx.Response) -> FeedError:
    phrase = one_line(response.reason_phrase or "") or "error"
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = _retry_after_seconds(response.headers.get("retry-after"))
    return FeedError(f"http_{response.status_code}", phrase[:100], retry_after=retry_after)


def make_client(settings: Settings) -> httpx.AsyncClient:
    """One client per polling round: connections are pooled across the feeds of a host."""
    return httpx.AsyncClient(
        follow_redirects=False,  # followed by hand: count them and check each target's scheme
        timeout=httpx.Timeout(settings.fetch_timeout),
        limits=httpx.Limits(
            max_connections=settings.fetch_concurrency * 2,
            max_keepalive_connections=settings.fetch_concurrency,
        ),
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
    )


async def fetch_feed(
    client: httpx.AsyncClient,
    url: str,
    *,
    known: Validators = Validators(),
    deadline: float,
    max_bytes: int,
) -> FetchResult:
    """GETs a feed within `deadline` seconds in all; FeedError names whatever went wrong."""
    check_http_url(url)
    try:
        async with asyncio.timeout(deadline):
            return await _fetch(client, url, known, max_bytes)
    except (TimeoutError, httpx.TimeoutException):
        raise FeedError("timeout", f"no complete response within {deadline:g} s") from None
    except httpx.ConnectError as exc:
        raise _connect_error(exc) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise FeedError("bad_url", one_line(str(exc))[:200]) from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        detail = one_line(str(exc)) or type(exc).__name__
        raise FeedError(
            "connection", f"the server broke off the response ({detail[:150]})"
        ) from None
    except httpx.HTTPError as exc:
        detail = one_line(str(exc)) or type(exc).__name__
        raise FeedError("connection", detail[:200]) from None


async def _fetch(
    client: httpx.AsyncClient, url: str, known: Validators, max_bytes: int
) -> FetchResult:
    headers: dict[str, str] = {}
    if known.etag:
        headers["If-None-Match"] = known.etag
    if known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    current = url
    moved_to: str | None = None
    only_permanent_so_far = True
    for _hop in range(MAX_REDIRECTS + 1):
        async with client.stream("GET", current, headers=headers) as response:
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FeedError(f"http_{status}", "redirect without a Location header")
                target = urljoin(current, location.strip())
                try:
                    check_http_url(target)
                except FeedError as exc:
                    raise FeedError(
                        "bad_url", f"redirected to a URL we do not fetch: {exc.reason}"
                    ) from None
                if only_permanent_so_far and status in _PERMANENT:
                    moved_to = target
                else:
                    only_permanent_so_far = False
                current = target
                continue
            etag = response.headers.get("etag")
            last_modified = response.headers.get("last-modified")
            max_age = _max_age(response.headers.get("cache-control"))
            if status == 304:
                return FetchResult(
                    "not_modified", current, b"", "", etag or known.etag,
                    last_modified or known.last_modified, known.body_hash, moved_to, max_age,
                )  # fmt: skip
            if not 200 <= status < 300:
                raise _http_error(response)
            declared = response.headers.get("content-length", "")
            encoding = response.headers.get("content-encoding", "")
            if declared.isdigit() and not encoding and int(declared) > max_bytes:
                raise FeedError("too_large", f"body over {describe_size(max_bytes)}")
            collected = _CappedBody(encoding, max_bytes)
            async for chunk in response.aiter_raw():
                collected.feed(chunk)
            body = collected.body()
            if body[:2] == b"\x1f\x8b":  # gzip bytes served without Content-Encoding
                try:
                    unzipped = _CappedBody("gzip", max_bytes)
                    unzipped.feed(body)
                    body = unzipped.body()
                except FeedError as exc:
                    if exc.kind == "too_large":
                        raise
            body_hash = hashlib.sha256(body).hexdigest()
            # A 200 carries the body itself: only its hash says it is unchanged. A server that
            # ignored our If-None-Match may keep one ETag or Last-Modified for every version.
            unchanged = body_hash == known.body_hash
            return FetchResult(
                "not_modified" if unchanged else "ok",
                current,
                b"" if unchanged else body,
                response.headers.get("content-type", ""),
                etag,
                last_modified,
                body_hash,
                moved_to,
                max_age,
            )
    raise FeedError("too_many_redirects", f"more than {MAX_REDIRECTS}")
