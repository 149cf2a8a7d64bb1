"""The code base's one-way layers (DESIGN.md §2), checked on the source: a new forbidden import
fails here, with the file and line that brought it.

- Apps depend one way: orgs ← keys ← sso ← marketplace ← sandboxes ← agents ← billing ← webhooks ←
  monitoring ← dashboard. A lower app never imports a higher one (or a sibling of its tier); it sends a signal that
  the higher app receives (apps/<app>/signals.py, receivers.py).
- Only the engine layer's Docker driver (apps/sandboxes/runtime/docker.py) imports `docker`, only
  its Kubernetes driver (runtime/kubernetes.py) imports `kubernetes`, and
  only the sandboxes app's services reach the driver: no interface (API views, consumers,
  management commands, vibebox/) and no other app.
- A sandbox (or snapshot) lives on one engine, its node's (docs/nodes.md): code that has one at
  hand reaches the driver through `driver_for(it)`, never a bare `get_driver()` (the local engine's).
- No import inside a function hides a loop: project imports sit at the top of the module, but
  in AppConfig.ready() (where receivers connect) and where listed below with the reason.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = [
    {"audit"},
    {"orgs"},
    {"keys"},
    {"sso"},
    {"marketplace"},
    {"sandboxes"},
    {"agents"},
    {"billing"},  # above agents: model spend is read from the gateway's records
    {"webhooks"},  # above agents: an agent run's end is a webhook event
    {"monitoring"},  # metrics, SLOs, the status page: read every app below
    {"graphql_api"},  # the GraphQL API: an interface over every app below (docs/graphql.md)
    {"dashboard"},
]
TIER = {app: number for number, apps in enumerate(TIERS) for app in apps}
DOCKER_DRIVER = "apps/sandboxes/runtime/docker.py"
KUBERNETES_DRIVER = "apps/sandboxes/runtime/kubernetes.py"
# (file, function) -> why its project import sits inside it.
LATE_IMPORTS = {
    ("apps/sandboxes/runtime/__init__.py", "_driver_class"): "only the configured driver is loaded",
    ("apps/sandboxes/services/nodes.py", "node_check"): "reconcile (a node back is reconciled) imports the "
    "services that create and place sandboxes, which may use the nodes' services: no import cycle",
}


def _sources(*roots: str):
    for root in roots or ("apps",):
        for path in sorted((ROOT / root).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), filename=str(path))


def _imported(node: ast.AST, path: str) -> list[str]:
    """Absolute module names an import statement brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            return [node.module or ""]
        package = path.removesuffix(".py").split("/")[: -node.level]
        return [".".join([*package, *([node.module] if node.module else [])])]
    return []


def test_a_lower_app_never_imports_a_higher_one():
    found = []
    for path, tree in _sources():
        app = path.split("/")[1]
        for node in ast.walk(tree):
            for module in _imported(node, path):
                other = module.split(".")[1] if module.startswith("apps.") else ""
                if other != app and app in TIER and other in TIER and TIER[other] >= TIER[app]:
                    found.append(f"{path}:{node.lineno} ({app}) imports {module}")
    assert not found, "\n".join(found)


def test_every_app_has_a_tier():
    apps = {path.name for path in (ROOT / "apps").iterdir() if (path / "apps.py").exists()}
    assert apps <= set(TIER), f"add {sorted(apps - set(TIER))} to TIERS (and to DESIGN.md §2)"


ENGINE_CLIENTS = {"docker": DOCKER_DRIVER, "kubernetes": KUBERNETES_DRIVER}  # client package -> its one importer


def test_only_the_drivers_import_their_engine_clients():
    found = [
        f"{path}:{node.lineno} imports {module}"
        for path, tree in _sources("apps", "vibebox")
        for node in ast.walk(tree)
        for module in _imported(node, path)
        if module.split(".")[0] in ENGINE_CLIENTS and path != ENGINE_CLIENTS[module.split(".")[0]]
    ]
    assert not found, f"only {DOCKER_DRIVER} may import docker, only {KUBERNETES_DRIVER} kubernetes: {found}"


INTERFACES = ("/api/", "/consumers/", "/management/")
DRIVER_GETTERS = ("get_driver", "driver_for")


def test_only_the_sandboxes_services_reach_the_driver():
    found = []
    for path, tree in _sources("apps", "vibebox"):
        inside = path.startswith("apps/sandboxes/") and not any(part in path for part in INTERFACES)
        if inside:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(alias.name in DRIVER_GETTERS for alias in node.names):
                found.append(f"{path}:{node.lineno}")
    assert not found, f"call a service of apps/sandboxes instead of the driver: {found}"


def test_no_project_import_hides_inside_a_function():
    found = []
    for path, tree in _sources():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "ready":
                continue
            for node in ast.walk(function):
                modules = [m for m in _imported(node, path) if m.split(".")[0] in ("apps", "vibebox")]
                if modules and (path, function.name) not in LATE_IMPORTS:
                    found.append(f"{path}:{node.lineno} {function.name}() imports {modules}")
    assert not found, "\n".join(found)


def test_the_listed_late_imports_are_still_there():
    """A late import that went away leaves its exemption behind: drop it from LATE_IMPORTS."""
    present = set()
    for path, tree in _sources():
        for function in ast.walk(tree):
            is_function = isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and any(_imported(node, path) for node in ast.walk(function)):
                present.add((path, function.name))
    assert set(LATE_IMPORTS) <= present, sorted(set(LATE_IMPORTS) - present)


# (file, function) -> why it calls the local engine's driver with a sandbox at hand. (Reconcile
# is per engine: `get_driver(node)` for each node's rows, None for the local engine's.)
LOCAL_ENGINE_CALLS: dict[tuple[str, str], str] = {
    # The local engine's copy of a deleted snapshot's image (its own, or one a create shipped there)
    # goes in the request; the nodes' copies in a task (docs/nodes.md, "Deleting a snapshot").
    ("apps/sandboxes/services/snapshots.py", "snapshot_delete"): "the local engine's copy, on purpose",
}
ON_ENGINE = {"sandbox", "snapshot"}


def _binds(function: ast.AST) -> set[str]:
    """The names a function binds: its parameters and every name assigned anywhere in it (loops,
    `with ... as`, comprehensions; nested functions' too: simple, and errs on the strict side)."""
    arguments = function.args
    params = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    names = {a.arg for a in params if a is not None}
    return names | {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _bare_get_driver_calls():
    """(path, outermost function with a sandbox or snapshot at hand, line) of each `get_driver()`
    called with no node inside such a function (or a function nested in one)."""
    found = []

    def visit(node, path, holder):
        for child in ast.iter_child_nodes(node):
            inner = holder
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):  # (a lambda is inside one)
                if holder is None and _binds(child) & ON_ENGINE:
                    inner = child
            elif (
                holder is not None
                and isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id == "get_driver"
                and not child.args
                and not child.keywords
            ):
                found.append((path, holder.name, child.lineno))
            visit(child, path, inner)

    for path, tree in _sources("apps", "vibebox"):
        visit(tree, path, None)
    return found


def test_a_sandbox_at_hand_is_driven_on_its_own_engine():
    found = [
        f"{path}:{line} {function}()"
        for path, function, line in _bare_get_driver_calls()
        if (path, function) not in LOCAL_ENGINE_CALLS
    ]
    assert not found, "use driver_for(sandbox) (or the snapshot's), not get_driver():\n" + "\n".join(found)


def test_the_listed_local_engine_calls_are_still_there():
    """An exemption whose call went away is dropped from LOCAL_ENGINE_CALLS."""
    present = {(path, function) for path, function, _ in _bare_get_driver_calls()}
    assert set(LOCAL_ENGINE_CALLS) <= present, sorted(set(LOCAL_ENGINE_CALLS) - present)
