"""The image's Redis and the test/dev Redis persist the same way (issue 11 #10): nothing on
the card, a save into a tmpfs on SIGTERM that the next start loads, so a service restart
loses nothing. The behaviour itself is tested against devstack's Redis in
tests/hub/test_worker.py (test_a_redis_restart_loses_nothing_and_is_reported)."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.servers import redis_argv

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/redis/templates/redis.conf.j2"
DEFAULTS = REPO / "roles/redis/defaults/main.yml"
DROP_IN = REPO / "overlays/rootfs/usr/lib/systemd/system/redis-server.service.d" \
    / "cydynni-shutdown-dump.conf"


def test_image_redis_saves_on_shutdown_into_a_tmpfs_kept_across_stop_start() -> None:
    template, defaults = TEMPLATE.read_text(), DEFAULTS.read_text()
    assert re.search(r"^redis_dir: /run/redis$", defaults, re.MULTILINE)
    assert re.search(r"^redis_save_on_shutdown: true$", defaults, re.MULTILINE)
    assert re.search(r"^redis_save: \[\]$", defaults, re.MULTILINE)
    assert re.search(r"^redis_appendonly: false$", defaults, re.MULTILINE)
    for line in ("shutdown-on-sigterm save", "shutdown-on-sigint save",
                 "dbfilename dump.rdb", "dir {{ redis_dir }}", 'save ""'):
        assert line in template.splitlines() or f"{line}\n" in template, line
    assert "RuntimeDirectoryPreserve=yes" in DROP_IN.read_text().splitlines()


def test_devstack_redis_is_configured_like_the_image() -> None:
    argv = redis_argv(6379, Path("/tmp/x"))
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert options["--save"] == "" and options["--appendonly"] == "no"
    assert options["--shutdown-on-sigterm"] == "save"
    assert options["--shutdown-on-sigint"] == "save"
    assert options["--dbfilename"] == "dump.rdb"
    assert options["--maxmemory-policy"] == "noeviction"
    defaults = DEFAULTS.read_text()
    assert re.search(r"^redis_maxmemory_policy: noeviction$", defaults, re.MULTILINE)
