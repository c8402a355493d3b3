"""The stage cache (image/stagecache.py): its key changes with every input of the cached
stages and with nothing else, and save/restore/prune keep what later stages read.
No root, no image: the key tests work on a small stage tree in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from image import config, stagecache, stages

BASE_ENV = {"MIRROR": "http://mirror.invalid/debian", "IMG_VERSION": "1.0", "GIT_COMMIT": "abc"}


def load(**overrides: str) -> config.BuildConfig:
    return config.load(environ={**BASE_ENV, **overrides})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo with stages 00 (run.sh), 20 (ansible + CACHE) and 30 (hub), two roles, an overlay."""
    write(tmp_path / "stage-scripts/00-base/00-step/00-run.sh", "echo base\n")
    write(tmp_path / "stage-scripts/20-services/00-provision/00-ansible", "${PLAYBOOK}\n")
    write(tmp_path / "stage-scripts/20-services/CACHE",
          "# inputs\noverlays/rootfs\nroles\n-roles/hub\n-roles/hub.yml\n")
    write(tmp_path / "stage-scripts/30-hub/00-install/00-ansible", "${HUB_PLAYBOOK}\n")
    write(tmp_path / "roles/system.yml", "- hosts: all\n  roles:\n    - base\n")
    write(tmp_path / "roles/hub.yml", "- hosts: all\n  roles:\n    - hub\n")
    write(tmp_path / "roles/base/tasks/main.yml", "- name: base\n")
    write(tmp_path / "roles/hub/tasks/main.yml", "- name: hub\n")
    write(tmp_path / "overlays/rootfs/etc/motd", "hello\n")
    write(tmp_path / "hub/app.py", "print('hub')\n")
    monkeypatch.setattr(stagecache, "REPO_DIR", tmp_path)
    monkeypatch.setattr(stages, "REPO_DIR", tmp_path)
    return tmp_path


def key(repo: Path, **overrides: str) -> str:
    cfg = load(**{"PLAYBOOK": "roles/system.yml", "HUB_PLAYBOOK": "roles/hub.yml", **overrides})
    point = stagecache.cache_point(cfg, sorted((repo / "stage-scripts").iterdir()))
    assert point is not None
    assert point.stage.name == "20-services"
    assert [s.name for s in point.covered] == ["00-base", "20-services"]
    return point.key


def test_the_key_ignores_the_hub_app_its_role_and_late_variables(repo: Path) -> None:
    before = key(repo)
    write(repo / "hub/app.py", "print('changed')\n")
    write(repo / "roles/hub/tasks/main.yml", "- name: changed\n")
    write(repo / "roles/hub.yml", "- hosts: all\n  roles:\n    - hub\n# changed\n")
    write(repo / "stage-scripts/30-hub/00-install/01-run.sh", "echo later\n")
    assert key(repo, IMG_VERSION="2.0", GIT_COMMIT="def", XZ_OPTS="-9", DISK_ID="0x12345678",
               OTA_BUILD_COUNTER="7") == before


@pytest.mark.parametrize("change", [
    "role file", "new role file", "overlay content", "overlay mode", "overlay symlink",
    "stage script", "SKIP file", "playbook", "CACHE file",
])
def test_every_input_of_the_cached_stages_changes_the_key(repo: Path, change: str) -> None:
    before = key(repo)
    motd = repo / "overlays/rootfs/etc/motd"
    if change == "role file":
        write(repo / "roles/base/tasks/main.yml", "- name: base changed\n")
    elif change == "new role file":
        write(repo / "roles/base/templates/x.j2", "x\n")
    elif change == "overlay content":
        write(motd, "hello!\n")
    elif change == "overlay mode":
        motd.chmod(0o600)
    elif change == "overlay symlink":
        (repo / "overlays/rootfs/etc/link").symlink_to("motd")
    elif change == "stage script":
        write(repo / "stage-scripts/00-base/00-step/00-run.sh", "echo base2\n")
    elif change == "SKIP file":
        write(repo / "stage-scripts/00-base/00-step/SKIP", "")
    elif change == "playbook":
        write(repo / "roles/system.yml", "- hosts: all\n  roles:\n    - base\n# changed\n")
    elif change == "CACHE file":
        write(repo / "stage-scripts/20-services/CACHE", "overlays/rootfs\nroles\n")
    assert key(repo) != before


def test_build_conf_values_change_the_key_unless_late(repo: Path) -> None:
    before = key(repo)
    assert key(repo, ANSIBLE_NATIVE_PYTHON="no") != before
    assert key(repo, IMG_NAME="other-hub") != before
    assert key(repo, SUITE="forky") != before  # via the bootstrap key, too


def test_a_playbook_outside_the_listed_paths_is_still_hashed(repo: Path) -> None:
    write(repo / "elsewhere/site.yml", "- hosts: all\n  roles:\n    - base\n")
    before = key(repo, PLAYBOOK="elsewhere/site.yml")
    write(repo / "elsewhere/site.yml", "- hosts: all\n  roles:\n    - base\n# changed\n")
    assert key(repo, PLAYBOOK="elsewhere/site.yml") != before


def test_no_marker_no_cache_and_a_skipped_marked_stage_does_not_count(repo: Path) -> None:
    stage_dirs = sorted((repo / "stage-scripts").iterdir())
    write(repo / "stage-scripts/20-services/SKIP", "")
    assert stagecache.cache_point(load(), stage_dirs) is None


def test_a_missing_listed_path_is_a_config_error(repo: Path) -> None:
    write(repo / "stage-scripts/20-services/CACHE", "no/such/path\n")
    with pytest.raises(stagecache.ConfigError, match="no/such/path"):
        key(repo)


def test_the_repo_cache_leaves_out_exactly_the_hub_app() -> None:
    cfg = load()
    point = stagecache.cache_point(cfg, stages.stage_dirs(cfg))
    assert point is not None and point.stage.name == "20-services"
    files = stagecache.input_files(cfg, point.covered, point.stage / stagecache.MARKER)
    repo = config.REPO_DIR
    hashed = {str(p.relative_to(repo)) for p in files}
    assert not [p for p in hashed if p.startswith(("hub/", "roles/hub/", "stage-scripts/30-"))]
    assert "roles/hub.yml" not in hashed
    for expected in ("roles/system.yml", "roles/base/tasks/main.yml", "ota/bundle.py",
                     "overlays/rootfs", "image/stagecache.py", "image/bootstrap.py",
                     "stage-scripts/20-services/00-provision/00-ansible"):
        assert expected in hashed


def test_save_restore_and_prune(tmp_path: Path) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    write(work / "rootfs/etc/motd", "cached\n")
    os.symlink("motd", work / "rootfs/etc/link")
    write(work / "bootdebs/x.deb", "deb\n")
    cfg = load(WORK_DIR=str(work), CACHE_DIR=str(cache), CACHE_KEEP="1")
    point = stagecache.CachePoint(tmp_path / "20-services", [tmp_path / "20-services"], "k1")
    assert not stagecache.restore(cfg, point)
    stagecache.save(cfg, point)
    write(work / "rootfs/etc/motd", "changed by a later stage\n")
    assert stagecache.restore(cfg, point)
    assert (work / "rootfs/etc/motd").read_text() == "cached\n"
    assert os.readlink(work / "rootfs/etc/link") == "motd"
    assert (work / "bootdebs/x.deb").read_text() == "deb\n"
    other = stagecache.CachePoint(point.stage, point.covered, "k2")
    stagecache.save(cfg, other)
    assert sorted(p.name for p in cache.iterdir()) == ["stage-20-services-k2"]
