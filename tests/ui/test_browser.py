"""The display in real headless Chromium (Debian's `chromium`, driven by Playwright with
executable_path; no browser is ever downloaded). Every request that is not to the hub is
aborted, so a page that needed a CDN would fail here.

Screenshots of every screen at 360x640 and 1280x800 in English and Welsh go to
$UI_SCREENSHOTS (default deploy/screenshots/ui/, not committed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hub.web.pages.i18n import catalogue
from tests.conftest import make_account
from tests.devices.simulators import SimEmonEsp
from tests.devices.test_pairing import device_get, emonesp_parse
from tests.hub.test_worker import publisher, wait_until, worker_config, worker_thread
from tests.ui.seed import seed

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("UI_SCREENSHOTS", ROOT / "deploy" / "screenshots" / "ui"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZES = {"phone": (360, 640), "desktop": (1280, 800)}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (./build.sh test)")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


class Tab:
    """A page with the session cookie, non-hub requests aborted, console errors collected."""

    def __init__(self, browser, web, account, size=(360, 640), bypass_csp=False,
                 dark=False) -> None:
        self.base = f"http://{web[0]}:{web[1]}"
        self.context = browser.new_context(viewport={"width": size[0], "height": size[1]},
                                           bypass_csp=bypass_csp,
                                           color_scheme="dark" if dark else "light")
        self.context.add_cookies([{"name": "hub_session",
                                   "value": account.client.cookies["hub_session"],
                                   "url": self.base}])
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._only_hub)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _only_hub(self, route) -> None:
        host = urlparse(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def goto(self, path: str):
        response = self.page.goto(self.base + path, wait_until="load")
        assert response.status == 200, (path, response.status)
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def household(ctx, admin):
    return admin, seed(ctx, admin.userid)


def wait_text(page, selector: str, check, timeout: float) -> str:
    """Poll an element's text (wait_for_function would need 'unsafe-eval' in the CSP)."""
    deadline = time.monotonic() + timeout
    while True:
        text = page.inner_text(selector)
        if check(text) or time.monotonic() > deadline:
            assert check(text), f"{selector}: {text!r} after {timeout} s"
            return text
        page.wait_for_timeout(100)


def screens(data) -> dict[str, str]:
    return {"s1-now": "/", "s2-best": "/forecast", "s3-use-day": "/use",
            "s3-use-month": "/use?period=month", "s4-community": "/community",
            "s5-devices": "/devices", "s6-schedule": f"/devices/{data.device_id}/schedule",
            "s7-pair": "/devices/pair", "s8-updates": "/system/update",
            "s9-settings": "/settings", "s11-kiosk": "/kiosk", "password": "/account/password",
            "admin-users": "/admin/users", "admin-inputs": "/admin/inputs",
            "admin-feeds": "/admin/feeds", "admin-feed": f"/admin/feeds/{data.feed_id}"}


def untranslated(text: str, lang: str) -> list[str]:
    keys = catalogue(lang).messages
    return [k for k in keys if re.search(rf"(^|\s){re.escape(k)}($|\s)", text)]


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_every_screen_renders_translated_without_errors_or_sideways_scroll(
        browser, web, household, lang):
    admin, data = household
    for size_name, size in SIZES.items():
        tab = Tab(browser, web, admin, size)
        try:
            tab.goto(f"/?lang={lang}")  # sets the language cookie
            for name, path in screens(data).items():
                page = tab.goto(path)
                page.wait_for_timeout(300)  # charts drawn, first live poll answered
                assert page.get_attribute("html", "lang") == lang
                text = page.inner_text("body")
                assert not untranslated(text, lang), (name, untranslated(text, lang))
                if size_name == "phone":
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    assert wide <= size[0], (name, wide)
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"{name}-{lang}-{size[0]}x{size[1]}.png"),
                                full_page=True)
            assert tab.errors == [], tab.errors
            assert tab.blocked == [], tab.blocked
        finally:
            tab.close()


def test_charts_are_drawn_and_follow_dark_mode(browser, web, household):
    admin, data = household
    tab = Tab(browser, web, admin, (1280, 800), dark=True)
    try:
        page = tab.goto("/?lang=en")
        page.wait_for_selector("#power-plot canvas", timeout=5000)
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(18, 20, 22)"  # the dark palette
        page.screenshot(path=str(SHOTS / "s1-now-en-dark-1280x800.png"))
        page = tab.goto(f"/devices/{data.device_id}/schedule")
        page.wait_for_selector("#preview-plot canvas", timeout=5000)
        assert tab.errors == []
    finally:
        tab.close()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core not fetched (./build.sh assets)")
@pytest.mark.parametrize("lang", ["en", "cy"])
def test_axe_finds_no_serious_or_critical_violation(browser, web, household, lang):
    admin, data = household
    tab = Tab(browser, web, admin, (360, 640), bypass_csp=True)  # to inject axe itself
    problems = {}
    try:
        tab.goto(f"/?lang={lang}")
        for name, path in screens(data).items():
            page = tab.goto(path)
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
            if bad:
                problems[name] = bad
    finally:
        tab.close()
    assert problems == {}


def test_touch_targets_are_at_least_44px(browser, web, household):
    admin, _ = household
    tab = Tab(browser, web, admin, (360, 640))
    try:
        page = tab.goto("/devices")
        sizes = page.eval_on_selector_all(
            ".tabs > a, .modes button, .lang a",
            "els => els.map(e => [e.textContent.trim(), e.getBoundingClientRect().height,"
            " e.getBoundingClientRect().width])")
        small = [s for s in sizes if s[1] < 44 or s[2] < 44]
        assert sizes and small == []
    finally:
        tab.close()


def test_live_number_follows_an_mqtt_reading_within_6s(browser, web, household, hub_config,
                                                       servers):
    admin, _ = household
    assert admin.userid == 1  # the MQTT user of the hub
    with worker_thread(worker_config(hub_config)) as _worker:
        tab = Tab(browser, web, admin)
        try:
            page = tab.goto("/?lang=en")
            before = page.inner_text("#live-power")
            with publisher(servers) as mqtt:
                mqtt.publish("emon/house", json.dumps({"use": 4321, "time": int(time.time())}),
                             qos=1).wait_for_publish(10)
                sent = time.monotonic()
                wait_text(page, "#live-power", lambda t: t == "4,321 W", 6)
            assert before != "4,321 W" and time.monotonic() - sent <= 6.5
            assert page.is_hidden("#live-stale")
            assert tab.errors == []
        finally:
            tab.close()


def test_stale_state_shows_after_30s_without_a_reading(browser, web, ctx, admin):
    seed(ctx, admin.userid, now=time.time() - 5)  # the last reading is 10-15 s old
    tab = Tab(browser, web, admin)
    try:
        page = tab.goto("/?lang=en")
        assert page.is_hidden("#live-stale")  # fresh when the page was rendered
        page.wait_for_selector("#live-stale", state="visible", timeout=25000)
        assert "stale" in page.get_attribute("#live", "class")
        age = wait_text(page, "#live-age", lambda t: re.match(r"Updated \d+ seconds ago", t), 6)
        assert int(age.split()[1]) > 30
        page.screenshot(path=str(SHOTS / "s1-now-stale-en-360x640.png"))
    finally:
        tab.close()


def test_pairing_popup_allow_gives_credentials_and_first_reading(browser, web, household,
                                                                 hub_config, servers):
    admin, _ = household
    with worker_thread(worker_config(hub_config)):
        tab = Tab(browser, web, admin)
        try:
            page = tab.goto("/devices?lang=en")
            page.wait_for_timeout(500)
            # A hostile name shows as text; Ignore closes the pop-up and refuses the device.
            status, _ = device_get(web, "127.0.0.2", path="/emoncms/device/auth/request.json"
                                   "?name=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
            assert status == 200
            page.wait_for_selector("#pair-dialog[open]", timeout=2000)
            assert "127.0.0.2" in page.inner_text("#pair-what")
            assert page.query_selector("#pair-what img") is None
            page.click("#pair-ignore")
            wait_until(lambda: device_get(web, "127.0.0.2")[0] == 403, timeout=5,
                       what="the ignored device refused")
            page.wait_for_selector("#pair-dialog:not([open])", state="attached", timeout=2000)
            # A plug asks: the pop-up is up within 2 s, Allow, credentials, first reading.
            status, _ = device_get(web, "127.0.0.3",
                                   path="/emoncms/device/auth/request.json?name=smartplug1")
            asked = time.monotonic()
            assert status == 200
            page.wait_for_selector("#pair-dialog[open]", timeout=2000)
            assert time.monotonic() - asked <= 2.5
            assert "smartplug1 at 127.0.0.3" in page.inner_text("#pair-what")
            assert re.search(r"Valid for \d+ more seconds", page.inner_text("#pair-countdown"))
            page.screenshot(path=str(SHOTS / "s7-popup-en-360x640.png"))
            page.click("#pair-allow")
            page.wait_for_selector('#pair-steps li[data-step="sending"].done', timeout=5000)
            reply = wait_until(lambda: emonesp_parse(device_get(web, "127.0.0.3")[1]), timeout=10,
                               what="credentials for the device")
            user, password, base = reply
            sim = SimEmonEsp(servers.mqtt_port, user, password, base).start()
            try:
                page.wait_for_selector('#pair-steps li[data-step="connected"].done',
                                       timeout=10000)
                sim.report()
                page.wait_for_selector('#pair-steps li[data-step="reading"].done',
                                       timeout=10000)
                page.screenshot(path=str(SHOTS / "s7-paired-en-360x640.png"))
            finally:
                sim.stop()
            assert tab.errors == []
        finally:
            tab.close()


def test_schedule_editor_saves_and_shows_the_schedulers_own_plan(browser, web, household):
    admin, data = household
    tab = Tab(browser, web, admin, (1280, 800))
    try:
        page = tab.goto(f"/devices/{data.device_id}/schedule?lang=en")
        page.fill("#ready_by", "06:30")
        page.fill("#period_h", "1")
        page.fill("#period_m", "30")
        page.check('input[name="interruptible"]')
        for d in range(7):
            page.check(f'input[name="day{d}"]')
        page.click("#preview-button")
        wait_text(page, "#preview-sentence", lambda t: t.startswith("Runs"), 5)
        page.click('button[type="submit"].primary')
        page.wait_for_selector("#saved", timeout=5000)
        windows = page.eval_on_selector_all(
            "#preview-windows li", "els => els.map(e => [+e.dataset.start, +e.dataset.end])")
        now = int(page.get_attribute("#preview", "data-now"))
        request = {"profile": data.signal, "period": 5400, "ready_by": "06:30",
                   "interruptible": True, "now": now, "timezone": "Europe/London"}
        run = subprocess.run([sys.executable, "-m", "hub.scheduler"], input=json.dumps(request),
                             capture_output=True, text=True, cwd=ROOT, check=True)
        expected = [[p["start"], p["end"]] for p in json.loads(run.stdout)["periods"]]
        assert windows == expected and windows
        assert page.inner_text("#preview-sentence").startswith("Runs")
        assert tab.errors == []
    finally:
        tab.close()


def test_other_user_cannot_see_admin_pages(browser, web, household, new_client):
    admin, _ = household
    bob = make_account(new_client, "bob", by=admin.client)
    tab = Tab(browser, web, bob)
    try:
        response = tab.page.goto(tab.base + "/admin/feeds")
        assert response.status == 403
    finally:
        tab.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_updates_page_shows_the_agents_status_and_the_admin_consents(browser, web, ctx, admin,
                                                                     new_client, lang):
    """S8 with a status as the agent writes it (ota/README.md): translated, no sideways
    scroll on a phone; the household sees it without buttons; the admin's "Update now" leaves
    the agent its install_now request for the update it reported."""
    ota = Path(ctx.config.update_status_file).parent
    (ota / "request").mkdir(parents=True)
    (ota / "status.json").write_text(json.dumps({
        "state": "waiting_for_reboot", "progress": None,
        "installed": {"slot": "A", "build_counter": 202612021400,
                      "version": "202612021400.0.0+20261202-g1a2b3c4"},
        "available": {"version": "202612031200.0.0+20261203-gabcdef0", "action_id": "7",
                      "size": 262144000, "mode": "attempt"},
        "last_result": {"result": "failure", "version": "202612011000.0.0+x",
                        "message": "download failed: too slow", "log": ["attempt 1", "x"],
                        "at": "2026-12-01T10:00:00Z"},
        "last_poll": "2026-12-02T14:00:00Z", "server_error": "server answered 503",
        "updated_at": "2026-12-02T14:00:00Z"}))
    household = make_account(new_client, "household", by=admin.client)
    for account, admin_buttons in ((household, False), (admin, True)):
        tab = Tab(browser, web, account, SIZES["phone"])
        try:
            page = tab.goto(f"/system/update?lang={lang}")
            text = page.inner_text("body")
            assert not untranslated(text, lang), untranslated(text, lang)
            assert "202612031200.0.0+20261203-gabcdef0" in text and "server answered 503" in text
            assert page.evaluate("document.documentElement.scrollWidth") <= SIZES["phone"][0]
            install = page.locator("button[value=install_now]")
            assert install.count() == (1 if admin_buttons else 0)
            if admin_buttons:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"s8-updates-waiting-{lang}-360x640.png"),
                                full_page=True)
                install.click()
                page.wait_for_load_state("load")
                assert page.locator("p.ok[role=status]").count() == 1
            assert tab.errors == [] and tab.blocked == []
        finally:
            tab.close()
    assert json.loads((ota / "request" / "request.json").read_text()) == {
        "action": "install_now", "action_id": "7"}
