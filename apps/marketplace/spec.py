"""Checks of a template submission before it is queued (docs/marketplace.md): its template.yaml,
its Dockerfile and its build context (a tar). Each problem is a field error with a stable code, in
the error envelope's details.fields (the error's code: invalid_template_yaml, invalid_dockerfile,
invalid_build_context or build_context_too_large)."""

import re
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml
from django.conf import settings
from django.db.models import Q

from apps.orgs.labels import check_labels
from apps.orgs.network import validate_network
from vibebox import exceptions as errors
from vibebox.units import parse_size

from . import states, template_keys
from .models import Submission, Template, TemplateVersion, VersionState, Visibility
from .semver import semver_ok

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9+#.-]{0,31}$")
DEBIAN_BASES = ("debian:trixie", "debian:bookworm")
YAML_MAX = 128 * 1024
README_MAX = 64 * 1024
TEXT_MAX = 4000
TAGS_MAX = 10
LANGUAGES_MAX = 10
PORTS_MAX = 10
ENV_MAX = 50
CONTEXT_MEMBERS_MAX = 20000
# The dashboard's fixed /marketplace/<x>/ pages (apps/dashboard/marketplace_urls.py).
RESERVED_NAMES = frozenset({"submit", "submissions", "review"})
KNOWN_KEYS = {
    "name", "version", "displayName", "description", "tags", "languages", "icon", "readme", "ports",
    "smoke", "start", "resources", "changelog", "workdir", "env", "user", "network", "nodeLabels",
    # The product spec's (spec 2.1; apps/marketplace/template_keys.py). baseImage is refused below.
    "claude", "autoStart", "preInstalled", "baseImage",
}  # fmt: skip


@dataclass
class Problems:
    fields: dict = field(default_factory=dict)

    def add(self, name: str, code: str, message: str) -> None:
        self.fields.setdefault(name, []).append({"message": message, "code": code})

    def raise_if_any(self, error_class) -> None:
        if self.fields:
            first, [problem, *_] = next(iter(self.fields.items()))
            raise error_class(f"{first}: {problem['message']}", details={"fields": self.fields})


def _text(problems, spec, key, *, required=False, limit=TEXT_MAX) -> str:
    value = spec.get(key)
    if value is None or value == "":
        if required:
            problems.add(key, "required", "This field is required.")
        return ""
    if not isinstance(value, str):
        problems.add(key, "invalid", "Must be a string.")
        return ""
    if len(value.encode()) > limit:
        problems.add(key, "too_long", f"At most {limit} bytes.")
    return value


def _list(problems, spec, key, *, pattern, limit) -> list[str]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.add(key, "invalid", "Must be a list of strings.")
        return []
    if len(value) > limit:
        problems.add(key, "too_many", f"At most {limit}.")
    bad = [item for item in value if not pattern.match(item)]
    if bad:
        problems.add(key, "invalid", f"Not allowed: {', '.join(map(repr, bad[:3]))} (lowercase, ≤ 32 characters).")
    return list(dict.fromkeys(value))


def _name_problems(problems, name: str, org, visibility: str) -> Template | None:
    """The template row of this name, if any; problems when the name is not the org's to use."""
    if name in RESERVED_NAMES:
        problems.add("name", "reserved", f"{name!r} is reserved (a path of the marketplace's pages).")
        return None
    existing = Template.objects.filter(name=name).first()
    builtin_alias = any(name in (t.aliases or []) for t in Template.objects.filter(built_in=True))
    if (existing is not None and existing.built_in) or builtin_alias:
        problems.add("name", "reserved", f"{name!r} is a built-in template's name.")
        return None
    if existing is not None and existing.owner_org_id != org.pk:
        problems.add("name", "taken", f"The template name {name!r} belongs to another organization.")
        return None
    pending_elsewhere = (
        Submission.objects.filter(template_name=name, state__in=list(states.ACTIVE)).exclude(org=org).exists()
    )
    if pending_elsewhere:
        problems.add("name", "taken", f"The template name {name!r} belongs to another organization.")
        return None
    if existing is not None and existing.visibility == Visibility.PUBLIC and visibility == Visibility.PRIVATE:
        problems.add("visibility", "public_template", f"{name!r} is public: its new versions are public too.")
    return existing


def recheck_name(name: str, version: str, *, org, visibility: str) -> None:
    """The name and version checks again (under the name's lock, as the submission is saved)."""
    problems = Problems()
    existing = _name_problems(problems, name, org, visibility)
    if not problems.fields and _version_used(name, version, existing):
        problems.add("version", "exists", f"{name}@{version} was already submitted; versions are immutable.")
    problems.raise_if_any(errors.InvalidTemplateYaml)


def _version_used(name: str, version: str, existing: Template | None) -> bool:
    return (
        existing is not None and TemplateVersion.objects.filter(template=existing, version=version).exists()
    ) or Submission.objects.filter(template_name=name, version=version, state__in=list(states.ACTIVE)).exists()


def _is_root(user: str) -> bool:
    """root by name or by uid 0 (`0`, `00`, `+0`, `root:users`, `0:0`...)."""
    who = user.strip().split(":", 1)[0].strip()
    number = who.lstrip("+-")
    return who.lower() == "root" or (number.isdigit() and int(number) == 0)


def validate_spec(text: str, *, org, visibility: str, context_files: dict[str, bytes] | None = None) -> dict:
    """The accepted template.yaml as a dict (with `readmeText`), or InvalidTemplateYaml."""
    problems = Problems()
    if len(text.encode()) > YAML_MAX:
        problems.add("templateYaml", "too_long", f"At most {YAML_MAX} bytes.")
        problems.raise_if_any(errors.InvalidTemplateYaml)
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.add("templateYaml", "parse_error", f"Not valid YAML: {str(exc).splitlines()[0]}")
        problems.raise_if_any(errors.InvalidTemplateYaml)
    if not isinstance(spec, dict):
        problems.add("templateYaml", "invalid", "Must be a YAML mapping (name: ..., version: ...).")
        problems.raise_if_any(errors.InvalidTemplateYaml)
    for key in sorted(set(map(str, spec)) - KNOWN_KEYS):
        problems.add(key, "unknown", f"Unknown key; known: {', '.join(sorted(KNOWN_KEYS))}.")

    name = spec.get("name")
    existing = None
    if not name:
        problems.add("name", "required", "This field is required.")
    elif not isinstance(name, str) or not NAME_RE.match(name):
        problems.add("name", "invalid", "A lowercase slug (letters, digits, dashes) of at most 64 characters.")
    else:
        existing = _name_problems(problems, name, org, visibility)

    version = spec.get("version")
    if version is None or version == "":
        problems.add("version", "required", "This field is required.")
    elif not semver_ok(version if isinstance(version, str) else None):
        problems.add("version", "invalid", "A semantic version MAJOR.MINOR.PATCH such as 1.2.0 (quote it in YAML).")
    elif isinstance(name, str) and NAME_RE.match(name) and _version_used(name, version, existing):
        problems.add("version", "exists", f"{name}@{version} was already submitted; versions are immutable.")

    _text(problems, spec, "displayName", limit=120)
    _text(problems, spec, "description", required=True, limit=1000)
    _text(problems, spec, "changelog")
    _text(problems, spec, "start")
    if _text(problems, spec, "smoke", required=True) and not spec["smoke"].strip():
        problems.add("smoke", "required", "This field is required.")
    user = spec.get("user")
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)  # `user: 0` in YAML is a number
        spec["user"] = user
    user = _text(problems, spec, "user", limit=32)
    if user and _is_root(user):
        problems.add("user", "root_user", "Templates run as a non-root user (not root, not uid 0).")
    elif user and not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", user):
        problems.add("user", "invalid", "A Unix user name.")
    workdir = _text(problems, spec, "workdir", limit=200)
    if workdir and not workdir.startswith("/"):
        problems.add("workdir", "invalid", "An absolute path.")
    _list(problems, spec, "tags", pattern=TAG_RE, limit=TAGS_MAX)
    _list(problems, spec, "languages", pattern=TAG_RE, limit=LANGUAGES_MAX)

    icon = spec.get("icon")
    if icon not in (None, ""):
        emoji = (
            isinstance(icon, str) and 0 < len(icon) <= 16 and not icon.isascii() and not any(c.isspace() for c in icon)
        )
        url = isinstance(icon, str) and icon.startswith("https://") and len(icon) <= 200 and " " not in icon
        if not (emoji or url):
            problems.add("icon", "invalid", "An emoji or an https:// URL of at most 200 characters.")

    if spec.get("network") is not None:  # the default egress policy of its sandboxes
        try:
            spec["network"] = validate_network(spec["network"], partial=True)
        except errors.ValidationFailed as exc:
            for where, found in (exc.details or {}).get("fields", {}).items():
                problems.add(where, "invalid", found[0]["message"])

    if spec.get("nodeLabels") is not None:  # the node labels its sandboxes' engine must have
        try:
            spec["nodeLabels"] = check_labels(spec["nodeLabels"])
        except errors.ValidationFailed as exc:
            problems.add("nodeLabels", "invalid", exc.message)

    ports = spec.get("ports")
    port_details = []
    if ports is not None:
        if not isinstance(ports, list):
            problems.add("ports", "invalid", "A list of port numbers.")
        elif len(ports) > PORTS_MAX:
            problems.add("ports", "too_many", f"At most {PORTS_MAX}.")
        elif all(isinstance(p, int) and not isinstance(p, bool) for p in ports) and any(
            not 1024 <= p <= 65535 for p in ports
        ):
            problems.add("ports", "out_of_range", "Ports are 1024..65535 (no privileged ports).")
        else:  # numbers, or the product spec's {container, protocol, description}
            try:
                port_details = template_keys.ports(ports)
            except ValueError as exc:
                problems.add("ports", "invalid", str(exc))

    if spec.get("baseImage") is not None:
        problems.add(
            "baseImage",
            "unsupported",
            "A submission's image is built from its Dockerfile: start it FROM vibebox/<template> instead.",
        )
    claude = {}
    try:
        claude = template_keys.claude_config(spec.get("claude"), auto_start=spec.get("autoStart"))
    except ValueError as exc:
        problems.add("autoStart" if str(exc).startswith("autoStart") else "claude", "invalid", str(exc))
    installed = None
    if spec.get("preInstalled") is not None:
        try:
            installed = template_keys.pre_installed(spec["preInstalled"])
        except ValueError as exc:
            problems.add("preInstalled", "invalid", str(exc))

    env = spec.get("env")
    if env is not None and (
        not isinstance(env, dict)
        or len(env) > ENV_MAX
        or not all(isinstance(v, (str, int, float)) for v in env.values())
    ):
        problems.add("env", "invalid", f"A map of at most {ENV_MAX} names to strings.")

    resources = spec.get("resources")
    if resources is not None:
        if not isinstance(resources, dict) or set(resources) - {"cpu", "memory", "disk"}:
            problems.add("resources", "invalid", "A map with cpu, memory and disk.")
        else:
            cpu = resources.get("cpu")
            if cpu is not None and (
                isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not 0 < cpu <= settings.VIBEBOX_MAX_CPU
            ):
                problems.add("resources.cpu", "invalid", f"A number of CPUs, at most {settings.VIBEBOX_MAX_CPU:g}.")
            for key in ("memory", "disk"):
                if resources.get(key) is None:
                    continue
                try:
                    size = parse_size(resources[key])
                except ValueError as exc:
                    problems.add(f"resources.{key}", "invalid", str(exc))
                    continue
                if key == "memory" and size > settings.VIBEBOX_MAX_MEMORY:
                    problems.add("resources.memory", "too_large", f"At most {settings.VIBEBOX_MAX_MEMORY} bytes.")

    readme_text = ""
    readme = spec.get("readme")
    if readme not in (None, ""):
        if not isinstance(readme, str):
            problems.add("readme", "invalid", "A file in the context (README.md) or inline Markdown.")
        elif "\n" not in readme.strip() and readme.strip().lower().endswith((".md", ".markdown")):
            data = (context_files or {}).get(str(PurePosixPath(readme.strip())))
            if data is None:
                problems.add("readme", "not_found", f"{readme.strip()!r} is not in the build context.")
            elif len(data) > README_MAX:
                problems.add("readme", "too_long", f"At most {README_MAX} bytes.")
            else:
                readme_text = data.decode(errors="replace")
        elif len(readme.encode()) > README_MAX:
            problems.add("readme", "too_long", f"At most {README_MAX} bytes.")
        else:
            readme_text = readme
    problems.raise_if_any(errors.InvalidTemplateYaml)
    accepted = dict(spec)
    accepted["readmeText"] = readme_text
    if ports is not None:
        accepted["ports"] = [port["container"] for port in port_details]
        accepted["portDetails"] = port_details
    accepted["claude"] = claude
    accepted.pop("autoStart", None)  # folded into claude.autoStart
    if installed is not None:
        accepted["preInstalled"] = installed
    if resources:
        accepted["resources"] = {
            **({"cpu": float(resources["cpu"])} if resources.get("cpu") is not None else {}),
            **{key: parse_size(resources[key]) for key in ("memory", "disk") if resources.get(key) is not None},
        }
    return accepted


def _visible_template(name: str, org) -> Template | None:
    return (
        Template.objects.filter(name=name, is_active=True)
        .filter(Q(visibility=Visibility.PUBLIC) | Q(owner_org=org))
        .first()
    )


def _visible_version(template: Template, version: str, org) -> TemplateVersion | None:
    """A published, non-yanked version of `template` that `org` may start from (of a public
    template another organization's: a reviewed one)."""
    if not semver_ok(version) or template.owner_org_id is None:
        return None
    rows = TemplateVersion.objects.filter(
        template=template, version=version, state=VersionState.PUBLISHED, yanked=False
    )
    if template.visibility == Visibility.PUBLIC and template.owner_org_id != org.pk:
        rows = rows.filter(reviewed=True)
    return rows.first()


def validate_dockerfile(text: str, *, org) -> list[dict]:
    """The Dockerfile's bases ([{ref, template?, image}]); InvalidDockerfile when it is too large,
    has no FROM, or starts from anything but vibebox/<template the org can see> or a Debian base."""
    problems = Problems()
    if not text.strip():
        problems.add("dockerfile", "required", "The Dockerfile is empty.")
        problems.raise_if_any(errors.InvalidDockerfile)
    if len(text.encode()) > settings.VIBEBOX_TEMPLATE_DOCKERFILE_MAX:
        problems.add("dockerfile", "too_long", f"At most {settings.VIBEBOX_TEMPLATE_DOCKERFILE_MAX} bytes.")
        problems.raise_if_any(errors.InvalidDockerfile)
    stages: set[str] = set()
    bases: list[dict] = []
    joined = re.sub(r"\\\r?\n", " ", text)
    for number, line in enumerate(joined.splitlines(), 1):
        words = line.strip().split()
        if not words or words[0].startswith("#") or words[0].upper() != "FROM":
            continue
        args = [word for word in words[1:] if not word.startswith("--")]
        if any(word.startswith("--platform") for word in words[1:]):
            problems.add("dockerfile", "invalid_from", f"line {number}: --platform is not allowed.")
        if not args:
            problems.add("dockerfile", "invalid_from", f"line {number}: FROM names no image.")
            continue
        ref = args[0]
        if len(args) >= 3 and args[1].lower() == "as":
            stages.add(args[2].lower())
        if ref.lower() in stages and ref.lower() != (args[2].lower() if len(args) >= 3 else None):
            continue
        if ref in DEBIAN_BASES:
            bases.append({"ref": ref, "suite": ref.split(":", 1)[1]})
            continue
        match = re.match(r"^vibebox/([a-z0-9][a-z0-9.-]{0,63})(?::([A-Za-z0-9][A-Za-z0-9.+-]{0,31}))?$", ref)
        template = _visible_template(match.group(1), org) if match else None
        tag = match.group(2) if match else None
        if template is not None and tag not in (None, "latest"):
            pinned = _visible_version(template, tag, org)
            if pinned is None:
                problems.add(
                    "dockerfile",
                    "invalid_from",
                    f"line {number}: FROM {shlex.quote(ref)}: {template.name} has no published version {tag!r} "
                    "your organization can use (yanked versions neither).",
                )
                continue
            bases.append({"ref": ref, "template": template.name, "version": pinned.version, "image": pinned.image})
            continue
        if template is None:
            shown = shlex.quote(ref)
            problems.add(
                "dockerfile",
                "invalid_from",
                f"line {number}: FROM {shown}: use vibebox/<template> (a template your organization can see) "
                f"or {' / '.join(DEBIAN_BASES)}.",
            )
            continue
        bases.append({"ref": ref, "template": template.name, "image": template.image})
    if not bases and not problems.fields:
        problems.add("dockerfile", "no_from", "The Dockerfile has no FROM line.")
    problems.raise_if_any(errors.InvalidDockerfile)
    return bases


def base_template_fields(bases: list[dict]) -> dict:
    """What a template inherits from the template its final stage starts from (user, uid...)."""
    if not bases or "template" not in bases[-1]:
        return {}
    template = Template.objects.filter(name=bases[-1]["template"]).first()
    if template is None:
        return {}
    return {
        "user": template.user,
        "uid": template.uid,
        "gid": template.gid,
        "package_managers": template.package_managers,
        "pre_installed": template.pre_installed,
    }


def check_context(path) -> dict[str, bytes]:
    """Checks a build context tar (its members' names and types, its unpacked size) and returns
    its small Markdown files by name (a readme the template.yaml may name)."""
    limit = settings.VIBEBOX_TEMPLATE_CONTEXT_MAX
    problems = Problems()
    small: dict[str, bytes] = {}
    links: list[tarfile.TarInfo] = []
    symlinks: dict[str, str] = {}  # a symlink member's clean name -> its target
    try:
        with tarfile.open(path, "r:*") as archive:
            total = 0
            for count, member in enumerate(archive, 1):
                if count > CONTEXT_MEMBERS_MAX:
                    problems.add("context", "too_many_files", f"At most {CONTEXT_MEMBERS_MAX} files.")
                    break
                name = member.name
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts or "\\" in name or "\0" in name:
                    problems.add("context", "unsafe_path", f"{name!r}: absolute paths and .. are not allowed.")
                    continue
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    problems.add("context", "unsafe_member", f"{name!r}: only files, directories and links.")
                    continue
                if member.issym() or member.islnk():
                    target = PurePosixPath(member.linkname)
                    resolved = target.parts if member.islnk() else (PurePosixPath(name).parent / target).parts
                    if member.linkname.startswith("/") or "\0" in member.linkname or _escapes(resolved):
                        problems.add("context", "unsafe_link", f"{name!r} links outside the context.")
                        continue
                    links.append(member)
                    if member.issym():
                        symlinks[str(PurePosixPath(name))] = member.linkname
                if member.mode & 0o6000:
                    problems.add("context", "setuid", f"{name!r} is setuid or setgid.")
                total += max(0, member.size)
                if total > limit:
                    raise errors.BuildContextTooLarge(
                        f"The build context unpacks to more than {limit} bytes.", details={"limit": limit}
                    )
                clean = str(PurePosixPath(name))
                if member.isfile() and member.size <= README_MAX and clean.lower().endswith((".md", ".markdown")):
                    small[clean] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        problems.add("context", "not_a_tar", f"Not a tar archive (plain, gzip, bzip2 or xz): {exc}")
    for member in links:
        # The text of a link is not enough: a directory on its way may itself be a link
        # (s -> ../../z, then x -> s/../../etc). Resolve it component by component against
        # the tar's own links, as extracting it would.
        start = () if member.islnk() else PurePosixPath(member.name).parent.parts
        if _resolve(start + PurePosixPath(member.linkname).parts, symlinks) is None:
            problems.add("context", "unsafe_link", f"{member.name!r} links outside the context.")
    problems.raise_if_any(errors.InvalidBuildContext)
    return small


def _escapes(parts) -> bool:
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


LINK_HOPS_MAX = 40


def _resolve(parts, symlinks: dict[str, str], hops: list[int] | None = None, stack: list[str] | None = None):
    """The path `parts` (relative to the context's root) resolves to, following the tar's own
    symlinks on the way (as the kernel would once it is extracted); None when it leaves the
    context (or loops)."""
    hops = hops if hops is not None else [0]
    stack = list(stack or [])
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        here = "/".join([*stack, part])
        target = symlinks.get(here)
        if target is None:
            stack.append(part)
            continue
        hops[0] += 1
        if hops[0] > LINK_HOPS_MAX or target.startswith("/"):
            return None
        stack = _resolve(PurePosixPath(target).parts, symlinks, hops, stack)
        if stack is None:
            return None
    return stack
