"""Per-device broker accounts through the dynamic-security API of a real Mosquitto."""

from __future__ import annotations

import contextlib

import pytest

from hub.device.dynsec import DynSec, new_password, own_topic
from hub.device.errors import BrokerAdminError
from tests.devices.mqttclient import ConnectRefused, TestClient


@pytest.fixture
def dynsec(servers):
    with DynSec("127.0.0.1", servers.mqtt_port, servers.mqtt_admin_user,
                servers.mqtt_admin_password) as admin:
        yield admin


@pytest.fixture
def two_devices(servers, dynsec, request):
    made = []

    def make(name: str) -> tuple[str, str]:
        user = f"{name}-{request.node.name[-20:]}".replace("[", "").replace("]", "")
        password = new_password()
        dynsec.create_device_account(user, password, own_topic(f"emon/{user}"))
        made.append(user)
        return user, password

    yield make
    for user in made:
        with contextlib.suppress(BrokerAdminError):
            dynsec.delete_device_account(user)


def _hub(servers) -> TestClient:
    return TestClient(servers.mqtt_port, servers.mqtt_user, servers.mqtt_password).connect()


def test_device_cannot_read_or_write_another_devices_topics(servers, two_devices):
    a_user, a_pw = two_devices("deva")
    b_user, b_pw = two_devices("devb")
    hub = _hub(servers)
    a = TestClient(servers.mqtt_port, a_user, a_pw).connect()
    b = TestClient(servers.mqtt_port, b_user, b_pw).connect()
    try:
        assert hub.subscribe("#")
        # A may use its own topic, both ways.
        assert a.subscribe(f"emon/{a_user}/#")
        a.publish(f"emon/{a_user}/power", "12")
        assert a.expect(f"emon/{a_user}/power").payload == b"12"
        assert hub.expect(f"emon/{a_user}/power").payload == b"12"
        # A may not subscribe to B's topics nor to everything.
        assert not a.subscribe(f"emon/{b_user}/#")
        assert not a.subscribe("#")
        # B's messages never reach A; the hub reads them.
        b.publish(f"emon/{b_user}/in/ctrlmode", "On")
        assert hub.expect(f"emon/{b_user}/in/ctrlmode").payload == b"On"
        assert a.nothing_on(f"emon/{b_user}/#", 0.5)
        # A cannot publish into B's topics (or anywhere else): nobody receives it.
        assert b.subscribe(f"emon/{b_user}/#")
        hub.drain()
        a.publish(f"emon/{b_user}/in/ctrlmode", "Off")
        a.publish("emon/meter/power", "999")
        assert b.nothing_on(f"emon/{b_user}/#", 0.5)
        assert hub.nothing_on("#", 0.5)
    finally:
        for c in (hub, a, b):
            c.close()


def test_deleting_an_account_disconnects_and_locks_out_at_once(servers, dynsec, two_devices):
    user, pw = two_devices("gone")
    dev = TestClient(servers.mqtt_port, user, pw).connect()
    dynsec.delete_device_account(user)
    assert dev.disconnected.wait(5), "deleted device must be disconnected by the broker"
    dev.close()
    with pytest.raises(ConnectRefused):
        TestClient(servers.mqtt_port, user, pw).connect()


def test_wrong_admin_password_is_a_clear_error(servers):
    with pytest.raises(BrokerAdminError, match="mqtt_admin_user"):
        DynSec("127.0.0.1", servers.mqtt_port, servers.mqtt_admin_user, "wrong",
               timeout=3).connect()


def test_hub_account_cannot_administer(servers):
    # The hub account may read and write topics but the plugin answers only the admin role.
    with pytest.raises(BrokerAdminError):
        DynSec("127.0.0.1", servers.mqtt_port, servers.mqtt_user, servers.mqtt_password,
               timeout=2).__enter__().create_role("x")


def test_duplicate_account_is_refused(servers, dynsec, two_devices):
    user, _ = two_devices("dup")
    with pytest.raises(BrokerAdminError, match="already exists"):
        dynsec.create_client(user, new_password())
