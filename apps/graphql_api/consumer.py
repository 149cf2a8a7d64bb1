"""WS /graphql: the GraphQL schema over the `graphql-transport-ws` protocol (the graphql-ws library's).

Built on strawberry's Channels consumer (the protocol: connection_init/ack, subscribe/next/complete,
ping/pong, one task per operation, so one subscription never waits for another) and on VibeBox's
WebSocket base (apps/sandboxes/consumers/base.py: one of the user's stream slots while open, the
watchdog closing the socket once its key or session may no longer be used, sends after the end
dropped, refusals mirroring HTTP statuses).

Authentication is the other WebSockets' (apps/keys/ws.py): `Authorization: Bearer` / `X-API-Key`
headers, the `vibebox.<key>` subprotocol, or a signed-in session; a bad key is refused at the
handshake (4401). A browser's graphql-ws client, which sets neither headers nor subprotocols, may
instead send the key in connection_init's payload (`connectionParams: {authorization: "Bearer …"}`);
a connection_init with no valid credentials is closed with 4401 and the error code as reason. Each
field then checks its own scopes (a missing one is the field's `insufficient_scope` error).

The document limits (depth, cost, introspection) are the schema's extensions: the same as over HTTP.
Errors carry REST's codes in `extensions` (errors.py), mapped here before they go out.
"""

import asyncio
import datetime as dt

from channels.db import database_sync_to_async
from graphql import GraphQLSyntaxError
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler

from apps.keys.services import api_key_use
from apps.keys.ws import authenticate
from apps.sandboxes import limits
from apps.sandboxes.consumers.base import BaseConsumer, close_code
from vibebox import exceptions as errors

from .context import Context, get_context
from .errors import map_errors
from .schema import schema

MAX_SUBSCRIPTIONS = 50  # operations in flight on one socket
INIT_TIMEOUT = dt.timedelta(seconds=30)  # to send connection_init


class Handler(BaseGraphQLTransportWSHandler):
    async def _send_result_stream(self, operation, result_source) -> None:
        """Each result's errors with REST's codes (errors.py), as the HTTP view answers them."""

        async def mapped():
            async for result in result_source:
                found = getattr(result, "errors", None)
                if found and not isinstance(found[0], GraphQLSyntaxError):  # closes the socket (4400)
                    result.errors = map_errors(found)
                yield result

        await super()._send_result_stream(operation, mapped())


def _key_from_params(params: dict) -> str:
    value = params.get("authorization") or params.get("Authorization") or ""
    if isinstance(value, str) and value.lower().startswith("bearer "):
        return value[7:].strip()
    key = params.get("apiKey") or params.get("x-api-key") or ""
    return key if isinstance(key, str) else ""


class GraphQLConsumer(GraphQLWSConsumer, BaseConsumer):
    graphql_transport_ws_handler_class = Handler
    required_scopes: list[str] = []  # each field checks its own (context.require_scopes)

    def __init__(self, *args, **kwargs):
        super().__init__(
            schema=schema,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=INIT_TIMEOUT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS,
        )

    async def connect(self):
        try:
            if GRAPHQL_TRANSPORT_WS_PROTOCOL not in (self.scope.get("subprotocols") or []):
                raise errors.NotAcceptable(f"Offer the {GRAPHQL_TRANSPORT_WS_PROTOCOL} subprotocol.")
            self.user, self.key, _ = await _authenticate(self.scope)
            if self.user is not None:
                await self._hold_slot()
        except errors.ApplicationError as exc:
            await self._release_slot()
            await self.refuse(exc)
            return
        await super().connect()  # strawberry's: accepts with graphql-transport-ws and runs the protocol

    async def _hold_slot(self):
        self._bind_audit()
        self._slot = await asyncio.to_thread(limits.acquire, limits.STREAMS, self.user.pk)

    async def create_websocket_response(self, request, subprotocol):
        response = await super().create_websocket_response(request, subprotocol)
        if self.user is not None and self._watchdog is None and not self.ended:
            self._watchdog = asyncio.ensure_future(self._watch())
        return response

    async def get_context(self, request, response) -> Context:
        context = get_context(user=self.user, key=self.key, session=self.scope.get("session"), scope=self.scope)
        context.connection_params = None  # where strawberry puts connection_init's payload
        context.ws = self  # a subscription whose client stopped reading closes the socket (subscriptions.py)
        return context

    async def on_ws_connect(self, context):
        """connection_init: a connection that came without credentials brings them in its payload."""
        if self.user is not None:
            return await super().on_ws_connect(context)
        params = getattr(context, "connection_params", None) or {}
        secret = _key_from_params(params) if isinstance(params, dict) else ""
        try:
            if not secret:
                raise errors.NotAuthenticated()
            key = await database_sync_to_async(api_key_use)(secret=secret)
            if key is None:
                raise errors.InvalidApiKey()
            self.user, self.key = key.user, key
            await self._hold_slot()
        except errors.ApplicationError as exc:
            await self.close(code=close_code(exc), reason=exc.code)
            raise ConnectionRejectionError() from exc
        context.user, context.key = self.user, self.key
        self._watchdog = asyncio.ensure_future(self._watch())
        return await super().on_ws_connect(context)

    async def receive(self, text_data=None, bytes_data=None):
        await GraphQLWSConsumer.receive(self, text_data=text_data, bytes_data=bytes_data)

    async def disconnect(self, code):
        if self.run_task is not None:
            await GraphQLWSConsumer.disconnect(self, code)

    def _access_problem(self):
        return None  # no route sandbox: each subscription checked its own when it started


async def _authenticate(scope):
    """(user, key, subprotocol) from the handshake, as the other WebSockets; (None, None, None) when
    it brought no credentials (they may come in connection_init)."""
    try:
        return await authenticate(scope, [])
    except errors.NotAuthenticated:
        return None, None, None
