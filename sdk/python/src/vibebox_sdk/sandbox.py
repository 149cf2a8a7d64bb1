"""A sandbox (sync): lifecycle, commands and code, files, environment, git, logs, terminals.

sandbox = vb.sandbox("node-20")
print(sandbox.run("return 6 * 7").return_value)          # 42
sandbox.upload("./src").run("npm install").run("npm test").download("dist/", "./out/").destroy()
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from . import calls, errors
from .archive import Progress
from .claude import SyncClaude
from .contexts import Contexts
from .durations import Duration
from .files import Files
from .models import ExecutionRecord, ExecutionResult, Grant, LogEntry, SandboxInfo, Snapshot
from .namespaces import Env, Git
from .packages import Packages
from .preview import Port, PreviewUrl
from .streams import CommandStream, LogFollower, Terminal, iter_logs, open_ws, sandbox_ws

if TYPE_CHECKING:
    from .client import VibeBox

_UNSET: Any = object()
LogFilter = Literal["stdout", "stderr", "all"] | None


def check_result(result: ExecutionResult, attempts: list[ExecutionResult]) -> None:
    """Raises for a failed `run()`: CommandTimeoutError or CommandExitError, with every attempt's output."""
    if result.status == "timeout":
        raise errors.CommandTimeoutError(result, attempts=attempts)
    if result.exit_code != 0:
        raise errors.CommandExitError(result, attempts=attempts)


def log_params(since: Duration | None, tail: int | str | None, filter: LogFilter, follow: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"since": since, "tail": tail, "follow": "1" if follow else "0"}
    if filter in ("stdout", "stderr"):
        params["stdout"] = "1" if filter == "stdout" else "0"
        params["stderr"] = "1" if filter == "stderr" else "0"
    return params


class BackgroundProcess:
    """A command started with `exec(..., background=True)`: it runs on without any client."""

    def __init__(self, sandbox: Sandbox, data: dict[str, Any]) -> None:
        self.sandbox = sandbox
        self.process_id: str = data["processId"]
        self.execution_id: str = data["executionId"]

    def attach(self) -> CommandStream:
        """Its output from the start (up to the server's buffer), then live, then its exit."""
        return self.sandbox._stream("processes/" + self.process_id)

    def wait(self) -> ExecutionResult:
        return self.attach().wait()

    def kill(self) -> None:
        self.sandbox._send(calls.kill_process(self.sandbox.id, self.process_id))


class Sandbox:
    """A VibeBox sandbox. Get one from `VibeBox.create()`, `.sandbox()`, `.get()` or `.list()`.

    Lifecycle methods return the sandbox, so calls chain; `info` is what the server last said.
    """

    def __init__(self, client: VibeBox, info: SandboxInfo) -> None:
        self._client = client
        self.info = info
        self.files = Files(self)
        self.env = Env(self._send, lambda: self.id)
        self.git = Git(self._send, lambda: self.id)
        self.packages = Packages(self)
        self.claude = SyncClaude(self._send, self)
        self.contexts = Contexts(self)

    def __repr__(self) -> str:
        return f"<Sandbox {self.id} {self.name!r} {self.template} {self.status}>"

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        """`with vb.sandbox("node-20") as sandbox:` destroys it at the end of the block."""
        self.destroy()

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def template(self) -> str:
        return self.info.template

    def _send(self, call: calls.Call) -> Any:
        return self._client._transport.send(call)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> Sandbox:
        """This sandbox through a client with another timeout or retry count:

        sandbox.with_options(timeout=5).files.list()
        """
        return Sandbox(self._client.with_options(timeout=timeout, max_retries=max_retries), self.info)

    def _set(self, info: SandboxInfo) -> Sandbox:
        self.info = info
        return self

    # Lifecycle

    def refresh(self) -> Sandbox:
        return self._set(self._send(calls.get_sandbox(self.id)))

    def start(self) -> Sandbox:
        return self._set(self._send(calls.sandbox_action(self.id, "start")))

    def stop(self) -> Sandbox:
        return self._set(self._send(calls.sandbox_action(self.id, "stop")))

    def restart(self) -> Sandbox:
        return self._set(self._send(calls.sandbox_action(self.id, "restart")))

    def pause(self) -> Sandbox:
        """Freezes every process; memory and files are kept. `resume()` continues where it was."""
        return self._set(self._send(calls.sandbox_action(self.id, "pause")))

    def resume(self) -> Sandbox:
        return self._set(self._send(calls.sandbox_action(self.id, "resume")))

    def recover(self) -> Sandbox:
        """A sandbox in `error` made usable again: its container as found, or made again `stopped`
        with its workspace where a restore put it (`info.status_reason` says); then `start()`."""
        return self._set(self._send(calls.sandbox_action(self.id, "recover")))

    def destroy(self) -> None:
        """Removes the container and its workspace. Idempotent."""
        self._send(calls.destroy_sandbox(self.id))
        self.info.status = "destroyed"

    def update(
        self,
        *,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        timeout: Duration | None = _UNSET,
        auto_pause: Duration | None = _UNSET,
        auto_resume: bool | None = None,
        pause_stops_timeout: bool | None = None,
    ) -> Sandbox:
        """Renames, replaces metadata, sets a new time to live from now (`timeout=None` removes it),
        or changes the pause settings (`auto_pause=None` turns auto-pause off)."""
        fields: dict[str, Any] = calls.body(
            name=name, metadata=metadata, auto_resume=auto_resume, pause_stops_timeout=pause_stops_timeout
        )
        if auto_pause is not _UNSET:
            fields["autoPause"] = auto_pause
        if timeout is not _UNSET:
            fields["timeout"] = timeout
        return self._set(self._send(calls.update_sandbox(self.id, fields)))

    def set_timeout(self, timeout: Duration | None) -> Sandbox:
        return self.update(timeout=timeout)

    # Egress policy

    def get_network(self) -> dict[str, Any]:
        """The egress policy in force: {"internet", "allow", "deny", "proxied"}."""
        policy = self._send(calls.network_get(self.id))
        self.info.network = policy
        return policy

    def set_network(
        self, *, internet: bool | None = None, allow: list[str] | None = None, deny: list[str] | None = None
    ) -> dict[str, Any]:
        """Replaces the keys given (in force for new connections when it returns); the new policy."""
        policy = self._send(calls.network_patch(self.id, calls.body(internet=internet, allow=allow, deny=deny)))
        self.info.network = policy
        return policy

    # Commands and code

    @overload
    def exec(
        self,
        command: str | list[str],
        *,
        stream: Literal[False] = False,
        background: Literal[False] = False,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stdin: str | None = None,
        timeout: Duration | None = None,
        auto_resume: bool | None = None,
    ) -> ExecutionResult: ...

    @overload
    def exec(self, command: str | list[str], *, stream: Literal[True], **kwargs: Any) -> CommandStream: ...

    @overload
    def exec(self, command: str | list[str], *, background: Literal[True], **kwargs: Any) -> BackgroundProcess: ...

    def exec(
        self,
        command: str | list[str],
        *,
        stream: bool = False,
        background: bool = False,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stdin: str | None = None,
        timeout: Duration | None = None,
        auto_resume: bool | None = None,
    ) -> ExecutionResult | CommandStream | BackgroundProcess:
        """Runs a command (a shell string, or an argv list run without a shell).

        Returns the result whatever the exit code (`run()` raises instead). With `stream=True`,
        a `CommandStream` delivering output as it is printed; with `background=True`, a
        `BackgroundProcess` that outlives this call.

            result = sandbox.exec("npm test", cwd="/repo", timeout="5m")
            print(result.exit_code, result.stdout)
        """
        fields = {"command": command, "cwd": cwd, "env": env, "user": user, "timeout": timeout}
        if stream:
            handle = self._stream("exec", start=calls.body(**fields))
            if stdin is not None:
                handle.send_stdin(stdin)
                handle.close_stdin()
            return handle
        fields["stdin"] = stdin
        fields["auto_resume"] = auto_resume
        if background:
            fields["background"] = True
            return BackgroundProcess(self, self._send(calls.exec_command(self.id, fields)))
        return ExecutionResult.from_api(self._send(calls.exec_command(self.id, fields)), sandbox=self)

    def _stream(self, kind: str, start: dict[str, Any] | None = None) -> CommandStream:
        url = sandbox_ws(self._client.base_url, self.id, kind)
        return CommandStream(open_ws(url, self._client.api_key), sandbox=self, start=start)

    def execute(
        self,
        code: str,
        *,
        language: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: Duration | None = None,
        auto_resume: bool | None = None,
    ) -> ExecutionResult:
        """Runs code in the template's language (or `language`); `return_value` is its value."""
        fields = {"code": code, "language": language, "cwd": cwd, "env": env, "timeout": timeout}
        fields["auto_resume"] = auto_resume
        return ExecutionResult.from_api(self._send(calls.execute_code(self.id, fields)), sandbox=self)

    def run(
        self,
        code: str,
        *,
        language: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: Duration | None = None,
        check: bool = True,
        retries: int = 0,
        retry_delay: float = 1.0,
        auto_resume: bool | None = None,
    ) -> ExecutionResult:
        """Runs a command or a code snippet and checks that it worked.

        `"npm install"` runs as a shell command, JavaScript or Python code in the template's
        language (its `return` or last expression becomes `return_value`). A non-zero exit raises
        `CommandExitError`, a timeout `CommandTimeoutError`, after `retries` more attempts
        `retry_delay` seconds apart; both carry `.logs`. `check=False` returns the result instead.

            sandbox.run("npm install", cwd="/repo")
            files = sandbox.run("return require('fs').readdirSync('.')").return_value
        """
        attempts: list[ExecutionResult] = []
        while True:
            result = self.execute(code, language=language, cwd=cwd, env=env, timeout=timeout, auto_resume=auto_resume)
            attempts.append(result)
            if not check or result.ok or len(attempts) > retries:
                break
            time.sleep(retry_delay)
        if check:
            check_result(result, attempts)
        return result

    def executions(self, limit: int = 20, offset: int = 0) -> list[ExecutionRecord]:
        """The sandbox's command history, newest first."""
        return self._send(calls.executions(self.id, limit, offset))

    def execution(self, execution_id: str) -> ExecutionRecord:
        return self._send(calls.execution(self.id, execution_id))

    def processes(self) -> list[dict[str, Any]]:
        """The background commands still running."""
        return self._send(calls.processes(self.id))

    def terminals(self) -> list[dict[str, Any]]:
        """The open terminal sessions (they outlive their clients): session_id, shell, argv,
        cols, rows, attached, running, started_at."""
        return self._send(calls.terminals(self.id))

    def kill_terminal(self, session_id: str) -> None:
        """Ends a terminal session and everything started in it (TerminalNotFoundError: no such one)."""
        self._send(calls.kill_terminal(self.id, session_id))

    def cost(self) -> dict[str, Any]:
        """What the sandbox has cost since it was created and what it costs per hour now
        (billing.read; a key: `billing:read`), money as Decimals:

            {"sandbox_id", "since", "total", "rate_per_hour", "currency"}"""
        return self._send(calls.sandbox_cost(self.id))

    def metrics(self) -> dict[str, Any]:
        """Resource use now (running or paused sandboxes), snake_case keys:

            {"cpu": {"percent", "limit", "percent_of_limit", "online_cpus"},
             "memory": {"usage", "limit", "percent"}, "disk": {"workspace", "limit"},
             "pids": {"current", "limit"}, "sandbox_id", "status", "timestamp"}

        Bytes for memory and disk; CPU `percent` is of one core. `disk.workspace` is None while paused.
        """
        return self._send(calls.metrics(self.id))

    # Files

    def upload(
        self,
        local: str | os.PathLike[str],
        remote: str | None = None,
        *,
        exclude: list[str] | None = None,
        progress: Progress | None = None,
    ) -> Sandbox:
        """Uploads a file, a directory or a glob pattern (see `Files.upload`); returns the sandbox."""
        self.files.upload(local, remote, exclude=exclude, progress=progress)
        return self

    @overload
    def download(self, remote: str, local: None = None, *, progress: Progress | None = None) -> bytes: ...

    @overload
    def download(self, remote: str, local: str | os.PathLike[str], *, progress: Progress | None = None) -> Sandbox: ...

    def download(
        self, remote: str, local: str | os.PathLike[str] | None = None, *, progress: Progress | None = None
    ) -> bytes | Sandbox:
        """Without `local`: the file's bytes. With it: writes the file or directory there; returns the sandbox."""
        if local is None:
            return self.files.read(remote, progress=progress)
        self.files.download(remote, local, progress=progress)
        return self

    # Logs and terminals

    def logs(
        self, *, since: Duration | None = None, tail: int | str | None = None, filter: LogFilter = None
    ) -> list[LogEntry]:
        """The container's recent output and VibeBox's events for it, oldest first."""
        stream = filter if filter in ("stdout", "stderr") else None
        return self._send(calls.logs(self.id, {"since": since, "tail": tail, "stream": stream}))

    def stream_logs(
        self,
        *,
        follow: bool = True,
        since: Duration | None = None,
        tail: int | str | None = None,
        filter: LogFilter = None,
    ) -> Iterator[LogEntry]:
        """Iterates over log entries: the backlog, then (with `follow`) new ones as they happen."""
        url = sandbox_ws(self._client.base_url, self.id, "logs", log_params(since, tail, filter, follow))
        return iter_logs(open_ws(url, self._client.api_key))

    def on_log(
        self,
        callback: Callable[[LogEntry], None],
        *,
        filter: LogFilter = None,
        since: Duration | None = None,
        tail: int | str | None = 0,
    ) -> LogFollower:
        """Calls `callback` with each new log entry in a background thread until `.close()`.

        sandbox.on_log(lambda entry: print(entry.text), filter="stdout")
        """
        url = sandbox_ws(self._client.base_url, self.id, "logs", log_params(since, tail, filter, True))
        return LogFollower(open_ws(url, self._client.api_key), callback)

    def terminal(
        self,
        *,
        cols: int = 80,
        rows: int = 24,
        shell: str | None = None,
        cwd: str | None = None,
        session: str | None = None,
    ) -> Terminal:
        """Opens an interactive terminal (a PTY); `session` joins an open one."""
        params = {"cols": cols, "rows": rows, "shell": shell, "cwd": cwd, "session": session}
        url = sandbox_ws(self._client.base_url, self.id, "terminal", params)
        return Terminal(open_ws(url, self._client.api_key))

    # Snapshots

    def snapshot(self, name: str | None = None) -> Snapshot:
        return self._send(calls.create_snapshot(self.id, name))

    def snapshots(self) -> list[Snapshot]:
        return self._send(calls.list_snapshots(self.id))

    def restore(self, snapshot: Snapshot | str) -> Sandbox:
        snapshot_id = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        return self._set(self._send(calls.restore_snapshot(self.id, snapshot_id)))

    # Sharing: grants (docs/api.md, "Sharing a sandbox")

    def grants(self) -> list[Grant]:
        """Who the sandbox is shared with, oldest first: each `Grant` names a member (`user`) or a
        team (`team`) and its `access` (read, use or manage). Whoever may read the sandbox may list them."""
        return self._send(calls.grants_list(self.id))

    def share(self, *, user: str | None = None, team: str | None = None, access: str) -> Grant:
        """Shares the sandbox with a member (`user`: username or email) or a team (`team`: its name)
        of its organization at `access`: "read", "use" (also commands, files, git, terminals) or
        "manage" (also lifecycle, environment, snapshots, grants). One that holds a grant already
        gets this level instead. Needs what managing the sandbox needs; someone outside the
        organization is `MemberNotFoundError`, an unknown team `TeamNotFoundError`."""
        return self._send(calls.grant_set(self.id, {"user": user, "team": team, "access": access}))

    def unshare(self, grant: Grant | str) -> None:
        """Revokes a grant (a `Grant` or its id, `grt_…`; `GrantNotFoundError` when it is not this
        sandbox's). Managers may revoke any; a member may give up their own."""
        self._send(calls.grant_delete(self.id, grant.id if isinstance(grant, Grant) else grant))

    # Preview URLs (docs/api.md, "Preview URLs")

    def ports(self) -> list[Port]:
        """The ports a server listens on in the sandbox, and those its template declares (even
        before anything listens), each with its preview URLs (without a token) and `public` flag."""
        return self._send(calls.ports_list(self.id))

    def preview_url(self, port: int, *, expires_in: Duration | None = None, form: str | None = None) -> PreviewUrl:
        """A signed link to `port` that works in any browser until it expires (`expires_in`: default
        1h, at most 7d): `.url` carries `?vibebox_token=…`, which the preview host swaps for a cookie.
        `form`: "host" (default, `http://<port>-<id>.<domain>/`) or "path" (`/preview/<id>/<port>/`)."""
        return self._send(calls.port_url(self.id, port, expires_in, form))

    def get_host(self, port: int) -> str:
        """The host-form preview URL of `port` (`http://3000-sbx_….preview.localhost:8000/`), without
        a token: it answers a client holding a preview cookie (from a signed link), or anyone once the
        port is public (the owner's dashboard session opens the path form only).
        `preview_url(port).url` is the link to hand to a browser."""
        return self.preview_url(port, form="host").base_url

    def set_port_public(self, port: int, public: bool = True) -> Port:
        """Opens `port`'s preview to anyone with the URL (`public=False` makes it private again)."""
        return self._send(calls.port_update(self.id, port, public))
