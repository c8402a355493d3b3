"""Property tests (Hypothesis) of the headless cydynni.txt parser (cydynni-headless-config):
whatever a user or an attacker puts on the boot partition, the job refuses it with its own
errors and exits — never a traceback (issue 11). Bounded and derandomized for CI."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BOUNDED = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])
KEYS = ["wifi_ssid", "wifi_psk", "wifi_country", "hostname", "ssh_authorized_key",
        "timezone", "server_url", "WIFI_SSID", "unknown"]
values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["Home Net", "'quoted'", '"x', "gb", "GB", "Kitchen-Hub", "-bad-",
                     "Europe/London", "../../etc/passwd", "Etc/UTC", "https://h.example/x",
                     "http://user:pw@h", "https://h:99999/", "ssh-ed25519 AAAA= x",
                     "ssh-rsa !!!", "a" * 64, "0" * 64, "\u202e", "\x00", "\ufeff"]))
lines = st.one_of(st.tuples(st.sampled_from(KEYS), values).map(lambda kv: f"{kv[0]} = {kv[1]}"),
                  st.text(max_size=40))
files = st.one_of(st.lists(lines, max_size=8).map("\n".join).map(str.encode),
                  st.binary(max_size=300),
                  st.lists(lines, max_size=4).map(lambda ls: "\ufeff" + "\r\n".join(ls))
                  .map(lambda t: t.encode("utf-8", "surrogatepass")))


def fake_root(base: Path) -> Path:
    (base / "boot/firmware").mkdir(parents=True)
    for zone in ("Europe/London", "Etc/UTC"):
        path = base / "usr/share/zoneinfo" / zone
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"TZif2" + bytes(40))
    return base


@BOUNDED
@given(raw=files)
def test_any_setup_file_is_applied_or_refused_without_a_traceback(headless: ModuleType, raw):
    with tempfile.TemporaryDirectory() as tmp:
        root = fake_root(Path(tmp))
        (root / "boot/firmware/cydynni.txt").write_bytes(raw)
        assert headless.main(["--root", str(root)]) in (0, 1)
        assert headless.main(["--root", str(root)]) in (0, 1)  # a rerun too


@BOUNDED
@given(text=st.one_of(st.text(max_size=300), st.lists(lines, max_size=10).map("\n".join)))
def test_parse_never_raises_and_validators_raise_only_invalid_value(headless: ModuleType,
                                                                    text):
    parsed = headless.parse(text)
    for key, found in parsed.values.items():
        assert key in headless.KEYS and found
    validators = [headless.valid_ssid, headless.valid_psk, headless.valid_country,
                  headless.valid_hostname, headless.valid_ssh_key, headless.valid_server_url]
    for validate in validators:
        with contextlib.suppress(headless.InvalidValue):
            validate(text)
    with contextlib.suppress(headless.InvalidValue):
        headless.valid_timezone(text, Path("/nonexistent-root"))
