"""DisplayService: every number the in-home display shows, computed here, once, on the server.

The web side renders these dataclasses and the live endpoint serialises `live()`; templates
and JavaScript format, they never compute. Built by HubContext with the stores it reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from hub.device.pairing import REQUEST_TTL, Pairing
from hub.device.planning import SignalStore, preview
from hub.device.schedule import ScheduleNotFound, ScheduleStore, StoredSchedule
from hub.device.store import DeviceStore
from hub.display import goodtime, periods
from hub.display.household import HouseholdStore
from hub.display.tariff import Band, Cost, Tariff, cost
from hub.feed.store import Feed, FeedError, FeedStore
from hub.scheduler.errors import SchedulerError
from hub.scheduler.plan import ScheduleDefinition

STALE_AFTER_S = 30
SOURCES_TTL_S = 5    # tariff and feed list: a Settings change shows within 5 s (or at once,
                     # via forget(), in the process that saved it)
PROFILE_TTL_S = 60   # hydro/community/signal values change with the half-hour or a new profile
HISTORY_S = 3 * 3600
HISTORY_STEP_S = 60


@dataclass(frozen=True)
class Reading:
    value: float | None
    time: int | None


@dataclass(frozen=True)
class NowView:
    power: Reading
    stale: bool
    card: goodtime.Card
    band: Band | None          # None: no tariff set
    hydro_kw: float | None
    community_kw: float | None
    history: list[tuple[int, float | None]]  # last 3 h at 1 min
    has_power_feed: bool


@dataclass(frozen=True)
class UseView:
    period: periods.Period
    bars: list[tuple[int, float | None]]  # (start, kWh) per half-hour (day) or day
    kwh: float
    cost: Cost | None   # None: no tariff
    has_power_feed: bool
    is_current: bool


@dataclass(frozen=True)
class BestView:
    slots: list[goodtime.Slot]
    windows: list[goodtime.Window]
    bands: list[str | None]  # tariff band name per slot, None without a tariff
    source: str


@dataclass(frozen=True)
class CommunityView:
    day: list[tuple[int, float | None, float | None]]  # (t, community kW, hydro kW)
    week_community_kwh: float
    week_hydro_kwh: float
    score: float | None  # % of community use matched by hydro over 7 days


@dataclass(frozen=True)
class DeviceCard:
    id: int
    name: str
    type: str
    mode: str | None          # on/off/smart/timer as the household set it; None = no schedule
    is_on: bool | None
    power: float | None
    sync: str                 # saved / pending / unresponsive
    next_run: dict[str, Any] | None
    status: str


class DisplayService:
    def __init__(self, feeds: FeedStore, households: HouseholdStore, signal: SignalStore,
                 pairing: Pairing, devices: DeviceStore, schedules: ScheduleStore,
                 timezone: str) -> None:
        self.feeds = feeds
        self.households = households
        self.signal = signal
        self.pairing = pairing
        self.devices = devices
        self.schedules = schedules
        self.tz = ZoneInfo(timezone)
        self._cache: dict[tuple, tuple[float, Any]] = {}

    def _cached(self, key: tuple, ttl: float, make):
        """A small per-process cache, so the live endpoint costs few server round trips."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = make()
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[key] = (now + ttl, value)
        return value

    def forget(self, user_id: int) -> None:
        """Drop what is cached for a user (after their settings change)."""
        for key in [k for k in self._cache if k[1:2] == (user_id,)]:
            self._cache.pop(key, None)

    # -- pieces ------------------------------------------------------------------------------

    def _tariff(self, user_id: int) -> Tariff | None:
        return self.households.get(user_id).tariff

    def _power_feed(self, user_id: int) -> Feed | None:
        return self.households.power_feed(self.households.get(user_id))

    def _sources(self, user_id: int) -> tuple[Tariff | None, Feed | None, dict[str, Feed]]:
        """Tariff, power feed and profile feeds by kind: two queries, cached a few seconds."""
        def load():
            household = self.households.get(user_id)
            feeds = self.feeds.feeds(user_id)
            profiles = {f.name: f for f in feeds if f.tag == "profile"}
            return household.tariff, self.households.power_feed(household, feeds), profiles
        return self._cached(("sources", user_id), SOURCES_TTL_S, load)

    def _local_kw(self, user_id: int, profiles: dict[str, Feed], now: float
                  ) -> tuple[float | None, float | None]:
        """Hydro and community kW now (profile values hold for their half-hour)."""
        return self._cached(
            ("local", user_id, int(now) // 60), PROFILE_TTL_S,
            lambda: (_kw(self._profile_kw(profiles.get("hydro"), now)),
                     _kw(self._profile_kw(profiles.get("community"), now))))

    def reading(self, feed: Feed | None) -> Reading:
        if feed is None:
            return Reading(None, None)
        last = self.feeds.last(feed.id)
        return Reading(None, None) if last is None else Reading(last[1], last[0])

    def _profile_kw(self, feed: Feed | None, now: float) -> float | None:
        if feed is None:
            return None
        try:
            return self.feeds.value_at(feed.id, now)
        except FeedError:
            return None

    def scored_slots(self, now: float) -> tuple[list[goodtime.Slot], str]:
        sig, source = self.signal.current(self.signal.load(), now)
        return goodtime.slots(sig.start, sig.interval, sig.values.tolist(), now,
                              sig.higher_is_better), source

    def card(self, now: float) -> goodtime.Card:
        return self._cached(("card", None, int(now) // 60), PROFILE_TTL_S,
                            lambda: goodtime.card(self.scored_slots(now)[0], now))

    # -- screens -----------------------------------------------------------------------------

    def now_view(self, user_id: int, now: float | None = None) -> NowView:
        now = time.time() if now is None else now
        tariff, feed, profiles = self._sources(user_id)
        power = self.reading(feed)
        history: list[tuple[int, float | None]] = []
        if feed is not None:
            start = int(now - HISTORY_S) // HISTORY_STEP_S * HISTORY_STEP_S
            try:
                rows = self.feeds.data(feed.id, start, start + HISTORY_S - HISTORY_STEP_S,
                                       HISTORY_STEP_S, average=True)
                history = [(int(t), v) for t, v in rows]
            except FeedError:
                history = []
        return NowView(power, _stale(power, now), self.card(now),
                       tariff.band_at(now, self.tz) if tariff else None,
                       _kw(self._profile_kw(profiles.get("hydro"), now)),
                       _kw(self._profile_kw(profiles.get("community"), now)), history,
                       feed is not None)

    def live(self, user_id: int, now: float | None = None) -> dict[str, Any]:
        """The small object the pages poll every 5 s (and its ETag ignores `now`)."""
        now = time.time() if now is None else now
        tariff, feed, profiles = self._sources(user_id)
        power = self.reading(feed)
        hydro, community = self._local_kw(user_id, profiles, now)
        band = tariff.band_at(now, self.tz) if tariff else None
        card = self.card(now)
        return {
            "power": {"value": power.value, "time": power.time},
            "light": asdict(card),
            "band": None if band is None else {"name": band.name, "price": band.price},
            "hydro_kw": hydro,
            "community_kw": community,
            "pairing": self.pairing_requests(now),
            "stale_after": STALE_AFTER_S,
        }

    def pairing_requests(self, now: float | None = None) -> list[dict[str, Any]]:
        """Devices asking to join (the pop-up on every page polls this every 1.5 s)."""
        now = time.time() if now is None else now
        return [{"ip": p.get("ip"), "name": p.get("name", ""), "type": p.get("type", ""),
                 "time": p.get("time"), "expires": _expiry(p)}
                for p in self.pairing.pending(now)]

    def use_view(self, user_id: int, kind: str, day: date, now: float | None = None
                 ) -> UseView:
        now = time.time() if now is None else now
        per = periods.period(kind, day)
        tariff, feed, _ = self._sources(user_id)
        halves = per.half_hours(self.tz)
        kwh: list[float | None] = [None] * len(halves)
        if feed is not None:
            try:
                rows = self.feeds.data(feed.id, halves[0], halves[-1], periods.HALF_HOUR,
                                       average=True)
                kwh = [None if v is None else v * 0.5 / 1000 for _, v in rows][:len(halves)]
                kwh += [None] * (len(halves) - len(kwh))
            except FeedError:
                pass
        costed = cost(tariff, halves, kwh, per.days, self.tz) if tariff else None
        if kind == "day":
            bars = list(zip(halves, kwh, strict=True))
        else:
            days = per.day_starts(self.tz)
            sums: list[float | None] = [None] * len(days)
            day = 0
            for t, v in zip(halves, kwh, strict=True):  # both in time order: one pass
                while day + 1 < len(days) and t >= days[day + 1]:
                    day += 1
                if v is not None:
                    sums[day] = (sums[day] or 0.0) + v
            bars = list(zip(days, sums, strict=True))
        total = sum(v for v in kwh if v is not None)
        return UseView(per, bars, total, costed, feed is not None,
                       per.contains(periods.today(self.tz, now)))

    def best_view(self, user_id: int, now: float | None = None) -> BestView:
        now = time.time() if now is None else now
        scored, source = self.scored_slots(now)
        tariff = self._tariff(user_id)
        bands = [tariff.band_at(s.start, self.tz).name if tariff else None for s in scored]
        return BestView(scored, goodtime.best_windows(scored), bands, source)

    def community_view(self, user_id: int, now: float | None = None) -> CommunityView:
        now = time.time() if now is None else now
        today = periods.period("day", periods.today(self.tz, now))
        start, end = today.bounds(self.tz)
        week_start = end - 7 * 86400
        series = {}
        for kind in ("community", "hydro"):
            feed = self.feeds.find(user_id, kind, "profile")
            series[kind] = []
            if feed is not None:
                with contextlib.suppress(FeedError):
                    series[kind] = [v for _, v in self.feeds.data(
                        feed.id, week_start, end - periods.HALF_HOUR, periods.HALF_HOUR,
                        average=True)]
        n = (end - week_start) // periods.HALF_HOUR
        comm = (series["community"] + [None] * n)[:n]
        hydro = (series["hydro"] + [None] * n)[:n]
        times = [week_start + i * periods.HALF_HOUR for i in range(n)]
        day = [(t, _kw(c), _kw(h)) for t, c, h in zip(times, comm, hydro, strict=True)
               if t >= start]
        c_kwh = sum(c * 0.5 for c in comm if c is not None) / 1000
        h_kwh = sum(h * 0.5 for h in hydro if h is not None) / 1000
        matched = sum(min(c, h) * 0.5 for c, h in zip(comm, hydro, strict=True)
                      if c is not None and h is not None) / 1000
        score = 100.0 * matched / c_kwh if c_kwh > 0 else None
        return CommunityView(day, c_kwh, h_kwh, score)

    def device_cards(self, user_id: int | None, now: float | None = None) -> list[DeviceCard]:
        now = time.time() if now is None else now
        cards = []
        for device in self.devices.list(user_id=user_id):
            state = self.devices.state(device.id)
            mode, next_run, sync = None, None, "saved"
            try:
                stored = self.schedules.get(device.id)
                mode = stored.definition.mode
                windows = (stored.occurrence.windows if stored.occurrence else ())
                upcoming = [w for w in windows if w.end > now]
                if upcoming:
                    next_run = {"start": upcoming[0].start, "end": upcoming[-1].end}
                command = stored.last_command or {}
                reported = state.get("mode") or state.get("ctrlmode")
                wanted = command.get("mode") if isinstance(command, dict) else None
                if wanted and reported and str(wanted).lower() != str(reported).lower():
                    sync = "pending"
            except ScheduleNotFound:
                pass
            last_seen = state.get("last_seen")
            if state.get("present") is False or (
                    isinstance(last_seen, (int, float)) and now - last_seen > 300):
                sync = "unresponsive"
            power = state.get("power")
            cards.append(DeviceCard(device.id, device.name, device.type, mode,
                                    _bool(state.get("state", state.get("on"))),
                                    power if isinstance(power, (int, float)) else None,
                                    sync, next_run, device.status))
        return cards

    def schedule_preview(self, device_id: int, now: float | None = None) -> dict[str, Any]:
        """What the stored schedule will do, planned now by the scheduler (its explanation)."""
        now = time.time() if now is None else now
        stored = self.schedules.get(device_id)
        sig, source = self.signal.current(self.signal.load(), now)
        try:
            result = preview(stored, sig, source, now, str(self.tz))
        except SchedulerError as exc:
            return {"status": "error", "message": str(exc), "windows": []}
        result["profile"] = {"start": sig.start, "interval": sig.interval,
                             "values": [None if v != v else v for v in sig.values.tolist()]}
        return result

    def plan_preview(self, device_id: int, definition: dict[str, Any],
                     now: float | None = None) -> dict[str, Any]:
        """What an unsaved definition would do if saved now (the editor's preview)."""
        now = time.time() if now is None else now
        defn = ScheduleDefinition.from_json(definition)  # InvalidSchedule: the form says why
        stored = StoredSchedule(device_id, defn, None, None, None)
        sig, source = self.signal.current(self.signal.load(), now)
        result = preview(stored, sig, source, now, str(self.tz))
        result["now"] = int(now)
        result["profile"] = {"start": sig.start, "interval": sig.interval,
                             "values": [None if v != v else v for v in sig.values.tolist()]}
        return result


def etag(payload: dict[str, Any]) -> str:
    return '"' + hashlib.sha1(json.dumps(payload, sort_keys=True).encode(),
                              usedforsecurity=False).hexdigest()[:16] \
        + '"'


def _stale(power: Reading, now: float) -> bool:
    return power.time is None or now - power.time > STALE_AFTER_S


def _kw(watts: float | None) -> float | None:
    if watts is None or not math.isfinite(watts):
        return None
    return round(watts / 1000, 2)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("on", "off", "1", "0", "true", "false"):
        return value.lower() in ("on", "1", "true")
    return None


def _expiry(request: dict[str, Any]) -> int | None:
    t = request.get("last_poll", request.get("time"))
    return int(t) + REQUEST_TTL if isinstance(t, (int, float)) else None
