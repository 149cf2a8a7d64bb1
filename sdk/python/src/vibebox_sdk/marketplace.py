"""`vb.marketplace`: submitting template versions to the marketplace, following their validation,
reviewing them, and the catalogue (search, ratings, yank, deprecation, featured); docs/marketplace.md.

    sub = vb.marketplace.submit("./my-template", visibility="public")  # Dockerfile + template.yaml + files
    done = vb.marketplace.wait(sub, on_log=print)                     # build log as it comes
    print(done.state, done.failed_step, done.message)
    for t in vb.marketplace.templates(q="react", sort="rating"):
        print(t.name, t.latest_version, t.rating_average)

A directory's other files are the build context (a gzip tar), without `.git` and what its
`.dockerignore` excludes; it is checked against the server's limit (50 MiB unpacked by default)
before anything is sent (`BuildContextTooLargeError`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import json
import os
import re
import secrets
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from . import calls
from .aio_streams import open_ws as aopen_ws
from .errors import BuildContextTooLargeError, SubmissionFailedError, TimeoutError, ValidationError, VibeBoxError
from .models import SUBMISSION_FAILED, MarketplaceTemplate, Submission
from .paging import AsyncPaged, Paged
from .streams import open_ws, ws_url

CONTEXT_MAX = 50 * 1024 * 1024  # the server's default VIBEBOX_TEMPLATE_CONTEXT_MAX
DOCKERFILE = "Dockerfile"
TEMPLATE_YAML = "template.yaml"
ALWAYS_SKIPPED = {".git"}
POLL = 1.0  # seconds between looks at a submission that is being validated
# Where a submission stops moving by itself: ended, or through the pipeline and waiting for staff.
WAIT_DONE = frozenset({"published", "rejected", "failed", "cancelled", "awaiting_review"})
SubmissionRef = str | Submission  # a submission's id (`sub_…`), or the submission itself
TemplateRef = str | MarketplaceTemplate  # a template's name, or the template itself
LogCallback = Callable[[str], Any]


def submission_id(ref: SubmissionRef) -> str:
    return ref.id if isinstance(ref, Submission) else ref


def template_name(ref: TemplateRef) -> str:
    return ref.name if isinstance(ref, MarketplaceTemplate) else ref


# .dockerignore --------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus `**`): `*` any run of characters but `/`,
    `?` one of them, `[...]` a class, `**` any number of directories."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` matches no directory too
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class IgnoreRules:
    """The rules of a `.dockerignore`: each line a pattern (relative to the context's root, `/` and
    `./` at its start ignored), `!` re-includes, `#` comments; the last rule that matches a path
    (or one of its parent directories) decides."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            pattern = os.path.normpath(pattern).replace(os.sep, "/").lstrip("/")
            while pattern.startswith("./"):
                pattern = pattern[2:]
            if pattern in ("", "."):
                continue
            rules.append((negate, _pattern_regex(pattern)))
        return cls(tuple(rules))

    @property
    def has_exceptions(self) -> bool:
        return any(negate for negate, _ in self.rules)

    def excluded(self, path: str) -> bool:
        """Whether `path` (relative, `/`-separated) is left out of the context."""
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for negate, regex in self.rules:
            if any(regex.match(prefix) for prefix in prefixes):
                verdict = not negate
        return verdict


# Packing a directory --------------------------------------------------------------------------


def context_files(directory: Path, rules: IgnoreRules) -> list[tuple[str, Path]]:
    """The files (and links) of the context: (name in the tar, path), sorted."""
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        here = Path(root)
        relative_root = here.relative_to(directory).as_posix()
        prefix = "" if relative_root == "." else relative_root + "/"
        kept_dirs = []
        for name in sorted(dirs):
            rel = prefix + name
            if (not prefix and name in ALWAYS_SKIPPED) or (rules.excluded(rel) and not rules.has_exceptions):
                continue
            if (here / name).is_symlink():  # os.walk does not descend into it: a link
                if not rules.excluded(rel):
                    found.append((rel, here / name))
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(files):
            rel = prefix + name
            if not prefix and name in (DOCKERFILE, TEMPLATE_YAML):
                continue
            if not rules.excluded(rel):
                found.append((rel, here / name))
    return sorted(found)


def pack_context(directory: str | os.PathLike[str], *, limit: int = CONTEXT_MAX) -> bytes | None:
    """The directory's build context as a gzip tar: every file but Dockerfile, template.yaml, `.git`
    and what `.dockerignore` excludes. None when there is nothing. `BuildContextTooLargeError` when
    the files add up to more than `limit` bytes (the server's default: 50 MiB)."""
    root = Path(directory)
    ignore = root / ".dockerignore"
    rules = IgnoreRules.parse(ignore.read_text(encoding="utf-8")) if ignore.is_file() else IgnoreRules()
    files = context_files(root, rules)
    if not files:
        return None
    sizes = [(path.lstat().st_size if path.is_file() and not path.is_symlink() else 0, name) for name, path in files]
    total = sum(size for size, _ in sizes)
    if total > limit:
        largest = sorted(sizes, reverse=True)[:5]
        listing = ", ".join(f"{name} ({size / 1024**2:.1f} MiB)" for size, name in largest)
        raise BuildContextTooLargeError(
            f"the build context of {root} is {total / 1024**2:.1f} MiB, above the limit of "
            f"{limit / 1024**2:.0f} MiB; leave files out with a .dockerignore (largest: {listing})",
            details={"limit": limit, "size": total, "largest": [{"name": n, "size": s} for s, n in largest]},
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name, path in files:
            info = archive.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return buffer.getvalue()


def multipart(fields: dict[str, tuple[str, bytes, str] | str]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type: a `str` value is a text field, a tuple
    `(filename, content, content type)` a file."""
    boundary = "vibebox-" + secrets.token_hex(16)
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, tuple):
            filename, content, kind = value
            out.write(
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {kind}\r\n\r\n".encode()
            )
            out.write(content)
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            out.write(value.encode())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _text(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def submission_body(
    path: str | os.PathLike[str] | None,
    *,
    dockerfile: str | bytes | None,
    template_yaml: str | bytes | None,
    context: bytes | None,
    visibility: str | None,
    context_limit: int,
) -> calls.Call:
    """The create call for a directory (or a template.yaml's path), or for the parts given."""
    if path is not None:
        if dockerfile is not None or template_yaml is not None or context is not None:
            raise ValueError("give a directory, or dockerfile= and template_yaml= (and context=), not both")
        directory = Path(path)
        if directory.is_file():
            directory = directory.parent
        if not directory.is_dir():
            raise FileNotFoundError(2, "no such directory", str(path))
        missing = [name for name in (DOCKERFILE, TEMPLATE_YAML) if not (directory / name).is_file()]
        if missing:
            raise ValidationError(
                f"{directory} has no {' and no '.join(missing)}: a template is a directory with a Dockerfile "
                "and a template.yaml (docs/marketplace.md)",
                code="invalid_template_directory",
                details={"missing": missing},
            )
        dockerfile = (directory / DOCKERFILE).read_bytes()
        template_yaml = (directory / TEMPLATE_YAML).read_bytes()
        context = pack_context(directory, limit=context_limit)
    if dockerfile is None or template_yaml is None:
        raise ValueError("give a directory, or both dockerfile= and template_yaml=")
    if context is not None and len(context) > context_limit:
        raise BuildContextTooLargeError(
            f"the build context is {len(context) / 1024**2:.1f} MiB, above the limit of "
            f"{context_limit / 1024**2:.0f} MiB",
            details={"limit": context_limit, "size": len(context)},
        )
    fields: dict[str, tuple[str, bytes, str] | str] = {
        "dockerfile": (DOCKERFILE, _text(dockerfile), "text/plain; charset=utf-8"),
        "templateYaml": (TEMPLATE_YAML, _text(template_yaml), "application/yaml"),
    }
    if context:
        fields["context"] = ("context.tar.gz", context, "application/gzip")
    if visibility is not None:
        fields["visibility"] = visibility
    content, kind = multipart(fields)
    return calls.submission_create(content, kind)


class Marketplace(Paged):
    """The template marketplace (docs/marketplace.md). Submitting, cancelling, yanking and
    deprecating need the templates.submit permission (a key: the `templates:submit` scope);
    reading needs `templates:read`; reviewing public submissions and featuring are for staff.

    sub = vb.marketplace.submit("./react-vite", visibility="public")
    sub = vb.marketplace.wait(sub, on_log=lambda text: print(text, end=""))
    vb.marketplace.templates(q="react", language="typescript", sort="rating")
    vb.marketplace.rate("react-vite", 5, "works out of the box")
    """

    def __init__(
        self, send: Callable[[calls.Call], Any], *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        self._send = send
        self._base_url = base_url  # for the build log's WebSocket (wait); None: wait polls
        self._api_key = api_key

    # Submissions

    def submit(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        visibility: str | None = None,
        dockerfile: str | bytes | None = None,
        template_yaml: str | bytes | None = None,
        context: bytes | None = None,
        context_limit: int = CONTEXT_MAX,
    ) -> Any:
        """Queues a template version for validation (build, policy checks, smoke test) and answers
        its `Submission` (`queued`). `path`: a directory with a `Dockerfile`, a `template.yaml` and
        the other files of the build context (or the template.yaml's path); or give `dockerfile=`,
        `template_yaml=` and optionally `context=` (a tar's bytes). `visibility`: `private` (the
        default: the organization only, published without review) or `public` (after staff review).

        The template.yaml, Dockerfile and context are checked at once: `InvalidTemplateYamlError`
        (`details["fields"]`), `InvalidDockerfileError`, `InvalidBuildContextError`,
        `BuildContextTooLargeError` (also before sending, above `context_limit` bytes)."""
        call = submission_body(
            path,
            dockerfile=dockerfile,
            template_yaml=template_yaml,
            context=context,
            visibility=visibility,
            context_limit=context_limit,
        )
        return self._send(call)

    def submission(self, submission: SubmissionRef, *, log_offset: int | None = None) -> Any:
        """A submission with its build log (`build_log`; with `log_offset`, only what follows that
        byte of the whole log, a previous `log_size`), smoke test output and accepted spec."""
        return self._send(calls.submission_get(submission_id(submission), log_offset))

    def submissions(self, *, state: str | None = None, all_orgs: bool = False, limit: int | None = None) -> Any:
        """The organization's submissions, newest first (every page, or the first `limit`); `state`
        filters them. Staff: `all_orgs=True` lists every organization's (`state="awaiting_review"`)."""
        params = {"state": state, "allOrgs": "true" if all_orgs else None}
        return self._collect(lambda size, offset: calls.submissions_list({**params, **_page(size, offset)}), limit)

    def review(self, submission: SubmissionRef, approve: bool, reason: str | None = None) -> Any:
        """Approves (publishes) or rejects (`reason` required, shown to the author) a submission that
        is awaiting review. Public submissions: staff only."""
        return self._send(calls.submission_review(submission_id(submission), approve, reason))

    def cancel(self, submission: SubmissionRef) -> Any:
        """Cancels a queued submission (`SubmissionStateError` once its validation started)."""
        return self._send(calls.submission_cancel(submission_id(submission)))

    def wait(
        self,
        submission: SubmissionRef,
        *,
        on_log: LogCallback | None = None,
        until_published: bool = False,
        timeout: float | None = None,
        poll: float = POLL,
        check: bool = False,
        live: bool = True,
    ) -> Any:
        """Follows a submission until it stops moving and answers its last state: published, failed,
        rejected, cancelled, or awaiting_review (a public one through the pipeline, waiting for staff;
        `until_published=True` waits for the review too). `on_log(text)` gets each new part of the
        build log as it comes: live from the build log's WebSocket (`live=False`: by polling every
        `poll` seconds; a stream that cannot open or breaks goes on by polling from where it was).
        `timeout` seconds: `TimeoutError`. `check=True`: a failed, rejected or cancelled one raises
        `SubmissionFailedError` (its `failed_step` and `message` say why)."""
        ident, deadline, offset = submission_id(submission), _deadline(timeout), None
        if on_log is not None and live and self._base_url:
            offset = _log_live(log_ws(self._base_url, ident), self._api_key, on_log, deadline)
        while True:
            current, offset = _follow(self._send(calls.submission_get(ident, offset)), offset, on_log)
            if _done(current, until_published):
                return _checked(current, check)
            _check_deadline(deadline, ident)
            time.sleep(poll)

    # The catalogue

    def templates(
        self,
        q: str | None = None,
        *,
        language: str | None = None,
        tag: str | None = None,
        featured: bool | None = None,
        official: bool | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> Any:
        """The catalogue's templates the organization sees (built-in ones, public ones and its own
        private ones), every page or the first `limit`: `q` searches names, descriptions and tags;
        `official=False` only community ones; `sort` is rating, usage, newest, name (default:
        featured first)."""
        params = {"q": q, "language": language, "tag": tag, "featured": featured, "official": official, "sort": sort}
        return self._collect(lambda size, offset: calls.catalogue_list({**params, **_page(size, offset)}), limit)

    def template(self, name: TemplateRef) -> Any:
        """One template with its readme, versions (newest first), rating and usage."""
        return self._send(calls.catalogue_get(template_name(name)))

    def reviews(self, name: TemplateRef, *, limit: int | None = None) -> Any:
        """The template's reviews, newest first."""
        ident = template_name(name)
        return self._collect(lambda size, offset: calls.reviews_list(ident, size, offset), limit)

    def rate(self, name: TemplateRef, rating: int, text: str | None = None) -> Any:
        """Rates the template 1-5 with an optional text; sent again, it edits your review. Only users
        who created a sandbox from it may (`ReviewNotAllowedError`)."""
        return self._send(calls.review_upsert(template_name(name), rating, text))

    def yank(self, name: TemplateRef, version: str, reason: str | None = None) -> Any:
        """Hides a version from new creates (running sandboxes keep it); answers the `TemplateVersion`.
        The template's organization's admins, or staff."""
        return self._send(calls.version_yank(template_name(name), version, reason))

    def deprecate(self, name: TemplateRef, message: str, replacement: str | None = None) -> Any:
        """Sets a deprecation notice with a suggested replacement (an empty `message` clears it)."""
        return self._send(calls.template_deprecate(template_name(name), message, replacement))

    def feature(self, name: TemplateRef, featured: bool = True, rank: int | None = None) -> Any:
        """Staff: features a template in the catalogue (a lower `rank` first) or stops featuring it."""
        return self._send(calls.template_feature(template_name(name), featured, rank))


class AsyncMarketplace(AsyncPaged, Marketplace):
    """`vb.marketplace` of `AsyncVibeBox`: the same methods, awaited."""

    async def submit(self, path: str | os.PathLike[str] | None = None, **options: Any) -> Any:  # type: ignore[override]
        options.setdefault("context_limit", CONTEXT_MAX)
        call = await asyncio.to_thread(
            submission_body,
            path,
            dockerfile=options.get("dockerfile"),
            template_yaml=options.get("template_yaml"),
            context=options.get("context"),
            visibility=options.get("visibility"),
            context_limit=options["context_limit"],
        )
        return await self._send(call)

    async def wait(  # type: ignore[override]
        self,
        submission: SubmissionRef,
        *,
        on_log: LogCallback | None = None,
        until_published: bool = False,
        timeout: float | None = None,
        poll: float = POLL,
        check: bool = False,
        live: bool = True,
    ) -> Submission:
        ident, deadline, offset = submission_id(submission), _deadline(timeout), None
        if on_log is not None and live and self._base_url:
            offset = await _alog_live(log_ws(self._base_url, ident), self._api_key, on_log, deadline)
        while True:
            current, offset = _follow(await self._send(calls.submission_get(ident, offset)), offset, on_log)
            if _done(current, until_published):
                return _checked(current, check)
            _check_deadline(deadline, ident)
            await asyncio.sleep(poll)


def _page(size: int, offset: int) -> dict[str, int]:
    return {"limit": size, "offset": offset}


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _check_deadline(deadline: float | None, ident: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"submission {ident} is still being validated", code="timeout")


def log_ws(base_url: str, ident: str) -> str:
    """The build log's WebSocket (docs/marketplace.md, "Build log over WebSocket")."""
    return ws_url(base_url, f"/ws/v1/marketplace/submissions/{calls.segment(ident)}/log")


# The most one build log stream message may hold (the server sends parts of at most about 1 MiB):
# a bigger one is not the server's, and the stream is left for polling.
FRAME_MAX = 4 * 1024**2


class _BadFrame(Exception):
    """A stream message that is not what the server sends (not JSON, not an object, an offset that
    is not a whole number or goes backwards, too big): the follow goes on by polling."""


def _frame_offset(value: Any, previous: int | None) -> int:
    """The offset a message says it reached: a whole number, never before the one already reached."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (previous or 0):
        raise _BadFrame(f"offset {value!r} after {previous!r}")
    return value


def _frame_read(raw: str | bytes, offset: int | None) -> tuple[str, int | None, bool]:
    """A stream message as (its log text, the offset reached, whether the pipeline let go of the
    submission); _BadFrame when it is not what the server sends."""
    if len(raw) > FRAME_MAX:
        raise _BadFrame(f"a message of {len(raw)} bytes")
    try:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "log":
            text = message.get("text") or ""
            if not isinstance(text, str):
                raise TypeError(f"text {type(text).__name__}")
            return text, _frame_offset(message.get("offset"), offset), False
        if kind == "state":
            size = message.get("logSize")
            return "", offset if size is None else _frame_offset(size, offset), True
        return "", offset, False
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise _BadFrame(str(exc)) from exc


def _log_message(raw: str | bytes, on_log: LogCallback, offset: int | None) -> tuple[int | None, bool]:
    """Hands a stream message's log text to `on_log`; answers (the offset reached, whether the
    stream is done: the pipeline let go of the submission). _BadFrame for a message that is not
    the server's (`on_log`'s own errors are the caller's)."""
    text, reached, done = _frame_read(raw, offset)
    if text:
        on_log(text)
    return reached, done


def _log_live(url: str, api_key: str | None, on_log: LogCallback, deadline: float | None) -> int | None:
    """Follows the build log over the WebSocket until the server sends the final state, closes, or
    `deadline` passes; answers the byte offset reached (None: nothing came), where polling goes on.
    A stream the server refuses (another organization's submission, an old server) leaves it to
    polling, which reports the error as the API says it."""
    try:
        connection = open_ws(url, api_key)
    except VibeBoxError:
        return None
    offset: int | None = None
    with contextlib.closing(connection):
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = connection.recv(timeout=wait)
            except (builtins.TimeoutError, ConnectionClosed):
                return offset
            try:
                offset, done = _log_message(raw, on_log, offset)
            except _BadFrame:
                return offset  # polling goes on from the last good offset
            if done:
                return offset


async def _alog_live(url: str, api_key: str | None, on_log: LogCallback, deadline: float | None) -> int | None:
    """`_log_live` for the async client."""
    try:
        connection = await aopen_ws(url, api_key)
    except VibeBoxError:
        return None
    offset: int | None = None
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = await asyncio.wait_for(connection.recv(), wait)
            except (builtins.TimeoutError, ConnectionClosed):
                return offset
            try:
                offset, done = _log_message(raw, on_log, offset)
            except _BadFrame:
                return offset  # polling goes on from the last good offset
            if done:
                return offset
    finally:
        await connection.close()


def _follow(current: Submission, offset: int | None, on_log: LogCallback | None) -> tuple[Submission, int]:
    """Hands the log's new part to `on_log`; answers the offset to ask from next time. The first
    look takes the whole log the server kept (its head and newest tail when it was long)."""
    if on_log is not None and current.build_log:
        on_log(current.build_log)
    return current, current.log_size


def _done(current: Submission, until_published: bool) -> bool:
    if until_published:
        return current.ended
    return current.state in WAIT_DONE


def _checked(current: Submission, check: bool) -> Submission:
    if check and current.state in SUBMISSION_FAILED:
        raise SubmissionFailedError(current)
    return current


__all__ = [
    "AsyncMarketplace",
    "IgnoreRules",
    "Marketplace",
    "multipart",
    "pack_context",
]
