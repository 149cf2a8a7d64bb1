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

Queries and mutations may go over the socket too: they run as over HTTP (Operations, below). Every
operation (a subscription's start included) spends one request of the key's rate budget, REST's.
The document limits (depth, cost, introspection) are the schema's extensions: the same as over HTTP.
Errors carry REST's codes in `extensions` (errors.py), mapped here before they go out.
"""

import asyncio
import dataclasses
import datetime as dt
from types import SimpleNamespace

from channels.db import database_sync_to_async
from graphql import GraphQLError, GraphQLSyntaxError, OperationType, get_operation_ast, parse
from rest_framework import exceptions as drf
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.execution import PreExecutionError

from apps.keys.services import api_key_use
from apps.keys.throttles import ApiKeyRateThrottle
from apps.keys.ws import authenticate
from apps.sandboxes import limits
from apps.sandboxes.consumers.base import BaseConsumer, close_code
from vibebox import exceptions as errors
from vibebox import safejson

from .context import Context, get_context
from .errors import graphql_error, map_errors
from .loaders import Loaders
from .schema import MAX_TOKENS, schema

MAX_SUBSCRIPTIONS = 50  # operations in flight on one socket
INIT_TIMEOUT = dt.timedelta(seconds=30)  # to send connection_init
# A socket that came without credentials holds no stream slot yet, so nothing bounds how many there
# are: it gets graphql-ws's own default wait (3 s; plus margin for a slow client) to authenticate.
ANONYMOUS_INIT_TIMEOUT = dt.timedelta(seconds=5)


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


class Operations:
    """The schema as the protocol handler runs it: subscriptions stream on the event loop; queries and
    mutations run as over HTTP (schema.execute_sync, in a thread of their own, so their resolvers may
    use the ORM and block) with fresh dataloaders each, and answer one result."""

    def __init__(self, schema):
        self.schema = schema

    def __getattr__(self, name):
        return getattr(self.schema, name)

    async def stream(self, query, variable_values=None, context_value=None, root_value=None, operation_name=None):
        kind = _kind(query, operation_name)
        try:  # each operation spends one request of the key's budget, shared with REST and HTTP GraphQL
            await database_sync_to_async(_spend, thread_sensitive=False)(
                context_value, "POST" if kind == OperationType.MUTATION else "GET"
            )
        except (errors.ApplicationError, drf.Throttled) as exc:
            return _refused(exc)
        if kind in (None, OperationType.SUBSCRIPTION):
            return await self.schema.stream(
                query,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
            )
        context = _fresh(context_value)
        result = await database_sync_to_async(self.schema.execute_sync, thread_sensitive=False)(
            query, variable_values=variable_values, context_value=context, operation_name=operation_name
        )

        async def one():
            yield result

        return one()


def _kind(query, operation_name) -> OperationType | None:
    """The operation's type; None for a document that does not parse or names no operation (the
    streaming path reports it)."""
    try:
        operation = get_operation_ast(parse(query, max_tokens=MAX_TOKENS), operation_name)
    except (GraphQLError, TypeError):
        return None
    return operation.operation if operation is not None else None


def _spend(context: Context, method: str) -> None:
    """One request of the caller's rate budget (apps/keys/throttles.py: per key, else per user), as an
    HTTP request to /graphql spends; a read passes uncounted when Redis is away, a mutation does not."""
    throttle = ApiKeyRateThrottle()
    if not throttle.allow_request(SimpleNamespace(auth=context.key, user=context.user, method=method), None):
        raise drf.Throttled(wait=throttle.wait())


async def _refused(exc: BaseException):
    yield PreExecutionError(data=None, errors=[graphql_error(exc)])


def _fresh(context: Context) -> Context:
    """The connection's context with this operation's own dataloaders (nothing cached from an earlier one)."""
    fresh = dataclasses.replace(context, loaders=Loaders())
    fresh.connection_params, fresh.ws = getattr(context, "connection_params", None), getattr(context, "ws", None)
    return fresh


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
            schema=Operations(schema),
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
            else:
                self.connection_init_wait_timeout = ANONYMOUS_INIT_TIMEOUT
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
        # The library parses frames with the standard parser: a frame nested past its recursion
        # limit would raise out of the handler. Checked here first: 4400 as for any invalid message.
        if text_data is not None:
            try:
                safejson.loads(text_data)
            except ValueError:
                await self.close(code=4400, reason="invalid_json")
                return
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
