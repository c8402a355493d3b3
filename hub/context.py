"""HubContext: the one object that owns config, the database, Redis and the models.

The web app, the worker and `hub admin` each build one. Models are created on first use, so a
process only pays for what it touches. Models never import bottle.
"""

from __future__ import annotations

from functools import cached_property

import redis

from hub.config import Config
from hub.db import Database


class HubContext:
    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def db(self) -> Database:
        return Database(self.config)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis(host=self.config.redis_host, port=self.config.redis_port,
                           db=self.config.redis_db, socket_timeout=5,
                           socket_connect_timeout=5, health_check_interval=30)

    def key(self, *parts: object) -> str:
        """A Redis key under the configured prefix."""
        return self.config.redis_prefix + ":".join(str(p) for p in parts)

    # -- models (one cached_property each; add yours here) ---------------------------------

    @cached_property
    def users(self):
        from hub.models.user import UserStore

        return UserStore(self)

    @cached_property
    def feeds(self):
        from hub.models.feeds import FeedStore

        return FeedStore(self)

    @cached_property
    def inputs(self):
        from hub.models.inputs import InputStore

        return InputStore(self)

    @cached_property
    def devices(self):
        from hub.models.devices import DeviceStore

        return DeviceStore(self)

    @cached_property
    def schedules(self):
        from hub.models.schedules import ScheduleStore

        return ScheduleStore(self)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
        if "redis" in self.__dict__:
            self.redis.close()
