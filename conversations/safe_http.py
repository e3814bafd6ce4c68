"""Downloads of URLs that came from outside (webhooks, provider answers), safe against SSRF.

Every hop (the first URL and each redirect) is resolved and refused before any connection if
a resolved address is loopback, private, link-local (cloud metadata), multicast or otherwise
not globally routable. The connection itself then goes to the address that was checked, so a
DNS answer that changes between check and connect (rebinding) cannot slip through. The hosts
of the configured provider base URLs are exempt: the operator chose them (proxies, tests).

Bodies are streamed to a spooled temporary file under a byte cap; a Content-Length above the
cap is refused before reading, and a body longer than its Content-Length is cut off.

`post` sends to URLs staff configured (outgoing webhooks) through the same guard; hosts the
operator allowed for it (a CRM on the private network) are exempt for that call only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_CHUNK_BYTES = 64 * 1024
_SPOOL_BYTES = 1024 * 1024  # larger files go to disk while downloading, not to memory
_GENERIC_TYPES = {"application/octet-stream", "binary/octet-stream", ""}


class MediaFetchError(Exception):
    """A download failed; `is_transient` says whether trying again may work."""

    is_transient = False

    def __init__(self, reason: str, *, is_transient: bool | None = None) -> None:
        super().__init__(reason)
        if is_transient is not None:
            self.is_transient = is_transient


class UnsafeURL(MediaFetchError):
    """The URL (or a redirect) points where this server must not connect."""


class MediaTooLarge(MediaFetchError):
    """The file is over the cap for its type, or longer than its Content-Length said."""


class UnexpectedContentType(MediaFetchError):
    """The server sent a type that is not allowed for this kind of media."""


@dataclass
class Download:
    file: IO[bytes]  # positioned at 0; closed by the caller
    content_type: str
    size_bytes: int
    sha256: str


# Hosts exempt for the call under way only (`post`'s allowed_hosts), in this thread.
_exempt_for_call: ContextVar[frozenset[str]] = ContextVar("exempt_for_call", default=frozenset())


def exempt_hosts() -> set[str]:
    """Hosts of the provider base URLs the operator configured (and those allowed for this call)."""
    urls = (settings.WHATSAPP_GRAPH_URL, settings.TWILIO_API_URL)
    return {host for host in (urlsplit(url).hostname for url in urls if url) if host} | _exempt_for_call.get()


@contextmanager
def _exempt(hosts: frozenset[str]) -> Iterator[None]:
    token = _exempt_for_call.set(hosts)
    try:
        yield
    finally:
        _exempt_for_call.reset(token)


def is_forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve_public_address(host: str, port: int) -> str:
    """One address of `host`, after checking that every address it resolves to is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise MediaFetchError(f"cannot resolve {host}", is_transient=True) from exc
    addresses = [info[4][0] for info in infos]
    if not addresses or any(is_forbidden_address(address) for address in addresses):
        raise UnsafeURL(f"{host} resolves to a non-public address")
    return addresses[0]


def check_url(url: str) -> None:
    """Refuse, without connecting, a URL this server must not fetch."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in exempt_hosts():
        return
    if parts.scheme != "https" or not host:
        raise UnsafeURL(f"only https URLs are fetched, not {parts.scheme or 'schemeless'} ones")
    resolve_public_address(host, parts.port or 443)


def _no_hosts() -> Collection[str]:
    return ()


class _PinnedConnectionMixin:
    """Connect to the address that passed the check, keeping the host name for TLS and Host."""

    # Further hosts exempt for one session's calls (a tool's private hosts), read at connect time.
    extra_exempt: Callable[[], Collection[str]] = staticmethod(_no_hosts)

    def _new_conn(self):
        host = self._dns_host
        if host in exempt_hosts() or host in self.extra_exempt():
            return super()._new_conn()
        self._dns_host = resolve_public_address(host, self.port)
        try:
            return super()._new_conn()
        finally:
            self._dns_host = host


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def __init__(self, *, extra_exempt: Callable[[], Collection[str]] | None = None, **kwargs) -> None:
        self._extra_exempt = extra_exempt  # read by init_poolmanager, which HTTPAdapter's __init__ calls
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        pools: dict[str, type[HTTPConnectionPool]] = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}
        if self._extra_exempt is not None:
            pools = {scheme: _exempting(pool, self._extra_exempt) for scheme, pool in pools.items()}
        self.poolmanager.pool_classes_by_scheme = pools


def _exempting(pool: type[HTTPConnectionPool], hosts: Callable[[], Collection[str]]) -> type[HTTPConnectionPool]:
    connection = type(pool.ConnectionCls.__name__, (pool.ConnectionCls,), {"extra_exempt": staticmethod(hosts)})
    return type(pool.__name__, (pool,), {"ConnectionCls": connection})


def guarded_session(*, extra_exempt: Callable[[], Collection[str]] | None = None) -> requests.Session:
    session = requests.Session()
    # No environment proxies: the guard checks the address it connects to, which must be the target.
    session.trust_env = False
    session.mount("http://", GuardedAdapter(extra_exempt=extra_exempt))
    session.mount("https://", GuardedAdapter(extra_exempt=extra_exempt))
    return session


_session = guarded_session()


def fetch(
    url: str,
    *,
    max_bytes: int,
    allowed_types: frozenset[str] | None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    credential_hosts: frozenset[str] = frozenset(),
    declared_type: str = "",
    params: dict[str, str] | None = None,
) -> Download:
    """GET `url` into a temporary file, following redirects by hand so each hop is checked.

    `headers` and `auth` go only to hosts in `credential_hosts`. `allowed_types` None allows
    any type; a generic type (octet-stream) is judged by `declared_type` from the webhook.
    """
    for _ in range(settings.MEDIA_MAX_REDIRECTS + 1):
        check_url(url)
        with_credentials = urlsplit(url).hostname in credential_hosts
        try:
            response = _session.get(
                url,
                params=params,
                headers={"Accept-Encoding": "identity", **(headers if with_credentials and headers else {})},
                auth=auth if with_credentials else None,
                stream=True,
                allow_redirects=False,
                timeout=(3.05, settings.MEDIA_DOWNLOAD_TIMEOUT_SECONDS),
            )
        except requests.RequestException as exc:
            raise MediaFetchError(type(exc).__name__, is_transient=True) from exc
        with response:
            if response.is_redirect:
                url, params = urljoin(url, response.headers["Location"]), None
                continue
            if not response.ok:
                status = response.status_code
                # 404 is transient here: Twilio media lags the webhook, Meta media URLs expire.
                raise MediaFetchError(f"HTTP {status}", is_transient=status in (404, 408, 429) or status >= 500)
            content_type = _effective_type(response.headers.get("Content-Type", ""), declared_type)
            if allowed_types is not None and content_type not in allowed_types:
                raise UnexpectedContentType(f"unexpected content type {content_type or 'none'}")
            return _read_capped(response, max_bytes, content_type)
    raise UnsafeURL("too many redirects")


def post(
    url: str, *, body: bytes, headers: dict[str, str], timeout: float, allowed_hosts: frozenset[str] = frozenset()
) -> requests.Response:
    """POST `body` to `url` without following redirects (a redirect is an answer like any other),
    refused like `fetch` (UnsafeURL) unless its host is in `allowed_hosts`. The answer's body is
    not read past a few kilobytes."""
    with _exempt(allowed_hosts):
        check_url(url)
        response = _session.post(
            url, data=body, headers=headers, allow_redirects=False, timeout=(3.05, timeout), stream=True
        )
    with response:
        response.raw.read(4096, decode_content=False)
    return response


def _effective_type(header: str, declared: str) -> str:
    sent = header.split(";", 1)[0].strip().lower()
    return declared.split(";", 1)[0].strip().lower() if sent in _GENERIC_TYPES else sent


def _read_capped(response: requests.Response, max_bytes: int, content_type: str) -> Download:
    declared = _declared_length(response)
    if declared is not None and declared > max_bytes:
        raise MediaTooLarge(f"Content-Length {declared} over the cap of {max_bytes}")
    limit = max_bytes if declared is None else declared
    digest = hashlib.sha256()
    total = 0
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
    try:
        for chunk in response.iter_content(_CHUNK_BYTES):
            total += len(chunk)
            if total > limit:
                raise MediaTooLarge(f"body longer than {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
    except requests.RequestException as exc:
        spool.close()
        raise MediaFetchError(type(exc).__name__, is_transient=True) from exc
    except MediaTooLarge:
        spool.close()
        raise
    spool.seek(0)
    return Download(file=spool, content_type=content_type, size_bytes=total, sha256=digest.hexdigest())


def _declared_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


# --- Calls of the business's own APIs (agents' HTTP tools): JSON in, JSON out.


@dataclass
class JsonAnswer:
    status: int
    data: Any  # the parsed JSON, or the text when the answer was not JSON


def _tool_private_hosts() -> Collection[str]:
    return settings.TOOL_PRIVATE_HOSTS


_tool_session = guarded_session(extra_exempt=_tool_private_hosts)


def call_json_api(
    method: str,
    url: str,
    *,
    allowed_hosts: Collection[str],
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    params: dict[str, Any] | None = None,
    json_body: dict[str, Any] | None = None,
) -> JsonAnswer:
    """One call of a business API: every hop (redirects of a GET included) must be one of
    `allowed_hosts`, and public over https unless the operator listed it in TOOL_PRIVATE_HOSTS.
    Raises UnsafeURL for a refused hop, MediaFetchError for a failed or oversized call."""
    for _ in range(settings.MEDIA_MAX_REDIRECTS + 1):
        host = urlsplit(url).hostname or ""
        if host not in allowed_hosts:
            raise UnsafeURL(f"{host or 'an empty host'} is not among the tool's allowed hosts")
        if host not in settings.TOOL_PRIVATE_HOSTS:
            check_url(url)
        try:
            response = _tool_session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers={"Accept": "application/json", **headers},
                stream=True,
                allow_redirects=False,
                timeout=timeout,
            )
        except requests.Timeout as exc:
            raise MediaFetchError("timeout", is_transient=True) from exc
        except requests.RequestException as exc:
            raise MediaFetchError(type(exc).__name__, is_transient=True) from exc
        with response:
            if response.is_redirect:
                if method != "GET":
                    raise MediaFetchError(f"HTTP {response.status_code} redirect of a {method}")
                url, params = urljoin(url, response.headers["Location"]), None
                continue
            download = _read_capped(response, max_bytes, "")
        with download.file:
            body = download.file.read().decode(response.encoding or "utf-8", errors="replace")
        try:
            return JsonAnswer(response.status_code, json.loads(body))
        except json.JSONDecodeError:
            return JsonAnswer(response.status_code, body)
    raise UnsafeURL("too many redirects")
