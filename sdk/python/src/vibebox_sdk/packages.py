"""`sandbox.packages`: installing registry packages with the template's package managers.

sandbox.packages.install(["requests==2.32.3"], manager="pip")        # waits; raises CommandExitError on failure
sandbox.packages.install(["left-pad"], manager="npm", dev=True, cwd="app")
sandbox.packages.list(manager="pip")                                # [Package(name, version), ...]

An install is a background command on the server: its output streams like any command's
(`on_output` gets each chunk), and `wait=False` answers the running `BackgroundProcess` at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors
from .durations import Duration

if TYPE_CHECKING:
    from .aio import AsyncSandbox
    from .models import ExecutionResult
    from .sandbox import Sandbox

MANAGERS = ("pip", "uv", "npm", "cargo", "gem", "bundler", "go", "maven")


def _fields(packages: str | list[str], manager: str, dev: bool, cwd: str | None, timeout: Duration | None) -> dict:
    specs = [packages] if isinstance(packages, str) else list(packages)
    return {"manager": manager, "packages": specs, "dev": dev or None, "cwd": cwd, "timeout": timeout}


def _checked(result: ExecutionResult, check: bool) -> ExecutionResult:
    if check and result.status == "timeout":
        raise errors.CommandTimeoutError(result, attempts=[result])
    if check and result.exit_code != 0:
        raise errors.CommandExitError(result, attempts=[result])
    return result


class Packages:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def install(
        self,
        packages: str | list[str],
        *,
        manager: str,
        dev: bool = False,
        cwd: str | None = None,
        timeout: Duration | None = None,
        wait: bool = True,
        check: bool = True,
        on_output: Callable[[str], None] | None = None,
    ) -> Any:
        """Installs package specs (`"requests==2.32.3"`, `"left-pad@1.3.0"`) with `manager` as the
        sandbox's user, into the project (`cwd`, default /workspace; pip: the template's virtualenv).

        Returns the install's `ExecutionResult` (`check=True`: `CommandExitError` when it fails);
        with `wait=False`, the running `BackgroundProcess`."""
        from .sandbox import BackgroundProcess

        sandbox = self._sandbox
        from . import calls  # httpx: not imported for `vibebox --help` (cli/packages.py reads MANAGERS)

        answer = sandbox._send(calls.install_packages(sandbox.id, _fields(packages, manager, dev, cwd, timeout)))
        process = BackgroundProcess(sandbox, answer)
        if not wait:
            return process
        stream = process.attach()
        if on_output is not None:
            stream.on_data(on_output)
        return _checked(stream.wait(), check)

    def list(self, *, manager: str, cwd: str | None = None) -> Any:
        """What `manager` says is installed: `[Package(name, version), ...]`."""
        from . import calls

        return self._sandbox._send(calls.list_packages(self._sandbox.id, manager, cwd))


class AsyncPackages:
    def __init__(self, sandbox: AsyncSandbox) -> None:
        self._sandbox = sandbox

    async def install(
        self,
        packages: str | list[str],
        *,
        manager: str,
        dev: bool = False,
        cwd: str | None = None,
        timeout: Duration | None = None,
        wait: bool = True,
        check: bool = True,
        on_output: Callable[[str], None] | None = None,
    ) -> Any:
        """As `Packages.install`, awaited."""
        from .aio import AsyncBackgroundProcess

        sandbox = self._sandbox
        from . import calls

        answer = await sandbox._send(calls.install_packages(sandbox.id, _fields(packages, manager, dev, cwd, timeout)))
        process = AsyncBackgroundProcess(sandbox, answer)
        if not wait:
            return process
        stream = await process.attach()
        if on_output is not None:
            stream.on_data(on_output)
        return _checked(await stream.wait(), check)

    async def list(self, *, manager: str, cwd: str | None = None) -> Any:
        from . import calls

        return await self._sandbox._send(calls.list_packages(self._sandbox.id, manager, cwd))
