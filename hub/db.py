"""MariaDB access: one connection per thread, and versioned migrations applied at start.

Migrations are `hub/migrations/NNN_name.sql` files, applied in order, each once; the applied
versions are recorded in `schema_migrations`. Applying them again is a no-op, so every process
(web, worker, `hub admin migrate`) may call `migrate()` at start.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
import pymysql.cursors

from hub.config import Config
from hub.errors import DatabaseError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def connect(config: Config) -> pymysql.Connection:
    kwargs = dict(user=config.db_user, password=config.db_password, database=config.db_name,
                  charset="utf8mb4", autocommit=True, connect_timeout=5,
                  cursorclass=pymysql.cursors.DictCursor)
    try:
        if config.db_socket:
            return pymysql.connect(unix_socket=config.db_socket, **kwargs)
        return pymysql.connect(host=config.db_host, port=config.db_port, **kwargs)
    except pymysql.err.OperationalError as exc:
        where = config.db_socket or f"{config.db_host}:{config.db_port}"
        raise DatabaseError(f"cannot connect to MariaDB at {where} as {config.db_user!r}: "
                            f"{exc.args[-1]}") from exc


# `hub web` and `hub worker` start beside MariaDB at boot: their units do not wait for it,
# so their imports (seconds under QEMU, on a Pi 3 too) overlap its start. This long they
# wait for it to listen; then they exit and systemd starts them again.
SERVER_START_WAIT_S = 60
# pymysql's "can't connect" (socket missing or refused) and "lost connection" while the
# server is still starting: worth waiting for. Anything else (a wrong password, no such
# database) is answered at once.
_NOT_LISTENING_YET = {2002, 2003, 2013}


def wait_until_listening(config: Config, timeout_s: float = SERVER_START_WAIT_S,
                         poll_s: float = 0.25) -> None:
    """Return once MariaDB accepts the hub's login; raise DatabaseError when it refuses the
    login, or when it has not listened within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        try:
            connect(config).close()
            if said:
                log.info("MariaDB is up")
            return
        except DatabaseError as exc:
            cause = exc.__cause__
            code = cause.args[0] if cause is not None and cause.args else None
            if code not in _NOT_LISTENING_YET or time.monotonic() >= deadline:
                raise
            if not said:
                log.info("waiting up to %.0f s for MariaDB to listen (%s)", timeout_s, exc)
                said = True
        time.sleep(poll_s)


class Database:
    """Thread-local connections; `cursor()` reconnects once if the server dropped us."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._local = threading.local()

    def connection(self) -> pymysql.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or not conn.open:
            conn = self._local.conn = connect(self.config)
        return conn

    @contextmanager
    def cursor(self) -> Iterator[pymysql.cursors.DictCursor]:
        conn = self.connection()
        try:
            conn.ping(reconnect=True)
        except pymysql.err.Error:
            conn = self._local.conn = connect(self.config)
        with conn.cursor() as cur:
            yield cur

    def one(self, sql: str, args: tuple, missing: Exception) -> dict:
        """The one row `sql` selects; raises `missing` when there is none."""
        with self.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
        if row is None:
            raise missing
        return row

    @contextmanager
    def transaction(self) -> Iterator[pymysql.cursors.DictCursor]:
        conn = self.connection()
        conn.ping(reconnect=True)
        conn.begin()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.open:
            conn.close()
        self._local.conn = None


def migrations() -> list[tuple[int, Path]]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise DatabaseError(f"migration file name must be NNN_name.sql: {path.name}")
        found.append((int(match.group(1)), path))
    return found


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(db: Database) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INT PRIMARY KEY, name VARCHAR(128) NOT NULL,"
                    " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        # Two processes starting together must not both apply a migration.
        cur.execute("SELECT GET_LOCK('hub_migrate', 60) AS got")
        if not cur.fetchone()["got"]:
            raise DatabaseError("timed out waiting for another process to finish migrating")
        try:
            cur.execute("SELECT version FROM schema_migrations")
            done = {row["version"] for row in cur.fetchall()}
            applied = []
            for version, path in migrations():
                if version in done:
                    continue
                log.info("applying migration %s", path.name)
                for statement in _statements(path.read_text()):
                    try:
                        cur.execute(statement)
                    except pymysql.err.Error as exc:
                        raise DatabaseError(f"migration {path.name} failed: {exc}") from exc
                cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (version, path.name))
                applied.append(version)
            return applied
        finally:
            cur.execute("SELECT RELEASE_LOCK('hub_migrate')")
