"""Interactive terminal sessions: a shell on a PTY in a running sandbox.

A session has an id (`term_…`) and one or more attached clients (WebSocket connections), whose
keystrokes and resizes go to the shell in order. Output goes to each client's bounded queue
(VIBEBOX_WS_QUEUE_MESSAGES); a client whose queue stays full for VIBEBOX_WS_SLOW_CLIENT_SECONDS is
dropped (4008), so server memory stays bounded whatever a client does.

The terminal lives in the sandbox's sandboxd (docs/sandboxd.md, "Terminals"): any web process
lists, joins and kills it, and it survives a restart of the web server. Each client is
one sandboxd attacher (`DaemonSession`: a thread following /terminal/attach into the client's
queue); a client that joins later attaches from REPLAY_BYTES before the end, so it sees the recent
screen. The shell does not end when its last client leaves: it ends when it exits, after
VIBEBOX_TERMINAL_IDLE_TIMEOUT without input, resize or output (sandboxd's idle timeout), when the
sandbox stops, or when a client or the API kills it (`terminal_kill`); sandboxd then ends every
process it started. A client that falls behind loses output (sandboxd skips it, an `l` frame,
a `Lost` event for the client) rather than holding the shell up. What a client gets is output
(bytes), events (`Ended`, `Lost`: the terminal consumer makes them messages) and a close code.

The per-owner cap on open terminals (VIBEBOX_MAX_TERMINALS_PER_OWNER) is a lease in Redis
(apps/sandboxes/limits.py), taken by the web process that opens a terminal. A thread of that
process polls /terminal/list and gives the slot back once the terminal has ended; if that
process dies first, the lease runs out within limits.LEASE_SECONDS: the slot never leaks, and
the surviving terminal is not counted until it ends.
"""

import asyncio
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from apps.audit.services import record
from vibebox import exceptions as errors
from vibebox.ids import random_id

from . import idle, limits, quotas
from .models import Sandbox, Status
from .runtime import ExecRequest, RuntimeDriver, driver_for
from .runtime.base import STDIN_BUFFER, ExecControl
from .runtime.scripts import MARKER_ENV
from .services.env import command_env
from .services.exec import require_running, resolve_cwd
from .services.lifecycle import container_running

logger = logging.getLogger(__name__)

SHELLS = ("bash", "sh", "zsh", "fish", "dash")  # a missing one falls back to sh
FRAME_BYTES = 64 * 1024  # queued output is joined into frames up to about this size
REPLAY_BYTES = 64 * 1024  # recent output shown to a client that attaches later
WRITE_TIMEOUT = 30.0  # seconds the shell may leave its input unread before keystrokes fail
IDLE_CLOSE_CODE = 4408
SLOW_CLOSE_CODE = 4008
ERROR_CLOSE_CODE = 1011
ATTACH_SECONDS = 7 * 24 * 3600  # how long one client may stay attached to a terminal in sandboxd
SLOT_POLL_SECONDS = 3.0  # how often the opener checks whether its terminal in sandboxd still runs
SLOT_FAILURES = 20  # checks in a row a running sandbox's sandboxd may fail before the slot is given back
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

# argv: sh -c START sh <shell>; becomes the shell (or sh). The PTY's size is set by sandboxd
# only (at the open, then each resize in order): a stty here could run after a client's resize
# and undo it.
START = """command -v "$1" >/dev/null 2>&1 && exec "$1" -l
exec sh -l
"""


@dataclass(frozen=True)
class Spec:
    """What opening a terminal needs, read from the database beforehand."""

    sandbox_id: str
    owner_id: int
    container: str
    user: str
    env: dict[str, str]
    workdir: str
    driver: RuntimeDriver  # the sandbox's engine's (driver_for)


def prepare(sandbox: Sandbox, *, cwd: str | None) -> Spec:
    """Checks the sandbox runs and the organization's quotas allow a new shell (like a command:
    402 quota_exceeded), and resolves the terminal's user, environment and directory."""
    require_running(sandbox)
    quotas.request_work(org_id=sandbox.org_id, action="exec", sandbox=sandbox, user=sandbox.owner)
    return Spec(
        sandbox_id=sandbox.id,
        owner_id=sandbox.owner_id,
        container=sandbox.container_name,
        user=sandbox.template.user,
        env=command_env(sandbox),
        workdir=resolve_cwd(sandbox, cwd),
        driver=driver_for(sandbox),
    )


@dataclass(frozen=True)
class Ended:
    """The terminal ended (for this client): its shell's exit code (None when not known); `idle`
    when its idle timeout ended it, `error` when the attach failed and its end is not known."""

    exit_code: int | None
    idle: bool = False
    error: errors.ApplicationError | None = None


@dataclass(frozen=True)
class Lost:
    """Output this client missed that sandboxd no longer keeps."""

    dropped_bytes: int


@dataclass(frozen=True)
class Terminal:
    """An open terminal, as sandboxd lists it."""

    session_id: str
    shell: str
    argv: tuple[str, ...]
    cols: int
    rows: int
    attached: int  # clients attached now (all web processes)
    running: bool
    started_at: dt.datetime | None


class Client:
    """One attached connection: a bounded queue of output (bytes), events (Ended, Lost) and a
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


def _argv(shell: str) -> tuple[str, ...]:
    return ("sh", "-c", START, "sh", shell)


def _shell_of(argv: tuple[str, ...]) -> str:
    """The shell a terminal was opened with (ours: sh -c START sh <shell>); else its command's name."""
    if len(argv) == 5 and argv[:4] == _argv("")[:4] and argv[4] in SHELLS:
        return argv[4]
    return (argv[0].rsplit("/", 1)[-1] if argv else "")[:64]


class DaemonSession:
    """One client attached to a terminal kept by the sandbox's sandboxd: a thread follows
    /terminal/attach into the client's queue; keystrokes and resizes go through `control`."""

    def __init__(
        self,
        session_id: str,
        *,
        sandbox_id: str,
        container: str,
        driver: RuntimeDriver,
        shell: str,
        cols: int,
        rows: int,
    ):
        self.id = session_id
        self.sandbox_id, self.container, self.driver = sandbox_id, container, driver
        self.shell, self.cols, self.rows = shell, cols, rows
        self.loop = asyncio.get_running_loop()
        self.control = ExecControl()
        self.stop = threading.Event()  # set: this client detaches (the terminal runs on)
        self.client: Client | None = None
        self.touched = 0.0

    def start(self, client: Client, start: str | int) -> None:
        self.client = client
        threading.Thread(target=self._follow, args=(start,), daemon=True, name=f"terminal-{self.id}").start()

    # ---- input ----

    async def write(self, data: bytes) -> None:
        now = time.monotonic()
        if now - self.touched > idle.PRECISION.total_seconds():
            self.touched = now  # typing keeps the sandbox from auto-pausing
            await database_sync_to_async(idle.touch_id)(self.sandbox_id)
        if not self.stop.is_set():  # else the attach has ended: nothing takes input any more
            self.control.write(data)
            await self._taken()

    async def resize(self, cols: int, rows: int) -> None:
        if not self.stop.is_set():
            self.control.resize(cols, rows)  # in order with the keystrokes before it
            await self._taken()
        self.cols, self.rows = cols, rows

    async def _taken(self) -> None:
        """Bounded like a command's stdin: a shell that reads nothing holds at most STDIN_BUFFER
        here (and this client's messages wait meanwhile)."""
        deadline = time.monotonic() + WRITE_TIMEOUT
        while self.control.buffered > STDIN_BUFFER and not self.stop.is_set():
            if time.monotonic() > deadline:
                raise errors.RuntimeFailure("The terminal is not reading its input.")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """Ends the terminal and everything it started; every client gets its exit."""
        await asyncio.to_thread(self.driver.terminal_kill, self.container, self.id)

    async def detach(self, client: Client) -> None:
        self.stop.set()

    # ---- output (the attach's thread) ----

    def _follow(self, start) -> None:
        request = ExecRequest(
            argv=(),
            exec_id=self.id,
            timeout=ATTACH_SECONDS,
            output_limit=0,  # nothing kept here: it all goes to the client
            on_output=self._output,
            control=self.control,
        )
        try:
            try:
                ended = self.driver.terminal_attach(
                    self.container, self.id, request=request, start=start, stop=self.stop, on_lost=self._lost
                )
            except Exception as exc:  # never a thread dying silently with its client left hanging
                if isinstance(exc, errors.ApplicationError):
                    raise
                logger.exception("terminal %s: the attach failed", self.id)
                raise errors.RuntimeFailure("The terminal's stream failed.") from exc
        except errors.ApplicationError as exc:
            if self.stop.is_set():
                return
            if (exc.details or {}).get("reason") == "sandbox_stopped":
                self._deliver_all(Ended(exit_code=None), 1000)
            else:
                logger.info("terminal %s: lost its attach: %s", self.id, exc.message)
                self._deliver_all(Ended(exit_code=None, error=exc), ERROR_CLOSE_CODE)
            return
        finally:
            self.stop.set()
            # Its fds closed once the attach's input thread has surely seen the end (it polls
            # every 0.5 s); a write after it goes nowhere.
            threading.Timer(2.0, self.control.close).start()
        if ended is None:
            return  # detached
        if ended.idle:
            self._deliver_all(Ended(exit_code=None, idle=True), IDLE_CLOSE_CODE)
        else:
            self._deliver_all(Ended(exit_code=ended.exit_code), 1000)

    def _output(self, stream: str, data: bytes) -> None:
        if not self.stop.is_set() and not self._deliver(data):
            self.stop.set()  # the client is gone or too slow: detach

    def _lost(self, count: int) -> None:
        """sandboxd no longer keeps output this client has not had (it fell behind the
        terminal's buffer, or joined from an offset that was dropped meanwhile): the client is
        told how much it missed, as a background process's client is; the screen repairs itself
        on the next redraw."""
        if not self.stop.is_set() and not self._deliver(Lost(dropped_bytes=count)):
            self.stop.set()  # the client is gone or too slow: detach

    def _deliver_all(self, event: Ended, close_code: int) -> None:
        if self._deliver(event):
            self._deliver(close_code)

    def _deliver(self, item) -> bool:
        """Queues `item` for the client from this thread; False once the client is gone."""
        try:
            future = asyncio.run_coroutine_threadsafe(self._put(item), self.loop)
        except RuntimeError:  # the event loop is closed
            return False
        try:
            return future.result(timeout=settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS + 30)
        except Exception:
            future.cancel()
            return False

    async def _put(self, item) -> bool:
        client = self.client
        if client is None:
            return False
        try:
            client.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            pass
        try:
            await asyncio.wait_for(client.queue.put(item), settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS)
            return True
        except TimeoutError:
            logger.info("terminal %s: dropping a client that stopped reading", self.id)
            self.stop.set()
            self.loop.create_task(client.drop(SLOW_CLOSE_CODE))
            return False


def _hold_slot(driver: RuntimeDriver, container: str, session_id: str, slot) -> None:
    """Gives the opener's slot back once its terminal in sandboxd has ended, or its sandbox
    stopped or went away. A paused sandbox's terminal (frozen, not listed) keeps its slot, and so
    does one whose sandboxd fails to answer for a little while."""
    failures = 0
    try:
        while failures < SLOT_FAILURES:
            time.sleep(SLOT_POLL_SECONDS)
            try:
                listed = driver.terminal_list(container)
            except errors.ApplicationError:
                listed = None
            if listed is not None:
                if not any(t.exec_id == session_id and t.running for t in listed):
                    return
                failures = 0
                continue
            try:
                info = driver.inspect(container)
            except errors.ApplicationError:
                info = None
            if info is None or info.status not in ("running", "paused"):
                return  # stopped or gone: so is the terminal
            if info.status == "running":
                failures += 1
    finally:
        slot.release()


class _Opening:
    """A terminal_open whose caller may give up (cancelled while the open runs in its thread, or
    an answer that failed): a terminal sandboxd opened all the same is killed, since nobody else
    knows its id and it would run, uncounted, until its idle timeout."""

    def __init__(self, driver: RuntimeDriver, container: str, session_id: str):
        self.driver, self.container, self.session_id = driver, container, session_id
        self.lock = threading.Lock()
        self.opened = False
        self.abandoned = False

    def open(self, request: ExecRequest, *, cols: int, rows: int) -> None:
        """In a worker thread; the caller abandons the opening when this raises."""
        try:
            idle_timeout = float(settings.VIBEBOX_TERMINAL_IDLE_TIMEOUT)
            self.driver.terminal_open(self.container, request, cols=cols, rows=rows, idle_timeout=idle_timeout)
        except errors.ApplicationError as exc:
            reason = (exc.details or {}).get("reason", "")
            if reason.startswith("sandboxd_") and reason != "sandboxd_unavailable":
                with self.lock:  # sent, and its answer failed: sandboxd may have opened it
                    self.opened = True
                    abandoned = self.abandoned
                if abandoned:  # the caller left first: nobody else will end it
                    self._kill()
            raise
        with self.lock:
            self.opened = True
            abandoned = self.abandoned
        if abandoned:
            self._kill()

    def abandon(self) -> None:
        """The caller gives up: kills the terminal once opened (now, or when the open ends)."""
        with self.lock:
            self.abandoned = True
            opened = self.opened
        if opened:
            threading.Thread(target=self._kill, daemon=True, name=f"abandon-{self.session_id}").start()

    def _kill(self) -> None:
        try:
            self.driver.terminal_kill(self.container, self.session_id)
        except Exception as exc:  # it then ends at its idle timeout, as before
            logger.warning("terminal %s: could not end an abandoned terminal: %s", self.session_id, exc)


async def open_session(spec: Spec, *, shell: str, cols: int, rows: int, client: Client) -> DaemonSession:
    """Starts a shell in the sandbox's sandboxd with `client` attached (so it sees the first prompt)."""
    slot = await asyncio.to_thread(limits.acquire, limits.TERMINALS, spec.owner_id)  # or 429 too_many_streams
    session_id = random_id("term_", 20)
    env = {"TERM": "xterm-256color", **spec.env, MARKER_ENV: session_id}
    opening = _Opening(spec.driver, spec.container, session_id)
    try:
        request = ExecRequest(
            argv=_argv(shell), exec_id=session_id, env=env, user=spec.user, workdir=spec.workdir, timeout=0
        )
        await asyncio.to_thread(opening.open, request, cols=cols, rows=rows)
    except BaseException:
        opening.abandon()  # cancelled meanwhile, or the open failed
        slot.release()
        raise
    threading.Thread(
        target=_hold_slot, args=(spec.driver, spec.container, session_id, slot), daemon=True, name=f"slot-{session_id}"
    ).start()
    session = DaemonSession(
        session_id,
        sandbox_id=spec.sandbox_id,
        container=spec.container,
        driver=spec.driver,
        shell=shell,
        cols=cols,
        rows=rows,
    )
    session.start(client, "start")
    return session


def _in_daemon(sandbox: Sandbox) -> list:
    """The sandbox's running terminals in sandboxd (ours: `term_` ids)."""
    if sandbox.status != Status.RUNNING:
        return []
    with container_running(sandbox):
        listed = driver_for(sandbox).terminal_list(sandbox.container_name)
    return [t for t in listed if t.running and t.exec_id.startswith("term_")]


def _terminal(info) -> Terminal:
    return Terminal(
        session_id=info.exec_id,
        shell=_shell_of(info.argv),
        argv=tuple(info.argv),
        cols=info.cols,
        rows=info.rows,
        attached=info.attached,
        running=info.running,
        started_at=_time(info.started_at),
    )


def _time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:  # sandboxd's, checked for type and size only
        return None


def terminal_list(*, sandbox: Sandbox) -> list[Terminal]:
    """The sandbox's open terminals, oldest first."""
    return [_terminal(t) for t in _in_daemon(sandbox)]


def _valid_id(session_id: str) -> bool:
    return session_id.startswith("term_") and len(session_id) <= 64 and set(session_id) <= ID_CHARS


def _not_found(session_id: str) -> errors.ApplicationError:
    return errors.TerminalNotFound(details={"sessionId": session_id[:64]})


def record_opened(sandbox: Sandbox, session: DaemonSession) -> None:
    """The audit log's entry for a new terminal (what is typed in it is not recorded)."""
    record("terminal.opened", target=sandbox, changes={"terminal": session.id, "shell": session.shell})


def terminal_kill(*, sandbox: Sandbox, id: str) -> None:
    """Ends a terminal and everything it started (its clients get its exit); 404 when the
    sandbox has no such open terminal."""
    require_running(sandbox)  # a frozen sandboxd would not answer
    if not _valid_id(id) or not any(t.exec_id == id for t in _in_daemon(sandbox)):
        raise _not_found(id)
    if not driver_for(sandbox).terminal_kill(sandbox.container_name, id):
        raise _not_found(id)
    record("terminal.killed", target=sandbox, changes={"terminal": id})


async def join(session_id: str, *, sandbox: Sandbox, client: Client) -> DaemonSession:
    """Joins an open session of the sandbox; anything else (another sandbox's) is not found."""
    if not _valid_id(session_id):
        raise _not_found(session_id)
    info = next((t for t in await asyncio.to_thread(_in_daemon, sandbox) if t.exec_id == session_id), None)
    if info is None:
        raise _not_found(session_id)
    joined = DaemonSession(
        session_id,
        sandbox_id=sandbox.id,
        container=sandbox.container_name,
        driver=await asyncio.to_thread(driver_for, sandbox),  # may read the node row
        shell=_shell_of(info.argv),
        cols=info.cols,
        rows=info.rows,
    )
    # The recent screen: what sandboxd still keeps of the last REPLAY_BYTES (no `l` frame).
    joined.start(client, max(info.buffered_from, info.output_bytes - REPLAY_BYTES))
    return joined
