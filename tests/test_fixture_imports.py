"""A session-wide fixture imported into a test module is a second fixture to pytest: that module's
tests get a copy of their own, set up again in the same session. For the git servers that copy
replaced the first one's containers (same names, new credentials) and every clone of the other
modules on that worker failed with `Authentication failed`. Such fixtures are defined once and
reached through tests/conftest.py; this test keeps it so."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = [ROOT / "tests", ROOT / "sdk" / "python" / "tests", ROOT / "sdk" / "typescript" / "test"]
ROOT_CONFTEST = ROOT / "tests" / "conftest.py"


def _session_fixture(node: ast.AST) -> bool:
    """`node` is a function decorated `@...fixture(scope="session")`."""
    return isinstance(node, ast.FunctionDef) and any(
        isinstance(d, ast.Call)
        and ast.unparse(d.func).endswith("fixture")
        and any(k.arg == "scope" and ast.unparse(k.value) == "'session'" for k in d.keywords)
        for d in node.decorator_list
    )


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported_from(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of `from <module> import ...` (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")[: -node.level]
    return ".".join([*package, *([node.module] if node.module else [])])


def _sources() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for tree in TREES for path in tree.rglob("*.py")}


def test_the_scan_finds_the_session_fixtures():
    """The check below looks at something: the git servers are session-wide fixtures."""
    found = {
        (_module_name(path), node.name)
        for path, module in _sources().items()
        for node in module.body
        if _session_fixture(node)
    }
    assert {("tests.gitservers", "git_servers"), ("tests.conftest", "docker_client")} <= found


def test_no_module_but_the_root_conftest_imports_a_session_fixture():
    sources = _sources()
    session_fixtures = {
        (_module_name(path), node.name)
        for path, module in sources.items()
        for node in module.body
        if _session_fixture(node)
    }
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {_imported_from(path, node)}"
        for path, module in sources.items()
        if path != ROOT_CONFTEST
        for node in ast.walk(module)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if (_imported_from(path, node), alias.name) in session_fixtures
    ]
    assert not offenders, offenders
