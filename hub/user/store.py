"""Users: registration, login, sessions, passwords, resets and emoncms-style API keys.

- The first registered user is the administrator.
- Passwords are hashed with scrypt (memory-hard, in Python's standard library).
- API keys are 32 hex characters. The write key can read and write data, the read key can only
  read; neither can change account settings (that needs a logged-in session).
- Passwords: 8 to 1024 characters, no control characters, not one of the most common
  passwords (`common-passwords.txt`, compared case-insensitively) and not the username. No
  composition rules (NIST SP 800-63B).
- Failed logins are counted per address (`login_attempts`) and per account from any address
  (`login_account_attempts`) in Redis. Reaching either locks that address or account out for
  `login_lockout` seconds, doubled for each further lockout within a day (up to
  `login_lockout_max`); while locked, even the right password is refused. The address is the
  one the web side trusts (the TCP peer, or X-Forwarded-For from a configured proxy only).
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
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
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


# Every scrypt runs in this one thread. Each hash takes 16 MiB; run in the web server's
# threads, glibc keeps that much in a malloc arena per thread, so a burst of logins grew
# `hub web` by ~80 MB for good (found by the API fuzz test). One thread: one arena, 16 MiB,
# and a login flood costs one core, not all of them.
_SCRYPT = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrypt")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return _SCRYPT.submit(hashlib.scrypt, password, salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=64 * 1024 * 1024).result()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password.encode(), base64.b64decode(salt), int(n), int(r), int(p),
                         len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")
LOCKOUT_MEMORY = 24 * 3600  # lockouts within this long count for the doubling


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of passwords too common to allow (one a line, # comments)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines
                     if line.strip() and not line.startswith("#"))


def check_password(password: object, username: str = "") -> None:
    """The password policy; raises WeakPassword with a message the user can act on."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise WeakPassword(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if any(unicodedata.category(char) == "Cc" for char in password):
        raise WeakPassword("password must not contain control characters")
    folded = password.casefold()
    if folded in common_passwords():
        raise WeakPassword("that password is one of the most common ones; choose another")
    if username and folded == str(username).casefold():
        raise WeakPassword("password must not be the username")




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
        # `column` is "id" or "username" from this class, never input; values are bound.
        return _row_to_user(self.db.one(f"SELECT {_COLUMNS} FROM users WHERE {column} = %s",  # nosec B608
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
            # bandit B608: fixed columns.
            cur.execute(f"SELECT {_COLUMNS} FROM users WHERE apikey_write = %s "  # nosec B608
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
            # bandit B608: fixed columns.
            cur.execute(f"SELECT {_COLUMNS} FROM users ORDER BY id")  # nosec B608
            return [_row_to_user(row) for row in cur.fetchall()]

    # -- registration and passwords ----------------------------------------------------------

    def register(self, username: str, password: str, email: str = "") -> User:
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise InvalidUsername("username must be 2-64 letters, digits, '.', '_' or '-'")
        if email and not EMAIL_RE.match(email):
            raise InvalidEmail("email address is not valid")
        check_password(password, username)
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

    def _limits(self, username: str, address: str) -> list[tuple[str, int]]:
        """(Redis key base, failures allowed) for the address and for the account."""
        return [(self.keys.login_fail("", f"addr:{address}"), self.config.login_attempts),
                (self.keys.login_fail(username, "account"), self.config.login_account_attempts)]

    def _check_locks(self, limits: list[tuple[str, int]]) -> None:
        waits = [self.redis.ttl(f"{base}:locked") for base, _ in limits]
        longest = max(waits)
        if longest > 0 or -1 in waits:
            raise LoginLocked(max(1, longest))

    def _count_failure(self, limits: list[tuple[str, int]]) -> None:
        for base, allowed in limits:
            pipe = self.redis.pipeline()
            pipe.incr(f"{base}:count")
            pipe.expire(f"{base}:count", self.config.login_lockout_max)
            failures = pipe.execute()[0]
            if failures < allowed:
                continue
            pipe = self.redis.pipeline()
            pipe.incr(f"{base}:strikes")
            pipe.expire(f"{base}:strikes", LOCKOUT_MEMORY)
            pipe.delete(f"{base}:count")
            strikes = pipe.execute()[0]
            lockout = min(self.config.login_lockout * 2 ** min(strikes - 1, 20),
                          self.config.login_lockout_max)
            self.redis.set(f"{base}:locked", 1, ex=max(1, lockout))

    def authenticate(self, username: str, password: str, address: str = "") -> User:
        """The user if the password is right; LoginLocked while the address or the account
        is locked out (see the module docstring)."""
        username = str(username)
        limits = self._limits(username, address)
        self._check_locks(limits)
        with self.db.cursor() as cur:
            # Fixed _COLUMNS; the username is a bound parameter.
            cur.execute(f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = %s",  # nosec B608
                        (username,))
            row = cur.fetchone()
        # Hash even for unknown users so timing does not reveal which names exist.
        stored = row["password_hash"] if row else hash_password("x" * MIN_PASSWORD)
        if not isinstance(password, str) or not verify_password(password, stored) or not row:
            self._count_failure(limits)
            raise LoginFailed("username or password is wrong")
        self.redis.delete(*(f"{base}:count" for base, _ in limits))
        return _row_to_user(row)

    def _set_password(self, user_id: int, password: str) -> None:
        row = self.db.one("SELECT username FROM users WHERE id = %s", (user_id,),
                          UserNotFound(f"no user with id {user_id}"))
        check_password(password, row["username"])
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
        check_password(new)
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
            # `kind` was checked to be "read" or "write" just above.
            cur.execute(f"UPDATE users SET apikey_{kind} = %s WHERE id = %s", (key, user_id))  # nosec B608
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
                # Column names come from the fixed keyword arguments; values are bound.
                cur.execute(f"UPDATE users SET {sets} WHERE id = %s", (*fields.values(), user_id))  # nosec B608
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
