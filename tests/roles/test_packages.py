"""One list per package. A role's packages are its `<role>_packages` default and nothing
else: Vagrant installs them from there, and the image build's bootstrap reads the same
lists (image/stages.py) next to the stage-scripts NN-packages files, which hold only what no
role owns. These checks fail when a package is named in two of those places, when a role
grows a second package list, or when the build's reader and YAML read a list differently."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from image import config, stages
from image.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
SITE = ROLES / "site.yml"
INSTALL_MODULES = {"ansible.builtin.apt", "apt", "ansible.builtin.package", "package",
                   "ansible.builtin.dpkg_selections", "community.general.apt_rpm"}


def role_names() -> list[str]:
    return sorted(p.name for p in ROLES.iterdir() if (p / "tasks/main.yml").is_file())


def yaml_role_packages(role: str) -> list[str]:
    defaults = ROLES / role / "defaults/main.yml"
    data = yaml.safe_load(defaults.read_text()) if defaults.is_file() else {}
    return list((data or {}).get(f"{role}_packages", []))


def stage_package_files() -> list[Path]:
    return sorted((REPO / "stage-scripts").glob("*/*/[0-9][0-9]-packages"))


def tasks_in(items: object) -> Iterator[dict]:
    """Every task of a tasks file or play, blocks included."""
    if isinstance(items, list):
        for item in items:
            yield from tasks_in(item)
    elif isinstance(items, dict):
        yield items
        for key in ("block", "rescue", "always", "pre_tasks", "tasks", "post_tasks", "handlers"):
            yield from tasks_in(items.get(key))


@pytest.mark.parametrize("role", role_names())
def test_the_build_reads_each_role_list_as_yaml_does(role: str) -> None:
    assert stages.role_packages(ROLES / role) == yaml_role_packages(role)


def yaml_playbook_roles(playbook: Path) -> list[str]:
    """Roles of every play in order, following import_playbook as Ansible does."""
    names = []
    for play in yaml.safe_load(playbook.read_text()):
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            names.extend(yaml_playbook_roles(playbook.parent / imported))
        names.extend(r if isinstance(r, str) else r["role"] for r in play.get("roles", []))
    return names


def test_the_build_reads_the_roles_site_yml_applies() -> None:
    names = yaml_playbook_roles(SITE)
    assert stages.playbook_roles(SITE) == names
    assert sorted(names) == role_names(), "a role in roles/ that site.yml does not apply"


def test_no_package_is_listed_by_a_stage_and_a_role_or_by_two_stages() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for path in stage_package_files():
        for name in stages.read_packages(path):
            places[name].append(str(path.relative_to(REPO)))
    stage_listed = set(places)
    for role in role_names():
        for name in yaml_role_packages(role):
            if name in stage_listed:
                places[name].append(f"roles/{role} ({role}_packages)")
    twice = {name: where for name, where in places.items() if len(where) > 1}
    assert twice == {}, "listed in more than one place (keep it in the role that uses it)"


@pytest.mark.parametrize("path", sorted(ROLES.rglob("*.yml")),
                         ids=lambda p: str(p.relative_to(ROLES)))
def test_the_only_package_list_of_a_role_is_its_default(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    role = path.relative_to(ROLES).parts[0]
    if path == ROLES / role / "defaults/main.yml":
        extra = [k for k in data if k.endswith("_packages") and k != f"{role}_packages"]
        assert extra == [], f"a second package list in {role}'s defaults"
        return
    if isinstance(data, dict):  # vars/*.yml
        assert [k for k in data if k.endswith("_packages")] == [], "package list in vars/"
    for task in tasks_in(data):
        defined = {**(task.get("vars") or {}), **(task.get("ansible.builtin.set_fact") or {})}
        lists = [k for k in defined if k.endswith("_packages")]
        assert lists == [], f"package list defined outside defaults/main.yml: {lists}"
        for module in INSTALL_MODULES & task.keys():
            assert task[module]["name"] == f"{{{{ {role}_packages }}}}", (
                f"{task.get('name')}: installs something other than {role}_packages")


def test_the_bootstrap_installs_every_role_list() -> None:
    cfg = config.load(environ={"MIRROR": "http://mirror.invalid/debian", "GIT_COMMIT": "t"})
    bootstrap = set(stages.all_packages(cfg))
    for role in role_names():
        missing = set(yaml_role_packages(role)) - bootstrap
        assert missing == set(), f"{role}_packages not installed by the bootstrap: {missing}"


@pytest.mark.parametrize("text", [
    "---\nx_packages: [a, b]\n",
    "---\nx_packages: \"{{ other }}\"\n",
    "---\nx_packages:\nx_other: 1\n",
])
def test_the_build_refuses_a_list_it_cannot_read(tmp_path: Path, text: str) -> None:
    role = tmp_path / "x"
    (role / "defaults").mkdir(parents=True)
    (role / "defaults/main.yml").write_text(text)
    with pytest.raises(ConfigError, match="x_packages"):
        stages.role_packages(role)


def test_the_build_reads_comments_and_empty_lists(tmp_path: Path) -> None:
    role = tmp_path / "x"
    (role / "defaults").mkdir(parents=True)
    (role / "defaults/main.yml").write_text(
        "---\n# x_packages:\n#   - no\nx_packages:\n  # why\n  - a  # note\n\n  - b\n"
        "x_units:\n  - c\n")
    assert stages.role_packages(role) == ["a", "b"] == yaml.safe_load(
        (role / "defaults/main.yml").read_text())["x_packages"]
    (role / "defaults/main.yml").write_text("---\nx_packages: []\n")
    assert stages.role_packages(role) == []
