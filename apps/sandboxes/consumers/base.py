"""The shared base of VibeBox's WebSocket consumers: authentication, lookups, refusals, limits,
re-checks, and a clean end whenever the connection ends.

A refused connection is closed before it is accepted, with a close code that mirrors the HTTP
status (4401, 4403, 4404, 4409, 4429...). Where the server supports the ASGI
`websocket.http.response` extension, the client gets a real HTTP answer with the usual error
envelope instead.

Every connection holds one of its user's VIBEBOX_MAX_STREAMS_PER_OWNER slots (apps/sandboxes/
limits.py) while it is open. Once accepted, a watchdog re-checks the key or session every
VIBEBOX_WS_RECHECK_SECONDS (at most 5) and closes the connection when it no longer may go on:
4401 for a revoked or expired key, a logged-out session or a deactivated user, 4403 for a scope
that was taken away or a sandbox its user may no longer reach as the route needs (a role changed,
a team left, a grant revoked: the permissions read afresh); the close reason is the error code.

A connection can end at any point (before it was accepted, while it is being refused, mid-
stream): all the state `disconnect` and background tasks look at exists from the start, sends
after the end are dropped, and the clean-up runs exactly once, even when the consumer's task is
cancelled.
"""

import asyncio
import json
import logging

import redis
from channels.db import aclose_old_connections, database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.audit import context as audit_context
from apps.keys.actors import actor_for
from apps.keys.ws import authenticate, recheck
from vibebox import exceptions as errors
from vibebox import metrics, safejson
from vibebox.api.errors import envelope

from .. import limits, selectors

logger = logging.getLogger(__name__)

CLOSE_BASE = 4000
ENDING_MESSAGES = ("websocket.close", "websocket.http.response.body")


def close_code(exc: errors.ApplicationError) -> int:
    return CLOSE_BASE + exc.status


def error_message(exc: errors.ApplicationError) -> dict:
    error = {"code": exc.code, "message": exc.message}
    if exc.details:
        error["details"] = exc.details
    return {"type": "error", "error": error}


def invalid_json() -> errors.ApplicationError:
    """A client message that is not JSON, or nests too deep (the HTTP API's code for such a body)."""
    return errors.InvalidJson("The message is not valid JSON, or nests too deep.")


def parse_json(data: str | bytes):
    """A client's JSON message, parsed with a depth limit; InvalidJson when it does not parse."""
    try:
        return safejson.loads(data)
    except ValueError:  # including safejson.TooDeep and undecodable bytes
        raise invalid_json() from None


class BaseConsumer(AsyncWebsocketConsumer):
    required_scopes: list[str] = []
    sandbox_need = selectors.USE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Everything disconnect() and the background tasks look at, before anything can fail.
        self.user = None
        self.key = None
        self.ended = False  # closed by either side, or refused: nothing more goes out
        self.revoked = False
        self._accepted = False
        self._slot: limits.Slot | None = None
        self._watchdog: asyncio.Task | None = None
        self._cleaned_up = False
        self._route = ""  # the route counted in vibebox_websocket_connections while open

    async def __call__(self, scope, receive, send):
        async def guarded_send(message):
            if self.ended:
                return  # the connection is over: a late send from a background task is dropped
            if message["type"] in ENDING_MESSAGES:
                self.ended = True
            try:
                await send(message)
            except OSError:  # uvicorn's ClientDisconnected: the client left meanwhile
                self.ended = True
                if not self._accepted:
                    raise  # during the handshake the server expects it back (and ends the app quietly)
                return
            if message["type"] == "websocket.accept":
                self._accepted = True
                self._route = metrics.websocket_route(self.scope)
                metrics.WEBSOCKET_CONNECTIONS.labels(self._route).inc()
            elif message["type"] == "websocket.send":
                metrics.WEBSOCKET_MESSAGES.labels(metrics.websocket_route(self.scope), "out").inc()

        try:
            await super().__call__(scope, receive, guarded_send)
        except redis.RedisError as exc:  # every consumer listens on the channel layer: Redis is down
            logger.error("websocket ended, Redis unavailable: %s", exc)
            if not self.ended:
                unavailable = errors.RateLimiterUnavailable(details={"dependency": "redis"})
                if self._accepted:
                    await self.close(code=close_code(unavailable), reason=unavailable.code)
                else:
                    await self.refuse(unavailable)
        finally:
            await self._cleanup(1006)

    # ---- the connection's life ----

    async def connect(self):
        try:
            self.user, self.key, subprotocol = await authenticate(self.scope, self.required_scopes)
            self._bind_audit()
            self._slot = await asyncio.to_thread(limits.acquire, limits.STREAMS, self.user.pk)
            await self.setup()
        except errors.ApplicationError as exc:
            # Given back before the refusal goes out: a client that reconnects at once finds its slot free.
            await asyncio.shield(self._release_slot())
            await self.refuse(exc)
            return
        await self.accept(subprotocol)
        if self.ended:  # the client left during the handshake
            return
        self._watchdog = asyncio.ensure_future(self._watch())
        try:
            await self.started()
        except errors.ApplicationError as exc:  # e.g. the sandbox went away meanwhile
            await self.send_error(exc)
            await self.close(code=close_code(exc), reason=exc.code)

    def _bind_audit(self) -> None:
        """What this connection changes is recorded as its user's (and key's), through the WebSocket door."""
        headers = dict(self.scope.get("headers") or [])
        client = self.scope.get("client") or ("", 0)
        audit_context.bind(
            source="websocket",
            ip=str(client[0] or "")[:45],
            user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:256],
            user=self.user,
            key_id=str(self.key.pk) if self.key is not None else "",
        )

    async def setup(self):
        """Look things up and check them before the connection is accepted."""

    async def started(self):
        """Called once accepted."""

    async def disconnect(self, code):
        """Let go of what the connection holds; called once, however the connection ended."""

    async def websocket_disconnect(self, message):
        self.ended = True
        await self._cleanup(message.get("code", 1006))
        await aclose_old_connections()
        raise StopConsumer()

    async def _cleanup(self, code):
        if self._cleaned_up:
            return
        self._cleaned_up = True
        self.ended = True
        if self._route:
            metrics.WEBSOCKET_CONNECTIONS.labels(self._route).dec()
            self._route = ""
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        try:
            await self.disconnect(code)
        except redis.RedisError as exc:  # leaving channel-layer groups: they expire on their own
            logger.warning("websocket clean-up without Redis: %s", exc)
        finally:
            self._release_slot()

    def _release_slot(self) -> asyncio.Future:
        """Gives the stream slot back (a Redis call: off the event loop, and never cancelled halfway);
        the future says when it is back."""
        slot, self._slot = self._slot, None
        loop = asyncio.get_running_loop()
        if slot is None:
            done = loop.create_future()
            done.set_result(None)
            return done
        return loop.run_in_executor(None, slot.release)

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
        await self.close(code=close_code(exc))

    # ---- re-checks ----

    async def _watch(self):
        """Closes the connection once its key or session may no longer be used (see the module)."""
        while not self.ended:
            await asyncio.sleep(settings.VIBEBOX_WS_RECHECK_SECONDS)
            try:
                problem = await recheck(self.scope, self.user, self.key, self.required_scopes)
                if problem is None:
                    problem = await database_sync_to_async(self._access_problem)()
            except Exception as exc:  # the database is busy or away: try again next time
                logger.warning("websocket re-check failed: %s", exc)
                continue
            if problem is not None and not self.ended:
                self.revoked = True
                logger.info("closing %s: %s", self.scope.get("path"), problem.code)
                await self.close(code=close_code(problem), reason=problem.code)
                return

    async def still_allowed(self) -> bool:
        """False once the watchdog found the key or session no longer valid (or the socket ended)."""
        return not (self.revoked or self.ended)

    # ---- messages ----

    async def websocket_receive(self, message):
        metrics.WEBSOCKET_MESSAGES.labels(metrics.websocket_route(self.scope), "in").inc()
        if self.revoked or self.ended:
            return  # nothing more from a connection that is being closed
        data = message.get("text") if message.get("text") is not None else message.get("bytes") or b""
        limit = settings.VIBEBOX_WS_MAX_MESSAGE
        if limit and len(data) > limit:
            exc = errors.RequestTooLarge(f"A message is at most {limit} bytes.", details={"limit": limit})
            await self.send_json(error_message(exc))
            await self.close(code=close_code(exc), reason=exc.code)
            return
        await super().websocket_receive(message)

    async def send_error(self, exc: errors.ApplicationError):
        await self.send_json(error_message(exc))

    async def get_sandbox(self):
        """The route's sandbox, reached as `sandbox_need` says (selectors: READ to watch, USE to run)."""
        ref = self.scope["url_route"]["kwargs"]["sandbox_id"]
        return await database_sync_to_async(self._sandbox)(ref)

    def _sandbox(self, ref: str, *, fresh: bool = False):
        actor = actor_for(user=self.user, key=self.key, session=self.scope.get("session"), fresh=fresh)
        return selectors.sandbox_get(actor=actor, ref=ref, need=self.sandbox_need)

    def _access_problem(self) -> errors.ApplicationError | None:
        """Why the connection's user may no longer reach its sandbox as it does (a role changed,
        a team left, a grant revoked): the permission's 403; None otherwise (a sandbox that went
        away ends its streams by itself)."""
        ref = (self.scope.get("url_route") or {}).get("kwargs", {}).get("sandbox_id")
        if ref is None:
            return None
        try:
            self._sandbox(ref, fresh=True)
        except errors.PermissionDenied as exc:
            return exc
        except errors.ApplicationError:
            return None
        return None

    async def send_json(self, data: dict):
        await self.send(text_data=json.dumps(data))

    def query(self, name: str, default: str = "") -> str:
        from urllib.parse import parse_qs

        values = parse_qs(self.scope.get("query_string", b"").decode()).get(name)
        return values[-1] if values else default


class Refusal(BaseConsumer):
    """Refuses every connection with `error` (an ApplicationError), as BaseConsumer refuses: used
    in front of the routes (vibebox/asgi.py's origin check)."""

    channel_layer_alias = "none"  # not a configured layer: a refusal needs no Redis channel
    error: errors.ApplicationError | None = None

    def __init__(self, *args, error: errors.ApplicationError | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.error = error

    async def connect(self):
        await self.refuse(self.error or errors.PermissionDenied())
