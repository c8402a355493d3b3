"""Tell systemd that `hub web` / `hub worker` are ready (their units are `Type=notify`).

Units ordered after them, above all `cydynni-ota-commit` (a Python start and a RAUC D-Bus
activation), then start only once the hub serves, instead of competing with the hub's own
start for the CPU. The protocol is sd_notify(3)'s: one datagram such as `READY=1` to the
AF_UNIX socket named in $NOTIFY_SOCKET; systemd documents it as stable for reimplementation.
Outside systemd (tests, a shell) $NOTIFY_SOCKET is unset and this does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET %r is not an AF_UNIX path; not telling systemd %s",
                    address, state)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot tell systemd %s: %s", state, exc)
        return False
    return True
