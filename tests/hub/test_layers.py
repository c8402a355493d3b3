"""The hub's module graph follows its layer order (hub/README.md, "Layers"):

    base → lib → store → web | worker → entry

A module may import modules of its own layer and of the layers before it; the web and worker
sides are one rank but never import each other. There are no import cycles, and no import
inside a function unless ALLOWED_LOCAL_IMPORTS names it with its reason. Libraries talk to no
server: they import none of the client packages in SERVER_PACKAGES.

The layer of a module is the longest prefix in LAYERS that matches its dotted name, so a new
module lands in its folder's layer; a new top-level module must be added to LAYERS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HUB = Path(__file__).resolve().parents[2] / "hub"

LAYERS: dict[str, str] = {
    # base: settings and the names both sides share
    "hub": "base", "hub.config": "base", "hub.names": "base",
    # lib: pure libraries (parsing, the feed engine, the optimiser, device protocols)
    "hub.scheduler": "lib", "hub.feed.phpfina": "lib", "hub.feed.summary": "lib",
    "hub.feed.common": "lib",
    "hub.input.readings": "lib",
    "hub.device.adapters": "lib", "hub.device.errors": "lib",
    "hub.display.tariff": "lib", "hub.display.periods": "lib", "hub.display.goodtime": "lib",
    # store: MariaDB/Redis/broker-backed models; hub.context wires them
    "hub.errors": "store", "hub.db": "store", "hub.feed": "store", "hub.input": "store",
    "hub.user": "store", "hub.device": "store", "hub.sync": "store", "hub.context": "store",
    "hub.display": "store", "hub.update": "store",
    # the two sides
    "hub.web": "web", "hub.worker": "worker",
    # entry points
    "hub.cli": "entry", "hub.__main__": "entry",
}
RANK = {"base": 0, "lib": 1, "store": 2, "web": 3, "worker": 3, "entry": 4}
SERVER_PACKAGES = {"redis", "pymysql", "paho", "bottle", "cheroot"}

# (module, imported module): why the import waits until the function runs.
ALLOWED_LOCAL_IMPORTS = {
    ("hub.cli", "hub.web.server"): "only `hub web` needs the server",
    ("hub.cli", "hub.web.app"): "`hub worker` and `hub admin` need not load the web side",
    ("hub.cli", "hub.worker.loop"): "`hub web` and `hub admin` need not load the worker",
    ("hub.device.dynsec", "paho.mqtt.client"): "`hub web` uses this module's helpers on every "
    "start but opens a broker admin connection only when a device is paired or removed: "
    "paho (with urllib.request) is ~1 MB of RSS it need not hold until then (issue 12)",
    # numpy (~12 MB RSS) only where a feed is read or written or a schedule planned, so a
    # `hub web` that serves inputs, accounts and schedule forms never loads it (issue 12)
    ("hub.feed.store", "hub.feed.phpfina"): "the feed engine (numpy): on first read or write",
    ("hub.feed.store", "hub.feed.buffer"): "the feed buffer (numpy): on first write or read",
    ("hub.feed.store", "numpy"): "insert_many packs points for the buffer, loaded by then",
    ("hub.scheduler.plan", "hub.scheduler.optimise"): "the optimiser (numpy): when planning",
    ("hub.scheduler.plan", "hub.scheduler.signal"): "signals (numpy): when planning",
    ("hub.device.planning", "hub.scheduler.signal"): "signals (numpy): when one is built",
    ("hub.worker.device.service", "hub.scheduler.signal"): "the empty profile (numpy) when "
    "the stored one can't be read: the worker's MQTT loop runs without numpy",
    ("hub.cli", "hub.sync.run"): "`hub admin sync` only; it reads feeds (numpy)",
    ("hub.worker.sync", "hub.sync.run"): "by the first sync run: a hub without the server "
    "link never loads the sync code and its HTTP client (~0.6 MB of RSS, issue 12)",
    ("hub.context", "hub.display.household"): "the web's screens only, not `hub worker`",
    ("hub.context", "hub.display.screens"): "the web's screens only, not `hub worker`",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(HUB.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(HUB.rglob("*.py"))}


def layer_of(name: str) -> str:
    best = max((prefix for prefix in LAYERS
                if name == prefix or name.startswith(prefix + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{name} has no layer: add it to LAYERS in {__file__}")
    return LAYERS[best]


def _resolve(importer: str, node: ast.ImportFrom) -> list[str]:
    """Dotted names an ImportFrom brings in (a submodule if it is one, else the module)."""
    if node.level:
        package = importer.split(".")
        is_package = MODULES[importer].name == "__init__.py"
        base = package[:len(package) - node.level + (1 if is_package else 0)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    return [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
            for a in node.names]


def imports(name: str) -> list[tuple[str, bool]]:
    """(imported module, inside a function?) for every import statement of module `name`."""
    tree = ast.parse(MODULES[name].read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, local) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.extend((target, local) for target in _resolve(name, child))
            visit(child, inner)

    visit(tree, False)
    return found


def hub_imports(name: str) -> set[str]:
    return {target for target, _ in imports(name) if target.split(".")[0] == "hub"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_layer_order(name):
    mine = layer_of(name)
    for target in sorted(hub_imports(name)):
        theirs = layer_of(target)
        allowed = theirs == mine or RANK[theirs] < RANK[mine]
        assert allowed, (f"{name} ({mine}) imports {target} ({theirs}): a {mine} module may "
                         f"only use its own layer and those below it (hub/README.md)")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer_of(n) in ("base", "lib")))
def test_libraries_talk_to_no_server(name):
    servers = {t for t, _ in imports(name) if t.split(".")[0] in SERVER_PACKAGES}
    assert not servers, f"{name} is a {layer_of(name)} module but imports {sorted(servers)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_inside_a_function_without_a_reason(name):
    local = sorted({t for t, inside in imports(name) if inside
                    and (name, t) not in ALLOWED_LOCAL_IMPORTS})
    assert not local, (f"{name} imports {local} inside a function; import at the top (a cycle "
                       "means a layer is wrong) or add the reason to ALLOWED_LOCAL_IMPORTS")


def test_there_are_no_import_cycles():
    graph = {name: {t for t in hub_imports(name) if t in MODULES and t != name}
             for name in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name):], name]
            raise AssertionError("import cycle: " + " → ".join(cycle))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_the_allowed_local_imports_still_exist():
    stale = [pair for pair in ALLOWED_LOCAL_IMPORTS
             if pair[1] not in {t for t, inside in imports(pair[0]) if inside}]
    assert not stale, f"remove these from ALLOWED_LOCAL_IMPORTS: {stale}"
