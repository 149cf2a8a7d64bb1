"""`AsyncVibeBox`: the same surface as `VibeBox` for asyncio agents.

    import asyncio
    from vibebox_sdk import AsyncVibeBox

    async def main():
        async with AsyncVibeBox() as vb, vb.with_sandbox("node-20") as sandbox:
            result = await sandbox.run("return 6 * 7")
            async for event in await sandbox.exec("npm test", stream=True):
                print(event.type, event.data)

    asyncio.run(main())

Requests are described once in `calls.py` and `namespaces.py` (`sandbox.env`, `.git`, `.claude`,
`vb.keys`, `vb.orgs` are awaited here); this module adds what differs: awaiting, tasks and async streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from . import calls, errors
from .aio_files import AsyncFiles
from .aio_streams import AsyncCommandStream, AsyncTerminal, iter_logs, open_ws
from .claude import AsyncClaude
from .client import ClientCore, create_fields, list_params
from .contexts import AsyncContexts
from .durations import Duration
from .marketplace import AsyncMarketplace
from .models import ExecutionRecord, ExecutionResult, Grant, LogEntry, SandboxInfo, Snapshot, Template
from .namespaces import AsyncBilling, AsyncOrgs, AsyncWebhooks, Env, Git
from .packages import AsyncPackages
from .preview import Port, PreviewUrl
from .sandbox import LogFilter, check_result, log_params
from .streams import sandbox_ws
from .transport import AsyncTransport

T = TypeVar("T")


class AsyncBackgroundProcess:
    """A command started with `await sandbox.exec(..., background=True)`."""

    def __init__(self, sandbox: AsyncSandbox, data: dict[str, Any]) -> None:
        self.sandbox = sandbox
        self.process_id: str = data["processId"]
        self.execution_id: str = data["executionId"]

    async def attach(self) -> AsyncCommandStream:
        return await self.sandbox._stream("processes/" + self.process_id)

    async def wait(self) -> ExecutionResult:
        return await (await self.attach()).wait()

    async def kill(self) -> None:
        await self.sandbox._send(calls.kill_process(self.sandbox.id, self.process_id))


class AsyncSandbox:
    """The async twin of `Sandbox`: the same methods, awaited."""

    def __init__(self, client: AsyncVibeBox, info: SandboxInfo) -> None:
        self._client = client
        self.info = info
        self.files = AsyncFiles(self)
        self.env = Env(self._send, lambda: self.id)
        self.git = Git(self._send, lambda: self.id)
        self.packages = AsyncPackages(self)
        self.claude = AsyncClaude(self._send, self)
        self.contexts = AsyncContexts(self)

    def __repr__(self) -> str:
        return f"<AsyncSandbox {self.id} {self.name!r} {self.template} {self.status}>"

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    id = property(lambda self: self.info.id)
    name = property(lambda self: self.info.name)
    status = property(lambda self: self.info.status)
    template = property(lambda self: self.info.template)

    def _send(self, call: calls.Call) -> Awaitable[Any]:
        return self._client._transport.send(call)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> AsyncSandbox:
        return AsyncSandbox(self._client.with_options(timeout=timeout, max_retries=max_retries), self.info)

    async def _action(self, call: calls.Call) -> AsyncSandbox:
        self.info = await self._send(call)
        return self

    async def refresh(self) -> AsyncSandbox:
        return await self._action(calls.get_sandbox(self.id))

    async def start(self) -> AsyncSandbox:
        return await self._action(calls.sandbox_action(self.id, "start"))

    async def stop(self) -> AsyncSandbox:
        return await self._action(calls.sandbox_action(self.id, "stop"))

    async def restart(self) -> AsyncSandbox:
        return await self._action(calls.sandbox_action(self.id, "restart"))

    async def pause(self) -> AsyncSandbox:
        return await self._action(calls.sandbox_action(self.id, "pause"))

    async def resume(self) -> AsyncSandbox:
        return await self._action(calls.sandbox_action(self.id, "resume"))

    async def recover(self) -> AsyncSandbox:
        return await self._action(calls.sandbox_action(self.id, "recover"))

    async def destroy(self) -> None:
        await self._send(calls.destroy_sandbox(self.id))
        self.info.status = "destroyed"

    async def update(self, **fields: Any) -> AsyncSandbox:
        """As `Sandbox.update`: `name=`, `metadata=`, `timeout=` (None removes the expiry),
        `auto_pause=` (None turns it off), `auto_resume=`, `pause_stops_timeout=`."""
        return await self._action(calls.update_sandbox(self.id, {calls.camel(k): v for k, v in fields.items()}))

    async def set_timeout(self, timeout: Duration | None) -> AsyncSandbox:
        return await self.update(timeout=timeout)

    async def get_network(self) -> dict[str, Any]:
        """As `Sandbox.get_network`."""
        policy = await self._send(calls.network_get(self.id))
        self.info.network = policy
        return policy

    async def set_network(
        self, *, internet: bool | None = None, allow: list[str] | None = None, deny: list[str] | None = None
    ) -> dict[str, Any]:
        """As `Sandbox.set_network`."""
        policy = await self._send(calls.network_patch(self.id, calls.body(internet=internet, allow=allow, deny=deny)))
        self.info.network = policy
        return policy

    async def exec(
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
    ) -> ExecutionResult | AsyncCommandStream | AsyncBackgroundProcess:
        """As `Sandbox.exec`: the result, or with `stream=True` an `AsyncCommandStream`, or with
        `background=True` an `AsyncBackgroundProcess`."""
        fields = {"command": command, "cwd": cwd, "env": env, "user": user, "timeout": timeout}
        if stream:
            connection = await open_ws(sandbox_ws(self._client.base_url, self.id, "exec"), self._client.api_key)
            await connection.send(json.dumps(calls.body(**fields)))
            handle = AsyncCommandStream(connection, sandbox=self)
            if stdin is not None:
                await handle.send_stdin(stdin)
                await handle.close_stdin()
            return handle
        fields.update(stdin=stdin, auto_resume=auto_resume)
        if background:
            fields["background"] = True
            return AsyncBackgroundProcess(self, await self._send(calls.exec_command(self.id, fields)))
        return ExecutionResult.from_api(await self._send(calls.exec_command(self.id, fields)), sandbox=self)

    async def _stream(self, kind: str) -> AsyncCommandStream:
        url = sandbox_ws(self._client.base_url, self.id, kind)
        return AsyncCommandStream(await open_ws(url, self._client.api_key), sandbox=self)

    async def execute(
        self,
        code: str,
        *,
        language: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: Duration | None = None,
        auto_resume: bool | None = None,
    ) -> ExecutionResult:
        fields = {"code": code, "language": language, "cwd": cwd, "env": env, "timeout": timeout}
        fields["auto_resume"] = auto_resume
        return ExecutionResult.from_api(await self._send(calls.execute_code(self.id, fields)), sandbox=self)

    async def run(
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
        """As `Sandbox.run`: raises `CommandExitError` / `CommandTimeoutError` unless `check=False`."""
        attempts: list[ExecutionResult] = []
        while True:
            result = await self.execute(
                code, language=language, cwd=cwd, env=env, timeout=timeout, auto_resume=auto_resume
            )
            attempts.append(result)
            if not check or result.ok or len(attempts) > retries:
                break
            await asyncio.sleep(retry_delay)
        if check:
            check_result(result, attempts)
        return result

    async def executions(self, limit: int = 20, offset: int = 0) -> list[ExecutionRecord]:
        return await self._send(calls.executions(self.id, limit, offset))

    async def execution(self, execution_id: str) -> ExecutionRecord:
        return await self._send(calls.execution(self.id, execution_id))

    async def processes(self) -> list[dict[str, Any]]:
        return await self._send(calls.processes(self.id))

    async def terminals(self) -> list[dict[str, Any]]:
        """As `Sandbox.terminals`."""
        return await self._send(calls.terminals(self.id))

    async def kill_terminal(self, session_id: str) -> None:
        """As `Sandbox.kill_terminal`."""
        await self._send(calls.kill_terminal(self.id, session_id))

    async def cost(self) -> dict[str, Any]:
        """As `Sandbox.cost`: its cost so far and its rate per hour now."""
        return await self._send(calls.sandbox_cost(self.id))

    async def metrics(self) -> dict[str, Any]:
        """As `Sandbox.metrics`: CPU, memory, workspace disk and processes now."""
        return await self._send(calls.metrics(self.id))

    async def terminal(
        self,
        *,
        cols: int = 80,
        rows: int = 24,
        shell: str | None = None,
        cwd: str | None = None,
        session: str | None = None,
    ) -> AsyncTerminal:
        """`async with await sandbox.terminal() as term: ...`"""
        params = {"cols": cols, "rows": rows, "shell": shell, "cwd": cwd, "session": session}
        url = sandbox_ws(self._client.base_url, self.id, "terminal", params)
        return await AsyncTerminal.open(await open_ws(url, self._client.api_key))

    def on_log(
        self, callback: Callable[[LogEntry], Any], *, filter: LogFilter = None, tail: int | str | None = 0
    ) -> asyncio.Task:
        """Calls `callback` (plain or async) with each new log entry from a task; cancel the task to stop."""

        async def follow() -> None:
            async for entry in await self.stream_logs(follow=True, tail=tail, filter=filter):
                outcome = callback(entry)
                if asyncio.iscoroutine(outcome):
                    await outcome

        return asyncio.ensure_future(follow())

    async def upload(
        self, local: str | os.PathLike[str], remote: str | None = None, *, exclude: list[str] | None = None
    ) -> AsyncSandbox:
        await self.files.upload(local, remote, exclude=exclude)
        return self

    async def download(self, remote: str, local: str | os.PathLike[str] | None = None) -> bytes | AsyncSandbox:
        if local is None:
            return await self.files.read(remote)
        await self.files.download(remote, local)
        return self

    async def logs(
        self, *, since: Duration | None = None, tail: int | str | None = None, filter: LogFilter = None
    ) -> list[LogEntry]:
        stream = filter if filter in ("stdout", "stderr") else None
        return await self._send(calls.logs(self.id, {"since": since, "tail": tail, "stream": stream}))

    async def stream_logs(
        self,
        *,
        follow: bool = True,
        since: Duration | None = None,
        tail: int | str | None = None,
        filter: LogFilter = None,
    ) -> AsyncIterator[LogEntry]:
        """`async for entry in await sandbox.stream_logs(): ...`"""
        url = sandbox_ws(self._client.base_url, self.id, "logs", log_params(since, tail, filter, follow))
        return iter_logs(await open_ws(url, self._client.api_key))

    async def snapshot(self, name: str | None = None) -> Snapshot:
        return await self._send(calls.create_snapshot(self.id, name))

    async def snapshots(self) -> list[Snapshot]:
        return await self._send(calls.list_snapshots(self.id))

    async def restore(self, snapshot: Snapshot | str) -> AsyncSandbox:
        snapshot_id = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        return await self._action(calls.restore_snapshot(self.id, snapshot_id))

    # Sharing

    async def grants(self) -> list[Grant]:
        """As `Sandbox.grants`."""
        return await self._send(calls.grants_list(self.id))

    async def share(self, *, user: str | None = None, team: str | None = None, access: str) -> Grant:
        """As `Sandbox.share`."""
        return await self._send(calls.grant_set(self.id, {"user": user, "team": team, "access": access}))

    async def unshare(self, grant: Grant | str) -> None:
        """As `Sandbox.unshare`."""
        await self._send(calls.grant_delete(self.id, grant.id if isinstance(grant, Grant) else grant))

    # Preview URLs: as `Sandbox.ports`, `.preview_url`, `.get_host`, `.set_port_public`.

    async def ports(self) -> list[Port]:
        return await self._send(calls.ports_list(self.id))

    async def preview_url(
        self, port: int, *, expires_in: Duration | None = None, form: str | None = None
    ) -> PreviewUrl:
        return await self._send(calls.port_url(self.id, port, expires_in, form))

    async def get_host(self, port: int) -> str:
        return (await self.preview_url(port, form="host")).base_url

    async def set_port_public(self, port: int, public: bool = True) -> Port:
        return await self._send(calls.port_update(self.id, port, public))


class AsyncVibeBox(ClientCore):
    """The async client; arguments as `VibeBox`."""

    transport_class = AsyncTransport
    orgs_class = AsyncOrgs
    webhooks_class = AsyncWebhooks
    billing_class = AsyncBilling
    marketplace_class = AsyncMarketplace

    async def __aenter__(self) -> AsyncVibeBox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.aclose()

    async def create(self, template: str | None = None, **options: Any) -> AsyncSandbox:
        info = await self._transport.send(calls.create_sandbox(create_fields(template, **options)))
        return AsyncSandbox(self, info)

    async def sandbox(self, template: str, **options: Any) -> AsyncSandbox:
        return await self.create(template, auto_start=True, **options)

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        return AsyncSandbox(self, await self._transport.send(calls.get_sandbox(sandbox_id)))

    async def list(
        self,
        *,
        status: str | list[str] | None = None,
        template: str | None = None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> list[AsyncSandbox]:
        params, offset, found = list_params(status, template, name, metadata), 0, []
        while True:
            page, _, more = await self._transport.send(calls.list_sandboxes({**params, "limit": 100, "offset": offset}))
            found.extend(AsyncSandbox(self, info) for info in page)
            if not more or not page:
                return found
            offset += len(page)

    async def create_many(self, specs: list[dict[str, Any]]) -> list[AsyncSandbox]:
        """Creates in parallel; if any fails, the others are destroyed and the first error raised."""
        outcomes = await asyncio.gather(*(self.create(**spec) for spec in specs), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            await self.destroy_all([o for o in outcomes if isinstance(o, AsyncSandbox)])
            raise failures[0]
        return list(outcomes)  # type: ignore[arg-type]

    async def destroy_all(self, sandboxes: list[AsyncSandbox] | None = None) -> int:
        targets = await self.list() if sandboxes is None else list(sandboxes)
        await asyncio.gather(*(sandbox.destroy() for sandbox in targets))
        return len(targets)

    @contextlib.asynccontextmanager
    async def with_sandbox(self, template: str, **options: Any) -> AsyncIterator[AsyncSandbox]:
        sandbox = await self.create(template, **options)
        try:
            yield sandbox
        finally:
            with contextlib.suppress(errors.NotFoundError):
                await sandbox.destroy()

    async def ephemeral(self, template: str, timeout: Duration = "30m", **options: Any) -> AsyncSandbox:
        return await self.create(template, ephemeral=True, timeout=timeout, **options)

    async def with_ephemeral(
        self, template: str, fn: Callable[[AsyncSandbox], Awaitable[T]], *, timeout: Duration = "15m", **options: Any
    ) -> T:
        async with self.with_sandbox(template, ephemeral=True, timeout=timeout, **options) as sandbox:
            return await fn(sandbox)

    async def run_once(
        self,
        template: str,
        code: str,
        *,
        language: str | None = None,
        timeout: Duration | None = None,
        check: bool = True,
        **options: Any,
    ) -> ExecutionResult:
        async def run(sandbox: AsyncSandbox) -> ExecutionResult:
            return await sandbox.run(code, language=language, timeout=timeout, check=check)

        return await self.with_ephemeral(template, run, **options)

    async def snapshots(self) -> list[Snapshot]:
        return await self._transport.send(calls.all_snapshots())

    async def snapshot(self, snapshot_id: str) -> Snapshot:
        return await self._transport.send(calls.get_snapshot(snapshot_id))

    async def delete_snapshot(self, snapshot: Snapshot | str) -> None:
        await self._transport.send(calls.delete_snapshot(snapshot.id if isinstance(snapshot, Snapshot) else snapshot))

    async def templates(self) -> list[Template]:
        return await self._transport.send(calls.templates())

    async def template(self, name: str) -> Template:
        return await self._transport.send(calls.template(name))

    async def status(self) -> dict[str, Any]:
        """`GET /api/v1/status` (no key needed): {"status": "ok" | "degraded" | "down", "components":
        [{"name", "status", "message"}], "checked_at"} for the API, engine, Redis, workers, gateway, pools."""
        return await self._transport.send(calls.platform_status())

    async def slo(self) -> dict[str, Any]:
        """`GET /api/v1/status/slo` (a staff user's key): each SLO's objective, SLI over its window,
        error budget remaining and burn rates (`PermissionDeniedError` for others)."""
        return await self._transport.send(calls.slo_report())

    async def health(self) -> dict[str, Any]:
        return await self._transport.send(calls.health())
