"""One sync run: bring each mapped local feed in step with its feed on the server.

Protocol (emoncms' own sync module does the same): `feed/list.json` → pick the feeds the
mapping names → for each, `feed/getmeta.json` → `feed/export.json?id=&start=<local .dat
size>`. The server re-sends the point before `start`; it must equal our last point, else the
server's history changed and the feed is downloaded again in full.

Tail (same start_time and interval, overlap point equal): the new bytes are held in memory
and appended as ONE block through the engine (`PHPFina.append_raw`: one pwrite + fdatasync),
so a mirror costs the SD card what a flush does. Any bad answer discards them: the local
files stay as they were and the next run asks again from the same byte.

Full (first sync, a changed start_time or interval, a mismatching overlap, a server feed
that shrank): the export from byte 0 streams into `<feeds>/<id>.dat.sync`, checkpointed
(fsync + `<id>.sync.json` with the verified length) every CHECKPOINT_BYTES and when the run
stops for any reason, so the next run resumes from the last verified byte, even after a
SIGKILL or a power cut. When the whole file is there, `PHPFina.replace_feed` swaps it in
with the new meta; until then the old local feed is untouched.

Bounds: `max_bytes` per run over all feeds (a cut tail is appended up to whole points, a cut
full download resumes next run), plus the link's timeouts and minimum throughput.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import SERVER_ERRORS
from hub.feed import phpfina
from hub.feed.store import FeedNotFound, FeedStore
from hub.names import RedisKeys
from hub.sync.link import BadAnswer, Limits, LinkError, ServerLink
from hub.sync.store import LOCAL_TAG, Link, NotProvisioned, SyncStore, read_json, write_json

log = logging.getLogger(__name__)

VALUE = phpfina.VALUE_SIZE
CHECKPOINT_BYTES = 4 * 1024 * 1024  # fdatasync + note this often during a full download
STATUS_EVERY_S = 5.0
DEFAULT_LIMITS = Limits()


@dataclass
class FeedResult:
    name: str
    remote: dict[str, Any]
    local_id: int | None = None
    mode: str = ""  # "tail", "full", "up to date"
    result: str = "ok"  # "ok", "partial" (more next run), "error", "missing"
    bytes: int = 0
    local_bytes: int = 0
    remote_bytes: int | None = None
    error: str = ""
    error_code: str = ""
    finished: int = 0

    def as_dict(self) -> dict[str, Any]:
        done = self.remote_bytes or 0
        progress = 1.0 if not done else min(1.0, self.local_bytes / done)
        return {"name": self.name, "remote": self.remote, "local_id": self.local_id,
                "mode": self.mode, "result": self.result, "bytes": self.bytes,
                "local_bytes": self.local_bytes, "remote_bytes": self.remote_bytes,
                "progress": round(progress, 4), "error": self.error,
                "error_code": self.error_code, "finished": self.finished}


class SyncRun:
    def __init__(self, store: SyncStore, feeds: FeedStore, keys: RedisKeys, *,
                 limits: Limits = DEFAULT_LIMITS, max_bytes: int = 64 * 1024 * 1024,
                 cancelled: Callable[[], bool] = lambda: False,
                 link_factory: Callable[..., ServerLink] = ServerLink) -> None:
        self.store = store
        self.feeds = feeds
        self.engine = feeds.engine
        self.keys = keys
        self.limits = limits
        self.budget = max_bytes
        self.cancelled = cancelled
        self.link_factory = link_factory
        self.results: list[FeedResult] = []
        self.bytes = 0
        self.more = False  # the byte cap stopped something: run again soon
        self._status_at = 0.0
        self.started = 0
        self.message = ""

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Lock, sync every mapped feed, record the status; the status dict is returned."""
        with self.store.lock():
            link = self.store.link()
            if link is None:
                raise NotProvisioned("no server is set up")
            started = self.started = int(time.time())
            self.message = f"syncing with {link.url}"
            self._progress(force=True)
            error: LinkError | None = None
            try:
                self._run(link)
            except LinkError as exc:
                error = exc
            ok = error is None and all(r.result in ("ok", "partial") for r in self.results)
            problems = [f"{r.name}: {r.error}" for r in self.results if r.error]
            message = (str(error) if error else "; ".join(problems) if problems
                       else "more to download; continues shortly" if self.more
                       else "in step with the server")
            last = {"started": started, "finished": int(time.time()), "ok": ok,
                    "bytes": self.bytes, "error": "" if ok else message,
                    "error_code": error.code if error else
                    next((r.error_code for r in self.results if r.error_code), "")}
            fields: dict[str, Any] = {"state": "idle" if ok else "error", "message": message,
                                      "last_run": last, "more": self.more}
            if error is None:  # a failed listing keeps the feeds' last known state
                fields["feeds"] = [r.as_dict() for r in self.results]
            if ok:
                fields["last_ok"] = last["finished"]
            return fields

    def _run(self, link: Link) -> None:
        server = self.link_factory(link.settings, link.apikey, self.limits, self.cancelled)
        remote_feeds = server.feeds()
        for rule in self.store.rules():
            remote = _match(rule, remote_feeds)
            result = FeedResult(rule["local_name"], {"tag": rule["remote_tag"],
                                                     "name": rule["remote_name"]})
            self.results.append(result)
            if remote is None:
                result.result, result.error_code = "missing", "not_on_server"
                result.error = "no such feed on the server"
                continue
            result.remote = {"id": remote["id"], "tag": remote.get("tag", ""),
                             "name": remote.get("name", "")}
            try:
                self._sync_feed(server, link, remote["id"], result)
            except (LinkError, phpfina.FeedError) as exc:
                result.result = "error"
                result.error = str(exc)
                result.error_code = getattr(exc, "code", "local_error")
                if isinstance(exc, LinkError) and exc.code in ("cancelled", "unreachable"):
                    raise
            finally:
                result.finished = int(time.time())
            self.bytes += result.bytes
            self._progress(force=True)

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._status_at >= STATUS_EVERY_S:
            self._status_at = now
            self.store.set_progress(state="running", started=self.started,
                                    message=self.message,
                                    feeds=[r.as_dict() for r in self.results])

    # -- one feed ----------------------------------------------------------------------------

    def _sync_feed(self, server: ServerLink, link: Link, remote_id: int,
                   result: FeedResult) -> None:
        meta = server.meta(remote_id)
        try:
            interval = phpfina.validate_interval(meta["interval"], self.engine.min_interval)
        except phpfina.InvalidInterval as exc:
            raise BadAnswer(f"the server's feed has an interval this hub cannot store: {exc}",
                            "bad_interval") from None
        if meta["npoints"] and not meta["start_time"]:
            raise BadAnswer("the server's feed has points but no start time", "bad_meta")
        result.remote_bytes = meta["npoints"] * VALUE
        local_id = self._local_feed(link, remote_id, result.name, interval)
        result.local_id = local_id
        local = self.engine.get_meta(local_id)
        result.local_bytes = local.npoints * VALUE
        partial = self._partial(local_id)
        if partial.exists() and (self._partial_info(local_id) or {}).get(
                "identity") != _identity(meta):
            self._drop_partial(local_id)
        full = (partial.exists() or local.interval != interval or not local.npoints
                or local.start_time != meta["start_time"]
                or result.remote_bytes < result.local_bytes)
        if not full:
            full = not self._tail(server, remote_id, local, meta, result)
        if full:
            if not local.npoints and not meta["npoints"] and local.interval == interval:
                result.mode = "up to date"
                return
            self._full(server, remote_id, local_id, meta, result)

    def _local_feed(self, link: Link, remote_id: int, name: str, interval: int) -> int:
        """The mirror of a remote feed: registered, adopted (a crash between create and
        register) or created with the remote interval."""
        local_id = self.store.mirrors().get(remote_id)
        if local_id is not None:
            try:
                self.feeds.get(local_id)
                return local_id
            except FeedNotFound:
                log.warning("mirror of remote feed %s (local %s) is gone; recreating",
                            remote_id, local_id)
        feed = self.feeds.find(link.user_id, name, LOCAL_TAG)
        if feed is None:
            feed = self.feeds.create(link.user_id, name, LOCAL_TAG, interval)
        self.store.set_mirror(remote_id, feed.id)
        return feed.id

    def _tail(self, server: ServerLink, remote_id: int, local: phpfina.FeedMeta,
              meta: dict[str, int], result: FeedResult) -> bool:
        """Append the new tail; False if the overlap point differs (full download needed)."""
        size = local.npoints * VALUE
        most = meta["npoints"] * VALUE - (size - VALUE)  # what getmeta announced
        buf = bytearray()
        cap = max(VALUE, min(self.budget, most) // VALUE * VALUE + VALUE)

        def sink(chunk: bytes) -> None:
            if len(buf) + len(chunk) > most:
                raise BadAnswer(f"feed/export.json: more data than the {meta['npoints']} "
                                "points getmeta announced", "too_long")
            buf.extend(chunk)
            self._progress()

        transfer = server.export(remote_id, size, sink, cap)
        if transfer.announced is not None and transfer.announced > most:
            raise BadAnswer(f"feed/export.json announces {transfer.announced} bytes, more than "
                            f"the {meta['npoints']} points getmeta announced", "too_long")
        if transfer.complete and len(buf) % VALUE:
            raise BadAnswer("feed/export.json: not a whole number of points", "truncated")
        if len(buf) < VALUE:
            return False  # the server has fewer points than we do
        with open(self.engine.dat_path(local.feed_id), "rb") as f:
            ours = os.pread(f.fileno(), VALUE, size - VALUE)
        if bytes(buf[:VALUE]) != ours:
            log.info("feed %s: overlap point differs from the server's; full download",
                     local.feed_id)
            return False
        new = bytes(buf[VALUE: len(buf) // VALUE * VALUE])
        result.mode = "tail"
        if new:
            self.engine.append_raw(local.feed_id, size, new)
            self._changed(local.feed_id, local.interval)
        result.bytes = len(new)
        result.local_bytes = size + len(new)
        self.budget -= len(new)
        if not transfer.complete:
            result.result, self.more = "partial", True
        elif result.mode == "tail" and not new:
            result.mode = "up to date"
        return True

    def _full(self, server: ServerLink, remote_id: int, local_id: int, meta: dict[str, int],
              result: FeedResult) -> None:
        result.mode = "full"
        partial = self._partial(local_id)
        info = self._partial_info(local_id) or {}
        verified = int(info.get("verified", 0)) // VALUE * VALUE
        if not partial.exists() or info.get("identity") != _identity(meta):
            verified = 0
        most = meta["npoints"] * VALUE
        if verified > most:
            verified = 0
        fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, verified)
            if not verified:
                self._checkpoint(fd, local_id, meta, 0)
            state = {"written": verified, "overlap": b"", "since_checkpoint": 0}
            expect_overlap = verified >= VALUE
            ours = os.pread(fd, VALUE, verified - VALUE) if expect_overlap else b""
            start = verified

            def sink(chunk: bytes) -> None:
                if expect_overlap and len(state["overlap"]) < VALUE:
                    need = VALUE - len(state["overlap"])
                    state["overlap"] += chunk[:need]
                    chunk = chunk[need:]
                    if len(state["overlap"]) == VALUE and state["overlap"] != ours:
                        raise _Restart()
                if state["written"] + len(chunk) > most:
                    raise BadAnswer(f"feed/export.json: more data than the {meta['npoints']} "
                                    "points getmeta announced", "too_long")
                if chunk:
                    os.pwrite(fd, chunk, state["written"])
                    self.store.bytes_written += len(chunk)
                    state["written"] += len(chunk)
                    state["since_checkpoint"] += len(chunk)
                    result.local_bytes = state["written"]
                    self._progress()
                if state["since_checkpoint"] >= CHECKPOINT_BYTES:
                    self._checkpoint(fd, local_id, meta, state["written"])
                    state["since_checkpoint"] = 0

            cap = min(self.budget, most - start) + (VALUE if expect_overlap else 0)
            try:
                transfer = server.export(remote_id, start, sink, max(cap, VALUE))
            except _Restart:
                log.info("feed %s: partial download no longer matches; starting again",
                         local_id)
                os.ftruncate(fd, 0)
                state["written"] = start = 0
                raise BadAnswer("the server's data changed during the download; it starts "
                                "again next run", "changed") from None
            finally:
                written = state["written"]
                self._checkpoint(fd, local_id, meta, written)
                result.bytes = written - start
                result.local_bytes = written
                self.budget -= written - start
            if transfer.announced is not None and transfer.announced - (
                    VALUE if expect_overlap else 0) > most - start:
                raise BadAnswer(f"feed/export.json announces {transfer.announced} bytes, "
                                f"more than getmeta's {meta['npoints']} points", "too_long")
            if not transfer.complete:
                result.result, self.more = "partial", True
                return
            if expect_overlap and len(state["overlap"]) < VALUE:  # the server has less now
                os.ftruncate(fd, 0)
                self._checkpoint(fd, local_id, meta, 0)
                raise BadAnswer("the server's feed is shorter than the download so far; it "
                                "starts again next run", "changed")
            if written % VALUE:
                raise BadAnswer("feed/export.json: not a whole number of points", "truncated")
        finally:
            os.close(fd)
        self.engine.replace_feed(local_id, meta["interval"], meta["start_time"] if written
                                 else 0, str(partial))
        with contextlib.suppress(FileNotFoundError):
            self._info_path(local_id).unlink()
        self._changed(local_id, meta["interval"])

    # -- helpers -----------------------------------------------------------------------------

    def _partial(self, local_id: int) -> Path:
        return Path(self.engine.dat_path(local_id) + ".sync")

    def _info_path(self, local_id: int) -> Path:
        return Path(self.engine.datadir) / f"{local_id}.sync.json"

    def _partial_info(self, local_id: int) -> dict | None:
        info = read_json(self._info_path(local_id))
        return info if isinstance(info, dict) else None

    def _checkpoint(self, fd: int, local_id: int, meta: dict[str, int], verified: int) -> None:
        """Data first, then the note of how much is good. The note needs no fsync: lost in a
        power cut, an older note only makes the next run fetch a little more again."""
        os.fdatasync(fd)
        self.store.bytes_written += write_json(
            self._info_path(local_id), {"identity": _identity(meta), "verified": verified},
            sync=False)

    def _drop_partial(self, local_id: int) -> None:
        for path in (self._partial(local_id), self._info_path(local_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _changed(self, local_id: int, interval: int) -> None:
        """The feed's row and the last-value cache follow the new files."""
        with self.feeds.db.cursor() as cur:  # the mirror owns its feed's interval
            cur.execute("UPDATE feeds SET `interval` = %s WHERE id = %s AND `interval` <> %s",
                        (interval, local_id, interval))
        self.feeds.redis.delete(self.keys.feed(local_id))


class _Restart(Exception):
    """The partial file's last point is not the server's any more."""


def _identity(meta: dict[str, int]) -> list[int]:
    return [meta["start_time"], meta["interval"]]


def _match(rule: dict[str, str], remote_feeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The remote feed a rule names (lowest id if several), with a checked integer id."""
    found = []
    for feed in remote_feeds:
        if feed.get("name") != rule["remote_name"]:
            continue
        if rule["remote_tag"] != "*" and feed.get("tag") != rule["remote_tag"]:
            continue
        try:
            feed_id = int(feed.get("id"))
        except (TypeError, ValueError):
            continue
        if feed_id > 0 and str(feed.get("engine", 5)) == "5":
            found.append({**feed, "id": feed_id})
    return min(found, key=lambda f: f["id"]) if found else None


def limits_from(config) -> Limits:
    return Limits(connect_timeout=float(config.sync_connect_timeout),
                  read_timeout=float(config.sync_read_timeout),
                  min_bytes_per_s=float(config.sync_min_bytes_per_s),
                  window_s=float(config.sync_window))


def sync_once(ctx, cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Apply a waiting provisioning request, then run one sync and schedule the next.
    Returns the status; raises SyncBusy if another run holds the lock."""
    store, config = ctx.sync, ctx.config
    applied = store.apply_pending_request()
    if store.link() is None:
        if applied is None:
            return store.status()
        failures = int(store.status().get("failures", 0)) + 1  # provisioning failed
        return store.update_status(failures=failures,
                                   next_run=int(time.time() + _backoff(config, failures)))
    run = SyncRun(store, ctx.feeds, ctx.keys, limits=limits_from(config),
                  max_bytes=config.sync_max_bytes, cancelled=cancelled)
    try:
        fields = run.run()
    except NotProvisioned:
        return store.status()
    except (LinkError, phpfina.FeedError, OSError, *SERVER_ERRORS) as exc:
        log.exception("sync run failed")
        now = int(time.time())
        fields = {"state": "error", "message": f"sync failed: {exc}",
                  "last_run": {"started": now, "ok": False, "finished": now, "bytes": 0,
                               "error": str(exc), "error_code": "local_error"}}
    ok = fields["last_run"]["ok"]
    failures = 0 if ok else int(store.status().get("failures", 0)) + 1
    if ok and fields.get("more"):
        wait = config.sync_retry_min
    elif ok:
        wait = config.sync_interval
    else:
        wait = _backoff(config, failures)
    status = store.update_status(**fields, failures=failures,
                                 next_run=int(time.time() + wait))  # one write per run
    store.clear_progress()
    return status


def _backoff(config, failures: int) -> float:
    return min(config.sync_retry_max, config.sync_retry_min * 2 ** min(failures - 1, 20))
