"""The ingest service of `hub worker`: meter readings into inputs, profiles into feeds.

Readings (`<base>/#`, emoncms forms, parsed by hub.input.readings) are parsed in `on_message`
and stored in `commit()`, which the worker calls once per batch of messages before
acknowledging them (so a crash re-delivers, never loses). Readings belong to the owner of the
device that published them (under its topic or its broker account's topic, see
hub/worker/device/table.py), others to the hub user `mqtt_user_id`. Device traffic under
`<base>/` (describe, commands, state) never arrives here: the worker gives it to the device
service only. Profiles (`cydynni/profile/<kind>`) are stored as feeds
through `FeedStore.store_profile`.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.context import HubContext
from hub.errors import SERVER_ERRORS
from hub.feed.common import FeedError
from hub.input.readings import (
    BadPayload,
    IngestError,
    NodePost,
    NotStored,
    parse_mqtt,
    parse_profile,
)
from hub.input.store import InputError
from hub.names import PROFILE_TOPIC_ROOT
from hub.worker.device.table import DeviceTable


class IngestService:
    def __init__(self, ctx: HubContext, publish: Callable[..., None]) -> None:
        self.inputs = ctx.inputs
        self.feeds = ctx.feeds
        self.base = ctx.config.mqtt_base_topic
        self.user_id = ctx.config.mqtt_user_id
        self.devices = DeviceTable(ctx.devices)
        self.pending: list[tuple[str, list[NodePost]]] = []  # (topic, its posts)

    def topics(self) -> list[str]:
        return [f"{self.base}/#", f"{PROFILE_TOPIC_ROOT}/+"]

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic.startswith(PROFILE_TOPIC_ROOT + "/"):
            profile = parse_profile(topic, payload)
            try:
                self.feeds.store_profile(self.user_id, profile.kind, profile.start,
                                         profile.interval, profile.values)
            except FeedError as exc:
                raise BadPayload(f"{profile.kind} profile not stored: {exc}") from None
            return
        self.pending.append((topic, parse_mqtt(topic, payload, self.base)))

    def commit(self) -> None:
        """Store the pending readings, each in its owner's inputs. If Redis or MariaDB is
        unreachable they stay pending (the worker retries); any other failure drops them so
        one bad batch cannot block."""
        if not self.pending:
            return
        reports, dropped = [], []
        try:
            for user_id, posts in self._by_owner().items():
                try:
                    reports.append(self.inputs.ingest(user_id, posts))
                except InputError as exc:  # e.g. no such user yet: drop, count, say why
                    dropped.append(str(exc))
        except SERVER_ERRORS:
            raise
        except Exception:
            self.pending = []
            raise
        self.pending = []
        if dropped:
            raise BadPayload(f"readings dropped: {'; '.join(dropped)}")
        rejected = [r for report in reports for r in report.rejected]
        if rejected:
            raise IngestError(f"{len(rejected)} posts rejected, first: {rejected[0]}")
        failed = [report for report in reports if report.errors]
        if failed:  # counted as points_not_stored and logged by the worker
            raise NotStored("; ".join(r.not_stored_message() for r in failed),
                            max(sum(r.not_stored for r in failed), 1))

    def _by_owner(self) -> dict[int, list[NodePost]]:
        """The pending posts grouped by the user they belong to, in arrival order. A retry
        after a store failure keeps the pending posts, and stores them all again: harmless,
        as the worker's docstring explains for re-delivered readings."""
        self.devices.refresh()
        owners: dict[int, list[NodePost]] = {}
        for topic, posts in self.pending:
            owner = self.devices.owner_of(topic, self.base)
            owners.setdefault(self.user_id if owner is None else owner, []).extend(posts)
        return owners

    def stop(self) -> None:
        self.commit()
