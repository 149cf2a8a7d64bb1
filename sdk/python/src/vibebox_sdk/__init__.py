"""VibeBox SDK: isolated sandboxes for AI agents, from Python.

from vibebox_sdk import VibeBox
vb = VibeBox()                         # VIBEBOX_API_KEY, VIBEBOX_API_URL
sandbox = vb.sandbox("node-20")
print(sandbox.run("return 6 * 7").return_value)
sandbox.destroy()
"""

from .aio import AsyncBackgroundProcess, AsyncSandbox, AsyncVibeBox
from .aio_streams import AsyncCommandStream, AsyncTerminal
from .client import VibeBox
from .errors import (
    AuthenticationError,
    CommandExitError,
    CommandTimeoutError,
    ConflictError,
    ConnectionError,
    EnvVarNotFoundError,
    ExecutionNotFoundError,
    GitError,
    KeyNotFoundError,
    NotFoundError,
    NotSupportedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    SandboxFileNotFoundError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxPausedError,
    ServerError,
    ServiceUnavailableError,
    SnapshotNotFoundError,
    TemplateNotFoundError,
    TimeoutError,
    ValidationError,
    VibeBoxError,
)
from .models import (
    ApiKey,
    EnvVar,
    ExecutionRecord,
    ExecutionResult,
    FileEntry,
    LogEntry,
    SandboxInfo,
    Snapshot,
    Template,
)
from .sandbox import BackgroundProcess, Sandbox
from .streams import CommandStream, LogFollower, StreamEvent, Terminal
from .version import VERSION as __version__

__all__ = [
    "ApiKey",
    "AsyncBackgroundProcess",
    "AsyncCommandStream",
    "AsyncSandbox",
    "AsyncTerminal",
    "AsyncVibeBox",
    "AuthenticationError",
    "BackgroundProcess",
    "CommandExitError",
    "CommandStream",
    "CommandTimeoutError",
    "ConflictError",
    "ConnectionError",
    "EnvVar",
    "EnvVarNotFoundError",
    "ExecutionNotFoundError",
    "ExecutionRecord",
    "ExecutionResult",
    "FileEntry",
    "GitError",
    "KeyNotFoundError",
    "LogEntry",
    "LogFollower",
    "NotFoundError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "Sandbox",
    "SandboxFileNotFoundError",
    "SandboxInfo",
    "SandboxNotFoundError",
    "SandboxNotRunningError",
    "SandboxPausedError",
    "ServerError",
    "ServiceUnavailableError",
    "Snapshot",
    "SnapshotNotFoundError",
    "StreamEvent",
    "Template",
    "TemplateNotFoundError",
    "Terminal",
    "TimeoutError",
    "ValidationError",
    "VibeBox",
    "VibeBoxError",
    "__version__",
]
