"""The HTTP server the hub's web app runs in: cheroot, set up the one way production and tests use.

cheroot keeps a connection open after a response whose Connection header the app set itself;
it only closes on its own decision. The app says `Connection: close` when the rest of the bytes
on a connection can't be trusted (both Content-Length and Transfer-Encoding, a short or
stalled body, an oversized body), so the server must then really close: otherwise the unread
body is parsed as the next request (request smuggling, and a second, plain-text answer).

cheroot also answers what it refuses before the app sees it (a malformed request line, header
or Content-Length, an unsupported version or method) with its own plain-text body. Clients of
the hub read every error as JSON `{"success": false, "message": ...}`, so those answers are
that shape too.
"""

from __future__ import annotations

import json
from typing import Any

from cheroot import errors, wsgi
from cheroot import server as cheroot_server


class _JsonErrorRequest(cheroot_server.HTTPRequest):
    """cheroot's request parser, whose own error answers are the hub's JSON error shape."""

    def simple_response(self, status: Any, msg: Any = "") -> None:
        status = str(status)
        if isinstance(msg, bytes):
            msg = msg.decode("iso-8859-1")
        body = json.dumps({"success": False, "message": msg or status[4:] or status}).encode()
        head = [f"{self.server.protocol} {status}", f"Content-Length: {len(body)}",
                "Content-Type: application/json"]
        if status[0] in "45":
            # The rest of the bytes on the connection can't be trusted: close (cheroot does
            # after a refused request line or header anyway; this says so to the client).
            self.close_connection = True
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("iso-8859-1") + body
        try:
            self.conn.wfile.write(data)
        except OSError as exc:
            if exc.args and exc.args[0] not in errors.socket_errors_to_ignore:
                raise


class _JsonErrorConnection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _JsonErrorRequest


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
    server.ConnectionClass = _JsonErrorConnection
    return server
