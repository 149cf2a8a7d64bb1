"""VibeBox's MCP tools, defined once: input and output models (their JSON schemas are what MCP
clients see), descriptions, hints, and the handlers, which call the REST API through `AsyncVibeBox`.

The server enforces everything (scopes, owners, limits); a tool only translates. Nothing here
depends on the `mcp` package: `server.py` turns `TOOLS` into an MCP server.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import calls
from ..aio import AsyncSandbox, AsyncVibeBox
from ..models import ExecutionResult, FileEntry, SandboxInfo

SANDBOX_ID = "sandbox_id"
READ_LIMIT = 1024 * 1024  # file_read's default max_bytes
READ_MAX = 10 * 1024 * 1024
LIST_LIMIT = 1000


class ToolFailure(Exception):
    """A failure a tool reports itself (not an API error): becomes an `isError` result with `code`."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


# ---- models -------------------------------------------------------------------------------------


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)


SandboxRef = Field(description="The sandbox: its id (sbx_...) or its name.")
Duration = int | str
TIMEOUT_DOC = "Seconds, or a duration such as '30s', '5m', '1h'."


class SandboxOut(Output):
    id: str = Field(description="The sandbox id (sbx_...): pass it as sandbox_id to the other tools.")
    name: str
    template: str
    status: str = Field(
        description="creating, running, paused, stopped, destroying, destroyed, error or unreachable (node down)."
    )
    status_reason: str = ""
    ephemeral: bool = False
    created_at: str | None = None
    started_at: str | None = None
    expires_at: str | None = Field(None, description="When the server destroys it by itself, if ever.")
    resources: dict[str, Any] = Field(default_factory=dict, description="cpu (cores), memory and disk (bytes).")
    metadata: dict[str, str] = Field(default_factory=dict)


def _sandbox_out(info: SandboxInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "template": info.template,
        "status": info.status,
        "status_reason": info.status_reason,
        "ephemeral": info.ephemeral,
        "created_at": info.created_at,
        "started_at": info.started_at,
        "expires_at": info.expires_at,
        "resources": info.resources or {},
        "metadata": info.metadata or {},
    }


class SandboxCreateIn(Input):
    template: str = Field(description="The template to start from, e.g. 'python-3' or 'node-20'.")
    name: str | None = Field(None, description="A name unique among your sandboxes; usable instead of the id.")
    timeout: Duration | None = Field(
        None, description="Time to live, after which the server destroys it ('2h', '30m'). " + TIMEOUT_DOC
    )
    ephemeral: bool = Field(False, description="Destroy it automatically when its timeout ends (default 30m).")
    env: dict[str, str] | None = Field(None, description="Environment variables for every command.")
    metadata: dict[str, str] | None = Field(None, description="Free-form labels, e.g. {'task': 'fix-tests'}.")
    cpu: float | None = Field(None, gt=0, description="CPU cores (default: the server's, usually 1).")
    memory: str | None = Field(None, description="Memory limit such as '512m' or '2g'.")
    git: str | None = Field(None, description="A repository URL to clone into /repo at creation.")


class SandboxListIn(Input):
    status: list[str] | None = Field(
        None, description="Only these statuses (default: every status but destroyed), e.g. ['running']."
    )
    template: str | None = Field(None, description="Only sandboxes of this template.")
    name: str | None = Field(None, description="Only the sandbox with this exact name.")
    limit: int = Field(50, ge=1, le=100, description="At most this many, newest first.")


class SandboxListOut(Output):
    sandboxes: list[SandboxOut]
    total: int = Field(description="How many sandboxes match (may exceed the ones listed).")


class SandboxIn(Input):
    sandbox_id: str = SandboxRef


class SandboxDestroyOut(Output):
    sandbox_id: str
    destroyed: bool


class ExecIn(Input):
    sandbox_id: str = SandboxRef
    command: str | list[str] = Field(
        description="A shell command line ('npm test -- --watch=false'), or an argument list run without a shell."
    )
    cwd: str | None = Field(None, description="Working directory (default: the template's, usually /workspace).")
    env: dict[str, str] | None = Field(None, description="Extra environment variables for this command only.")
    timeout: Duration | None = Field(
        None, description="Kill the command and all it started after this long (default 60s). " + TIMEOUT_DOC
    )
    stdin: str | None = Field(None, description="Text given to the command on its standard input.")


class ExecOut(Output):
    execution_id: str | None = Field(description="The command's id in the sandbox's history.")
    exit_code: int | None = Field(description="0 for success; null when it was killed (timeout).")
    stdout: str
    stderr: str
    status: str = Field(description="completed, failed or timeout.")
    duration_ms: int
    truncated: bool = Field(description="True when the output exceeded the server's cap and was cut.")
    oom_killed: bool = Field(description="True when the sandbox ran out of memory during the command.")


def _exec_out(result: ExecutionResult) -> dict[str, Any]:
    return {
        "execution_id": result.execution_id,
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "status": result.status,
        "duration_ms": result.duration,
        "truncated": result.truncated,
        "oom_killed": result.oom_killed,
    }


class RunCodeIn(Input):
    sandbox_id: str = SandboxRef
    code: str = Field(
        description="The snippet. JavaScript/TypeScript: a top-level `return` gives the return value; "
        "Python and Ruby: the last expression's value is returned. Go, Rust and Java snippets are compiled, "
        "then run (a snippet without a `main` gets one); the sandbox's template must have the language "
        "(go-1.24, rust-1.85, java-21, ruby-3.3)."
    )
    language: Literal["auto", "javascript", "typescript", "python", "shell", "go", "rust", "ruby", "java"] = Field(
        "auto", description="Default (auto): detected from the code, else the template's own language."
    )
    cwd: str | None = Field(None, description="Working directory (default: the template's).")
    env: dict[str, str] | None = Field(None, description="Extra environment variables for this run only.")
    timeout: Duration | None = Field(None, description="Kill it after this long (default 60s). " + TIMEOUT_DOC)


class RunCodeOut(ExecOut):
    language: str | None = None
    phase: Literal["compile", "run"] | None = Field(
        None,
        description="compile: the build failed or timed out (Go, Rust, Java, TypeScript), its messages in "
        "stderr; run: the program ran.",
    )
    return_value: Any = Field(
        None,
        description="The snippet's value, as JSON (null when it has none).",
        json_schema_extra={
            "anyOf": [{"type": kind} for kind in ("object", "array", "string", "number", "boolean", "null")]
        },
    )


class FileReadIn(Input):
    sandbox_id: str = SandboxRef
    path: str = Field(description="The file; relative paths start at /workspace.")
    encoding: Literal["auto", "utf-8", "base64"] = Field(
        "auto", description="auto: UTF-8 text when the file is text, else base64."
    )
    max_bytes: int = Field(READ_LIMIT, ge=1, le=READ_MAX, description="Read at most this many bytes.")


class FileReadOut(Output):
    path: str
    content: str
    encoding: Literal["utf-8", "base64"]
    size: int | None = Field(description="The file's whole size in bytes.")
    truncated: bool = Field(description="True when only the first max_bytes were read.")


class FileWriteIn(Input):
    sandbox_id: str = SandboxRef
    path: str = Field(description="Where to write; missing directories are created. Relative to /workspace.")
    content: str = Field(description="The whole new content of the file (it is replaced).")
    encoding: Literal["utf-8", "base64"] = Field("utf-8", description="base64 for binary content.")
    mode: str | None = Field(None, pattern=r"^0?[0-7]{3,4}$", description="Permissions in octal, e.g. '755'.")


class FileWriteOut(Output):
    path: str
    size: int | None
    mode: str | None


class FileListIn(Input):
    sandbox_id: str = SandboxRef
    path: str = Field("/workspace", description="The directory; relative paths start at /workspace.")
    recursive: bool = Field(False, description="Also list everything below it.")
    max_entries: int = Field(LIST_LIMIT, ge=1, le=10000, description="List at most this many entries.")


class FileEntryOut(Output):
    name: str
    path: str
    type: str = Field(description="file, directory or symlink.")
    size: int
    mode: str
    modified_at: float | None = Field(description="Unix time.")
    symlink_target: str | None = None


class FileListOut(Output):
    path: str
    entries: list[FileEntryOut]
    truncated: bool


def _entry_out(entry: FileEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "path": entry.path,
        "type": entry.type,
        "size": entry.size,
        "mode": entry.mode,
        "modified_at": entry.modified_at,
        "symlink_target": entry.symlink_target,
    }


class FileDeleteIn(Input):
    sandbox_id: str = SandboxRef
    path: str = Field(description="The file or directory; relative paths start at /workspace.")
    recursive: bool = Field(False, description="Needed to delete a directory that is not empty.")


class FileDeleteOut(Output):
    path: str
    deleted: bool


WATCH_EVENTS_MAX = 10000


class WatchFilesIn(Input):
    sandbox_id: str = SandboxRef
    path: str = Field("/workspace", description="The directory to watch; relative paths start at /workspace.")
    seconds: float = Field(10, gt=0, le=300, description="How long to collect changes (at most 300).")
    recursive: bool = Field(True, description="Its subdirectories too.")
    excludes: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Glob patterns to leave out: 'node_modules', '*.pyc' (with a '/': a path below the directory).",
    )
    max_events: int = Field(1000, ge=1, le=WATCH_EVENTS_MAX, description="Stop early after this many events.")


class WatchEventOut(Output):
    type: str = Field(description="create, write, remove, rename, chmod or overflow (events lost: rescan).")
    path: str = Field(description="Absolute, in the sandbox.")
    is_dir: bool
    time: str
    from_path: str | None = Field(None, description="rename: the old path.")
    reason: str | None = Field(None, description="overflow: why events were lost.")


class WatchFilesOut(Output):
    path: str
    events: list[WatchEventOut]
    truncated: bool = Field(description="max_events was reached before the time was up.")
    ended: str | None = Field(
        description="Why the watch ended early, if it did: root_removed, root_moved, unmounted, sandbox_stopped."
    )


REPO_DOC = "The repository's directory (default /repo); relative paths start at /workspace."


class GitCloneIn(Input):
    sandbox_id: str = SandboxRef
    url: str = Field(description="https://, http://, ssh://, git:// or user@host:path URL.")
    path: str | None = Field(None, description="Where to clone (default /repo); relative paths start at /workspace.")
    branch: str | None = Field(None, description="The branch to check out (default: the remote's default).")
    depth: int | None = Field(None, ge=1, description="Shallow clone with this many commits.")
    token: str | None = Field(None, description="An HTTPS access token for a private repository (not stored).")


class GitCloneOut(Output):
    path: str
    url: str
    branch: str
    commit: str


class GitPathIn(Input):
    sandbox_id: str = SandboxRef
    path: str | None = Field(None, description=REPO_DOC)


class GitChange(Output):
    path: str
    status: str = Field(description="git's one-letter status: M modified, A added, D deleted, R renamed...")


class GitStatusOut(Output):
    path: str
    branch: str | None
    upstream: str | None
    ahead: int
    behind: int
    commit: str | None
    staged: list[GitChange]
    unstaged: list[GitChange]
    untracked: list[str]
    conflicted: list[str]
    clean: bool


class GitDiffIn(GitPathIn):
    staged: bool = Field(False, description="Diff the staged changes instead of the unstaged ones.")
    file: str | None = Field(None, description="Limit the diff to this file (relative to the repository).")


class GitDiffFile(Output):
    path: str
    additions: int | None
    deletions: int | None
    binary: bool


class GitDiffOut(Output):
    path: str
    staged: bool
    diff: str = Field(description="The unified diff.")
    truncated: bool
    files: list[GitDiffFile]


class GitAuthor(Input):
    name: str
    email: str


class GitCommitIn(GitPathIn):
    message: str = Field(min_length=1, description="The commit message.")
    all: bool = Field(False, description="Stage every change first (new, modified and deleted files).")
    author: GitAuthor | None = Field(None, description="Default: the repository's or the key owner's identity.")
    allow_empty: bool = Field(False, description="Commit even with no changes.")


class GitCommitOut(Output):
    path: str
    commit: str
    message: str


class GitPushIn(GitPathIn):
    remote: str = Field("origin", description="The remote's name.")
    branch: str | None = Field(None, description="The branch to push (default: the current one).")
    set_upstream: bool = Field(False, description="Make the remote branch the current branch's upstream.")
    force: bool = Field(False, description="Overwrite the remote branch (with lease).")
    token: str | None = Field(None, description="An HTTPS access token (not stored).")


class GitPushOut(Output):
    path: str
    remote: str
    branch: str
    commit: str


class EnvGetIn(Input):
    sandbox_id: str = SandboxRef
    name: str | None = Field(None, description="One variable; leave out for all of them.")


class EnvValue(Output):
    value: str = Field(description="The value; secret values read '********'.")
    secret: bool


class EnvOut(Output):
    variables: dict[str, EnvValue]


class EnvSetIn(Input):
    sandbox_id: str = SandboxRef
    variables: dict[str, str | None] = Field(
        description="NAME to value; null removes the variable. Others are kept.", min_length=1
    )
    secret: bool = Field(False, description="Store these values as secrets: never shown again, masked in output.")


class CpuOut(Output):
    percent: float | None = Field(description="CPU use in % of one core (200 = two cores busy).")
    limit: float = Field(description="The sandbox's CPU limit in cores.")
    percent_of_limit: float | None
    online_cpus: int


class MemoryOut(Output):
    usage: int = Field(description="Bytes in use.")
    limit: int = Field(description="Bytes allowed.")
    percent: float | None


class DiskOut(Output):
    workspace: int | None = Field(description="Bytes used in /workspace (null while paused).")
    limit: int | None


class PidsOut(Output):
    current: int
    limit: int | None


class MetricsOut(Output):
    sandbox_id: str
    status: str
    timestamp: str
    cpu: CpuOut
    memory: MemoryOut
    disk: DiskOut
    pids: PidsOut


class PackagesInstallIn(Input):
    sandbox_id: str = SandboxRef
    manager: Literal["pip", "uv", "npm", "cargo", "gem", "bundler", "go", "maven"] = Field(
        description="The package manager: one of the sandbox template's (python: pip; node: npm; rust: cargo; "
        "ruby: gem or bundler; go: go; java: maven)."
    )
    packages: list[str] = Field(
        description="Package specs, a name and an optional version in the manager's syntax: 'requests==2.32.3', "
        "'left-pad@1.3.0', 'serde@1', 'rake:13.2.1', 'github.com/google/uuid@v1.6.0', "
        "'org.apache.commons:commons-lang3:3.17.0'. No options.",
        min_length=1,
    )
    dev: bool = Field(False, description="A development dependency (npm, cargo, bundler).")
    cwd: str | None = Field(None, description="The project directory (default /workspace).")
    timeout: Duration | None = Field(None, description="Stop the install after this long. " + TIMEOUT_DOC)


class PackagesInstallOut(ExecOut):
    manager: str
    packages: list[str]


class PackagesListIn(Input):
    sandbox_id: str = SandboxRef
    manager: Literal["pip", "uv", "npm", "cargo", "gem", "bundler", "go", "maven"]
    cwd: str | None = Field(None, description="The project directory (default /workspace).")


class PackageOut(Output):
    name: str
    version: str


class PackagesListOut(Output):
    packages: list[PackageOut]


# ---- code contexts: run_code (a stateful interpreter; images come back as MCP image content) ----

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
IMAGES = "_images"  # an answer's key the server turns into image content blocks (never part of the output)


class CodeIn(Input):
    sandbox_id: str = SandboxRef
    code: str = Field(
        description="The code to run in a persistent interpreter: variables, imports and state are kept "
        "between calls in the same context. The last expression's value is returned (as in a notebook); "
        "matplotlib figures come back as images, pandas DataFrames as text and HTML tables."
    )
    language: Literal["python", "javascript"] = Field("python", description="The interpreter's language.")
    context: str | None = Field(
        None,
        description="A context id (ctx_...) from an earlier run_code. Default: the sandbox's first context "
        "of this language, made on first use.",
    )
    timeout: Duration | None = Field(None, description="Interrupt the code after this long. " + TIMEOUT_DOC)


class CodeResultOut(Output):
    is_main_result: bool = Field(description="True for the value of the code's last expression.")
    formats: list[str] = Field(description="The MIME types this output has.")
    text: str | None = Field(None, description="text/plain.")
    html: str | None = Field(None, description="text/html (e.g. a DataFrame's table).")
    markdown: str | None = None
    json_data: Any = Field(
        None,
        description="application/json: any JSON value.",
        # a bare Any is `{}` in the schema, which strict clients warn accepts anything unsaid
        json_schema_extra={
            "anyOf": [
                {"type": "object", "additionalProperties": True},
                {"type": "array"},
                {"type": "string"},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        },
    )
    svg: str | None = None
    image: str | None = Field(None, description="The image's MIME type; the image itself is an image content block.")


class CodeErrorOut(Output):
    name: str
    value: str
    traceback: str


class CodeOut(Output):
    context: str = Field(description="The context id: pass it back as `context` to keep the state.")
    results: list[CodeResultOut]
    stdout: str
    stderr: str
    error: CodeErrorOut | None = Field(description="The exception the code raised, if any (not a tool failure).")
    execution_count: int | None = None
    duration_ms: int | None = None
    truncated: bool = False


# ---- handlers -----------------------------------------------------------------------------------


def sandbox(client: AsyncVibeBox, ref: str) -> AsyncSandbox:
    """A handle on a sandbox by id or name, without a request (the API resolves either)."""
    return AsyncSandbox(client, SandboxInfo(id=ref, name=ref, template="", status=""))


async def sandbox_create(client: AsyncVibeBox, args: SandboxCreateIn) -> dict[str, Any]:
    resources = {k: v for k, v in {"cpu": args.cpu, "memory": args.memory}.items() if v is not None} or None
    created = await client.create(
        args.template,
        name=args.name,
        auto_start=True,
        ephemeral=args.ephemeral or None,
        timeout=args.timeout,
        env=args.env,
        metadata=args.metadata,
        resources=resources,
        git=args.git,
    )
    return _sandbox_out(created.info)


async def sandbox_list(client: AsyncVibeBox, args: SandboxListIn) -> dict[str, Any]:
    params = {
        "status": ",".join(args.status) if args.status else None,
        "template": args.template,
        "name": args.name,
        "limit": args.limit,
        "offset": 0,
    }
    page, total, _ = await client._transport.send(calls.list_sandboxes(params))
    return {"sandboxes": [_sandbox_out(info) for info in page], "total": total}


async def sandbox_info(client: AsyncVibeBox, args: SandboxIn) -> dict[str, Any]:
    return _sandbox_out((await client.get(args.sandbox_id)).info)


async def sandbox_destroy(client: AsyncVibeBox, args: SandboxIn) -> dict[str, Any]:
    await sandbox(client, args.sandbox_id).destroy()
    return {"sandbox_id": args.sandbox_id, "destroyed": True}


async def sandbox_exec(client: AsyncVibeBox, args: ExecIn) -> dict[str, Any]:
    result = await sandbox(client, args.sandbox_id).exec(
        args.command, cwd=args.cwd, env=args.env, timeout=args.timeout, stdin=args.stdin
    )
    return _exec_out(result)  # type: ignore[arg-type]


async def sandbox_run_code(client: AsyncVibeBox, args: RunCodeIn) -> dict[str, Any]:
    language = None if args.language == "auto" else args.language
    result = await sandbox(client, args.sandbox_id).execute(
        args.code, language=language, cwd=args.cwd, env=args.env, timeout=args.timeout
    )
    return {
        **_exec_out(result),
        "language": result.language,
        "phase": result.phase,
        "return_value": result.return_value,
    }


async def file_read(client: AsyncVibeBox, args: FileReadIn) -> dict[str, Any]:
    response = await client._transport.send(calls.download(args.sandbox_id, args.path))
    try:
        if response.headers.get("content-type", "").startswith(("application/x-tar", "application/gzip")):
            raise ToolFailure("is_a_directory", f"{args.path} is a directory; use file_list.", {"path": args.path})
        size = response.headers.get("content-length")
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > args.max_bytes:
                break
    finally:
        await response.aclose()
    truncated = len(data) > args.max_bytes
    data = data[: args.max_bytes]
    encoding = args.encoding
    text = None
    if encoding != "base64":
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            # A cut may split a character: accept an incomplete last one when truncated.
            if truncated and error.start >= len(data) - 3 and error.reason == "unexpected end of data":
                text = bytes(data[: error.start]).decode("utf-8")
            elif encoding == "utf-8":
                raise ToolFailure(
                    "not_utf8", f"{args.path} is not UTF-8 text; read it with encoding 'base64'.", {"path": args.path}
                ) from None
    if text is None:
        return {
            "path": args.path,
            "content": base64.b64encode(bytes(data)).decode(),
            "encoding": "base64",
            "size": int(size) if size and size.isdigit() else None,
            "truncated": truncated,
        }
    return {
        "path": args.path,
        "content": text,
        "encoding": "utf-8",
        "size": int(size) if size and size.isdigit() else None,
        "truncated": truncated,
    }


async def file_write(client: AsyncVibeBox, args: FileWriteIn) -> dict[str, Any]:
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except (binascii.Error, ValueError):
            raise ToolFailure("invalid_base64", "content is not valid base64.") from None
    else:
        data = args.content.encode("utf-8")
    mode = int(args.mode, 8) if args.mode else None
    answer = await sandbox(client, args.sandbox_id).files.write(args.path, data, mode=mode)
    return {"path": answer.get("path") or args.path, "size": answer.get("size"), "mode": answer.get("mode")}


async def file_list(client: AsyncVibeBox, args: FileListIn) -> dict[str, Any]:
    entries = await sandbox(client, args.sandbox_id).files.list(args.path, recursive=args.recursive)
    shown = entries[: args.max_entries]
    path = posixpath.normpath(posixpath.join("/workspace", args.path))
    return {"path": path, "entries": [_entry_out(e) for e in shown], "truncated": len(entries) > len(shown)}


async def file_delete(client: AsyncVibeBox, args: FileDeleteIn) -> dict[str, Any]:
    await sandbox(client, args.sandbox_id).files.delete(args.path, recursive=args.recursive)
    return {"path": args.path, "deleted": True}


async def watch_files(client: AsyncVibeBox, args: WatchFilesIn) -> dict[str, Any]:
    """Collects the changes for `seconds` (the server ends the watch then), or until max_events."""
    box = sandbox(client, args.sandbox_id)
    events: list[dict[str, Any]] = []
    truncated, ended = False, None
    watch = await box.files.watch(
        args.path, recursive=args.recursive, excludes=args.excludes or None, timeout=args.seconds
    )
    async with watch:
        async for event in watch:
            if event.type == "end":
                ended = None if event.reason == "timeout" else event.reason
                break
            if len(events) == args.max_events:
                truncated = True
                break
            events.append(
                {
                    "type": event.type,
                    "path": event.path,
                    "is_dir": event.is_dir,
                    "time": event.time,
                    "from_path": event.from_path,
                    "reason": event.reason,
                }
            )
    return {"path": watch.root, "events": events, "truncated": truncated, "ended": ended}


def _token_auth(token: str | None) -> dict[str, Any] | None:
    return {"type": "token", "token": token} if token else None


async def git_clone(client: AsyncVibeBox, args: GitCloneIn) -> dict[str, Any]:
    git = sandbox(client, args.sandbox_id).git
    return await git.clone(args.url, branch=args.branch, path=args.path, depth=args.depth, auth=_token_auth(args.token))


async def git_status(client: AsyncVibeBox, args: GitPathIn) -> dict[str, Any]:
    return await sandbox(client, args.sandbox_id).git.status(path=args.path)


async def git_diff(client: AsyncVibeBox, args: GitDiffIn) -> dict[str, Any]:
    return await sandbox(client, args.sandbox_id).git.diff(path=args.path, staged=args.staged, file=args.file)


async def git_commit(client: AsyncVibeBox, args: GitCommitIn) -> dict[str, Any]:
    return await sandbox(client, args.sandbox_id).git.commit(
        args.message,
        all=args.all,
        path=args.path,
        author=args.author.model_dump() if args.author else None,
        allow_empty=args.allow_empty or None,
    )


async def git_push(client: AsyncVibeBox, args: GitPushIn) -> dict[str, Any]:
    return await sandbox(client, args.sandbox_id).git.push(
        path=args.path,
        remote=args.remote,
        branch=args.branch,
        auth=_token_auth(args.token),
        set_upstream=args.set_upstream or None,
        force=args.force or None,
    )


def _variables(found: dict[str, Any]) -> dict[str, Any]:
    return {"variables": {name: {"value": var.value, "secret": var.secret} for name, var in found.items()}}


async def env_get(client: AsyncVibeBox, args: EnvGetIn) -> dict[str, Any]:
    env = sandbox(client, args.sandbox_id).env
    if args.name:
        var = await env.get(args.name)
        return _variables({var.name: var})
    return _variables(await env.all())


async def env_set(client: AsyncVibeBox, args: EnvSetIn) -> dict[str, Any]:
    values = {
        name: {"value": value, "secret": True} if args.secret and value is not None else value
        for name, value in args.variables.items()
    }
    return _variables(await sandbox(client, args.sandbox_id).env.set(values))


async def sandbox_metrics(client: AsyncVibeBox, args: SandboxIn) -> dict[str, Any]:
    return await sandbox(client, args.sandbox_id).metrics()


async def packages_install(client: AsyncVibeBox, args: PackagesInstallIn) -> dict[str, Any]:
    result = await sandbox(client, args.sandbox_id).packages.install(
        args.packages, manager=args.manager, dev=args.dev, cwd=args.cwd, timeout=args.timeout, check=False
    )
    return {**_exec_out(result), "manager": args.manager, "packages": args.packages}


async def packages_list(client: AsyncVibeBox, args: PackagesListIn) -> dict[str, Any]:
    found = await sandbox(client, args.sandbox_id).packages.list(manager=args.manager, cwd=args.cwd)
    return {"packages": [{"name": package.name, "version": package.version} for package in found]}


async def _code_context(box: AsyncSandbox, args: CodeIn) -> Any:
    if args.context:
        return await box.contexts.get(args.context)
    for found in await box.contexts.list():
        if found.language == args.language and found.status != "dead":
            return found
    return await box.contexts.create(language=args.language)


def _code_result_out(result: Any) -> tuple[dict[str, Any], dict[str, str] | None]:
    image_type = next((kind for kind in IMAGE_TYPES if result.data.get(kind)), None)
    out = {
        "is_main_result": result.is_main_result,
        "formats": result.formats,
        "text": result.text,
        "html": result.html,
        "markdown": result.markdown,
        "json_data": result.json,
        "svg": result.svg,
        "image": image_type,
    }
    return out, ({"mimeType": image_type, "data": result.data[image_type]} if image_type else None)


async def run_code(client: AsyncVibeBox, args: CodeIn) -> dict[str, Any]:
    box = sandbox(client, args.sandbox_id)
    context = await _code_context(box, args)
    execution = await context.run(args.code, timeout=args.timeout)
    pairs = [_code_result_out(result) for result in execution.results]
    error = execution.error
    return {
        "context": context.id,
        "results": [out for out, _ in pairs],
        "stdout": execution.stdout,
        "stderr": execution.stderr,
        "error": {"name": error.name, "value": error.value, "traceback": error.traceback} if error else None,
        "execution_count": execution.execution_count,
        "duration_ms": execution.duration_ms,
        "truncated": execution.truncated,
        IMAGES: [image for _, image in pairs if image],
    }


# ---- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolDef:
    name: str
    title: str
    description: str
    input: type[Input]
    output: type[Output]
    handler: Callable[[AsyncVibeBox, Any], Awaitable[dict[str, Any]]]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False
    per_sandbox: bool = True  # offered by a server fixed on one sandbox


TOOLS: list[ToolDef] = [
    ToolDef(
        "sandbox_create",
        "Create a sandbox",
        "Create and start a new isolated sandbox (a Linux container with /workspace) from a template, e.g. "
        "'python-3' or 'node-20'. Returns its id: pass it as sandbox_id to the other tools. Set a timeout "
        "('1h') so it cleans itself up; destroy it with sandbox_destroy when done.",
        SandboxCreateIn,
        SandboxOut,
        sandbox_create,
        open_world=True,
        per_sandbox=False,
    ),
    ToolDef(
        "sandbox_list",
        "List sandboxes",
        "List your sandboxes, newest first (every status but destroyed, unless status says otherwise).",
        SandboxListIn,
        SandboxListOut,
        sandbox_list,
        read_only=True,
        per_sandbox=False,
    ),
    ToolDef(
        "sandbox_info",
        "Sandbox details",
        "Show a sandbox: status, template, resources, when it expires, metadata.",
        SandboxIn,
        SandboxOut,
        sandbox_info,
        read_only=True,
    ),
    ToolDef(
        "sandbox_destroy",
        "Destroy a sandbox",
        "Destroy a sandbox: its container and its /workspace are deleted for good.",
        SandboxIn,
        SandboxDestroyOut,
        sandbox_destroy,
        destructive=True,
        idempotent=True,
        per_sandbox=False,
    ),
    ToolDef(
        "sandbox_exec",
        "Run a command",
        "Run a command in the sandbox and wait for it: exit code, stdout and stderr (each capped). A non-zero "
        "exit code is a normal result, not an error. The timeout kills the command and everything it started. "
        "Use cwd instead of 'cd dir &&'.",
        ExecIn,
        ExecOut,
        sandbox_exec,
        destructive=True,
        open_world=True,
    ),
    ToolDef(
        "sandbox_run_code",
        "Run a code snippet",
        "Run a code snippet (JavaScript, TypeScript, Python or shell) in the sandbox and get its output and "
        "its return value as JSON.",
        RunCodeIn,
        RunCodeOut,
        sandbox_run_code,
        destructive=True,
        open_world=True,
    ),
    ToolDef(
        "file_read",
        "Read a file",
        "Read a file from the sandbox. Text comes back as UTF-8, binary files as base64. Large files are cut "
        "at max_bytes (truncated: true).",
        FileReadIn,
        FileReadOut,
        file_read,
        read_only=True,
    ),
    ToolDef(
        "file_write",
        "Write a file",
        "Create or replace a file in the sandbox with the given content (parent directories are created).",
        FileWriteIn,
        FileWriteOut,
        file_write,
        destructive=True,
        idempotent=True,
    ),
    ToolDef(
        "file_list",
        "List a directory",
        "List a directory of the sandbox (default /workspace): names, types, sizes, modes, modification times.",
        FileListIn,
        FileListOut,
        file_list,
        read_only=True,
    ),
    ToolDef(
        "file_delete",
        "Delete a file",
        "Delete a file or directory in the sandbox (recursive: true for a directory with content).",
        FileDeleteIn,
        FileDeleteOut,
        file_delete,
        destructive=True,
        idempotent=True,
    ),
    ToolDef(
        "watch_files",
        "Watch for file changes",
        "Watch a directory of the sandbox for `seconds` and return what changed meanwhile (created, written, "
        "removed, renamed files), e.g. while a background process or dev server works. Returns after the time "
        "is up (or max_events); an `overflow` event means some changes were lost: list the directory again.",
        WatchFilesIn,
        WatchFilesOut,
        watch_files,
        read_only=True,
    ),
    ToolDef(
        "git_clone",
        "Clone a repository",
        "Clone a git repository into the sandbox (default /repo).",
        GitCloneIn,
        GitCloneOut,
        git_clone,
        open_world=True,
    ),
    ToolDef(
        "git_status",
        "Git status",
        "Show a repository's branch, upstream, ahead/behind counts, and staged, unstaged, untracked and "
        "conflicted files.",
        GitPathIn,
        GitStatusOut,
        git_status,
        read_only=True,
    ),
    ToolDef(
        "git_diff",
        "Git diff",
        "Show a repository's uncommitted changes as a unified diff (staged: true for what is staged), with "
        "per-file line counts.",
        GitDiffIn,
        GitDiffOut,
        git_diff,
        read_only=True,
    ),
    ToolDef(
        "git_commit",
        "Git commit",
        "Commit in a repository of the sandbox (all: true stages every change first). Fails with "
        "nothing_to_commit when there is nothing to commit.",
        GitCommitIn,
        GitCommitOut,
        git_commit,
    ),
    ToolDef(
        "git_push",
        "Git push",
        "Push a branch (default: the current one) of a repository to a remote (default origin).",
        GitPushIn,
        GitPushOut,
        git_push,
        open_world=True,
    ),
    ToolDef(
        "env_get",
        "Read environment variables",
        "Read the sandbox's stored environment variables (given to every command), or one of them. Secret "
        "values read '********'.",
        EnvGetIn,
        EnvOut,
        env_get,
        read_only=True,
    ),
    ToolDef(
        "env_set",
        "Set environment variables",
        "Set (or with null, remove) environment variables given to every later command in the sandbox. "
        "Other variables are kept. secret: true stores values that are never shown again.",
        EnvSetIn,
        EnvOut,
        env_set,
        idempotent=True,
    ),
    ToolDef(
        "sandbox_metrics",
        "Sandbox metrics",
        "Measure a running sandbox's resource use now: CPU %, memory used and its limit (bytes), disk used "
        "by /workspace (bytes), and processes.",
        SandboxIn,
        MetricsOut,
        sandbox_metrics,
        read_only=True,
    ),
    ToolDef(
        "packages_install",
        "Install packages",
        "Install packages from the registry into the sandbox's project with its package manager (pip into the "
        "virtualenv, npm into package.json, cargo add, gem, bundle add, go get, maven), and wait for it: exit code "
        "and output, like sandbox_exec. A failed install is a normal result (exit_code non-zero).",
        PackagesInstallIn,
        PackagesInstallOut,
        packages_install,
        open_world=True,
    ),
    ToolDef(
        "packages_list",
        "List installed packages",
        "List what the sandbox's package manager says is installed: name and version of each package.",
        PackagesListIn,
        PackagesListOut,
        packages_list,
        read_only=True,
    ),
    ToolDef(
        "run_code",
        "Run code in a persistent interpreter",
        "Run Python or JavaScript in a stateful interpreter in the sandbox (a notebook kernel): variables and "
        "imports persist between calls with the same context. Returns stdout, stderr, the rich results "
        "(the last expression's value, tables as HTML, charts as images) and the error with its traceback.",
        CodeIn,
        CodeOut,
        run_code,
        destructive=True,
        open_world=True,
    ),
]

BY_NAME = {tool.name: tool for tool in TOOLS}


# ---- JSON schemas -------------------------------------------------------------------------------


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with `$ref`s to `$defs` replaced by their definitions and `title`s dropped."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "title"):
            continue
        if key == "properties":
            out[key] = {name: _inline(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _inline(value, defs)
    return out


def _optional_plain(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional input `X | None = None` is shown as plain X (leave it out for the default)."""
    variants = schema.get("anyOf")
    if schema.get("default", 0) is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(kept) == 1:
            return {**kept[0], **rest}
        return {"anyOf": kept, **rest}
    return schema


def input_schema(model: type[Input], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    raw = model.model_json_schema()
    schema = _inline(raw, raw.get("$defs", {}))
    required = [name for name in schema.get("required", []) if name not in drop]
    properties = {
        name: (prop if name in required else _optional_plain(prop))
        for name, prop in schema.get("properties", {}).items()
        if name not in drop
    }
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def output_schema(model: type[Output]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="serialization")
    return _inline(raw, raw.get("$defs", {}))
