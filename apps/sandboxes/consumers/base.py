"""The shared base of VibeBox's WebSocket consumers: authentication, lookups, refusals.

A refused connection is closed before it is accepted, with a close code that mirrors the HTTP
status (4401, 4403, 4404, 4409...). Where the server supports the ASGI `websocket.http.response`
extension, the client gets a real HTTP answer with the usual error envelope instead.
"""

import json
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.keys.ws import authenticate
from vibebox import exceptions as errors
from vibebox.api.errors import envelope

from .. import selectors

CLOSE_BASE = 4000
RECHECK_SECONDS = 30


class BaseConsumer(AsyncWebsocketConsumer):
    required_scopes: list[str] = []

    async def connect(self):
        try:
            self.user, self.key, subprotocol = await authenticate(self.scope, self.required_scopes)
            await self.setup()
        except errors.ApplicationError as exc:
            await self.refuse(exc)
            return
        await self.accept(subprotocol)
        await self.started()

    async def setup(self):
        """Look things up and check them before the connection is accepted."""

    async def started(self):
        """Called once accepted."""

    async def refuse(self, exc: errors.ApplicationError):
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            body = json.dumps(envelope(exc.code, exc.message, exc.details)).encode()
            # base_send: the consumer's own send() takes text or bytes frames, not ASGI messages.
            await self.base_send(
                {
                    "type": "websocket.http.response.start",
                    "status": exc.status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await self.base_send({"type": "websocket.http.response.body", "body": body})
            return
        await self.close(code=CLOSE_BASE + exc.status)

    async def still_allowed(self) -> bool:
        """Re-checks, at most every RECHECK_SECONDS, that the key is still valid; closes if not."""
        if self.key is None:
            return True
        now = time.monotonic()
        if now - getattr(self, "_checked_at", 0.0) < RECHECK_SECONDS:
            return True
        self._checked_at = now
        key = await database_sync_to_async(lambda: type(self.key).objects.filter(pk=self.key.pk).first())()
        if key is None or not key.is_active():
            await self.close(code=CLOSE_BASE + 401)
            return False
        return True

    async def get_sandbox(self):
        ref = self.scope["url_route"]["kwargs"]["sandbox_id"]
        return await database_sync_to_async(selectors.sandbox_get)(owner=self.user, ref=ref)

    async def send_json(self, data: dict):
        await self.send(text_data=json.dumps(data))

    def query(self, name: str, default: str = "") -> str:
        from urllib.parse import parse_qs

        values = parse_qs(self.scope.get("query_string", b"").decode()).get(name)
        return values[-1] if values else default
