"""Issue 11, the web side: what a hostile client did to the hub, each as a regression test
against a real cheroot server of a fresh app (MariaDB and Redis real, as everywhere).

Numbers refer to the findings of issue 11. Each test failed on the code before the fix.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from devstack.servers import free_port
from hub.config import Config, load_config
from hub.context import HubContext
from hub.user.store import UserStore, WeakPassword, check_password
from hub.web.app import create_app
from tests.client import Client, Response
from tests.conftest import SETUP_CODE, Account

NOW = int(time.time())
DEEP = "[" * 5000 + "]" * 5000


def _error(res: Response, status: int) -> str:
    """The one error shape: the status, JSON `{"success": false, "message": <text>}`."""
    assert res.status == status, (res.status, res.body[:300])
    assert res.headers["content-type"].startswith("application/json"), res.headers
    body = res.json()
    assert body["success"] is False and isinstance(body["message"], str) and body["message"]
    assert set(body) == {"success", "message"}
    return body["message"]


@contextlib.contextmanager
def serve(config: Config, timeout: float | None = None) -> Iterator[Client]:
    """Another real server (own settings) on the test's database and Redis prefix."""
    from hub.web.server import make_server

    ctx = HubContext(config)
    app = create_app(config, ctx)
    port = free_port()
    server = make_server(app, "127.0.0.1", port, 2)
    if timeout is not None:
        server.timeout = timeout
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield Client("127.0.0.1", port)
    finally:
        server.stop()
        thread.join(10)
        ctx.close()


def with_settings(config: Config, **changes: object) -> Config:
    return load_config("/nonexistent.toml", overrides={**config, **changes}, environ={})


def raw(web: tuple[str, int], request: bytes, shutdown: bool = False,
        timeout: float = 30) -> tuple[int, dict[str, str], bytes, float]:
    """Send bytes as they are; (status, headers, body, seconds taken)."""
    status, headers, body, seconds, _ = raw_with_rest(web, request, shutdown, timeout)
    return status, headers, body, seconds


def raw_with_rest(web: tuple[str, int], request: bytes, shutdown: bool = False,
                  timeout: float = 30) -> tuple[int, dict[str, str], bytes, float, bytes]:
    """As raw(), plus every byte the server sent after the first response until it closed."""
    started = time.monotonic()
    with socket.create_connection(web, timeout=timeout) as sock:
        sock.sendall(request)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        seconds = time.monotonic() - started
        body, rest = body[:length], body[length:]
        if headers.get("connection") == "close":
            while chunk := sock.recv(65536):
                rest += chunk
    return int(lines[0].split()[1]), headers, body, seconds, rest


# -- 1. feed/csvexport.json is capped -----------------------------------------------------------

def test_csvexport_refuses_more_rows_than_the_cap_before_reading(admin, client, ctx, hub_config):
    feed = ctx.feeds.create(admin.userid, "power", interval=10)
    ctx.feeds.insert_many(feed.id, [NOW - 20, NOW - 10], [1.0, 2.0])
    key = {"apikey": admin.apikey_read, "id": feed.id}
    huge = client.get("/feed/csvexport.json", {**key, "start": 0, "end": NOW, "interval": 1})
    assert f"at most {hub_config.csv_max_points}" in _error(huge, 400)
    original = client.get("/feed/csvexport.json", {**key, "start": 0, "end": NOW,
                                                   "interval": "original"})
    _error(original, 400)
    small = client.get("/feed/csvexport.json", {**key, "start": NOW - 100, "end": NOW,
                                                "interval": 10})
    assert small.status == 200 and small.text.count("\n") >= 2


# -- 2. X-Forwarded-For and lockout ----------------------------------------------------------

def test_rotating_x_forwarded_for_does_not_bypass_the_lockout(admin, new_client, hub_config):
    attacker = new_client()
    statuses = [attacker.post("/user/login.json", {"username": "admin", "password": "wrong-pw"},
                              headers={"X-Forwarded-For": f"10.0.{i}.1"}).status
                for i in range(hub_config.login_attempts + 2)]
    assert statuses[:hub_config.login_attempts] == [401] * hub_config.login_attempts
    assert statuses[hub_config.login_attempts:] == [429, 429]
    # The real address is the one locked: even the right password is refused from it.
    locked = new_client().post("/user/login.json",
                               {"username": "admin", "password": admin.password})
    assert locked.status == 429 and int(locked.headers["retry-after"]) > 0


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(admin, ctx, hub_config):
    config = with_settings(hub_config, trusted_proxies="127.0.0.0/8", login_attempts=2,
                           login_account_attempts=6)
    with serve(config) as proxy:
        def login(address: str, password: str = "wrong-pw") -> int:
            return proxy.post("/user/login.json", {"username": "admin", "password": password},
                              headers={"X-Forwarded-For": f"203.0.113.9, {address}"}).status

        # Behind the proxy each client address has its own count: two tries each...
        assert [login("192.0.2.1"), login("192.0.2.1"), login("192.0.2.1")] == [401, 401, 429]
        assert login("192.0.2.2", admin.password) == 200  # another household member is fine
        # ...and the account has its own, across addresses, so rotating them stops too.
        statuses = [login(f"192.0.2.{i}") for i in range(10, 17)]
        assert statuses == [401] * 6 + [429], statuses
        assert login("192.0.2.99", admin.password) == 429


def test_lockouts_double_for_each_repeat_and_reset_on_success(ctx, hub_config):
    config = with_settings(hub_config, login_attempts=2, login_lockout=1, login_lockout_max=3)
    users = UserStore(ctx.db, ctx.redis, ctx.keys, config)
    users.register("carol", "carols-long-pw")

    def fail_until_locked() -> int:
        for _ in range(config.login_attempts):
            with pytest.raises(Exception, match="wrong"):
                users.authenticate("carol", "nope-nope", "192.0.2.7")
        with pytest.raises(Exception, match="try again") as locked:
            users.authenticate("carol", "carols-long-pw", "192.0.2.7")
        return locked.value.retry_after

    waits = []
    for _ in range(3):
        waits.append(ctx.redis.ttl(ctx.keys.login_fail("", "addr:192.0.2.7") + ":locked")
                     if fail_until_locked() else 0)
        time.sleep(waits[-1] + 0.2)
    assert waits == [1, 2, 3]  # 1 s, doubled, then held at login_lockout_max
    assert users.authenticate("carol", "carols-long-pw", "192.0.2.7").username == "carol"


# -- 3. cross-site GET writes with the session cookie ------------------------------------------

def test_session_cookie_cannot_write_by_get(admin, client):
    key = {"apikey": admin.apikey_write}
    client.post("/input/post", {**key, "node": "n", "csv": "1,2"})
    ids = [i["id"] for i in client.get("/input/list.json", key).json()]
    routes = [
        ("/input/delete.json", {"inputid": ids[0]}),
        ("/input/set.json", {"inputid": ids[0], "fields": '{"description":"x"}'}),
        ("/input/process/reset.json", {"inputid": ids[0]}),
        ("/input/post", {"node": "n", "csv": "5"}),
        ("/input/post.json", {"node": "n", "csv": "5"}),
        ("/input/post/n", {"csv": "5"}),
        ("/input/bulk", {"data": f'[[{NOW}, "n", 5]]'}),
        ("/input/bulk.json", {"data": f'[[{NOW}, "n", 5]]'}),
        ("/feed/create.json", {"name": "x"}),
        ("/user/logout.json", {}),  # not a write guarded by requires: logout is harmless
    ]
    for path, params in routes[:-1]:
        assert "by POST" in _error(admin.client.get(path, params), 403), path
    assert len(client.get("/input/list.json", key).json()) == len(ids)  # nothing deleted
    # The same writes by POST with the cookie, and by GET with the write key, still work.
    assert admin.client.post("/input/post/n", {"csv": "6"}).status == 200
    assert client.get("/input/delete.json", {**key, "inputid": ids[0]}).status == 200


def test_every_write_route_refuses_session_gets():
    """The rule is in `requires`, so every route that writes has it, not just some."""
    from hub.web import device, feed, input, user

    writes = [f for m in (device, feed, input, user) for f in vars(m).values()
              if callable(f) and getattr(f, "writes", False)]
    assert len(writes) > 20
    reads = [f.__name__ for m in (device, feed, input, user) for f in vars(m).values()
             if callable(f) and getattr(f, "writes", None) is False]
    assert set(reads) >= {"get_user", "session_info", "list_users", "data", "list_feeds"}


# -- 6. password policy and first-run claim ----------------------------------------------------

@pytest.mark.parametrize("password", ["password", "\x00" * 10, "PassWord1", "qwertyuiop",
                                      "short", "bad\x07-bell-pw", "Carolina-99"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(WeakPassword):
        check_password(password, username="carolina-99")


def test_policy_has_no_composition_rules():
    check_password("correct horse battery staple")
    check_password("ŵyn bach ar y bryn")  # Welsh, spaces, no digits: fine


def test_registration_applies_the_policy(client):
    for password in ("password", "\x00" * 10, "12345678"):
        res = client.post("/user/register.json", {"username": "first", "password": password,
                                                  "setup_code": SETUP_CODE})
        _error(res, 400)


def test_first_account_needs_the_setup_code(client, new_client, ctx):
    form = {"username": "owner", "password": "owners-long-pw"}
    assert "setup code" in _error(client.post("/user/register.json", form), 403)
    assert "not right" in _error(client.post("/user/register.json",
                                             {**form, "setup_code": "WRONG-CODE"}), 403)
    assert ctx.users.count() == 0
    spaced = "test setup-code".lower()  # grouping, spaces and case do not matter
    res = client.post("/user/register.json", {**form, "setup_code": spaced})
    assert res.status == 200 and res.json()["admin"] is True
    # Once claimed the code is worthless: later accounts need an admin session.
    later = new_client().post("/user/register.json", {"username": "x2", "password":
                                                      "another-long-pw", "setup_code": SETUP_CODE})
    assert "administrator" in _error(later, 403)


def test_without_a_setup_code_only_the_console_creates_the_first_account(ctx, hub_config):
    with serve(with_settings(hub_config, setup_code="")) as anon:
        res = anon.post("/user/register.json", {"username": "owner", "password":
                                                "owners-long-pw", "setup_code": ""})
        assert "hub admin create-user" in _error(res, 403)
    assert ctx.users.count() == 0


# -- 7. numbers that overflowed ----------------------------------------------------------------

@pytest.fixture
def world(admin: Account, ctx: HubContext, client: Client) -> dict:
    feed = ctx.feeds.create(admin.userid, "power", interval=10)
    ctx.feeds.insert_many(feed.id, [NOW - 10], [1.0])
    client.post("/input/post", {"apikey": admin.apikey_write, "node": "n", "csv": "1"})
    inputid = ctx.inputs.list(admin.userid)[0]["id"]
    device = ctx.devices.create(admin.userid, "plug", "emonesp", "emon/plug1",
                                mqtt_username="plug1")
    return {"feed": feed.id, "input": inputid, "device": device.id,
            "key": {"apikey": admin.apikey_write}, "client": client}


BIG = ["1.0e999", "1e308", "-1e400", "9" * 30, "Infinity", "nan"]


@pytest.mark.parametrize("value", BIG)
@pytest.mark.parametrize(("method", "path", "name"), [
    ("GET", "/feed/get.json", "id"),
    ("GET", "/feed/data.json", "id"),
    ("GET", "/feed/data.json", "dp"),
    ("GET", "/feed/data.json", "interval"),
    ("GET", "/feed/data.json", "mode"),
    ("GET", "/feed/data.json", "start"),
    ("GET", "/feed/export.json", "start"),
    ("POST", "/feed/create.json", "engine"),
    ("GET", "/feed/list.json", "userid"),
    ("GET", "/input/process/get.json", "inputid"),
    ("GET", "/device/get.json", "id"),
    ("GET", "/schedule/get.json", "device"),
])
def test_huge_numbers_in_parameters_are_400(world, method, path, name, value):
    params = {**world["key"], "id": world["feed"], "start": NOW - 100, "end": NOW,
              "interval": 10, "inputid": world["input"], "device": world["device"],
              "name": "n2", name: value}
    if name == "mode":  # emoncms' legacy name, read when there is no 'interval'
        del params["interval"]
    res = world["client"].request(method, path, params=params)
    _error(res, 400)


def test_calendar_reads_far_in_the_past_are_400(world):
    params = {**world["key"], "id": world["feed"], "start": -1e15, "end": NOW,
              "interval": "daily"}
    _error(world["client"].get("/feed/data.json", params), 400)


@pytest.mark.parametrize("arg", ["Infinity", "1e400", "-Infinity", "NaN", "1" + "0" * 400])
def test_process_args_that_overflow_are_400(world, arg):
    steps = f'[{{"fn": "process__scale", "args": [{arg}]}}]'
    res = world["client"].post("/input/process/set.json", {**world["key"], "inputid":
                                                           world["input"], "processlist": steps})
    _error(res, 400)
    steps = f'[{{"fn": "process__log_to_feed", "args": [{arg}]}}]'
    res = world["client"].post("/input/process/set.json", {**world["key"], "inputid":
                                                           world["input"], "processlist": steps})
    _error(res, 400)


def test_bulk_times_that_overflow_are_400(world):
    for time_value in (10**400, "1e400", -(10**400)):
        res = world["client"].post("/input/bulk", {**world["key"],
                                                   "data": f'[[{time_value}, "n", 1]]'})
        _error(res, 400)


# -- 8. deep JSON -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "params"), [
    ("/feed/create.json", {"name": "d", "options": DEEP}),
    ("/feed/set.json", {"fields": DEEP}),
    ("/feed/post.json", {"data": DEEP}),
    ("/input/delete.json", {"inputids": DEEP}),
    ("/input/set.json", {"fields": DEEP}),
    ("/input/process/set.json", {"processlist": DEEP}),
    ("/input/bulk", {"data": DEEP}),
    ("/input/post", {"node": "n", "fulljson": "{\"a\":" * 5000 + "1" + "}" * 5000}),
    ("/schedule/set.json", {"schedule": DEEP}),
])
def test_deeply_nested_json_parameters_are_400(world, path, params):
    base = {**world["key"], "id": world["feed"], "inputid": world["input"],
            "device": world["device"]}
    res = world["client"].post(path, {**base, **params})
    assert "nests more than" in _error(res, 400)


def test_deeply_nested_json_body_is_400(world):
    res = world["client"].post(f"/schedule/set.json?device={world['device']}&apikey="
                               f"{world['key']['apikey']}", DEEP,
                               headers={"Content-Type": "application/json"})
    assert "nests more than" in _error(res, 400)


def test_brackets_inside_strings_do_not_count():
    from hub.web.api import json_depth

    assert json_depth(json.dumps(["[" * 100, {"a": "{{{"}])) == 2
    assert json_depth(r'["\"[[[["]') == 1  # an escaped quote does not end the string


# -- 9. bodies that lie, and Bottle's own errors ------------------------------------------------

def test_body_shorter_than_content_length_answers_400_at_once(web):
    request = (b"POST /user/login.json HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n"
               b"\r\nusername=a&password=b")
    status, _headers, body, seconds = raw(web, request, shutdown=True)
    assert status == 400 and json.loads(body)["success"] is False
    assert seconds < 5  # the ~10 s wait was the server's socket timeout


def test_stalled_body_answers_408_as_json(ctx, hub_config):
    with serve(hub_config, timeout=1) as client:
        request = (b"POST /user/login.json HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n"
                   b"\r\nusername=a")
        status, headers, body, _ = raw((client.host, client.port), request)
    assert status == 408 and json.loads(body)["success"] is False
    assert headers["connection"] == "close"


def test_content_length_with_chunked_is_400_json(web):
    request = (b"POST /user/login.json HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\n\r\n0\r\n\r\n")
    status, headers, body, _, rest = raw_with_rest(web, request)
    assert status == 400, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["success"] is False
    # The connection is closed, so the chunked body is never parsed as a second request.
    assert headers["connection"] == "close" and rest == b""


@pytest.mark.parametrize("request_bytes", [
    # Refused by the HTTP server before the app sees them (the API fuzzer found the first:
    # a generated header named Content-Length with a value that is not a number).
    b"POST /user/login.json HTTP/1.1\r\nHost: x\r\nContent-Length: (@C1h\r\n\r\n",
    b"GET /feed/list.json HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"NOT A REQUEST LINE AT ALL\r\n\r\n",
    b"GET /feed/list.json HTTP/2.5\r\nHost: x\r\n\r\n",
    # A transfer coding nobody implements: 501 (RFC 9112 §6.1), documented in /openapi.json.
    b"GET /feed/delete.json?id=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ^k\r\n\r\n",
])
def test_requests_the_server_refuses_answer_json_and_close(web, request_bytes):
    status, headers, body, _, rest = raw_with_rest(web, request_bytes)
    assert 400 <= status < 600, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["success"] is False and error["message"]
    assert headers["connection"] == "close" and rest == b""


def test_unknown_transfer_coding_is_a_documented_501(web, client):
    request = b"GET /feed/list.json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    status, headers, body, _, rest = raw_with_rest(web, request)
    assert status == 501 and json.loads(body)["success"] is False
    assert headers["connection"] == "close" and rest == b""
    paths = client.get("/openapi.json").json()["paths"]
    undocumented = [f"{method} {path}" for path, methods in paths.items()
                    for method, operation in methods.items() if "501" not in operation["responses"]]
    assert not undocumented


@pytest.mark.parametrize("body", [
    b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--\r\n",  # part without a name
    b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno closing boundary",
    b"not multipart at all",
])
def test_malformed_multipart_is_400_json(client, body):
    res = client.post("/user/login.json", body,
                      headers={"Content-Type": "multipart/form-data; boundary=B"})
    _error(res, 400)
    res = client.post("/user/login.json", body, headers={"Content-Type": "multipart/form-data"})
    _error(res, 400)


def test_bottle_errors_are_json_with_security_headers(client, web, ctx):
    for res, status in ((client.get("/no/such/route"), 404),
                        (client.request("DELETE", "/feed/list.json"), 405),
                        (client.post("/user/login.json", b"x", headers={
                            "Content-Length": "999999999"}), 413)):
        _error(res, status)
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["x-frame-options"] == "DENY"
        assert res.headers["referrer-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in res.headers["content-security-policy"]


def test_bottle_catchall_500_is_json(ctx, hub_config):
    app = create_app(hub_config, ctx)

    def broken():
        raise RuntimeError("boom")

    app.route("/broken", "GET", broken, skip=True)  # no front controller: Bottle's own 500
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/broken", "SERVER_NAME": "x",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": None,
               "wsgi.errors": open("/dev/null", "w")}  # noqa: SIM115
    seen = {}
    out = b"".join(app(environ, lambda status, headers, exc=None: seen.update(
        status=status, headers=dict(headers))))
    environ["wsgi.errors"].close()
    assert seen["status"].startswith("500")
    assert json.loads(out) == {"success": False,
                               "message": "internal error; the hub log has the details"}
    assert seen["headers"]["X-Content-Type-Options"] == "nosniff"


def test_security_headers_on_success_and_route_csp_kept(client, ctx, hub_config):
    res = client.get("/version")
    assert res.status == 200
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["content-security-policy"].startswith("default-src 'none'")
    app = create_app(hub_config, ctx)

    def page():
        import bottle

        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Content-Security-Policy", "default-src 'self'")
        return "<p>hi</p>"

    app.route("/page", "GET", page)
    seen = {}
    app({"REQUEST_METHOD": "GET", "PATH_INFO": "/page", "SERVER_NAME": "x",
         "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
        lambda status, headers, exc=None: seen.update(headers=headers))
    csp = [v for n, v in seen["headers"] if n.lower() == "content-security-policy"]
    assert csp == ["default-src 'self'"]  # the page's own policy, not replaced or doubled


# -- found by the API fuzz test ----------------------------------------------------------------

@pytest.mark.parametrize("cookie", ["a=1; ) = 2", "3jv_=x; expires", "=;;=", "a\x7f=1"])
def test_malformed_cookie_headers_do_not_crash_auth(admin, client, cookie):
    """http.cookies raised CookieError for the whole header (500); the hub reads its own
    cookie and ignores the rest."""
    anon = client.get("/user/session.json", headers={"Cookie": cookie})
    _error(anon, 401)
    token = admin.client.cookies["hub_session"]
    mine = client.get("/user/session.json", headers={"Cookie": f"{cookie}; hub_session={token}"})
    assert mine.status == 200 and mine.json()["userid"] == admin.userid
