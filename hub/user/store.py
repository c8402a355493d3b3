"""Users: registration, login, sessions, passwords, resets and emoncms-style API keys.

- The first registered user is the administrator.
- Passwords are hashed with scrypt (memory-hard, in Python's standard library).
- API keys are 32 hex characters. The write key can read and write data, the read key can only
  read; neither can change account settings (that needs a logged-in session).
- Failed logins are counted per (username, address) in Redis; after `login_attempts` failures
  the pair is locked out for `login_lockout` seconds.
- Sessions live in Redis under an HMAC of the token (keyed with the per-device `session_key`),
  so a copy of Redis' memory does not give working cookies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from zoneinfo import available_timezones

import pymysql
import redis

from hub.config import Config
from hub.db import Database
from hub.names import RedisKeys

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB per hash: ~0.1 s on a Pi 3
SCRYPT_DKLEN = 32
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
RESET_TOKEN_LIFETIME = 24 * 3600
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,120}$")
APIKEY_RE = re.compile(r"^[0-9a-f]{32}$")


class UserError(Exception):
    """Base of every user-model failure; the message is safe to show to the user."""


class InvalidUsername(UserError):
    pass


class InvalidEmail(UserError):
    pass


class WeakPassword(UserError):
    pass


class UsernameTaken(UserError):
    pass


class UserNotFound(UserError):
    pass


class LoginFailed(UserError):
    pass


class LoginLocked(UserError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


class InvalidResetToken(UserError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    apikey_read: str
    apikey_write: str
    is_admin: bool
    language: str
    timezone: str

    def public(self) -> dict[str, object]:
        """What the account page and `user/get.json` show (no password hash)."""
        return {"id": self.id, "username": self.username, "email": self.email,
                "apikey_read": self.apikey_read, "apikey_write": self.apikey_write,
                "admin": self.is_admin, "language": self.language, "timezone": self.timezone}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=SCRYPT_DKLEN, maxmem=64 * 1024 * 1024)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected),
                                maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise WeakPassword(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def _new_apikey() -> str:
    return secrets.token_hex(16)


_COLUMNS = "id, username, email, apikey_read, apikey_write, is_admin, language, timezone"


def _row_to_user(row: dict) -> User:
    return User(id=row["id"], username=row["username"], email=row["email"],
                apikey_read=row["apikey_read"], apikey_write=row["apikey_write"],
                is_admin=bool(row["is_admin"]), language=row["language"],
                timezone=row["timezone"])


@dataclass(eq=False)
class UserStore:
    db: Database
    redis: redis.Redis
    keys: RedisKeys
    config: Config

    # -- lookups ---------------------------------------------------------------------------

    def _one(self, column: str, value: object, missing: str) -> User:
        return _row_to_user(self.db.one(f"SELECT {_COLUMNS} FROM users WHERE {column} = %s",
                                        (value,), UserNotFound(missing)))

    def get(self, user_id: int) -> User:
        return self._one("id", user_id, f"no user with id {user_id}")

    def by_username(self, username: str) -> User:
        return self._one("username", username, f"no user named {username!r}")

    def by_apikey(self, key: str) -> tuple[User, str] | None:
        """(user, "read" or "write") for a valid key, else None."""
        if not isinstance(key, str) or not APIKEY_RE.match(key):
            return None
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM users WHERE apikey_write = %s "
                        "OR apikey_read = %s", (key, key))
            row = cur.fetchone()
        if row is None:
            return None
        user = _row_to_user(row)
        return user, ("write" if hmac.compare_digest(user.apikey_write, key) else "read")

    def count(self) -> int:
        with self.db.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM users")
            return cur.fetchone()["n"]

    def list(self) -> list[User]:
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM users ORDER BY id")
            return [_row_to_user(row) for row in cur.fetchall()]

    # -- registration and passwords ----------------------------------------------------------

    def register(self, username: str, password: str, email: str = "") -> User:
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise InvalidUsername("username must be 2-64 letters, digits, '.', '_' or '-'")
        if email and not EMAIL_RE.match(email):
            raise InvalidEmail("email address is not valid")
        _check_password(password)
        hashed = hash_password(password)
        with self.db.transaction() as cur:
            # Lock the table's first row range so two first registrations can't both be admin.
            cur.execute("SELECT COUNT(*) AS n FROM users FOR UPDATE")
            is_admin = cur.fetchone()["n"] == 0
            try:
                cur.execute("INSERT INTO users (username, email, password_hash, apikey_read,"
                            " apikey_write, is_admin, timezone) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                            (username, email, hashed, _new_apikey(), _new_apikey(), is_admin,
                             self.config.timezone))
            except pymysql.err.IntegrityError:
                raise UsernameTaken(f"username {username!r} is already registered") from None
            user_id = cur.lastrowid
        return self.get(user_id)

    def _lock_key(self, username: str, address: str) -> str:
        return self.keys.login_fail(username, address)

    def authenticate(self, username: str, password: str, address: str = "") -> User:
        """The user if the password is right; LoginLocked after too many failures."""
        lock_key = self._lock_key(str(username), address)
        failures = int(self.redis.get(lock_key) or 0)
        if failures >= self.config.login_attempts:
            raise LoginLocked(max(1, self.redis.ttl(lock_key)))
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = %s",
                        (username,))
            row = cur.fetchone()
        # Hash even for unknown users so timing does not reveal which names exist.
        stored = row["password_hash"] if row else hash_password("x" * MIN_PASSWORD)
        if not isinstance(password, str) or not verify_password(password, stored) or not row:
            pipe = self.redis.pipeline()
            pipe.incr(lock_key)
            pipe.expire(lock_key, self.config.login_lockout)
            pipe.execute()
            raise LoginFailed("username or password is wrong")
        self.redis.delete(lock_key)
        return _row_to_user(row)

    def _set_password(self, user_id: int, password: str) -> None:
        _check_password(password)
        with self.db.cursor() as cur:
            cur.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                        (hash_password(password), user_id))
            if cur.rowcount == 0:
                raise UserNotFound(f"no user with id {user_id}")

    def change_password(self, user_id: int, old: str, new: str, keep_session: str = "") -> None:
        """Change the password and log out every session but `keep_session` (the caller's)."""
        row = self.db.one("SELECT password_hash FROM users WHERE id = %s", (user_id,),
                          UserNotFound(f"no user with id {user_id}"))
        if not isinstance(old, str) or not verify_password(old, row["password_hash"]):
            raise LoginFailed("current password is wrong")
        self._set_password(user_id, new)
        self.end_all_sessions(user_id, keep=keep_session)

    def set_password(self, username: str, new: str) -> User:
        """On-device console reset (`hub admin reset-password`): no old password needed."""
        user = self.by_username(username)
        self._set_password(user.id, new)
        self.end_all_sessions(user.id)
        return user

    def issue_reset_token(self, user_id: int) -> str:
        """Admin-issued one-time token; only its hash is stored."""
        self.get(user_id)
        token = secrets.token_urlsafe(24)
        with self.db.cursor() as cur:
            cur.execute("INSERT INTO password_resets (token_hash, user_id, expires_at) "
                        "VALUES (%s, %s, %s)", (hashlib.sha256(token.encode()).hexdigest(),
                                                user_id, int(time.time()) + RESET_TOKEN_LIFETIME))
        return token

    def reset_password(self, token: str, new: str) -> User:
        _check_password(new)
        token_hash = hashlib.sha256(str(token).encode()).hexdigest()
        with self.db.transaction() as cur:
            cur.execute("SELECT user_id, expires_at FROM password_resets WHERE token_hash = %s "
                        "FOR UPDATE", (token_hash,))
            row = cur.fetchone()
            cur.execute("DELETE FROM password_resets WHERE token_hash = %s", (token_hash,))
        if row is None or row["expires_at"] < time.time():
            raise InvalidResetToken("reset token is unknown, used or expired")
        self._set_password(row["user_id"], new)
        self.end_all_sessions(row["user_id"])
        return self.get(row["user_id"])

    def new_apikey(self, user_id: int, kind: str) -> str:
        if kind not in ("read", "write"):
            raise UserError("apikey kind must be 'read' or 'write'")
        key = _new_apikey()
        with self.db.cursor() as cur:
            cur.execute(f"UPDATE users SET apikey_{kind} = %s WHERE id = %s", (key, user_id))
        return key

    def update_profile(self, user_id: int, *, email: str | None = None,
                       language: str | None = None, timezone: str | None = None) -> User:
        fields: dict[str, str] = {}
        if email is not None:
            if email and not EMAIL_RE.match(email):
                raise InvalidEmail("email address is not valid")
            fields["email"] = email
        if language is not None:
            if language not in ("en", "cy"):
                raise UserError("language must be 'en' (English) or 'cy' (Welsh)")
            fields["language"] = language
        if timezone is not None:
            if timezone not in available_timezones():
                raise UserError(f"unknown timezone {timezone!r}")
            fields["timezone"] = timezone
        if fields:
            sets = ", ".join(f"{name} = %s" for name in fields)
            with self.db.cursor() as cur:
                cur.execute(f"UPDATE users SET {sets} WHERE id = %s", (*fields.values(), user_id))
        return self.get(user_id)

    # -- sessions ----------------------------------------------------------------------------

    def _session_key(self, token: str) -> str:
        secret = self.config.session_key.encode() or b"unset"
        digest = hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()
        return self.keys.session(digest)

    def create_session(self, user_id: int) -> str:
        token = secrets.token_urlsafe(32)
        pipe = self.redis.pipeline()
        pipe.set(self._session_key(token), user_id, ex=self.config.session_lifetime)
        pipe.sadd(self.keys.user_sessions(user_id), self._session_key(token))
        pipe.execute()
        return token

    def session_user(self, token: str) -> int | None:
        if not token or len(token) > 128:
            return None
        value = self.redis.get(self._session_key(token))
        return int(value) if value is not None else None

    def end_session(self, token: str) -> None:
        if token and len(token) <= 128:
            self.redis.delete(self._session_key(token))

    def end_all_sessions(self, user_id: int, keep: str = "") -> None:
        members_key = self.keys.user_sessions(user_id)
        kept = self._session_key(keep).encode() if keep else None
        ended = [k for k in self.redis.smembers(members_key) if k != kept]
        if ended:
            self.redis.delete(*ended)
            self.redis.srem(members_key, *ended)
