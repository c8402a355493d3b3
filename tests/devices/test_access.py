"""Who may do what with devices and schedules: levels, and one household's devices only."""

from __future__ import annotations

import pytest

from tests.conftest import make_account
from tests.devices.test_service import account, clear_retained


@pytest.fixture
def device_id(admin, servers):
    acc = account(admin, "tasmota", "lamp")
    yield acc["device"]["id"]
    clear_retained(servers)


@pytest.mark.parametrize(("method", "path", "needs"), [
    ("GET", "/device/list.json", "read"),
    ("GET", "/device/get.json?id={id}", "read"),
    ("POST", "/device/set.json?id={id}&name=x", "write"),
    ("POST", "/device/delete.json?id={id}", "session"),
    ("POST", "/device/account/create.json?type=tasmota", "session"),
    ("GET", "/device/auth/pending.json", "session"),
    ("POST", "/device/auth/allow.json?ip=127.0.0.1", "session"),
    ("GET", "/schedule/list.json", "read"),
    ("POST", "/schedule/set.json?device={id}", "write"),
    ("POST", "/schedule/mode.json?device={id}&mode=on", "write"),
    ("GET", "/schedule/explain.json?device={id}", "read"),
])
def test_levels(client, admin, device_id, method, path, needs):
    url = path.format(id=device_id)
    sep = "&" if "?" in url else "?"
    assert client.request(method, url).status == 401
    read = client.request(method, f"{url}{sep}apikey={admin.apikey_read}").status
    write = client.request(method, f"{url}{sep}apikey={admin.apikey_write}").status
    assert (read == 403) == (needs in ("write", "session"))
    assert (write == 403) == (needs == "session")


def test_another_household_cannot_see_or_touch_a_device(admin, new_client, device_id):
    bob = make_account(new_client, "bob", by=admin.client)
    assert bob.client.get("/device/list.json").json() == []
    assert bob.client.get(f"/device/get.json?id={device_id}").status == 404
    res = bob.client.post(f"/schedule/set.json?device={device_id}",
                          json_body={"ready_by": "07:00", "period": 60})
    assert res.status == 404
    assert bob.client.post("/device/delete.json", {"id": device_id}).status == 404
    assert admin.client.get(f"/device/get.json?id={device_id}").status == 200
