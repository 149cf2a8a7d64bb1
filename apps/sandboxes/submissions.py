"""The marketplace's validation pipeline: a submitted template version is built under limits,
checked against the policy, and smoke-tested in a real sandbox (docs/marketplace.md, "Validation
pipeline"). The Celery task `validate_submission` (tasks.py) runs `submission_validate`.

Progress is reported only through the marketplace's services (apps/marketplace/submissions.py):
submission_start -> submission_log_append* -> submission_progress(smoke_testing) ->
submission_candidate -> submission_passed, or submission_fail(step, message) with the step that
failed: `upload` (the context tar), `build` (the Dockerfile refused, or its build failed, ran out
of time or grew too large), `policy` (the built image breaks a rule), `smoke` (the sandbox made
from it did not pass its smoke test).

Steps:
1. Context: the submission's tar is extracted with no absolute names, no "..", no links or
   devices, at most VIBEBOX_TEMPLATE_CONTEXT_FILES entries and VIBEBOX_TEMPLATE_CONTEXT_MAX bytes;
   the Dockerfile is written over it. Its FROM lines may name `vibebox/<template>[:<version>]` (a
   built-in or published template the submitter's organization can see: rewritten to that
   template's exact image), `debian:trixie` or `debian:bookworm` (our base images), or an earlier
   stage; nothing is ever pulled. ADD from a URL (the engine would fetch it from the host's
   network), ONBUILD, and COPY --from= an image are refused.
2. Build (runtime BuildLimits): memory, CPUs, a network of its own with the sandbox firewall, no
   engine socket, VIBEBOX_TEMPLATE_BUILD_TIMEOUT, a watchdog for VIBEBOX_TEMPLATE_MAX_SIZE. Its
   log goes to the submission every LOG_FLUSH_SECONDS.
3. Policy (the image's configuration, and its files read from its exported filesystem).
4. Smoke test: a sandbox of the candidate version runs the smoke command; with `start`, that runs
   in the background and every declared port must answer. The sandbox is always destroyed.
"""

import base64
import binascii
import collections
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.utils import timezone
from redis.exceptions import RedisError

from apps.marketplace import catalog
from apps.marketplace.models import FailedStep, Submission, SubmissionState, TemplateVersion
from apps.marketplace.selectors import template_find, version_resolve
from apps.marketplace.services import (
    submission_candidate,
    submission_fail,
    submission_log_append,
    submission_passed,
    submission_progress,
    submission_requeue,
    submission_start,
)
from apps.marketplace.states import RUNNING as RUNNING_STATES  # queued, building, smoke_testing
from vibebox import exceptions as errors
from vibebox import redisdb
from vibebox.units import format_size

from . import processes
from .runtime import driver_for, get_driver
from .runtime.base import BUILD_OWNER_LABEL, BuildFailed, BuildLimits
from .services.create import sandbox_create, sandbox_destroy
from .services.exec import sandbox_exec
from .specs import base_labels

logger = logging.getLogger(__name__)

LOG_FLUSH_SECONDS = 0.5
LOG_BUFFER_MAX = 1024 * 1024  # the log text held between two flushes (characters)
SMOKE_OUTPUT_MAX = 64 * 1024
PORT_RETRY_SECONDS = 0.5
SETID_CACHE_SECONDS = 7 * 24 * 3600  # an image's setuid list, by image id (ids never change content)
BUILD_NETWORK_PREFIX = "vibebox-bld-"  # + 7 hex digits: the bridge is "vbx-bld-<7 hex>" (15 chars)
DEBIAN_SUITES = catalog.SUITES
OWN_LABEL_PREFIX = "vibebox."
EXTRA_CA_NAME = "extra-ca.crt"  # the server's extra CA bundle, in every build context
OCI_LABEL_PREFIX = "org.opencontainers."
FROM_HELP = (
    "FROM may name vibebox/<template> or vibebox/<template>:<version> (a built-in template or a "
    "published one your organization can see), debian:trixie or debian:bookworm, or an earlier stage "
    "of this Dockerfile; nothing is pulled from a registry."
)


class StepFailed(Exception):
    """A step refused the submission: `step` (FailedStep), `message` for the submitter, `output`
    what the smoke test printed (kept on the submission)."""

    def __init__(self, step: str, message: str, output: str = ""):
        super().__init__(message)
        self.step = step
        self.message = message[:1000]
        self.output = output


# ---- 1. the build context -------------------------------------------------------------------


def context_max() -> int:
    return int(getattr(settings, "VIBEBOX_TEMPLATE_CONTEXT_MAX", 50 * 1024**2))


def _safe_name(name: str) -> PurePosixPath | None:
    """The member's relative path, or None when it may not be extracted (absolute, "..", NUL)."""
    if not name or "\0" in name or name.startswith("/") or "\\" in name:
        return None
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        return None
    return PurePosixPath(*parts)


def extract_context(path: str, root: Path) -> int:
    """Extracts the submission's tar (plain or compressed) into `root` (which exists and is
    empty); answers the number of entries. Refuses (StepFailed upload) unsafe names (absolute,
    ".."), devices and FIFOs, links that point outside the context (a symlink is made only with a
    relative target that stays inside; a hard link becomes a copy of an earlier file), writing
    through a link, more than VIBEBOX_TEMPLATE_CONTEXT_FILES entries or VIBEBOX_TEMPLATE_CONTEXT_MAX
    bytes. No file keeps a setuid, setgid or sticky bit."""
    limit_files, limit_bytes = settings.VIBEBOX_TEMPLATE_CONTEXT_FILES, context_max()
    if os.path.getsize(path) > limit_bytes:
        raise StepFailed(FailedStep.UPLOAD, f"The build context is larger than {format_size(limit_bytes)}.")
    count, total = 0, 0
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                count += 1
                if count > limit_files:
                    raise StepFailed(FailedStep.UPLOAD, f"The build context has more than {limit_files} entries.")
                relative = _safe_name(member.name)
                if relative is None:
                    raise StepFailed(FailedStep.UPLOAD, f"The build context has an unsafe name: {member.name[:200]!r}.")
                linked = member.issym() or member.islnk()
                if not (member.isfile() or member.isdir() or linked) or member.issparse():
                    raise StepFailed(
                        FailedStep.UPLOAD,
                        f"The build context may hold only files, directories and links inside it; "
                        f"{member.name[:200]!r} is not one (no devices).",
                    )
                target = root / relative
                _parents_made(root, relative.parent)
                if linked:
                    _link_made(root, relative, member)
                    continue
                if member.isdir():
                    if target.is_symlink() or (target.exists() and not target.is_dir()):
                        raise StepFailed(FailedStep.UPLOAD, f"The build context repeats {member.name[:200]!r}.")
                    target.mkdir(mode=0o755, exist_ok=True)
                    continue
                total += member.size
                if total > limit_bytes:
                    raise StepFailed(
                        FailedStep.UPLOAD, f"The build context's files are larger than {format_size(limit_bytes)}."
                    )
                _write_member(archive, member, target)
    except (tarfile.TarError, EOFError) as exc:
        raise StepFailed(FailedStep.UPLOAD, f"The build context is not a valid tar: {exc}") from None
    _links_checked(root)
    return count


def _links_checked(root: Path) -> None:
    """Once every entry is on disk: each symlink's target, read component by component as the
    kernel does, passes through no other symlink and, resolved, stays inside the context (a link
    made before the link it climbs through is caught here too)."""
    top = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            link = Path(folder) / name
            if not link.is_symlink():
                continue
            shown = str(link.relative_to(root))[:200]
            current = link.parent
            parts = [part for part in os.readlink(link).split("/") if part not in ("", ".")]
            for index, part in enumerate(parts):
                current = current.parent if part == ".." else current / part
                if index < len(parts) - 1 and part != ".." and current.is_symlink():
                    raise StepFailed(
                        FailedStep.UPLOAD, f"The build context's link {shown!r} points through another link."
                    )
            resolved = os.path.realpath(link)
            if resolved != top and not resolved.startswith(top + os.sep):
                raise StepFailed(FailedStep.UPLOAD, f"The build context's link {shown!r} points outside it.")


def _parents_made(root: Path, relative: PurePosixPath) -> None:
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise StepFailed(FailedStep.UPLOAD, f"The build context has a file where a directory is: {part!r}.")
        current.mkdir(mode=0o755, exist_ok=True)


def _inside(base: PurePosixPath, linkname: str) -> PurePosixPath | None:
    """base/linkname resolved part by part; None when it is absolute or climbs above the root."""
    if not linkname or linkname.startswith("/") or "\0" in linkname or "\\" in linkname:
        return None
    parts = list(base.parts)
    for part in PurePosixPath(linkname).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return PurePosixPath(*parts) if parts else None


def _link_made(root: Path, relative: PurePosixPath, member: tarfile.TarInfo) -> None:
    """A symlink with a relative target inside the context, or a hard link as a copy of an earlier
    regular file of it."""
    inside = _inside(PurePosixPath() if member.islnk() else relative.parent, member.linkname)
    if inside is None:
        raise StepFailed(FailedStep.UPLOAD, f"The build context's link {member.name[:200]!r} points outside it.")
    target = root / relative
    if member.issym():
        try:
            os.symlink(member.linkname, target)
        except FileExistsError:
            raise StepFailed(FailedStep.UPLOAD, f"The build context repeats {member.name[:200]!r}.") from None
        return
    source = root / inside
    through_link = any((root / PurePosixPath(*inside.parts[:n])).is_symlink() for n in range(1, len(inside.parts) + 1))
    if through_link or not source.is_file():
        raise StepFailed(FailedStep.UPLOAD, f"The build context's hard link {member.name[:200]!r} names no file.")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise StepFailed(FailedStep.UPLOAD, f"The build context repeats {member.name[:200]!r}.") from None
    with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
        shutil.copyfileobj(data, out, 1024 * 1024)
    os.chmod(target, 0o755 if os.stat(source).st_mode & 0o111 else 0o644)


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    mode = 0o755 if member.mode & 0o111 else 0o644  # no setuid, setgid or sticky bits, nothing private
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise StepFailed(FailedStep.UPLOAD, f"The build context repeats {member.name[:200]!r}.") from None
    source = archive.extractfile(member)
    with os.fdopen(fd, "wb") as out, contextlib.closing(source):
        shutil.copyfileobj(source, out, 1024 * 1024)


# ---- the Dockerfile -------------------------------------------------------------------------


@dataclass
class Stage:
    image: str  # the exact local image it starts from ("" when it starts from an earlier stage)
    parent: int | None  # the index of the stage it starts from
    name: str = ""


@dataclass
class Plan:
    dockerfile: str  # with every FROM rewritten to an exact image
    stages: list[Stage] = field(default_factory=list)

    @property
    def bases(self) -> tuple[str, ...]:
        """What the rewritten FROM lines may name: the exact images and the stage names."""
        return tuple(
            sorted({stage.image for stage in self.stages if stage.image} | {s.name for s in self.stages if s.name})
        )

    @property
    def base(self) -> str:
        """The image the final stage starts from (following stage references)."""
        stage = self.stages[-1]
        while stage.parent is not None:
            stage = self.stages[stage.parent]
        return stage.image


DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")  # the engine's own pattern
DIRECTIVES = ("syntax", "escape", "check")  # the engine's; any other `# x=y` ends the directives
FLAG_RE = re.compile(r"^--([A-Za-z-]+)(?:=(.*))?$")
REMOTE_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@)")
WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")  # what the engine splits an instruction on
INSTRUCTIONS = frozenset(
    {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER"}
    | {"ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)


def _lines(text: str) -> list[str]:
    """The Dockerfile's lines as the engine reads them: split on \\n only (Python's splitlines()
    would also split on \\v, \\f, \\x1c and more, which the engine reads as part of a line)."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character and the index of the first line after the parser directives, read as
    the engine does: only at the top, until the first line that is not a known directive (a blank
    line, a comment, an unknown `# x=y`, an instruction); a directive given twice is refused."""
    escape, seen = "\\", set()
    for index, line in enumerate(lines):
        match = DIRECTIVE_RE.match(line.strip(" \t"))
        if not match or match.group(1).lower() not in DIRECTIVES:
            return escape, index
        name = match.group(1).lower()
        if name in seen:
            raise StepFailed(FailedStep.BUILD, f"Line {index + 1}: only one {name} parser directive can be used.")
        seen.add(name)
        if name == "escape":
            escape = match.group(2)
            if escape not in ("\\", "`"):
                raise StepFailed(FailedStep.BUILD, "The Dockerfile's escape directive must be \\ or `.")
    return escape, len(lines)


def _instructions(text: str) -> list[tuple[int, str]]:
    """(line number, logical instruction) of a Dockerfile: continuation lines joined (blank and
    comment lines inside one skipped, as the engine does), comments and blank lines dropped,
    parser directives read (`escape`)."""
    lines = _lines(text)
    escape, start = _directives(lines)
    found, current, first = [], "", 0
    for number, line in enumerate(lines[start:], start + 1):
        stripped = line.strip(" \t\r\v\f")
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and (not stripped or stripped.startswith("#")):
            continue  # a blank or comment line inside a continued instruction
        if not current:
            first = number
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        current += stripped
        found.append((first, current))
        current = ""
    if current.strip():
        found.append((first, current))
    return found


def _split(instruction: str) -> tuple[str, list[str]]:
    """The instruction's keyword and its arguments, split on whitespace as the engine does; the
    JSON form's strings (`ADD ["https://...", "/x"]`) are arguments too."""
    parts = WHITESPACE_RE.split(instruction.strip(" \t\r\v\f"), maxsplit=1)
    word, rest = parts[0], (parts[1] if len(parts) > 1 else "")
    args = [arg for arg in WHITESPACE_RE.split(rest) if arg]
    flags = []
    while args and args[0].startswith("--"):
        flags.append(args.pop(0))
    remainder = rest.strip(" \t\r\v\f")
    for flag in flags:
        remainder = remainder[len(flag) :].lstrip(" \t\r\v\f") if remainder.startswith(flag) else remainder
    if remainder.startswith("["):
        with contextlib.suppress(ValueError):
            parsed = json.loads(remainder)
            if isinstance(parsed, list):
                args = [str(item) for item in parsed]
    return word, flags + args


def plan_dockerfile(text: str, *, org, labels: dict[str, str] | None = None) -> Plan:
    """Checks the Dockerfile's bases and rewrites each FROM to an exact local image (StepFailed
    build, saying what is allowed, for anything else). With `labels`, a LABEL line follows every
    FROM: each step's intermediate image and container carries them (a build whose worker died
    leaves nothing the reaper cannot find by label)."""
    label_line = (
        "\nLABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items())) if labels else ""
    )
    stages: list[Stage] = []
    names: dict[str, int] = {}
    out: list[str] = []
    lines = _lines(text)
    replaced: dict[int, str] = {}  # first line of a FROM -> its rewrite (its continuation lines dropped)
    dropped: set[int] = set()
    instructions = _instructions(text)
    for index, (number, instruction) in enumerate(instructions):
        word, args = _split(instruction)
        keyword = word.upper()
        if keyword not in INSTRUCTIONS:
            raise StepFailed(FailedStep.BUILD, f"Line {number}: unknown instruction {word[:40]!r}.")
        if keyword == "ONBUILD":
            raise StepFailed(FailedStep.BUILD, f"Line {number}: ONBUILD is not allowed in a template.")
        if keyword == "FROM":
            flags = [a for a in args if a.startswith("--")]
            if flags:
                raise StepFailed(FailedStep.BUILD, f"Line {number}: FROM takes no flags here ({flags[0]}). {FROM_HELP}")
            if len(args) not in (1, 3) or (len(args) == 3 and args[1].upper() != "AS"):
                raise StepFailed(FailedStep.BUILD, f"Line {number}: FROM <image> [AS <name>]. {FROM_HELP}")
            reference = args[0]
            stage_name = args[2].lower() if len(args) == 3 else ""
            if "$" in reference:
                raise StepFailed(FailedStep.BUILD, f"Line {number}: FROM may not use variables. {FROM_HELP}")
            if reference.lower() in names:
                stage = Stage(image="", parent=names[reference.lower()], name=stage_name)
                image = reference
            else:
                image = resolve_base(reference, org=org, line=number)
                stage = Stage(image=image, parent=None, name=stage_name)
            if stage_name:
                if stage_name in names:
                    raise StepFailed(FailedStep.BUILD, f"Line {number}: stage name {stage_name!r} is used twice.")
                names[stage_name] = len(stages)
            stages.append(stage)
            replaced[number] = f"FROM {image}" + (f" AS {stage_name}" if stage_name else "") + label_line
            end = instructions[index + 1][0] if index + 1 < len(instructions) else len(lines) + 1
            dropped.update(range(number + 1, end))
            continue
        if not stages:
            if keyword == "ARG":
                continue
            raise StepFailed(FailedStep.BUILD, f"Line {number}: a Dockerfile starts with FROM. {FROM_HELP}")
        if keyword in ("COPY", "ADD"):
            for arg in args:
                match = FLAG_RE.match(arg)
                if match and match.group(1).lower() == "from":
                    source = (match.group(2) or "").lower()
                    known = source in names or (source.isascii() and source.isdigit() and int(source) < len(stages) - 1)
                    if not known:
                        raise StepFailed(
                            FailedStep.BUILD,
                            f"Line {number}: {keyword} --from={source} names no earlier stage; copying from an "
                            "image is not allowed (add it as a stage: FROM vibebox/<template> AS <name>).",
                        )
            if keyword == "ADD" and any(REMOTE_RE.match(arg) for arg in args if not arg.startswith("--")):
                raise StepFailed(
                    FailedStep.BUILD,
                    f"Line {number}: ADD from a URL is not allowed (download it in a RUN step, which runs behind "
                    "the build's firewall).",
                )
    if not stages:
        raise StepFailed(FailedStep.BUILD, f"The Dockerfile has no FROM. {FROM_HELP}")
    for number, line in enumerate(lines, 1):
        if number in replaced:
            out.append(replaced[number])
        elif number in dropped and not line.strip().startswith("#"):
            out.append("")  # a continuation line of a rewritten FROM
        else:
            out.append(line)
    return Plan(dockerfile="\n".join(out) + "\n", stages=stages)


def resolve_base(reference: str, *, org, line: int) -> str:
    """The exact local image a FROM reference stands for."""
    lowered = reference.lower()
    image = ""
    if lowered.startswith("vibebox/"):
        name, _, version = reference[len("vibebox/") :].partition(":")
        template = template_find(name, org=org)  # another organization's private one is not found
        if template is None:
            raise StepFailed(FailedStep.BUILD, f"Line {line}: there is no template {name!r} you can build on.")
        if version and template.built_in:
            if version not in (str(template.version), template.image.rpartition(":")[2]):
                raise StepFailed(FailedStep.BUILD, f"Line {line}: built-in {name!r} has no version {version!r}.")
            image = template.image
        elif version:
            found = version_resolve(template, version, org=org)
            if found is None or found.yanked:
                raise StepFailed(
                    FailedStep.BUILD, f"Line {line}: template {name!r} has no published version {version!r}."
                )
            image = found.image
        else:
            image = template.image
        if not image:
            raise StepFailed(FailedStep.BUILD, f"Line {line}: template {name!r} has no image built yet.")
    elif lowered.startswith("debian:") and lowered.partition(":")[2] in DEBIAN_SUITES:
        image = catalog.base_image(lowered.partition(":")[2])
    else:
        raise StepFailed(FailedStep.BUILD, f"Line {line}: FROM {reference[:100]} is not allowed. {FROM_HELP}")
    if not get_driver().image_exists(image):
        raise StepFailed(FailedStep.BUILD, f"Line {line}: {reference} ({image}) is not built on this server.")
    return image


# ---- 2. the build ---------------------------------------------------------------------------


class LogBuffer:
    """Collects build log lines and appends them to the submission every LOG_FLUSH_SECONDS from a
    thread of its own (the build's thread only appends to a list). Between two flushes it holds at
    most about LOG_BUFFER_MAX bytes: past that, the first half is kept, then only the newest
    lines, with a line saying how many were dropped in between (a line longer than half the cap
    is cut)."""

    def __init__(self, submission_id: str, limit: int | None = None):
        self.submission_id = submission_id
        self.limit = limit or LOG_BUFFER_MAX
        self._head: list[str] = []
        self._head_size = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_size = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"log-{submission_id}")
        self._thread.start()

    def __call__(self, line: str) -> None:
        half = self.limit // 2
        if len(line) > half:
            line = line[:half] + " [... line cut]"
        size = len(line) + 1
        with self._lock:
            if not self._tail and self._head_size + size <= half:
                self._head.append(line)
                self._head_size += size
                return
            self._tail.append(line)
            self._tail_size += size
            while self._tail_size > half and len(self._tail) > 1:
                self._tail_size -= len(self._tail.popleft()) + 1
                self._dropped += 1

    def _take(self) -> str:
        with self._lock:
            lines = self._head
            if self._dropped:
                lines.append(f"[... {self._dropped} log lines dropped ...]")
            lines.extend(self._tail)
            self._head, self._head_size, self._tail, self._tail_size, self._dropped = [], 0, collections.deque(), 0, 0
        return "".join(line + "\n" for line in lines)

    def _run(self) -> None:
        try:
            while not self._stop.wait(LOG_FLUSH_SECONDS):
                self._flush()
        finally:
            connection.close()

    def _flush(self) -> None:
        text = self._take()
        if text:
            try:
                submission_log_append(self.submission_id, text)
            except Exception:  # the log is best effort: the build goes on
                logger.exception("could not append to the build log of %s", self.submission_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._flush()


def image_tag(submission: Submission) -> str:
    suffix = submission.pk.removeprefix("sub_").lower()
    name = re.sub(r"[^a-z0-9_.-]", "-", submission.template_name.lower())
    version = re.sub(r"[^A-Za-z0-9_.-]", "-", submission.version)
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/market-{name}:{version}-{suffix}"[:200]


def pipeline_tag(tag: str, submission_id: str, submission: Submission | None) -> bool:
    """Whether `tag` is the one the pipeline gives the submission's built image (image_tag); for a
    submission whose row is gone, whether it has that form (its prefix, and its id at the end)."""
    if submission is not None:
        return tag == image_tag(submission)
    suffix = submission_id.removeprefix("sub_").lower()
    return bool(suffix) and tag.startswith(f"{settings.VIBEBOX_IMAGE_PREFIX}/market-") and tag.endswith(f"-{suffix}")


def build_labels(submission: Submission) -> dict[str, str]:
    """On every container and intermediate image of the submission's build (a LABEL after each
    FROM): the reaper finds a dead build's leftovers by them."""
    return {"vibebox.instance": settings.VIBEBOX_INSTANCE, BUILD_OWNER_LABEL: submission.pk}


def image_labels(submission: Submission) -> dict[str, str]:
    return {
        "vibebox.managed-image": "1",
        "vibebox.instance": settings.VIBEBOX_INSTANCE,
        BUILD_OWNER_LABEL: submission.pk,
        "vibebox.template": submission.template_name,
        "vibebox.template-version": submission.version,
    }


def build(submission: Submission, context: Path, tag: str, log: LogBuffer, plan: Plan) -> None:
    driver = get_driver()
    network = BUILD_NETWORK_PREFIX + secrets.token_hex(4)[:7]
    driver.ensure_network(network, {**base_labels(), "vibebox.build": submission.pk}, model_gateway=False)
    limits = BuildLimits(
        memory=int(settings.VIBEBOX_TEMPLATE_BUILD_MEMORY),
        cpus=float(settings.VIBEBOX_TEMPLATE_BUILD_CPUS),
        network=network,
        timeout=float(settings.VIBEBOX_TEMPLATE_BUILD_TIMEOUT),
        max_size=int(settings.VIBEBOX_TEMPLATE_MAX_SIZE),
        bases=plan.bases,
    )
    try:
        driver.image_build(
            context=str(context), tag=tag, buildargs={}, labels=image_labels(submission), log=log, limits=limits
        )
    except BuildFailed as exc:
        raise StepFailed(FailedStep.BUILD, exc.message) from None
    finally:
        try:
            driver.remove_network(network)
        except errors.ApplicationError as exc:
            logger.warning("could not remove build network %s: %s", network, exc.message)


# ---- 3. policy ------------------------------------------------------------------------------


def setid_files(image: str) -> dict[str, str]:
    """The image's setuid/setgid and capability-carrying files (path -> mode bits, size, sha256,
    capabilities), kept in the cache by image id."""
    driver = get_driver()
    details = driver.image_details(image)
    key = f"marketplace:setid2:{details.id if details else image}"
    cached = cache.get(key)
    if cached is None:
        cached = driver.image_setid_files(image)
        cache.set(key, cached, timeout=SETID_CACHE_SECONDS)
    return dict(cached)


def privileged_added(mine: dict[str, str], base: dict[str, str], allowed: set[str]) -> list[str]:
    """The privileged files (setuid/setgid or file capabilities) the image adds or changes
    compared with its base, outside the allow-list: a base's setuid path holding another binary,
    or given capabilities, counts as added."""
    return sorted(path for path, value in mine.items() if base.get(path) != value and path not in allowed)


GO_INT_RE = re.compile(r"^[+-]?[0-9]+$")  # what Go's strconv.Atoi accepts ("00", "+0", "-0" are 0)


def _go_int(text: str) -> int | None:
    return int(text) if GO_INT_RE.match(text) else None


def _entries(data: bytes) -> list[list[str]]:
    """The colon-separated lines of /etc/passwd or /etc/group, as the runtime reads them."""
    text = data.decode("utf-8", "replace")
    return [line.strip().split(":") for line in text.split("\n") if line.strip()]


def _field_int(fields: list[str], index: int) -> int:
    """A numeric field as the runtime reads it: missing or not a number counts as 0."""
    return (_go_int(fields[index]) if index < len(fields) else None) or 0


def user_problem(user: str, passwd: bytes | None, group: bytes | None) -> str | None:
    """Why the image's final USER (`user[:group]`) would run as root, resolved against the
    image's /etc/passwd and /etc/group the way the runtime resolves it (a numeric user by uid, a
    name by name; no group: the user's primary group, 0 for a uid /etc/passwd does not list; a
    group listing the user by name adds that gid); None when it does not. `passwd`/`group` None:
    that file is in the image but not a regular file."""
    shown = user[:100]
    if passwd is None or group is None:
        return "The image's /etc/passwd and /etc/group must be regular files (not links)."
    name, has_group, group_name = user.partition(":")
    users = _entries(passwd)
    uid_arg = _go_int(name)
    if uid_arg is None:
        matches = [fields for fields in users if fields[0] == name]
    else:
        matches = [fields for fields in users if _field_int(fields, 2) == uid_arg]
    if matches:
        uid, gid, login = _field_int(matches[0], 2), _field_int(matches[0], 3), matches[0][0]
    elif uid_arg is not None:
        uid, gid, login = uid_arg, 0, ""
    else:
        return f"The image's final user {shown!r} is not in its /etc/passwd."
    if uid <= 0:
        return f"The image's final user ({shown}) is root (uid {uid}): end with USER <non-root user>."
    groups = _entries(group)
    if has_group:
        gid_arg = _go_int(group_name)
        if gid_arg is None:
            named = [fields for fields in groups if fields[0] == group_name]
            if not named:
                return f"The image's final group {group_name[:100]!r} is not in its /etc/group."
            gid = _field_int(named[0], 2)
        else:
            gid = gid_arg
    if gid <= 0:
        return (
            f"The image's final user ({shown}) has group {gid} (root): end with USER <user>:<non-root group>, "
            "or a user whose /etc/passwd entry has a non-root group."
        )
    if login:
        for fields in groups:
            members = fields[3].split(",") if len(fields) > 3 else []
            if login in members and _field_int(fields, 2) <= 0:
                return f"The image's final user ({shown}) is a member of group {fields[0]!r} (gid 0) in /etc/group."
    return None


def policy_problems(submission: Submission, tag: str, plan: Plan) -> list[str]:
    """What the built image breaks, in words (empty: it passes)."""
    driver = get_driver()
    details = driver.image_details(tag)
    if details is None:
        return ["The built image is missing."]
    base = driver.image_details(plan.base)
    problems = []
    user = details.user
    if not user.strip():
        problems.append("The image's final user is root (none is set): end with USER <non-root user>.")
    else:
        files = driver.image_files(tag, ("/etc/passwd", "/etc/group"))
        problem = user_problem(user, files.get("/etc/passwd", b""), files.get("/etc/group", b""))
        if problem:
            problems.append(problem)
    if details.volumes:
        problems.append(f"VOLUME is not allowed ({', '.join(details.volumes)}).")
    privileged = []
    for port in details.exposed_ports:
        number = port.partition("/")[0]
        if not number.isdigit() or int(number) < 1024:
            privileged.append(port)
    if privileged:
        problems.append(f"EXPOSE of ports below 1024 is not allowed ({', '.join(privileged)}).")
    inherited = dict(base.labels) if base else {}
    ours = image_labels(submission)
    namespace = f"{submission.org.slug}."
    bad_labels = [
        key
        for key, value in details.labels.items()
        if ours.get(key) != value
        and inherited.get(key) != value
        and (key.startswith(OWN_LABEL_PREFIX) or not key.startswith((OCI_LABEL_PREFIX, namespace)))
    ]
    if bad_labels:
        problems.append(
            f"Labels must be under org.opencontainers. or your organization's namespace ({namespace}); "
            f"not allowed: {', '.join(sorted(bad_labels)[:10])}."
        )
    limit = int(settings.VIBEBOX_TEMPLATE_MAX_SIZE)
    if details.size > limit:
        problems.append(f"The image is {format_size(details.size)}, above the limit of {format_size(limit)}.")
    if not problems:  # the file scan reads the whole image: only for one that passed the rest
        allowed = set(settings.VIBEBOX_TEMPLATE_SETUID_ALLOW)
        mine = setid_files(tag)
        added = privileged_added(mine, setid_files(plan.base), allowed)
        if added:
            shown = ", ".join(
                path + (" (file capabilities)" if ":cap=" in mine[path] else "") for path in added[:20]
            ) + (f" and {len(added) - 20} more" if len(added) > 20 else "")
            problems.append(
                "The image adds or changes setuid/setgid files or files with capabilities outside the "
                f"allow-list (VIBEBOX_TEMPLATE_SETUID_ALLOW): {shown}."
            )
    return problems


# ---- 4. the smoke test ----------------------------------------------------------------------


def _resources(spec: dict) -> dict | None:
    resources = spec.get("resources") or {}
    picked = {key: resources[key] for key in ("cpu", "memory") if isinstance(resources.get(key), int | float)}
    return picked or None


def smoke_test(submission: Submission, version: TemplateVersion) -> str:
    """Runs the smoke test in a sandbox of the candidate version; answers its output, or raises
    StepFailed smoke (with the output kept on the submission)."""
    spec = submission.spec or {}
    timeout = float(settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT)
    workdir = str(spec.get("workdir") or version.template.workdir or "/workspace")
    output = ""
    sandbox = None
    try:
        try:
            sandbox = sandbox_create(
                owner=submission.user,
                org=submission.org,
                template="",
                template_version=version,
                timeout=timeout * 2 + 60,
                resources=_resources(spec),
            )
        except errors.ApplicationError as exc:
            raise StepFailed(FailedStep.SMOKE, f"The smoke sandbox could not be created: {exc.message}") from None
        smoke = str(spec.get("smoke") or version.template.smoke or "").strip()
        if smoke:
            try:
                outcome = sandbox_exec(sandbox=sandbox, command=smoke, cwd=workdir, timeout=timeout)
            except errors.ApplicationError as exc:
                raise StepFailed(FailedStep.SMOKE, f"The smoke command could not run: {exc.message}") from None
            result = outcome.result
            output = f"$ {smoke}\n{outcome.stdout}{outcome.stderr}"
            if result.timed_out:
                raise StepFailed(
                    FailedStep.SMOKE, f"The smoke command did not finish within {timeout:g} s (killed).", output
                )
            if result.exit_code != 0:
                reason = " (killed: out of memory)" if result.oom_killed else ""
                raise StepFailed(
                    FailedStep.SMOKE, f"The smoke command exited with code {result.exit_code}{reason}.", output
                )
        ports = [int(port) for port in spec.get("ports") or []]
        start = str(spec.get("start") or "").strip()
        if start:
            try:
                processes.process_start(sandbox=sandbox, command=start, cwd=workdir, timeout=timeout * 2)
            except errors.ApplicationError as exc:
                raise StepFailed(
                    FailedStep.SMOKE, f"The start command could not start: {exc.message}", output
                ) from None
            output += f"$ {start} &\n"
        if ports:
            address = driver_for(sandbox).container_address(sandbox.container_name)
            silent = _ports_silent(address, ports, deadline=time.monotonic() + timeout)
            if silent:
                output += f"ports that did not answer within {timeout:g} s: {', '.join(map(str, silent))}\n"
                raise StepFailed(
                    FailedStep.SMOKE,
                    f"Port{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} did not answer within "
                    f"{timeout:g} s" + (" (no start command is declared)." if not start else "."),
                    output,
                )
            output += f"ports answering: {', '.join(map(str, ports))}\n"
        return output
    finally:
        if sandbox is not None:
            try:
                sandbox.refresh_from_db()
                sandbox_destroy(sandbox=sandbox)
            except errors.ApplicationError as exc:  # the reconcile pass removes it later
                logger.warning("could not destroy smoke sandbox %s: %s", sandbox.pk, exc.message)


def _ports_silent(address: str, ports: list[int], *, deadline: float) -> list[int]:
    """The ports of `address` that did not accept a TCP connection before `deadline`."""
    waiting = list(ports)
    while waiting:
        for port in list(waiting):
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=2):
                waiting.remove(port)
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(PORT_RETRY_SECONDS)
    return waiting


# ---- the pipeline ---------------------------------------------------------------------------


def submission_validate(submission_id: str) -> str | None:
    """Runs the pipeline for a queued submission; answers its final state (None: it was not
    queued, e.g. a redelivered task). Never raises for the submission's own faults."""
    submission = submission_start(submission_id)
    if submission is None:
        return None
    submission = Submission.objects.select_related("org", "user").get(pk=submission_id)
    driver = get_driver()
    tag = image_tag(submission)
    log = LogBuffer(submission_id)
    workdir = Path(tempfile.mkdtemp(prefix=f"vibebox-{submission_id}-"))
    built = False
    started = time.monotonic()
    try:
        context = workdir / "context"
        context.mkdir()
        if submission.context_path:
            files = extract_context(submission.context_path, context)
            log(f"build context: {files} entries")
        plan = plan_dockerfile(submission.dockerfile, org=submission.org, labels=build_labels(submission))
        _context_file(context / "Dockerfile", plan.dockerfile.encode())
        # The server's extra CA bundle (maybe empty), as the built-in images get it: a build can
        # COPY it to fetch through a TLS-intercepting proxy. It replaces the submitter's file.
        _context_file(context / EXTRA_CA_NAME, catalog.extra_ca_bytes())
        for stage in plan.stages:
            if stage.image:
                log(f"base image: {stage.image}")
        built = True  # from here on the image may exist: removed on failure
        build(submission, context, tag, log, plan)
        seconds = round(time.monotonic() - started, 1)
        log(f"built {tag} in {seconds:g} s; checking the policy")
        problems = policy_problems(submission, tag, plan)
        if problems:
            raise StepFailed(FailedStep.POLICY, " ".join(problems))
        size = get_driver().image_size(tag) or 0
        log(f"policy checks passed ({format_size(size)}); smoke test")
        log.close()
        submission_progress(
            submission_id, state=SubmissionState.SMOKE_TESTING, image=tag, image_size=size, build_seconds=seconds
        )
        version = submission_candidate(submission_id)
        output = smoke_test(submission, version)
        submission_progress(submission_id, state=SubmissionState.SMOKE_TESTING, smoke_output=output[-SMOKE_OUTPUT_MAX:])
        final = submission_passed(submission_id)
        return final.state
    except StepFailed as exc:
        log(f"failed ({exc.step}): {exc.message}")
        log.close()
        if exc.output:
            with contextlib.suppress(errors.ApplicationError):
                submission_progress(
                    submission_id, state=SubmissionState.SMOKE_TESTING, smoke_output=exc.output[-SMOKE_OUTPUT_MAX:]
                )
        submission_fail(submission_id, step=exc.step, message=exc.message)
        if built:
            driver.image_remove(tag)
        return SubmissionState.FAILED
    except Exception as exc:
        logger.exception("the validation of %s failed", submission_id)
        log(f"failed: an internal error ({type(exc).__name__})")
        log.close()
        step = _current_step(submission_id)
        message = exc.message if isinstance(exc, errors.ApplicationError) else "an internal error"
        submission_fail(submission_id, step=step, message=f"The validation stopped: {message}.")
        if built:
            with contextlib.suppress(Exception):
                driver.image_remove(tag)
        return SubmissionState.FAILED
    finally:
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
        close_old_connections()


def _context_file(path: Path, data: bytes) -> None:
    """Writes `data` at `path` in the context, never through a link: whatever is there is removed
    without being followed (a link or file unlinked, only a real directory removed as a tree)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


INTERRUPTED_MESSAGE = (
    "The validation was interrupted (its worker stopped) in its {step} step; submit the version again."
)
NEVER_STARTED_MESSAGE = (
    "The validation never started within {hours:g} h of its last queueing (its task was lost); submit the "
    "version again."
)
LEFTOVER_STATES = (SubmissionState.FAILED, SubmissionState.CANCELLED)


# The most tasks the reaper reads from the broker in one pass (the builds queue and the tasks
# workers took but have not started): beyond that it does not guess, and leaves queued ones be.
BROKER_SCAN_MAX = 2000
VALIDATE_TASK = "apps.sandboxes.tasks.validate_submission"


def builds_queue() -> str:
    """The Celery queue validate_submission is routed to (CELERY_TASK_ROUTES: `builds`)."""
    return (settings.CELERY_TASK_ROUTES.get(VALIDATE_TASK) or {}).get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE


def _task_submission(payload) -> str | None:
    """The submission id a broker message's validate_submission task is for (Celery's message
    protocol 2 as kombu's Redis transport keeps it: headers.task, a base64 JSON body
    [args, kwargs, embed]); None for any other message."""
    try:
        if payload["headers"]["task"] != VALIDATE_TASK:
            return None
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _ = json.loads(body)
        ident = args[0] if args else kwargs.get("submission_id")
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, binascii.Error):
        return None
    return ident if isinstance(ident, str) else None


def tasks_waiting(submission_ids: set[str]) -> set[str] | None:
    """Those of `submission_ids` with a validate_submission task in the broker (Celery's Redis
    broker, CELERY_BROKER_URL): waiting in the builds queue (a Redis list named after the queue),
    or taken by a worker that has not started it (kombu's `unacked` hash, where a dead worker's
    tasks stay until they are restored to the queue). None when the broker cannot be read or holds
    more than BROKER_SCAN_MAX of them (the caller does nothing rather than guess)."""
    queue = builds_queue()
    try:
        client = redisdb.client(settings.CELERY_BROKER_URL)
        if client.llen(queue) + client.hlen("unacked") > BROKER_SCAN_MAX:
            return None
        payloads = [json.loads(raw) for raw in client.lrange(queue, 0, BROKER_SCAN_MAX)]
        for raw in client.hvals("unacked"):
            entry = json.loads(raw)  # [payload, exchange, routing key]
            if isinstance(entry, list) and entry:
                payloads.append(entry[0])
    except (RedisError, ValueError) as exc:
        logger.warning("could not read the broker's %s queue: %s", queue, exc)
        return None
    return {ident for ident in map(_task_submission, payloads) if ident in submission_ids}


def submissions_interrupted(now: dt.datetime | None = None) -> dict:
    """The periodic pass (tasks.reap_submissions), each action logged:

    - a submission building or smoke testing with no sign of life for longer than the build and
      smoke timeouts plus 5 minutes lost its worker: it fails, at the step it was in (`build` or
      `smoke`);
    - a submission queued with no change for VIBEBOX_TEMPLATE_REQUEUE_AFTER whose task is not in
      the broker (tasks_waiting: lost, a worker died before running it or the broker was flushed)
      is queued again (submission_requeue; the pipeline runs it only once), or fails (step
      `build`: it never started) when it was last (re)queued over VIBEBOX_TEMPLATE_QUEUE_TIMEOUT
      ago; one whose task waits in the broker is left to wait, however long;
    - the build networks (with their step containers and firewall rules) of this instance's
      submissions that are no longer running are removed, and what their builds left, found by
      label (BUILD_OWNER_LABEL): step containers and untagged step images of any ended submission,
      and the built image of a failed or cancelled one that no template version uses."""
    now = now or timezone.now()
    allowed = float(settings.VIBEBOX_TEMPLATE_BUILD_TIMEOUT) + float(settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT) + 300
    stale = Submission.objects.filter(
        state__in=[SubmissionState.BUILDING, SubmissionState.SMOKE_TESTING],
        updated_at__lt=now - dt.timedelta(seconds=allowed),
    ).values_list("pk", "state")
    failed = []
    for pk, state in stale:
        step = FailedStep.SMOKE if state == SubmissionState.SMOKE_TESTING else FailedStep.BUILD
        if submission_fail(pk, step=step, message=INTERRUPTED_MESSAGE.format(step=step)):
            logger.warning(
                "submission %s: no sign of life for %d min while %s: failed (step %s)", pk, allowed // 60, state, step
            )
            failed.append(pk)
    queue_timeout = float(settings.VIBEBOX_TEMPLATE_QUEUE_TIMEOUT)
    requeue_after = float(settings.VIBEBOX_TEMPLATE_REQUEUE_AFTER)
    idle_before = now - dt.timedelta(seconds=requeue_after)
    idle = dict(
        Submission.objects.filter(state=SubmissionState.QUEUED, updated_at__lt=idle_before).values_list(
            "pk", "updated_at"
        )
    )
    waiting = tasks_waiting(set(idle)) if idle else set()
    if waiting is None:
        logger.warning(
            "the broker's %s queue cannot be read (or holds over %d tasks): queued submissions left as they are",
            builds_queue(),
            BROKER_SCAN_MAX,
        )
        idle = {}
    requeued = []
    for pk, queued_at in idle.items():
        if pk in waiting:
            continue  # its task waits in the broker (or a worker took it): not lost
        if queued_at < now - dt.timedelta(seconds=queue_timeout):
            message = NEVER_STARTED_MESSAGE.format(hours=round(queue_timeout / 3600, 2))
            if submission_fail(pk, step=FailedStep.BUILD, message=message):
                logger.warning(
                    "submission %s: no task in the broker %g h after it was last queued: failed (step build)",
                    pk,
                    queue_timeout / 3600,
                )
                failed.append(pk)
        elif submission_requeue(pk, idle_before=idle_before):
            logger.warning(
                "submission %s: still queued with no change for %g min and no task in the broker: queued again",
                pk,
                requeue_after / 60,
            )
            requeued.append(pk)
    driver = get_driver()
    running = set(Submission.objects.filter(state__in=RUNNING_STATES).values_list("pk", flat=True))
    networks = []
    for name, owner in driver.build_networks({"vibebox.instance": settings.VIBEBOX_INSTANCE}).items():
        if owner in running:
            continue
        try:
            driver.build_network_remove(name)
            networks.append(name)
        except errors.ApplicationError as exc:
            logger.warning("could not remove build network %s: %s", name, exc.message)
    leftovers = driver.build_leftovers({"vibebox.instance": settings.VIBEBOX_INSTANCE})
    owners = {
        row.pk: row
        for row in Submission.objects.filter(pk__in={item.owner for item in leftovers}).only(
            "pk", "state", "template_name", "version"
        )
    }
    states = {pk: row.state for pk, row in owners.items()}
    used = set(
        TemplateVersion.objects.filter(image__in=[tag for item in leftovers for tag in item.tags]).values_list(
            "image", flat=True
        )
    )
    doomed = []
    for item in leftovers:
        state = states.get(item.owner)
        if state in RUNNING_STATES or not item.owner:
            continue
        if item.tags and (state not in (None, *LEFTOVER_STATES) or used.intersection(item.tags)):
            continue  # a built image that a version uses, or of a submission that passed
        if not all(pipeline_tag(tag, item.owner, owners.get(item.owner)) for tag in item.tags):
            continue  # tagged by someone else than the pipeline (a copy of it, an image made from it)
        doomed.append(item)
    removed = set(driver.build_leftovers_remove(doomed)) if doomed else set()
    for item in doomed:
        if item.id in removed:
            logger.info(
                "submission %s: removed a leftover build %s %s", item.owner, item.kind, (item.tags or (item.id,))[0]
            )
    return {
        "failed": failed,
        "requeued": requeued,
        "networks_removed": networks,
        "images_removed": [
            (item.tags or (item.id,))[0] for item in doomed if item.kind == "image" and item.id in removed
        ],
        "containers_removed": [item.id for item in doomed if item.kind == "container" and item.id in removed],
    }


def _current_step(submission_id: str) -> str:
    state = Submission.objects.filter(pk=submission_id).values_list("state", flat=True).first()
    return FailedStep.SMOKE if state == SubmissionState.SMOKE_TESTING else FailedStep.BUILD
