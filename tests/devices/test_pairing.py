"""Pairing over HTTP as stock EmonESP does it, against real MariaDB, Redis and Mosquitto."""

from __future__ import annotations

import http.client

import pytest

from hub.device.errors import NoPendingRequest, PairingRateLimited
from hub.device.pairing import MAX_PENDING, PER_IP_PER_MINUTE, REGISTERED
from tests.devices.mqttclient import ConnectRefused, TestClient

EMONESP_PATH = "/emoncms/device/auth/request.json"  # hard-coded in EmonESP's autoauth.cpp


def device_get(web, source_ip: str = "127.0.0.1", headers: dict | None = None,
               path: str = EMONESP_PATH) -> tuple[int, str]:
    """GET like the ESP's HTTPClient, from a chosen loopback source address."""
    conn = http.client.HTTPConnection(*web, timeout=10, source_address=(source_ip, 0))
    try:
        conn.request("GET", path, headers={"User-Agent": "ESP8266HTTPClient",
                                           **(headers or {})})
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


def emonesp_parse(reply: str) -> tuple[str, str, str] | None:
    """EmonESP's autoauth: saved only when not "request registered" and exactly 2 colons."""
    if reply == "request registered" or reply.count(":") != 2:
        return None
    user, password, base = reply.split(":")
    return user, password, base


def test_full_pairing_gives_a_working_own_account_once(web, admin, servers):
    status, text = device_get(web)
    assert (status, text) == (200, REGISTERED)
    pending = admin.client.get("/device/auth/pending.json").json()["requests"]
    assert [(p["ip"], p["user_agent"]) for p in pending] == [("127.0.0.1", "ESP8266HTTPClient")]
    allowed = admin.client.post("/device/auth/allow.json", {"ip": "127.0.0.1"})
    assert allowed.status == 200, allowed.text
    assert allowed.json()["device"]["status"] == "pairing"

    status, text = device_get(web)
    creds = emonesp_parse(text)
    assert status == 200 and creds is not None, text
    user, password, base = creds
    assert base.startswith("emon/") and user in base

    # Only once: the same request again gets nothing.
    assert emonesp_parse(device_get(web)[1]) is None
    device = admin.client.get("/device/list.json").json()[0]
    assert device["status"] == "active" and device["mqtt_username"] == user

    dev = TestClient(servers.mqtt_port, user, password).connect()
    hub = TestClient(servers.mqtt_port, servers.mqtt_user, servers.mqtt_password).connect()
    try:
        assert hub.subscribe("#")
        dev.publish(f"{base}/smartplug1/describe", "smartplug")
        assert hub.expect(f"{base}/smartplug1/describe").payload == b"smartplug"
        assert not dev.subscribe("emon/#")
    finally:
        dev.close()
        hub.close()

    # Removing the device revokes the account.
    assert admin.client.post("/device/delete.json", {"id": device["id"]}).status == 200
    with pytest.raises(ConnectRefused):
        TestClient(servers.mqtt_port, user, password).connect().close()


def test_grant_goes_only_to_the_allowed_address(web, admin):
    device_get(web, "127.0.0.1")
    assert admin.client.post("/device/auth/allow.json", {"ip": "127.0.0.1"}).status == 200
    _status, text = device_get(web, "127.0.0.2")
    assert emonesp_parse(text) is None and text == REGISTERED
    # The forwarded-for header is not the peer address and cannot steal the grant.
    _status, text = device_get(web, "127.0.0.3", headers={"X-Forwarded-For": "127.0.0.1"})
    assert emonesp_parse(text) is None
    assert emonesp_parse(device_get(web, "127.0.0.1")[1]) is not None


def test_denied_address_gets_nothing(web, admin):
    device_get(web, "127.0.0.4")
    assert admin.client.post("/device/auth/deny.json", {"ip": "127.0.0.4"}).status == 200
    status, text = device_get(web, "127.0.0.4")
    assert status == 403 and emonesp_parse(text) is None
    assert admin.client.get("/device/auth/pending.json").json()["requests"] == []
    again = admin.client.post("/device/auth/allow.json", {"ip": "127.0.0.4"})
    assert again.status == 404


def test_pairing_needs_a_session(web, admin, client):
    device_get(web)
    assert client.post("/device/auth/allow.json", {"ip": "127.0.0.1"}).status == 401
    keyed = client.post("/device/auth/allow.json?apikey=" + admin.apikey_write,
                        {"ip": "127.0.0.1"})
    assert keyed.status == 403
    assert client.get("/device/auth/pending.json").status == 401


def test_unused_grant_expires_and_its_account_is_revoked(ctx, admin, servers):
    pairing = ctx.pairing
    now = 2_000_000_000.0
    pairing.request("192.0.2.7", now=now)
    device = pairing.allow("192.0.2.7", admin.userid, now=now)
    late = now + ctx.config.pairing_window + 1
    answer = pairing.request("192.0.2.7", now=late)
    assert answer.text == REGISTERED
    assert pairing.expire(late) == [device.id]
    assert ctx.devices.list() == []
    with pytest.raises(ConnectRefused):
        TestClient(servers.mqtt_port, device.mqtt_username, "x").connect().close()


def test_a_name_with_characters_outside_the_name_set_can_still_be_allowed(ctx, admin):
    ctx.pairing.request("192.0.2.8", name="Plug (kitchen) <b>")
    device = ctx.pairing.allow("192.0.2.8", admin.userid)
    assert device.name == "Plug kitchen b"


def test_auth_request_storm_is_refused_cheaply(web, ctx, admin):
    codes = [device_get(web, "127.0.0.9")[0] for _ in range(PER_IP_PER_MINUTE + 3)]
    assert codes[:PER_IP_PER_MINUTE] == [200] * PER_IP_PER_MINUTE
    assert set(codes[PER_IP_PER_MINUTE:]) == {429}
    # Many addresses: at most MAX_PENDING wait; the rest are refused, the list stays usable.
    pairing = ctx.pairing
    now = 2_000_000_000.0
    refused = 0
    for n in range(MAX_PENDING + 5):
        try:
            pairing.request(f"10.9.{n // 250}.{n % 250 + 1}", now=now)
        except PairingRateLimited:
            refused += 1
    assert refused >= 5
    assert len(pairing.pending(now)) <= MAX_PENDING + 1
    # The hub still works for everyone else.
    assert admin.client.get("/device/list.json").status == 200


def test_allow_unknown_or_garbage_address(ctx, admin):
    pairing = ctx.pairing
    with pytest.raises(NoPendingRequest):
        pairing.allow("192.0.2.99", admin.userid)
    res = admin.client.post("/device/auth/allow.json", {"ip": "not-an-ip"})
    assert res.status == 400 and "not an IP" in res.json()["message"]


def test_pending_request_is_announced_as_an_event(web, ctx):
    sub = ctx.redis.pubsub()
    sub.subscribe(ctx.keys.events)
    sub.get_message(timeout=2)  # subscription confirmation
    device_get(web, "127.0.0.5", path="/device/auth/request.json?name=Kitchen%20plug")
    msg = sub.get_message(timeout=5)
    sub.close()
    assert msg is not None and b"device_auth_request" in msg["data"]
    assert b"Kitchen plug" in msg["data"] and b"127.0.0.5" in msg["data"]


def test_device_removed_before_fetching_gets_nothing(web, admin):
    device_get(web, "127.0.0.6")
    allowed = admin.client.post("/device/auth/allow.json", {"ip": "127.0.0.6"}).json()
    assert admin.client.post("/device/delete.json",
                             {"id": allowed["device"]["id"]}).status == 200
    status, text = device_get(web, "127.0.0.6")
    assert status == 200 and emonesp_parse(text) is None
