"""HouseholdStore: the household's display settings in MariaDB (`household`, one row a user).

Name, the feed shown as "my power" (None = pick the feed named `use` or `power`), and the
tariff (validated by `hub.display.tariff`; None = not set, which the pages show as such).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from hub.db import Database
from hub.display.tariff import InvalidTariff, Tariff, loads, parse
from hub.feed.store import Feed, FeedError, FeedStore

NAME_RE = re.compile(r"^[^\x00-\x1f<>]{0,64}$")
POWER_FEED_NAMES = ("use", "power")


class InvalidHousehold(ValueError):
    """A household setting is not acceptable; the message says which and why."""


@dataclass(frozen=True)
class Household:
    user_id: int
    name: str
    power_feed: int | None
    tariff: Tariff | None


class HouseholdStore:
    def __init__(self, db: Database, feeds: FeedStore) -> None:
        self.db = db
        self.feeds = feeds

    def get(self, user_id: int) -> Household:
        with self.db.cursor() as cur:
            cur.execute("SELECT name, power_feed, tariff FROM household WHERE user_id=%s",
                        (user_id,))
            row = cur.fetchone()
        if row is None:
            return Household(user_id, "", None, None)
        try:
            tariff = loads(row["tariff"])
        except (InvalidTariff, ValueError):
            tariff = None  # a row written by an older rule: shown as "not set", not guessed
        return Household(user_id, row["name"], row["power_feed"], tariff)

    def _upsert(self, user_id: int, column: str, value: object) -> None:
        with self.db.cursor() as cur:
            # bandit B608: `column` is one of this class's literal column names; values bound.
            cur.execute(f"INSERT INTO household (user_id, {column}) VALUES (%s, %s) "  # nosec B608
                        f"ON DUPLICATE KEY UPDATE {column}=VALUES({column})", (user_id, value))

    def set_name(self, user_id: int, name: str) -> None:
        name = (name or "").strip()
        if not NAME_RE.match(name):
            raise InvalidHousehold("household name: up to 64 characters, no < or >")
        self._upsert(user_id, "name", name)

    def set_tariff(self, user_id: int, obj: object) -> Tariff:
        try:
            tariff = parse(obj)
        except InvalidTariff as exc:
            raise InvalidHousehold(f"tariff: {exc}") from None
        self._upsert(user_id, "tariff", json.dumps(tariff.to_json()))
        return tariff

    def clear_tariff(self, user_id: int) -> None:
        self._upsert(user_id, "tariff", None)

    def set_power_feed(self, user_id: int, feed_id: int | None) -> None:
        if feed_id is not None:
            try:
                self.feeds.get_owned(feed_id, user_id)
            except FeedError:
                raise InvalidHousehold(f"you have no feed {feed_id}") from None
        self._upsert(user_id, "power_feed", feed_id)

    def power_feed(self, household: Household, feeds: list[Feed] | None = None
                   ) -> Feed | None:
        """The chosen power feed, else the user's feed named `use`, else `power`.
        `feeds` is the user's feed list when the caller already has it (one query less)."""
        feeds = self.feeds.feeds(household.user_id) if feeds is None else feeds
        if household.power_feed is not None:
            chosen = next((f for f in feeds if f.id == household.power_feed), None)
            if chosen is not None:
                return chosen  # else deleted since: fall back to the names
        for name in POWER_FEED_NAMES:
            for feed in feeds:
                if feed.name.lower() == name and feed.tag != "profile":
                    return feed
        return None
