"""WS /ws/sandboxes/{id}/claude: Claude's activity in a sandbox, live.

Every message is an event as the activity feed has it: {"type": "claude.<kind>", "sandboxId",
"text", "data": {"askId", "sessionId", "seq", "kind", "event"}, "timestamp"} with kind init,
assistant, tool_use, tool_result, result…, plus claude.ask.started / claude.ask.finished /
claude.changes / claude.changes.approved|rejected. With `?askId=`, that ask's events so far are
sent first (then live ones, each once); `?sessionId=` keeps to one session. An ask or session
that is not this sandbox's is refused as not found (4404), as the REST endpoints answer it.
"""

from channels.db import database_sync_to_async

from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes import selectors as sandbox_selectors
from apps.sandboxes.consumers.base import BaseConsumer
from apps.sandboxes.consumers.streams import Outbox

from . import selectors
from .asks import claude_group


def _backlog(sandbox, ask_id: str) -> list[dict]:
    ask = selectors.ask_get(sandbox=sandbox, ask_id=ask_id)
    out = []
    for stored in ask.events.order_by("seq"):
        out.append(
            {
                "type": f"claude.{stored.type}",
                "sandboxId": sandbox.id,
                "text": stored.type,
                "data": {
                    "askId": ask.id,
                    "sessionId": ask.session_id,
                    "seq": stored.seq,
                    "kind": stored.type,
                    "event": stored.data,
                },
                "timestamp": stored.created_at.timestamp(),
                "replayed": True,
            }
        )
    if ask.status != "running":
        out.append(
            {
                "type": "claude.ask.finished",
                "sandboxId": sandbox.id,
                "text": f"Claude ask {ask.status}",
                "data": {"askId": ask.id, "sessionId": ask.session_id, "status": ask.status},
                "timestamp": (ask.finished_at or ask.started_at).timestamp(),
                "replayed": True,
            }
        )
    return out


class ClaudeConsumer(BaseConsumer):
    required_scopes = [SANDBOXES_READ]
    sandbox_need = sandbox_selectors.READ
    outbox: Outbox | None = None
    group: str | None = None

    async def setup(self):
        self.sandbox = await self.get_sandbox()
        self.ask_id = self.query("askId")
        self.session_id = self.query("sessionId")
        if self.session_id:  # another sandbox's session is not found here, as over REST
            await database_sync_to_async(selectors.session_get)(sandbox=self.sandbox, session_id=self.session_id)
        self.backlog = await database_sync_to_async(_backlog)(self.sandbox, self.ask_id) if self.ask_id else []
        self.seen: set = set()

    async def started(self):
        self.outbox = Outbox(self)
        self.group = claude_group(self.sandbox.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        for event in self.backlog:
            await self._send(event)

    async def _send(self, event: dict):
        data = event.get("data") or {}
        if self.ask_id and data.get("askId") != self.ask_id:
            return
        if self.session_id and data.get("sessionId") != self.session_id:
            return
        mark = (data.get("askId"), data.get("seq"), event["type"] if data.get("seq") is None else "")
        if mark in self.seen:
            return
        self.seen.add(mark)
        await self.outbox.put("json", event)

    async def sandbox_event(self, message):
        if await self.still_allowed():
            await self._send(message["event"])

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.outbox is not None:
            self.outbox.cancel()
