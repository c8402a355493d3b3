"""HubContext: the one place that wires config, MariaDB, Redis and the stores together.

The web app, the worker and `hub admin` each build one. Stores get what they use in their
constructors (database, Redis client, key names, sibling stores, settings) and never reach
for this object, so each can be built alone in a test. Everything is created on first use, so
a process only pays for what it touches. Nothing here imports bottle or paho's client loop.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from hub.config import Config
from hub.db import Database
from hub.device.dynsec import DynSec
from hub.device.pairing import Pairing
from hub.device.planning import SignalStore
from hub.device.schedule import ScheduleStore
from hub.device.store import DeviceStore
from hub.device.templates import DeviceTemplates
from hub.feed.store import FeedStore
from hub.input.store import InputStore
from hub.names import RedisKeys
from hub.sync.store import SyncStore
from hub.update.agent import UpdateAgent
from hub.user.store import UserStore

if TYPE_CHECKING:
    from hub.display.household import HouseholdStore
    from hub.display.screens import DisplayService


class HubContext:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.keys = RedisKeys(config.redis_prefix)

    @cached_property
    def db(self) -> Database:
        return Database(self.config)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis(host=self.config.redis_host, port=self.config.redis_port,
                           db=self.config.redis_db, socket_timeout=5,
                           socket_connect_timeout=5, health_check_interval=30)

    def broker_admin(self) -> DynSec:
        """An admin connection to the broker's dynamic-security API (use with `with`)."""
        return DynSec.from_config(self.config)

    # -- stores (one cached_property each; add yours here) ---------------------------------

    @cached_property
    def users(self) -> UserStore:
        return UserStore(self.db, self.redis, self.keys, self.config)

    @cached_property
    def feeds(self) -> FeedStore:
        return FeedStore(self.db, self.redis, self.keys, self.config.feed_dir)

    @cached_property
    def inputs(self) -> InputStore:
        return InputStore(self.db, self.redis, self.keys, self.feeds,
                          self.config.max_nodes_per_user)

    @cached_property
    def devices(self) -> DeviceStore:
        return DeviceStore(self.db, self.redis, self.keys, self.broker_admin)

    @cached_property
    def schedules(self) -> ScheduleStore:
        return ScheduleStore(self.db, self.redis, self.keys, self.devices, self.config.timezone)

    @cached_property
    def pairing(self) -> Pairing:
        return Pairing(self.redis, self.keys, self.devices, self.broker_admin,
                       self.config.pairing_window, self.config.mqtt_base_topic)

    @cached_property
    def templates(self) -> DeviceTemplates:
        return DeviceTemplates(self.feeds, self.inputs, self.redis, self.keys,
                               self.config.mqtt_base_topic)

    @cached_property
    def signal(self) -> SignalStore:
        return SignalStore(self.redis, self.keys, self.config.timezone)

    @cached_property
    def households(self) -> HouseholdStore:
        from hub.display.household import HouseholdStore  # the web's screens only

        return HouseholdStore(self.db, self.feeds)

    @cached_property
    def display(self) -> DisplayService:
        from hub.display.screens import DisplayService  # the web's screens only

        return DisplayService(self.feeds, self.households, self.signal, self.pairing,
                              self.devices, self.schedules, self.config.timezone)

    @cached_property
    def updates(self) -> UpdateAgent:
        path = self.config.update_status_file
        return UpdateAgent(Path(path) if path else None)

    @cached_property
    def sync(self) -> SyncStore:
        return SyncStore(self.config.data_dir, self.config.feed_dir, self.redis,
                         self.keys.sync_progress)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
        if "redis" in self.__dict__:
            self.redis.close()
