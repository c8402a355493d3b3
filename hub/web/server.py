"""The HTTP server the hub's web app runs in: cheroot, set up the one way production and tests use.

cheroot keeps a connection open after a response whose Connection header the app set itself;
it only closes on its own decision. The app says `Connection: close` when the rest of the bytes
on a connection can't be trusted (both Content-Length and Transfer-Encoding, a short or
stalled body, an oversized body), so the server must then really close: otherwise the unread
body is parsed as the next request (request smuggling, and a second, plain-text answer).
"""

from __future__ import annotations

from typing import Any

from cheroot import wsgi


class _ClosingGateway(wsgi.Gateway_10):
    """A WSGI gateway that closes the connection when the app's response says so."""

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        write = super().start_response(status, headers, exc_info)
        if any(name.lower() == "connection" and value.strip().lower() == "close"
               for name, value in headers):
            self.req.close_connection = True
        return write


def make_server(app: Any, host: str, port: int, threads: int) -> wsgi.Server:
    """A cheroot server for the app on host:port (not started).

    No `max_request_body_size`: cheroot would answer an oversized body with its own plain-text
    413. The app refuses it (as JSON, before reading a byte) against `max_body_bytes`."""
    server = wsgi.Server((host, port), app, numthreads=threads, server_name="cydynni-hub")
    server.gateway = _ClosingGateway
    return server
