"""Pairing: EmonESP's auth-request flow, made safe enough to offer.

Flow (EmonESP `src/autoauth.cpp`, emoncms' removed device/auth code):
1. The device polls `GET /emoncms/device/auth/request.json` every 10 s. The hub records the
   request (address, time, User-Agent, any `name`/`type` it sends), answers exactly
   `request registered` (EmonESP compares that string) and publishes a `device_auth_request`
   event on the Redis channel `events` for the UI's pop-up.
2. The household allows (or denies) the address. Allow creates the device's own broker
   account at once (dynamic security: ACL = its own base topic only) and a grant that lives
   `pairing_window` seconds.
3. The device's next request from that same address takes the grant (atomically, so only
   once) and is answered `user:password:basetopic`: exactly three ':'-separated parts, as
   EmonESP only saves a reply with exactly two colons. Passwords are hex; no part has a colon.
4. Anything else gets no credentials: another address, a second request (replay), a request
   after the window (the unused account is then revoked), or a denied address (403 for
   DENY_TTL seconds).

Storms: each address may ask PER_IP_PER_MINUTE times a minute, everyone together
TOTAL_PER_MINUTE, and at most MAX_PENDING different addresses wait at once; more is refused
with PairingRateLimited (429) and costs one Redis round-trip.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from hub.device.dynsec import new_password, own_topic
from hub.device.errors import NoPendingRequest, PairingError, PairingRateLimited, UnknownDevice
from hub.device.store import BrokerAdmin, DeviceStore, name_from
from hub.names import RedisKeys

log = logging.getLogger(__name__)

REGISTERED = "request registered"
REQUEST_TTL = 600  # a pending request is forgotten after 10 minutes without a poll
DENY_TTL = 600
OPEN_TTL = 300  # discovery runs fast this long after the UI asks for it
PER_IP_PER_MINUTE = 12  # EmonESP asks every 10 s
TOTAL_PER_MINUTE = 120
MAX_PENDING = 20
_HINT_RE = re.compile(r"[^\w .:/()+-]")

# GET and DEL in one step: a grant can be taken exactly once even by concurrent requests.
_TAKE = "local v = redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); return v"


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


def normalise_ip(raw: str) -> str:
    try:
        address = ipaddress.ip_address((raw or "").strip())
    except ValueError:
        raise PairingError(f"not an IP address: {raw!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def _hint(value: Any) -> str:
    return _HINT_RE.sub("", str(value or ""))[:64]


@dataclass(eq=False)
class Pairing:
    redis: redis.Redis
    keys: RedisKeys
    devices: DeviceStore
    broker_admin: BrokerAdmin
    window_s: int  # how long an allowed device has to fetch its account
    base_topic: str  # device accounts get <base_topic>/<account>

    def _k(self, *parts: object) -> str:
        return self.keys.pairing(*parts)

    # -- the device side ---------------------------------------------------------------------

    def request(self, ip: str, user_agent: str = "", name: str = "", type: str = "",
                now: float | None = None) -> Answer:
        now = time.time() if now is None else now
        ip = normalise_ip(ip)
        self._rate_limit(ip, now)
        raw = self.redis.eval(_TAKE, 1, self._k("grant", ip))
        if raw is not None:
            return self._hand_out(ip, json.loads(raw), now)
        if self.redis.exists(self._k("denied", ip)):
            return Answer(403, "request denied")
        key = self._k("request", ip)
        is_new = not self.redis.exists(key)
        if is_new and self.redis.zcard(self._k("pending")) >= MAX_PENDING:
            self._drop_stale(now)
            if self.redis.zcard(self._k("pending")) >= MAX_PENDING:
                raise PairingRateLimited("too many devices are waiting for approval")
        record = {"ip": ip, "time": int(now), "user_agent": _hint(user_agent),
                  "name": _hint(name), "type": _hint(type)}
        if not is_new:
            record["time"] = json.loads(self.redis.get(key) or "{}").get("time", int(now))
            record["last_poll"] = int(now)
        pipe = self.redis.pipeline()
        pipe.set(key, json.dumps(record), ex=REQUEST_TTL)
        pipe.zadd(self._k("pending"), {ip: record["time"]})
        pipe.execute()
        if is_new:
            log.info("device auth request from %s (%s)", ip, record["user_agent"] or "no agent")
            self.publish_event("device_auth_request", **record)
        return Answer(200, REGISTERED)

    def _rate_limit(self, ip: str, now: float) -> None:
        minute = int(now // 60)
        pipe = self.redis.pipeline()
        for key in (self._k("rate", ip, minute), self._k("rate", "*", minute)):
            pipe.incr(key)
            pipe.expire(key, 120)
        mine, _, total, _ = pipe.execute()
        if mine > PER_IP_PER_MINUTE:
            raise PairingRateLimited(f"too many requests from {ip}; wait a minute")
        if total > TOTAL_PER_MINUTE:
            raise PairingRateLimited("too many auth requests; wait a minute")

    def _hand_out(self, ip: str, grant: dict[str, Any], now: float) -> Answer:
        if grant.get("expires", 0) <= now:
            return Answer(200, REGISTERED)
        try:
            self.devices.update(grant["device_id"], status="active", pairing_expires=None,
                                    ip=ip)
        except UnknownDevice:  # removed (or expired) between allow and now
            return Answer(200, REGISTERED)
        self.publish_event("device_paired", ip=ip, device_id=grant["device_id"])
        log.info("device %s at %s fetched its broker account %s", grant["device_id"], ip,
                 grant["user"])
        return Answer(200, f"{grant['user']}:{grant['password']}:{grant['basetopic']}")

    # -- the household side ------------------------------------------------------------------

    def pending(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        self._drop_stale(now)
        ips = self.redis.zrange(self._k("pending"), 0, -1)
        out = []
        for ip in ips:
            raw = self.redis.get(self._k("request", ip.decode()))
            if raw:
                out.append(json.loads(raw))
        return out

    def _drop_stale(self, now: float) -> None:
        for ip in self.redis.zrangebyscore(self._k("pending"), 0, now - REQUEST_TTL):
            if not self.redis.exists(self._k("request", ip.decode())):
                self.redis.zrem(self._k("pending"), ip)

    def allow(self, ip: str, user_id: int, now: float | None = None):
        """Create the device and its broker account; the device may fetch it once."""
        now = time.time() if now is None else now
        ip = normalise_ip(ip)
        raw = self.redis.get(self._k("request", ip))
        if raw is None:
            raise NoPendingRequest(f"no pending auth request from {ip}")
        record = json.loads(raw)
        window = int(self.window_s)
        username = f"esp-{secrets.token_hex(3)}"
        password = new_password()
        base = f"{self.base_topic}/{username}"
        with self.broker_admin() as admin:
            admin.create_device_account(username, password, own_topic(base))
        name = name_from(record.get("name", ""), f"device at {ip}")
        try:
            device = self.devices.create(
                user_id, name, "emonesp", base, node_type=record.get("type", ""),
                mqtt_username=username, ip=ip, status="pairing",
                pairing_expires=int(now) + window)
        except Exception:
            with self.broker_admin() as admin:
                admin.delete_device_account(username)
            raise
        grant = {"user": username, "password": password, "basetopic": base,
                 "device_id": device.id, "expires": now + window}
        pipe = self.redis.pipeline()
        pipe.set(self._k("grant", ip), json.dumps(grant), ex=window)
        pipe.delete(self._k("request", ip))
        pipe.zrem(self._k("pending"), ip)
        pipe.execute()
        self.publish_event("device_auth_allowed", ip=ip, device_id=device.id)
        log.info("auth request from %s allowed as device %s (account %s, %s s to fetch)", ip,
                 device.id, username, window)
        return device

    def deny(self, ip: str) -> None:
        ip = normalise_ip(ip)
        pipe = self.redis.pipeline()
        pipe.delete(self._k("request", ip))
        pipe.zrem(self._k("pending"), ip)
        pipe.set(self._k("denied", ip), "1", ex=DENY_TTL)
        removed = pipe.execute()[0]
        if not removed:
            raise NoPendingRequest(f"no pending auth request from {ip}")
        self.publish_event("device_auth_denied", ip=ip)

    def expire(self, now: float | None = None) -> list[int]:
        """Revoke accounts allowed but never fetched within the window."""
        now = time.time() if now is None else now
        gone = []
        for device in self.devices.list(status="pairing"):
            if device.pairing_expires is not None and device.pairing_expires < now:
                self.redis.delete(self._k("grant", device.ip))
                self.devices.remove(device.id)
                gone.append(device.id)
                log.info("pairing of %s expired unused; account %s revoked", device.ip,
                         device.mqtt_username)
        return gone

    # -- discovery window and events ---------------------------------------------------------

    def open_window(self, seconds: int = OPEN_TTL) -> None:
        self.redis.set(self._k("open"), "1", ex=seconds)

    def window_open(self) -> bool:
        return bool(self.redis.exists(self._k("open"))) or bool(
            self.redis.zcard(self._k("pending")))

    def publish_event(self, event: str, **fields: Any) -> None:
        self.redis.publish(self.keys.events, json.dumps({"event": event, **fields}))
