"""The HTTP side of the server link: bounded, verified requests to an emoncms-compatible server.

Every answer is hostile until checked. A request is bounded by a connect timeout, a read
timeout per receive, a minimum throughput over a sliding window (a slow drip is cut off) and
a byte cap. Redirects are never followed (a redirect to another host would carry the API
key there). `https` is verified against the system CAs, or only against a private CA file
when one is given; plain `http` must be allowed explicitly. Each failure is a `LinkError`
whose `code` the status shows and whose message never contains the API key.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_JSON_BYTES = 4 * 1024 * 1024  # feed/list.json of a few hundred feeds is ~100 kB
CHUNK = 256 * 1024
USER_AGENT = "cydynni-hub-sync/1"


class LinkError(Exception):
    """A request to the server failed; `code` is a short machine-readable reason."""

    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class Unreachable(LinkError):
    code = "unreachable"


class TlsFailure(LinkError):
    code = "tls"


class AuthRefused(LinkError):
    code = "unauthorized"


class BadAnswer(LinkError):
    code = "bad_answer"


class TooSlow(LinkError):
    code = "too_slow"


class InvalidLink(LinkError):
    code = "invalid_settings"


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    min_bytes_per_s: float = 2048.0
    window_s: float = 20.0


@dataclass(frozen=True)
class LinkSettings:
    """Where the server is and how to trust it (the API key travels separately)."""

    url: str
    allow_http: bool = False
    ca_file: str = ""


def check_url(url: Any, allow_http: bool) -> str:
    """The server's base URL, normalised to end in '/'; InvalidLink when unusable."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise InvalidLink("server URL must be a non-empty text of at most 2048 characters")
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        raise InvalidLink("server URL contains spaces or non-ASCII characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidLink("server URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidLink("server URL must be https://host[/path]")
    if parts.scheme == "http" and not allow_http:
        raise InvalidLink("server URL is plain http: the API key would travel unencrypted; "
                          "use https, or allow http explicitly")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidLink("server URL must not contain a user, password, query or fragment")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass
class Transfer:
    """What one export read: the announced length (Content-Length) and the bytes read."""

    announced: int | None
    received: int = 0
    complete: bool = False  # everything announced was read (not stopped by the cap)


class ServerLink:
    """Requests to one server with one API key."""

    def __init__(self, settings: LinkSettings, apikey: str = "", limits: Limits = Limits(),
                 cancelled: Callable[[], bool] = lambda: False) -> None:
        self.base = check_url(settings.url, settings.allow_http)
        self.parts = urllib.parse.urlsplit(self.base)
        self.settings = settings
        self.apikey = apikey
        self.limits = limits
        self.cancelled = cancelled
        self.bytes_received = 0

    # -- requests ----------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self.parts.hostname, self.parts.port
        timeout = self.limits.connect_timeout
        if self.parts.scheme == "https":
            try:
                context = ssl.create_default_context(cafile=self.settings.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise TlsFailure(f"cannot load the CA file: {exc}") from None
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _open(self, method: str, path: str, params: dict[str, Any] | None = None,
              form: dict[str, str] | None = None
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        query = urllib.parse.urlencode(params or {})
        target = self.parts.path + path + (f"?{query}" if query else "")
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*",
                   "Connection": "close"}
        if self.apikey:
            headers["Authorization"] = f"Bearer {self.apikey}"
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = self._connection()
        where = f"{self.parts.scheme}://{self.parts.netloc}"
        try:
            conn.connect()
            conn.sock.settimeout(self.limits.read_timeout)
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise TlsFailure(f"{where}: TLS certificate not trusted ({exc.verify_message})"
                             ) from None
        except ssl.SSLError as exc:
            conn.close()
            raise TlsFailure(f"{where}: TLS failed ({exc.reason or exc})") from None
        except TimeoutError:
            conn.close()
            raise Unreachable(f"cannot reach the server {where}: no answer within the "
                              "timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Unreachable(f"cannot reach the server {where}: {_describe(exc)}") from None
        try:
            self._check_status(response, path)
        except LinkError:
            conn.close()
            raise
        return conn, response

    def _check_status(self, response: http.client.HTTPResponse, path: str) -> None:
        status = response.status
        if status == 200:
            return
        if 300 <= status < 400:
            location = response.getheader("Location", "")
            target = urllib.parse.urlsplit(urllib.parse.urljoin(self.base, location))
            elsewhere = (target.scheme, target.netloc) != (self.parts.scheme, self.parts.netloc)
            where = f"another host ({target.netloc})" if elsewhere else repr(location)
            raise BadAnswer(f"{path}: the server redirected to {where}; redirects are "
                            "refused (check the server URL)", "redirect")
        message = _server_message(response)
        if status in (401, 403):
            raise AuthRefused(f"{path}: the server refused the API key or login "
                              f"(HTTP {status}){message}")
        if status == 404:
            raise BadAnswer(f"{path}: not found on the server (HTTP 404){message}", "not_found")
        if status >= 500:
            raise BadAnswer(f"{path}: server error (HTTP {status}){message}", "server_error")
        raise BadAnswer(f"{path}: unexpected HTTP {status}{message}")

    def _read(self, response: http.client.HTTPResponse, sink: Callable[[bytes], None],
              cap: int, path: str) -> tuple[int, bool]:
        """Stream the body into `sink` up to `cap` bytes: (bytes read, reached the end)."""
        limits = self.limits
        total = 0
        mark_time, mark_bytes = time.monotonic(), 0
        while total < cap:
            if self.cancelled():
                raise LinkError(f"{path}: stopped (the worker is shutting down)", "cancelled")
            try:
                chunk = response.read1(min(CHUNK, cap - total))
            except TimeoutError:
                raise TooSlow(f"{path}: no data for {limits.read_timeout:.0f} s") from None
            except http.client.IncompleteRead as exc:
                raise BadAnswer(f"{path}: answer cut short after {total + len(exc.partial)} "
                                f"bytes", "truncated") from None
            except (OSError, http.client.HTTPException) as exc:
                raise Unreachable(f"{path}: connection lost ({_describe(exc)})") from None
            if not chunk:
                if response.length:  # Content-Length said more was coming
                    raise BadAnswer(f"{path}: answer cut short after {total} bytes of "
                                    f"{total + response.length}", "truncated")
                return total, True
            sink(chunk)
            total += len(chunk)
            self.bytes_received += len(chunk)
            now = time.monotonic()
            if now - mark_time >= limits.window_s:
                rate = (total - mark_bytes) / (now - mark_time)
                if rate < limits.min_bytes_per_s:
                    raise TooSlow(f"{path}: {rate:.0f} B/s over {now - mark_time:.0f} s, "
                                  f"below the minimum {limits.min_bytes_per_s:.0f} B/s")
                mark_time, mark_bytes = now, total
        return total, response.length == 0 or response.isclosed()

    def get_json(self, path: str, params: dict[str, Any] | None = None,
                 form: dict[str, str] | None = None) -> Any:
        conn, response = self._open("POST" if form is not None else "GET", path, params, form)
        try:
            announced = response.length
            if announced is not None and announced > MAX_JSON_BYTES:
                raise BadAnswer(f"{path}: answer of {announced} bytes is too big")
            parts: list[bytes] = []
            _, ended = self._read(response, parts.append, MAX_JSON_BYTES + 1, path)
            raw = b"".join(parts)
            if not ended or len(raw) > MAX_JSON_BYTES:
                raise BadAnswer(f"{path}: answer over {MAX_JSON_BYTES} bytes")
        finally:
            conn.close()
        ctype = response.getheader("Content-Type", "")
        head = raw.lstrip()[:1]
        if "html" in ctype.lower() or head == b"<":
            raise BadAnswer(f"{path}: the server answered a web page, not JSON (a login page "
                            "or a proxy error? check the server URL)", "not_json")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadAnswer(f"{path}: the answer is not JSON", "not_json") from None
        if isinstance(doc, dict) and doc.get("success") is False:
            message = str(doc.get("message", ""))[:200]
            if "apikey" in message.lower() or "auth" in message.lower():
                raise AuthRefused(f"{path}: {message}")
            raise BadAnswer(f"{path}: the server said: {message}", "refused")
        return doc

    def export(self, feed_id: int, start: int, sink: Callable[[bytes], None], cap: int
               ) -> Transfer:
        """feed/export.json from byte `start` into `sink`, at most `cap` bytes."""
        path = "feed/export.json"
        conn, response = self._open("GET", path, {"id": feed_id, "start": start})
        try:
            ctype = response.getheader("Content-Type", "").lower()
            if "html" in ctype or "json" in ctype:
                raise BadAnswer(f"{path}: the server answered {ctype or 'text'}, not the "
                                "raw feed data", "not_data")
            transfer = Transfer(response.length)
            transfer.received, transfer.complete = self._read(response, sink, cap, path)
        finally:
            conn.close()
        return transfer

    # -- the emoncms calls -------------------------------------------------------------------

    def auth(self, username: str, password: str) -> str:
        """user/auth.json: exchange a login for the read API key (the password is not kept)."""
        doc = self.get_json("user/auth.json", form={"username": username, "password": password})
        key = doc.get("apikey_read") if isinstance(doc, dict) else None
        if not isinstance(key, str) or not key.isalnum() or not 16 <= len(key) <= 64:
            raise BadAnswer("user/auth.json: no read API key in the answer")
        return key

    def feeds(self) -> list[dict[str, Any]]:
        doc = self.get_json("feed/list.json")
        if not isinstance(doc, list) or not all(isinstance(f, dict) for f in doc):
            raise BadAnswer("feed/list.json: not a list of feeds")
        return doc

    def meta(self, feed_id: int) -> dict[str, int]:
        doc = self.get_json("feed/getmeta.json", {"id": feed_id})
        if not isinstance(doc, dict):
            raise BadAnswer(f"feed/getmeta.json?id={feed_id}: not an object")
        out = {}
        for name in ("interval", "start_time", "npoints"):
            value = doc.get(name)
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    0 <= value < 2**32):
                raise BadAnswer(f"feed/getmeta.json?id={feed_id}: {name} is {value!r}, "
                                "not a whole number")
            out[name] = value
        return out


def _server_message(response: http.client.HTTPResponse) -> str:
    """A short, printable excerpt of an error answer (emoncms says why in JSON)."""
    try:
        raw = response.read(2048)
        doc = json.loads(raw)
        message = doc.get("message") if isinstance(doc, dict) else None
    except Exception:
        return ""
    if not isinstance(message, str):
        return ""
    return ": " + "".join(c for c in message[:200] if c.isprintable())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (server down?)"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    return str(exc) or type(exc).__name__
