"""A small fault-injecting HTTP proxy between the agent and goosebit (127.0.0.1 only).

Modes act on the artifact download (GET .../download) unless named otherwise:
  pass            forward unchanged
  drip            send the headers, then one byte per `drip_interval` seconds
  endless         the real bytes, then random bytes for ever (no Content-Length)
  oversized       the real bytes plus 1 MiB, with a Content-Length that says so
  truncate        close the connection after `truncate_at` bytes, once; later requests pass
  error_every_other  every other request of any kind gets a 500
  swap            serve `swap_file` instead of the artifact (same Content-Length rules)
and, independent of the mode, `window_closed` rewrites deploymentBase answers to say
maintenanceWindow unavailable (the agent then downloads but does not install), and
`update_mode` (e.g. "attempt": a soft update that waits for the household's consent)
rewrites the deployment's update mode (goosebit itself always says "forced").
Counters: requests (all), downloads, range_requests (downloads with a Range header).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Faults:
    mode: str = "pass"
    window_closed: bool = True
    update_mode: str | None = None
    truncate_at: int = 0
    drip_interval: float = 1.0
    swap_file: Path | None = None
    requests: int = 0
    downloads: int = 0
    range_requests: int = 0
    truncated: bool = False
    log: list[str] = field(default_factory=list)


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: Faults) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.upstream = urlsplit(upstream)
        self.faults = faults
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:
        self.server.faults.log.append(fmt % args)

    def do_GET(self) -> None:
        self.forward()

    def do_POST(self) -> None:
        self.forward()

    def do_PUT(self) -> None:
        self.forward()

    def do_PATCH(self) -> None:
        self.forward()

    def forward(self) -> None:
        faults = self.server.faults
        with self.server.lock:
            faults.requests += 1
            count = faults.requests
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if faults.mode == "error_every_other" and count % 2 == 0:
            self.reply(500, b'{"detail": "injected"}')
            return
        is_download = self.command == "GET" and self.path.rstrip("/").endswith("/download")
        if is_download:
            faults.downloads += 1
            if "Range" in self.headers:
                faults.range_requests += 1
        conn = http.client.HTTPConnection(self.server.upstream.hostname,
                                          self.server.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Host"] = self.headers.get("Host", "")  # goosebit builds links from it
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        out_headers = {k: v for k, v in resp.getheaders() if k.lower() not in HOP}
        if ((faults.window_closed or faults.update_mode) and "/deploymentBase/" in self.path
                and self.command == "GET"):
            answer = json.loads(data)
            if faults.window_closed:
                answer["deployment"]["maintenanceWindow"] = "unavailable"
            if faults.update_mode:
                answer["deployment"]["update"] = faults.update_mode
            data = json.dumps(answer).encode()
        if is_download and resp.status in (200, 206):
            self.download(resp.status, out_headers, data)
            return
        self.reply(resp.status, data, out_headers)

    def reply(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def download(self, status: int, headers: dict[str, str], data: bytes) -> None:
        faults = self.server.faults
        mode = faults.mode
        if mode == "swap" and faults.swap_file is not None:
            data = faults.swap_file.read_bytes()[:len(data)]
        if mode == "oversized":
            data = data + os.urandom(1 << 20)
        if mode in ("pass", "error_every_other", "swap", "oversized") or (
                mode == "truncate" and faults.truncated):
            self.reply(status, data, headers)
            return
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if mode == "endless":
            self.send_header("Connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(data)
                while True:
                    self.wfile.write(os.urandom(64 * 1024))
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "truncate":
            faults.truncated = True
            with contextlib.suppress(OSError):
                self.wfile.write(data[:faults.truncate_at])
                self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if mode == "drip":
            with contextlib.suppress(OSError):
                for index in range(len(data)):
                    self.wfile.write(data[index:index + 1])
                    self.wfile.flush()
                    time.sleep(faults.drip_interval)


@contextlib.contextmanager
def running(upstream: str, faults: Faults) -> Iterator[Proxy]:
    proxy = Proxy(upstream, faults)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
