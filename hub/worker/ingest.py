"""The ingest service of `hub worker`: meter readings into inputs, profiles into feeds.

Readings (`<base>/#`, emoncms forms, parsed by hub.input.readings) are parsed in `on_message`
and stored in `commit()`, which the worker calls once per batch of messages before
acknowledging them (so a crash re-delivers, never loses). Inputs arriving over MQTT belong to
the hub user `mqtt_user_id`. Device traffic under `<base>/` never arrives here: the worker
gives it to the device service only. Profiles (`cydynni/profile/<kind>`) are stored as feeds
through `FeedStore.store_profile`.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.context import HubContext
from hub.errors import SERVER_ERRORS
from hub.feed.phpfina import FeedError
from hub.input.readings import BadPayload, IngestError, NodePost, parse_mqtt, parse_profile
from hub.input.store import InputError
from hub.names import PROFILE_TOPIC_ROOT


class IngestService:
    def __init__(self, ctx: HubContext, publish: Callable[..., None]) -> None:
        self.inputs = ctx.inputs
        self.feeds = ctx.feeds
        self.base = ctx.config.mqtt_base_topic
        self.user_id = ctx.config.mqtt_user_id
        self.pending: list[NodePost] = []

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
        self.pending.extend(parse_mqtt(topic, payload, self.base))

    def commit(self) -> None:
        """Store the pending readings. If Redis or MariaDB is unreachable they stay pending
        (the worker retries); any other failure drops them so one bad batch cannot block."""
        if not self.pending:
            return
        try:
            report = self.inputs.ingest(self.user_id, self.pending)
        except SERVER_ERRORS:
            raise
        except InputError as exc:  # e.g. no such user yet: drop, count and say why
            self.pending = []
            raise BadPayload(f"readings dropped: {exc}") from None
        except Exception:
            self.pending = []
            raise
        self.pending = []
        if report.rejected:
            raise IngestError(f"{len(report.rejected)} posts rejected, first: "
                              f"{report.rejected[0]}")

    def stop(self) -> None:
        self.commit()
