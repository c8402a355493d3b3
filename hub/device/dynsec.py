"""A client for Mosquitto's dynamic security plugin (`$CONTROL/dynamic-security/v1`).

Commands are JSON `{"commands": [{"command": ..., ..., "correlationData": id}]}` published by
the admin account; the plugin answers on `$CONTROL/dynamic-security/v1/response` with
`{"responses": [{"command": ..., "error"?: ..., "data"?: ..., "correlationData": id}]}`.
Changes apply at once, with no broker restart; `deleteClient` and `disableClient` also
disconnect a connected client of that username, which is how a removed device loses access
immediately.

    with DynSec.from_config(ctx.config) as admin:
        admin.create_device_account("esp-1a2b3c", password, ["emon/esp-1a2b3c/#"])
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import BrokerAdminError

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TopicGrant:
    """One topic filter a device may use: `publish` (send to it) and/or `subscribe`."""

    topic: str
    publish: bool = True
    subscribe: bool = True


def own_topic(base: str) -> list[TopicGrant]:
    """The usual grant: everything under the device's own base topic, both ways."""
    return [TopicGrant(f"{base}/#")]


class DynSec:
    """A short-lived admin connection; use as a context manager."""

    def __init__(self, host: str, port: int, username: str, password: str,
                 timeout: float = TIMEOUT_S) -> None:
        import paho.mqtt.client as mqtt  # see ALLOWED_LOCAL_IMPORTS: `hub web` rarely needs it

        self.host, self.port, self.timeout = host, port, timeout
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=f"cydynni-dynsec-{uuid.uuid4().hex[:8]}")
        self._client.username_pw_set(username, password)
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}

    @classmethod
    def from_config(cls, config: Any) -> DynSec:
        return cls(config.mqtt_host, config.mqtt_port, config.mqtt_admin_user,
                   config.mqtt_admin_password)

    # -- connection --------------------------------------------------------------------------

    def __enter__(self) -> DynSec:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise BrokerAdminError(f"cannot reach the MQTT broker at {self.host}:{self.port}: "
                                   f"{exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(self.timeout) or self._connect_error:
            self.close()
            raise BrokerAdminError(
                "the broker refused the admin account "
                f"({self._connect_error or 'no answer'}); check mqtt_admin_user/password")
        if not self._subscribed.wait(self.timeout):
            self.close()
            raise BrokerAdminError("the broker did not accept the dynamic-security "
                                   "subscription; is the dynsec plugin loaded?")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            self._connect_error = str(reason_code)
        else:
            client.subscribe(RESPONSE_TOPIC, qos=1)
        self._connected.set()

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _props) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self._subscribed.set()

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            for response in responses if isinstance(responses, list) else []:
                waiter = self._waiting.get(str(response.get("correlationData")))
                if waiter:
                    waiter[1].append(response)
                    waiter[0].set()

    # -- commands ----------------------------------------------------------------------------

    def command(self, command: str, **fields: Any) -> dict[str, Any]:
        """Send one command and return its response; raises BrokerAdminError on an error."""
        correlation = uuid.uuid4().hex
        done: threading.Event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            self._waiting[correlation] = (done, box)
        try:
            payload = {"commands": [{"command": command, **fields,
                                     "correlationData": correlation}]}
            self._client.publish(CONTROL_TOPIC, json.dumps(payload), qos=1)
            if not done.wait(self.timeout):
                raise BrokerAdminError(f"no answer from the broker to {command} within "
                                       f"{self.timeout:g} s")
        finally:
            with self._lock:
                self._waiting.pop(correlation, None)
        response = box[0]
        if response.get("error"):
            raise BrokerAdminError(f"{command} failed: {response['error']}")
        return response

    def create_client(self, username: str, password: str, roles: Iterable[str] = ()) -> None:
        self.command("createClient", username=username, password=password,
                     roles=[{"rolename": r} for r in roles])

    def delete_client(self, username: str) -> None:
        """Delete the account; the broker disconnects it if connected."""
        self.command("deleteClient", username=username)

    def disable_client(self, username: str) -> None:
        self.command("disableClient", username=username)

    def create_role(self, rolename: str) -> None:
        self.command("createRole", rolename=rolename)

    def delete_role(self, rolename: str) -> None:
        self.command("deleteRole", rolename=rolename)

    def add_role_acl(self, rolename: str, acltype: str, topic: str, allow: bool = True,
                     priority: int = 0) -> None:
        self.command("addRoleACL", rolename=rolename, acltype=acltype, topic=topic,
                     allow=allow, priority=priority)

    def get_client(self, username: str) -> dict[str, Any] | None:
        try:
            return self.command("getClient", username=username).get("data", {}).get("client")
        except BrokerAdminError as exc:
            if "not found" in str(exc).lower():
                return None
            raise

    def list_clients(self) -> list[str]:
        data = self.command("listClients", verbose=False, count=-1, offset=0).get("data", {})
        return list(data.get("clients", []))

    # -- device accounts ---------------------------------------------------------------------

    def create_device_account(self, username: str, password: str,
                              grants: Iterable[TopicGrant]) -> None:
        """An account whose role allows only `grants`; everything else stays denied.

        Dynsec's default lets a client *receive* any message it is subscribed to, so each
        role also denies receiving `#` at a lower priority: even a subscription granted by
        mistake never carries another device's messages.
        """
        role = role_name(username)
        self.create_role(role)
        try:
            for grant in grants:
                if grant.publish:
                    self.add_role_acl(role, "publishClientSend", grant.topic, priority=10)
                if grant.subscribe:
                    self.add_role_acl(role, "subscribePattern", grant.topic, priority=10)
                    self.add_role_acl(role, "publishClientReceive", grant.topic, priority=10)
            self.add_role_acl(role, "publishClientReceive", "#", allow=False, priority=-1)
            self.add_role_acl(role, "publishClientSend", "#", allow=False, priority=-1)
            self.add_role_acl(role, "subscribePattern", "#", allow=False, priority=-1)
            self.create_client(username, password, roles=[role])
        except BrokerAdminError:
            self._forget(username)
            raise

    def delete_device_account(self, username: str) -> None:
        """Revoke at once: delete (and so disconnect) the client, then its role."""
        self._forget(username)

    def _forget(self, username: str) -> None:
        errors = []
        for step in (lambda: self.delete_client(username),
                     lambda: self.delete_role(role_name(username))):
            try:
                step()
            except BrokerAdminError as exc:
                if "not found" not in str(exc).lower():
                    errors.append(str(exc))
        if errors:
            raise BrokerAdminError("; ".join(errors))


def role_name(username: str) -> str:
    return f"device-{username}"


def new_password() -> str:
    """A password with no ':' (EmonESP splits its credentials on ':')."""
    return secrets.token_hex(16)
