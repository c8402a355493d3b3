"""Fixtures for the server-sync tests: the server hub (session), a proxy per test, and a
fresh local hub (tests/conftest.py's `ctx`) with a household user and fast sync limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.servers import Servers
from hub.config import Config
from hub.sync.store import ProvisionRequest
from tests.sync.harness import FaultProxy, RemoteHub, start_remote

FAST_SYNC = {"sync_connect_timeout": 3, "sync_read_timeout": 3, "sync_window": 1,
             "sync_min_bytes_per_s": 20_000, "sync_retry_min": 60, "sync_start_delay": 0}


@pytest.fixture(scope="session")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteHub]:
    """The community server: a second hub with its own servers, data and web process."""
    root = tmp_path_factory.mktemp("server-hub")
    (root / "servers").mkdir()
    with Servers.start(root / "servers") as servers:
        hub = start_remote(servers, root / "data")
        try:
            yield hub
        finally:
            hub.proc.terminate()
            hub.proc.wait(20)
            hub.ctx.close()


@pytest.fixture
def proxy(remote: RemoteHub) -> Iterator[FaultProxy]:
    server = FaultProxy(remote.port)
    yield server
    server.close()


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return Config({**hub_config, **FAST_SYNC}, hub_config.source)


@pytest.fixture
def household(ctx):
    return ctx.users.register("home", "correct horse battery")


@pytest.fixture
def linked(ctx, household, remote, proxy):
    """The local hub provisioned to the server through the proxy."""
    ctx.sync.provision(ProvisionRequest(url=proxy.url, apikey=remote.apikey, allow_http=True,
                                        user_id=household.id))
    return ctx


def local_files(ctx, remote: RemoteHub, name: str) -> tuple[bytes, bytes]:
    local_id = ctx.sync.mirrors()[remote.feeds[name]]
    engine = ctx.feeds.engine
    return (Path(engine.dat_path(local_id)).read_bytes(),
            Path(engine.meta_path(local_id)).read_bytes())


def mapped(ctx, remote: RemoteHub) -> list[str]:
    return [rule["local_name"] for rule in ctx.sync.rules()]
