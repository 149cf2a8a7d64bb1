"""Package managers: installing registry packages into a sandbox's project, and listing them.

An install is a background command (an Execution, followed like any other: `WS
…/processes/{executionId}`, `GET …/executions/{executionId}`), run as the template's user with
the manager's own CLI. Package specs are validated strictly (a spec is a name and a version
constraint, never an option, path or URL) and reach the command as positional arguments of a
fixed script, never as shell text. The server's extra CA bundle (`VIBEBOX_EXTRA_CA_CERTS`, merged
into the images' system store) and the organization's registry mirror reach the manager through
its environment.

Listing runs the manager's machine-readable listing in the sandbox: its output is the sandbox's,
so it is read with a size cap and a deadline, parsed strictly, and every entry is validated.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from apps.audit.services import record
from apps.marketplace.catalog import extra_ca_bytes
from apps.orgs.mirrors import MIRROR_KEY
from vibebox import exceptions as errors

from .. import processes
from ..models import Sandbox, new_execution_id
from ..runtime import ExecRequest, bounded, driver_for
from . import lifecycle
from .env import command_env, plain, redact, secret_values
from .exec import require_running, resolve_cwd

MAX_PACKAGES = 50
MAX_SPEC = 200
LIST_TIMEOUT = 120  # seconds: a listing's whole deadline
LIST_OUTPUT_LIMIT = 4 * 1024**2  # bytes of a listing's output read at most
MAX_LISTED = 10_000
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # the images' system store (with the extra CA)

# A version constraint: comparison operators, digits, letters, dots, wildcards; no spaces.
_VERSION = r"[A-Za-z0-9.*+!_~^-]+"
_PEP440_OP = r"(?:===|==|~=|!=|<=|>=|<|>)"
SPEC_PATTERNS = {
    # requests, requests==2.32.3, Django>=5,<6, uvicorn[standard]~=0.30
    "pip": rf"[A-Za-z0-9](?:[A-Za-z0-9._-]{{0,98}}[A-Za-z0-9])?(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"
    rf"(?:{_PEP440_OP}{_VERSION}(?:,{_PEP440_OP}{_VERSION})*)?",
    # left-pad, left-pad@1.3.0, @types/node@^20, typescript@next
    "npm": r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.*+_~^<>=-]+)?",
    # serde, serde@1.0.210
    "cargo": r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:@[A-Za-z0-9.*+_~^<>=-]+)?",
    # rake, rake:13.2.1
    "gem": r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(?::[A-Za-z0-9.~<>=!-]+)?",
    # golang.org/x/text, github.com/google/uuid@v1.6.0
    "go": r"[a-z0-9][a-z0-9.-]*(?:/[A-Za-z0-9._~+-]+)+(?:@[A-Za-z0-9._+-]+)?",
    # org.apache.commons:commons-lang3:3.17.0
    "maven": r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z0-9_.+-]+",
}
SPEC_PATTERNS["uv"] = SPEC_PATTERNS["pip"]
SPEC_PATTERNS["bundler"] = SPEC_PATTERNS["gem"]
SPEC_EXAMPLES = {
    "pip": "requests==2.32.3",
    "uv": "requests==2.32.3",
    "npm": "left-pad@1.3.0",
    "cargo": "serde@1.0.210",
    "gem": "rake:13.2.1",
    "bundler": "rake:13.2.1",
    "go": "github.com/google/uuid@v1.6.0",
    "maven": "org.apache.commons:commons-lang3:3.17.0",
}

# The scripts: the specs are their positional arguments ("$@"), the mirror is $VIBEBOX_MIRROR.
# Maven's dependency plugin, by full coordinates: Debian 13's version, on Maven Central too.
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# A settings file that sends every repository to the mirror ($settings, empty without a mirror).
_MAVEN_SETTINGS = (
    'settings=""\n'
    + 'if [ -n "$VIBEBOX_MIRROR" ]; then\n'
    + "  settings=$(mktemp) || exit 1\n"
    + "  printf '<settings><mirrors><mirror><id>vibebox-mirror</id><mirrorOf>*</mirrorOf><url>%s</url>"
    + '</mirror></mirrors></settings>\\n\' "$VIBEBOX_MIRROR" > "$settings" || exit 1\n'
    + "fi\n"
)
_PROJECT_DIR = 'mkdir -p -- "$VIBEBOX_CWD" && cd -- "$VIBEBOX_CWD" || exit 1\n'
INSTALL_SCRIPTS = {
    "pip": 'exec python3 -m pip install --disable-pip-version-check --progress-bar off -- "$@"\n',
    "uv": 'exec uv pip install -- "$@"\n',
    "npm": _PROJECT_DIR
    + "[ -f package.json ] || npm init -y >/dev/null || exit 1\n"
    + 'exec npm install --no-fund --no-audit ${VIBEBOX_DEV:+--save-dev} -- "$@"\n',
    # With a mirror, the project's .cargo/config.toml replaces crates.io by it (later builds need the
    # same source), unless the project has a config of its own: then only this install uses it.
    "cargo": _PROJECT_DIR
    + "[ -f Cargo.toml ] || cargo init --vcs none --name workspace . || exit 1\n"
    + 'set -- ${VIBEBOX_DEV:+--dev} "$@"\n'
    + 'if [ -n "$VIBEBOX_MIRROR" ]; then\n'
    + "  cfg=.cargo/config.toml\n"
    + '  if [ -e "$cfg" ] && ! head -n 1 "$cfg" | grep -q "^# VibeBox registry mirror"; then\n'
    + "    cfg=$(mktemp) || exit 1\n"
    + "  fi\n"
    + "  mkdir -p .cargo && printf '# VibeBox registry mirror (the organization setting)\\n[source.crates-io]\\n"
    + 'replace-with = "vibebox-mirror"\\n[source.vibebox-mirror]\\nregistry = "%s"\\n\' "$VIBEBOX_MIRROR" > "$cfg" '
    + "|| exit 1\n"
    + '  cargo --config "$cfg" add "$@" && exec cargo --config "$cfg" fetch\n'
    + "  exit 1\n"
    + "fi\n"
    + 'cargo add "$@" && exec cargo fetch\n',
    # gem takes no `--` (no spec starts with `-`: validate_specs).
    "gem": 'exec gem install --no-document ${VIBEBOX_MIRROR:+--clear-sources --source "$VIBEBOX_MIRROR"} "$@"\n',
    "bundler": _PROJECT_DIR
    + "[ -f Gemfile ] || bundle init || exit 1\n"
    + 'mirror=""; [ -n "$VIBEBOX_MIRROR" ] && mirror="BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/=$VIBEBOX_MIRROR"\n'
    + 'for spec in "$@"; do\n'
    + '  name=${spec%%:*}; version=""; [ "$name" != "$spec" ] && version=${spec#*:}\n'
    + '  env $mirror bundle add "$name" ${version:+--version "$version"} ${VIBEBOX_DEV:+--group development}'
    + " || exit 1\n"
    + "done\n",
    "go": _PROJECT_DIR + "[ -f go.mod ] || go mod init workspace || exit 1\n" + 'exec go get -- "$@"\n',
    # The dependency plugin is named with its version: no plugin-prefix or version lookup in the
    # mirror's metadata, and the same plugin every time (MAVEN_DEPENDENCY_PLUGIN).
    "maven": _MAVEN_SETTINGS
    + 'for spec in "$@"; do\n'
    + f'  mvn -B -ntp ${{settings:+-s "$settings"}} {MAVEN_DEPENDENCY_PLUGIN}:get "-Dartifact=$spec" || exit 1\n'
    + "done\n",
}
LIST_SCRIPTS = {
    "pip": "exec python3 -m pip list --format=json --disable-pip-version-check\n",
    "uv": "exec uv pip list --format json\n",
    "npm": 'cd -- "$VIBEBOX_CWD" || exit 1\nexec npm ls --json --depth=0\n',
    # The resolved graph (Cargo.lock's versions); a project that cannot resolve offline (never
    # fetched) is listed by its manifest alone: requirements, not versions.
    "cargo": 'cd -- "$VIBEBOX_CWD" || exit 1\n'
    + "cargo metadata --format-version 1 --offline --quiet 2>/dev/null"
    + " || exec cargo metadata --format-version 1 --no-deps --offline\n",
    "gem": "exec gem list --local\n",
    "bundler": 'cd -- "$VIBEBOX_CWD" || exit 1\nexec bundle list\n',
    "go": 'cd -- "$VIBEBOX_CWD" || exit 1\nexec go list -m -json all\n',
    "maven": 'cd -- "$VIBEBOX_CWD" || exit 1\n'
    + "if [ -f pom.xml ]; then out=$(mktemp) || exit 1\n"
    + _MAVEN_SETTINGS
    + f'  mvn -B -q -ntp ${{settings:+-s "$settings"}} {MAVEN_DEPENDENCY_PLUGIN}:list -DoutputFile="$out"'
    + ' -DappendOutput=false >&2 && exec cat "$out"; exit 1\n'
    + "fi\n"
    + 'repo="$HOME/.m2/repository"; [ -d "$repo" ] || exit 0\n'
    + 'cd -- "$repo" && find . -name "*.pom" | head -n 10000\n',
}
# What each manager's install command looks like in the record (and the audit log).
DISPLAY = {
    "pip": "pip install",
    "uv": "uv pip install",
    "npm": "npm install",
    "cargo": "cargo add",
    "gem": "gem install",
    "bundler": "bundle add",
    "go": "go get",
    "maven": "mvn dependency:get",
}
# Mirror: which organization setting serves which manager, and the variables it becomes.
MIRROR_ENV = {
    "pip": ("PIP_INDEX_URL",),
    "uv": ("UV_INDEX_URL", "UV_DEFAULT_INDEX"),
    "npm": ("npm_config_registry",),
    "go": ("GOPROXY",),
}
DEV_MANAGERS = ("npm", "cargo", "bundler")
CA_ENV = (
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
    "BUNDLE_SSL_CA_CERT",
)
MANAGERS = tuple(SPEC_PATTERNS)
# Templates from before `packageManagers`: the managers their languages bring.
BY_LANGUAGE = {
    "python": ("pip",),
    "javascript": ("npm",),
    "typescript": ("npm",),
    "rust": ("cargo",),
    "ruby": ("gem", "bundler"),
    "go": ("go",),
    "java": ("maven",),
}

_NAME_OUT = re.compile(r"^[A-Za-z0-9@_][A-Za-z0-9@/._:+~-]{0,213}$")
_VERSION_OUT = re.compile(r"^[A-Za-z0-9.^~<>=*+!_:, -]{0,128}$")


def supported_managers(sandbox: Sandbox) -> list[str]:
    template = sandbox.template
    declared = getattr(template, "package_managers", None)
    if declared:
        return [name for name in declared if name in MANAGERS]
    languages = list(template.languages or []) + ([template.language] if template.language else [])
    found: list[str] = []
    for language in languages:
        for name in BY_LANGUAGE.get(language, ()):
            if name not in found:
                found.append(name)
    return found


def check_manager(sandbox: Sandbox, manager: str) -> str:
    supported = supported_managers(sandbox)
    if manager not in supported:
        raise errors.UnsupportedPackageManager(
            f"The {sandbox.template.name} template has no {str(manager)[:20]!r} package manager"
            + (f"; it has {', '.join(supported)}." if supported else "."),
            details={"manager": str(manager)[:50], "supported": supported, "template": sandbox.template.name},
        )
    return manager


def validate_specs(manager: str, packages) -> list[str]:
    if not isinstance(packages, list) or not packages:
        raise errors.ValidationFailed("packages is a non-empty list of package specs.")
    if len(packages) > MAX_PACKAGES:
        raise errors.ValidationFailed(f"At most {MAX_PACKAGES} packages at once.", details={"max": MAX_PACKAGES})
    pattern = re.compile(SPEC_PATTERNS[manager])
    for index, spec in enumerate(packages):
        reason = None
        if not isinstance(spec, str) or not spec:
            reason = "a package spec is a non-empty string"
        elif spec.startswith("-"):
            reason = "options are not accepted, only package specs"
        elif len(spec) > MAX_SPEC:
            reason = f"a package spec is at most {MAX_SPEC} characters"
        elif not pattern.fullmatch(spec):
            reason = f"not a {manager} package spec (a name and an optional version, like {SPEC_EXAMPLES[manager]!r})"
        if reason:
            raise errors.InvalidPackageSpec(
                f"packages[{index}]: {reason}.",
                details={"index": index, "spec": str(spec)[:MAX_SPEC], "manager": manager, "reason": reason},
            )
    return list(packages)


# ---- the organization's mirrors (apps/orgs/mirrors.py) ----


def mirror_for(sandbox: Sandbox, manager: str) -> str:
    org = sandbox.org
    mirrors = (getattr(org, "registry_mirrors", None) or {}) if org is not None else {}
    url = mirrors.get(manager) or mirrors.get(MIRROR_KEY.get(manager, manager)) or ""
    if manager == "cargo" and url and not url.startswith("sparse+"):
        url = "sparse+" + url
    return url


def manager_env(sandbox: Sandbox, manager: str, *, cwd: str, dev: bool = False) -> dict[str, str]:
    """The variables an install or listing runs with: the project directory, the mirror and the
    CA bundle (a variable the sandbox sets itself wins over ours)."""
    env = {"VIBEBOX_CWD": cwd}
    if dev:
        env["VIBEBOX_DEV"] = "1"
    mirror = mirror_for(sandbox, manager)
    if mirror:
        env["VIBEBOX_MIRROR"] = mirror
        for name in MIRROR_ENV.get(manager, ()):
            env[name] = mirror
    if extra_ca_bytes():
        own = plain(sandbox)
        env.update({name: SYSTEM_CA for name in CA_ENV if name not in own})
    return env


# ---- install ----


def _project_dir_ensure(sandbox: Sandbox, workdir: str) -> None:
    """The project directory may not exist yet (the install makes it): made first, as the
    template's user, so that the install starts in it."""
    request = ExecRequest(
        argv=("/bin/sh", "-c", 'mkdir -p -- "$VIBEBOX_CWD"', "vibebox-install"),
        exec_id=new_execution_id(),
        env=command_env(sandbox, {"VIBEBOX_CWD": workdir}),
        user=sandbox.template.user,
        timeout=30,
        output_limit=4096,
    )
    with lifecycle.container_running(sandbox):
        result = driver_for(sandbox).exec(sandbox.container_name, request)
    if result.exit_code != 0 or result.timed_out:
        reason = redact(result.stderr[-500:].decode("utf-8", errors="replace").strip(), secret_values(sandbox))
        raise errors.InvalidPath(
            f"cwd {workdir} is not a directory the sandbox user can make" + (f": {reason}" if reason else "."),
            details={"cwd": workdir},
        )


@dataclass
class Install:
    execution_id: str
    manager: str
    packages: list[str]
    cwd: str
    command: str
    mirror: bool
    status: str = "running"


def packages_install_from(*, sandbox: Sandbox, api_key, data: dict) -> Install:
    """An install from the install body's validated fields (api.package_views.PackageInstallSerializer):
    REST's and GraphQL's."""
    return packages_install(
        sandbox=sandbox,
        manager=data["manager"],
        packages=data["packages"],
        dev=data["dev"],
        cwd=data.get("cwd"),
        timeout=data.get("timeout"),
        auto_resume=data["autoResume"],
        api_key=api_key,
    )


def packages_install(
    *,
    sandbox: Sandbox,
    manager: str,
    packages,
    dev: bool = False,
    cwd: str | None = None,
    timeout: float | None = None,
    auto_resume: bool = False,
    api_key=None,
) -> Install:
    """Starts the install as a background command and answers at once with its execution id."""
    check_manager(sandbox, manager)
    specs = validate_specs(manager, packages)
    if dev and manager not in DEV_MANAGERS:
        raise errors.ValidationFailed(
            f"dev is for {', '.join(DEV_MANAGERS)}; {manager} has no development dependencies.",
            details={"manager": manager},
        )
    require_running(sandbox, auto_resume=auto_resume)
    workdir = resolve_cwd(sandbox, cwd)
    env = manager_env(sandbox, manager, cwd=workdir, dev=dev)
    preview = " ".join([DISPLAY[manager], *(["--dev"] if dev else []), *(shlex.quote(s) for s in specs)])
    _project_dir_ensure(sandbox, workdir)
    process = processes.process_start(
        sandbox=sandbox,
        command=["/bin/sh", "-c", INSTALL_SCRIPTS[manager], "vibebox-install", *specs],
        cwd=workdir,  # what the record shows: the install runs there
        env=env,
        timeout=timeout,
        api_key=api_key,
        preview=preview,
    )
    record(
        "packages.installed",
        target=sandbox,
        changes={
            "execution": process.id,
            "manager": manager,
            "packages": specs,
            "dev": dev,
            "cwd": workdir,
            "mirror": bool(env.get("VIBEBOX_MIRROR")),
        },
    )
    return Install(
        execution_id=process.id,
        manager=manager,
        packages=specs,
        cwd=workdir,
        command=preview,
        mirror=bool(env.get("VIBEBOX_MIRROR")),
    )


# ---- list ----


def _valid(name, version) -> bool:
    return (
        isinstance(name, str)
        and isinstance(version, str)
        and bool(_NAME_OUT.match(name))
        and bool(_VERSION_OUT.match(version))
    )


def _json(stdout: bytes):
    try:
        return bounded.loads(stdout, max_bytes=LIST_OUTPUT_LIMIT)
    except ValueError:
        raise errors.PackageListFailed("The package manager's listing is not the JSON expected.") from None


def _json_stream(stdout: bytes) -> list:
    """`go list -m -json` prints one object after another."""
    text = stdout.decode("utf-8", errors="replace")
    decoder, index, items = json.JSONDecoder(), 0, []
    while index < len(text) and len(items) <= MAX_LISTED:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        try:
            _, end = decoder.raw_decode(text, index)
        except ValueError:
            raise errors.PackageListFailed("The package manager's listing is not the JSON expected.") from None
        items.append(_json(text[index:end].encode()))  # each one through the nesting and constant checks
        index = end
    return items


def _cargo_pairs(data) -> list[tuple]:
    """`cargo metadata`: the workspace members' direct dependencies with the versions resolved
    (`resolve`, from Cargo.lock); without a resolve (`--no-deps`), their requirements."""
    if not isinstance(data, dict):
        return []
    packages = data.get("packages") if isinstance(data.get("packages"), list) else []
    resolve = data.get("resolve")
    if not isinstance(resolve, dict):
        pairs = []
        for package in packages[:MAX_LISTED]:
            deps = package.get("dependencies") if isinstance(package, dict) else None
            for dep in (deps if isinstance(deps, list) else [])[:MAX_LISTED]:
                if isinstance(dep, dict):
                    pairs.append((dep.get("name"), dep.get("req")))
        return pairs
    by_id = {}
    for package in packages[: MAX_LISTED * 10]:
        if isinstance(package, dict) and isinstance(package.get("id"), str):
            by_id[package["id"]] = (package.get("name"), package.get("version"))
    members = data.get("workspace_members")
    members = {m for m in members[:MAX_LISTED] if isinstance(m, str)} if isinstance(members, list) else set()
    if isinstance(resolve.get("root"), str):
        members.add(resolve["root"])
    nodes = resolve.get("nodes") if isinstance(resolve.get("nodes"), list) else []
    pairs = []
    for node in nodes[: MAX_LISTED * 10]:
        if not isinstance(node, dict) or node.get("id") not in members:
            continue
        deps = node.get("deps") if isinstance(node.get("deps"), list) else []
        for dep in deps[:MAX_LISTED]:
            pkg = dep.get("pkg") if isinstance(dep, dict) else None
            if isinstance(pkg, str) and pkg in by_id and pkg not in members:
                pairs.append(by_id[pkg])
    return pairs


def _pairs(manager: str, stdout: bytes) -> list[tuple]:
    if manager in ("pip", "uv"):
        data = _json(stdout)
        if not isinstance(data, list):
            raise errors.PackageListFailed("The listing is not a list.")
        return [(item.get("name"), item.get("version")) for item in data if isinstance(item, dict)]
    if manager == "npm":
        data = _json(stdout) if stdout.strip() else {}
        deps = data.get("dependencies") if isinstance(data, dict) else None
        if not isinstance(deps, dict):
            return []
        return [
            (name, (info or {}).get("version", "") if isinstance(info, dict) else None) for name, info in deps.items()
        ]
    if manager == "cargo":
        return _cargo_pairs(_json(stdout))
    if manager == "go":
        return [
            (item.get("Path"), item.get("Version"))
            for item in _json_stream(stdout)
            if isinstance(item, dict) and not item.get("Main")
        ]
    text = stdout.decode("utf-8", errors="replace")
    pairs = []
    if manager == "gem":  # "rake (13.2.1, default: 13.1.0)"
        for line in text.splitlines()[:MAX_LISTED]:
            match = re.fullmatch(r"([A-Za-z0-9._-]+) \(([^()]*)\)", line.strip())
            if match:
                first = match.group(2).split(",")[0].strip().removeprefix("default: ")
                pairs.append((match.group(1), first))
    elif manager == "bundler":  # "  * rake (13.2.1)"
        for line in text.splitlines()[:MAX_LISTED]:
            match = re.fullmatch(r"\* ([A-Za-z0-9._-]+) \(([^()\s]+)\)", line.strip())
            if match:
                pairs.append((match.group(1), match.group(2)))
    elif manager == "maven":
        for line in text.splitlines()[:MAX_LISTED]:
            line = line.strip()
            # dependency:list: "group:artifact:jar:version:scope" (a module suffix " -- module x" may follow)
            match = re.fullmatch(r"([\w.-]+):([\w.-]+):[\w.-]+(?::[\w.-]+)?:([\w.+-]+):(\w+)(?: .*)?", line)
            if match:
                pairs.append((f"{match.group(1)}:{match.group(2)}", match.group(3)))
                continue
            # the local repository: "./org/apache/commons/commons-lang3/3.17.0/commons-lang3-3.17.0.pom"
            parts = line.removeprefix("./").split("/")
            if len(parts) >= 4 and line.endswith(".pom"):
                pairs.append((f"{'.'.join(parts[:-3])}:{parts[-3]}", parts[-2]))
    return pairs


@dataclass
class Listing:
    manager: str
    cwd: str
    packages: list[dict]
    skipped: int = 0
    truncated: bool = False


def packages_list(*, sandbox: Sandbox, manager: str, cwd: str | None = None) -> Listing:
    check_manager(sandbox, manager)
    require_running(sandbox)
    workdir = resolve_cwd(sandbox, cwd)
    request = ExecRequest(
        argv=("/bin/sh", "-c", LIST_SCRIPTS[manager], "vibebox-list"),
        exec_id=new_execution_id(),
        env=command_env(sandbox, manager_env(sandbox, manager, cwd=workdir)),
        user=sandbox.template.user,
        timeout=LIST_TIMEOUT,
        output_limit=LIST_OUTPUT_LIMIT,
    )
    with lifecycle.container_running(sandbox):
        result = driver_for(sandbox).exec(sandbox.container_name, request)
    ok_codes = (0, 1) if manager == "npm" else (0,)  # npm ls exits 1 on extraneous or missing ones
    if result.timed_out or result.truncated or result.exit_code not in ok_codes:
        stderr = redact(result.stderr[-2000:].decode("utf-8", errors="replace"), secret_values(sandbox))
        reason = "timeout" if result.timed_out else "too_large" if result.truncated else "exit"
        raise errors.PackageListFailed(
            f"{DISPLAY[manager].split()[0]} could not list the packages"
            + (f" (exit {result.exit_code})." if reason == "exit" else f" ({reason.replace('_', ' ')})."),
            details={"manager": manager, "reason": reason, "exitCode": result.exit_code, "stderr": stderr[-1000:]},
        )
    pairs = _pairs(manager, result.stdout)
    # A local Maven repository holds several versions of an artifact side by side: each is listed.
    by_version = manager == "maven"
    seen: dict[tuple[str, str], None] = {}
    names: set[str] = set()
    skipped = 0
    for name, version in pairs:
        if version is None:
            version = ""
        if not _valid(name, version):
            skipped += 1
            continue
        if by_version or name not in names:
            seen.setdefault((name, version))
            names.add(name)
    ordered = sorted(seen, key=lambda pair: (pair[0].lower(), pair[1]))
    listed = [{"name": name, "version": version} for name, version in ordered]
    return Listing(
        manager=manager,
        cwd=workdir,
        packages=listed[:MAX_LISTED],
        skipped=skipped,
        truncated=len(listed) > MAX_LISTED,
    )
