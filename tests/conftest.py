"""Shared fixtures: real servers for the session, a fresh hub (database, Redis prefix, data
directory, web server) per test, and helpers to register and log in.

    def test_x(client, admin):      # client talks to a real cheroot server of a fresh app
        client.get("/feed/list.json", {"apikey": admin.apikey_write})
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.servers import Servers, free_port, hub_env, stop_process, unit_malloc_env
from hub.config import Config, load_config
from hub.context import HubContext
from tests.client import Client

_counter = itertools.count()
SETUP_CODE = "TEST-SETUP-CODE"  # the first-run claim code of every test hub


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with Servers.start(tmp_path_factory.mktemp("servers")) as running:
        yield running


@pytest.fixture
def hub_config(servers: Servers, tmp_path: Path) -> Iterator[Config]:
    """Settings for a fresh hub: its own database, Redis key prefix and data directory."""
    db_name = f"hub_test_{uuid.uuid4().hex[:12]}"
    servers.create_database(db_name)
    overrides = servers.hub_settings(tmp_path / "data", db_name)
    overrides["redis_prefix"] = f"test{next(_counter)}-{uuid.uuid4().hex[:6]}:"
    overrides["flush_interval"] = 1
    overrides["setup_code"] = SETUP_CODE
    (tmp_path / "data").mkdir()
    yield load_config(tmp_path / "absent.toml", overrides=overrides, environ={})
    servers.drop_database(db_name)


@pytest.fixture
def ctx(hub_config: Config) -> Iterator[HubContext]:
    from hub.db import migrate

    context = HubContext(hub_config)
    migrate(context.db)
    yield context
    context.close()


@pytest.fixture
def hub_web_process(hub_config: Config,
                    tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """`python -m hub web` as its own process on a free port, with the malloc settings of
    cydynni-hub-web.service; yields (process, port, its log) once /version answers."""
    port = free_port()
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "web", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=Path(__file__).resolve().parents[1],
                                env={**hub_env(hub_config), **unit_malloc_env()},
                                stdout=out, stderr=subprocess.STDOUT)
    client = Client("127.0.0.1", port)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.get("/version")
            break
        except OSError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "hub web did not answer in 60 s"
            time.sleep(0.1)
    yield proc, port, log
    stop_process(proc, timeout=30)


@pytest.fixture
def web(ctx: HubContext) -> Iterator[tuple[str, int]]:
    """A real cheroot server of a fresh app on a free loopback port."""
    from hub.web.app import create_app
    from hub.web.server import make_server

    app = create_app(ctx.config, ctx)
    port = free_port()
    server = make_server(app, "127.0.0.1", port, 4)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield ("127.0.0.1", port)
    server.stop()
    thread.join(10)


@pytest.fixture
def client(web: tuple[str, int]) -> Client:
    return Client(*web)


@pytest.fixture
def new_client(web: tuple[str, int]):
    """Make more clients (each with its own cookies) for the same server."""
    return lambda: Client(*web)


@dataclass
class Account:
    userid: int
    username: str
    password: str
    apikey_read: str
    apikey_write: str
    client: Client  # logged in with a session cookie


def make_account(client_factory, username: str, password: str = "correct horse",
                 by: Client | None = None) -> Account:
    """Register (as `by`, an admin session, when not the first user) and log in."""
    registrar = by or client_factory()
    reg = registrar.post("/user/register.json", {"username": username, "password": password,
                                                 "setup_code": SETUP_CODE})
    assert reg.status == 200, reg.text
    keys = reg.json()
    session = client_factory()
    login = session.post("/user/login.json", {"username": username, "password": password})
    assert login.status == 200, login.text
    return Account(keys["userid"], username, password, keys["apikey_read"],
                   keys["apikey_write"], session)


@pytest.fixture
def admin(new_client) -> Account:
    """The first registered user (the administrator), logged in."""
    return make_account(new_client, "admin")
