"""The auth matrix: every user, health, feed and input route against every kind of caller.

The data belongs to bob (not an admin). Callers, in the order each row is written:

    anon   no key, no cookie
    read   bob's read key           write  bob's write key
    other  another user's write key (the admin's: API keys are never admin)
    sess   bob's session cookie     admin  the admin's session (not bob)

Statuses: 401 no credentials; 403 credentials too weak (a key on a session-only route, a
non-admin on an admin route, a write to another user's public feed); 404 another user's
private feed or input (the same answer as a missing one, so ids do not leak). Admins get no
access to other users' feeds or inputs: admin is about accounts, not data.

Each route is one test that builds its row, so a failure shows the whole row at once. Routes
that change state get fresh resources for every caller (see `params`).
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.client import Client, Response
from tests.conftest import Account, make_account

CALLERS = ("anon", "read", "write", "other", "sess", "admin")
T0 = 1_700_000_000
_unique = itertools.count()


@dataclass
class World:
    admin: Account
    bob: Account
    new_client: Callable[[], Client]
    ctx: object
    feed: int  # bob's private feed, with data
    public_feed: int  # bob's public feed
    input: int  # bob's input n/power

    def fresh_feed(self, public: bool = False) -> int:
        feed = self.ctx.feeds.create(self.bob.userid, f"tmp{next(_unique)}")
        if public:
            self.ctx.feeds.update(feed.id, public=True)
        return feed.id

    def fresh_input(self) -> int:
        name = f"tmp{next(_unique)}"
        self.call("write", "POST", "/input/post.json", {"node": "n", "fulljson": f'{{"{name}":1}}'})
        return next(i["id"] for i in self.ctx.inputs.list(self.bob.userid) if i["name"] == name)

    def call(self, caller: str, method: str, path: str, params: dict) -> Response:
        key = {"read": self.bob.apikey_read, "write": self.bob.apikey_write,
               "other": self.admin.apikey_write}.get(caller)
        client = {"sess": self.bob.client, "admin": self.admin.client}.get(caller)
        client = client or self.new_client()
        query = {"apikey": key} if key else {}
        if method == "POST":
            if query:
                path += "?" + urllib.parse.urlencode(query)
            return client.post(path, params)
        return client.get(path, {**params, **query})


@pytest.fixture
def world(admin, new_client, ctx) -> World:
    bob = make_account(new_client, "bob", by=admin.client)
    feed = ctx.feeds.create(bob.userid, "use")
    ctx.feeds.insert(feed.id, T0, 1.0)
    public = ctx.feeds.create(bob.userid, "shared")
    ctx.feeds.update(public.id, public=True)
    w = World(admin, bob, new_client, ctx, feed.id, public.id, 0)
    res = w.call("write", "POST", "/input/post.json", {"node": "n", "fulljson": '{"power":5}'})
    assert res.status == 200, res.text
    w.input = next(i["id"] for i in ctx.inputs.list(bob.userid) if i["name"] == "power")
    return w


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: str  # statuses for CALLERS, space-separated
    params: Callable[[World], dict] = lambda w: {}

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def fid(w: World) -> dict:
    return {"id": w.feed}


def pub(w: World) -> dict:
    return {"id": w.public_feed}


def iid(w: World) -> dict:
    return {"inputid": w.input}


def data_range(feed_id: int) -> dict:
    return {"id": feed_id, "start": T0, "end": T0 + 10, "interval": 10}


#                       anon read write other sess admin
SESSION_ONLY = "401 403 403 403 200 200"
ADMIN_ONLY = "401 403 403 403 403 200"
READ_OWN = "401 200 200 404 200 404"  # bob's private feed or input
READ_PUBLIC = "200 200 200 200 200 200"  # bob's public feed
WRITE_OWN = "401 403 200 404 200 404"
WRITE_PUBLIC = "401 403 200 403 200 403"
WRITE_MINE = "401 403 200 200 200 200"  # creates or posts into the caller's own account
READ_MINE = "401 200 200 200 200 200"
EVERYONE = "200 200 200 200 200 200"

CASES = [
    # -- user ---------------------------------------------------------------------------------
    Case("POST", "/user/register.json", "403 403 403 403 403 200",
         lambda w: {"username": f"u{next(_unique)}", "password": "long enough"}),
    Case("POST", "/user/login.json", EVERYONE,
         lambda w: {"username": "bob", "password": w.bob.password}),
    Case("POST", "/user/auth.json", EVERYONE,
         lambda w: {"username": "bob", "password": w.bob.password}),
    Case("GET", "/user/session.json", READ_MINE),
    Case("GET", "/user/get.json", SESSION_ONLY),
    Case("POST", "/user/set.json", SESSION_ONLY, lambda w: {"language": "cy"}),
    Case("POST", "/user/changepassword.json", SESSION_ONLY,
         lambda w: {"old": w.bob.password, "new": w.bob.password}),  # admin has the same one
    Case("POST", "/user/newapikeyread.json", SESSION_ONLY),
    Case("POST", "/user/newapikeywrite.json", SESSION_ONLY),
    Case("POST", "/user/resettoken.json", ADMIN_ONLY, lambda w: {"userid": w.bob.userid}),
    Case("POST", "/user/resetpassword.json", EVERYONE,
         lambda w: {"token": w.ctx.users.issue_reset_token(w.bob.userid),
                    "new": w.bob.password}),
    Case("GET", "/user/list.json", ADMIN_ONLY),
    Case("POST", "/user/logout.json", EVERYONE),  # last: ends bob's session
    # -- health -------------------------------------------------------------------------------
    Case("GET", "/health.json", "503 503 503 503 503 503"),  # no worker runs in these tests
    Case("GET", "/describe", EVERYONE),
    Case("GET", "/version", EVERYONE),
    Case("GET", "/openapi.json", EVERYONE),
    # -- feeds: bob's private feed --------------------------------------------------------------
    Case("GET", "/feed/list.json", READ_MINE),
    Case("POST", "/feed/create.json", WRITE_MINE, lambda w: {"name": f"f{next(_unique)}"}),
    Case("GET", "/feed/get.json", READ_OWN, fid),
    Case("GET", "/feed/aget.json", READ_OWN, fid),
    Case("GET", "/feed/getmeta.json", READ_OWN, fid),
    Case("GET", "/feed/getid.json", "401 200 200 404 200 404", lambda w: {"name": "use"}),
    Case("POST", "/feed/set.json", WRITE_OWN, lambda w: {"id": w.feed, "fields": '{"unit":"W"}'}),
    Case("POST", "/feed/delete.json", WRITE_OWN, lambda w: {"id": w.fresh_feed()}),
    Case("GET", "/feed/value.json", READ_OWN, fid),
    Case("GET", "/feed/timevalue.json", READ_OWN, fid),
    Case("GET", "/feed/fetch.json", EVERYONE, lambda w: {"ids": str(w.feed)}),  # see below
    Case("GET", "/feed/data.json", READ_OWN, lambda w: data_range(w.feed)),
    Case("GET", "/feed/average.json", READ_OWN, lambda w: data_range(w.feed)),
    Case("GET", "/feed/csvexport.json", READ_OWN, lambda w: data_range(w.feed)),
    Case("GET", "/feed/export.json", READ_OWN, fid),
    Case("POST", "/feed/post.json", WRITE_OWN, lambda w: {"id": w.feed, "time": T0, "value": 2}),
    Case("POST", "/feed/insert.json", WRITE_OWN,
         lambda w: {"id": w.feed, "time": T0, "value": 2}),
    Case("POST", "/feed/update.json", WRITE_OWN,
         lambda w: {"id": w.feed, "time": T0, "value": 2}),
    # -- inputs -------------------------------------------------------------------------------
    Case("POST", "/input/post", WRITE_MINE, lambda w: {"node": "n", "csv": "1"}),
    Case("POST", "/input/post.json", WRITE_MINE, lambda w: {"node": "n", "csv": "1"}),
    Case("POST", "/input/post/n", WRITE_MINE, lambda w: {"csv": "1"}),
    Case("POST", "/input/bulk", WRITE_MINE, lambda w: {"data": "[[0, \"n\", 1]]"}),
    Case("POST", "/input/bulk.json", WRITE_MINE, lambda w: {"data": "[[0, \"n\", 1]]"}),
    Case("GET", "/input/get", READ_MINE),
    Case("GET", "/input/get.json", READ_MINE),
    Case("GET", "/input/get/n", READ_OWN),  # the admin has no node n
    Case("GET", "/input/get/n/power", READ_OWN),
    Case("GET", "/input/list.json", READ_MINE),
    Case("POST", "/input/set.json", WRITE_OWN,
         lambda w: {"inputid": w.input, "fields": '{"description":"meter"}'}),
    Case("POST", "/input/delete.json", WRITE_OWN, lambda w: {"inputid": w.fresh_input()}),
    Case("GET", "/input/process/get.json", READ_OWN, iid),
    Case("POST", "/input/process/set.json", WRITE_OWN,
         lambda w: {"inputid": w.input, "processlist": "[]"}),
    Case("POST", "/input/process/reset.json", WRITE_OWN, iid),
    Case("GET", "/input/process/list.json", READ_MINE),
]

PUBLIC_CASES = [
    Case("GET", "/feed/list.json", READ_PUBLIC, lambda w: {"userid": w.bob.userid}),
    Case("GET", "/feed/get.json", READ_PUBLIC, pub),
    Case("GET", "/feed/getmeta.json", READ_PUBLIC, pub),
    Case("GET", "/feed/value.json", READ_PUBLIC, pub),
    Case("GET", "/feed/timevalue.json", READ_PUBLIC, pub),
    Case("GET", "/feed/data.json", READ_PUBLIC, lambda w: data_range(w.public_feed)),
    Case("GET", "/feed/csvexport.json", READ_PUBLIC, lambda w: data_range(w.public_feed)),
    Case("GET", "/feed/export.json", READ_PUBLIC, pub),
    Case("POST", "/feed/post.json", WRITE_PUBLIC,
         lambda w: {"id": w.public_feed, "time": T0, "value": 2}),
    Case("POST", "/feed/set.json", WRITE_PUBLIC,
         lambda w: {"id": w.public_feed, "fields": '{"unit":"W"}'}),
    Case("POST", "/feed/delete.json", WRITE_PUBLIC, lambda w: {"id": w.fresh_feed(public=True)}),
]


def check_row(world: World, case: Case) -> None:
    actual = {}
    for caller in CALLERS:
        res = world.call(caller, case.method, case.path, case.params(world))
        if res.status == 404 and "no such route" in res.text:
            pytest.skip(f"{case.id} is not served by this app (yet)")
        actual[caller] = str(res.status)
        if res.status >= 400 and res.status != 503:
            body = res.json()  # every refusal is a JSON error with a message
            assert body["success"] is False and body["message"], (case.id, caller, body)
    expected = dict(zip(CALLERS, case.expected.split(), strict=True))
    assert actual == expected, (
        f"{case.id}\n  callers  {'  '.join(f'{c:>5}' for c in CALLERS)}\n"
        f"  expected {'  '.join(f'{expected[c]:>5}' for c in CALLERS)}\n"
        f"  actual   {'  '.join(f'{actual[c]:>5}' for c in CALLERS)}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_private_data(world, case):
    check_row(world, case)


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=lambda c: c.id)
def test_public_feed(world, case):
    check_row(world, case)


MATRIX_AREAS = ("/user/", "/feed/", "/input/", "/health.json", "/describe", "/version",
                "/openapi.json")  # device and schedule routes have their own tests


def test_every_route_of_these_areas_is_in_the_matrix(ctx):
    """A new user, feed or input route needs a row here (one method per path is enough)."""
    from tests.hub.test_openapi import app_routes

    covered = {c.path for c in CASES}
    served = {p.replace("{node}", "n").replace("{name}", "power") for _, p in app_routes(ctx)}
    missing = sorted(p for p in served if p.startswith(MATRIX_AREAS) and p not in covered)
    assert not missing, f"routes without an access-matrix row: {missing}"


def test_session_cannot_write_feeds_by_get(world):
    """A cookie rides along on cross-site links: session writes must be POSTs."""
    res = world.call("sess", "GET", "/feed/post.json", {"id": world.feed, "time": T0,
                                                        "value": 1})
    assert res.status == 403 and "POST" in res.json()["message"]
    assert json.loads(world.call("read", "GET", "/feed/value.json", fid(world)).text) == 1.0


def test_fetch_answers_false_for_feeds_the_caller_cannot_read(world):
    for caller in CALLERS:
        res = world.call(caller, "GET", "/feed/fetch.json", {"ids": str(world.feed)})
        expected = [1.0] if caller in ("read", "write", "sess") else [False]
        assert res.json() == expected, caller
