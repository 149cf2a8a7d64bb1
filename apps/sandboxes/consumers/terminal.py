"""WS /ws/sandboxes/{id}/terminal: an interactive shell in a running sandbox.

Query: cols, rows (80x24), shell (bash, falling back to sh), cwd (relative to the workspace),
session (join an open session instead of starting one). The server first sends
{"type": "session", "sessionId", "cols", "rows", "shell"}, then the terminal's output as binary
frames (a client joining later first gets the recent output). Binary frames are keystrokes; so is
text, except a JSON object with a known type: {"type": "resize", "cols", "rows"},
{"type": "input", "data"} or {"type": "kill"} (ends the shell and everything it started, for
every client). {"type": "truncated", "droppedBytes"} says output this client missed is gone (it
fell behind sandboxd's buffer). When the shell exits the server sends {"type": "exit", "exitCode"} and closes with
1000; an idle terminal gets {"type": "exit", "exitCode": null, "reason": "idle"} and 4408; a client
that stops reading is dropped with 4008. Leaving does not end a terminal kept by sandboxd (see
terminals.py). Refusals close with 4000 + the HTTP status (4401, 4403, 4404, 4409...).
"""

import asyncio
import contextlib

from channels.db import database_sync_to_async
from django.urls import path

from apps.keys.scopes import EXECUTE
from vibebox import exceptions as errors
from vibebox import safejson

from .. import terminals
from ..services.exec import require_running
from .base import BaseConsumer, error_message, invalid_json

DEFAULT_SHELL = "bash"
MAX_SIZE = 1000  # columns or rows


def _parse_size(value: str, default: int, name: str) -> int:
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_SIZE:
        raise errors.ValidationFailed(f"{name} is a whole number from 1 to {MAX_SIZE}.", details={name: value})
    return int(value)


def _parse_shell(value: str) -> str:
    if not value:
        return DEFAULT_SHELL
    if value not in terminals.SHELLS:
        raise errors.ValidationFailed(f"shell is one of {', '.join(terminals.SHELLS)}.", details={"shell": value})
    return value


def _message(event: terminals.Ended | terminals.Lost) -> dict:
    """A terminal's event as its message to the client."""
    if isinstance(event, terminals.Lost):
        return {"type": "truncated", "droppedBytes": event.dropped_bytes}
    message = {"type": "exit", "exitCode": event.exit_code}
    if event.idle:
        message["reason"] = "idle"
    if event.error is not None:
        message["error"] = {"code": event.error.code, "message": event.error.message}
    return message


def _parse_control(text: str) -> dict | None:
    """A text frame holding a JSON object with a known `type` is a control message; any other
    text is keystrokes. JSON nested too deep is refused (invalid_json), not typed."""
    if not text.startswith("{"):
        return None
    try:
        message = safejson.loads(text)
    except safejson.TooDeep:
        raise invalid_json() from None
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("type") == "resize":
        cols, rows = message.get("cols"), message.get("rows")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIZE for v in (cols, rows)):
            raise errors.ValidationFailed(f"cols and rows are whole numbers from 1 to {MAX_SIZE}.")
        return {"type": "resize", "cols": cols, "rows": rows}
    if message.get("type") == "input":
        if not isinstance(message.get("data"), str):
            raise errors.ValidationFailed("input data is a string.")
        return {"type": "input", "data": message["data"]}
    if message.get("type") == "kill":
        return {"type": "kill"}
    return None


class TerminalConsumer(BaseConsumer):
    required_scopes = [EXECUTE]
    channel_layer_alias = "none"  # not a configured layer: a terminal needs none (no Redis connection each)
    session = None
    pump = None
    opened = False  # this connection started the terminal (rather than joining it)
    announced = False  # the client was told its session id

    async def setup(self):
        sandbox = await self.get_sandbox()
        await database_sync_to_async(require_running)(sandbox)
        self.client = terminals.Client(self._dropped)
        session_id = self.query("session")
        if session_id:
            self.session = await terminals.join(session_id, sandbox=sandbox, client=self.client)
            return
        shell = _parse_shell(self.query("shell"))
        cols = _parse_size(self.query("cols"), 80, "cols")
        rows = _parse_size(self.query("rows"), 24, "rows")
        spec = await database_sync_to_async(terminals.prepare)(sandbox, cwd=self.query("cwd") or None)
        self.session = await terminals.open_session(spec, shell=shell, cols=cols, rows=rows, client=self.client)
        self.opened = True
        await database_sync_to_async(terminals.record_opened)(sandbox, self.session)

    async def started(self):
        session = self.session
        await self.send_json(
            {
                "type": "session",
                "sessionId": session.id,
                "cols": session.cols,
                "rows": session.rows,
                "shell": session.shell,
            }
        )
        self.announced = True
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self):
        while True:
            item = await self.client.next()
            if not await self.still_allowed():
                return
            if isinstance(item, bytes):
                await self.send(bytes_data=item)
            elif isinstance(item, terminals.Ended | terminals.Lost):
                await self.send_json(_message(item))
            else:
                await self.close(code=item)
                return

    async def receive(self, text_data=None, bytes_data=None):
        if self.session is None or not await self.still_allowed():
            return
        try:
            if bytes_data is not None:
                await self.session.write(bytes_data)
                return
            control = _parse_control(text_data or "")
            if control is None:
                await self.session.write((text_data or "").encode())
            elif control["type"] == "resize":
                await self.session.resize(control["cols"], control["rows"])
            elif control["type"] == "kill":
                await self.session.kill()
            else:
                await self.session.write(control["data"].encode())
        except errors.ApplicationError as exc:
            await self.send_json(error_message(exc))

    async def _dropped(self, code: int):
        """The session let go of this client (it stopped reading)."""
        if self.pump is not None:
            self.pump.cancel()
        with contextlib.suppress(RuntimeError):  # the connection closed meanwhile
            await self.close(code=code)

    async def disconnect(self, code):
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump
        if self.session is not None:
            if self.opened and not self.announced:  # it left during the handshake: nobody knows this terminal
                with contextlib.suppress(errors.ApplicationError):
                    await self.session.kill()
            await self.session.detach(self.client)


websocket_urlpatterns = [
    path("ws/sandboxes/<str:sandbox_id>/terminal", TerminalConsumer.as_asgi()),
]
