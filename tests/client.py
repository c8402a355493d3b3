"""A small HTTP client for tests: real requests to a real server, with a cookie jar."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    host: str
    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, params: dict | None = None,
                data: dict | bytes | str | None = None, json_body: Any = None,
                headers: dict[str, str] | None = None) -> Response:
        headers = dict(headers or {})
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(data, dict):
            body = urllib.parse.urlencode(data).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif isinstance(data, str):
            body = data.encode()
        elif data is not None:
            body = data
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            raw = conn.getresponse()
            payload = raw.read()
            result = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, payload)
            for value in raw.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie(value)
                for name, morsel in cookie.items():
                    if morsel["max-age"] == "0" or not morsel.value or "1970" in morsel["expires"]:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
        finally:
            conn.close()
        return result

    def get(self, path: str, params: dict | None = None, **kw: Any) -> Response:
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, data: dict | bytes | str | None = None, **kw: Any) -> Response:
        return self.request("POST", path, data=data, **kw)
