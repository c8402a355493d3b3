"""Bench: the in-home display's server side and page weight, with a year of 10 s power data.

Figures (targets from issue 8), each with a reference measured in the same run:
- server time to render S1 Now (`/`)            ≤ 50 ms; reference: `feed/list.json`
- server time to render S3 My use, one month     ≤ 50 ms; reference: `feed/data.json` of the
  same month at 30 min averages (the data the page is built from, as JSON)
- the live endpoint (`/api/live`, 200 and 304)   ≤ 2 ms;  reference: `feed/value.json`
- gzip -9 size of S1's HTML + CSS + JS           ≤ 60 kB; reference: uPlot's own gzip size
Times are medians of in-process WSGI calls through the whole front controller (no socket).

    .venv/bin/python -m bench ui
"""

from __future__ import annotations

import gzip
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, bench_hub
from hub.web.app import create_app
from tests.ui.seed import power_at, seed

YEAR = 365 * 86400
RUNS = 40
STATIC = ROOT / "hub" / "web" / "static"


def call(app, path: str, cookie: str, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    query = ""
    if "?" in path:
        path, query = path.split("?", 1)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0",
               "HTTP_COOKIE": cookie, "wsgi.errors": sys.stderr}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    status: list[str] = []
    got: dict[str, str] = {}

    def start_response(s, h, exc_info=None):
        status.append(s)
        got.update((k.lower(), v) for k, v in h)

    body = b"".join(app(environ, start_response))
    return int(status[0].split()[0]), got, body


def median_ms(app, path: str, cookie: str, headers: dict[str, str] | None = None) -> float:
    code, _, _ = call(app, path, cookie, headers)  # warm caches
    assert code in (200, 304), (path, code)
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        call(app, path, cookie, headers)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def figure(name: str, value: float, unit: str, reference: float | None, target: str) -> None:
    ref = f" (reference {reference:.3g} {unit})" if reference is not None else ""
    print(f"{name}: {value:.3g} {unit}{ref}; target {target}")
    print(json.dumps({"bench": name, "value": round(value, 4), "unit": unit,
                      "reference": None if reference is None else round(reference, 4)}))


def main() -> None:
    with bench_hub("ui") as (_servers, ctx, _root):
        user = ctx.users.register("bench", "correct horse")
        now = time.time()
        data = seed(ctx, user.id, history_s=0, now=now)
        end = int(now) // 10 * 10
        times = np.arange(end - YEAR, end, 10)
        print(f"writing a year of 10 s power data ({len(times):,} points)", flush=True)
        ctx.feeds.engine.write_points(data.feed_id, np.column_stack([times, power_at(times)]))
        ctx.redis.delete(ctx.keys.feed(data.feed_id))  # the last value comes from the file
        app = create_app(ctx.config, ctx)
        cookie = f"hub_session={ctx.users.create_session(user.id)}"
        key = f"apikey={user.apikey_read}"
        s1 = median_ms(app, "/?lang=en", cookie)
        s1_ref = median_ms(app, f"/feed/list.json?{key}", "")
        day = time.strftime("%Y-%m-15", time.gmtime(now - 40 * 86400))
        s3 = median_ms(app, f"/use?period=month&day={day}&lang=en", cookie)
        first = day[:8] + "01"
        start = int(time.mktime(time.strptime(first, "%Y-%m-%d")))
        s3_ref = median_ms(app, f"/feed/data.json?{key}&id={data.feed_id}&start={start}"
                                f"&end={start + 31 * 86400}&interval=1800&average=1", "")
        _, headers, _ = call(app, "/api/live", cookie)
        live = median_ms(app, "/api/live", cookie)
        live_304 = median_ms(app, "/api/live", cookie, {"If-None-Match": headers["etag"]})
        live_ref = median_ms(app, f"/feed/value.json?{key}&id={data.feed_id}", "")
        _, _, html = call(app, "/?lang=en", cookie)
        page = html + (STATIC / "app.css").read_bytes() + (STATIC / "app.js").read_bytes()
        page_kb = len(gzip.compress(page, 9)) / 1000
        uplot = STATIC / "vendor" / "uPlot.iife.min.js"
        uplot_kb = len(gzip.compress(uplot.read_bytes(), 9)) / 1000 if uplot.exists() else None
        figure("ui_render_s1_ms", s1, "ms", s1_ref, "≤ 50 ms")
        figure("ui_render_s3_month_ms", s3, "ms", s3_ref, "≤ 50 ms")
        figure("ui_live_ms", live, "ms", live_ref, "≤ 2 ms")
        figure("ui_live_304_ms", live_304, "ms", live_ref, "≤ 2 ms")
        figure("ui_s1_gzip_kb", page_kb, "kB", uplot_kb, "≤ 60 kB plus uPlot")


if __name__ == "__main__":
    main()
