"""Provisioning: checked with a test call before it is stored (0600), by API key or by a
login exchanged once, from the API (admin), from `hub admin provision` and from the request
the boot-time setup leaves; https verified (system CAs or a private CA), http only if allowed."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from devstack.servers import free_port, hub_env
from hub.sync.link import AuthRefused, InvalidLink, TlsFailure, Unreachable
from hub.sync.run import sync_once
from hub.sync.store import ProvisionRequest
from tests.sync.conftest import local_files, mapped
from tests.sync.harness import PASSWORD, FaultProxy, make_tls


def nothing_stored(ctx) -> bool:
    return ctx.sync.link() is None and not (ctx.sync.dir / "link.json").exists()


def test_a_wrong_key_is_refused_and_nothing_is_stored(ctx, household, proxy):
    with pytest.raises(AuthRefused):
        ctx.sync.provision(ProvisionRequest(url=proxy.url, apikey="f" * 32, allow_http=True))
    assert nothing_stored(ctx)


def test_a_login_is_exchanged_once_for_the_read_key(ctx, household, remote, proxy):
    link = ctx.sync.provision(ProvisionRequest(url=proxy.url, username=remote.username,
                                               password=PASSWORD, allow_http=True,
                                               user_id=household.id))
    assert link.apikey == remote.apikey
    stored = (ctx.sync.dir / "link.json").read_text()
    assert PASSWORD not in stored and json.loads(stored)["apikey"] == remote.apikey
    assert stat.S_IMODE((ctx.sync.dir / "link.json").stat().st_mode) == 0o600
    assert any("user/auth.json" in p for p in proxy.requests)


def test_a_wrong_password_is_refused(ctx, household, remote, proxy):
    with pytest.raises(AuthRefused):
        ctx.sync.provision(ProvisionRequest(url=proxy.url, username=remote.username,
                                            password="wrong password", allow_http=True))
    assert nothing_stored(ctx)


def test_plain_http_only_when_allowed_and_no_unreachable_server(ctx, household, remote, proxy):
    with pytest.raises(InvalidLink, match="plain http"):
        ctx.sync.provision(ProvisionRequest(url=proxy.url, apikey=remote.apikey))
    with pytest.raises(Unreachable):
        ctx.sync.provision(ProvisionRequest(url=f"http://127.0.0.1:{free_port()}/",
                                            apikey=remote.apikey, allow_http=True))
    for url in ("ftp://x/", "https://user:pw@host/", "https://host/?a=1", "https://"):
        with pytest.raises(InvalidLink):
            ctx.sync.provision(ProvisionRequest(url=url, apikey=remote.apikey))
    assert nothing_stored(ctx)


def test_https_needs_a_trusted_certificate_or_the_private_ca(ctx, household, remote, tmp_path):
    tls, ca_file = make_tls(tmp_path)
    server = FaultProxy(remote.port, tls)
    try:
        with pytest.raises(TlsFailure, match="not trusted"):
            ctx.sync.provision(ProvisionRequest(url=server.url, apikey=remote.apikey))
        assert nothing_stored(ctx)
        ctx.sync.provision(ProvisionRequest(url=server.url, apikey=remote.apikey,
                                            ca_file=str(ca_file), user_id=household.id))
        assert sync_once(ctx)["last_run"]["ok"]
        for name in mapped(ctx, remote):
            assert local_files(ctx, remote, name) == remote.files(name)
    finally:
        server.close()


def test_the_request_from_cydynni_txt_waits_for_the_server_then_applies(ctx, household,
                                                                          remote, proxy):
    request = ctx.sync.dir / "provision.json"
    ctx.sync.dir.mkdir(mode=0o700)
    down = f"http://127.0.0.1:{free_port()}/"
    request.write_text(json.dumps({"url": down, "apikey": remote.apikey, "allow_http": True}))
    status = sync_once(ctx)
    assert status["state"] == "provisioning failed" and not status["provisioned"]
    assert "cannot reach the server" in status["message"] and "will retry" in status["message"]
    assert request.exists() and status["next_run"] > 0
    request.write_text(json.dumps({"url": proxy.url, "apikey": remote.apikey,
                                   "allow_http": True, "user_id": household.id}))
    status = sync_once(ctx)
    assert status["provisioned"] and status["last_run"]["ok"], status
    assert not request.exists()


def test_a_refused_request_from_cydynni_txt_is_dropped_with_its_secret(ctx, household, proxy):
    request = ctx.sync.dir / "provision.json"
    ctx.sync.dir.mkdir(mode=0o700)
    request.write_text(json.dumps({"url": proxy.url, "apikey": "e" * 32, "allow_http": True}))
    status = sync_once(ctx)
    assert "refused" in status["message"] and "dropped" in status["message"]
    assert not request.exists() and not status["provisioned"]


def test_the_api_for_the_settings_page(ctx, client, admin, new_client, remote, proxy):
    anonymous = client.get("/sync/status.json")
    assert anonymous.status == 401
    status = admin.client.get("/sync/status.json").json()
    assert status["state"] == "not provisioned" and not status["provisioned"]
    assert admin.client.post("/sync/run.json").status == 409
    bad = admin.client.post("/sync/provision.json", {"url": proxy.url, "server_apikey": "d" * 32,
                                                     "allow_http": "1"})
    assert bad.status == 502 and "unauthorized" in bad.json()["message"]
    assert admin.client.post("/sync/provision.json", {"url": proxy.url,
                                                      "server_apikey": remote.apikey}).status == 400
    other = new_client()
    key_only = other.post("/sync/provision.json", {"apikey": admin.apikey_write,
                                                   "url": proxy.url})
    assert key_only.status == 403  # an API key is never admin
    good = admin.client.post("/sync/provision.json", {"url": proxy.url,
                                                      "server_apikey": remote.apikey,
                                                      "allow_http": "1"})
    assert good.status == 200, good.text
    assert remote.apikey not in good.text
    assert (ctx.sync.dir / "run-now").exists()  # the worker starts the first sync
    rules = admin.client.get("/sync/mapping.json").json()
    assert [r["local_name"] for r in rules] == ["hydro", "community", "use_hh"]
    wrong = admin.client.post("/sync/mapping.json", json_body=[{"remote_name": "x*"}])
    assert wrong.status == 400
    rules.append({"remote_tag": "cydynni", "remote_name": "unmapped", "local_name": "extra"})
    assert admin.client.post("/sync/mapping.json", json_body=rules).status == 200
    status = sync_once(ctx)
    assert [f["name"] for f in status["feeds"]] == ["hydro", "community", "use_hh", "extra"]
    shown = admin.client.get("/sync/status.json")
    assert shown.json()["last_run"]["ok"] and remote.apikey not in shown.text
    assert admin.client.post("/sync/unprovision.json").status == 200
    assert not admin.client.get("/sync/status.json").json()["provisioned"]


def test_hub_admin_provision_and_sync_commands(ctx, household, remote, proxy):
    env = hub_env(ctx.config)

    def hub(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hub", "admin", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    refused = hub("provision", "--url", proxy.url, "--apikey", "c" * 32, "--allow-http")
    assert refused.returncode == 1 and "not provisioned" in refused.stderr
    assert "c" * 32 not in refused.stderr + refused.stdout
    done = hub("provision", "--url", proxy.url, "--apikey", remote.apikey, "--allow-http",
               "--user", "home")
    assert done.returncode == 0, done.stderr
    ran = hub("sync")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["last_run"]["ok"]
    for name in mapped(ctx, remote):
        assert local_files(ctx, remote, name) == remote.files(name)
