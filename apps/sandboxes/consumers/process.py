import asyncio
import contextlib

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.keys.scopes import EXECUTE

from .. import processes
from ..api.schema import ProcessExitSerializer
from .base import BaseConsumer


class ProcessConsumer(BaseConsumer):
    """WS /ws/sandboxes/{id}/processes/{processId}: a background command's output from the start
    (as much as is kept), then live, then {type: "exit", ...}. Leaving does not stop the command."""

    required_scopes = [EXECUTE]
    process: processes.EndedProcess | processes.DaemonProcess | None = None
    pump: asyncio.Future | None = None

    async def setup(self):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.VIBEBOX_WS_QUEUE_MESSAGES)
        self.loop = asyncio.get_running_loop()
        sandbox = await self.get_sandbox()
        process_id = self.scope["url_route"]["kwargs"]["process_id"]
        self.process = await sync_to_async(processes.process_get)(sandbox=sandbox, id=process_id)

    def _listener(self, item):  # called from the attach's thread: never block it
        def put():
            try:
                self.queue.put_nowait(item)
            except asyncio.QueueFull:  # this client is too far behind: drop it, not the process
                self.process.detach(self._listener)
                self.loop.create_task(self.close(code=4008))

        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is listening
            self.loop.call_soon_threadsafe(put)

    async def started(self):
        backlog, dropped, exit_info = self.process.attach(self._listener)
        if dropped:
            await self.send_json({"type": "truncated", "droppedBytes": dropped})
        for stream, data in backlog:
            await self.send_json({"type": stream, "data": data.decode("utf-8", errors="replace")})
        if exit_info is not None:
            await self._exit(exit_info)
            return
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self):
        while True:
            item = await self.queue.get()
            if item[0] == "output":
                await self.send_json({"type": item[1], "data": item[2].decode("utf-8", errors="replace")})
            elif item[0] == "lost":  # sandboxd no longer keeps the start
                await self.send_json({"type": "truncated", "droppedBytes": item[1]})
            elif item[0] == "exit":
                await self._exit(item[1])
                return

    async def _exit(self, exit_info: processes.ProcessExit):
        await self.send_json(ProcessExitSerializer(exit_info).data)  # the same shape as a listed process's exit
        await self.close(code=1000)

    async def disconnect(self, code):
        if self.process is not None:
            self.process.detach(self._listener)
        if self.pump is not None:
            self.pump.cancel()
