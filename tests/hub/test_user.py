"""Users over HTTP against real MariaDB and Redis: registration, login, keys, resets."""

from __future__ import annotations

import pytest

from tests.conftest import SETUP_CODE, make_account


def test_first_user_is_admin_and_registration_then_closes(client, new_client):
    first = client.post("/user/register.json", {"username": "alice", "password": "pw-alice-1",
                                                "setup_code": SETUP_CODE})
    assert first.status == 200
    assert first.json()["admin"] is True
    assert len(first.json()["apikey_write"]) == 32
    second = new_client().post("/user/register.json", {"username": "bob", "password": "pw-bob-12"})
    assert second.status == 403
    assert "administrator" in second.json()["message"]


def test_admin_registers_second_user_who_is_not_admin(admin, new_client):
    bob = make_account(new_client, "bob", by=admin.client)
    info = bob.client.get("/user/get.json").json()
    assert info["username"] == "bob" and info["admin"] is False


def test_auth_json_answers_keys_like_emoncms(admin, new_client):
    res = new_client().post("/user/auth.json", {"username": "admin", "password": admin.password})
    body = res.json()
    assert res.status == 200 and body["success"] is True
    assert body["apikey_write"] == admin.apikey_write
    assert body["apikey_read"] == admin.apikey_read
    assert body["userid"] == admin.userid


def test_wrong_password_then_lockout(admin, new_client, hub_config):
    c = new_client()
    for _ in range(hub_config.login_attempts):
        res = c.post("/user/login.json", {"username": "admin", "password": "wrong-password"})
        assert res.status == 401
    locked = c.post("/user/login.json", {"username": "admin", "password": admin.password})
    assert locked.status == 429
    assert int(locked.headers["retry-after"]) > 0


@pytest.mark.parametrize("path", ["/user/get.json", "/user/newapikeywrite.json",
                                  "/user/changepassword.json"])
def test_apikeys_cannot_change_account_settings(admin, client, path):
    method = client.get if path.endswith("get.json") else client.post
    res = method(path, params={"apikey": admin.apikey_write})
    assert res.status == 403
    assert "logged-in session" in res.json()["message"]


def test_session_json_identifies_key_without_leaking_it(admin, client):
    read = client.get("/user/session.json", {"apikey": admin.apikey_read}).json()
    write = client.get("/user/session.json",
                       headers={"Authorization": f"Bearer {admin.apikey_write}"}).json()
    assert read == {"userid": admin.userid, "type": "read", "admin": False}
    assert write["type"] == "write"
    assert admin.apikey_read not in str(read)


def test_invalid_apikey_is_401(client):
    res = client.get("/user/session.json", {"apikey": "0" * 32})
    assert res.status == 401
    assert res.json() == {"success": False, "message": "apikey is not valid"}


def test_change_password_logs_out_other_sessions(admin, new_client):
    other = new_client()
    other.post("/user/login.json", {"username": "admin", "password": admin.password})
    assert other.get("/user/get.json").status == 200
    res = admin.client.post("/user/changepassword.json",
                            {"old": admin.password, "new": "new-password-1"})
    assert res.status == 200
    assert other.get("/user/get.json").status == 401
    assert admin.client.get("/user/get.json").status == 200  # the caller stays logged in
    assert new_client().post("/user/login.json", {"username": "admin",
                                                   "password": "new-password-1"}).status == 200


def test_new_write_key_revokes_old(admin, client):
    new = admin.client.post("/user/newapikeywrite.json").json()["apikey"]
    assert new != admin.apikey_write
    assert client.get("/user/session.json", {"apikey": admin.apikey_write}).status == 401
    assert client.get("/user/session.json", {"apikey": new}).json()["type"] == "write"


def test_admin_issued_reset_token_is_single_use(admin, new_client):
    bob = make_account(new_client, "bob", by=admin.client)
    token = admin.client.post("/user/resettoken.json", {"userid": bob.userid}).json()["token"]
    anon = new_client()
    reset = anon.post("/user/resetpassword.json", {"token": token, "new": "bobs-new-pw"})
    assert reset.status == 200
    again = anon.post("/user/resetpassword.json", {"token": token, "new": "another-pw-1"})
    assert again.status == 400
    login = anon.post("/user/login.json", {"username": "bob", "password": "bobs-new-pw"})
    assert login.status == 200


def test_non_admin_cannot_issue_reset(admin, new_client):
    bob = make_account(new_client, "bob", by=admin.client)
    res = bob.client.post("/user/resettoken.json", {"userid": admin.userid})
    assert res.status == 403


@pytest.mark.parametrize("username,password,status", [
    ("a", "long-enough", 400), ("bad name!", "long-enough", 400), ("carol", "short", 400),
])
def test_register_validates(client, username, password, status):
    res = client.post("/user/register.json", {"username": username, "password": password,
                                              "setup_code": SETUP_CODE})
    assert res.status == status
    assert res.json()["success"] is False


def test_passwords_are_stored_with_scrypt(admin, ctx):
    with ctx.db.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE id = %s", (admin.userid,))
        stored = cur.fetchone()["password_hash"]
    assert stored.startswith("scrypt$16384$8$1$")
    assert admin.password not in stored


def test_oversized_body_is_refused(client, hub_config):
    # Claim an oversized body but send a small one: the server must refuse on the header
    # alone, before reading (a real oversized upload races the early close).
    res = client.post("/user/login.json", b"username=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "Content-Length": str(hub_config.max_body_bytes + 1)})
    assert res.status == 413


def test_unknown_route_is_json_404(client):
    res = client.get("/nope.json")
    assert res.status == 404 and res.json()["success"] is False


def test_health_reports_missing_worker(client):
    res = client.get("/health.json")
    assert res.status == 503
    body = res.json()
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["redis"]["ok"] is True
    assert body["components"]["worker"]["ok"] is False
