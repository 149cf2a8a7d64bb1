"""WebSocket routes, joined from each app."""

from django.urls import path

from apps.agents.routing import websocket_urlpatterns as claude_routes
from apps.graphql_api.consumer import GraphQLConsumer
from apps.sandboxes.consumers.terminal import websocket_urlpatterns as terminal_routes
from apps.sandboxes.routing import websocket_urlpatterns as sandbox_routes
from vibebox.metrics import label_routes

# Each labelled with its pattern for the WebSocket metrics (vibebox/metrics.py).
# /graphql: GraphQL over graphql-transport-ws (apps/graphql_api/consumer.py), the HTTP view's path.
graphql_routes = [path("graphql", GraphQLConsumer.as_asgi())]

websocket_urlpatterns = label_routes([*sandbox_routes, *terminal_routes, *claude_routes, *graphql_routes])
