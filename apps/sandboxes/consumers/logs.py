import asyncio
import threading
import time

from asgiref.sync import sync_to_async

from apps.keys.scopes import SANDBOXES_READ

from .. import events, logs, selectors
from ..models import Status
from .base import BaseConsumer
from .streams import Outbox


class LogsConsumer(BaseConsumer):
    """WS /ws/sandboxes/{id}/logs?since=1h&tail=100&stdout=1&stderr=1&follow=1"""

    required_scopes = [SANDBOXES_READ]
    sandbox_need = selectors.READ
    sandbox = None
    outbox: Outbox | None = None
    group: str | None = None
    followers: tuple | list = ()

    async def setup(self):
        self.sandbox = await self.get_sandbox()
        self.since = logs.parse_since(self.query("since"))
        self.tail = logs.parse_tail(self.query("tail", "100"))
        self.streams = [s for s in logs.STREAMS if self.query(s, "1") not in ("0", "false")]
        self.follow = self.query("follow", "1") not in ("0", "false")
        self.followers = []

    async def started(self):
        self.outbox = Outbox(self)
        self.group = events.logs_group(self.sandbox.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        started_at = time.time()
        backlog = await sync_to_async(logs.read, thread_sensitive=False)(
            sandbox=self.sandbox, since=self.since, tail=self.tail, streams=self.streams
        )
        for entry in backlog:
            await self.outbox.put("json", entry)
        if self.follow and self.sandbox.status in (Status.RUNNING, Status.PAUSED):
            for stream in self.streams:
                self._follow(stream, started_at)
        elif not self.follow:
            await self.outbox.finish()
            await self.close()

    def _follow(self, stream: str, since: float):
        handle = logs.follow(sandbox=self.sandbox, stream=stream, since=since)
        self.followers.append(handle)

        def pump():
            for timestamp, text in handle:
                if not self.outbox.put_from_thread("json", logs.line(stream, timestamp, text)):
                    break
            handle.close()

        threading.Thread(target=pump, daemon=True, name=f"logs-{self.sandbox.id}-{stream}").start()

    async def sandbox_event(self, message):
        if await self.still_allowed():
            await self.outbox.put("json", events.as_log_line(message["event"]))

    async def disconnect(self, code):
        for handle in self.followers:
            await asyncio.to_thread(handle.close)
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.outbox is not None:
            self.outbox.cancel()


class ActivityConsumer(BaseConsumer):
    """WS /ws/activity: the caller's own events, as the webhooks will deliver them."""

    required_scopes = [SANDBOXES_READ]
    outbox: Outbox | None = None
    group: str | None = None

    async def started(self):
        self.outbox = Outbox(self)
        self.group = events.activity_group(self.user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def sandbox_event(self, message):
        if await self.still_allowed() and self._may_see(message["event"]):
            await self.outbox.put("json", message["event"])

    def _may_see(self, event: dict) -> bool:
        """Billing events (`billing.*`, sent only to members who may read the organization's
        billing) reach a session, and an API key of that organization holding `billing:read`."""
        if not str(event.get("type", "")).startswith("billing.") or self.key is None:
            return True
        org_id = (event.get("data") or {}).get("orgId")
        return "billing:read" in (self.key.scopes or []) and self.key.org_id == org_id

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.outbox is not None:
            self.outbox.cancel()
