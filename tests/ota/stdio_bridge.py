"""One QEMU guestfwd connection → one TCP connection to 127.0.0.1:<port> on the host.

QEMU's `guestfwd=tcp:IP:PORT-tcp:HOST:PORT` opens a single stream at start-up, so only the
guest's first connection works; `guestfwd=...-cmd:<command>` runs the command for every
connection with the guest's bytes on stdin/stdout. This is that command (stdlib only):

    guestfwd=tcp:10.0.2.100:80-cmd:python3 tests/ota/stdio_bridge.py 45057
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def main() -> int:
    port = int(sys.argv[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.settimeout(None)

    def guest_to_host() -> None:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=guest_to_host, daemon=True).start()
    while chunk := sock.recv(65536):
        os.write(1, chunk)
    return 0


if __name__ == "__main__":
    sys.exit(main())
