"""Interactive terminal sessions: one PTY (docker exec with a TTY) in a running sandbox.

A session has an id (`term_…`) and one or more attached clients (WebSocket connections). One
reader thread per session reads the PTY and hands each chunk to every client's bounded queue
(VIBEBOX_WS_QUEUE_MESSAGES); while a client's queue is full the reader waits (backpressure on the
shell), and a client whose queue stays full for VIBEBOX_WS_SLOW_CLIENT_SECONDS is dropped, so
server memory stays bounded whatever a client does. Keystrokes and resizes from all clients go
through one lock, in order, in worker threads.

The shell is killed when its last client leaves or when nothing was typed or printed for
VIBEBOX_TERMINAL_IDLE_TIMEOUT: the PTY is hung up and the driver's kill (runtime.base) removes every
process the terminal started (they carry VIBEBOX_EXEC_ID=<session id>, like exec's commands).

The registry lives in this process, on the event loop that opened each session: VibeBox's web
server is one uvicorn process. Serving from several processes would need attaches routed to the
process holding the session (sticky routing by session id, or a relay over the channel layer).
The per-user cap on open terminals (VIBEBOX_MAX_TERMINALS_PER_OWNER) is counted in Redis by
apps/sandboxes/limits.py, so it already holds across processes.
"""

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from vibebox import exceptions as errors
from vibebox.ids import random_id

from . import envvars, execution, idle, limits
from .models import Sandbox
from .runtime import get_driver
from .runtime.scripts import MARKER_ENV, WRAPPER

logger = logging.getLogger(__name__)

SHELLS = ("bash", "sh", "zsh", "fish", "dash")  # a missing one falls back to sh
READ_BYTES = 16 * 1024
FRAME_BYTES = 64 * 1024  # queued output is joined into frames up to about this size
REPLAY_BYTES = 64 * 1024  # recent output shown to a client that attaches later
WRITE_TIMEOUT = 30.0  # seconds the shell may leave its input unread before keystrokes fail
IDLE_CLOSE_CODE = 4408
SLOW_CLOSE_CODE = 4008

# argv: sh -c START sh <shell>; becomes the shell (or sh). The TTY's size is set by the engine
# only (open_tty, then each resize in order): a stty here could run after a client's resize
# and undo it.
START = """command -v "$1" >/dev/null 2>&1 && exec "$1" -l
exec sh -l
"""

_sessions: dict[str, "Session"] = {}


@dataclass(frozen=True)
class Spec:
    """What opening a terminal needs, read from the database beforehand."""

    sandbox_id: str
    owner_id: int
    container: str
    user: str
    env: dict[str, str]
    workdir: str


def prepare(sandbox: Sandbox, *, cwd: str | None) -> Spec:
    """Checks the sandbox runs and resolves the terminal's user, environment and directory."""
    execution.require_running(sandbox)
    return Spec(
        sandbox_id=sandbox.id,
        owner_id=sandbox.owner_id,
        container=sandbox.container_name,
        user=sandbox.template.user,
        env=envvars.command_env(sandbox),
        workdir=execution.resolve_cwd(sandbox, cwd),
    )


class Client:
    """One attached connection: a bounded queue of output (bytes), JSON messages (dict) and a
    final close code (int). `drop(code)` is awaited when the session lets go of it."""

    def __init__(self, drop):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.VIBEBOX_WS_QUEUE_MESSAGES)
        self.drop = drop
        self._held = None

    async def next(self):
        """The next item to send, consecutive output joined into one frame."""
        item, self._held = (self._held, None) if self._held is not None else (await self.queue.get(), None)
        if not isinstance(item, bytes):
            return item
        frame = bytearray(item)
        while len(frame) < FRAME_BYTES and not self.queue.empty():
            more = self.queue.get_nowait()
            if not isinstance(more, bytes):
                self._held = more
                break
            frame += more
        return bytes(frame)


class Session:
    def __init__(self, session_id: str, spec: Spec, handle, *, shell: str, cols: int, rows: int, slot=None):
        self.id = session_id
        self.slot = slot  # this session's place in the owner's terminal limit
        self.spec = spec
        self.handle = handle
        self.shell = shell
        self.cols, self.rows = cols, rows
        self.clients: list[Client] = []
        self.loop = asyncio.get_running_loop()
        self.input_lock = asyncio.Lock()
        self.last_active = time.monotonic()
        self.touched = 0.0
        self.replay = bytearray()
        self.closing: asyncio.Future | None = None
        self.idle_task: asyncio.Task | None = None
        self.finishing = False

    def start(self):
        threading.Thread(target=self._read_loop, daemon=True, name=f"terminal-{self.id}").start()
        self.idle_task = self.loop.create_task(self._watch_idle())

    @property
    def closed(self) -> bool:
        return self.closing is not None

    # ---- input ----

    async def write(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.last_active - self.touched > idle.PRECISION.total_seconds():
            self.touched = self.last_active  # typing keeps the sandbox from auto-pausing
            await database_sync_to_async(idle.touch_id)(self.spec.sandbox_id)
        async with self.input_lock:
            await asyncio.to_thread(self.handle.write, data, WRITE_TIMEOUT)

    async def resize(self, cols: int, rows: int) -> None:
        self.last_active = time.monotonic()
        async with self.input_lock:
            await asyncio.to_thread(self.handle.resize, cols, rows)
            self.cols, self.rows = cols, rows

    # ---- output ----

    def _read_loop(self):
        """The session's one reader (a thread: reads block)."""
        while data := self.handle.read(READ_BYTES):
            if not self._on_loop(self._deliver(data, output=True)):
                break
        exit_code = None if self.closed else self.handle.exit_code()
        if not self._on_loop(self._ended(exit_code)):
            self._hang_up()  # the event loop is gone (a test's); clean up from here
            _sessions.pop(self.id, None)

    def _on_loop(self, coroutine) -> bool:
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # the loop is closed
            coroutine.close()
            return False
        try:
            future.result(timeout=settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS + 30)
            return True
        except Exception:
            future.cancel()
            return False

    async def _deliver(self, item, *, output: bool = False) -> None:
        """Queues `item` for every client; waits (at most the slow-client limit) for full queues."""
        if output:
            self.last_active = time.monotonic()
            self.replay += item
            del self.replay[:-REPLAY_BYTES]
        behind = []
        for client in list(self.clients):
            try:
                client.queue.put_nowait(item)
            except asyncio.QueueFull:
                behind.append(client)
        if behind:
            await asyncio.gather(*(self._put_or_drop(client, item) for client in behind))

    async def _put_or_drop(self, client: Client, item) -> None:
        try:
            await asyncio.wait_for(client.queue.put(item), settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS)
        except TimeoutError:
            logger.info("terminal %s: dropping a client that stopped reading", self.id)
            self.loop.create_task(client.drop(SLOW_CLOSE_CODE))
            await self.detach(client)

    async def _ended(self, exit_code: int | None) -> None:
        await self._finish({"type": "exit", "exitCode": exit_code}, 1000)

    async def _watch_idle(self):
        while not self.closed:
            remaining = self.last_active + settings.VIBEBOX_TERMINAL_IDLE_TIMEOUT - time.monotonic()
            if remaining <= 0:
                logger.info("terminal %s: closing after being idle", self.id)
                await self._finish({"type": "exit", "exitCode": None, "reason": "idle"}, IDLE_CLOSE_CODE)
                return
            await asyncio.sleep(remaining)

    async def _finish(self, message: dict, close_code: int) -> None:
        """Tells every client why the session ends, closes their connections, then closes."""
        if self.closed or self.finishing:
            return
        self.finishing = True
        await self._deliver(message)
        await self._deliver(close_code)
        await self.close()

    # ---- clients and closing ----

    def attach(self, client: Client) -> None:
        if self.replay:
            client.queue.put_nowait(bytes(self.replay))
        self.clients.append(client)

    async def detach(self, client: Client) -> None:
        """Lets go of a client; the last one leaving kills the shell."""
        if client in self.clients:
            self.clients.remove(client)
            if not self.clients:
                await self.close()

    async def close(self) -> None:
        """Kills the shell and everything it started; clients still attached are let go."""
        if self.closing is None:
            _sessions.pop(self.id, None)
            self.clients = []
            if self.idle_task is not None and self.idle_task is not asyncio.current_task():
                self.idle_task.cancel()
            self.closing = self.loop.run_in_executor(None, self._hang_up)  # starts now, even if we are cancelled
        await asyncio.shield(self.closing)

    def _hang_up(self) -> None:
        if self.slot is not None:
            self.slot.release()
        self.handle.close()
        try:  # the kill contract: works even when the terminal's processes filled the pids limit
            get_driver().kill(self.spec.container, self.id, user=self.spec.user, sweep=False)
        except errors.ApplicationError as exc:  # the sandbox stopped or went away: nothing is left
            logger.info("terminal %s: cleanup skipped: %s", self.id, exc.message)


async def open_session(spec: Spec, *, shell: str, cols: int, rows: int, client: Client) -> Session:
    """Starts a shell with `client` attached (so it sees the first prompt)."""
    slot = await asyncio.to_thread(limits.acquire, limits.TERMINALS, spec.owner_id)  # or 429 too_many_streams
    session_id = random_id("term_", 20)
    env = {"TERM": "xterm-256color", **spec.env, MARKER_ENV: session_id}
    argv = ("sh", "-c", WRAPPER, "sh", "sh", "-c", START, "sh", shell)
    try:
        handle = await asyncio.to_thread(
            get_driver().open_tty,
            spec.container,
            argv=argv,
            env=env,
            user=spec.user,
            workdir=spec.workdir,
            cols=cols,
            rows=rows,
        )
    except BaseException:
        slot.release()
        raise
    session = Session(session_id, spec, handle, shell=shell, cols=cols, rows=rows, slot=slot)
    _sessions[session_id] = session
    session.attach(client)
    session.start()
    return session


def session_list(*, owner_id: int, sandbox_id: str) -> list[Session]:
    """The open sessions of one owner's sandbox in this process (for people to join)."""
    return sorted(
        (
            s
            for s in list(_sessions.values())
            if not s.closed and s.spec.owner_id == owner_id and s.spec.sandbox_id == sandbox_id
        ),
        key=lambda s: s.id,
    )


def attach(session_id: str, *, owner_id: int, sandbox_id: str, client: Client) -> Session:
    """Joins an open session of the same owner and sandbox; anything else is not found."""
    session = _sessions.get(session_id)
    if (
        session is not None
        and not session.closed
        and session.spec.owner_id == owner_id
        and session.spec.sandbox_id == sandbox_id
        and session.loop is asyncio.get_running_loop()
    ):
        session.attach(client)
        return session
    raise errors.NotFound("Terminal session not found.", details={"session": session_id})
