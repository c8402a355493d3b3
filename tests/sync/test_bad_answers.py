"""Every bad answer from the server gets a clear status and changes nothing locally; the next
good run resumes and ends byte for byte equal to the server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.sync.run import sync_once
from tests.sync.conftest import local_files, mapped


def snapshot(ctx) -> dict[str, bytes]:
    """Every file of the local feeds and the mirror registry, by name."""
    files = {p.name: p.read_bytes() for p in ctx.config.feed_dir.iterdir()}
    files["mirrors"] = (ctx.sync.dir / "mirrors.json").read_bytes()
    return files


# (proxy mode, only requests whose path contains, expected error code)
BAD_ANSWERS = [
    ("reset", "", "unreachable"),
    ("status:401", "", "unauthorized"),
    ("status:404", "export", "not_found"),
    ("status:500", "list", "server_error"),
    ("status:500", "export", "server_error"),
    ("html", "list", "not_json"),
    ("html", "getmeta", "not_json"),
    ("html", "export", "not_data"),
    ("truncate", "export", "truncated"),
    ("longer", "export", "too_long"),
    ("interval", "getmeta", "bad_interval"),
    ("drip", "export", "too_slow"),
    ("redirect", "", "redirect"),
]


@pytest.mark.parametrize(("mode", "only", "code"), BAD_ANSWERS,
                         ids=[f"{m}-{o or 'all'}" for m, o, _ in BAD_ANSWERS])
def test_bad_answer_changes_nothing_and_the_next_run_resumes(linked, remote, proxy, mode,
                                                              only, code):
    assert sync_once(linked)["last_run"]["ok"]
    for name in ("hydro", "community", "use_hh"):
        remote.append(name, 100)  # something new to fetch
    before = snapshot(linked)
    proxy.fault(mode, only)
    status = sync_once(linked)
    assert not status["last_run"]["ok"], status
    assert status["last_run"]["error_code"] == code, status["last_run"]
    assert status["state"] == "error" and status["failures"] == 1
    assert status["next_run"] > status["last_run"]["finished"]  # backoff, not a retry loop
    assert status["message"]  # a sentence for the Settings page
    assert snapshot(linked) == before
    if mode == "redirect":
        assert "elsewhere.invalid" in status["message"]
    proxy.fault("pass")
    status = sync_once(linked)
    assert status["last_run"]["ok"], status
    assert status["failures"] == 0
    for name in mapped(linked, remote):
        assert local_files(linked, remote, name) == remote.files(name)


def test_a_down_server_changes_nothing(linked, remote, proxy):
    assert sync_once(linked)["last_run"]["ok"]
    before = snapshot(linked)
    proxy.close()  # nothing listens any more
    status = sync_once(linked)
    assert status["last_run"]["error_code"] == "unreachable"
    assert "cannot reach the server" in status["message"]
    assert snapshot(linked) == before
    second = sync_once(linked)
    assert second["failures"] == 2
    assert second["next_run"] - second["last_run"]["finished"] >= 2 * linked.config.sync_retry_min
    proxy.server_close = lambda: None  # already closed; the fixture's close must not fail
    proxy.shutdown = lambda: None


def test_bad_answer_on_the_first_sync_creates_nothing_wrong(ctx, household, remote, proxy):
    from hub.sync.store import ProvisionRequest

    ctx.sync.provision(ProvisionRequest(url=proxy.url, apikey=remote.apikey, allow_http=True,
                                        user_id=household.id))
    proxy.fault("truncate", "export")
    status = sync_once(ctx)
    assert status["last_run"]["error_code"] == "truncated"
    for local_id in ctx.sync.mirrors().values():  # created empty, nothing written
        assert os.path.getsize(Path(ctx.feeds.engine.dat_path(local_id))) == 0
    proxy.fault("pass")
    assert sync_once(ctx)["last_run"]["ok"]
    for name in mapped(ctx, remote):
        assert local_files(ctx, remote, name) == remote.files(name)
