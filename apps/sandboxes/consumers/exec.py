import asyncio
import logging

from asgiref.sync import sync_to_async

from apps.keys.scopes import EXECUTE
from vibebox import exceptions as errors
from vibebox.units import parse_duration

from ..api.serializers import ExecExitSerializer
from ..runtime.base import STDIN_BUFFER, ExecControl
from ..services.exec import sandbox_exec
from . import contexts as context_stream
from .base import BaseConsumer, close_code, error_message, parse_json
from .streams import Outbox

logger = logging.getLogger(__name__)
SIGNALS = {"INT", "TERM", "KILL", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT"}
START_FIELDS = {"command", "cwd", "env", "timeout", "user"}


class ExecConsumer(BaseConsumer):
    """WS /ws/sandboxes/{id}/exec: one command per connection, output streamed as it comes.

    The client's first message is {command, cwd?, env?, timeout?, user?}; later ones are
    {type: "stdin", data}, {type: "close_stdin"} and {type: "signal", signal}. The server sends
    {type: "stdout"|"stderr", data} and finally {type: "exit", exitCode, duration, status, ...}.
    A first message {type: "context.execute", context, code, timeout?} runs code in a code context
    instead (consumers/contexts.py).
    """

    required_scopes = [EXECUTE]
    sandbox = None
    control: ExecControl | None = None
    task: asyncio.Future | None = None
    outbox: Outbox | None = None

    async def setup(self):
        self.sandbox = await self.get_sandbox()

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = parse_json(text_data if text_data is not None else bytes_data or b"")
        except errors.ApplicationError as exc:
            await self._error(exc)
            return
        if not isinstance(message, dict):
            await self._error(errors.ValidationFailed("Messages are JSON objects."))
            return
        if self.task is None and message.get("type") == context_stream.EXECUTE:
            self.task = await context_stream.start(self, message)  # code contexts: consumers/contexts.py
        elif self.task is None:
            await self._start(message)
        elif getattr(self, "context_id", None):
            await context_stream.receive(self, message)
        elif self.task.done():
            return  # the command has ended (its exit is on its way); its control is closed
        elif message.get("type") == "stdin" and isinstance(message.get("data"), str):
            self.control.write(message["data"].encode())
            # Backpressure: no more messages are read while the command is that far behind (a
            # client's disconnect then waits too, at most until the command's own timeout).
            while self.control.buffered > STDIN_BUFFER and not self.task.done() and not self.ended:
                await asyncio.sleep(0.05)
        elif message.get("type") == "close_stdin":
            self.control.close_stdin()
        elif message.get("type") == "signal" and str(message.get("signal", "")).upper().removeprefix("SIG") in SIGNALS:
            self.control.signal(str(message["signal"]).upper().removeprefix("SIG"))
        else:
            await self._error(errors.ValidationFailed("Unknown message; send stdin, close_stdin or signal."))

    async def _start(self, message: dict):
        unknown = sorted(set(message) - START_FIELDS - {"type"})
        if unknown or "command" not in message:
            await self._error(
                errors.UnknownField(details={"fields": unknown})
                if unknown
                else errors.ValidationFailed("command is required.")
            )
            return
        try:
            timeout = parse_duration(message["timeout"]) if message.get("timeout") is not None else None
        except ValueError as exc:
            await self._error(errors.InvalidDuration(str(exc)))
            return
        self.control = ExecControl()
        self.outbox = Outbox(self)
        loop_outbox = self.outbox

        def on_output(stream: str, data: bytes):
            loop_outbox.put_from_thread("json", {"type": stream, "data": data.decode("utf-8", errors="replace")})

        run = sync_to_async(sandbox_exec, thread_sensitive=False)
        self.task = asyncio.ensure_future(
            run(
                sandbox=self.sandbox,
                command=message["command"],
                cwd=message.get("cwd"),
                env=message.get("env"),
                user=message.get("user"),
                timeout=timeout,
                api_key=self.key,
                on_output=on_output,
                control=self.control,
            )
        )
        self.task.add_done_callback(lambda task: asyncio.ensure_future(self._finished(task)))

    async def _finished(self, task):
        self.control.close()
        try:
            outcome = task.result()
        except errors.ApplicationError as exc:
            await self.outbox.put("json", error_message(exc))
            await self.outbox.finish()
            await self.close(code=close_code(exc))
            return
        except Exception:
            logger.exception("exec %s: the command's stream failed", self.sandbox.id)
            await self.outbox.put("json", error_message(errors.ApplicationError()))
            await self.outbox.finish()
            await self.close(code=1011)
            return
        await self.outbox.put("json", {"type": "exit", **ExecExitSerializer(outcome).data})
        await self.outbox.finish()
        await self.close(code=1000)

    async def _error(self, exc: errors.ApplicationError):
        await self.send_json(error_message(exc))

    async def disconnect(self, code):
        if getattr(self, "context_id", None):  # a context's code runs on (interrupt it to stop it)
            if self.outbox is not None:
                self.outbox.cancel()
            return
        if self.control is not None and (self.task is None or not self.task.done()):
            self.control.signal("KILL")  # the client left: the command does not outlive it
        if self.outbox is not None:
            self.outbox.cancel()
