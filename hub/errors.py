"""Errors both sides share: a server (MariaDB, Redis) failed, as opposed to the data."""

from __future__ import annotations

import pymysql
import redis


class DatabaseError(RuntimeError):
    """The database could not be reached or a migration failed."""


# Failures of a server rather than of the data: never swallowed by the stores, so the caller
# can keep the readings and retry (the worker does, without acknowledging them to the broker).
# A full Redis (maxmemory with noeviction, e.g. while a full disk stops the flushes) is one
# too: readings are refused and retried, never acknowledged and dropped.
SERVER_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError, pymysql.err.OperationalError, DatabaseError)
