"""`hub web` and `hub worker` start beside MariaDB at boot (their units do not wait for it):
hub.db.wait_until_listening waits while the server is not listening yet, and only then."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from hub.config import Config, load_config
from hub.db import wait_until_listening
from hub.errors import DatabaseError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()


@pytest.fixture
def late_server(hub_config: Config) -> Iterator[tuple[Config, threading.Event]]:
    """A config whose port starts forwarding to the real MariaDB once the event is set."""
    port = _free_port()
    opened = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        opened.wait()
        with socket.create_server(("127.0.0.1", port)) as listener:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection((hub_config.db_host, hub_config.db_port))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield load_config("/nonexistent.toml", overrides={**hub_config, "db_port": port},
                      environ={}), opened
    stop.set()
    opened.set()
    thread.join(timeout=5)


def test_waits_until_the_server_listens(late_server, caplog):
    config, opened = late_server
    caplog.set_level(logging.INFO, logger="hub.db")
    threading.Timer(1.0, opened.set).start()
    wait_until_listening(config, timeout_s=120, poll_s=0.05)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("waiting up to 120 s for MariaDB") for m in messages), messages
    assert messages[-1] == "MariaDB is up"


def test_gives_up_when_the_server_never_listens(late_server):
    config, _ = late_server
    with pytest.raises(DatabaseError, match=r"cannot connect to MariaDB at 127\.0\.0\.1"):
        wait_until_listening(config, timeout_s=0.5, poll_s=0.05)


def test_a_refused_login_is_answered_at_once(hub_config, caplog):
    caplog.set_level(logging.INFO, logger="hub.db")
    wrong = load_config("/nonexistent.toml",
                        overrides={**hub_config, "db_password": "not-the-password"}, environ={})
    with pytest.raises(DatabaseError, match="Access denied"):
        wait_until_listening(wrong, timeout_s=600)
    assert not [r for r in caplog.records if "waiting" in r.getMessage()]
