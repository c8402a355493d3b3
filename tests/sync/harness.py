"""The test "server" (devstack/server_hub.py: a second real hub with a year of data) and a
fault-injecting HTTP(S) proxy in front of it.

The proxy forwards every request to the server hub unless told otherwise: `proxy.fault(mode,
only=substring-of-path)` makes matching requests answer badly (see `FaultProxy.MODES`).
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.server_hub import PASSWORD, RemoteHub, start_remote

__all__ = ["PASSWORD", "FaultProxy", "RemoteHub", "make_tls", "start_remote"]


# -- the fault-injecting proxy ---------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    server: FaultProxy

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        proxy = self.server
        proxy.requests.append(self.path)
        mode = proxy.mode if proxy.only in self.path else "pass"
        rate = proxy.rate  # for the whole answer, even if a test changes it meanwhile
        if mode.startswith("status:"):
            status = int(mode.split(":")[1])
            body = json.dumps({"success": False, "message": f"injected {status}"}).encode()
            return self._send(status, body, "application/json")
        if mode == "html":
            return self._send(200, b"<!doctype html><html><body>Log in</body></html>",
                              "text/html; charset=utf-8")
        if mode == "redirect":
            return self._send(302, b"", "text/plain",
                              {"Location": "http://elsewhere.invalid:1" + self.path})
        if mode == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        ctype = answer.getheader("Content-Type", "application/octet-stream")
        if mode == "interval" and "getmeta" in self.path:
            doc = json.loads(data)
            doc["interval"] = 0
            data = json.dumps(doc).encode()
        if mode == "longer":
            data += b"\x00\x00\xc0\x7f" * 2
        self.send_response(answer.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "truncate":
            data = data[: len(data) // 2 + 1]
        try:
            if mode == "drip":
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            elif rate:
                for i in range(0, len(data), 16384):
                    self.wfile.write(data[i:i + 16384])
                    self._count(16384)
                    time.sleep(16384 / rate)
                return None
            else:
                self.wfile.write(data)
            self._count(len(data))
        except (BrokenPipeError, ConnectionResetError):
            return None
        if mode == "truncate":
            self.close_connection = True

    def _count(self, n: int) -> None:
        if "export" in self.path:
            self.server.export_bytes += n


class FaultProxy(http.server.ThreadingHTTPServer):
    MODES = ("pass", "status:401", "status:404", "status:500", "html", "redirect", "reset",
             "interval", "longer", "truncate", "drip")
    daemon_threads = True

    def __init__(self, upstream_port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.upstream_port = upstream_port
        self.scheme = "https" if tls else "http"
        self.mode, self.only = "pass", ""
        self.rate = 0  # bytes/s when throttled
        self.export_bytes = 0
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/"

    def fault(self, mode: str, only: str = "") -> None:
        assert mode in self.MODES, mode
        self.mode, self.only = mode, only

    def close(self) -> None:
        self.shutdown()
        self.server_close()


# -- a private CA for the TLS tests -------------------------------------------------------------

def make_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1 signed by a new CA; the CA's path."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test server CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, ca_path
