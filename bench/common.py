"""What the end-to-end benchmarks share: a hub wired to freshly started servers, with N inputs
each logging to its own 10 s feed, and the environment that points `python -m hub …` at it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devstack.servers import Servers, hub_env
from hub.config import load_config
from hub.context import HubContext
from hub.db import migrate
from hub.input.readings import NodePost

__all__ = ["ROOT", "bench_hub", "hub_env", "logged_inputs"]

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def bench_hub(name: str, **overrides: object) -> Iterator[tuple[Servers, HubContext, Path]]:
    """Fresh servers and a migrated hub on them, with a throwaway directory `root` (for logs)
    holding the hub's data directory. Yields (servers, ctx, root)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp, \
            Servers.start() as servers:
        root = Path(tmp)
        (root / "data").mkdir()
        servers.create_database("hub")
        settings = {**servers.hub_settings(root / "data", "hub"), **overrides}
        ctx = HubContext(load_config("/nonexistent.toml", overrides=settings, environ={}))
        migrate(ctx.db)
        yield servers, ctx, root


def logged_inputs(ctx: HubContext, user_id: int, node: str, count: int,
                  feed_name: str) -> list[tuple[int, int]]:
    """Inputs `p0..p<count-1>` of `node`, each with a log_to_feed process to its own 10 s feed.
    Returns (feed id, input id) pairs."""
    pairs = []
    for k in range(count):
        feed = ctx.feeds.create(user_id, f"{feed_name}{k}", interval=10).id
        ctx.inputs.ingest(user_id, [NodePost(node, 1_000_000_000, {f"p{k}": 0.0})])
        found = next(i for i in ctx.inputs.list(user_id) if i["name"] == f"p{k}")
        ctx.inputs.set_processlist(user_id, found["id"], [{"fn": "log_to_feed", "args": [feed]}])
        pairs.append((feed, found["id"]))
    return pairs
