"""Browserless tests of the display's pages against real servers: every screen renders with
real data, the security rules (CSRF, headers, escaping, no key in pages), the live endpoint's
ETag, first run, tariff and schedule forms."""

from __future__ import annotations

import json
import re
import time

import pytest

from hub.web.pages.i18n import catalogue
from tests.conftest import make_account
from tests.ui.seed import seed

SCREENS = ["/", "/forecast", "/use", "/use?period=week", "/use?period=month", "/community",
           "/devices", "/devices/pair", "/system/update", "/settings", "/kiosk",
           "/account/password", "/admin/users", "/admin/inputs", "/admin/feeds"]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" content="([0-9a-f]+)"', html).group(1)


@pytest.fixture
def household(ctx, admin):
    data = seed(ctx, admin.userid)
    return admin, data


def test_first_run_offers_account_creation_then_login_logout(new_client, ctx):
    browser = new_client()
    first = browser.get("/")
    assert first.status == 303 and first.headers["location"].endswith("/setup")
    page = browser.get("/setup")
    assert page.status == 200 and "Create your account" in page.text
    token = csrf_of(page.text)
    bad = browser.post("/setup", {"username": "ann", "password": "correct horse",
                                  "confirm": "correct horse"})
    assert bad.status == 403  # no CSRF token: nothing created
    assert ctx.users.count() == 0
    form = {"csrf": token, "username": "ann", "password": "correct horse",
            "confirm": "correct horse"}
    if "setup_code" in ctx.config:  # the first-run guard of issue 11, when it has landed
        assert 'name="setup_code"' in page.text
        wrong = browser.post("/setup", form | {"setup_code": "WRONG-CODE"})
        assert wrong.status == 403 and ctx.users.count() == 0
        form["setup_code"] = ctx.config["setup_code"]
    else:
        assert 'name="setup_code"' not in page.text
    made = browser.post("/setup", form)
    assert made.status == 303, made.text
    assert ctx.users.count() == 1 and ctx.users.list()[0].is_admin
    home = browser.get("/")
    assert home.status == 200 and "Power now" in home.text
    assert browser.get("/setup").status == 303  # closed once a user exists
    out = browser.post("/logout", {"csrf": csrf_of(home.text)})
    assert out.status == 303
    assert browser.get("/").headers["location"].endswith("/login")
    login_page = browser.get("/login")
    wrong = browser.post("/login", {"csrf": csrf_of(login_page.text), "username": "ann",
                                    "password": "nope nope nope"})
    assert wrong.status == 401 and "Wrong username or password" in wrong.text
    ok = browser.post("/login", {"csrf": csrf_of(login_page.text), "username": "ann",
                                 "password": "correct horse"})
    assert ok.status == 303 and browser.get("/").status == 200


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_every_screen_renders_with_real_data_and_headers(household, lang):
    admin, data = household
    cat = catalogue(lang)
    keys = set(catalogue("en").messages)
    extra = [f"/devices/{data.device_id}/schedule", f"/admin/feeds/{data.feed_id}",
             f"/admin/feeds/{data.feed_id}/delete"]
    for path in [*SCREENS, *extra]:
        sep = "&" if "?" in path else "?"
        res = admin.client.get(f"{path}{sep}lang={lang}")
        assert res.status == 200, (path, res.text[:300])
        html = res.text
        assert f'<html lang="{lang}"' in html
        csp = res.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in html and " on" not in re.sub(r"<[^>]*>", "", "") \
            and not re.search(r"<[^>]+\son\w+=", html)  # no inline script or handlers
        leaked = [k for k in keys if re.search(rf"[>\s]{re.escape(k)}[<\s]", html)]
        assert not leaked, (path, leaked)  # an untranslated key shows as itself
        assert admin.apikey_write not in html and admin.apikey_read not in html
    assert cat.text("now.power") in admin.client.get("/").text or lang == "cy"


def test_now_shows_server_numbers_and_tariff_band(household):
    admin, _ = household
    html = admin.client.get("/?lang=en").text
    assert re.search(r'id="live-power">[\d,]+ W<', html)
    assert re.search(r'id="band">(Night|Day) · \d+\.\d\dp/kWh', html)
    assert "Good time to use power?" in html
    assert re.search(r'class="lamp lamp-(red|amber|green) lit">[✓\-✕]<', html)


def test_missing_tariff_is_a_visible_state(ctx, admin):
    seed(ctx, admin.userid, tariff=False)
    assert "No tariff set" in admin.client.get("/?lang=en").text
    use = admin.client.get("/use?lang=en").text
    assert 'id="no-tariff"' in use and "£" not in use


def test_use_rows_add_up_to_the_total_and_dst_days_have_46_and_50_half_hours(household):
    admin, _ = household
    html = admin.client.get("/use?period=day&lang=en").text
    rows = [float(x) for x in re.findall(r"<td>£([\d,.]+)</td></tr>", html)]
    total = float(re.search(r'id="total">£([\d,.]+)<', html).group(1))
    assert rows and abs(sum(rows) - total) <= 0.01 * len(rows)
    spring = admin.client.get("/use?period=day&day=2026-03-29&lang=en").text
    autumn = admin.client.get("/use?period=day&day=2026-10-25&lang=en").text
    assert "each of the day&#039;s 46 half-hours" in spring
    assert "each of the day&#039;s 50 half-hours" in autumn


def test_live_endpoint_etag_and_session_only(household, new_client):
    admin, _ = household
    first = admin.client.get("/api/live")
    assert first.status == 200
    body = first.json()
    assert body["power"]["value"] > 0 and body["light"]["light"] in ("green", "amber", "red")
    again = admin.client.get("/api/live", headers={"If-None-Match": first.headers["etag"]})
    assert again.status == 304 and again.body == b""
    assert new_client().get("/api/live").status == 401
    assert admin.client.get("/api/live", params={"apikey": admin.apikey_read}).status == 403


def test_tariff_form_validates_and_saves(household, ctx):
    admin, _ = household
    page = admin.client.get("/settings?lang=en").text
    token = csrf_of(page)
    gap = admin.client.post("/settings", {"csrf": token, "section": "tariff",
                                          "band0_name": "Day", "band0_start": "07:00",
                                          "band0_end": "23:00", "band0_price": "20",
                                          "standing": "40"})
    assert gap.status == 400 and "there is no band" in gap.text
    good = admin.client.post("/settings", {"csrf": token, "section": "tariff",
                                           "band0_name": "Flat", "band0_start": "00:00",
                                           "band0_end": "00:00", "band0_price": "21.5",
                                           "standing": "50"})
    assert good.status == 200 and "Tariff saved" in good.text
    assert ctx.households.get(admin.userid).tariff.bands[0].price == 21.5


def test_schedule_editor_saves_and_previews(household, ctx):
    admin, data = household
    url = f"/devices/{data.device_id}/schedule"
    token = csrf_of(admin.client.get(url).text)
    form = {"csrf": token, "ready_by": "06:30", "period_h": "1", "period_m": "30",
            "interruptible": "1", "on_completion": "off"} | {f"day{d}": "1" for d in range(6)}
    preview = admin.client.post(url + "/preview", form)
    assert preview.status == 200, preview.text
    assert preview.json()["plan"]["windows"] and preview.json()["sentence"].startswith("Runs")
    assert ctx.schedules.get(data.device_id).definition.ready_by == "07:00"  # not saved yet
    saved = admin.client.post(url, form)
    assert saved.status == 200 and 'id="saved"' in saved.text
    stored = ctx.schedules.get(data.device_id).definition
    assert (stored.ready_by, stored.period_s, stored.interruptible) == ("06:30", 5400, True)
    assert sorted(stored.repeat) == [0, 1, 2, 3, 4, 5]


def test_state_changes_need_csrf(household, ctx):
    admin, data = household
    for path, form in [(f"/devices/{data.device_id}/mode", {"mode": "on"}),
                       ("/settings", {"section": "tariff", "clear": "1"}),
                       ("/devices/pair/allow", {"ip": "127.0.0.1"}),
                       (f"/admin/feeds/{data.feed_id}/delete", {"confirm_name": "use"})]:
        res = admin.client.post(path, form)
        assert res.status == 403, path
    assert ctx.households.get(admin.userid).tariff is not None
    assert ctx.feeds.get(data.feed_id)


def test_device_mode_buttons(household, ctx):
    admin, data = household
    token = csrf_of(admin.client.get("/devices").text)
    res = admin.client.post(f"/devices/{data.device_id}/mode", {"csrf": token, "mode": "off"})
    assert res.status == 303
    assert ctx.schedules.get(data.device_id).definition.mode == "off"
    assert 'value="off">Off</button>' not in admin.client.get("/devices?lang=en").text or \
        'aria-pressed="true">Off' in admin.client.get("/devices?lang=en").text


def test_pairing_request_name_is_escaped(household, web, ctx):
    admin, _ = household
    ctx.pairing.request("10.0.0.9", "ESP8266HTTPClient", "<img src=x onerror=alert(1)>")
    live = admin.client.get("/api/live").json()
    assert live["pairing"] and live["pairing"][0]["ip"] == "10.0.0.9"
    html = admin.client.get("/devices/pair").text
    assert "<img src=x" not in html


def test_admin_pages_set_up_logging_and_delete_a_feed(household, ctx, new_client):
    admin, data = household
    page = admin.client.get("/admin/inputs?lang=en").text
    token = csrf_of(page)
    found = next(i for i in ctx.inputs.list(admin.userid) if i["name"] == "use")
    added = admin.client.post("/admin/inputs", {"csrf": token, "input": str(found["id"]),
                                                "fn": "power_to_kwh", "new_feed": "use_kwh"})
    assert added.status == 303
    steps = next(i for i in ctx.inputs.list(admin.userid) if i["id"] == found["id"])
    assert [s["fn"] for s in steps["processList"]][-1].endswith("power_to_kwh")
    csv = admin.client.get(f"/admin/feeds/{data.feed_id}.csv")
    assert csv.status == 200 and csv.text.count("\n") > 100
    wrong = admin.client.post(f"/admin/feeds/{data.feed_id}/delete",
                              {"csrf": token, "confirm_name": "nope"})
    assert wrong.status == 400
    gone = admin.client.post(f"/admin/feeds/{data.feed_id}/delete",
                             {"csrf": token, "confirm_name": "use"})
    assert gone.status == 303
    other = make_account(new_client, "bob", by=admin.client)
    assert other.client.get("/admin/feeds").status == 403


def test_updates_not_set_up_then_agent_status(household, ctx, tmp_path):
    admin, _ = household
    html = admin.client.get("/system/update?lang=en").text
    assert 'data-state="not_set_up"' in html
    status = tmp_path / "status.json"
    (tmp_path / "request").mkdir()
    ctx.updates.status_file = status
    status.write_text(json.dumps({
        "state": "downloading", "installed": {"slot": "A", "build_counter": 1000,
                                              "version": "1000.0.0+old"},
        "available": {"version": "1001.0.0+new", "action_id": "7", "size": 100,
                      "mode": "attempt"},
        "progress": {"bytes": 40, "of": 100, "percent": 40},
        "last_result": {"result": "failure", "version": "999.0.0", "message": "<b>x</b>",
                        "log": ["line <i>1</i>"], "at": "2026-12-01T10:00:00Z"},
        "last_poll": "2026-12-02T10:00:00Z", "server_error": None}))
    html = admin.client.get("/system/update?lang=en").text
    assert 'data-state="downloading"' in html and 'value="40"' in html
    assert "1000.0.0+old" in html and "slot A" in html and "1001.0.0+new" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "line &lt;i&gt;1&lt;/i&gt;" in html
    assert 'value="install_now"' not in html  # nothing installed yet: no consent to give
    token = csrf_of(html)
    admin.client.post("/system/update", {"csrf": token, "action": "check_now"})
    assert json.loads((tmp_path / "request" / "request.json").read_text()) == {
        "action": "check_now"}
    refused = admin.client.post("/system/update", {"csrf": token, "action": "install_now",
                                                   "action_id": "7"})
    assert refused.status == 409 and "no update is waiting" in refused.text
    status.write_text(json.dumps({"state": "waiting_for_reboot", "available": {
        "version": "1001.0.0+new", "action_id": "7", "size": 100, "mode": "attempt"}}))
    html = admin.client.get("/system/update?lang=en").text
    assert 'value="install_now"' in html
    admin.client.post("/system/update", {"csrf": token, "action": "install_now",
                                         "action_id": "7"})
    assert json.loads((tmp_path / "request" / "request.json").read_text()) == {
        "action": "install_now", "action_id": "7"}
    status.write_text('{"state": "downl')  # torn or hostile: shown, not a 500
    html = admin.client.get("/system/update?lang=en").text
    assert 'data-state="unknown"' in html and "not valid JSON" in html


def test_static_assets_served_with_headers(client):
    for path in ("/static/app.js", "/static/app.css", "/static/vendor/uPlot.iife.min.js"):
        res = client.get(path)
        assert res.status == 200, path
        assert res.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../hub/config.py").status in (403, 404)


def test_keys_shown_only_on_request(household):
    admin, _ = household
    page = admin.client.get("/settings").text
    assert admin.apikey_read not in page
    shown = admin.client.post("/settings", {"csrf": csrf_of(page), "section": "keys"}).text
    assert admin.apikey_read in shown and admin.apikey_write in shown


def test_time_budget_sanity(household):
    admin, _ = household
    t0 = time.perf_counter()
    admin.client.get("/")
    assert time.perf_counter() - t0 < 30
